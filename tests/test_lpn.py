"""Learned proximal networks: convexity of psi, prox = gradient of a convex function, prox inversion,
the 1-D Laplacian toy of the paper, and use as a PnP denoiser."""
import pytest
import torch

import sciml
from sciml.models import build_model, load, save
from sciml.models.lpn import LPN, laplace_denoising_batch, proximal_matching, proximal_matching_loss, regularizer
from sciml.operators import aslinearoperator
from sciml.training.losses import LOSSES, make_loss

DT = torch.float64


def random_lpn(n=5, seed=0, **kw):
    torch.manual_seed(seed)
    m = LPN(n, hidden=16, depth=3, beta=2.0, alpha=0.1, init_scale=1.0, **kw).double()
    with torch.no_grad():  # random signs everywhere; the forward's clamp / project_ must still give convexity
        for p in m.parameters():
            p.normal_(0, 0.5)
    return m.eval()


def test_registered_and_checkpoint(tmp_path):
    m = build_model("lpn", in_features=4, hidden=8, depth=2, alpha=0.5)
    assert isinstance(m, LPN) and "proximal-matching" in LOSSES and LOSSES["proximal-matching"].objective
    save(m, tmp_path / "lpn")
    m2 = load(tmp_path / "lpn")
    x = torch.randn(3, 4)
    assert torch.allclose(m(x), m2(x), atol=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        LPN(4, alpha=-1.0)


@pytest.mark.parametrize("project", [False, True])
def test_prox_is_gradient_of_convex(project):
    m = random_lpn()
    if project:
        m.project_()
        assert all((lin.weight >= 0).all() for lin in m.constrained())
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(5, dtype=DT, generator=g)
        J = torch.autograd.functional.jacobian(lambda v: m(v.unsqueeze(0)).squeeze(0), x)
        assert torch.allclose(J, J.T, atol=1e-6)
        assert float(torch.linalg.eigvalsh(0.5 * (J + J.T)).min()) >= 0.1 - 1e-6  # >= alpha (strong convexity)
    # f = grad psi, and psi is convex along random segments (midpoint inequality)
    a, b = torch.randn(200, 5, dtype=DT, generator=g) * 3, torch.randn(200, 5, dtype=DT, generator=g) * 3
    assert (m.psi(0.5 * (a + b)) <= 0.5 * (m.psi(a) + m.psi(b)) + 1e-10).all()
    x = torch.randn(4, 5, dtype=DT, generator=g, requires_grad=True)
    (gr,) = torch.autograd.grad(m.psi(x).sum(), x)
    assert torch.allclose(m(x.detach()), gr)


def test_image_shapes_and_grad_modes():
    m = LPN(16, hidden=8, depth=1)
    x = torch.randn(2, 1, 4, 4)
    assert m(x).shape == x.shape and m.psi(x).shape == (2,)
    m.eval()
    assert not m(x).requires_grad  # eval on plain tensors: detached
    m.train()
    assert m(x).requires_grad  # training: create_graph for double backprop
    with pytest.raises(ValueError, match="in_features"):
        m.psi(torch.randn(2, 5))


def test_regularizer_inverts_prox():
    m = random_lpn(seed=3)
    x = torch.randn(6, 5, dtype=DT, generator=torch.Generator().manual_seed(2))
    R, y, res = regularizer(m, x, return_inverse=True)
    assert R.shape == (6,) and float(res.max()) < 1e-6
    assert float((m(y) - x).abs().max()) < 1e-6
    # R = psi*(x) - |x|^2/2 and f = prox_R: y = f^{-1}(x) minimises psi(.) - <x, .>; check the Fenchel value
    assert torch.allclose(R, (x * y).sum(-1) - m.psi(y) - 0.5 * (x * x).sum(-1))


def test_proximal_matching_loss_schedule():
    m = LPN(1, hidden=8, depth=1, init_scale=1.0)
    b = laplace_denoising_batch(64, generator=torch.Generator().manual_seed(0))
    loss = make_loss("proximal-matching", l1_steps=2, gamma_min=0.5, stages=2, stage_steps=1)
    l1 = loss(m, b)
    assert torch.allclose(l1, (m(b["y"]) - b["x"]).abs().mean())
    loss(m, b)
    pm = loss(m, b)  # step 2: PM with gamma = 2 * 0.5
    assert torch.allclose(pm, proximal_matching_loss(m(b["y"]), b["x"], 1.0))
    assert m._pm_step == 3 and 0 <= float(pm.detach()) <= 1
    d = torch.tensor([[3.0, 4.0]])
    assert float(proximal_matching_loss(d, torch.zeros(1, 2), 5.0)) == pytest.approx(1 - torch.e ** -1)


def test_laplacian_toy_recovers_abs():
    """Paper's 1-D toy (x ~ Laplace(0,1), y = x + N(0,1)): the MAP prox is soft-thresholding at 1 and
    R(x) = |x|. 200 L1 warm-up + 200 proximal-matching steps (gamma 1, 0.5, 0.25), ~2 s on CPU.
    Measured (seed 0): corr(R, |x|) on [-2, 2] = 0.981, least-squares fit R ~ 0.845|x| - 0.535."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    m = LPN(1, hidden=32, depth=2, beta=10.0, alpha=0.01, init_scale=1.0)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for _ in range(400):
        loss = proximal_matching(m, laplace_denoising_batch(1000, generator=g), l1_steps=200, gamma_min=0.25,
                                 stages=3, stage_steps=66)
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.project_().eval().double()
    xs = torch.linspace(-2, 2, 41, dtype=DT).unsqueeze(1)
    R, _, res = regularizer(m, xs, return_inverse=True)
    assert float(res.max()) < 1e-6
    a = xs.squeeze(1).abs()
    corr = float(torch.corrcoef(torch.stack([R, a]))[0, 1])
    assert corr > 0.95
    A = torch.stack([a, torch.ones_like(a)], 1)
    scale = float(torch.linalg.lstsq(A, R.unsqueeze(1)).solution[0, 0])
    assert 0.5 < scale < 1.5
    # the prox shrinks towards 0 more for small |y| than for large |y| (soft-threshold shape)
    f = m(torch.tensor([[0.5], [3.0]], dtype=DT)).squeeze(1)
    assert abs(float(f[0])) < 0.3 and float(f[1]) > 1.5


def test_lpn_as_pnp_admm_denoiser():
    g = torch.Generator().manual_seed(0)
    M = torch.randn(8, 6, dtype=DT, generator=g)
    y = M @ torch.randn(6, dtype=DT, generator=g)
    torch.manual_seed(0)
    m = LPN(6, hidden=8, depth=2, alpha=1.0, init_scale=0.1).double().eval()
    sol = sciml.solve(sciml.InverseProblem(aslinearoperator(M), y), "pnp-admm", denoiser=m, rho=1.0,
                      maxiter=300, rtol=1e-8)
    assert sol.x.shape == (6,) and torch.isfinite(sol.x).all()
    last = float(sol.residuals[-1])
    assert sol.converged == (last <= 1e-8)
    assert sol.converged, sol.summary()


def test_lpn_trains_from_config_through_the_shared_trainer(tmp_path):
    """configs/lpn-laplace.toml: the learned regulariser of the 1-D Laplace toy tracks |x|."""
    from pathlib import Path

    import sciml.training
    from sciml.models import load

    config = Path(__file__).resolve().parents[1] / "configs" / "lpn-laplace.toml"
    sciml.training.train(config, run_dir=tmp_path / "run")
    model = load(tmp_path / "run" / "model").double()
    x = torch.linspace(-2, 2, 41, dtype=torch.float64).unsqueeze(-1)
    R = regularizer(model, x).detach().reshape(-1)
    corr = torch.corrcoef(torch.stack([R, x.abs().reshape(-1)]))[0, 1]
    assert float(corr) > 0.95  # measured 0.994


# --- the convolutional LPN ----------------------------------------------------------------------
def random_conv_lpn(seed=0, **kw):
    from sciml.models.lpn import ConvLPN

    torch.manual_seed(seed)
    m = ConvLPN(hidden=6, strides=(1, 2), features=4, beta=3.0, alpha=0.1, init_scale=1.0, **kw).double()
    with torch.no_grad():  # random signs everywhere; the forward's clamp must still give convexity
        for p in m.parameters():
            p.normal_(0, 0.5)
    return m.eval()


def test_conv_lpn_is_an_exact_prox_on_any_image_size():
    m = random_conv_lpn()
    g = torch.Generator().manual_seed(0)
    for shape in [(1, 1, 6, 6), (1, 1, 5, 7)]:  # odd sizes too: the network is fully convolutional
        x = torch.randn(shape, dtype=DT, generator=g)
        n = x.numel()
        J = torch.autograd.functional.jacobian(lambda v: m(v.reshape(shape)).reshape(-1), x.reshape(-1))
        assert J.shape == (n, n)
        assert torch.allclose(J, J.T, atol=1e-8)  # the Jacobian of a gradient is symmetric ...
        assert float(torch.linalg.eigvalsh(0.5 * (J + J.T)).min()) >= 0.1 - 1e-8  # ... and >= alpha I
    a, b = torch.randn(50, 1, 8, 8, dtype=DT, generator=g) * 2, torch.randn(50, 1, 8, 8, dtype=DT, generator=g) * 2
    assert (m.psi(0.5 * (a + b)) <= 0.5 * (m.psi(a) + m.psi(b)) + 1e-9).all()
    # shapes: (H, W), (B, H, W), (B, 1, H, W); psi per image; complex: the magnitude prox
    x = torch.rand(3, 8, 8, dtype=DT, generator=g) + 0.1
    assert m(x[0]).shape == (8, 8) and m(x).shape == (3, 8, 8) and m.psi(x).shape == (3,) and m.psi(x[0]).shape == ()
    assert torch.allclose(m(x[:, None])[:, 0], m(x))
    z = x * torch.exp(1j * torch.rand(3, 8, 8, dtype=DT, generator=g))
    assert torch.allclose(m(z), torch.polar(m(x), z.angle()))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        m(torch.randn(2, 3, 8, 8, dtype=DT))
    with pytest.raises(ValueError, match="strides"):
        from sciml.models.lpn import ConvLPN

        ConvLPN(strides=(1, 3))


def test_conv_lpn_regularizer_and_checkpoint(tmp_path):
    m = random_conv_lpn(seed=2)
    x = torch.rand(2, 1, 6, 6, dtype=DT, generator=torch.Generator().manual_seed(1))
    R, y, res = regularizer(m, x, return_inverse=True)
    assert R.shape == (2,) and float(res.max()) < 1e-6
    assert float((m(y) - x).abs().max()) < 1e-6
    m32 = build_model("lpn-conv", hidden=4, strides=[2], features=3)
    save(m32, tmp_path / "lpn")
    x = torch.rand(2, 1, 8, 8)
    assert torch.allclose(load(tmp_path / "lpn")(x), m32(x), atol=1e-6)


def test_proximal_matching_step_survives_resume(tmp_path):
    """The L1 -> matching schedule is counted by the model; a resumed run continues it."""
    from sciml.training import Trainer, load_config

    cfg = tmp_path / "c.toml"
    cfg.write_text('[model]\nname = "lpn"\nin_features = 1\nhidden = 4\ndepth = 1\ninit_scale = 1.0\n'
                   '[data]\nkind = "laplace-denoising"\nsize = 64\n[loss]\nname = "proximal-matching"\nl1_steps = 3\n'
                   '[train]\nsteps = 4\nbatch_size = 16\ncheckpoint_every = 2\ncpu_threads = 1\n')
    t = Trainer(load_config(cfg), run_dir=tmp_path / "run")
    t.fit()
    assert t.model._pm_step == 4
    t2 = Trainer(load_config(cfg), run_dir=tmp_path / "run")
    assert t2.model._pm_step == 0
    t2.load_checkpoint()
    assert t2.step == 4 and t2.model._pm_step == 4


def test_shipped_conv_lpn_denoises_a_held_out_slice():
    """datasets/mri/lpn_mni152 (configs/lpn-mni152.toml): measured 26.0 -> 35.7 dB mean over the 10 test
    slices at sigma 0.05 (benchmarks/lpn_check.py); on test slice 1 it must gain at least 7 dB."""
    from pathlib import Path

    from sciml.metrics import psnr
    from sciml.models.lpn import ConvLPN
    from sciml.problems.imaging import load_image

    root = Path(__file__).resolve().parents[1] / "datasets" / "mri"
    m = load(root / "lpn_mni152")
    assert isinstance(m, ConvLPN) and not m.training
    clean = load_image(root / "mni152_slices.h5", index=1, split="test_index").float()
    noisy = clean + 0.05 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    out = m(noisy)
    assert out.shape == clean.shape and out.dtype == clean.dtype
    assert float(psnr(out, clean, 1.0)) > float(psnr(noisy, clean, 1.0)) + 7.0


def test_shipped_ct_lpn_is_a_stable_pnp_prior():
    """datasets/mri/lpn_mni152_s10 (configs/lpn-mni152-s10.toml, trained at noise 0.1) in PnP-ADMM on 60-view
    CT of held-out slice 2: the iteration settles. Measured: FBP 22.72 dB, 10 iterations 30.77, 40 iterations
    30.78; the sigma-0.05 network of datasets/mri/lpn_mni152 drifts away instead (28.21 -> 21.39 dB)."""
    from pathlib import Path

    import sciml
    from sciml.metrics import psnr
    from sciml.models.denoisers import clipped
    from sciml.operators.ct import fbp
    from sciml.problems.imaging import ct_case, load_image
    from sciml.solvers.variational import power_norm2

    root = Path(__file__).resolve().parents[1] / "datasets" / "mri"
    case = ct_case(load_image(root / "mni152_slices.h5", 128, index=2, split="test_index"), views=60, noise=0.01, seed=2)
    A, y = case.problem.forward, case.problem.y
    x0 = fbp(y, A, "shepp-logan")
    D = clipped(load(root / "lpn_mni152_s10"))
    rho = 0.01 * power_norm2(A, case.truth)
    scores = [float(psnr(sciml.solve(case.problem, "pnp-admm", denoiser=D, rho=rho, maxiter=its, rtol=0.0, x0=x0).x,
                         case.truth, 1.0)) for its in (10, 40)]
    assert abs(scores[1] - scores[0]) < 0.1, scores
    assert scores[1] > float(psnr(x0, case.truth, 1.0)) + 7.0, scores
