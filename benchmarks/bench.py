"""netdissect benchmarks: throughput, memory, storage and scaling, each printed as a ratio against a baseline
measured in the same run, on synthetic Broden-format data generated here.

    python benchmarks/bench.py                 # all benchmarks at the default size, writes benchmarks/RESULTS.md
    python benchmarks/bench.py --images 1000   # smaller
    python benchmarks/bench.py --only reduction   # reruns one benchmark, keeps the others' last results

See benchmarks/README.md for what each one measures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace

# chunk jobs run single-threaded, as Snakemake runs them (it sets these to a job's threads)
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from netdissect.stages import keep_freed_memory, stage_job, topimages
from netdissect.stages import report as report_stage
from netdissect.stages import statistics as statistics_stage
from netdissect.stages import tally as tally_stage
from netdissect.stages import thresholds as threshold_stage
from netdissect.stores import open_group, write_csv, write_group
from netdissect.synthetic import render_sample
from netdissect.synthetic.vocabulary import PIXEL_CATEGORIES, concept_table

DATA = ROOT / "benchmarks" / "data"
UNITS, SOURCE, LABEL, IMAGE = 512, 7, 112, 224
UNIQUE_SCENES = 400  # rendered label maps, repeated to reach the requested number of images
REPORT_K = 8  # top images per unit in the report benchmark


# ---------------------------------------------------------------- data
def label_maps(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 4, 112, 112) label planes and (n, 2) image labels of the synthetic world at 224 pixels."""
    planes, image = [], []
    for i in range(min(n, UNIQUE_SCENES)):
        s = render_sample(0, i, IMAGE)
        planes.append(np.stack([s.planes[c] for c in PIXEL_CATEGORIES]))
        image.append([s.scene, s.texture])
    reps = -(-n // len(planes))
    return np.tile(np.stack(planes), (reps, 1, 1, 1))[:n], np.tile(np.array(image, np.uint16), (reps, 1))[:n]


def activations(n: int, seed: int) -> np.ndarray:
    """Sparse, spatially smooth, heavy-tailed maps like a trained ReLU layer's (n, 512, 7, 7) float16."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, UNITS, SOURCE + 2, SOURCE + 2)).astype(np.float32)
    smooth = sum(z[:, :, i : i + SOURCE, j : j + SOURCE] for i in range(3) for j in range(3)) / 3
    presence = rng.standard_normal((n, UNITS, 1, 1)).astype(np.float32)
    gain = np.exp(rng.normal(0, 0.5, (1, UNITS, 1, 1))).astype(np.float32)
    return np.maximum(gain * (smooth + 2 * presence) - 2.5, 0).astype(np.float16)


def concepts_csv(path: Path) -> None:
    import pandas as pd

    rows = concept_table()
    write_csv(
        path, pd.DataFrame({"id": [r[0] for r in rows], "name": [r[1] for r in rows], "category": [r[2] for r in rows]})
    )


def make_stores(folder: Path, n: int, chunk: int) -> list[str]:
    """Activation and segmentation chunk stores in the workflow's format; returns the chunk names."""
    planes, image = label_maps(n)
    names = []
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        name = f"{start:07d}-{stop:07d}"
        names.append(name)
        rows = np.arange(start, stop)
        prov = {"provenance": {"inputs": {"dataset": name, "model": "bench", "layer": "layer4"}}, "skipped": []}
        write_group(
            folder / "acts" / f"{name}.zarr", {"activations": activations(stop - start, start), "rows": rows}, prov, 32
        )
        seg = {"provenance": {"inputs": {"dataset": name, "segmenter": "synthetic"}}, "skipped": []}
        write_group(
            folder / "seg" / f"{name}.zarr",
            {"labels": planes[start:stop], "image_labels": image[start:stop], "rows": rows},
            seg,
            64,
        )
    concepts_csv(folder / "concepts.csv")
    return names


# ---------------------------------------------------------------- reduction
def _tally(task):
    inputs, outputs = task
    tally_stage.tally_chunk(stage_job(inputs, outputs))


def reduction(folder: Path, names: list[str], workers: int, timings: dict | None = None) -> float:
    """Seconds for the full threshold and tally reduction of a layer, chunk stages on ``workers`` processes.

    ``timings`` receives the seconds of each round (chunk stage and reduce together); the tally's reduce fixes the
    thresholds and computes IoU.
    """
    timings = {} if timings is None else timings
    work = folder / f"work{workers}"
    shutil.rmtree(work, ignore_errors=True)
    acts = [str(folder / "acts" / f"{c}.zarr") for c in names]
    start = mark = time.perf_counter()

    def lap(name, _folder):
        nonlocal mark
        timings[name], mark = time.perf_counter() - mark, time.perf_counter()

    with ProcessPoolExecutor(workers, initializer=keep_freed_memory) as pool:
        bracket = str(threshold_stage.intervals_in_process(acts, work, 0.01, (LABEL, LABEL), pool.map, lap))
        concepts = str(folder / "concepts.csv")
        counts = [str(work / "tally" / f"{c}.zarr") for c in names]
        tasks = [
            (
                {"acts": a, "segment": str(folder / "seg" / f"{c}.zarr"), "bracket": bracket, "concepts": concepts},
                {"counts": out},
            )
            for a, c, out in zip(acts, names, counts)
        ]
        list(pool.map(_tally, tasks))
        tally_stage.tally_reduce(
            stage_job(
                {"counts": counts, "bracket": bracket, "concepts": concepts},
                {"tally": str(work / "tally.zarr"), "thresholds": str(work / "thresholds.csv")},
                union="all",
                quantile=0.01,
            )
        )
        timings["tally"] = time.perf_counter() - mark
    return time.perf_counter() - start


def _read_chunk(paths):
    acts, seg = paths
    a = open_group(acts)["activations"][:]
    g = open_group(seg)
    return a.shape[0] + 0 * g["labels"][:].size + 0 * g["image_labels"][:].size


def bare_read(folder: Path, names: list[str], workers: int) -> float:
    start = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        list(
            pool.map(
                _read_chunk, [(str(folder / "acts" / f"{c}.zarr"), str(folder / "seg" / f"{c}.zarr")) for c in names]
            )
        )
    return time.perf_counter() - start


def per_image_numpy(folder: Path, names: list[str], images: int) -> float:
    """Seconds per image of a straightforward implementation: upsample every unit, threshold, count per concept."""
    import pandas as pd

    from netdissect.tables import concept_vocabulary, read_concepts

    t = pd.read_csv(folder / "work2" / "thresholds.csv")["threshold"].to_numpy(np.float32)
    vocab = concept_vocabulary(read_concepts(folder / "concepts.csv"))
    acts = open_group(folder / "acts" / f"{names[0]}.zarr")["activations"][:images].astype(np.float32)
    seg = open_group(folder / "seg" / f"{names[0]}.zarr")
    labels, image_labels = seg["labels"][:images], seg["image_labels"][:images]
    ys = np.clip((np.arange(LABEL) + 0.5) * SOURCE / LABEL - 0.5, 0, SOURCE - 1)
    y0 = np.floor(ys).astype(int)
    y1 = np.minimum(y0 + 1, SOURCE - 1)
    wy = ys - y0
    inter = np.zeros((UNITS, vocab.size), np.int64)
    start = time.perf_counter()
    for i in range(images):
        a = acts[i]
        rows = a[:, y0] * (1 - wy)[None, :, None] + a[:, y1] * wy[None, :, None]
        up = rows[:, :, y0] * (1 - wy)[None, None] + rows[:, :, y1] * wy[None, None]
        active = up > t[:, None, None]
        for c in np.unique(np.concatenate([labels[i].ravel(), image_labels[i]])):
            if c:
                mask = (labels[i] == c).any(0) | (image_labels[i] == c).any()
                inter[:, c] += (active & mask).sum((1, 2))
    return (time.perf_counter() - start) / images


def bench_reduction(n: int, results: dict) -> None:
    folder, names = prepared(n, 500)
    rounds: dict = {}
    two = reduction(folder, names, 2, rounds)
    one = reduction(folder, names, 1)
    read = bare_read(folder, names, 2)
    naive = per_image_numpy(folder, names, 40)
    results["reduction"] = {
        "images": n,
        "pipeline_images_per_s_2_cores": n / two,
        "pipeline_images_per_s_1_core": n / one,
        "speedup_1_to_2_cores": one / two,
        "per_image_numpy_images_per_s": 1 / naive,
        "ratio_vs_per_image_numpy": (n / two) * naive,
        "bare_read_images_per_s_2_cores": n / read,
        "reference_tally_images_per_s": 41,
        "ratio_vs_reference": (n / two) / 41,
        "round_images_per_s_2_cores": {k: n / v for k, v in rounds.items()},
    }


def bench_linearity(sizes: list[int], results: dict) -> None:
    seconds = {}
    for n in sizes:
        folder, names = prepared(n, 500)
        seconds[n] = reduction(folder, names, 2)
    base = sizes[0]
    results["linearity"] = {
        str(n): {"seconds": s, "per_image_vs_smallest": (s / n) / (seconds[base] / base)} for n, s in seconds.items()
    }


# ---------------------------------------------------------------- memory and storage
MEMORY_CHILD = """
import sys
sys.path.insert(0, {src!r})
from types import SimpleNamespace as NS
from netdissect.stages import thresholds, tally
acts, seg, folder = {acts!r}, {seg!r}, {folder!r}
thresholds.coarse_chunk(NS(input=NS(acts=acts), output=NS(state=folder + '/mem-coarse.npz'), params=NS(label_size=(112, 112))))
tally.tally_chunk(NS(input=NS(acts=acts, segment=seg, bracket={bracket!r}, concepts=folder + '/concepts.csv'),
                     output=NS(counts=folder + '/mem-tally.zarr'), params=NS()))
# peak RSS of this process image (ru_maxrss would include the parent's from before exec)
print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])
"""


def peak_rss_mb(folder: Path, name: str, bracket: Path) -> float:
    code = MEMORY_CHILD.format(
        src=str(ROOT / "src"),
        acts=str(folder / "acts" / f"{name}.zarr"),
        seg=str(folder / "seg" / f"{name}.zarr"),
        folder=str(folder),
        bracket=str(bracket),
    )
    for leftover in ("mem-coarse.npz", "mem-tally.zarr"):
        shutil.rmtree(folder / leftover, ignore_errors=True)
        (folder / leftover).unlink(missing_ok=True) if (folder / leftover).is_file() else None
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) / 1024


