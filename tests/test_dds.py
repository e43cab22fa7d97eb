"""Diffusion-prior solvers (`dds`, `ddim`, `dps`) against an exact Gaussian prior, and the prior contract.

The exact prior: x0 ~ N(m, S) on an 8x8 image with a smooth (squared-exponential) covariance, so the
ε-model is exact, ε(x_t, t) = sqrt(1-ᾱ) Σ_t⁻¹ (x_t - sqrt(ᾱ) m) with Σ_t = ᾱ S + (1-ᾱ) I, and the
posterior mean of y = M x (+ noise) is closed form.
"""
import math

import pytest
import torch

import sciml
import sciml.solvers.diffusion  # noqa: F401  (registers dds, ddim, dps)
from sciml.diffusion.prior import abar_at, default_alphas_cumprod, eps_function, image_layout, timestep_grid
from sciml.operators import FunctionOperator, MultiCoilMRI
from sciml.solvers import SolverOptionError, data_consistency
from sciml.status import Status

DT = torch.float64
N = 8
ABAR = default_alphas_cumprod()


class GaussianEps:
    """Exact ε of x0 ~ N(m, S) for (B, C, H, W) tensors (m: (C, H, W), S: (CHW, CHW))."""

    def __init__(self, m, S, in_channels=1):
        self.m, self.in_channels = m, in_channels
        self.lam, self.U = torch.linalg.eigh(S)

    def __call__(self, x, t):
        B = x.shape[0]
        a = ABAR[t.long()].to(x.dtype).reshape(B, 1)
        w = (x.reshape(B, -1) - a.sqrt() * self.m.reshape(1, -1)) @ self.U
        return ((1 - a).sqrt() * (w / (a * self.lam + 1 - a)) @ self.U.T).reshape(x.shape)


def matrix_operator(M, in_shape):
    """y = M vec(x) per image; in_shape (H, W) or (Z, H, W) (then per slice)."""
    H, W = in_shape[-2:]
    out = (*in_shape[:-2], M.shape[0])
    return FunctionOperator(lambda x: x.reshape(*x.shape[:-2], -1) @ M.T,
                            lambda y: (y @ M).reshape(*y.shape[:-1], H, W), in_shape=in_shape, out_shape=out, dtype=DT)


@pytest.fixture(scope="module")
def gauss():
    g = torch.Generator().manual_seed(0)
    ij = torch.stack(torch.meshgrid(torch.arange(N), torch.arange(N), indexing="ij"), -1).reshape(-1, 2).to(DT)
    S = 0.25 * torch.exp(-((ij[:, None] - ij[None]) ** 2).sum(-1) / 8.0) + 1e-3 * torch.eye(N * N, dtype=DT)
    m = (0.2 * torch.sin(ij[:, 0] / 3)).reshape(N, N)
    M = torch.randn(20, N * N, dtype=DT, generator=g) / math.sqrt(20)
    L = torch.linalg.cholesky(S)
    x_true = (m.reshape(-1) + L @ torch.randn(N * N, dtype=DT, generator=g)).reshape(N, N)
    y = M @ x_true.reshape(-1)
    K = M @ S @ M.T
    post = (m.reshape(-1) + S @ M.T @ torch.linalg.solve(K, y - M @ m.reshape(-1))).reshape(N, N)
    post_var = float(torch.trace(S - S @ M.T @ torch.linalg.solve(K, M @ S)))
    return dict(S=S, m=m, M=M, L=L, x=x_true, y=y, post=post, post_var=post_var, A=matrix_operator(M, (N, N)),
                model=GaussianEps(m.unsqueeze(0), S))


def rel(a, b):
    return float((a - b).norm() / b.norm())


