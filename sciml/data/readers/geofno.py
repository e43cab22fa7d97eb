"""`GeoFNODataset`: the structured-mesh benchmarks of Geo-FNO that the LSM paper trains on (Pipe,
Airfoil, Elasticity-G), read from the published `.npy` files.

```python
GeoFNODataset("data/pipe", "pipe")                  # items x (2, 129, 129) mesh coordinates, y (129, 129)
GeoFNODataset("data/airfoil", "airfoil")            # x (2, 221, 51), y (221, 51) Mach number
GeoFNODataset("data/elasticity", "elasticity-grid") # x (41, 41) mask, y (41, 41) stress, mask (41, 41)
```

Layouts (read from the LSM code, `exp_pipe.py`, `exp_airfoils.py`, `exp_elas_interp.py`):

| problem | files in `path` | arrays | output | paper split (LSM scripts) |
|---|---|---|---|---|
| pipe | `Pipe_X.npy`, `Pipe_Y.npy`, `Pipe_Q.npy` | X, Y `(N, 129, 129)`, Q `(N, C, 129, 129)` | `Q[:, 0]`, horizontal velocity | train 0..1000, test 1000..1200 |
| airfoil | `naca/NACA_Cylinder_{X,Y,Q}.npy` (or directly in `path`) | X, Y `(N, 221, 51)`, Q `(N, C, 221, 51)` | `Q[:, 4]`, Mach number | train 0..1000, test 1000..1200 |
| elasticity-grid | `Interp/Random_UnitCell_{mask,sigma}_10_interp.npy` (or directly in `path`) | mask, sigma `(41, 41, N)`: samples LAST | sigma; predictions are multiplied by the mask (loss `masked-relative-l2`) | train 0..1000, test 1800..2000 |

The mesh problems take the point coordinates (x, y) of the deformed structured mesh as the two input
channels; the LSM model appends its own uniform grid to them, as the official model does. With
`splits` left out the paper's ranges are used, the test range as `val` (what the trainer evaluates).
Arrays are memory-mapped, so only the requested sample is read.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..base import DataError, FieldDataset, check_stride, make_builder, missing_file
from ..registry import register_dataset

# problem -> (subfolder tried first, {role: file name}, default output channel, paper split)
LAYOUTS: dict[str, tuple[str, dict[str, str], int | None, dict[str, list[int]]]] = {
    "pipe": ("", {"x": "Pipe_X.npy", "y": "Pipe_Y.npy", "q": "Pipe_Q.npy"}, 0,
             {"train": [0, 1000], "val": [1000, 1200]}),
    "airfoil": ("naca", {"x": "NACA_Cylinder_X.npy", "y": "NACA_Cylinder_Y.npy", "q": "NACA_Cylinder_Q.npy"}, 4,
                {"train": [0, 1000], "val": [1000, 1200]}),
    "elasticity-grid": ("Interp", {"mask": "Random_UnitCell_mask_10_interp.npy",
                                   "q": "Random_UnitCell_sigma_10_interp.npy"}, None,
                        {"train": [0, 1000], "val": [1800, 2000]}),
}


def _locate(directory: Path, problem: str) -> dict[str, Path]:
    """The problem's files: in `directory/<subfolder>` if there, else in `directory`."""
    sub, names, _, _ = LAYOUTS[problem]
    for base in ([directory / sub] if sub else []) + [directory]:
        if all((base / n).is_file() for n in names.values()):
            return {role: base / n for role, n in names.items()}
    base = directory / sub if sub and (directory / sub).is_dir() else directory
    missing = next(base / n for n in names.values() if not (base / n).is_file())
    raise missing_file(missing, f"Geo-FNO {problem}")


