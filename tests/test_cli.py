"""The netdissect command reads a finished run: detectors per category and the top units of every layer."""

import subprocess
import sys

import numpy as np
import pandas as pd

from netdissect.cli import main
from netdissect.iou import label_units
from netdissect.layout import RunLayout
from netdissect.tables import write_units

CONCEPTS = pd.DataFrame(
    {"id": [1, 2, 3, 4], "name": ["sky", "tree", "red", "street"], "category": ["object", "object", "color", "scene"]}
)


def _run(tmp_path):
    layout = RunLayout(str(tmp_path / "results" / "r"))
    iou = np.zeros((4, 5))
    iou[0, 1] = 0.30  # sky detector
    iou[1, 2] = 0.08  # tree detector
    iou[2, 3] = 0.05  # red detector
    iou[3, 2] = 0.01  # tree, below the detector threshold
    write_units(layout.units("conv4"), label_units(iou, CONCEPTS, np.ones(4), 0.04))
    write_units(layout.units("features.28"), label_units(iou[:2], CONCEPTS, np.ones(2), 0.5))
    return layout


def test_summary_lists_detectors_per_category_and_top_units(tmp_path, capsys):
    layout = _run(tmp_path)
    assert main(["summary", layout.root, "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert out.index("conv4:") < out.index("features.28:")
    conv4 = out[: out.index("features.28:")]
    assert "conv4: 3 of 4 units are detectors, covering 3 concepts" in out
    assert "features.28: 0 of 2 units are detectors, covering 0 concepts" in out
    rows = {
        line.split()[0]: line.split()[1:] for line in conv4.splitlines() if line.split()[:1] in (["object"], ["color"])
    }
    assert rows == {"object": ["2", "2"], "color": ["1", "1"]}
    top = conv4[conv4.index("top 2 units by IoU:") :].split()
    assert top[5:15] == ["unit", "label", "category", "iou", "detector", "0", "sky", "object", "0.3000", "True"]
    assert top[15:] == ["1", "tree", "object", "0.0800", "True"]


def test_summary_of_an_unfinished_run_is_a_clear_error(tmp_path, capsys):
    assert main(["summary", str(tmp_path / "nothing")]) == 2
    assert "no dissected layers" in capsys.readouterr().err


def test_command_runs_without_snakemake(tmp_path):
    layout = _run(tmp_path)
    code = (
        "import sys; from netdissect.cli import main; rc = main(['summary', sys.argv[1]]); "
        "assert 'snakemake' not in sys.modules, 'snakemake imported'; sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code, layout.root], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "conv4: 3 of 4 units are detectors" in proc.stdout