# --- (a) the exact Gaussian prior ------------------------------------------------------------------
def test_dds_sample_mean_approaches_posterior_mean(gauss):
    # Measured (512 samples, noiseless y with 20 of 64 measurements, eta=0, cg_iter=5): the relative
    # error of the sample mean to the closed-form posterior mean is 0.27 / 0.12 / 0.063 at 10 / 40 / 160
    # NFE (about NFE^-0.5; Monte Carlo error 0.007), and the sample variance (trace) is 4.4 / 2.1 / 1.23
    # times the posterior's. With 1024 samples: 0.049 at 250 NFE, 0.020 at 1000 NFE, variance ratio 1.02.
    # So DDS (noiseless branch) tends to the posterior mean and covariance as NFE grows, slowly. DDS's
    # default eta=0.85 converges more slowly (0.32 / 0.18 / 0.12 at 10 / 40 / 160 NFE).
    B = 512
    prob = sciml.InverseProblem(gauss["A"], gauss["y"].expand(B, -1).contiguous())
    errs, var = [], None
    for nfe in (10, 40, 160):
        sol = sciml.solve(prob, "dds", model=gauss["model"], num_inference_steps=nfe, eta=0.0)
        assert sol.converged and sol.iterations == nfe and sol.info["nfe"] == nfe
        assert sol.residuals.shape == (nfe, B)
        errs.append(rel(sol.x.mean(0), gauss["post"]))
        var = float(sol.x.var(0).sum())
    assert errs[0] > 1.5 * errs[1] > 2.0 * errs[2]
    assert 0.2 < errs[0] < 0.35 and errs[2] < 0.09
    assert abs(var / gauss["post_var"] - 1) < 0.5  # measured 1.28 at 160 NFE (3.3 at 10 NFE)


@pytest.mark.parametrize("solver", ["dds", "ddim", "dps"])
def test_num_samples_is_the_mean_and_spread_of_a_batch_of_samples(gauss, solver):
    """num_samples = n returns the mean of n samples and their per-pixel std: exactly the batch of the
    problem repeated n times (same generator stream), reduced; two systems stay two systems."""
    n = 64
    y = torch.stack([gauss["y"], 0.5 * gauss["y"]])
    prob = sciml.InverseProblem(gauss["A"], y)
    opts = {"model": gauss["model"], "num_inference_steps": 10}
    sol = sciml.solve(prob, solver, num_samples=n, **opts)
    batch = sciml.solve(sciml.InverseProblem(gauss["A"], y.expand(n, 2, -1).contiguous()), solver, **opts)
    torch.testing.assert_close(sol.x, batch.x.mean(0), rtol=0, atol=0)
    torch.testing.assert_close(sol.info["std"], batch.x.std(0), rtol=0, atol=0)
    assert sol.x.shape == sol.info["std"].shape == (2, N, N) and sol.info["samples"].shape == (n, 2, N, N)
    assert sol.residuals.shape[1:] == (2,) and sol.stats["status"].shape == (2,) and sol.info["num_samples"] == n
    assert sol.info["residual_history"].shape == sol.residuals.shape
    residual = (sol.x.reshape(2, -1) @ gauss["M"].T - y).norm(dim=-1) / y.norm(dim=-1)
    assert sol.info["relative_residual"] == pytest.approx(float(residual.max()), rel=1e-12)


def test_dds_num_samples_estimates_the_posterior_mean_and_spread(gauss):
    # 256 samples at 160 NFE (eta 0, noiseless): the mean is 0.06-0.07 from the closed-form posterior mean
    # and the summed variance 1.3x the posterior's (as in the test above); along the measured directions
    # (the row space of M) the samples hardly differ: 1.3e-3 of the spread, what 5 CG steps leave
    sol = sciml.solve(sciml.InverseProblem(gauss["A"], gauss["y"]), "dds", model=gauss["model"],
                      num_inference_steps=160, eta=0.0, num_samples=256)
    assert rel(sol.x, gauss["post"]) < 0.09
    assert abs(float((sol.info["std"] ** 2).sum()) / gauss["post_var"] - 1) < 0.5
    spread = sol.info["samples"].reshape(256, -1) - sol.x.reshape(1, -1)
    Q = torch.linalg.qr(gauss["M"].T).Q  # an orthonormal basis of the measured directions
    assert float((spread @ Q).norm()) < 5e-3 * float(spread.norm())  # the data fix what they measure


