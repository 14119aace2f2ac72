"""Bad data and bad numbers: each is rejected naming the file, layer or image, or handled and recorded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import zarr
from PIL import Image
from test_planted import PLANTED_MODEL, planted_model, write_broden

pytestmark = pytest.mark.workflow

NAN_MODEL = (
    PLANTED_MODEL
    + '''

class Scaled(Indicators):
    """Unit 0 is multiplied by ``value`` (NaN, or huge) on images whose top-left pixel is red."""

    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, x):
        out = super().forward(x)
        flag = (x[:, 0, 0, 0] > 0.5).view(-1, 1, 1, 1)
        return torch.where(flag & (torch.arange(3).view(1, 3, 1, 1) == 0), out * self.value, out)


def faulty(value):
    model = Planted()
    model.units = Scaled(value)
    return model
'''
)


def config(root, model_file, factory="planted", **extra):
    model = planted_model(model_file, factory)
    model.update(extra.pop("model", {}))
    return {
        "dataset": {"kind": "broden", "root": str(root), "split": None, **extra.pop("dataset", {})},
        "model": model,
        "segmenter": {"kind": "dataset"},
        "quantile": 16 / 256,
        "chunk_size": 12,
        **extra,
    }


@pytest.fixture
def broden(tmp_path):
    root = tmp_path / "broden"
    write_broden(root)
    model_file = tmp_path / "planted.py"
    model_file.write_text(NAN_MODEL)
    return root, model_file


def test_corrupt_image_is_named_or_skipped_and_recorded(workflow_factory, broden):
    root, model_file = broden
    (root / "images" / "5.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    wf = workflow_factory(config(root, model_file))
    proc = wf.run(check=False)
    assert proc.returncode != 0 and "5.png" in proc.stderr and "skip_bad_images" in proc.stderr

    wf = workflow_factory(config(root, model_file, dataset={"skip_bad_images": True}), name="skip")
    wf.run()
    store = zarr.open_group(str(wf.results / "activations" / "units" / "0000000-0000012.zarr"), mode="r")
    assert [s["row"] for s in store.attrs["skipped"]] == [5]
    assert 5 not in store["rows"][:].tolist() and store["activations"].shape[0] == 11
    tally = zarr.open_group(str(wf.results / "dissect" / "units" / "tally.zarr"), mode="r")
    assert tally.attrs["images"] == 23
    units = pd.read_csv(wf.results / "dissect" / "units" / "units.csv", keep_default_na=False)
    assert list(units["label"][:2]) == ["square", "paint"]


def test_missing_file_and_wrong_label_size_are_named(workflow_factory, broden):
    root, model_file = broden
    (root / "images" / "7_obj.png").unlink()
    proc = workflow_factory(config(root, model_file)).run("-n", check=False)
    assert proc.returncode != 0 and "7_obj.png is missing" in proc.stderr
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(root / "images" / "7_obj.png")
    proc = workflow_factory(config(root, model_file), name="size").run(check=False)
    assert proc.returncode != 0 and "7_obj.png" in proc.stderr and "10x10" in proc.stderr


def test_nan_activations_name_layer_and_image(workflow_factory, broden):
    root, model_file = broden
    image = np.array(Image.open(root / "images" / "4.png"))
    image[0, 0] = (255, 0, 0)
    Image.fromarray(image).save(root / "images" / "4.png")
    wf = workflow_factory(config(root, model_file, factory="faulty", model={"factory_args": {"value": float("nan")}}))
    proc = wf.run(check=False)
    assert (
        proc.returncode != 0 and "layer 'units' produced NaN or infinite activations for dataset row 4" in proc.stderr
    )


def test_float16_overflow_is_refused_and_float32_works(workflow_factory, broden):
    root, model_file = broden
    image = np.array(Image.open(root / "images" / "4.png"))
    image[0, 0] = (255, 0, 0)
    Image.fromarray(image).save(root / "images" / "4.png")
    huge = config(root, model_file, factory="faulty", model={"factory_args": {"value": 1e6}})
    proc = workflow_factory(huge).run(check=False)
    assert (
        proc.returncode != 0
        and "beyond the float16 range" in proc.stderr
        and "activations.dtype: float32" in proc.stderr
    )
    wf = workflow_factory({**huge, "activations": {"dtype": "float32"}}, name="f32")
    wf.run()
    store = zarr.open_group(str(wf.results / "activations" / "units" / "0000000-0000012.zarr"), mode="r")
    assert store["activations"].dtype == np.float32 and store["activations"][:].max() > 1e5


def test_empty_selection_is_refused(workflow_factory, broden):
    root, model_file = broden
    proc = workflow_factory(config(root, model_file, dataset={"split": "test"})).run("-n", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"{root / 'index.csv'}: no rows in split 'test'; available splits: 'train', 'val'" in proc.stderr
