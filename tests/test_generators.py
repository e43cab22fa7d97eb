"""Data generators: Darcy (discrete equation, two-valued coefficient, determinism, resume, atomic output),
Navier-Stokes (exact decay of a Fourier mode, the nonlinear term against an analytic value, a short
nonlinear run), pressure-Poisson systems (hand-built stencil, symmetry, definiteness, compatible
right-hand sides), recipes and the `sciml data` command line (errors: exit 2, file and key, no traceback)."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.fft
import scipy.sparse.linalg
import torch

import sciml.data.generators.darcy as darcy_mod
from sciml.cli import main
from sciml.data.generators import (AIR, FLUID, GENERATORS, SOLID, DarcyGenerator, GenerationError, NavierStokesGenerator,
                                   PressurePoissonGenerator, VorticitySolver, assemble, fluid_matrix, generate,
                                   load_recipe, load_system, navier_stokes_2d, partial_path)
from sciml.data.generators.grf import neumann_grf, periodic_grf, periodic_sqrt_eigenvalues
from sciml.data.generators.pressure_poisson import anchored
from sciml.operators import DiffusionOperator

ROOT = Path(__file__).resolve().parents[1]

DARCY = """\
num = 6
out = "darcy.h5"
seed = 3
block = 2
dtype = "float64"

[generator]
name = "darcy"
resolution = 17
rtol = 1e-10
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "darcy.toml").write_text(DARCY)
    return tmp_path


def read(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}


def count_generated(monkeypatch, cls) -> list[int]:
    """Record the sample indices `cls.generate` is asked for."""
    seen: list[int] = []
    original = cls.generate

    def wrapped(self, indices, seed):
        seen.extend(int(i) for i in indices)
        return original(self, indices, seed)

    monkeypatch.setattr(cls, "generate", wrapped)
    return seen


# --- Darcy -------------------------------------------------------------------------------------

def test_darcy_solution_satisfies_the_discrete_equation():
    gen = DarcyGenerator(resolution=17, rtol=1e-10)
    out = gen.generate(range(4), seed=0)
    a, u = torch.from_numpy(out["coeff"]), torch.from_numpy(out["sol"])
    assert a.shape == u.shape == (4, 17, 17)
    assert set(np.unique(out["coeff"])) == {3.0, 12.0}  # exactly two-valued, both present
    for k in range(4):
        assert (u[k, 0] == 0).all() and (u[k, -1] == 0).all() and (u[k, :, 0] == 0).all() and (u[k, :, -1] == 0).all()
    n, h = 15, 1 / 16
    for k in range(4):  # an independent operator: sciml's DiffusionOperator with faces averaged here
        ak = a[k]
        faces = [0.5 * (ak[:-1, 1:-1] + ak[1:, 1:-1]), 0.5 * (ak[1:-1, :-1] + ak[1:-1, 1:])]
        A = DiffusionOperator((n, n), h, "dirichlet", a=faces)
        f = torch.ones(n, n, dtype=torch.float64)
        assert float((f - A @ u[k, 1:-1, 1:-1]).norm() / f.norm()) <= 1e-10
        direct = scipy.sparse.linalg.spsolve(A.to_scipy().tocsc(), np.ones(n * n)).reshape(n, n)
        np.testing.assert_allclose(u[k, 1:-1, 1:-1].numpy(), direct, rtol=1e-8, atol=1e-14)
    assert 0.004 < float(u.amax()) < 0.03  # f = 1 with a in [3, 12]: max u between 0.074/12 and 0.074/3


