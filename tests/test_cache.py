"""What runs share (results/cache): the keys of the synthetic world and of the networks trained here."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import merged
from test_config_errors import DEFAULT, SCHEMA, check

from netdissect.config import validate
from netdissect.plan import (
    CACHE,
    cache_key,
    classifier_params,
    dataset_root,
    make_plan,
    model_spec,
    native_bfloat16,
    segmenter_params,
    world_key,
)


def keys(override: dict) -> dict[str, str]:
    """The world's, the classifier's and the segmenter's cache keys of the defaults with an override."""
    cfg = validate(merged(DEFAULT, override), SCHEMA)
    return {
        "world": world_key(cfg),
        "classifier": cache_key(classifier_params(cfg)),
        "segmenter": cache_key(segmenter_params(cfg, make_plan(cfg).image_size)),
    }


BASE = keys({})


def changed(override: dict) -> set[str]:
    return {kind for kind, key in keys(override).items() if key != BASE[kind]}


def test_what_a_run_dissects_changes_no_key():
    dissection = {
        "run": "other",
        "model": {"layers": ["conv2"]},
        "quantile": 0.02,
        "union": "category",
        "iou_threshold": 0.1,
        "dataset": {"split": None, "size": 100},
        "chunk_size": 50,
        "batch_size": 8,
        "activations": {"autocast": "bfloat16"},
    }
    assert changed(dissection) == set()


@pytest.mark.parametrize(
    "override, expected",
    [
        ({"classifier": {"epochs": 3}}, {"classifier"}),
        ({"classifier": {"lr": 0.01}}, {"classifier"}),
        ({"segmenter": {"batch_size": 16}}, {"segmenter"}),
        ({"segmenter": {"epochs": 2}}, {"segmenter"}),
        ({"seed": 1}, {"world", "classifier", "segmenter"}),
        ({"synthetic": {"val_images": 100}}, {"world", "classifier", "segmenter"}),
        ({"dataset": {"resize": [32, 32]}}, {"classifier", "segmenter"}),
    ],
)
def test_a_changed_training_value_changes_its_key(override, expected):
    assert changed(override) == expected


def test_autocast_auto_is_the_precision_this_cpu_gets():
    native = "bfloat16" if native_bfloat16() else None
    assert classifier_params(validate(DEFAULT, SCHEMA))["autocast"] == native
    assert changed({"classifier": {"autocast": native}}) == set()
    other = None if native else "bfloat16"
    assert changed({"classifier": {"autocast": other}, "segmenter": {"autocast": other}}) == {"classifier", "segmenter"}


def test_cache_paths_differ_by_key_and_hold_the_world():
    other = keys({"seed": 5})
    assert CACHE.classifier(BASE["classifier"]) != CACHE.classifier(other["classifier"])
    assert CACHE.world(BASE["world"]).startswith("results/cache/world-")
    assert dataset_root(validate(DEFAULT, SCHEMA)) == Path(CACHE.world(BASE["world"]))


def test_the_model_digest_does_not_depend_on_the_dissected_split():
    digests = {model_spec(validate(merged(DEFAULT, {"dataset": {"split": s}}), SCHEMA)).digest for s in ("val", None)}
    assert len(digests) == 1


def test_no_run_may_be_called_cache():
    assert "run" in check({"run": "cache"})


def test_native_bfloat16_reads_the_cpu_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f amx_bf16 amx_tile\n")
    assert native_bfloat16(cpuinfo)
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert native_bfloat16(cpuinfo)
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16x\n")
    assert not native_bfloat16(cpuinfo)
    assert not native_bfloat16(tmp_path / "missing")