def test_dds_noisy_branch_matches_posterior_mean_roughly(gauss):
    # Noisy measurements (sigma 0.05): gamma=None -> the proximal step with gamma = 1. Measured (eta=0):
    # error of the sample mean to the noisy posterior mean 0.30 / 0.11 / 0.045 at 10 / 50 / 250 NFE
    # (256 samples; Monte Carlo error ~0.01); gamma = 20 or 400 gave 0.25 / 0.099 / 0.049 (512 samples).
    g = torch.Generator().manual_seed(5)
    sigma = 0.05
    M, m, S = gauss["M"], gauss["m"].reshape(-1), gauss["S"]
    y = gauss["y"] + sigma * torch.randn(20, dtype=DT, generator=g)
    K = M @ S @ M.T + sigma**2 * torch.eye(20, dtype=DT)
    post = (m + S @ M.T @ torch.linalg.solve(K, y - M @ m)).reshape(N, N)
    prob = sciml.InverseProblem(gauss["A"], y.expand(256, -1).contiguous(), noise_std=sigma)
    sol = sciml.solve(prob, "dds", model=gauss["model"], num_inference_steps=50, eta=0.0)
    assert sol.info["gamma"] == 1.0
    assert rel(sol.x.mean(0), post) < 0.16  # measured 0.108
    assert 0.003 < sol.info["relative_residual"] < 0.1  # the proximal step does not fit the noise exactly


# --- (b) data consistency -----------------------------------------------------------------------------
def test_data_consistency_rho_zero_is_the_normal_equations(gauss):
    A, y, M = gauss["A"], gauss["y"], gauss["M"]
    x0 = torch.randn(3, N, N, dtype=DT, generator=torch.Generator().manual_seed(1))
    yb = y.expand(3, -1)
    x = data_consistency(A, yb, None, 0.0, x0=x0, cg_options={"rtol": 1e-13, "maxiter": 100})
    # CG on A^H A x = A^H y from x0 converges to x0 + M^+ (y - M x0) (no change in the null space).
    ref = x0.reshape(3, -1) + (torch.linalg.pinv(M) @ (yb - x0.reshape(3, -1) @ M.T).T).T
    assert rel(x.reshape(3, -1), ref) < 1e-9
    few = data_consistency(A, yb, None, 0.0, x0=x0, cg_options={"rtol": 0.0, "maxiter": 2})
    r0, r2 = ((x0.reshape(3, -1) @ M.T - yb).norm(dim=-1), (few.reshape(3, -1) @ M.T - yb).norm(dim=-1))
    assert bool((r2 < 0.5 * r0).all())
    with pytest.raises(ValueError, match="rho"):
        data_consistency(A, yb, x0, -1.0)


def test_dds_data_consistency_reduces_residual_vs_tweedie(gauss):
    prob = sciml.InverseProblem(gauss["A"], gauss["y"].expand(16, -1).contiguous())
    plain = sciml.solve(prob, "dds", model=gauss["model"], num_inference_steps=20, cg_iter=0)  # Tweedie only
    dc = sciml.solve(prob, "dds", model=gauss["model"], num_inference_steps=20, cg_iter=5)
    exact = sciml.solve(prob, "dds", model=gauss["model"], num_inference_steps=20, cg_iter=20)
    # measured: Tweedie estimate ~1.9 (unconditional), 5 CG steps ~1e-3, 20 CG steps ~1e-15
    assert plain.info["relative_residual"] > 1.0
    assert dc.info["relative_residual"] < 1e-2
    assert exact.info["relative_residual"] < 1e-10
    assert bool((dc.residuals < 0.05).all())  # every step's refined estimate fits the data


# --- (c) diffusers schedulers plugged in -----------------------------------------------------------
@pytest.mark.parametrize("kind", ["DDIMScheduler", "DEISMultistepScheduler", "sciml.DEISScheduler"])
def test_dds_with_diffusers_scheduler(gauss, kind):
    import diffusers

    if kind == "sciml.DEISScheduler":  # fractional timesteps (999.0, 901.6, ...)
        from sciml.diffusion.deis import DEISScheduler as cls
    else:
        cls = getattr(diffusers, kind)
    sch = cls(**({"clip_sample": False} if kind == "DDIMScheduler" else {}))
    prob = sciml.InverseProblem(gauss["A"], gauss["y"].expand(64, -1).contiguous())
    sol = sciml.solve(prob, "dds", model=gauss["model"], num_inference_steps=20, scheduler=sch)
    assert sol.converged and sol.iterations == 20
    assert sol.info["relative_residual"] < 0.05  # measured 1.3e-3 (DDIM), 1.2e-2 (diffusers DEIS), 2.4e-3 (sciml DEIS)
    assert rel(sol.x.mean(0), gauss["post"]) < 0.5  # measured 0.36 / 0.34 / 0.31 (64 samples)


