"""The command line end to end: `sciml solve/check/list` on small copies of the shipped configs,
option overrides, data-file inputs, and bad configs (exit 2, file and key named, no traceback,
nothing written). Most runs are in-process (`sciml.cli.main`); a few go through a real
`python -m sciml` subprocess."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sciml.cli import main

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SOURCE = 'source = "5*pi**2*sin(pi*x)*sin(2*pi*y)"'
EXACT_ERROR_31 = 1.762e-3  # rel_l2_error of poisson2d.toml on a 31x31 grid (h = 1/32)
SUMMARY = re.compile(
    r"^small: cg: converged, iterations (?P<it>\d+), residual (?P<res>[0-9.e+-]+), "
    r"rel_l2_error (?P<err>[0-9.e+-]+), time (?P<time>[0-9.]+) s -> (?P<files>.+)$"
)


def small_config() -> str:
    """solvers/poisson2d.toml with a 31x31 grid."""
    text = (ROOT / "solvers" / "poisson2d.toml").read_text()
    assert "points = [255, 255]" in text and SOURCE in text
    return text.replace("points = [255, 255]", "points = [31, 31]")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty folder as the working directory, with small.toml in it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small.toml").write_text(small_config())
    return tmp_path


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def open_nc(path: Path):
    import xarray as xr

    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sciml", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def nodes(n: int) -> np.ndarray:
    return np.arange(1, n + 1) / (n + 1)


# --- solve ----------------------------------------------------------------------------------------
def test_solve_subprocess_writes_netcdf_and_png(workdir):
    proc = run_cli("solve", "small.toml", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    line = proc.stdout.strip()
    assert "\n" not in line
    m = SUMMARY.match(line)
    assert m, line
    out = workdir / "out"  # [output] dir of the config, relative to the working directory
    assert sorted(os.listdir(out)) == ["small.nc", "small.png"]  # no temporary files left
    assert m["files"] == "out/small.nc, out/small.png"
    assert (out / "small.png").read_bytes()[:8] == PNG_MAGIC
    ds = open_nc(out / "small.nc")
    assert ds["u"].shape == (31, 31) and ds["u"].dtype == np.float64
    np.testing.assert_allclose(ds["x"].values, nodes(31))
    # the printed numbers are those in the file, and they are right
    assert int(ds["iterations"]) == int(m["it"])
    assert float(m["err"]) == pytest.approx(float(ds.attrs["rel_l2_error"]), rel=5e-3)
    assert float(ds.attrs["rel_l2_error"]) == pytest.approx(EXACT_ERROR_31, rel=1e-3)
    assert float(m["res"]) <= 1e-10 and float(m["time"]) == pytest.approx(float(ds.attrs["time_s"]), abs=1e-3)
    err = np.linalg.norm(ds["u"].values - ds["exact"].values) / np.linalg.norm(ds["exact"].values)
    assert err == pytest.approx(float(ds.attrs["rel_l2_error"]), rel=1e-10)
    assert ds.attrs["solver"] == "cg" and ds.attrs["status"] == "SUCCESS"


def test_solve_outdir_dtype_device(workdir, capsys):
    cfg = workdir / "small.toml"
    cfg.write_text(cfg.read_text().replace("rtol = 1e-10", "rtol = 1e-5"))  # reachable in float32
    assert main(["solve", str(cfg), "-o", "elsewhere", "--dtype", "float32", "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.startswith("small: cg: converged") and out.count("\n") == 1
    assert sorted(files_under(workdir)) == ["elsewhere", "elsewhere/small.nc", "elsewhere/small.png", "small.toml"]
    ds = open_nc(workdir / "elsewhere" / "small.nc")
    assert ds["u"].dtype == np.float32
    assert float(ds.attrs["rel_l2_error"]) == pytest.approx(EXACT_ERROR_31, rel=2e-2)  # the O(h²) error, not round-off
    assert ds.attrs["info"].count('"rtol": 1e-05') == 1


def test_solve_without_plot_and_with_output_name(workdir, capsys):
    cfg = workdir / "small.toml"
    text = cfg.read_text().replace('dir = "out"', f'dir = "{workdir / "res"}"\nname = "named"').replace("plot = true", "plot = false")
    cfg.write_text(text)
    assert main(["solve", str(cfg)]) == 0
    assert os.listdir(workdir / "res") == ["named.nc"]
    assert capsys.readouterr().out.startswith("named: cg: converged")


def test_solve_reports_non_convergence(workdir, capsys):
    cfg = workdir / "small.toml"
    cfg.write_text(cfg.read_text().replace("rtol = 1e-10", "rtol = 1e-10\nmaxiter = 5"))
    assert main(["solve", str(cfg), "-o", "o"]) == 1  # results are written, the exit code says it failed
    out, err = capsys.readouterr()
    assert "max_iterations, iterations 5" in out
    assert "warning: maximum number of iterations" in err
    ds = open_nc(workdir / "o" / "small.nc")
    assert ds.attrs["status"] == "MAX_ITERATIONS" and int(ds.attrs["converged"]) == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda(workdir, capsys):
    cfg = str(workdir / "small.toml")
    assert main(["solve", cfg, "--device", "cuda"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and f"{cfg}: --device: cuda requested but no CUDA device" in err
    assert files_under(workdir) == {"small.toml"}


@pytest.mark.gpu
def test_solve_on_cuda(workdir, capsys):
    assert main(["solve", "small.toml", "-o", "o", "--device", "cuda"]) == 0
    assert capsys.readouterr().out.startswith("small: cg: converged")
    ds = open_nc(workdir / "o" / "small.nc")
    assert float(ds.attrs["rel_l2_error"]) == pytest.approx(EXACT_ERROR_31, rel=1e-3)
    assert (workdir / "o" / "small.png").read_bytes()[:8] == PNG_MAGIC


def test_bad_command_line(workdir, capsys):
    for argv in (["solve", "small.toml", "--dtype", "float16"], ["frobnicate"], []):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    assert files_under(workdir) == {"small.toml"}


# --- check, list ------------------------------------------------------------------------------------
def test_check_writes_nothing(workdir, capsys):
    assert main(["check", "small.toml"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "small.toml: ok (poisson on a 31x31 grid, bc dirichlet/dirichlet; solver cg)"
    assert err == ""
    assert files_under(workdir) == {"small.toml"}


@pytest.mark.parametrize("name", ["poisson2d.toml", "helmholtz2d.toml", "variable-coefficient2d.toml"])
def test_check_shipped_configs(name, capsys):
    assert main(["check", str(ROOT / "solvers" / name)]) == 0
    assert ": ok (" in capsys.readouterr().out


def test_list(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["solver", "accepts", "description"]
    cg = next(line for line in lines if line.split()[0] == "cg")
    assert "LinearProblem, PDEProblem, InverseProblem" in cg and "Conjugate gradients" in cg


# --- bad configs ---------------------------------------------------------------------------------
def _drop_problem(text: str) -> str:
    return text[: text.index("[problem]")] + text[text.index("[solver]"):]


BAD = {
    # id: (edit of the small config, key named in the message, words in the message)
    "missing-problem": (_drop_problem, "problem", "missing table"),
    "missing-source": (lambda t: t.replace(SOURCE + "\n", ""), "problem.source", "missing"),
    "unknown-key": (lambda t: t.replace('equation = "poisson"', 'equation = "poisson"\nsorce = "1"'),
                    "problem.sorce", "unknown key"),
    "wrong-type": (lambda t: t.replace("points = [31, 31]", 'points = "big"'), "problem.grid.points", "got a string"),
    "bad-points": (lambda t: t.replace("points = [31, 31]", "points = [31, 1]"), "problem.grid.points", ">= 2"),
    "bad-bc": (lambda t: t.replace('bc = "dirichlet"', 'bc = "robin"'), "problem.grid.bc", "'robin'"),
    "bad-bounds": (lambda t: t.replace("upper = [1.0, 1.0]", "upper = [1.0]"), "problem.grid.upper", "2 finite numbers"),
    "unknown-name": (lambda t: t.replace(SOURCE, 'source = "5*foo*x"'), "problem.source", "unknown name 'foo'"),
    "unknown-function": (lambda t: t.replace(SOURCE, 'source = "bessel(x)"'), "problem.source", "unknown function"),
    "unsafe-expression": (lambda t: t.replace(SOURCE, "source = \"__import__('os').getcwd()\""), "problem.source",
                          "unknown function"),
    "nonfinite-expression": (lambda t: t.replace(SOURCE, 'source = "log(x - 0.5)"'), "problem.source", "not a finite"),
    "huge-power": (lambda t: t.replace(SOURCE, 'source = "9**9**9*x"'), "problem.source", "OverflowError"),
    "bad-equation": (lambda t: t.replace('equation = "poisson"', 'equation = "heat"'), "problem.equation", "heat"),
    "unknown-solver": (lambda t: t.replace('name = "cg"', 'name = "gmresx"'), "solver.name", "registered solvers: bicgstab, cg,"),
    "missing-solver-name": (lambda t: t.replace('name = "cg"\n', ""), "solver.name", "missing"),
    "unknown-option": (lambda t: t.replace("rtol = 1e-10", "tol = 1e-10"), "solver.tol", "valid options: rtol"),
    "bad-option-value": (lambda t: t.replace("rtol = 1e-10", "rtol = -1.0"), "solver.rtol", ">= 0"),
    "helmholtz-without-k": (lambda t: t.replace('equation = "poisson"', 'equation = "helmholtz"'), "problem.k", "missing"),
    "a-for-poisson": (lambda t: t.replace('equation = "poisson"', 'equation = "poisson"\na = 2.0'), "problem.a",
                      "not used by equation 'poisson'"),
    "bad-dtype": (lambda t: t.replace('equation = "poisson"', 'equation = "poisson"\ndtype = "float16"'),
                  "problem.dtype", "float16"),
    "bad-output-name": (lambda t: t.replace('dir = "out"', 'dir = "out"\nname = "../x"'), "output.name", "plain file stem"),
    "missing-data-file": (lambda t: t.replace(SOURCE, 'source = {file = "missing.npy"}'), "problem.source.file",
                          "no such file"),
    "wrong-shape-data-file": (lambda t: t.replace(SOURCE, 'source = {file = "f10.npy"}'), "problem.source.file",
                              "shape (10, 10), expected the grid's points (31, 31)"),
    "data-file-bad-key": (lambda t: t.replace(SOURCE, 'source = {file = "f10.npy", varname = "f"}'),
                          "problem.source.varname", "unknown key"),
    "unsupported-data-file": (lambda t: t.replace(SOURCE, 'source = {file = "small.toml"}'), "problem.source.file",
                              "unsupported file type"),
    "invalid-toml": (lambda t: t.replace("[solver]", "[solver"), "", "not valid TOML"),
}


@pytest.mark.parametrize("command", ["solve", "check"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config(case, command, workdir, capsys):
    edit, key, words = BAD[case]
    np.save(workdir / "f10.npy", np.zeros((10, 10)))
    cfg = workdir / "bad.toml"
    cfg.write_text(edit(small_config()))
    before = files_under(workdir)
    assert main([command, str(cfg), "-o", "o"] if command == "solve" else [command, str(cfg)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert f"{cfg}: {key}: " in err if key else f"{cfg}: " in err, err
    assert words in err
    assert "Traceback" not in err
    assert files_under(workdir) == before  # nothing written


@pytest.mark.parametrize("command", ["solve", "check"])
def test_nonexistent_config(command, workdir, capsys):
    assert main([command, "nope.toml"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: nope.toml: no such file"
    assert files_under(workdir) == {"small.toml"}


def test_bad_config_subprocess_has_no_traceback(workdir):
    (workdir / "bad.toml").write_text(small_config().replace("points = [31, 31]", 'points = "big"'))
    proc = run_cli("solve", "bad.toml", cwd=workdir)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: bad.toml: problem.grid.points: expected an array of 1-3 integers")
    assert files_under(workdir) == {"small.toml", "bad.toml"}


# --- data files ----------------------------------------------------------------------------------
def _source_on_grid(n: int = 31) -> np.ndarray:
    x, y = np.meshgrid(nodes(n), nodes(n), indexing="ij")
    return 5 * np.pi**2 * np.sin(np.pi * x) * np.sin(2 * np.pi * y)


def test_data_file_sources(workdir, capsys):
    import xarray as xr

    f = _source_on_grid()
    np.save(workdir / "f.npy", f)
    # a decoy variable first: the one named in the config must be read
    xr.Dataset({"decoy": (("x", "y"), np.ones_like(f)), "f": (("x", "y"), f)}).to_netcdf(workdir / "f.nc",
                                                                                          engine="h5netcdf")
    base = small_config()
    variants = {"expr": base,
                "npy": base.replace(SOURCE, 'source = {file = "f.npy"}'),
                "nc": base.replace(SOURCE, 'source = {file = "f.nc", variable = "f"}')}
    for name, text in variants.items():
        (workdir / f"{name}.toml").write_text(text.replace("plot = true", "plot = false"))
        assert main(["solve", f"{name}.toml", "-o", "o"]) == 0
    out = capsys.readouterr().out
    assert out.count("converged") == 3
    ref = open_nc(workdir / "o" / "expr.nc")
    for name in ("npy", "nc"):
        ds = open_nc(workdir / "o" / f"{name}.nc")
        np.testing.assert_allclose(ds["u"].values, ref["u"].values, rtol=1e-9, atol=1e-12)
        assert float(ds.attrs["rel_l2_error"]) == pytest.approx(EXACT_ERROR_31, rel=1e-3)
    # without `variable` the first one is read: the decoy (f = 1), a different solution
    (workdir / "first.toml").write_text(base.replace(SOURCE, 'source = {file = "f.nc"}').replace("plot = true", "plot = false"))
    assert main(["solve", "first.toml", "-o", "o"]) == 0
    assert float(open_nc(workdir / "o" / "first.nc").attrs["rel_l2_error"]) > 0.5
    # a missing variable is a config error naming the key
    (workdir / "novar.toml").write_text(base.replace(SOURCE, 'source = {file = "f.nc", variable = "g"}'))
    assert main(["check", "novar.toml"]) == 2
    assert "novar.toml: problem.source.file: cannot read f.nc" in capsys.readouterr().err


def test_data_file_coefficient(workdir, capsys):
    # variable-coefficient2d.toml with a = 1 + x² + y² read from a node-value .npy file
    text = (ROOT / "solvers" / "variable-coefficient2d.toml").read_text()
    assert 'a = "1 + x**2 + y**2"' in text
    x, y = np.meshgrid(nodes(31), nodes(31), indexing="ij")
    np.save(workdir / "a.npy", 1 + x**2 + y**2)
    for name, a in (("faces", 'a = "1 + x**2 + y**2"'), ("file", 'a = {file = "a.npy"}')):
        cfg = text.replace('a = "1 + x**2 + y**2"', a).replace("points = [255, 255]", "points = [31, 31]")
        (workdir / f"{name}.toml").write_text(cfg + '\n[output]\nplot = false\n')
        assert main(["solve", f"{name}.toml", "-o", "o"]) == 0
    capsys.readouterr()
    e_faces = float(open_nc(workdir / "o" / "faces.nc").attrs["rel_l2_error"])
    e_file = float(open_nc(workdir / "o" / "file.nc").attrs["rel_l2_error"])
    assert e_faces < 3e-3 and e_file < 2 * e_faces


def test_every_shipped_solver_config_is_valid():
    """Each solvers/*.toml loads (problem and solver options validated, models read) from a clean clone;
    poseidon-finetune.toml reads what examples/poseidon_finetune.py writes, so it is checked only then."""
    from sciml import config as config_mod

    needs_example = {"poseidon-finetune.toml": ROOT / "out" / "poseidon_finetune" / "finetuned"}
    paths = sorted((ROOT / "solvers").glob("*.toml"))
    checked = 0
    for path in paths:
        if path.name in needs_example and not needs_example[path.name].exists():
            continue
        config_mod.load(path)
        checked += 1
    assert len(paths) >= 19 and checked >= len(paths) - len(needs_example)