def prepared(n: int, chunk: int, name: str | None = None) -> tuple[Path, list[str]]:
    """Stores of n images in chunks (generated once), and their chunk names."""
    folder = DATA / (name or f"reduction-{n}")
    if not (folder / "concepts.csv").exists():
        shutil.rmtree(folder, ignore_errors=True)
        make_stores(folder, n, chunk)
    return folder, sorted(p.stem for p in (folder / "acts").glob("*.zarr"))


def bench_memory(results: dict) -> None:
    """Peak RSS of a chunk job for chunk sizes 250 and 1000, and for 1k- and 8k-image datasets at chunk 500."""
    base, names = prepared(1000, 500)
    bracket = base / "work2" / "refine.npz"
    if not bracket.exists():
        reduction(base, names, 2)
    out = {}
    cases = (
        ("chunk 250", 1000, 250, "memory-1000-250"),
        ("chunk 1000", 1000, 1000, "memory-1000-1000"),
        ("1000 images, chunk 500", 1000, 500, None),
        ("8000 images, chunk 500", 8000, 500, None),
    )
    for label, n, chunk, name in cases:
        folder, names = prepared(n, chunk, name)
        out[label] = peak_rss_mb(folder, names[-1], bracket)
    results["memory_mb"] = out


def store_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench_storage(results: dict) -> None:
    folder = DATA / "reduction-1000"
    acts = sum(store_bytes(p) for p in (folder / "acts").glob("*.zarr"))
    seg = sum(store_bytes(p) for p in (folder / "seg").glob("*.zarr"))
    n = 1000
    results["storage"] = {
        "activation_bytes_vs_float64": acts / (n * UNITS * SOURCE * SOURCE * 8),
        "label_compression": (n * 4 * LABEL * LABEL * 2) / seg,
    }