def test_dds_scheduler_schedule_mismatch_is_an_error(gauss):
    from diffusers import DDIMScheduler

    prob = sciml.InverseProblem(gauss["A"], gauss["y"])
    with pytest.raises(SolverOptionError, match="alphas_cumprod"):
        sciml.solve(prob, "dds", model=gauss["model"], num_inference_steps=5, scheduler=DDIMScheduler(beta_end=0.03),
                    alphas_cumprod=ABAR)


# --- (d) complex unknowns -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mri(gauss):
    g = torch.Generator().manual_seed(1)
    maps = torch.randn(2, N, N, dtype=torch.complex128, generator=g)
    maps = maps / maps.abs().pow(2).sum(0).sqrt()
    mask = torch.zeros(N)
    mask[::2] = 1
    mask[3:5] = 1
    A = MultiCoilMRI(maps, mask)
    phase = torch.linspace(0, 1.0, N, dtype=DT).reshape(1, N).expand(N, N)
    r = (gauss["m"].reshape(-1) + gauss["L"] @ torch.randn(N * N, dtype=DT, generator=g)).reshape(N, N)
    x = torch.polar(torch.ones_like(r), phase) * r
    return A, x, phase


def test_dds_complex_two_channel_model(gauss, mri):
    A, x, _ = mri
    model2 = GaussianEps(torch.stack([gauss["m"], gauss["m"]]), torch.block_diag(gauss["S"], gauss["S"]), in_channels=2)
    prob = sciml.InverseProblem(A, A.apply(x).expand(16, -1, -1, -1).contiguous())
    sol = sciml.solve(prob, "dds", model=model2, num_inference_steps=20)
    assert sol.x.dtype == torch.complex128 and sol.x.shape == (16, N, N)
    assert sol.info["relative_residual"] < 0.02  # measured 4.7e-3
    assert rel(sol.x.mean(0), x) < 0.03  # measured 6.1e-3 (5 of 8 columns, 2 coils: well determined)


def test_dds_complex_one_channel_model_with_phase(gauss, mri):
    A, x, phase = mri
    prob = sciml.InverseProblem(A, A.apply(x).expand(16, -1, -1, -1).contiguous())
    sol = sciml.solve(prob, "dds", model=gauss["model"], num_inference_steps=20, phase=phase)
    xm = sol.x.mean(0)
    assert sol.x.dtype == torch.complex128 and sol.info["relative_residual"] < 0.02  # measured 2.2e-3
    assert rel(xm, x) < 0.01  # measured 1.5e-3
    demod = xm * torch.polar(torch.ones_like(phase), -phase)
    assert float(demod.imag.norm() / demod.norm()) < 0.01  # measured 9e-4: the phase constraint holds
    with pytest.raises(SolverOptionError, match="phase"):
        sciml.solve(prob, "dds", model=gauss["model"], num_inference_steps=2)


