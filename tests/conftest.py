"""Shared fixtures: running the workflow with snakemake on tiny configurations in a temporary folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]

TINY = {
    "run": "tiny",
    "synthetic": {"train_images": 96, "val_images": 50, "image_size": 32},
    "classifier": {"epochs": 1, "batch_size": 32},
    "segmenter": {"kind": "dataset", "epochs": 1},
    "chunk_size": 20,
    "batch_size": 8,
    "ablation": {"activate": False},  # the ablation and adversarial tests switch them on; the others stay quick
    "adversarial": {"activate": False},
    "statistics": {"activate": False, "resamples": 50},
    "gan": {"activate": False},  # tests/test_gan.py switches it on with a planted generator
}


def merged(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class Workflow:
    """A snakemake working folder with its own config file."""

    def __init__(self, folder: Path, config: dict):
        self.folder = folder
        self.config_path = folder / "config.yaml"
        self.set_config(config)

    def set_config(self, config: dict) -> None:
        self.config = config
        self.config_path.write_text(yaml.safe_dump(config))

    @property
    def results(self) -> Path:
        return self.folder / "results" / self.config.get("run", "default")

    def run(self, *args: str, cores: int = 2, check: bool = True) -> subprocess.CompletedProcess:
        cmd = SNAKEMAKE + ["-d", str(self.folder), "--configfile", str(self.config_path), "--cores", str(cores), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=self.folder, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"snakemake failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
        return proc

    def dry_run_jobs(self, *targets: str) -> dict[str, int]:
        """Rule -> number of jobs a dry run (of the default target, or of the given ones) would execute."""
        proc = self.run(*targets, "-n", "--quiet", "rules")  # targets first: --quiet takes several words
        jobs = {}
        for line in proc.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
                jobs[parts[0]] = int(parts[1])
        return jobs


@pytest.fixture
def workflow_factory(tmp_path):
    def make(config: dict | None = None, name: str = "wf") -> Workflow:
        folder = tmp_path / name
        folder.mkdir()
        return Workflow(folder, merged(TINY, config or {}))

    return make


@pytest.fixture(autouse=True)
def fresh_upsampling_geometry():
    """Every test builds its upsampling geometries and row groups anew: mutation runs fork each mutant's tests from
    a process whose caches would otherwise hide a mutated ``_axis`` or ``_row_groups`` (every such mutant
    'survived')."""
    from netdissect.cellscan import _ROW_GROUPS
    from netdissect.upsample import geometry

    geometry.cache_clear()
    _ROW_GROUPS.clear()
