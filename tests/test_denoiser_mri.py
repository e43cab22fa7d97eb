"""The shipped MNI152 slices and the noise-conditioned DnCNN trained on them (datasets/mri/)."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers import BENCHMARKS, load_example

import sciml
from sciml import models
from sciml.metrics import psnr
from sciml.models.denoisers import SigmaSchedule, phase_constrained
from sciml.operators.mri import calibration_phase
from sciml.operators.mri import zero_filled

MRI = Path(__file__).resolve().parents[1] / "datasets" / "mri"
DATA = MRI / "mni152_slices.h5"
DENOISER = MRI / "dncnn_mni152"


@pytest.fixture(scope="module")
def denoiser():
    return models.load(DENOISER)


def test_slices_file_shape_range_and_attributes():
    assert DATA.stat().st_size < 3e6
    with h5py.File(DATA, "r") as f:
        images = f["images"][:]
        train, test = f["train_index"][:], f["test_index"][:]
        attrs = dict(f.attrs)
    assert images.shape == (40, 128, 128) and images.dtype == np.float32
    assert images.min() >= 0.0 and 0.5 < images.max() <= 1.0
    assert (images.reshape(40, -1) > 0.1).mean(axis=1).min() > 0.005  # every slice holds some brain (the top one 0.9 %)
    k = np.arange(40)
    np.testing.assert_array_equal(test, k[k % 4 == 3])
    np.testing.assert_array_equal(train, k[k % 4 != 3])
    assert "ICBM152" in attrs["source"] and "Louis Collins" in attrs["licence"]
    np.testing.assert_array_equal(attrs["z_slices"], np.arange(36, 154, 3))
    assert json.loads(attrs["split"])["test"] == test.tolist()
    np.testing.assert_allclose(attrs["pixel_size_mm"], [1.5, 1.5])


def test_denoiser_loads_from_registry_and_is_small(denoiser):
    assert isinstance(denoiser, models.SigmaDnCNN) and not denoiser.training
    assert models.read_config(DENOISER)["class"] == "dncnn-sigma"
    assert (DENOISER / "model.safetensors").stat().st_size < 3e6
    assert sum(p.numel() for p in denoiser.parameters()) < 500_000


def _test_slice(i: int) -> torch.Tensor:
    with h5py.File(DATA, "r") as f:
        return torch.from_numpy(f["images"][int(f["test_index"][i])])


def test_denoiser_improves_psnr_on_held_out_slice(denoiser):
    clean = _test_slice(2)[None, None]
    sigma = 25 / 255
    noisy = clean + sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        out = denoiser(noisy, sigma)
    gain = float(psnr(out, clean, 1.0) - psnr(noisy, clean, 1.0))
    # measured 10.6 dB (20.14 -> 30.71 dB; 2-core CPU, torch 2.13); 2.6 dB of slack
    assert gain > 8.0, gain


def test_output_shape_dtype_and_complex_magnitude(denoiser):
    x = torch.rand(2, 1, 24, 24)
    with torch.inference_mode():
        y = denoiser(x, torch.tensor([0.05, 0.1]))
        assert y.shape == x.shape and y.dtype == torch.float32
        y2 = denoiser(x[0, 0].double(), 0.05)  # (H, W), float64 in and out
        assert y2.shape == (24, 24) and y2.dtype == torch.float64
        torch.testing.assert_close(y2.float(), y[0, 0], rtol=0, atol=1e-5)
        z = torch.polar(x[0, 0], torch.full((24, 24), 0.7))
        yz = denoiser(z, 0.05)  # complex: the magnitude is denoised, the phase kept
        assert yz.dtype == torch.complex64
        torch.testing.assert_close(yz.abs(), y[0, 0], rtol=0, atol=1e-5)
        torch.testing.assert_close(yz.angle(), z.angle(), rtol=0, atol=1e-5)


def test_bad_inputs_give_clear_errors(denoiser):
    with pytest.raises(ValueError, match="expected 1 channel"):
        denoiser(torch.rand(1, 3, 16, 16), 0.1)
    with pytest.raises(ValueError, match="sigma is required"):
        denoiser(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="does not broadcast"):
        denoiser(torch.rand(2, 1, 16, 16), torch.rand(3))
    with pytest.raises(ValueError, match="channels must be"):
        models.build_model("dncnn-sigma", channels=0)
    with pytest.raises(ValueError, match="centre column"):
        calibration_phase(torch.ones(2, 8, 8, dtype=torch.complex128), torch.zeros(8, 8), torch.ones(2, 8, 8))


def test_sigma_schedule_anneals_geometrically():
    seen = []
    D = SigmaSchedule(lambda x, s: seen.append(s) or x, 0.2, 0.02, 3)
    for _ in range(4):
        D(torch.zeros(1), None)
    np.testing.assert_allclose(seen, [0.2, 0.2 * 0.1**0.5, 0.02, 0.02])


def test_patch_dataset_is_deterministic():
    ds = sciml.data.build_dataset({"kind": "image-patches-hdf5", "path": str(DATA), "index": "train_index",
                                   "size": 8, "patch": 32}, split="train")
    a, b = ds[5], ds[5]
    assert a["clean"].shape == (1, 32, 32) and 0 <= float(a["sigma"]) <= 50 / 255 + 1e-6
    torch.testing.assert_close(a["noisy"], b["noisy"])
    val = sciml.data.build_dataset({"kind": "image-patches-hdf5", "path": str(DATA), "index": "test_index",
                                    "size": 8, "patch": 32}, split="val")
    assert not torch.equal(val[5]["noisy"], a["noisy"])


def test_patch_gain_scales_the_clean_patch_only():
    spec = {"kind": "image-patches-hdf5", "path": str(DATA), "index": "train_index", "size": 8, "patch": 32,
            "sigma_min": 0.1, "sigma_max": 0.1}
    plain = sciml.data.build_dataset(spec, split="train")[3]
    doubled = sciml.data.build_dataset({**spec, "gain": [2.0, 2.0]}, split="train")[3]
    torch.testing.assert_close(doubled["clean"], 2 * plain["clean"])
    # the same noise, not scaled with the image
    torch.testing.assert_close(doubled["noisy"] - doubled["clean"], plain["noisy"] - plain["clean"])
    ranged = sciml.data.build_dataset({**spec, "gain": [0.5, 1.5]}, split="train")
    ratios = [float(ranged[i]["clean"].sum() / sciml.data.build_dataset(spec, split="train")[i]["clean"].sum())
              for i in range(8)]
    assert all(0.5 <= r <= 1.5 for r in ratios) and max(ratios) - min(ratios) > 0.1
    for bad in ([0.0, 1.0], [1.5, 1.0], 2.0):
        with pytest.raises(ValueError, match="gain"):
            sciml.data.build_dataset({**spec, "gain": bad}, split="train")


def test_patch_random_phase_keeps_the_magnitude_and_is_smooth():
    spec = {"kind": "image-patches-hdf5", "path": str(DATA), "index": "train_index", "size": 8, "patch": 32,
            "sigma_min": 0.1, "sigma_max": 0.1}
    plain = sciml.data.build_dataset(spec, split="train")
    slope, curvature = 0.05, 2e-4
    cplx = sciml.data.build_dataset({**spec, "phase_slope": slope, "phase_curvature": curvature}, split="train")
    for i in range(8):
        a, b = plain[i], cplx[i]
        assert b["clean"].shape == b["noisy"].shape == (2, 32, 32)
        z = torch.complex(b["clean"][0], b["clean"][1])
        torch.testing.assert_close(z.abs(), a["clean"][0], atol=1e-6, rtol=1e-6)  # the same patch, only rotated
        # the real channel's noise is the real patch's noise; the imaginary one is new noise of the same level
        torch.testing.assert_close(b["noisy"][0] - b["clean"][0], a["noisy"][0] - a["clean"][0])
        assert 0.07 < float((b["noisy"][1] - b["clean"][1]).std()) < 0.13
        # phase steps between neighbours: at most the slope plus the curvature term (|u| <= 15.5 px)
        w = z / z.abs().clamp_min(1e-12)
        on = a["clean"][0] > 0.05
        step = (w[:, 1:] * w[:, :-1].conj()).angle().abs()[on[:, 1:] & on[:, :-1]]
        assert float(step.max()) <= slope + curvature * 2 * 16 + 1e-5
    phases = [float(torch.atan2(cplx[i]["clean"][1], cplx[i]["clean"][0])[16, 16]) for i in range(8)
              if plain[i]["clean"][0, 16, 16] > 0.05]
    assert max(phases) - min(phases) > 1.0  # a random constant phase per patch
    for bad in ({"phase_slope": -0.1}, {"phase_slope": True}, {"phase_curvature": 1e-4}):
        with pytest.raises(ValueError, match="phase_"):
            sciml.data.build_dataset({**spec, **bad}, split="train")


def _benchmark():
    return load_example("pnp_vs_tv_mri", BENCHMARKS)


def test_pnp_with_shipped_denoiser_beats_zero_filled(denoiser):
    image = _test_slice(3).double()
    truth, A, y = _benchmark().simulate(image, coils=8, acceleration=4.0, noise=0.01, seed=3)
    zf = zero_filled(y, A.sensitivities)
    phase = calibration_phase(y, A.mask, A.sensitivities)

    def gain(refresh=None):
        with torch.inference_mode():
            D = phase_constrained(SigmaSchedule(denoiser, 50 / 255, 4 / 255, 15), phase, refresh=refresh)
            x = sciml.solve(sciml.InverseProblem(A, y), "pnp-hqs", denoiser=D, rho=0.1, maxiter=15, rtol=0.0, x0=zf).x
        return float(psnr(x.abs(), image, 1.0) - psnr(zf.abs(), image, 1.0))

    fixed, refreshed = gain(), gain(refresh=4.0)
    # measured 7.4 dB over zero-filled (15 PnP-HQS iterations, 128 x 128, 8 coils, 4x); 2.4 dB of slack
    assert fixed > 5.0, fixed
    # the phase re-estimated every iteration from the image smoothed over 4 pixels: measured 9.2 dB (+1.9)
    assert refreshed > fixed + 1.0, (fixed, refreshed)
