"""The scripts in examples/ run and do what they claim."""
import pytest
from helpers import EXAMPLES
from helpers import load_example as load


def test_custom_operator_deblurs(tmp_path, monkeypatch):
    """A user's own operator with CG, TV and the shipped priors (PnP-HQS, LPN, DDS), called without
    torch.no_grad as a user would: every method beats the blurred data, the learned denoiser beats TV."""
    import torch

    monkeypatch.syspath_prepend(str(EXAMPLES))  # the figure is the CT example's
    ex = load("custom_operator")
    out = tmp_path / "deblur.png"
    assert torch.is_grad_enabled()
    table = ex.run(size=64, sigma=1.5, noise=0.01, damp=0.1, nfe=10, out=str(out))
    blurred = table["blurred"]["psnr"]
    for name in ("CG (damped)", "TV", "PnP-HQS (DnCNN)", "PnP-ADMM (LPN)", "DDS (10 NFE)"):
        assert table[name]["psnr"] > blurred + 3.0, name
    assert table["PnP-HQS (DnCNN)"]["psnr"] > table["TV"]["psnr"] + 0.5
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="unknown wiener"):
        ex.run(size=16, methods="cg,wiener")


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


def test_ct_example_tv_beats_fbp(tmp_path):
    ex = load("ct_reconstruction")
    table = ex.run(size=48, views=24, noise=0.01, out=str(tmp_path / "ct.png"), methods="fbp,tv,pnp-admm")
    assert table["TV"]["psnr"] > table["FBP"]["psnr"] + 3.0
    assert table["PnP-ADMM (TV prox)"]["psnr"] > table["FBP"]["psnr"] + 3.0
    assert (tmp_path / "ct.png").read_bytes()[:4] == b"\x89PNG"


def test_mri_example_tv_beats_zero_filled(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))  # the MRI example reuses the CT example's figure
    ex = load("mri_reconstruction")
    table = ex.run(size=48, coils=4, acceleration=3.0, noise=0.005, out=str(tmp_path / "mri.png"),
                   methods="zero-filled,tv")
    assert table["TV"]["psnr"] > table["zero-filled"]["psnr"] + 3.0
    assert table["TV"]["ssim"] > table["zero-filled"]["ssim"]
    assert (tmp_path / "mri.png").exists()


def test_mri_example_dds_mean_and_uncertainty_figure(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    ex = load("mri_reconstruction")
    table = ex.run(size=32, coils=4, out=str(tmp_path / "mri.png"), methods="zero-filled,dds", nfe=5, samples=3)
    assert table["DDS (5 NFE, mean of 3)"]["psnr"] > table["zero-filled"]["psnr"]
    assert (tmp_path / "mri_uncertainty.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message without CUDA")
@pytest.mark.parametrize("name", ["ct_reconstruction", "mri_reconstruction"])
def test_examples_name_a_missing_cuda_device(name, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    with pytest.raises(ValueError, match="device: 'cuda' requested but no CUDA device"):
        load(name).run(size=16, device="cuda")


def test_psnr_and_ssim():
    import torch

    from sciml.metrics import psnr, ssim

    g = torch.Generator().manual_seed(0)
    ref = torch.rand(2, 32, 32, generator=g, dtype=torch.float64)
    noisy = ref + 0.1 * torch.randn(ref.shape, generator=g, dtype=torch.float64)
    mse = ((noisy - ref) ** 2).mean(dim=(-2, -1))
    torch.testing.assert_close(psnr(noisy, ref, 1.0), 10 * torch.log10(1.0 / mse))
    assert abs(float(psnr(noisy[0], ref[0], 1.0)) - 20.0) < 0.5  # sigma 0.1 on range 1: about 20 dB
    torch.testing.assert_close(ssim(ref, ref, 1.0), torch.ones(2, dtype=torch.float64))
    s_small = ssim(ref + 0.01 * torch.randn(ref.shape, generator=g, dtype=torch.float64), ref, 1.0)
    assert bool((ssim(noisy, ref, 1.0) < s_small).all()) and bool((s_small < 1).all())
    torch.testing.assert_close(ssim(noisy, ref, 1.0), ssim(ref, noisy, 1.0))
    assert bool(torch.isinf(psnr(ref * 1j, ref, 1.0)).all())  # complex inputs are compared in magnitude


def test_examples_run_dds_with_the_shipped_prior(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    mri = load("mri_reconstruction").run(size=128, coils=4, acceleration=3.0, noise=0.005, methods="zero-filled,dds",
                                          nfe=10, out=None)
    ct = load("ct_reconstruction").run(size=128, views=24, noise=0.01, image="mni152", methods="fbp,dds", nfe=10,
                                       out=None)
    # measured: MRI 21.95 vs 20.06 dB (heavy noise at this setting), CT 24.44 vs 18.32 dB
    assert mri["DDS (10 NFE)"]["psnr"] > mri["zero-filled"]["psnr"] + 1.0
    assert ct["DDS (10 NFE)"]["psnr"] > ct["FBP"]["psnr"] + 4.0


def test_examples_run_the_shipped_lpn():
    """The LPN rows (PnP-ADMM, clipped; CT datasets/mri/lpn_mni152_s10, MRI lpn_mni152) on the default held-out slice:
    measured CT 31.18 dB (FBP 23.70, TV 29.34) and MRI 27.25 dB (zero-filled 20.78, TV 24.77)."""
    ct = load("ct_reconstruction").run(image="mni152", methods="fbp,lpn", out=None)
    assert ct["PnP-ADMM (LPN)"]["psnr"] > ct["FBP"]["psnr"] + 4.0
    mri = load("mri_reconstruction").run(methods="zero-filled,lpn", out=None)
    assert mri["PnP-ADMM (LPN)"]["psnr"] > mri["zero-filled"]["psnr"] + 4.0
