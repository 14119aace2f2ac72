"""A tiny run submitted through SLURM (a real one-node cluster on localhost), some chunk jobs bundled as group jobs,
equals a local run."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import ROOT

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]


@pytest.fixture(scope="module")
def cluster():
    if shutil.which("sinfo") is None and shutil.which("apt-get") is None:
        pytest.skip("no SLURM here and no way to install it")
    subprocess.run(["bash", str(ROOT / "tests" / "slurm" / "cluster-up.sh")], check=True)


def outputs(results):
    return {
        path.relative_to(results).as_posix(): path.read_bytes()
        for pattern in ("dissect/*/units.csv", "dissect/*/thresholds.csv", "summary.csv")
        for path in results.glob(pattern)
    }


def test_slurm_run_equals_local_run(cluster, workflow_factory):
    config = {"model": {"weights": None, "random_init": True, "layers": ["conv3"]}, "chunk_size": 25}
    local = workflow_factory(config, name="local")
    local.run()
    remote = workflow_factory(config, name="slurm")
    remote.run(
        "--workflow-profile",
        str(ROOT / "workflow" / "profiles" / "slurm"),
        "--jobs",
        "4",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--slurm-logdir",
        str(remote.folder / "slurm-logs"),
        "--slurm-keep-successful-logs",
        # the bundling the profile offers (commented out there), for two of its rules
        "--groups",
        "threshold_sample_chunk=sample_chunks",
        "tally_chunk=tally_chunks",
        "--group-components",
        "sample_chunks=4",
        "tally_chunks=4",
    )
    got = outputs(remote.results)
    assert got and got == outputs(local.results)
    logdir = remote.folder / "slurm-logs"
    submitted = [p.relative_to(logdir).parts[0] for p in logdir.rglob("*.log")]
    assert {"rule_activations", "rule_segment_chunk", "rule_threshold_refine_chunk"} <= set(submitted)
    # each bundled rule's two chunk jobs went to SLURM as one job
    assert submitted.count("group_sample_chunks_threshold_sample_chunk") == 1
    assert submitted.count("group_tally_chunks_tally_chunk") == 1
    assert not {"rule_threshold_sample_chunk", "rule_tally_chunk"} & set(submitted)
