"""chunk_size: auto: one chunk per job slot within bounds, remembered for the run's reruns."""

import json

import pytest

from netdissect.plan import AUTO_CHUNK_MAX, AUTO_CHUNK_MIN, Chunking, auto_chunk_size, chunk_ranges


@pytest.mark.parametrize(
    "images, slots, size",
    [
        (1001, 2, 501),  # one chunk per slot: no 1-image tail chunk as chunk_size 200 cut
        (800, 2, 400),
        (300, 2, 150),
        (150, 2, 150),  # two chunks would fall below AUTO_CHUNK_MIN
        (50, 4, 50),  # a small dataset is one chunk
        (10000, 2, 2500),  # four chunks of AUTO_CHUNK_MAX: two rounds of the two slots
        (10000, 3, 1667),  # 4 chunks needed, rounded up to whole rounds of 3 slots: 6
        (10000, 16, 625),
        (100000, 2, 2500),
    ],
)
def test_auto_chunk_sizes(images, slots, size):
    assert auto_chunk_size(images, slots) == size


@pytest.mark.parametrize("slots", [1, 2, 3, 8, 64])
def test_auto_chunks_respect_their_bounds_and_fill_the_slots(slots):
    for images in [1, 7, 99, 100, 101, 199, 200, 450, 999, 2501, 5000, 7501, 12345, 60000, 250000]:
        ranges = chunk_ranges(images, auto_chunk_size(images, slots))
        sizes = [b - a for a, b in ranges]
        assert ranges[0][0] == 0 and ranges[-1][1] == images and max(sizes) <= AUTO_CHUNK_MAX
        assert min(sizes) >= min(images, AUTO_CHUNK_MIN // 2)  # no tiny tail chunk
        assert len(ranges) >= min(slots, images // AUTO_CHUNK_MIN)  # every slot busy where there are images enough


def test_a_number_is_kept_and_auto_is_remembered_per_images_and_key(tmp_path):
    record = tmp_path / "run" / "chunking.json"
    assert Chunking(2, record).size(37, 1000, "dataset") == 37
    first = Chunking(2, record)
    assert first.size("auto", 1000, "dataset") == 500
    first.remember({"dataset": (1000, 500), "gan": (300, 150)})
    assert json.loads(record.read_text()) == {
        "dataset": {"chunk_size": 500, "images": 1000},
        "gan": {"chunk_size": 150, "images": 300},
    }
    later = Chunking(8, record)  # a rerun with other --cores keeps the chunks it made
    assert later.size("auto", 1000, "dataset") == 500 and later.size("auto", 300, "gan") == 150
    assert later.size("auto", 1200, "dataset") == 150  # other images: chosen afresh
    assert Chunking(8).size("auto", 1000, "dataset") == 125  # nothing recorded


@pytest.mark.workflow
def test_auto_chunks_follow_the_cores_and_are_kept_by_a_rerun_with_other_cores(workflow_factory):
    wf = workflow_factory(
        {
            "synthetic": {"val_images": 240},
            "chunk_size": "auto",
            "model": {"layers": ["conv4"]},
            "segmenter": {"kind": "dataset"},
        }
    )
    assert wf.dry_run_jobs("dissect")["activations"] == 2  # --cores 2: two chunks of 120
    assert not (wf.results / "chunking.json").exists()  # a dry run records nothing
    wf.run("dissect")
    assert json.loads((wf.results / "chunking.json").read_text()) == {"dataset": {"chunk_size": 120, "images": 240}}
    stores = sorted(p.name for p in (wf.results / "activations" / "conv4").iterdir())
    assert stores == ["0000000-0000120.zarr", "0000120-0000240.zarr"]
    assert wf.dry_run_jobs("dissect", "--cores", "1") == {}  # the chunks are kept: nothing to do
    fresh = workflow_factory(wf.config, name="fresh")
    assert fresh.dry_run_jobs("dissect", "--cores", "1")["activations"] == 1  # one slot, no record: one chunk