def test_grf_is_fnos_cosine_series():
    """FNO's GRF.m: U = idct2(s * tau^(alpha-1) (pi^2 |k|^2 + tau^2)^(-alpha/2) * xi), mean mode 0, at cell centres."""
    s, alpha, tau = 12, 2.0, 3.0
    xi = torch.randn(s, s, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    k1, k2 = np.meshgrid(np.arange(s), np.arange(s), indexing="ij")
    coef = tau ** (alpha - 1) * (np.pi**2 * (k1**2 + k2**2) + tau**2) ** (-alpha / 2)
    L = s * coef * xi.numpy()
    L[0, 0] = 0
    fno = scipy.fft.idctn(L, type=2, norm="ortho")
    centres = (torch.arange(s, dtype=torch.float64) + 0.5) / s
    np.testing.assert_allclose(neumann_grf(xi, alpha, tau, (centres, centres)).numpy(), fno, rtol=1e-12, atol=1e-12)


def test_darcy_is_deterministic_by_seed_and_index():
    gen = DarcyGenerator(resolution=17)
    one = gen.generate(range(3), seed=5)
    again = gen.generate(range(3), seed=5)
    np.testing.assert_array_equal(one["coeff"], again["coeff"])
    np.testing.assert_array_equal(one["sol"], again["sol"])
    other = gen.generate(range(3), seed=6)
    assert not np.array_equal(one["coeff"], other["coeff"])
    alone = gen.generate([2], seed=5)  # a sample does not depend on the other samples of its block
    np.testing.assert_array_equal(alone["coeff"][0], one["coeff"][2])
    np.testing.assert_allclose(alone["sol"][0], one["sol"][2], rtol=1e-9, atol=1e-15)


def test_darcy_generate_resumes_without_recomputing(workdir, monkeypatch, capsys):
    seen = count_generated(monkeypatch, DarcyGenerator)
    assert main(["data", "generate", "darcy.toml", "--num", "3", "-q"]) == 0
    assert seen == [0, 1, 2]
    first = read(workdir / "darcy.h5")
    assert first["coeff"].shape == (3, 17, 17)
    with h5py.File(workdir / "darcy.h5", "r") as f:
        assert f.attrs["complete"] and f.attrs["num_done"] == 3 and f.attrs["generator"] == "darcy"
        assert f.attrs["generator_version"] == DarcyGenerator.version
        assert '"resolution": 17' in f.attrs["recipe"] and f["sol"].chunks == (1, 17, 17)

    seen.clear()
    assert main(["data", "generate", "darcy.toml", "-q"]) == 0  # the recipe's num = 6: appends 3..5
    assert seen == [3, 4, 5]
    full = read(workdir / "darcy.h5")
    assert full["coeff"].shape == (6, 17, 17)
    np.testing.assert_array_equal(full["coeff"][:3], first["coeff"])
    np.testing.assert_array_equal(full["sol"][:3], first["sol"])
    assert not partial_path(workdir / "darcy.h5").exists()

    seen.clear()
    assert main(["data", "generate", "darcy.toml", "-q"]) == 0  # complete: nothing regenerated
    assert seen == []
    assert "nothing to do" in capsys.readouterr().out

    assert main(["data", "generate", "darcy.toml", "-q", "--out", "fresh.h5"]) == 0  # one uninterrupted run
    fresh = read(workdir / "fresh.h5")
    np.testing.assert_array_equal(fresh["coeff"], full["coeff"])
    np.testing.assert_allclose(fresh["sol"], full["sol"], rtol=1e-12, atol=1e-16)

    seen.clear()
    assert main(["data", "generate", "darcy.toml", "-q", "--force"]) == 0
    assert seen == list(range(6))


def test_darcy_crash_leaves_no_file_and_rerun_completes(workdir, monkeypatch):
    out = workdir / "darcy.h5"
    original = darcy_mod._solve
    calls = []

    def failing(a, gen):
        calls.append(a.shape[0])
        assert not out.exists()  # no FILE while samples are being made
        if len(calls) == 3:  # the third block: samples 4, 5
            raise RuntimeError("simulated crash at sample 4")
        return original(a, gen)

    monkeypatch.setattr(darcy_mod, "_solve", failing)
    recipe = load_recipe(workdir / "darcy.toml")
    with pytest.raises(RuntimeError, match="simulated crash"):
        generate(recipe, progress=False)
    partial = partial_path(out)
    assert not out.exists() and partial.exists()
    with h5py.File(partial, "r") as f:
        assert f.attrs["num_done"] == 4 and not f.attrs["complete"]

    monkeypatch.setattr(darcy_mod, "_solve", original)
    seen = count_generated(monkeypatch, DarcyGenerator)
    result = generate(recipe, progress=False, echo=lambda msg: None)
    assert seen == [4, 5] and result.new == 2 and result.num == 6
    assert out.exists() and not partial.exists()
    resumed = read(out)
    generate(load_recipe(workdir / "darcy.toml", out="fresh.h5"), progress=False)
    fresh = read(workdir / "fresh.h5")
    np.testing.assert_array_equal(resumed["coeff"], fresh["coeff"])
    np.testing.assert_allclose(resumed["sol"], fresh["sol"], rtol=1e-12, atol=1e-16)


def test_generation_error_exits_1_and_keeps_the_partial_file(workdir, monkeypatch, capsys):
    def unconverged(a, gen):
        raise GenerationError("darcy: PCG did not reach rtol 1e-10 for samples [0]")

    monkeypatch.setattr(darcy_mod, "_solve", unconverged)
    assert main(["data", "generate", "darcy.toml", "-q"]) == 1
    err = capsys.readouterr().err
    assert "did not reach rtol" in err and "darcy.h5.partial" in err and "Traceback" not in err
    assert not (workdir / "darcy.h5").exists()


def test_unreadable_partial_file_is_replaced(workdir):
    partial_path(workdir / "darcy.h5").write_bytes(b"not hdf5")
    notes = []
    generate(load_recipe(workdir / "darcy.toml", num=2), progress=False, echo=notes.append)
    assert any("unreadable" in n for n in notes)
    assert read(workdir / "darcy.h5")["sol"].shape == (2, 17, 17)


def test_existing_output_of_another_recipe_is_an_error(workdir, capsys):
    assert main(["data", "generate", "darcy.toml", "--num", "2", "-q"]) == 0
    (workdir / "other.toml").write_text(DARCY.replace("rtol = 1e-10", "rtol = 1e-10\nalpha = 2.5"))
    assert main(["data", "generate", "other.toml", "--num", "2", "-q"]) == 2
    err = capsys.readouterr().err
    assert "other.toml: generator.alpha:" in err and "--force" in err
    assert main(["data", "generate", "darcy.toml", "--num", "1", "-q"]) == 2
    assert "darcy.toml: --num:" in capsys.readouterr().err


# --- Navier-Stokes ------------------------------------------------------------------------------

def _grid(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.arange(n, dtype=torch.float64) / n
    return x[:, None], x[None, :]


@pytest.mark.parametrize("k", [(1, 2), (3, 0), (-2, 5)])
def test_single_fourier_mode_decays_at_the_crank_nicolson_rate(k):
    n, nu, dt, T = 16, 1e-2, 2.5e-4, 0.1  # CN error ~ steps (dt nu lambda)^3 / 12 < 1e-6
    X, Y = _grid(n)
    w0 = torch.cos(2 * math.pi * (k[0] * X + k[1] * Y)) + 0.5 * torch.sin(2 * math.pi * (k[0] * X + k[1] * Y))
    sol, times = navier_stokes_2d(w0[None], None, nu, T, dt, record_steps=4)
    lam = 4 * math.pi**2 * (k[0] ** 2 + k[1] ** 2)
    g = (1 - 0.5 * dt * nu * lam) / (1 + 0.5 * dt * nu * lam)
    for r, t in enumerate(times.tolist()):
        steps = round(t / dt)
        ratio = float((sol[0, ..., r] * w0).sum() / (w0 * w0).sum())
        assert ratio == pytest.approx(g**steps, rel=1e-12)  # the exact Crank-Nicolson amplification
        assert ratio == pytest.approx(math.exp(-nu * lam * t), rel=1e-6)  # the PDE's decay
        assert float((sol[0, ..., r] - ratio * w0).abs().max()) < 1e-12  # the nonlinear term vanishes


def test_nonlinear_term_matches_the_analytic_advection():
    """w = cos 2pi x + cos 4pi y: psi = cos(2pi x)/(4pi^2) + cos(4pi y)/(16pi^2), u = psi_y, v = -psi_x,
    u.grad w = -1.5 sin(2pi x) sin(4pi y); with nu = 0, f = 0 one Euler step gives w_t = 1.5 sin sin."""
    n, dt = 16, 1e-3
    X, Y = _grid(n)
    w0 = torch.cos(2 * math.pi * X) + torch.cos(4 * math.pi * Y)
    solver = VorticitySolver(n, 0.0, dt, None)
    w1 = torch.fft.irfft2(solver.step(torch.fft.rfft2(w0)), s=(n, n))
    expected = 1.5 * torch.sin(2 * math.pi * X) * torch.sin(4 * math.pi * Y)
    assert float(((w1 - w0) / dt - expected).abs().max()) < 1e-10
    u, v = solver.velocity(torch.fft.rfft2(w0))
    assert float((u + torch.sin(4 * math.pi * Y) / (4 * math.pi)).abs().max()) < 1e-14
    assert float((v - torch.sin(2 * math.pi * X) / (2 * math.pi)).abs().max()) < 1e-14


def test_navier_stokes_nonlinear_run_keeps_zero_mean_and_stays_finite():
    gen = NavierStokesGenerator(resolution=32, viscosity=1e-3, T=1.0, dt=1e-3, record_steps=5, precision="float64")
    out = gen.generate([0, 1], seed=0)
    a, u = out["a"], out["u"]
    assert a.shape == (2, 32, 32) and u.shape == (2, 32, 32, 5)
    assert np.isfinite(u).all()
    assert np.abs(a.mean(axis=(1, 2))).max() < 1e-12 * np.abs(a).max()
    assert np.abs(u.mean(axis=(1, 2))).max() < 1e-10 * np.abs(u).max()  # the forcing and u.grad w have zero mean
    assert 0.1 < np.abs(u).max() < 10 * np.abs(a).max()  # moved, not blown up
    assert not np.allclose(u[..., 0], u[..., -1])
    np.testing.assert_allclose(gen.times(), [0.2, 0.4, 0.6, 0.8, 1.0])
    coarse = NavierStokesGenerator(resolution=8, solver_resolution=16, T=0.01, dt=1e-3, record_steps=1)
    fine = NavierStokesGenerator(resolution=16, T=0.01, dt=1e-3, record_steps=1)
    np.testing.assert_allclose(coarse.generate([0], 0)["a"], fine.generate([0], 0)["a"][:, ::2, ::2], rtol=1e-6)


def test_periodic_grf_has_the_covariance_spectrum():
    n, alpha, tau = 16, 2.5, 7.0
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 4000, n, n, dtype=torch.float64, generator=g)
    w = periodic_grf(z[0], z[1], alpha, tau, dims=2)
    expected = float((periodic_sqrt_eigenvalues((n, n), alpha, tau) ** 2).sum())  # sigma^2 sum (4pi^2|k|^2+tau^2)^-alpha
    assert float(w.var()) == pytest.approx(expected, rel=0.05)
    assert abs(float(w.mean(dim=(-2, -1)).abs().max())) < 1e-12


# --- pressure-Poisson ---------------------------------------------------------------------------

def _direct_matrix(flags: np.ndarray, faces: tuple[int, ...]) -> np.ndarray:
    """-h^2 Laplacian on the fluid cells by looping over cells and their six faces."""
    n0, n1, n2 = flags.shape
    N = flags.size
    A = np.zeros((N, N))
    idx = lambda i, j, k: (i * n1 + j) * n2 + k  # noqa: E731
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                if flags[i, j, k] != FLUID:
                    continue
                row = idx(i, j, k)
                for face, (di, dj, dk) in enumerate([(-1, 0, 0), (1, 0, 0), (0, -1, 0), (0, 1, 0), (0, 0, -1), (0, 0, 1)]):
                    p, q, r = i + di, j + dj, k + dk
                    inside = 0 <= p < n0 and 0 <= q < n1 and 0 <= r < n2
                    kind = flags[p, q, r] if inside else faces[face]
                    if kind == SOLID:
                        continue  # Neumann wall: no flux through this face
                    A[row, row] += 1
                    if kind == FLUID:
                        A[row, idx(p, q, r)] = -1  # AIR: Dirichlet p = 0, no unknown
    return A


@pytest.mark.parametrize("boundary, faces", [("solid", (SOLID,) * 6), ("air", (AIR,) * 6),
                                             ("open-top", (SOLID,) * 5 + (AIR,))])
def test_pressure_matrix_equals_direct_construction_on_3x3x3(boundary, faces):
    flags = np.full((3, 3, 3), FLUID, dtype=np.uint8)
    flags[1, 1, 1] = SOLID
    flags[2, 0, 1] = SOLID
    flags[0, 0, 2] = flags[1, 0, 2] = flags[2, 2, 2] = AIR
    A = assemble(flags, boundary)
    np.testing.assert_array_equal(A.toarray(), _direct_matrix(flags, faces))
    assert A.nnz == np.count_nonzero(_direct_matrix(flags, faces))
    assert (A.indptr[1:] - A.indptr[:-1])[flags.ravel() != FLUID].sum() == 0  # empty rows off the fluid


def test_pressure_matrix_all_fluid_is_sciml_laplacian():
    n = 4
    fluid = np.zeros((n, n, n), dtype=np.uint8)
    dirichlet = DiffusionOperator((n, n, n), 1.0, "dirichlet").to_scipy().toarray()
    neumann = DiffusionOperator((n, n, n), 1.0, "neumann").to_scipy().toarray()
    np.testing.assert_array_equal(assemble(fluid, "air").toarray(), dirichlet)
    np.testing.assert_array_equal(assemble(fluid, "solid").toarray(), neumann)


def test_pressure_systems_symmetric_definite_and_compatible():
    from scipy import ndimage

    definite = PressurePoissonGenerator(n=6, rhs=2, free_surface=1.0, fill_min=0.5, fill_max=0.7, max_size=0.2)
    singular = PressurePoissonGenerator(n=6, rhs=2, free_surface=0.0, boundary="solid", max_size=0.2)
    for gen, spd in ((definite, True), (singular, False)):
        for i in range(3):
            s = gen.sample(i, seed=1)
            flags = s["flags"]
            assert bool(s["definite"]) == spd == anchored(flags, gen.boundary)
            N = flags.size
            A = scipy.sparse.csr_array((s["data"], s["indices"], s["indptr"]), shape=(N, N))
            F = fluid_matrix(A, flags).toarray()
            np.testing.assert_array_equal(F, F.T)
            lam = np.linalg.eigvalsh(F)
            rhs = s["rhs"].reshape(gen.rhs, -1)
            np.testing.assert_allclose(np.linalg.norm(rhs, axis=1), 1.0, rtol=1e-12)
            assert (rhs[:, flags.ravel() != FLUID] == 0).all()
            if spd:
                assert lam[0] > 1e-3
                assert (flags == AIR).any()
            else:  # closed box: one null vector (the constant) per fluid region; rhs sum to 0 on each
                labels, count = ndimage.label(flags == FLUID)
                assert abs(lam[0]) < 1e-10 and np.sum(np.abs(lam) < 1e-10) == count and lam[count] > 1e-3
                for c in range(1, count + 1):
                    assert abs(rhs[:, labels.ravel() == c].sum(axis=1)).max() < 1e-12


def test_pressure_poisson_file_roundtrip(workdir, capsys):
    (workdir / "pp.toml").write_text('num = 2\nout = "pp.h5"\nblock = 1\n[generator]\nname = "pressure-poisson"\nn = 5\nrhs = 3\n')
    assert main(["data", "generate", "pp.toml"]) == 0
    assert "2/2" in capsys.readouterr().err  # the progress bar
    gen = load_recipe(workdir / "pp.toml").generator
    with h5py.File(workdir / "pp.h5", "r") as f:
        assert f["rhs"].shape == (2, 3, 5, 5, 5) and f["indptr"].shape == (2, 126) and f["flags"].dtype == np.uint8
        assert f["indices"].shape == (2,) and f.attrs["flag_meanings"] == "0 fluid, 1 solid, 2 air"
        for i in range(2):
            A, flags, rhs = load_system(f, i)
            np.testing.assert_array_equal(A.toarray(), assemble(flags, "solid").toarray())
            np.testing.assert_allclose(rhs, gen.sample(i, 0)["rhs"], rtol=1e-6, atol=1e-7)  # stored in float32


# --- image patches ------------------------------------------------------------------------------

def test_image_patches_are_cut_from_the_image_with_the_recorded_noise(workdir):
    from PIL import Image

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(20, 24), dtype=np.uint8)
    Image.fromarray(image).save(workdir / "img.png")
    (workdir / "p.toml").write_text('num = 40\nout = "p.h5"\nblock = 16\n[generator]\nname = "image-patches"\n'
                                    'image = "img.png"\npatch = 6\nsigma_min = 0.05\nsigma_max = 0.2\n')
    assert main(["data", "generate", "p.toml", "-q"]) == 0
    data = read(workdir / "p.h5")
    assert data["clean"].shape == data["noisy"].shape == (40, 1, 6, 6) and data["sigma"].shape == (40,)
    img = torch.from_numpy(image.astype(np.float32) / 255)
    windows = img.unfold(0, 6, 1).unfold(1, 6, 1).reshape(-1, 6, 6)  # every 6 x 6 window
    views = torch.cat([torch.rot90(windows, r, dims=(-2, -1)).flip(-1) if f else torch.rot90(windows, r, dims=(-2, -1))
                       for f in (0, 1) for r in range(4)])
    for patch in torch.from_numpy(data["clean"][:, 0]):
        assert bool((views - patch).abs().amax(dim=(-2, -1)).min() < 1e-7)
    assert ((data["sigma"] >= 0.05) & (data["sigma"] <= 0.2)).all()
    ratio = (data["noisy"] - data["clean"]).std(axis=(1, 2, 3)) / data["sigma"]
    assert 0.6 < ratio.min() and ratio.max() < 1.5 and abs(ratio.mean() - 1) < 0.1
    (workdir / "q.toml").write_text('num = 1\nout = "q.h5"\n[generator]\nname = "image-patches"\nimage = "none.png"\n')
    assert main(["data", "generate", "q.toml"]) == 2