def test_dds_phase_refresh_corrects_a_wrong_phase(gauss, mri):
    """A 1-channel prior with a wrong phase (offset and bent) misfits the data; re-estimating the phase from
    the data-consistent iterates (smoothed over 0.5-1 pixel on this 8x8 image) nearly recovers the result
    with the exact phase."""
    A, _, phase = mri
    g = torch.Generator().manual_seed(2)
    m = gauss["m"] + 2.0  # a positive image: its phase is the modulation's
    model = GaussianEps(m.unsqueeze(0), gauss["S"])
    r = (m.reshape(-1) + gauss["L"] @ torch.randn(N * N, dtype=DT, generator=g)).reshape(N, N)
    assert float(r.min()) > 0.5
    x = torch.polar(torch.ones_like(r), phase) * r
    prob = sciml.InverseProblem(A, A.apply(x).expand(16, -1, -1, -1).contiguous())
    wrong = phase + 0.4 + 0.3 * torch.sin(torch.arange(N, dtype=DT) / 2).reshape(N, 1)

    def error(ph, refresh=None):
        sol = sciml.solve(prob, "dds", model=model, num_inference_steps=20, phase=ph, phase_refresh=refresh)
        return rel(sol.x.mean(0), x), sol.info["relative_residual"]

    exact, fixed = error(phase), error(wrong)
    assert exact[0] < 0.005 and fixed[0] > 0.05 and fixed[1] > 0.02  # measured 2.6e-3; 7.5e-2, residual 2.5e-2
    for sigma, bound in ((0.5, 0.012), (1.0, 0.015)):  # measured 7.3e-3, 9.0e-3
        refreshed, residual = error(wrong, sigma)
        assert refreshed < bound and residual < 0.006  # residual measured 2.4e-3, 2.6e-3
    with pytest.raises(SolverOptionError, match="phase_refresh re-estimates option 'phase'"):
        sciml.solve(prob, "dds", model=model, num_inference_steps=2, phase_refresh=1.0)
    with pytest.raises(SolverOptionError, match="phase_refresh must be a number"):
        sciml.solve(prob, "dds", model=model, num_inference_steps=2, phase=phase, phase_refresh=0.0)


def test_image_layout_round_trips():
    g = torch.Generator().manual_seed(0)
    xr = torch.randn(2, 3, 4, 5, dtype=DT, generator=g)  # batch 2, volume Z=3
    lay = image_layout((3, 4, 5), (2,), DT, data_range=(0.0, 2.0))
    v = lay.to_model(xr)
    assert v.shape == (6, 1, 4, 5) and torch.allclose(lay.from_model(v), xr)
    assert torch.allclose(v[1, 0], xr[0, 1] - 1.0)
    xc = torch.randn(2, 4, 5, dtype=torch.complex128, generator=g)
    lay2 = image_layout((4, 5), (2,), xc.dtype)
    assert lay2.to_model(xc).shape == (2, 2, 4, 5) and torch.allclose(lay2.from_model(lay2.to_model(xc)), xc)
    phase = torch.rand(4, 5, dtype=DT, generator=g)
    lay1 = image_layout((4, 5), (2,), xc.dtype, channels=1, phase=phase)
    xp = torch.polar(torch.ones_like(phase), phase) * xr[:, 0]
    assert lay1.to_model(xp).shape == (2, 1, 4, 5) and torch.allclose(lay1.from_model(lay1.to_model(xp)), xp)


# --- (e) a diffusers UNet through the contract --------------------------------------------------------
def test_diffusers_unet_end_to_end():
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    net = UNet2DModel(sample_size=16, in_channels=1, out_channels=2, layers_per_block=1, block_out_channels=(8, 16),
                      norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
                      up_block_types=("UpBlock2D", "UpBlock2D")).eval()  # learn_sigma-style 2C output
    net.data_range = (0.0, 1.0)
    mask = (torch.rand(16, 16, generator=torch.Generator().manual_seed(0)) < 0.5).to(DT)
    A = FunctionOperator(lambda x: x * mask, lambda y: y * mask, in_shape=(16, 16), dtype=DT)
    y = A.apply(torch.rand(2, 16, 16, dtype=DT, generator=torch.Generator().manual_seed(1)))
    eps = eps_function(net, batch_size=1)(torch.zeros(3, 1, 16, 16), 10)
    assert eps.shape == (3, 1, 16, 16)
    for name in ("dds", "ddim"):
        sol = sciml.solve(sciml.InverseProblem(A, y), name, model=net, num_inference_steps=3, batch_size=1)
        assert sol.x.shape == (2, 16, 16) and sol.x.dtype == DT and sol.converged
        assert sol.info["relative_residual"] < 1e-6  # a mask: CG solves A^H A x = A^H y in one step
    sol = sciml.solve(sciml.InverseProblem(A, y), "dps", model=net, num_inference_steps=3, step_size=0.1)
    assert sol.x.shape == (2, 16, 16) and sol.converged and sol.iterations == 3
    # a float32 problem (the model runs in float32 either way), a progress bar, reproducible seeds
    A32 = FunctionOperator(lambda x: x * mask.float(), lambda y: y * mask.float(), in_shape=(16, 16), dtype=torch.float32)
    p32 = sciml.InverseProblem(A32, y.float())
    s1 = sciml.solve(p32, "dds", model=net, num_inference_steps=2, seed=3, progress=True)
    s2 = sciml.solve(p32, "dds", model=net, num_inference_steps=2, seed=3)
    assert s1.x.dtype == torch.float32 and torch.equal(s1.x, s2.x) and s1.info["relative_residual"] < 1e-5


