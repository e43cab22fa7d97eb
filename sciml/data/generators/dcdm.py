r"""DCDM training data: obstacle scenes and right-hand sides built from Ritz vectors of their matrices.

The Deep Conjugate Direction Method (Kaneda et al., ICML 2023) trains its network without solutions:
only right-hand sides b and the matrix A enter the loss. Its training vectors are random combinations
of Ritz vectors of A, biased to the low end of the spectrum (the modes CG resolves last):

1. m Lanczos steps on A (full reorthogonalisation) from :math:`v_0 = A x`, :math:`x \sim N(0, I)`
   (so :math:`v_0` lies in the range of A); Ritz pairs :math:`(\theta_j, y_j)` of :math:`T_m`, ascending.
2. :math:`b = \sum_j c_j y_j` with :math:`c_j \sim N(0, 1)`, multiplied by `low_weight` (paper: 9) for
   the lowest `low_fraction` (paper: 5500 of 10000, 0.55) of the Ritz vectors; Ritz values below
   1e-8 (null space) are dropped; b is normalised to unit 2-norm.

The paper uses one fixed matrix per resolution. Here every sample is a *scene* (cell flags of a 2-D or
3-D grid with solid obstacles) carrying `rhs` training vectors from the Ritz vectors of its own matrix,
so the network sees many obstacle layouts, and the matrix is rebuilt from the flags in training
(`pressure_coefficients` + `pressure_apply`, matrix-free; no matrix is stored).

The matrix is the pressure-Poisson one of `pressure_poisson.py` (DCDM convention): over all cells,
rows/columns of non-fluid cells empty, diagonal = number of non-solid neighbours, -1 per fluid
neighbour. Solids (and solid domain faces) are walls (Neumann), air cells and air domain faces hold
p = 0 (Dirichlet). Domain faces: "open-top" (walls, air above the last axis), or "air" (all faces
p = 0). Fluid regions that do not touch air are turned solid, so every scene is SPD on its fluid cells.
A 2-D scene is handled as a 3-D one of depth 1 with walls in the third direction.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ...linalg import lanczos
from ...operators import LinearOperator
from ..registry import register_dataset
from .base import FieldSpec, Generator, choice, integer, number, option_error, register_generator, sample_generator
from .grf import periodic_grf
from .pressure_poisson import AIR, FLUID, SOLID, PressurePoissonGenerator, _neighbours, _pad, divergence_rhs

FACES = ("open-top", "air")


def face_types(dim: int, boundary: str = "open-top") -> tuple[int, ...]:
    """The six face types (x-, x+, y-, y+, z-, z+) of the 3-D embedding of a `dim`-D grid."""
    if boundary not in FACES:
        raise ValueError(f"boundary must be one of {', '.join(FACES)}, got {boundary!r}")
    faces = [SOLID] * (2 * dim - 1) + [AIR] if boundary == "open-top" else [AIR] * (2 * dim)
    return tuple(faces + [SOLID] * (6 - 2 * dim))


def random_divergence(flags: np.ndarray, generator: torch.Generator, boundary: str = "open-top") -> torch.Tensor:
    """-h div u* of a random velocity field on the scene `flags` `(n,) * dim` (dim 2 or 3), scaled to unit
    norm, float64: each face-velocity component a periodic Gaussian random field (alpha 2.5, tau 3), the
    right-hand side a pressure projection meets (the held-out test vectors of the DCDM benchmark)."""
    flags = np.asarray(flags)
    dim, n = flags.ndim, flags.shape[0]
    comps = []
    for d in range(dim):
        z = torch.randn(2, *(n + 1,) * dim, dtype=torch.float64, generator=generator)
        field = periodic_grf(z[0], z[1], 2.5, 3.0, 1.0, dims=dim).numpy()
        comps.append(field[tuple(slice(0, n + 1 if a == d else n) for a in range(dim))])
    if dim == 2:
        comps = [c[..., None] for c in comps] + [np.zeros((n, n, 2))]
    b = divergence_rhs(_as3d(flags), comps, face_types(dim, boundary))
    b = b if dim == 3 else b[..., 0]
    return torch.as_tensor(b / np.linalg.norm(b))


def _as3d(flags: np.ndarray) -> np.ndarray:
    if flags.ndim not in (2, 3):
        raise ValueError(f"flags must be 2-D or 3-D, got shape {flags.shape}")
    return flags[..., None] if flags.ndim == 2 else flags


def pressure_coefficients(flags: np.ndarray, boundary: str = "open-top") -> tuple[np.ndarray, np.ndarray]:
    """(fluid, diag) of the scene `flags` `(n0, n1[, n2])`, float64 arrays of its shape: the fluid
    indicator and the diagonal of the matrix (number of non-solid neighbours of each fluid cell)."""
    f3 = _as3d(np.asarray(flags))
    padded = _pad(f3, face_types(flags.ndim, boundary))
    fluid = f3 == FLUID
    diag = np.zeros(f3.shape)
    for axis in range(3):
        for side in (-1, 1):
            diag += fluid & (_neighbours(padded, axis, side) != SOLID)
    return fluid.astype(np.float64).reshape(flags.shape), diag.reshape(flags.shape)


def pressure_apply(p: torch.Tensor, fluid: torch.Tensor, diag: torch.Tensor, dim: int) -> torch.Tensor:
    r""":math:`A p` for fields `p` `(..., *grid)` (`dim` grid axes); `fluid`, `diag` broadcast against `p`.

    :math:`(A p)_i = \mathrm{fluid}_i\,(\mathrm{diag}_i\,\tilde p_i - \sum_{j \sim i} \tilde p_j)`,
    :math:`\tilde p = \mathrm{fluid}\cdot p`: entries of p off the fluid cells are ignored. Differentiable.
    """
    pm = p * fluid
    out = diag * pm
    for axis in range(-dim, 0):
        n = pm.shape[axis]
        zero = torch.zeros_like(pm.narrow(axis, 0, 1))
        out = out - torch.cat([zero, pm.narrow(axis, 0, n - 1)], dim=axis)
        out = out - torch.cat([pm.narrow(axis, 1, n - 1), zero], dim=axis)
    return out * fluid


class PressurePoissonOperator(LinearOperator):
    """The pressure-Poisson matrix of a scene as a matrix-free `LinearOperator` on the grid `flags.shape`.

    Symmetric positive semi-definite on the full grid (definite on the fluid cells when every fluid
    region touches air); it acts on `(*batch, *grid)` tensors. `mask` (bool, the fluid cells) tells
    solvers where the unknowns are (`dcdm` restricts its directions to it). `boundary`: "open-top"
    or "air" (see the module docstring); `dtype`, `device`: of the stored coefficients (inputs of any
    real dtype are accepted).

    Example:
        >>> flags = np.zeros((8, 8), np.uint8); flags[3:5, 3:5] = SOLID
        >>> A = PressurePoissonOperator(flags)
        >>> A.apply(torch.ones(8, 8, dtype=torch.float64))[0, 7].item()   # top row (last axis): air above
        1.0
    """

    def __init__(self, flags: Any, boundary: str = "open-top", *, dtype: torch.dtype = torch.float64,
                 device: Any = None):
        flags = np.asarray(flags.cpu() if isinstance(flags, torch.Tensor) else flags)
        fluid, diag = pressure_coefficients(flags, boundary)
        # dtype None: it serves float32 and float64 systems alike (coefficients cast to the input's dtype)
        super().__init__(flags.shape, dtype=None, device=device, is_self_adjoint=True, is_positive_definite=True)
        self.flags, self.boundary, self.dim = flags, boundary, flags.ndim
        self.fluid = torch.as_tensor(fluid, dtype=dtype, device=device)
        self.diag = torch.as_tensor(diag, dtype=dtype, device=device)
        self.mask = self.fluid > 0

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return pressure_apply(x, self.fluid.to(x.dtype), self.diag.to(x.dtype), self.dim)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.apply(y)


def scene(dim: int, n: int, g: torch.Generator, *, min_solids: int = 1, max_solids: int = 4,
          sphere_fraction: float = 0.5, min_size: float = 0.05, max_size: float = 0.2, free_surface: float = 0.0,
          fill_min: float = 0.6, fill_max: float = 0.9, boundary: str = "open-top") -> np.ndarray:
    """Cell flags `(n,)*dim` (uint8) of a random scene: boxes / spheres (discs) in the unit box, then with
    probability `free_surface` air above a height along the last axis; fluid cut off from air turns solid."""
    from scipy import ndimage

    c = (np.arange(n) + 0.5) / n
    axes = np.meshgrid(*([c] * dim), indexing="ij")
    flags = np.full((n,) * dim, FLUID, dtype=np.uint8)
    count = int(torch.randint(min_solids, max_solids + 1, (1,), generator=g))
    for _ in range(count):
        u = torch.rand(2 * dim + 1, dtype=torch.float64, generator=g).numpy()
        centre, size = u[:dim], min_size + (max_size - min_size) * u[dim:2 * dim]
        if u[-1] < sphere_fraction:
            mask = sum((X - x0) ** 2 for X, x0 in zip(axes, centre)) <= size[0] ** 2
        else:
            mask = np.logical_and.reduce([abs(X - x0) <= s for X, x0, s in zip(axes, centre, size)])
        flags[mask] = SOLID
    u = torch.rand(2, dtype=torch.float64, generator=g).numpy()
    if u[0] < free_surface:
        flags[(axes[-1] > fill_min + (fill_max - fill_min) * u[1]) & (flags == FLUID)] = AIR
    # Fluid regions that touch no air (or air face) would make the matrix singular: make them solid.
    f3 = _as3d(flags)
    padded = _pad(f3, face_types(dim, boundary))
    touches = np.zeros(f3.shape, dtype=bool)
    for axis in range(3):
        for side in (-1, 1):
            touches |= _neighbours(padded, axis, side) == AIR
    labels, _ = ndimage.label(f3 == FLUID)
    anchored = np.unique(labels[(f3 == FLUID) & touches])
    f3[(f3 == FLUID) & ~np.isin(labels, anchored)] = SOLID
    return f3.reshape(flags.shape)


def ritz_rhs(A: LinearOperator, count: int, steps: int, g: torch.Generator, low_fraction: float = 0.55,
             low_weight: float = 9.0) -> torch.Tensor:
    """`count` unit right-hand sides `(count, *A.in_shape)` (float64) from `steps` Lanczos steps on `A`
    (see the module docstring: Ritz vectors, the lowest `low_fraction` weighted by `low_weight`)."""
    x = torch.randn(A.in_shape, dtype=torch.float64, generator=g)
    v0 = A.apply(x)
    n_active = int((v0 != 0).sum())
    steps = max(1, min(steps, n_active))
    res = lanczos(A, steps, v0)
    k = int(res.steps)
    theta, W = torch.linalg.eigh(res.T[:k, :k])
    Y = W.mT @ res.basis[:k].reshape(k, -1)  # Ritz vectors, rows, ascending Ritz values
    Y = Y[theta > 1e-8]
    c = torch.randn(count, Y.shape[0], dtype=torch.float64, generator=g)
    c[:, :int(round(low_fraction * Y.shape[0]))] *= low_weight
    b = c @ Y
    b = b / torch.linalg.vector_norm(b, dim=-1, keepdim=True)
    return b.reshape(count, *A.in_shape)


_OBSTACLE = {opt.name: opt for opt in PressurePoissonGenerator.options}  # the same obstacle options


@register_generator
class DCDMGenerator(Generator):
    name = "dcdm-rhs"
    version = 1
    description = "DCDM training data: obstacle scenes (2-D/3-D flags) and Ritz-vector right-hand sides of their matrices"
    default_block = 4
    options = (
        integer("dim", 2, "grid dimension (2 or 3)", min=2, max=3),
        integer("n", 64, "cells per axis", min=4, max=512),
        integer("rhs", 64, "training right-hand sides per scene"),
        integer("lanczos_steps", 400, "Lanczos steps per scene (paper: 10000 at 64^3)"),
        number("low_fraction", 0.55, "fraction of the lowest Ritz vectors weighted up (paper: 0.55)", min=0.0, max=1.0),
        number("low_weight", 9.0, "their weight (paper: 9)", positive=True),
        *(_OBSTACLE[key] for key in ("min_solids", "max_solids", "sphere_fraction", "min_size", "max_size")),
        number("free_surface", 0.0, "probability of air above a free surface", min=0.0, max=1.0),
        choice("boundary", "open-top", FACES, "domain faces: walls with air above the last axis, or all p = 0"),
    )

    @classmethod
    def validate(cls, params: dict[str, Any]) -> None:
        for low, high in (("min_solids", "max_solids"), ("min_size", "max_size")):
            if params[high] < params[low]:
                raise option_error(high, f"expected >= {low} = {params[low]}, got {params[high]}")

    def fields(self) -> dict[str, FieldSpec]:
        grid = (self.n,) * self.dim
        return {
            "flags": FieldSpec(grid, "uint8", attrs={"flag_meanings": "0 fluid, 1 solid, 2 air"}),
            "rhs": FieldSpec((self.rhs, *grid), attrs={"description": "Ritz-vector right-hand sides, unit 2-norm"}),
        }

    def attrs(self) -> dict[str, Any]:
        return {"dim": self.dim, "boundary": self.boundary, "flag_meanings": "0 fluid, 1 solid, 2 air"}

    def sample(self, index: int, seed: int) -> dict[str, np.ndarray]:
        g = sample_generator(seed, index)
        flags = scene(self.dim, self.n, g, min_solids=self.min_solids, max_solids=self.max_solids,
                      sphere_fraction=self.sphere_fraction, min_size=self.min_size, max_size=self.max_size,
                      free_surface=self.free_surface, boundary=self.boundary)
        A = PressurePoissonOperator(flags, self.boundary)
        b = ritz_rhs(A, self.rhs, self.lanczos_steps, g, self.low_fraction, self.low_weight)
        return {"flags": flags, "rhs": b.numpy()}

    def generate(self, indices: Sequence[int], seed: int) -> dict[str, Any]:
        samples = [self.sample(int(i), seed) for i in indices]
        return {key: np.stack([s[key] for s in samples]) for key in ("flags", "rhs")}


class DCDMDataset(torch.utils.data.Dataset):
    """The right-hand sides of a `dcdm-rhs` file, one item per vector: {"b": (1, *grid), "fluid": (1, *grid),
    "diag": (1, *grid)} (float32), the matrix given by its scene's `fluid` and `diag` (`pressure_apply`).

    Scenes are split (never the vectors of one scene): the first `fractions[0]` of the scenes are
    "train", the next `fractions[1]` "val", the rest "test". Everything is read into memory.
    """

    def __init__(self, path: Any, split: str = "train", fractions: Sequence[float] = (0.9, 0.1, 0.0)):
        import h5py

        with h5py.File(path, "r") as f:
            flags_all = f["flags"][:]
            boundary = str(f.attrs.get("boundary", "open-top"))
            count = len(flags_all)
            cut1 = int(round(fractions[0] * count))
            cut2 = cut1 + int(round(fractions[1] * count))
            lo, hi = {"train": (0, cut1), "val": (cut1, cut2), "test": (cut2, count)}[split]
            self.rhs = torch.as_tensor(f["rhs"][lo:hi], dtype=torch.float32)
        flags = flags_all[lo:hi]
        if len(flags) == 0:
            raise ValueError(f"{path}: the {split} split has no scene ({count} scenes, fractions {list(fractions)})")
        coeffs = [pressure_coefficients(fl, boundary) for fl in flags]
        self.fluid = torch.as_tensor(np.stack([c[0] for c in coeffs]), dtype=torch.float32)
        self.diag = torch.as_tensor(np.stack([c[1] for c in coeffs]), dtype=torch.float32)
        self.per_scene = self.rhs.shape[1]

    def __len__(self) -> int:
        return self.rhs.shape[0] * self.per_scene

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s, j = divmod(int(i), self.per_scene)
        return {"b": self.rhs[s, j][None], "fluid": self.fluid[s][None], "diag": self.diag[s][None]}


@register_dataset("dcdm-rhs")
def _build_dcdm(options: dict[str, Any], split: str, base_dir: Path) -> DCDMDataset:
    """[data] kind = "dcdm-rhs", path = a `dcdm-rhs` HDF5 file (relative to the config), fractions = [train, val, test]."""
    options = dict(options)
    if "path" not in options:
        raise ValueError("dcdm-rhs: option 'path' (the HDF5 file from `sciml data generate`) is required")
    path = Path(options.pop("path"))
    return DCDMDataset(path if path.is_absolute() else base_dir / path, split=split, **options)
