"""The scripts in examples/ run and do what they claim."""
import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_custom_operator_deblurs(tmp_path):
    ex = load("custom_operator")
    out = tmp_path / "deblur.png"
    result = ex.run(size=64, sigma=1.5, noise=0.01, damp=0.1, out=str(out))
    assert result["converged"]
    # Damped least squares must beat the blurred, noisy data by a clear margin.
    assert result["psnr_deblurred"] > result["psnr_blurred"] + 1.0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_custom_blur_is_self_adjoint_and_matches_direct_convolution():
    import torch

    import sciml

    ex = load("custom_operator")
    A = ex.PeriodicBlur((16, 16), sigma=1.0)
    assert sciml.operators.check_adjoint(A) < 1e-13
    # A applied to a delta is the periodised Gaussian, normalised to unit mass.
    delta = torch.zeros(16, 16, dtype=torch.float64)
    delta[0, 0] = 1
    psf = A @ delta
    assert psf.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert psf[0, 1].item() == pytest.approx(psf[1, 0].item(), rel=1e-6)  # isotropic
