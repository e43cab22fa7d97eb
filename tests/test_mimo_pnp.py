"""examples/mimo_pnp.py: the paper's constrained magnitude-regularised reconstruction (C-SALSA with the
magnitude prox) on near-field MIMO data beats backprojection, and the example's pieces behave."""
import math

import pytest
import torch
from helpers import load_example


def test_l1_on_the_magnitude_beats_backprojection():
    ex = load_example("mimo_pnp")
    table = ex.run((10, 10, 14), 6, 30.0, 0, methods=("backprojection", "l1"))
    # measured at this size (seeds 0-2): backprojection 17.7-19.0 dB, l1 50.5-55.2 dB
    assert table["l1 on |x| (C-SALSA)"]["psnr"] > table["backprojection"]["psnr"] + 20


def test_scene_data_and_slicewise_denoiser():
    ex = load_example("mimo_pnp")
    a, b = ex.scene((8, 8, 10), 3), ex.scene((8, 8, 10), 3)
    assert torch.equal(a, b) and a.is_complex() and 0 < float(a.abs().max()) <= 1
    A, truth, y, eps = ex.simulate((8, 8, 10), 4, 30.0, 0)
    noise = y - A @ truth
    assert y.shape == (4, 12, 13)
    assert eps == pytest.approx(float(noise.norm()), rel=0.15)  # eps = sqrt(noise variance x measurements)
    snr = 10 * math.log10(float((A @ truth).abs().pow(2).sum()) / float(noise.abs().pow(2).sum()))
    assert snr == pytest.approx(30.0, abs=1.0)
    seen = []

    def fake(x, sigma):  # records the (nz, nx, ny) max-scaled slices the 2-D denoiser sees
        seen.append((tuple(x.shape), float(x.max()), sigma))
        return x

    m = truth.abs()
    out = ex.slicewise(fake, 0.1)(m)
    assert seen == [((10, 8, 8), 1.0, 0.1)] and torch.allclose(out, m)
    assert ex.magnitude_psnr(truth * 2, truth) > 100  # scale-invariant metric