def test_sciml_unet2d_prior_through_the_contract():
    from sciml.models.unet import UNet2DPrior

    torch.manual_seed(0)
    prior = UNet2DPrior(sample_size=16, block_out_channels=(8, 16), norm_num_groups=4, data_range=(0.0, 1.0)).eval()
    mask = (torch.rand(16, 16, generator=torch.Generator().manual_seed(0)) < 0.5).to(DT)
    A = FunctionOperator(lambda x: x * mask, lambda y: y * mask, in_shape=(16, 16), dtype=DT)
    y = A.apply(torch.rand(16, 16, dtype=DT, generator=torch.Generator().manual_seed(1)))
    sol = sciml.solve(sciml.InverseProblem(A, y), "dds", model=prior, num_inference_steps=2)
    assert sol.x.shape == (16, 16) and sol.converged and sol.info["relative_residual"] < 1e-6


# --- (f) clear errors -----------------------------------------------------------------------------
@pytest.mark.parametrize("options, match", [
    ({"num_inference_steps": 0}, "num_inference_steps"),
    ({"eta": 1.5}, "eta"),
    ({"eta": -0.1}, "eta"),
    ({"cg_iter": -1}, "cg_iter"),
    ({"gamma": 0.0}, "gamma"),
    ({"alphas_cumprod": "cosine-ish"}, "beta schedule"),
    ({"data_range": (1.0, 0.0)}, "data_range"),
    ({"scheduler": object()}, "scheduler"),
    ({"num_samples": 0}, "num_samples must be an integer >= 1"),
    ({"num_samples": 2.0}, "num_samples must be an integer >= 1"),
    ({"bogus": 1}, "unknown option 'bogus'"),
])
def test_dds_option_errors(gauss, options, match):
    with pytest.raises(SolverOptionError, match=match):
        sciml.solve(sciml.InverseProblem(gauss["A"], gauss["y"]), "dds", **{"model": gauss["model"], **options})


def test_dds_model_errors(gauss, mri):
    prob = sciml.InverseProblem(gauss["A"], gauss["y"])
    with pytest.raises(SolverOptionError, match="'model' is required"):
        sciml.solve(prob, "dds")
    with pytest.raises(SolverOptionError, match="num_inference_steps must be <="):
        sciml.solve(prob, "dds", model=gauss["model"], num_inference_steps=1001)
    two = GaussianEps(gauss["m"].unsqueeze(0), gauss["S"], in_channels=2)
    with pytest.raises(SolverOptionError, match="channel mismatch"):
        sciml.solve(prob, "dds", model=two, num_inference_steps=2)
    with pytest.raises(ValueError, match="channel/shape mismatch"):
        sciml.solve(prob, "dds", model=lambda x, t: torch.cat([x, x, x], 1), num_inference_steps=2)
    A, x, phase = mri
    with pytest.raises(SolverOptionError, match="only for complex"):
        sciml.solve(prob, "dds", model=gauss["model"], num_inference_steps=2, phase=phase)
    with pytest.raises(SolverOptionError, match="tv_z is for volumes"):
        sciml.solve(prob, "dds", model=gauss["model"], num_inference_steps=2, tv_z=0.1)
    with pytest.raises(TypeError, match="does not accept"):
        sciml.solve(sciml.LinearProblem(torch.eye(2, dtype=DT), torch.ones(2, dtype=DT)), "dds", model=gauss["model"])


