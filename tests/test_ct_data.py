"""The shipped real CT slices (datasets/ct/ct_slices.h5) load, look like CT, and the CT example runs on them."""
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import load_example

ROOT = Path(__file__).resolve().parents[1]
CT_SLICES = ROOT / "datasets" / "ct" / "ct_slices.h5"


def test_ct_slices_file():
    assert CT_SLICES.stat().st_size < 300_000
    with h5py.File(CT_SLICES, "r") as f:
        images = f["images"][:]
        sources = [s.decode() if isinstance(s, bytes) else s for s in f["source"][:]]
        windows = f["window_hu"][:]
        assert "licence" in f.attrs and "recipe" in f.attrs
    assert images.shape == (1, 128, 128) and images.dtype == np.float32
    assert len(sources) == 1 and "CT_small.dcm" in sources[0]
    assert windows.shape == (1, 2) and bool((windows[:, 1] > windows[:, 0]).all())
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    for img in images:
        assert float(img.std()) > 0.05          # not constant
        assert float(img.max()) > 0.8           # bone reaches the top of the window
        body = float((img > 0.05).mean())       # measured: 0.69 (the field of view is inside the body)
        assert 0.15 < body < 0.9


def test_load_image_reads_ct_slices():
    from sciml.problems.imaging import load_image

    img = load_image(CT_SLICES, 64, index=0)
    assert tuple(img.shape) == (64, 64) and float(img.min()) >= 0.0 and float(img.max()) <= 1.0
    with pytest.raises(IndexError):
        load_image(CT_SLICES, 64, index=1)


def test_ct_example_tv_beats_fbp_on_real_ct():
    ex = load_example("ct_reconstruction")
    table = ex.run(image="ct", index=0, methods=("fbp", "tv"), size=64, views=60, out=None)
    # measured at 64x64, 60 views, noise 0.01 (seeds 0-2): TV 35.3-35.4 vs FBP 32.9 dB (+2.4)
    assert table["TV"]["psnr"] > table["FBP"]["psnr"] + 1.5
    assert table["TV"]["ssim"] > table["FBP"]["ssim"]


def test_ct_example_default_call_returns_scores():
    table = load_example("ct_reconstruction").run(image="ct", methods=("fbp", "tv"), size=64, out=None)
    assert set(table) == {"FBP", "TV"}
    assert all(np.isfinite(v["psnr"]) and 0 < v["ssim"] <= 1 for v in table.values())
