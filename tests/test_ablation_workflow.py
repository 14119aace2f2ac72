"""The ablation sweeps through snakemake: a sweep killed half-way reruns only its missing unit chunks, and results
are identical for any chunking of the units and of the set sweeps and any number of cores."""

from __future__ import annotations

import os
import signal
import subprocess
from base64 import b64encode

import pandas as pd
import pytest
from conftest import SNAKEMAKE, merged
from test_resume import wait_for

from netdissect.ablationplan import chunk_range
from netdissect.synthetic.vocabulary import concept_table

pytestmark = pytest.mark.workflow
TABLES = ("single_unit.csv", "ranking.csv", "sweeps.csv", "table.csv")  # the sweeps' own tables (no dissection)


def config(tmp_path, unit_chunks, sweep_chunks):
    """A random-init scene_cnn with the synthetic world's scene classes, one dissected and ablated layer."""
    classes = tmp_path / "classes.txt"
    classes.write_text("".join(f"{name}\n" for _, name, category in concept_table() if category == "scene"))
    return {
        "model": {"weights": None, "random_init": True, "layers": ["conv4"], "classes": str(classes)},
        "chunk_size": 50,
        "ablation": {
            "activate": True,
            "unit_chunks": unit_chunks,
            "sweep_chunks": sweep_chunks,
            "ks": [1, 4, 20],
            "random_seeds": 2,
        },
    }


def targets(wf) -> list[str]:
    return [str((wf.results / "ablation" / "conv4" / name).relative_to(wf.folder)) for name in TABLES]


def recorded(wf, chunks) -> list:
    """Unit chunks written and recorded as complete by snakemake (its incomplete marker, named by the base64 of the
    path, removed); a chunk killed between the two is rerun by --rerun-incomplete, rightly."""
    markers = {p.name for p in (wf.folder / ".snakemake" / "incomplete").glob("*")}
    done = sorted(chunks.glob("0*.csv"))
    return [p for p in done if b64encode(str(p.relative_to(wf.folder)).encode()).decode() not in markers]


def tables(wf) -> dict[str, bytes]:
    return {name: (wf.results / "ablation" / "conv4" / name).read_bytes() for name in TABLES}


def test_killed_sweep_reruns_missing_chunks_and_chunking_changes_nothing(workflow_factory, tmp_path):
    # a model not trained here with a class list: the ablation, the attack and the report with both sections
    reference = workflow_factory(merged(config(tmp_path, 1, 1), {"adversarial": {"activate": True}}), "reference")
    reference.run("report", cores=1)
    sweeps = pd.read_csv(reference.results / "ablation" / "conv4" / "sweeps.csv")
    assert set(sweeps["kind"]) == {"none", "top", "all_but_top", "least", "random"}
    assert (reference.results / "ablation" / "conv4" / "sweeps.png").stat().st_size > 1000
    importance = pd.read_csv(reference.results / "ablation" / "conv4" / "importance.csv")
    assert len(importance) == 128 and importance["top_classes"].sum() == 6 * 4
    summary = pd.read_csv(reference.results / "adversarial" / "summary.csv")
    assert set(summary["ranking"]) == {"ablation"} and set(summary["source"]) <= set(sweeps["class"])
    page = (reference.results / "report" / "index.html").read_text()
    table = pd.read_csv(reference.results / "ablation" / "conv4" / "table.csv")
    assert '<h2 id="ablation">Ablation</h2>' in page and '<h2 id="adversarial">' in page
    assert f"<td>{table.loc[0, 'unchanged']:.3f}</td>" in page and "conv4: Removing the 20 units" in page
    for link in ("../ablation/conv4/table.csv", "../ablation/conv4/ranking.csv", "../ablation/conv4/sweeps.png"):
        assert f'"{link}"' in page and (reference.results / "report" / link).exists()

    wf = workflow_factory(config(tmp_path, 5, 3), name="killed")
    cmd = SNAKEMAKE + ["-d", str(wf.folder), "--configfile", str(wf.config_path), "--cores", "1", *targets(wf)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    chunks = wf.results / "ablation" / "conv4" / "single_unit"
    wait_for(lambda: recorded(wf, chunks), timeout=600)  # the first unit chunk is done
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = recorded(wf, chunks)
    done = len(finished)
    assert 1 <= done < 5
    for path in finished:  # chunks are written atomically: whatever is there is complete
        start, stop = chunk_range(path.stem, 128)
        assert len(pd.read_csv(path)) == (stop - start) * 6
    wf.run("--unlock")
    jobs = wf.dry_run_jobs("--rerun-incomplete", *targets(wf))  # the killed job left its output marked incomplete
    assert jobs["ablation_units"] == 5 - done and jobs["ablation_sweep"] == 3
    wf.run("--rerun-incomplete", *targets(wf), cores=2)
    assert tables(wf) == tables(reference)
    assert wf.dry_run_jobs(*targets(wf)) == {}