def test_nonfinite_model_output_is_reported_per_system(gauss):
    def model(x, t):
        e = gauss["model"](x, t)
        e[0] = math.nan  # the first system only
        return e

    prob = sciml.InverseProblem(gauss["A"], gauss["y"].expand(3, -1).contiguous())
    sol = sciml.solve(prob, "dds", model=model, num_inference_steps=5)
    assert sol.status == Status.NONFINITE and "NaN" in sol.info["reason"]
    assert sol.stats["status"].tolist() == [int(Status.NONFINITE), 0, 0]
    assert bool(sol.x[0].isnan().all()) and bool(torch.isfinite(sol.x[1:]).all())


def test_abar_at_fractional_times():
    assert abar_at(ABAR, 10) == float(ABAR[10]) and abar_at(ABAR, -1) == 1.0
    assert math.isclose(abar_at(ABAR, 10.5), math.sqrt(float(ABAR[10] * ABAR[11])), rel_tol=1e-12)
    assert math.isclose(abar_at(ABAR, -0.5), math.sqrt(float(ABAR[0])), rel_tol=1e-12)
    with pytest.raises(ValueError):
        abar_at(ABAR, 1000)


def test_timestep_grid():
    assert timestep_grid(50, 1000)[:3] == [980, 960, 940] and timestep_grid(50, 1000)[-1] == 0
    assert timestep_grid(3, 1000) == [666, 333, 0]
    with pytest.raises(ValueError):
        timestep_grid(0, 1000)


# --- (g) baselines ------------------------------------------------------------------------------------
def test_ddim_and_dps_baselines(gauss):
    prob = sciml.InverseProblem(gauss["A"], gauss["y"].expand(64, -1).contiguous())
    ddim = sciml.solve(prob, "ddim", model=gauss["model"], num_inference_steps=20)
    assert ddim.converged and ddim.info["relative_residual"] < 1e-10  # 20 CG steps at the end: exact
    # DPS, measured (64 samples, 50 NFE): median final data residual 1.04 with step_size 0 (unconditional),
    # 0.31 with step_size 0.5, 0.66 with 1.0; error of the sample mean to the posterior mean 0.86 (step 0)
    # -> 0.15 (0.5) / 0.077 (1.0); at 200 NFE 0.036 (0.5) / 0.055 (1.0).
    kw = dict(model=gauss["model"], num_inference_steps=50)
    uncond = sciml.solve(prob, "dps", step_size=0.0, **kw)
    dps = sciml.solve(prob, "dps", step_size=0.5, **kw)
    assert dps.converged and dps.iterations == 50 and dps.residuals.shape == (51, 64)
    r_unc, r_dps = float(uncond.residuals[-1].median()), float(dps.residuals[-1].median())
    assert r_dps < 0.5 * r_unc
    assert rel(dps.x.mean(0), gauss["post"]) < 0.25 < rel(uncond.x.mean(0), gauss["post"])


# --- (h) volumes with TV along z --------------------------------------------------------------------
def test_dds_volume_tv_z(gauss):
    Z, g = 4, torch.Generator().manual_seed(2)
    M = torch.randn(10, N * N, dtype=DT, generator=g) / math.sqrt(10)
    A = matrix_operator(M, (Z, N, N))
    base = (gauss["m"].reshape(-1) + gauss["L"] @ torch.randn(N * N, dtype=DT, generator=g)).reshape(N, N)
    x = base + 0.02 * torch.arange(Z, dtype=DT).reshape(Z, 1, 1)  # nearly constant along z
    prob = sciml.InverseProblem(A, A.apply(x).expand(8, -1, -1).contiguous())

    def tvz(v):
        return float((v[..., 1:, :, :] - v[..., :-1, :, :]).abs().sum() / v.shape[0])

    plain = sciml.solve(prob, "dds", model=gauss["model"], num_inference_steps=30)
    tv = sciml.solve(prob, "dds", model=gauss["model"], num_inference_steps=30, tv_z=0.01)
    assert tv.x.shape == (8, Z, N, N) and tv.converged
    # measured: TV_z 47.8 (slice-wise prior only) -> 1.5 (truth 3.84); error 0.95 -> 0.80; residual 0.016
    assert tvz(tv.x) < 0.1 * tvz(plain.x)
    assert rel(tv.x, x.expand_as(tv.x)) < 0.9 * rel(plain.x, x.expand_as(plain.x))
    assert tv.info["relative_residual"] < 0.05
    noisy = sciml.solve(sciml.InverseProblem(A, prob.y, noise_std=0.01), "dds", model=gauss["model"],
                        num_inference_steps=10, tv_z=0.05)
    assert noisy.converged and noisy.info["gamma"] == 1.0


