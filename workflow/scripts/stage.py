"""Run the netdissect stage of the calling rule (Snakemake injects ``snakemake``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

from netdissect.stages import run

run(snakemake)  # noqa: F821