class GeoFNODataset(FieldDataset):
    """Items of a Geo-FNO structured-mesh benchmark (see the module docstring).

    Args:
        path: the data directory (the LSM scripts' `--data-path`).
        problem: "pipe", "airfoil" or "elasticity-grid".
        output: which channel of Q is the target (default: the paper's, 0 for pipe, 4 for airfoil);
            not for elasticity-grid.
        r: subsampling stride of both mesh axes (the scripts' `--h-down`/`--w-down`).
        splits: default the paper's ranges (above); others as in `FieldDataset`.
        Others: see `FieldDataset` (`normalize` takes the aliases "x", "y").

    Raises:
        FileNotFoundError: a file of the layout is missing (the message names it).
        ValueError (`DataError`): unknown problem, arrays whose shapes do not fit together (naming the
            file), an output channel out of range.
    """

    kind = "Geo-FNO"
    _fork_safe_handle = True  # memory maps survive fork

    def __init__(self, path: str | Path, problem: str | None = None, *, output: int | None = None, r: int = 1,
                 split: str = "train", splits: Any = None, shuffle: bool = False, seed: int = 0,
                 normalize: Any = None, channel_axis: Any = None, stats_file: Any = None, dtype: Any = torch.float32):
        directory = Path(path)
        if problem not in LAYOUTS:
            raise DataError(directory, "problem", f"expected one of {', '.join(LAYOUTS)}, got {problem!r}")
        if not directory.is_dir():
            raise DataError(directory, "path", f"expected the directory holding the Geo-FNO {problem} .npy files")
        self.problem, self.directory = problem, directory
        self.r = check_stride(r, directory)
        self.files = _locate(directory, problem)
        default_output = LAYOUTS[problem][2]
        if default_output is None and output is not None:
            raise DataError(directory, "output", f"the {problem} problem has one output field; leave output out")
        self.output = default_output if output is None else output
        if self.output is not None and (isinstance(self.output, bool) or not isinstance(self.output, int)):
            raise DataError(directory, "output", f"expected the integer channel of Q, got {output!r}")
        super().__init__(self.files["q"], split=split, splits=LAYOUTS[problem][3] if splits is None else splits,
                         shuffle=shuffle, seed=seed, normalize=normalize, channel_axis=channel_axis,
                         stats_file=stats_file, dtype=dtype)

    # ---- metadata -------------------------------------------------------------------------------
    def _load(self) -> dict[str, np.ndarray]:
        out = {}
        for role, f in self.files.items():
            try:
                out[role] = np.load(f, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError) as err:
                raise DataError(f, "", f"cannot read as a .npy array ({err})") from None
        return out

    def _inspect(self) -> int:
        arrays = self._load()
        q = arrays["q"]
        if self.problem == "elasticity-grid":
            m = arrays["mask"]
            if m.ndim != 3 or q.shape != m.shape:
                raise DataError(self.files["q"], "", f"expected an (H, W, N) array like the mask {m.shape}, "
                                                     f"got shape {q.shape}")
            self.fields = {"x": "mask", "y": "sigma", "mask": "mask"}
            return q.shape[-1]
        x, y = arrays["x"], arrays["y"]
        if x.ndim != 3 or y.shape != x.shape:
            raise DataError(self.files["y"], "", f"expected (N, H, W) mesh coordinates of the shape of "
                                                 f"{self.files['x'].name} {x.shape}, got {y.shape}")
        if q.ndim != 4 or q.shape[0] != x.shape[0] or q.shape[2:] != x.shape[1:]:
            raise DataError(self.files["q"], "", f"expected (N, C, H, W) = ({x.shape[0]}, C, {x.shape[1]}, "
                                                 f"{x.shape[2]}) to match the mesh, got {q.shape}")
        if not 0 <= self.output < q.shape[1]:
            raise DataError(self.files["q"], "output", f"channel {self.output} out of range: Q has {q.shape[1]} channels")
        self.fields = {"x": "X, Y", "y": f"Q[:, {self.output}]"}
        return x.shape[0]

    # ---- reading --------------------------------------------------------------------------------
    def _open(self) -> dict[str, np.ndarray]:
        return self._load()

    def _close(self, handle: Any) -> None:
        pass

    def _read_item(self, h: dict[str, np.ndarray], sample: int, sub: int) -> dict[str, np.ndarray]:
        s = slice(None, None, self.r)
        if self.problem == "elasticity-grid":
            mask = np.array(h["mask"][s, s, sample])
            return {"x": mask, "y": np.array(h["q"][s, s, sample]), "mask": mask}
        coords = np.stack([h["x"][sample, s, s], h["y"][sample, s, s]])
        return {"x": coords, "y": np.array(h["q"][sample, self.output, s, s])}

    def _normalizable_keys(self) -> list[str]:
        return ["x", "y"]

    def _stats_source(self, alias: str) -> dict[str, Any]:
        return {"problem": self.problem, "field": self.fields[alias], "r": self.r}


register_dataset("geo-fno")(make_builder(GeoFNODataset, "geo-fno"))
