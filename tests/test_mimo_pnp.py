"""examples/mimo_pnp.py: the paper's constrained magnitude-regularised reconstruction (C-SALSA with the
magnitude prox) on near-field MIMO data beats backprojection, and the example's pieces behave."""
import math

import pytest
import torch
from helpers import load_example

from sciml.solvers.variational import magnitude_prox


def test_magnitude_priors_beat_backprojection():
    ex = load_example("mimo_pnp")
    table = ex.run((10, 10, 14), 6, 30.0, 0, methods=("backprojection", "l1", "pnp", "pnp3d"))
    bp = table["backprojection"]["psnr"]
    # measured at this size (seeds 0-2): backprojection 14.7-20.1 dB, l1 +20.8-41.2 dB, PnP +14.6-15.6 dB,
    # PnP with the 3-D radar denoiser +27.3-31.9 dB
    assert table["l1 on |x| (C-SALSA)"]["psnr"] > bp + 15
    assert table["PnP, DnCNN on |x| (C-SALSA)"]["psnr"] > bp + 10
    assert table["PnP, 3-D radar DnCNN (C-SALSA)"]["psnr"] > bp + 20


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
    out = ex.slicewise(fake, 0.1, axes=(2,))(m)
    assert seen == [((10, 8, 8), 1.0, 0.1)] and torch.allclose(out, m)
    seen.clear()
    assert torch.allclose(ex.slicewise(fake, 0.1, axes=(0, 1, 2))(m), m)  # x-, y- and z-slices, averaged
    assert [s[0] for s in seen] == [(8, 8, 10), (8, 8, 10), (10, 8, 8)]
    # the example's denoiser on the magnitude, as the solver wraps it: the phase of the input is kept
    D = magnitude_prox(ex.debiased(ex.slicewise(fake, 0.1), 0.2))
    out = D(truth)
    kept = out.abs() > 0
    assert kept.any() and torch.allclose(out[kept] / out[kept].abs(), truth[kept] / truth[kept].abs())
    assert torch.allclose(out.abs(), (m - 0.2 * m.max()).clamp_min(0))  # soft threshold of 0.2 x max first
    assert ex.magnitude_psnr(truth * 2, truth) > 100  # scale-invariant metric