# ---------------------------------------------------------------- activations
def bench_activations(n: int, results: dict) -> None:
    """Activation dump (decode PNGs, forward, store) against a bare forward loop over the same decoded images."""
    from netdissect.synthetic import write_world

    world = DATA / f"world-{n}"
    if not (world / "index.csv").exists():
        shutil.rmtree(world, ignore_errors=True)
        write_world(world, 0, 1, n, IMAGE)
    # the bare loop prepares the model as the stage does (channels-last, batch norms folded), so the ratio is the
    # pipeline's own cost; the plain loop (the model as torchvision builds it) shows what that preparation gains
    plain = _bare_activation_loop((world, False, False))
    bare = _bare_activation_loop((world, True, False))
    # jobs in fresh processes, as Snakemake runs them: one job on both cores, then the default settings, one
    # single-threaded job per core (activations.threads: 1), each on half the images; last, the bare loop with the
    # jobs' allocator setting (in a worker, so that this process keeps glibc's defaults)
    halves = [(world, 0, n // 2, 1, "a"), (world, n // 2, n + 1, 1, "b")]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_activation_job, [(world, 0, 1, 1, "warm0"), (world, 0, 1, 1, "warm1")]))  # imports, untimed
        one_job = pool.submit(_activation_job, (world, 0, n + 1, 2, "one")).result()
        default_jobs = max(pool.map(_activation_job, halves))
        tuned = pool.submit(_bare_activation_loop, (world, True, True)).result()
    results["activations"] = {
        "images": n,
        "plain_forward_images_per_s": n / plain,
        "bare_forward_images_per_s": n / bare,
        "tuned_bare_forward_images_per_s": n / tuned,
        "dump_images_per_s": n / one_job,
        "ratio": bare / one_job,
        "default_jobs_images_per_s": n / default_jobs,
        "default_ratio": bare / default_jobs,
        "default_ratio_tuned": tuned / default_jobs,
    }


def _bare_activation_loop(task) -> float:
    """Seconds of a forward loop of ResNet-18 (torch on 2 threads, 32 images at a time) over a world's val images,
    decoded beforehand; ``prepared``: channels-last with batch norms folded, as the stage runs it; ``tuned``: with
    the jobs' allocator setting."""
    import torch
    import torchvision

    from netdissect.datasets import load_image
    from netdissect.fusion import fold_batch_norms
    from netdissect.models import preprocess
    from netdissect.stages import keep_freed_memory

    world, prepared, tuned = task
    if tuned:
        keep_freed_memory()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    images = np.stack([load_image(p) for p in sorted((world / "images" / "synthetic" / "val").glob("??????.png"))])
    model = torchvision.models.resnet18(weights=None).eval()
    memory_format = torch.channels_last if prepared else torch.contiguous_format
    if prepared:
        model = model.to(memory_format=memory_format)
        fold_batch_norms(model, {"layer4"})
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(images), 32):
            model(preprocess(images[i : i + 32]).contiguous(memory_format=memory_format))
    return time.perf_counter() - start


def _activation_job(task) -> float:
    """Seconds of the activation stage on rows [start, stop) of a world's val split, with ``threads`` threads,
    from the model's load to the stores' commit (the job's imports and interpreter start excluded)."""
    from netdissect.modelspec import ModelSpec
    from netdissect.stages import activations as act_stage
    from netdissect.stages import keep_freed_memory

    keep_freed_memory()  # as every job does
    world, start, stop, threads, name = task
    out = DATA / "act-out" / name
    shutil.rmtree(out, ignore_errors=True)
    spec = ModelSpec(name="resnet18", random_init=True, digest="bench").as_params()
    job_ = SimpleNamespace(
        input=SimpleNamespace(),
        output=SimpleNamespace(stores=[str(out / "layer4" / "c.zarr")], coarse=[str(out / "layer4" / "c.npz")]),
        threads=threads,
        params=SimpleNamespace(
            start=start,
            stop=stop,
            digest="bench",
            source={"kind": "broden", "root": str(world), "split": "val"},
            model=spec,
            image_size=(IMAGE, IMAGE),
            resize=None,
            batch_size=32,
            dtype="float16",
            device="cpu",
            skip_bad_images=False,
            autocast=None,
            label_size=(LABEL, LABEL),
        ),
    )
    began = time.perf_counter()
    act_stage.activations_chunk(job_)
    return time.perf_counter() - began


# ---------------------------------------------------------------- report
def _top_images(task):
    acts, out = task
    topimages.top_images_chunk(stage_job({"acts": acts}, {"top": out}, k=REPORT_K))


def bench_report(n: int, results: dict) -> None:
    """The report of one 512-unit layer with 8 images per unit: the chunks' top-k (2 worker processes) and the
    layer's page (merge, maps of the top images only, outlines, 512 strips, figures, HTML) on 224-pixel images."""
    from netdissect.synthetic import write_world

    folder, names = prepared(n, 500)
    work = folder / "work2"
    if not (work / "tally.zarr").is_dir():
        reduction(folder, names, 2)
    world = DATA / f"world-report-{n}"
    if not (world / "index.csv").exists():
        shutil.rmtree(world, ignore_errors=True)
        write_world(world, 0, n, 0, IMAGE)  # rows 0..n-1, like the activation stores'
    concepts = str(folder / "concepts.csv")
    units = str(work / "units.csv")
    tally_stage.label_units(
        stage_job(
            {"tally": str(work / "tally.zarr"), "concepts": concepts},
            {"units": units, "provenance": str(work / "provenance.json")},
            iou_threshold=0.04,
            config={},
            weights_digest="bench",
            dataset_digest="bench",
        )
    )
    acts = [str(folder / "acts" / f"{c}.zarr") for c in names]
    tops = [str(work / "topk" / f"{c}.npz") for c in names]
    start, children = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    with ProcessPoolExecutor(2, initializer=keep_freed_memory) as pool:
        list(pool.map(_top_images, zip(acts, tops)))
    chunks = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    chunks_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    read = bare_read(folder, names, 2)
    out = work / "report" / "layer4"
    start, cpu = time.perf_counter(), time.process_time()
    report_stage.layer_report(
        SimpleNamespace(
            input=SimpleNamespace(top=tops, acts=acts, tally=str(work / "tally.zarr"), units=units),
            output=SimpleNamespace(folder=str(out)),
            wildcards=SimpleNamespace(layer="layer4"),
            params=SimpleNamespace(
                run="bench",
                layers=["layer4"],
                k=REPORT_K,
                label_size=(LABEL, LABEL),
                source={"kind": "broden", "root": str(world), "split": None},
                resize=None,
                iou_threshold=0.04,
            ),
        )
    )
    page, page_cpu = time.perf_counter() - start, time.process_time() - cpu
    top = np.loadtxt(out / "top.csv", delimiter=",", skiprows=1, usecols=2, dtype=np.int64)
    results["report"] = {
        "images": n,
        "units": UNITS,
        "top_images": REPORT_K,
        "distinct_top_images": len(np.unique(top)),
        "top_k_chunks_seconds_2_cores": chunks,
        "top_k_chunks_cpu_seconds": chunks_cpu,
        "bare_read_seconds_2_cores": read,
        "layer_page_seconds": page,
        "layer_page_cpu_seconds": page_cpu,
        "load_average": os.getloadavg()[0],
        "total_seconds": chunks + page,
        "page_megabytes": store_bytes(out) / 1e6,
    }


# ---------------------------------------------------------------- default settings, end to end
DEFAULT_SIZES = (300, 1000, 4000, 10000)
DEFAULT_LAYER_SETS = (("layer4",), ("layer3", "layer4"))
JOB_CPU = re.compile(r"job cpu: (\w+) ([\d.]+) s")


def broden_world(n: int) -> Path:
    """A Broden-format folder of n 224-pixel images of the synthetic world (written once)."""
    world = DATA / f"world-defaults-{n}"
    if not (world / "index.csv").exists():
        from netdissect.synthetic import write_world

        shutil.rmtree(world, ignore_errors=True)
        write_world(world, 0, 1, n - 1, IMAGE)
    return world


def bare_forward(world: Path, layers: list[str], tuned: bool = False) -> float:
    """Seconds of the bare loop, in this process: decode every image of the folder and run the ResNet-18, prepared
    as the activation stage prepares it (channels-last, batch norms folded), on them, 32 at a time, with torch's
    threads at the machine's cores; ``tuned`` gives it the jobs' allocator setting too."""
    import torch
    import torchvision

    from netdissect.datasets import load_image, open_dataset
    from netdissect.fusion import fold_batch_norms
    from netdissect.models import preprocess
    from netdissect.stages import keep_freed_memory

    if tuned:
        keep_freed_memory()
    torch.set_num_threads(os.cpu_count())
    paths = [r.image for r in open_dataset("broden", world).records(None, None)]
    start = time.perf_counter()
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval().to(memory_format=torch.channels_last)
    fold_batch_norms(model, set(layers))
    with torch.inference_mode():
        for i in range(0, len(paths), 32):
            images = np.stack([load_image(path) for path in paths[i : i + 32]])
            model(preprocess(images).contiguous(memory_format=torch.channels_last))
    return time.perf_counter() - start


def _bare_forward_process(world: Path, layers: tuple[str, ...], tuned: bool = False) -> float:
    """bare_forward in a fresh process (a user's script), after the page cache holds the images."""
    args = [sys.executable, __file__, "--bare-loop", str(world), ",".join(layers)] + (["--tuned"] if tuned else [])
    env = {
        k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    }
    return float(subprocess.run(args, check=True, capture_output=True, text=True, env=env).stdout.split()[-1])


def rule_breakdown(results_dir: Path) -> dict[str, dict]:
    """Per rule: jobs, wall seconds (the jobs' benchmark files) and CPU seconds (each job's log), summed."""
    rules: dict[str, dict] = {}
    for tsv in (results_dir / "benchmarks").rglob("*.tsv"):
        log = results_dir / "logs" / tsv.relative_to(results_dir / "benchmarks").with_suffix(".log")
        found = JOB_CPU.search(log.read_text()) if log.exists() else None
        if not found:
            continue
        wall = float(tsv.read_text().splitlines()[1].split("\t")[0])
        entry = rules.setdefault(found[1], {"jobs": 0, "wall_seconds": 0.0, "cpu_seconds": 0.0})
        entry["jobs"] += 1
        entry["wall_seconds"] += wall
        entry["cpu_seconds"] += float(found[2])
    return dict(sorted(rules.items(), key=lambda item: -item[1]["wall_seconds"]))


def _default_run(world: Path, layers: tuple[str, ...]) -> dict:
    """The dissection at default settings through snakemake on 2 cores, from an empty working folder."""
    import yaml

    work = DATA / "defaults-run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    config = {
        "run": "defaults",
        "dataset": {"kind": "broden", "root": str(world)},
        "model": {"name": "resnet18", "weights": None, "random_init": True, "layers": list(layers)},
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work), "dissect"]
    start = time.perf_counter()
    subprocess.run(
        [*command, "--configfile", str(work / "config.yaml"), "--cores", "2"], check=True, capture_output=True
    )
    seconds = time.perf_counter() - start
    jobs = job_intervals(next((work / ".snakemake" / "log").glob("*.snakemake.log")).read_text())
    chunking = json.loads((work / "results" / "defaults" / "chunking.json").read_text())["dataset"]
    return {
        "seconds": seconds,
        "chunk_size": chunking["chunk_size"],
        "chunks": -(-chunking["images"] // chunking["chunk_size"]),
        "activation_phase_seconds": covered([(a, b) for rule, a, b in jobs if rule == "activations"]),
        "outside_jobs_seconds": seconds - covered([(a, b) for _, a, b in jobs]),
        "rules": rule_breakdown(work / "results" / "defaults"),
    }


def bench_defaults(sizes: list[int], results: dict) -> None:
    """The dissection as a user runs it, at default settings (chunk_size auto, q 0.01, union all, statistics on):
    ``snakemake --cores 2 dissect`` on a Broden-format folder of n 224-pixel images with dataset labels and a
    random-init ResNet-18 (layer4; layer3 + layer4), against the bare loop measured just before in a fresh process."""
    runs = []
    for n in sizes:
        world = broden_world(n)
        for layers in DEFAULT_LAYER_SETS:
            bare = _bare_forward_process(world, layers)
            run = _default_run(world, layers)
            runs.append(
                {"images": n, "layers": list(layers), "bare_seconds": bare, "ratio": run["seconds"] / bare} | run
            )
            print(f"defaults: {n} images {layers}: bare {bare:.1f} s, run {run['seconds']:.1f} s", file=sys.stderr)
    world = broden_world(1000)
    results["defaults"] = {
        "runs": runs,
        "bare_seconds_1000_layer4_tuned_allocator": _bare_forward_process(world, ("layer4",), tuned=True),
        "load_average": os.getloadavg()[0],
    }


# ---------------------------------------------------------------- end to end
E2E_VARIANTS = (  # (chunk_size, activations.autocast)
    (500, None),
    (1000, None),
    (2000, None),
    (1000, "bfloat16"),
)


def bench_e2e(n: int, results: dict) -> None:
    """The workflow on a Broden-format folder of n 224-pixel images (prepared beforehand), one ResNet-18 layer,
    dataset labels: activations, thresholds, tally and labels through snakemake on 2 cores, for each variant."""
    world = DATA / f"world-e2e-{n}"
    if not (world / "index.csv").exists():
        from netdissect.synthetic import write_world

        shutil.rmtree(world, ignore_errors=True)
        write_world(world, 0, 1, n, IMAGE)
    runs = []
    for chunk_size, autocast in E2E_VARIANTS:
        seconds = _e2e_run(world, chunk_size, autocast)
        runs.append(
            {"chunk_size": chunk_size, "autocast": autocast, "seconds": seconds, "ratio_vs_reference": 375 / seconds}
        )
    results["e2e"] = {"images": n, "reference_seconds": 375, "runs": runs}


def _e2e_run(world: Path, chunk_size: int, autocast: str | None) -> float:
    import yaml

    work = DATA / "e2e-run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    config = {
        "run": "e2e",
        "dataset": {"kind": "broden", "root": str(world), "split": "val"},
        "model": {"name": "resnet18", "weights": None, "random_init": True, "layers": ["layer4"]},
        "segmenter": {"kind": "dataset"},
        "chunk_size": chunk_size,
        "activations": {"autocast": autocast},
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(ROOT / "Snakefile"),
            "-d",
            str(work),
            "--configfile",
            str(work / "config.yaml"),
            "--cores",
            "2",
            "--quiet",
            "all",
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


# ---------------------------------------------------------------- ablation
ABLATION_LAYERS = (("resnet18", "layer3"), ("resnet18", "layer4"), ("vgg16", "features.28"))


def bench_ablation(n: int, naive_units: int, tail_units: int, results: dict) -> None:
    """Single-unit ablations per second: the sweep's tail (once-computed layer output, many ablations per pass, or
    the linear shortcut) against the naive loop (a full forward pass of every image for every unit), random-init
    weights, random 224-pixel inputs labelled by the unchanged model's own predictions, 2 threads. Both are timed on
    the first units of the layer; the tail's time includes the one forward pass to the layer, spread over every
    unit of the layer."""
    import torch
    import torchvision

    from netdissect.ablation import Counts
    from netdissect.hooks import LayerHooks, UnitEdit
    from netdissect.tail import batch_counts, cut, sweep_counts

    torch.set_num_threads(2)
    runs = []
    for name, layer in ABLATION_LAYERS:
        torch.manual_seed(0)
        model = torchvision.models.get_model(name, weights=None).eval().to(memory_format=torch.channels_last)
        images = torch.rand(n, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(0))
        batches = [images[i : i + 32].contiguous(memory_format=torch.channels_last) for i in range(0, n, 32)]
        with torch.inference_mode():
            start = time.perf_counter()
            features, targets = [], []
            with LayerHooks(model, capture=[layer]) as hooks:
                for batch in batches:
                    targets.append(hooks.run(batch).argmax(1))
                    features.append(hooks.captured[layer])
            head = time.perf_counter() - start  # the stage's one pass (here a full one, to get the labels too)
            units = features[0].shape[1]
            start = time.perf_counter()
            parts = []
            for u in range(naive_units):
                with LayerHooks(model, edits={layer: UnitEdit([u])}) as hooks:
                    counts = [batch_counts(hooks.run(b)[None], t) for b, t in zip(batches, targets)]
                parts.append(sum(counts[1:], counts[0]))
            naive = (time.perf_counter() - start) / naive_units
            naive_counts = Counts.concat(parts)
            tail = cut(model, layer)
            measured = min(units, tail_units)
            start = time.perf_counter()
            edits = [UnitEdit([u]) for u in range(measured)]
            tail_counts = sweep_counts(tail, zip(features, targets), edits, 0, 16, 1000)
            per_unit = (time.perf_counter() - start) / measured
        same = [
            (a == b[:naive_units]).all(1)
            for a, b in (
                (naive_counts.true_positive, tail_counts.true_positive),
                (naive_counts.predicted, tail_counts.predicted),
            )
        ]
        agree = same[0] & same[1]
        runs.append(
            {
                "model": name,
                "layer": layer,
                "units": units,
                "tail": tail.kind,
                "naive_unit_ablations_per_s": 1 / naive,
                "tail_unit_ablations_per_s": 1 / per_unit,
                "per_unit_ratio": naive / per_unit,
                "whole_layer_ratio": units * naive / (head + units * per_unit),
                "units_timed": {"naive": naive_units, "tail": measured},
                "identical_metrics": f"{int(agree.sum())} of {naive_units} units",
                "max_margin_difference": float(
                    abs(naive_counts.margin_sum - tail_counts.margin_sum[:naive_units]).max() / n
                ),
            }
        )
        print(runs[-1], flush=True)
    results["ablation"] = {"images": n, "runs": runs}


# ---------------------------------------------------------------- label statistics
def _statistics_chunk(task):
    inputs, outputs, params = task
    statistics_stage.statistics_chunk(stage_job(inputs, outputs, **params))


def bench_statistics(n: int, resamples: int, results: dict) -> None:
    """The label statistics of one 512-unit layer (``resamples`` bootstrap resamples, the permutation null): its
    chunk jobs on 2 worker processes and the layer's job, against the layer's threshold and tally reduction on the
    same stores, measured in the same run."""
    import pandas as pd

    folder, names = prepared(n, 500)
    work = folder / "work2"
    tally_seconds = reduction(folder, names, 2)
    index = work / "index.csv"
    write_csv(index, pd.DataFrame({"row": np.arange(n), "image": [f"{i}.jpg" for i in range(n)], "split": "val"}))
    concepts, tally = str(folder / "concepts.csv"), str(work / "tally.zarr")
    sums = [str(work / "statistics" / f"{c}.npz") for c in names]
    params = {"seed": 0, "resamples": resamples, "candidates": 8, "grid": 8}
    tasks = [
        (
            {"acts": str(folder / "acts" / f"{c}.zarr"), "segment": str(folder / "seg" / f"{c}.zarr")}
            | {"tally": tally, "concepts": concepts, "index": str(index)},
            {"sums": out},
            params,
        )
        for c, out in zip(names, sums)
    ]
    start = time.perf_counter()
    with ProcessPoolExecutor(2, initializer=keep_freed_memory) as pool:
        list(pool.map(_statistics_chunk, tasks))
    chunks = time.perf_counter() - start
    start = time.perf_counter()
    statistics_stage.statistics_layer(
        SimpleNamespace(
            input=SimpleNamespace(sums=sums, tally=tally, concepts=concepts),
            output=SimpleNamespace(
                table=str(work / "statistics.csv"),
                discoveries=str(work / "discoveries.csv"),
                figure=str(work / "statistics.png"),
            ),
            wildcards=SimpleNamespace(layer="layer4"),
            params=SimpleNamespace(
                union="all", label_size=(LABEL, LABEL), iou_threshold=0.04, level=0.95, grid=8, fdr_q=0.05
            ),
        )
    )
    layer = time.perf_counter() - start
    results["statistics"] = {
        "images": n,
        "units": UNITS,
        "resamples": resamples,
        "chunk_jobs_seconds_2_cores": chunks,
        "layer_job_seconds": layer,
        "total_seconds": chunks + layer,
        "threshold_and_tally_seconds_2_cores": tally_seconds,
        "ratio_vs_threshold_and_tally": (chunks + layer) / tally_seconds,
        "load_average": os.getloadavg()[0],
    }


# ---------------------------------------------------------------- first run
STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$")
STARTED = re.compile(r"^(?:local)?rule (\w+):$")
FINISHED = re.compile(r"^Finished jobid: \d+ \(Rule: (\w+)\)$")
TRAINING = ("train_classifier", "train_segmenter", "train_generator")
STAGES = {  # rule-name prefixes of the stages after the dissection, for their share of the first run
    "ablation": ("ablation",),
    "adversarial": ("adversarial",),
    "report": ("top_images", "layer_report", "report_index"),
    "statistics": ("statistics",),
    "gan": ("train_generator", "generate_chunk", "gan_"),
}


def job_intervals(log: str) -> list[tuple[str, float, float]]:
    """(rule, start, end) of every job in a snakemake log, in seconds since its first timestamp.

    Jobs of one rule are paired in the order they start and finish; snakemake stamps lines to the second.
    """
    from datetime import datetime

    stamp, first, starts, jobs = None, None, {}, []
    for line in log.splitlines():
        if match := STAMP.match(line):
            stamp = datetime.strptime(match[1], "%a %b %d %H:%M:%S %Y").timestamp()
            first = stamp if first is None else first
        elif (match := STARTED.match(line)) and stamp is not None:
            starts.setdefault(match[1], []).append(stamp - first)
        elif (match := FINISHED.match(line)) and stamp is not None:
            jobs.append((match[1], starts[match[1]].pop(0), stamp - first))
    return jobs


def covered(intervals: list[tuple[float, float]]) -> float:
    """Seconds during which at least one of the intervals is open."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        total += max(0.0, b - max(a, end))
        end = max(end, b)
    return total


FIRST_RUN_DISSECTION = ["dissect", "--config", "statistics={activate: false}"]  # what the first run did at first


def bench_first_run(results: dict, key: str = "first_run", args: list[str] | None = None) -> None:
    """The README's default command (plus ``args``) in a fresh clone of this repository (its committed HEAD), with
    the installed environment: the wall time, the time during which a training job ran, and the trained networks'
    quality."""
    clone = DATA / "first-run"
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    snakemake = Path(sys.executable).parent / "snakemake"
    load = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run([str(snakemake), "--cores", "2", *(args or [])], cwd=clone, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    jobs = job_intervals(next((clone / ".snakemake" / "log").glob("*.snakemake.log")).read_text())
    training = covered([(a, b) for rule, a, b in jobs if rule in TRAINING])
    classifier = json.loads(next((clone / "results" / "cache").glob("classifier-*/training.json")).read_text())
    quality = json.loads((clone / "results" / "default" / "segmenter" / "quality.json").read_text())
    results[key] = {
        "command": " ".join(["snakemake", "--cores", "2", *(args or [])]),
        "seconds": seconds,
        "load_before": load,
        "training_seconds": training,
        "training_share": training / seconds,
        "stage_seconds": {
            stage: covered([(a, b) for rule, a, b in jobs if rule.startswith(prefixes)])
            for stage, prefixes in STAGES.items()
        },
        "jobs": {rule: sum(b - a for r, a, b in jobs if r == rule) for rule in {r for r, _, _ in jobs}},
        "classifier_val_accuracy": classifier["val_accuracy"],
        "segmenter_pixel_accuracy": quality["pixel_accuracy"],
        "segmenter_mean_iou": {c: v["mean_iou"] for c, v in quality["categories"].items()},
    }


# ---------------------------------------------------------------- report
# ---------------------------------------------------------------- results
def machine() -> str:
    cpu = next(
        (
            l.split(":", 1)[1].strip()
            for l in Path("/proc/cpuinfo").read_text().splitlines()
            if l.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def defaults_section(d: dict | None) -> list[str]:
    """RESULTS.md's first section: the whole dissection at default settings against the bare forward loop."""
    if not d:
        return []
    lines = [
        "## The whole dissection at default settings (`snakemake --cores 2 dissect`)",
        "",
        (
            "Broden-format folder of 224-pixel images, dataset labels, random-init ResNet-18, every default (`chunk_size:"
            " auto`, q = 0.01, `union: all`, label statistics on), from an empty working folder. The bare loop, measured"
            " just before in a fresh process: decode every image and run the same prepared model, 32 images at a time,"
            " torch on both cores."
        ),
        "",
        "| images | layers | chunks | bare loop s | whole run s | ratio | activation jobs running s | outside any job s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in d["runs"]:
        lines.append(
            f"| {r['images']} | {' + '.join(r['layers'])} | {r['chunks']} x {r['chunk_size']} | {r['bare_seconds']:.1f} "
            f"| {r['seconds']:.1f} | {r['ratio']:.2f} | {r['activation_phase_seconds']:.0f} "
            f"| {r['outside_jobs_seconds']:.0f} |"
        )
    lines += [
        "",
        (
            f"The bare loop with the jobs' allocator setting (`keep_freed_memory`), 1,000 images, layer4: "
            f"{d['bare_seconds_1000_layer4_tuned_allocator']:.1f} s. Load average at the end: {d['load_average']:.1f}."
        ),
        "",
        "Job seconds per rule (wall from the jobs' benchmark files, CPU from their logs), summed over each rule's jobs:",
        "",
    ]
    for r in d["runs"]:
        parts = ", ".join(
            f"{rule} {v['jobs']} x: {v['wall_seconds']:.0f} / {v['cpu_seconds']:.0f}"
            for rule, v in r["rules"].items()
            if v["wall_seconds"] >= 1
        )
        lines.append(f"- {r['images']} images, {' + '.join(r['layers'])} (wall / CPU s): {parts}")
    return lines + [""]


def write_results(results: dict) -> None:
    lines = ["# Benchmark results", "", f"Machine: {machine()}. Generated by `python benchmarks/bench.py`.", ""]
    lines += defaults_section(results.get("defaults"))
    r = results.get("reduction")
    if r:
        lines += [
            "## Threshold + IoU reduction (512 units, 7x7, 112x112 labels, 4 planes)",
            "",
            "| measure | images/s | ratio |",
            "|---|---|---|",
            f"| pipeline, 2 cores ({r['images']} images) | {r['pipeline_images_per_s_2_cores']:.0f} | 1 |",
            f"| pipeline, 1 core | {r['pipeline_images_per_s_1_core']:.0f} | speedup 1 -> 2 cores: {r['speedup_1_to_2_cores']:.2f}x |",
            f"| per-image numpy baseline (same counts, 1 core) | {r['per_image_numpy_images_per_s']:.1f} | pipeline is {r['ratio_vs_per_image_numpy']:.1f}x |",
            f"| bare read of the stores, 2 cores | {r['bare_read_images_per_s_2_cores']:.0f} | |",
            f"| NetDissect-Lite tally (reference, measured once on the Intel machine of earlier sessions, not in this run) | 41 | pipeline is {r['ratio_vs_reference']:.1f}x |",
            "",
            "Per round (2 cores, images/s): "
            + ", ".join(f"{k} {v:.0f}" for k, v in r["round_images_per_s_2_cores"].items()),
            "",
        ]
    if "linearity" in results:
        lines += [
            "## Cost against images (2 cores)",
            "",
            "| images | seconds | per-image cost vs smallest |",
            "|---|---|---|",
        ]
        lines += [
            f"| {n} | {v['seconds']:.1f} | {v['per_image_vs_smallest']:.2f} |" for n, v in results["linearity"].items()
        ] + [""]
    if "memory_mb" in results:
        lines += ["## Peak RSS of a chunk job (thresholds round 1 + tally)", "", "| case | MB |", "|---|---|"]
        lines += [f"| {k} | {v:.0f} |" for k, v in results["memory_mb"].items()] + [""]
    if "storage" in results:
        s = results["storage"]
        lines += [
            "## Storage",
            "",
            f"- activation stores: {s['activation_bytes_vs_float64']:.3f} of float64 bytes",
            f"- label stores: {s['label_compression']:.1f}x smaller than raw uint16",
            "",
        ]
    if "activations" in results:
        a = results["activations"]
        lines += [
            "## Activation dumps (ResNet-18 layer4, 224-pixel PNGs, 2 cores)",
            "",
            f"- plain torch forward loop (the model as torchvision builds it): {a['plain_forward_images_per_s']:.1f} images/s",
            (
                "- bare forward loop, model prepared as the stage does (channels-last, batch norms folded): "
                f"{a['bare_forward_images_per_s']:.1f} images/s"
            ),
            (
                "- activation stage at the default settings (decode, forward, check, store; one single-threaded job "
                f"per core, each on half the images): {a['default_jobs_images_per_s']:.1f} images/s, "
                f"**{a['default_ratio']:.2f}** of the bare loop"
            ),
            (
                f"- one activation job on both cores (`activations.threads: 2`): {a['dump_images_per_s']:.1f} "
                f"images/s, {a['ratio']:.2f} of the bare loop"
            ),
            (
                "- the jobs are timed from the model's load to the stores' commit, in fresh processes with the jobs' "
                "allocator setting; the bare loop with that setting too: "
                f"{a['tuned_bare_forward_images_per_s']:.1f} images/s, the default jobs "
                f"{a['default_ratio_tuned']:.2f} of it"
            ),
            "",
        ]
    if "report" in results:
        r = results["report"]
        lines += [
            f"## Report of one layer ({r['units']} units, {r['top_images']} images per unit, {r['images']} images, 2 cores)",
            "",
            "| step | seconds | CPU seconds |",
            "|---|---|---|",
            (
                f"| top-k of every chunk (2 processes) | {r['top_k_chunks_seconds_2_cores']:.1f} | "
                f"{r['top_k_chunks_cpu_seconds']:.1f} |"
            ),
            f"| bare read of the same stores (2 processes), for comparison | {r['bare_read_seconds_2_cores']:.1f} | |",
            (
                f"| layer page: merge, maps of the {r['distinct_top_images']} distinct top images, outlines, strips, "
                f"figures, HTML | {r['layer_page_seconds']:.1f} | {r['layer_page_cpu_seconds']:.1f} |"
            ),
            f"| total | {r['total_seconds']:.1f} | |",
            "",
            f"Load average while measured: {r['load_average']:.1f} (other work shared the 2 cores).",
            "",
            f"The page's folder holds {r['page_megabytes']:.1f} MB (JPEG strips at 112x112 pixels per image).",
            "",
        ]
    if "e2e" in results:
        e = results["e2e"]
        lines += [
            f"## End to end ({e['images']} Broden-format images, ResNet-18 layer4, dataset labels, snakemake --cores 2)",
            "",
            f"NetDissect-Lite took {e['reference_seconds']} s on this kind of machine.",
            "",
            "| chunk_size | activations.autocast | seconds | faster than the reference |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['chunk_size']} | {r['autocast'] or 'none (float32)'} | {r['seconds']:.0f} | {r['ratio_vs_reference']:.2f}x |"
            for r in e["runs"]
        ] + [""]
    if "ablation" in results:
        a = results["ablation"]
        lines += [
            f"## Single-unit ablation sweeps ({a['images']} random 224-pixel images, random-init weights, 2 threads)",
            "",
            (
                "Unit-ablations per second of the sweep's tail against the naive loop (a full forward pass of every "
                "image for every unit). Whole layer: the naive loop's time for every unit against one pass to the "
                "layer plus the tail for every unit. Timed on the first "
                f"{a['runs'][0]['units_timed']['naive']} unit(s) (naive) and {a['runs'][0]['units_timed']['tail']} "
                "units (tail) of each layer."
            ),
            "",
            "| model | layer | units | tail | naive /s | tail /s | ratio per unit | ratio, whole layer | metrics identical |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['model']} | {r['layer']} | {r['units']} | {r['tail']} | {r['naive_unit_ablations_per_s']:.3f} | "
            f"{r['tail_unit_ablations_per_s']:.2f} | {r['per_unit_ratio']:.1f}x | {r['whole_layer_ratio']:.1f}x | "
            f"{r['identical_metrics']} |"
            for r in a["runs"]
        ] + [""]
    for key in ("first_run", "first_run_dissection"):
        if key not in results:
            continue
        f = results[key]
        busy = ", ".join(f"{rule} {s:.0f}" for rule, s in sorted(f["jobs"].items(), key=lambda kv: -kv[1])[:6])
        lines += [
            f"## First run (`{f.get('command', 'snakemake --cores 2')}` in a fresh clone, after the install)",
            "",
            (
                f"- {f['seconds']:.0f} s in all; a training job ran during {f['training_seconds']:.0f} s of it "
                f"({f['training_share']:.0%}); load average {f['load_before']:.2f} before it started"
            ),
            f"- job seconds per rule (summed over its jobs, the longest): {busy}",
            "- wall seconds during which a job of each later stage ran: "
            + ", ".join(f"{stage} {s:.0f} ({s / f['seconds']:.0%})" for stage, s in f.get("stage_seconds", {}).items()),
            (
                f"- classifier validation accuracy {f['classifier_val_accuracy']:.4f}; segmenter pixel accuracy "
                f"{f['segmenter_pixel_accuracy']:.4f}, mean IoU per category "
                + ", ".join(f"{c} {v:.4f}" for c, v in f["segmenter_mean_iou"].items())
            ),
            "",
        ]
    if "statistics" in results:
        s = results["statistics"]
        lines += [
            f"## Label statistics ({s['units']} units, {s['images']} images, {s['resamples']} resamples, 2 cores)",
            "",
            (
                f"- chunk jobs (2 processes) {s['chunk_jobs_seconds_2_cores']:.1f} s, the layer's job "
                f"{s['layer_job_seconds']:.1f} s: {s['total_seconds']:.1f} s in all"
            ),
            (
                f"- the layer's threshold rounds and tally on the same stores: "
                f"{s['threshold_and_tally_seconds_2_cores']:.1f} s; ratio {s['ratio_vs_threshold_and_tally']:.2f}"
            ),
            f"- load average while measured: {s['load_average']:.1f}",
            "",
        ]
    (ROOT / "benchmarks" / "RESULTS.md").write_text("\n".join(lines))
    (ROOT / "benchmarks" / "results.json").write_text(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument(
        "--only",
        choices=[
            "reduction",
            "linearity",
            "memory",
            "storage",
            "activations",
            "e2e",
            "defaults",
            "ablation",
            "first-run",
            "first-run-dissection",
            "report",
            "statistics",
        ],
        action="append",
    )
    parser.add_argument("--ablation-images", type=int, default=1000, help="images of the ablation benchmark")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), help="images of the defaults runs")
    parser.add_argument("--bare-loop", nargs=2, metavar=("WORLD", "LAYERS"), help=argparse.SUPPRESS)
    parser.add_argument("--tuned", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--render", action="store_true", help="rewrite RESULTS.md from results.json, running nothing")
    parser.add_argument("--ablation-units", type=int, nargs=2, default=[2, 64], help="units timed: naive, tail")
    args = parser.parse_args()
    if args.bare_loop:
        print(bare_forward(Path(args.bare_loop[0]), args.bare_loop[1].split(","), args.tuned))
        return
    if args.render:
        write_results(json.loads((ROOT / "benchmarks" / "results.json").read_text()))
        return
    chosen = args.only or ["reduction", "linearity", "memory", "storage", "activations", "report"]
    results: dict = {}
    if "reduction" in chosen:
        bench_reduction(args.images, results)
    if "linearity" in chosen:
        bench_linearity([1000, 2000, 4000, 8000], results)
    if "memory" in chosen:
        bench_memory(results)
    if "storage" in chosen:
        bench_storage(results)
    if "activations" in chosen:
        bench_activations(512, results)
    if "report" in chosen:
        bench_report(args.images, results)
    if "e2e" in chosen:
        bench_e2e(args.images, results)
    if "defaults" in chosen:
        bench_defaults(args.sizes, results)
    if "ablation" in chosen:
        bench_ablation(args.ablation_images, *args.ablation_units, results)
    if "statistics" in chosen:
        bench_statistics(1000, 1000, results)
    if "first-run" in chosen:
        bench_first_run(results)
    if "first-run-dissection" in chosen:
        bench_first_run(results, "first_run_dissection", FIRST_RUN_DISSECTION)
    print(json.dumps(results, indent=2))
    previous = ROOT / "benchmarks" / "results.json"
    merged = json.loads(previous.read_text()) if args.only and previous.exists() else {}
    write_results(merged | results)


if __name__ == "__main__":
    main()
