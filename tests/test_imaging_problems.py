"""Simulated imaging experiments (sciml.problems.imaging) and `kind = "mri" | "ct"` configs."""
from pathlib import Path

import pytest
import torch

import sciml
from sciml import config as config_mod
from sciml._toml import ConfigError
from sciml.cli import main
from sciml.metrics import psnr
from sciml.problems.imaging import ct_case, load_image, mri_case

ROOT = Path(__file__).resolve().parents[1]
SLICES = ROOT / "datasets" / "mri" / "mni152_slices.h5"


def test_load_image_picks_the_split_and_resamples():
    import h5py

    with h5py.File(SLICES) as f:
        raw = torch.from_numpy(f["images"][int(f["test_index"][2])]).double()
    full = load_image(SLICES, index=2, split="test_index")
    torch.testing.assert_close(full, raw)
    half = load_image(SLICES, 64, index=2, split="test_index")
    torch.testing.assert_close(half, raw.reshape(64, 2, 64, 2).mean(dim=(1, 3)))  # area averaging
    with pytest.raises(IndexError, match="index 10 out of range for 10"):
        load_image(SLICES, index=10, split="test_index")
    with pytest.raises(KeyError, match="no dataset 'nope'"):
        load_image(SLICES, variable="nope")
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        load_image("missing.h5")


def test_mri_case_noise_level_and_scores():
    image = load_image(SLICES, 48, index=0, split="test_index")
    case = mri_case(image, coils=4, acceleration=3.0, noise=0.01, seed=3)
    A, y = case.problem.forward, case.problem.y
    residual = (y - A @ case.truth) * case.extras["mask"]
    n = int(case.extras["mask"].sum()) * 4
    measured = float(residual.abs().pow(2).sum() / (2 * n)) ** 0.5  # per real component
    assert measured == pytest.approx(case.problem.noise_std, rel=0.05)
    assert case.scores(case.truth)["psnr"] > 250 and case.scores(case.truth)["ssim"] == pytest.approx(1.0)
    again = mri_case(image, coils=4, acceleration=3.0, noise=0.01, seed=3)
    torch.testing.assert_close(again.problem.y, y)  # reproducible from the seed
    # the calibration phase is close to the true phase where the image is bright
    bright = image > 0.3
    dphi = torch.angle(torch.exp(1j * (case.extras["phase"] - case.truth.angle())))[bright]
    assert float(dphi.abs().median()) < 0.2  # measured 0.11 (4 calibration lines at 48²); random phase: pi/2


def test_ct_case_scores_match_metrics():
    image = load_image("shepp-logan", 32)
    case = ct_case(image, views=12, noise=0.0)
    torch.testing.assert_close(case.problem.y, case.problem.forward @ image)
    noisy = image + 0.05
    assert case.scores(noisy)["psnr"] == pytest.approx(float(psnr(noisy, image, 1.0)))
    assert case.scores(noisy)["psnr"] == pytest.approx(26.02, abs=0.01)  # 20 log10(1 / 0.05)


def _write(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text.replace("SLICES", str(SLICES)))
    return path


CT = """
[problem]
kind = "ct"
image = {file = "SLICES", split = "test_index", index = 1}
size = 32
views = 16
noise = 0.01

[solver]
name = "tv"
lam = 0.3
maxiter = 60

[output]
name = "ct-tv"
"""


def test_ct_config_solves_and_records_psnr(tmp_path):
    import xarray as xr

    path = _write(tmp_path, CT)
    cfg = config_mod.load(path)
    assert isinstance(cfg.problem(), sciml.InverseProblem)
    main(["solve", str(path), "--outdir", str(tmp_path)])
    with xr.open_dataset(tmp_path / "ct-tv.nc", engine="h5netcdf") as ds:
        x = torch.from_numpy(ds["x"].values)
        attrs = dict(ds.attrs)
    assert attrs["psnr"] == pytest.approx(cfg.case().scores(x)["psnr"], abs=1e-6)
    assert attrs["psnr"] > cfg.case().scores(cfg.problem().forward.adjoint(cfg.problem().y) * 0)["psnr"] + 5
    assert (tmp_path / "ct-tv.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("edit, key", [
    (('kind = "ct"', 'kind = "pet"'), "problem.kind"),
    (('index = 1', 'index = 99'), "problem.image"),
    (('file = "SLICES"', 'file = "nope.h5"'), "problem.image.file"),
    (('views = 16', 'views = 0'), "problem.views"),
    (('size = 32', 'size = 2'), "problem.size"),
    (('maxiter = 60', 'maxiter = 60\nphase = "calibration"'), "solver.phase"),
])
def test_imaging_config_errors_name_the_key(tmp_path, edit, key):
    path = _write(tmp_path, CT.replace(*edit))
    with pytest.raises(ConfigError) as err:
        config_mod.load(path).solver()
    assert f": {key}:" in str(err.value)


def test_solver_error_blames_the_option_it_names(tmp_path):
    """A bad `eta` next to a `model` path (which alone cannot build a solver) names solver.eta."""
    prior = ROOT / "datasets" / "mri" / "ddpm_mni152"
    text = CT.replace('name = "tv"\nlam = 0.3\nmaxiter = 60', f'name = "dds"\nmodel = "{prior}"\neta = 2.0')
    with pytest.raises(ConfigError) as err:
        config_mod.load(_write(tmp_path, text))
    assert ": solver.eta: " in str(err.value)
