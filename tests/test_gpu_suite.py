"""benchmarks/gpu_suite.py, the prepared single-script GPU run, works end to end (here on the CPU, --quick)."""
import json
import sys

from helpers import BENCHMARKS, load_example


def test_gpu_suite_quick_on_cpu(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # it imports dcdm_vs_cg's held-out scenes
    suite = load_example("gpu_suite", BENCHMARKS)
    monkeypatch.setattr(sys, "argv", ["gpu_suite.py", "--device", "cpu", "--quick", "--out", str(tmp_path)])
    suite.ROWS.clear()
    suite.main()
    rows = json.loads((tmp_path / "gpu_suite.json").read_text())["rows"]
    tables = {r["table"] for r in rows}
    assert tables == {"bandwidth", "cg-single", "cg-batched", "check-every", "fast-poisson", "dcdm", "darcy", "dds"}
    assert all(r["rel_residual"] <= 1e-4 for r in rows if r["table"] == "dcdm")
    assert all(r["worst_rel_residual"] <= 2e-6 for r in rows if r["table"] == "cg-batched")
    assert len({r["iterations"] for r in rows if r["table"] == "check-every"}) == 1  # host checks never change the answer
    lsm = next(r for r in rows if r["table"] == "darcy" and r["method"].startswith("LSM"))
    assert lsm["rel_l2"] < 0.05
    dds = [r for r in rows if r["table"] == "dds"]
    assert [r["batch"] for r in dds] == [1, 2] and all(r["psnr_db"] > 12 for r in dds)
    assert (tmp_path / "gpu_suite.md").read_text().startswith("# ")
