"""DCDM (solver `dcdm`, model `dcdm-cnn`, loss `dcdm-residual`, data `dcdm-rhs`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import sciml
from sciml.data.generators import sample_generator
from sciml.data.generators.dcdm import (DCDMDataset, DCDMGenerator, PressurePoissonOperator, face_types,
                                        pressure_coefficients, scene)
from sciml.data.generators.pressure_poisson import assemble
from sciml.models import build_model, load, save
from sciml.solvers.dcdm import dcdm
from sciml.status import Status
from sciml.training.losses import make_loss, scale_invariant_residual

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "datasets" / "dcdm" / "pressure2d_n64"


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def untrained(dim: int = 2, seed: int = 0, levels: int = 1):
    torch.manual_seed(seed)
    return build_model("dcdm-cnn", dim=dim, width=8, full_blocks=1, half_blocks=1, post_blocks=1, levels=levels).eval()


def small_scene(n: int = 16, dim: int = 2, seed: int = 3) -> PressurePoissonOperator:
    return PressurePoissonOperator(scene(dim, n, sample_generator(seed, 0), max_size=0.15))


@pytest.mark.parametrize("dim, n", [(2, 9), (3, 5)])
def test_operator_matches_assembled_matrix(dim, n):
    A = small_scene(n, dim)
    flags3 = A.flags[..., None] if dim == 2 else A.flags
    M = assemble(flags3, face_types(dim)).toarray()
    x = torch.randn(A.in_shape, dtype=torch.float64)
    np.testing.assert_allclose(A.apply(x).reshape(-1).numpy(), M @ x.reshape(-1).numpy(), atol=1e-12)
    fluid = A.mask.reshape(-1).numpy()
    assert np.linalg.eigvalsh(M[np.ix_(fluid, fluid)])[0] > 0  # every fluid region touches air: SPD


def test_directions_are_A_orthogonal_k2():
    A = small_scene(16)
    b = torch.randn(16, 16, dtype=torch.float64) * A.fluid
    xs = [torch.zeros_like(b)]
    dcdm(A, b, untrained(), k=2, rtol=1e-10, maxiter=12, safeguard=False, callback=lambda x: xs.append(x.clone()))
    d = [(x1 - x0).reshape(-1) for x0, x1 in zip(xs[:-1], xs[1:])]
    Ad = [A.apply(v.reshape(16, 16)).reshape(-1) for v in d]
    for i in range(len(d)):
        for j in (i - 1, i - 2):
            if j >= 0:
                cos = float(d[i] @ Ad[j]) / float((d[i] @ Ad[i]) * (d[j] @ Ad[j])) ** 0.5
                assert abs(cos) < 1e-8, (i, j, cos)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_untrained_network_still_converges(dtype):
    A = sciml.operators.laplacian((12, 10), dtype=dtype)
    b = torch.randn(3, 12, 10, dtype=dtype, generator=torch.Generator().manual_seed(1))
    sol = sciml.solve(sciml.LinearProblem(A, b), "dcdm", model=untrained(), rtol=1e-5, maxiter=1000)
    assert sol.converged and sol.x.dtype == dtype and sol.x.shape == b.shape
    ref = sciml.solve(sciml.LinearProblem(A, b), "cg", rtol=1e-10).x
    assert float((sol.x - ref).norm() / ref.norm()) < 1e-3
    assert len(sol.residuals) == sol.iterations + 1 and sol.info["reason"].startswith("converged")


def test_untrained_network_converges_on_obstacle_scene_and_no_model_is_cg():
    A = small_scene(16)
    b = torch.randn(2, 16, 16, dtype=torch.float64) * A.fluid
    sol = sciml.solve(sciml.LinearProblem(A, b), "dcdm", model=untrained(), rtol=1e-6, maxiter=2000)
    assert sol.converged
    plain = sciml.solve(sciml.LinearProblem(A, b), "dcdm", model=None, rtol=1e-6)
    cg = sciml.solve(sciml.LinearProblem(A, b), "cg", rtol=1e-6)
    assert abs(plain.iterations - cg.iterations) <= 2


def test_loss_is_scale_invariant():
    A = small_scene(12)
    g = torch.Generator().manual_seed(0)
    b = torch.randn(4, 1, 12, 12, dtype=torch.float64, generator=g) * A.fluid
    q = torch.randn(4, 1, 12, 12, dtype=torch.float64, generator=g) * A.fluid
    base = scale_invariant_residual(q, b, A.apply(q))
    assert bool((base > 0).all())  # may exceed 1: alpha minimises the A-norm error, not ||r||
    for c in (-3.7, 1e-3, 250.0):
        np.testing.assert_allclose(scale_invariant_residual(c * q, b, A.apply(c * q)), base, rtol=1e-10)
    # the exact solution gives zero loss
    x = sciml.solve(sciml.LinearProblem(A, b[:, 0]), "cg", rtol=1e-12).x[:, None]
    assert float(scale_invariant_residual(-2 * x, b, A.apply(-2 * x)).max()) < 1e-18


@pytest.mark.parametrize("dim, shape", [(2, (17, 9)), (2, (64, 33)), (3, (5, 7, 3)), (3, (8, 8, 8))])
def test_model_is_size_agnostic(dim, shape):
    for levels in (1, 3):
        out = untrained(dim, levels=levels)(torch.randn(2, 1, *shape))
        assert out.shape == (2, 1, *shape) and bool(torch.isfinite(out).all())


def test_model_size_and_wrong_input():
    net = build_model("dcdm-cnn", dim=3)
    assert sum(p.numel() for p in net.parameters()) < 200_000
    with pytest.raises(ValueError, match="2 grid axes"):
        build_model("dcdm-cnn", dim=2)(torch.randn(1, 1, 4, 4, 4))
    with pytest.raises(ValueError, match="dim must be 2 or 3"):
        build_model("dcdm-cnn", dim=1)


def test_checkpoint_round_trip(tmp_path):
    net = untrained(2)
    save(net, tmp_path / "m")
    back = load(tmp_path / "m")
    x = torch.randn(1, 1, 11, 13)
    torch.testing.assert_close(back(x), net(x))
    A = small_scene(12)
    b = torch.randn(12, 12, dtype=torch.float64) * A.fluid
    s1 = sciml.solve(sciml.LinearProblem(A, b), "dcdm", model=str(tmp_path / "m"), rtol=1e-6)
    s2 = sciml.solve(sciml.LinearProblem(A, b), "dcdm", model=net, rtol=1e-6)
    assert s1.converged and s1.iterations == s2.iterations


def test_non_spd_operator_breaks_down():
    A = -1.0 * sciml.operators.laplacian((8, 8), dtype=torch.float64)
    b = torch.ones(8, 8, dtype=torch.float64)
    for model in (None, untrained()):
        sol = sciml.solve(sciml.LinearProblem(A, b), "dcdm", model=model)
        assert int(sol.stats["status"]) == Status.BREAKDOWN and not sol.converged
        assert "not positive definite" in sol.info["reason"]


def test_nonfinite_network_output_falls_back_to_the_residual():
    class NaNNet(torch.nn.Module):
        dim = 2

        def forward(self, x):
            return torch.full_like(x, float("nan"))

    A = sciml.operators.laplacian((8, 8), dtype=torch.float64)
    sol = sciml.solve(sciml.LinearProblem(A, torch.ones(8, 8, dtype=torch.float64)), "dcdm", model=NaNNet())
    assert sol.converged


def test_dimension_mismatch_and_bad_options(tmp_path):
    A = small_scene(8)
    b = torch.ones(8, 8, dtype=torch.float64) * A.fluid
    with pytest.raises(ValueError, match="3-D .* 2-D"):
        sciml.solve(sciml.LinearProblem(A, b), "dcdm", model=untrained(3))
    with pytest.raises(ValueError, match="2-D or 3-D grid"):
        sciml.solve(sciml.LinearProblem(sciml.operators.laplacian((8,)), torch.ones(8)), "dcdm")
    with pytest.raises(ValueError, match="checkpoint directory"):
        sciml.solvers.make_solver("dcdm", model=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="k must be"):
        sciml.solvers.make_solver("dcdm", k=-1)


def test_generator_dataset_and_loss(tmp_path):
    from sciml.data.generators import generate, load_recipe

    recipe = tmp_path / "r.toml"
    recipe.write_text('num = 3\nseed = 0\nout = "d.h5"\n[generator]\nname = "dcdm-rhs"\ndim = 2\nn = 12\n'
                      'rhs = 5\nlanczos_steps = 30\n')
    generate(load_recipe(recipe, out=str(tmp_path / "d.h5")), progress=False)
    train = DCDMDataset(tmp_path / "d.h5", "train", fractions=(0.67, 0.33, 0.0))
    val = sciml.data.build_dataset({"kind": "dcdm-rhs", "path": "d.h5", "fractions": [0.67, 0.33, 0.0]},
                                   split="val", base_dir=tmp_path)
    assert len(train) == 10 and len(val) == 5
    item = train[7]
    assert item["b"].shape == (1, 12, 12) and abs(float(item["b"].norm()) - 1) < 1e-5
    assert float((item["b"] * (1 - item["fluid"])).abs().max()) == 0  # zero off the fluid cells
    batch = {k: torch.stack([train[i][k] for i in range(4)]) for k in item}
    net = untrained()
    loss = make_loss("dcdm-residual")(net, batch)
    loss.backward()
    assert 0 < float(loss.detach()) < 10
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
    # the low end of the spectrum dominates: the Rayleigh quotient of b is well below the mean eigenvalue
    A = PressurePoissonOperator(np.asarray(DCDMGenerator(dim=2, n=12, rhs=5, lanczos_steps=30).sample(0, 0)["flags"]))
    b = torch.as_tensor(train.rhs[0], dtype=torch.float64)
    rq = (b * A.apply(b)).sum((-2, -1))
    assert float(rq.mean()) < float(A.diag[A.mask].mean())


def test_pressure_coefficients_3d_and_diag():
    flags = np.zeros((4, 4, 4), np.uint8)
    fluid, diag = pressure_coefficients(flags, "open-top")
    assert fluid.sum() == 64 and diag[1, 1, 3] == 6 and diag[0, 0, 0] == 3


@pytest.mark.skipif(not SHIPPED.is_dir(), reason="shipped checkpoint missing")
def test_shipped_checkpoint_beats_cg_on_held_out_scene():
    # A 32^2 scene (the model was trained on 64^2 scenes drawn with another seed), smooth right-hand side.
    A = PressurePoissonOperator(scene(2, 32, sample_generator(777, 0)))
    b = torch.randn(32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * A.fluid
    b = torch.nn.functional.avg_pool2d(b[None, None], 5, 1, 2)[0, 0] * A.fluid
    cg = sciml.solve(sciml.LinearProblem(A, b), "cg", rtol=1e-4)
    assert cg.converged
    # measured: CG 135 iterations; DCDM k = 2: 87 (1.55x fewer), k = 40: 24 (5.6x fewer)
    for k, margin in ((2, 1.2), (40, 4.0)):
        sol = sciml.solve(sciml.LinearProblem(A, b), "dcdm", model=str(SHIPPED), rtol=1e-4, k=k)
        assert sol.converged
        assert sol.iterations * margin <= cg.iterations, (k, sol.iterations, cg.iterations)


def test_3d_scene_solve_and_ritz_rhs():
    from sciml.data.generators.dcdm import ritz_rhs

    A = small_scene(6, dim=3)
    b = ritz_rhs(A, 2, 40, torch.Generator().manual_seed(0))
    assert b.shape == (2, 6, 6, 6) and float((b * ~A.mask).abs().max()) < 1e-12
    sol = sciml.solve(sciml.LinearProblem(A, b), "dcdm", model=untrained(3), rtol=1e-6, maxiter=500)
    assert sol.converged
    assert float(torch.linalg.vector_norm(A.apply(sol.x) - b, dim=(-3, -2, -1)).max()) < 1e-5


def test_bfloat16_inference_and_batched_float32():
    A = small_scene(12)
    b = (torch.randn(3, 12, 12, generator=torch.Generator().manual_seed(2)) * A.fluid).float()
    sol = sciml.solve(sciml.LinearProblem(A, b), "dcdm", model=untrained(), dtype="bfloat16", rtol=1e-4)
    assert sol.converged and sol.x.dtype == torch.float32 and sol.stats["iterations"].shape == (3,)


@pytest.mark.skipif(not SHIPPED.is_dir(), reason="shipped checkpoint missing")
def test_solver_config_loads(monkeypatch):
    monkeypatch.chdir(ROOT.parent)  # the model path in the config is relative to the config file, not the cwd
    config = sciml.config.load(ROOT / "solvers" / "dcdm-pressure2d.toml")
    solver = config.solver()
    assert solver.name == "dcdm" and solver.k == 40 and solver.network().dim == 2
    assert config.problem().grid.points == (64, 64) or list(config.problem().grid.points) == [64, 64]