# --- recipes and the command line ------------------------------------------------------------------

def test_shipped_recipes_are_valid():
    recipes = sorted((ROOT / "datasets").glob("*.toml"))
    names = {}
    for path in recipes:
        r = load_recipe(path)
        names[path.stem] = r
        assert r.out.suffix == ".h5" and r.num >= 1
    assert {r.generator.name for r in names.values()} == set(GENERATORS)
    assert names["darcy_r85"].generator.resolution == 85 and names["darcy_r421"].generator.resolution == 421
    assert (names["darcy_r85"].generator.a_pos, names["darcy_r85"].generator.a_neg) == (12.0, 3.0)
    assert [names[f"ns_v1e-{k}"].generator.viscosity for k in (3, 4, 5)] == [1e-3, 1e-4, 1e-5]


@pytest.mark.parametrize("text, key", [
    ('out = "x.h5"\n[generator]\nname = "darcy"\n', "num"),
    ('num = 2\n[generator]\nname = "darcy"\n', "out"),
    ('num = 2\nout = "x.h5"\n', "generator"),
    ('num = 2\nout = "x.h5"\n[generator]\nresolution = 9\n', "generator.name"),
    ('num = 2\nout = "x.h5"\n[generator]\nname = "burgers"\n', "generator.name"),
    ('num = 2\nout = "x.h5"\n[generator]\nname = "darcy"\nresolution = "big"\n', "generator.resolution"),
    ('num = 2\nout = "x.h5"\n[generator]\nname = "darcy"\nresolution = 3\n', "generator.resolution"),
    ('num = 2\nout = "x.h5"\n[generator]\nname = "darcy"\nalpha = true\n', "generator.alpha"),
    ('num = 2\nout = "x.h5"\n[generator]\nname = "darcy"\nsource = "sin(q)"\n', "generator.source"),
    ('num = 2\nout = "x.h5"\n[generator]\nname = "darcy"\nresoluton = 9\n', "generator.resoluton"),
    ('num = "2"\nout = "x.h5"\n[generator]\nname = "darcy"\n', "num"),
    ('num = 2\nout = "x.h5"\ndtype = "float16"\n[generator]\nname = "darcy"\n', "dtype"),
    ('num = 2\nout = "x.h5"\nextra = 1\n[generator]\nname = "darcy"\n', "extra"),
    ('num = 2\nout = "x.h5"\n[generator]\nname = "navier-stokes"\nT = 1.0\nrecord_steps = 3\n', "generator.record_steps"),
    ('num = 2\nout = "x.h5"\n[generator]\nname = "navier-stokes"\nresolution = 64\nsolver_resolution = 100\n',
     "generator.solver_resolution"),
    ('num = 2\nout = "x.h5"\n[generator]\nname = "pressure-poisson"\nmin_solids = 3\nmax_solids = 2\n',
     "generator.max_solids"),
    ('num = 2\nout = "x.h5"\n[generator]\nname = "pressure-poisson"\nboundary = "open"\n', "generator.boundary"),
    ('num = 2\nout = "x.h5"\n[generator]\nname = "image-patches"\n', "generator.image"),
])
def test_recipe_errors_exit_2_naming_file_and_key(tmp_path, monkeypatch, capsys, text, key):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.toml").write_text(text)
    assert main(["data", "generate", "bad.toml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: bad.toml: {key}: ") and "Traceback" not in err
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "x.h5.partial").exists()


def test_cli_subprocess_reports_errors_without_traceback(tmp_path):
    (tmp_path / "bad.toml").write_text('num = 2\nout = "x.h5"\n[generator]\nname = "nope"\n')
    proc = subprocess.run([sys.executable, "-m", "sciml", "data", "generate", "bad.toml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "bad.toml: generator.name: unknown generator 'nope'" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_lists_generators_and_their_options(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in GENERATORS) and "resolution = 85" in out and 'forcing = "fno"' in out