def test_deis_solver_is_dds_on_a_deis_scheduler(gauss):
    from sciml.diffusion import DEISScheduler, alphas_cumprod

    prob = sciml.InverseProblem(gauss["A"], gauss["y"].expand(32, -1).contiguous())
    sol = sciml.solve(prob, "deis", model=gauss["model"], num_inference_steps=12, ab_order=2, time_spacing="logrho")
    abar = alphas_cumprod()
    betas = (1 - abar / torch.cat([abar.new_ones(1), abar[:-1]])).tolist()
    sch = DEISScheduler(trained_betas=betas, ab_order=2, time_spacing="logrho")
    ref = sciml.solve(prob, "dds", model=gauss["model"], num_inference_steps=12, scheduler=sch)
    torch.testing.assert_close(sol.x, ref.x, rtol=0, atol=0)
    assert sol.iterations == 12 and sol.info["relative_residual"] < 0.05
    assert rel(sol.x.mean(0), gauss["post"]) < 0.5
    with pytest.raises(SolverOptionError, match="method"):
        sciml.solvers.make_solver("deis", model=gauss["model"], method="euler")
    with pytest.raises(SolverOptionError, match="own DEIS scheduler"):
        sciml.solvers.make_solver("deis", model=gauss["model"], scheduler=sch)
    with pytest.raises(SolverOptionError, match="start"):
        sciml.solvers.make_solver("deis", model=gauss["model"], start=0.3)


def test_dds_warm_start(gauss):
    prob = sciml.InverseProblem(gauss["A"], gauss["y"].expand(256, -1).contiguous())
    cold = sciml.solve(prob, "dds", model=gauss["model"], num_inference_steps=10, eta=0.0)
    warm = sciml.solve(prob, "dds", model=gauss["model"], num_inference_steps=10, eta=0.0, start=0.3)
    assert warm.iterations == 10 and warm.info["relative_residual"] < 0.05
    # from the default start (CG on the normal equations) at 0.3 T the sample mean is closer to the posterior
    # mean than from pure noise at the same NFE (measured 0.234 vs 0.267; fixed seed)
    assert rel(warm.x.mean(0), gauss["post"]) < 0.95 * rel(cold.x.mean(0), gauss["post"])
    exact = sciml.solve(prob, "dds", model=gauss["model"], num_inference_steps=10, eta=0.0, start=0.02,
                        x_init=gauss["post"])
    assert rel(exact.x.mean(0), gauss["post"]) < 0.05  # started at the answer, little noise added: stays there
    for bad, match in [({"start": 0.0}, "start"), ({"start": 1.5}, "start"), ({"x_init": [1.0]}, "x_init")]:
        with pytest.raises(SolverOptionError, match=match):
            sciml.solvers.make_solver("dds", model=gauss["model"], **bad)
    with pytest.raises(SolverOptionError, match="x_init of shape"):
        sciml.solve(prob, "dds", model=gauss["model"], num_inference_steps=5, start=0.5, x_init=torch.zeros(3, 3))


def test_num_samples_std_is_saved_with_the_solution(gauss, tmp_path):
    import xarray as xr

    sol = sciml.solve(sciml.InverseProblem(gauss["A"], gauss["y"]), "dds", model=gauss["model"], num_inference_steps=5,
                      num_samples=4)
    sol.save(str(tmp_path / "x.nc"))
    with xr.open_dataset(tmp_path / "x.nc", engine="h5netcdf") as ds:
        assert ds["std"].shape == (N, N)
        assert float(abs(ds["std"].values - sol.info["std"].numpy()).max()) == 0.0
        assert len(ds.attrs["info"]) < 5000  # the samples are summarised, not dumped
