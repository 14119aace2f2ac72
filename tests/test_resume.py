"""Killed runs resume: SIGKILL of a chunk job, or of snakemake itself, then a rerun gives identical results."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from conftest import SNAKEMAKE
from test_slurm import outputs

from netdissect.stores import open_group

pytestmark = pytest.mark.workflow
CONFIG = {"model": {"weights": None, "random_init": True}, "chunk_size": 25}  # two chunks of the 50 images


def start(wf) -> subprocess.Popen:
    cmd = SNAKEMAKE + ["-d", str(wf.folder), "--configfile", str(wf.config_path), "--cores", "2"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def job_pids(wf) -> list[int]:
    """Running stage scripts (chunk jobs) of this workflow."""
    found = subprocess.run(
        ["pgrep", "-f", f"{wf.folder}/.snakemake/scripts"], capture_output=True, text=True, check=False
    )
    return [int(p) for p in found.stdout.split()]


def wait_for(predicate, timeout=300.0):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def every_store_is_complete(results):
    for store in results.glob("**/*.zarr"):
        open_group(store)  # raises on a store without provenance


def test_kill_job_then_snakemake_then_resume(workflow_factory):
    reference = workflow_factory(CONFIG, name="reference")
    reference.run()

    wf = workflow_factory(CONFIG, name="killed")
    proc = start(wf)
    wait_for(lambda: list((wf.results / "activations").glob("*/*.zarr")) or None)  # first chunk done
    pid = wait_for(lambda: job_pids(wf))[0]
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    assert proc.wait(timeout=300) != 0
    every_store_is_complete(wf.results)

    proc = start(wf)
    wait_for(lambda: list((wf.results / "tally").glob("*/*.zarr")) or None)
    os.killpg(proc.pid, signal.SIGKILL)  # snakemake and its jobs, mid-tally
    proc.wait()
    every_store_is_complete(wf.results)

    wf.run("--unlock")  # a killed snakemake leaves its lock, as after a power loss
    wf.run("--rerun-incomplete")
    assert outputs(wf.results) == outputs(reference.results)
    assert wf.dry_run_jobs() == {}
