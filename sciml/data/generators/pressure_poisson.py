r"""Pressure-Poisson systems with solid obstacles and a free surface on n^3 grids (the DCDM setting).

Each sample is one system: cell flags on an n x n x n grid (`FLUID`, `SOLID`, `AIR`), the 7-point
matrix of :math:`-h^2\Delta_h` on the fluid cells, and several right-hand sides.

- Solid cells and solid domain faces are walls (homogeneous Neumann): a fluid cell's face to a solid
  neighbour is dropped from its stencil. Air cells (and "air" domain faces) hold p = 0 (Dirichlet):
  the face counts on the diagonal, the neighbour is not an unknown. Entries: diagonal = number of
  non-solid neighbours (<= 6), -1 for every fluid neighbour (DCDM/MLPCG convention, no 1/h^2).
- Rows and columns are numbered over all n^3 cells in C order (index = (i*n + j)*n + k for cell
  (x_i, y_j, z_k)), as in DCDM: rows and columns of non-fluid cells are empty. Restricting to the
  fluid cells (`fluid_matrix`) gives a symmetric matrix, positive definite when every connected
  fluid region touches air or an air domain face (recorded per sample as `definite`); a region that
  does not has the constants on it as null vectors, and its right-hand sides sum to zero over it.
- Right-hand sides: :math:`b = -h\,\mathrm{div}\,u^*` for random MAC velocity fields :math:`u^*`
  (periodic GRFs, face velocities touching a solid cell or a solid domain face set to zero, so
  :math:`u^*\cdot n = 0` on walls), zero off the fluid cells, each normalised to unit 2-norm (as
  DCDM normalises its training vectors). DCDM itself trained on combinations of Ritz vectors of one
  matrix and tested on simulation divergences; see `../shared/papers/dcdm.md`.

Geometry per sample: `min_solids..max_solids` boxes or spheres (centres uniform in the box, sizes
uniform in [min_size, max_size] as half-widths / radii), then with probability `free_surface` air
above a height uniform in [fill_min, fill_max] with a random low-mode ripple of `surface_amplitude`.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from .base import (FieldSpec, GenerationError, Generator, choice, integer, number, option_error, register_generator,
                   sample_generator)
from .grf import periodic_grf

FLUID, SOLID, AIR = 0, 1, 2
FLAG_MEANINGS = "0 fluid, 1 solid, 2 air"
BOUNDARIES = {  # domain faces (x-, x+, y-, y+, z-, z+)
    "solid": (SOLID,) * 6,
    "air": (AIR,) * 6,
    "open-top": (SOLID,) * 5 + (AIR,),
}


def _pad(flags: np.ndarray, boundary: Sequence[int]) -> np.ndarray:
    """flags with one layer of ghost cells holding the domain face types."""
    out = np.pad(flags, 1, mode="constant", constant_values=SOLID)
    n0, n1, n2 = flags.shape
    out[0, :, :], out[-1, :, :] = boundary[0], boundary[1]
    out[:, 0, :], out[:, -1, :] = boundary[2], boundary[3]
    out[:, :, 0], out[:, :, -1] = boundary[4], boundary[5]
    return out


def _neighbours(padded: np.ndarray, axis: int, side: int) -> np.ndarray:
    """Flags of the neighbour at `side` (-1/+1) along `axis` of every cell (ghosts beyond the domain)."""
    sl = [slice(1, -1)] * 3
    sl[axis] = slice(1 + side, padded.shape[axis] - 1 + side)
    return padded[tuple(sl)]


def assemble(flags: np.ndarray, boundary: str | Sequence[int] = "solid", dtype: Any = np.float64):
    """The matrix of the fluid cells of `flags` `(n0, n1, n2)` as a `scipy.sparse.csr_array` over all cells
    (see the module docstring); `boundary`: "solid", "air", "open-top" or six face types."""
    import scipy.sparse as sp

    faces = BOUNDARIES[boundary] if isinstance(boundary, str) else tuple(boundary)
    N = flags.size
    index = np.arange(N).reshape(flags.shape)
    padded_index = np.pad(index, 1, mode="constant", constant_values=-1)
    padded = _pad(flags, faces)
    fluid = flags == FLUID
    diag = np.zeros(flags.shape, dtype=np.int64)
    rows, cols = [], []
    for axis in range(3):
        for side in (-1, 1):
            nb = _neighbours(padded, axis, side)
            diag += fluid & (nb != SOLID)
            couple = fluid & (nb == FLUID)
            rows.append(index[couple])
            cols.append(_neighbours(padded_index, axis, side)[couple])
    rows.append(index[fluid])
    cols.append(index[fluid])
    off = sum(len(r) for r in rows[:-1])
    data = np.concatenate([-np.ones(off), diag[fluid].astype(np.float64)]).astype(dtype)
    A = sp.csr_array((data, (np.concatenate(rows), np.concatenate(cols))), shape=(N, N))
    A.sum_duplicates()
    A.sort_indices()
    return A


def fluid_matrix(A, flags: np.ndarray):
    """The square matrix on the fluid cells only (rows/columns in C order of the fluid cells)."""
    keep = np.flatnonzero(flags.ravel() == FLUID)
    return A[keep][:, keep]


def anchored(flags: np.ndarray, boundary: str | Sequence[int] = "solid") -> bool:
    """Whether every 6-connected fluid region touches an air cell or an air domain face (matrix definite)."""
    from scipy import ndimage

    faces = BOUNDARIES[boundary] if isinstance(boundary, str) else tuple(boundary)
    fluid = flags == FLUID
    labels, count = ndimage.label(fluid)
    if count == 0:
        return True
    padded = _pad(flags, faces)
    touches_air = np.zeros(flags.shape, dtype=bool)
    for axis in range(3):
        for side in (-1, 1):
            touches_air |= _neighbours(padded, axis, side) == AIR
    touching = np.unique(labels[fluid & touches_air])
    return len(touching) == count


def divergence_rhs(flags: np.ndarray, velocity: Sequence[np.ndarray], boundary: str | Sequence[int] = "solid") -> np.ndarray:
    """-h div u on the fluid cells (zero elsewhere) for MAC face velocities `velocity[d]` (n+1 along
    axis d): faces touching a solid cell or a solid domain face carry no flux."""
    faces = BOUNDARIES[boundary] if isinstance(boundary, str) else tuple(boundary)
    padded = _pad(flags, faces)
    div = np.zeros(flags.shape)
    for d in range(3):
        lo = [slice(1, -1)] * 3
        hi = [slice(1, -1)] * 3
        lo[d] = slice(0, -1)  # the two cells of each face along d, ghosts included: n+1 faces
        hi[d] = slice(1, None)
        blocked = (padded[tuple(lo)] == SOLID) | (padded[tuple(hi)] == SOLID)
        flux = np.where(blocked, 0.0, velocity[d])
        div += np.diff(flux, axis=d)
    return np.where(flags == FLUID, -div, 0.0)


@register_generator
class PressurePoissonGenerator(Generator):
    name = "pressure-poisson"
    version = 1
    description = "3-D pressure-Poisson systems with solids and a free surface (DCDM setting): flags, CSR matrix, rhs"
    default_block = 4
    options = (
        integer("n", 64, "cells per axis (DCDM: 64, 128, 256)", min=2, max=512),
        integer("rhs", 4, "right-hand sides per system"),
        integer("min_solids", 1, "fewest solid obstacles", min=0),
        integer("max_solids", 4, "most solid obstacles", min=0),
        number("sphere_fraction", 0.5, "probability that an obstacle is a sphere (else a box)", min=0.0, max=1.0),
        number("min_size", 0.05, "smallest obstacle half-width / radius (domain = unit cube)", positive=True),
        number("max_size", 0.25, "largest obstacle half-width / radius", positive=True),
        number("free_surface", 0.5, "probability of an air region above a free surface", min=0.0, max=1.0),
        number("fill_min", 0.4, "lowest free-surface height", min=0.0, max=1.0),
        number("fill_max", 0.9, "highest free-surface height", min=0.0, max=1.0),
        number("surface_amplitude", 0.05, "amplitude of the free surface's random ripple", min=0.0),
        choice("boundary", "solid", tuple(BOUNDARIES), "domain faces: walls, p = 0, or walls with an open top"),
        number("velocity_alpha", 2.5, "smoothness of the random velocity fields (periodic GRF)", positive=True),
        number("velocity_tau", 3.0, "inverse length scale of the random velocity fields", min=0.0),
    )

    @classmethod
    def validate(cls, params: dict[str, Any]) -> None:
        if params["max_solids"] < params["min_solids"]:
            raise option_error("max_solids", f"expected >= min_solids = {params['min_solids']}, got {params['max_solids']}")
        if params["max_size"] < params["min_size"]:
            raise option_error("max_size", f"expected >= min_size = {params['min_size']}, got {params['max_size']}")
        if params["fill_max"] < params["fill_min"]:
            raise option_error("fill_max", f"expected >= fill_min = {params['fill_min']}, got {params['fill_max']}")

    def fields(self) -> dict[str, Any]:
        n = self.n
        cells = f"cell (i, j, k) has centre ((i+0.5)/{n}, (j+0.5)/{n}, (k+0.5)/{n}); row index (i*{n} + j)*{n} + k"
        return {
            "flags": FieldSpec((n, n, n), "uint8", attrs={"flag_values": np.array([FLUID, SOLID, AIR], np.uint8),
                                                          "flag_meanings": "fluid solid air", "grid": cells}),
            "indptr": FieldSpec((n**3 + 1,), "int32", attrs={"description": "CSR row pointers over all n^3 cells"}),
            "indices": FieldSpec((), "int32", vlen=True, attrs={"description": "CSR column indices, sorted per row"}),
            "data": FieldSpec((), "float", vlen=True, attrs={"description": "CSR values of -h^2 Laplacian (diag <= 6, off -1)"}),
            "rhs": FieldSpec((self.rhs, n, n, n), attrs={"description": "-h div u* on fluid cells, unit 2-norm", "grid": cells}),
            "definite": FieldSpec((), "uint8", attrs={"description": "1 if every fluid region touches air (SPD)"}),
        }

    def attrs(self) -> dict[str, Any]:
        return {"h": 1.0 / self.n, "flag_meanings": FLAG_MEANINGS, "boundary_faces": list(BOUNDARIES[self.boundary])}

    def geometry(self, g: torch.Generator) -> np.ndarray:
        """Cell flags `(n, n, n)` from the random stream `g`."""
        n = self.n
        c = (np.arange(n) + 0.5) / n
        X, Y, Z = c[:, None, None], c[None, :, None], c[None, None, :]
        for _ in range(100):
            flags = np.full((n, n, n), FLUID, dtype=np.uint8)
            count = int(torch.randint(self.min_solids, self.max_solids + 1, (1,), generator=g))
            for _ in range(count):
                u = torch.rand(8, dtype=torch.float64, generator=g).numpy()
                centre = u[:3]
                size = self.min_size + (self.max_size - self.min_size) * u[3:6]
                if u[6] < self.sphere_fraction:
                    mask = (X - centre[0]) ** 2 + (Y - centre[1]) ** 2 + (Z - centre[2]) ** 2 <= size[0] ** 2
                else:
                    mask = (abs(X - centre[0]) <= size[0]) & (abs(Y - centre[1]) <= size[1]) & (abs(Z - centre[2]) <= size[2])
                flags[mask] = SOLID
            u = torch.rand(8, dtype=torch.float64, generator=g).numpy()
            if u[0] < self.free_surface:
                height = self.fill_min + (self.fill_max - self.fill_min) * u[1]
                ripple = self.surface_amplitude * 0.5 * ((2 * u[2] - 1) * np.cos(2 * math.pi * (X + u[3]))
                                                         + (2 * u[4] - 1) * np.cos(2 * math.pi * (Y + u[5])))
                flags[(Z > height + ripple) & (flags == FLUID)] = AIR
            if (flags == FLUID).any():
                return flags
        raise GenerationError("pressure-poisson: 100 geometries in a row had no fluid cell; use smaller or fewer solids")

    def velocities(self, g: torch.Generator) -> list[np.ndarray]:
        """`rhs` random MAC velocity fields: for each, three face arrays (n+1 along their axis)."""
        n = self.n
        out = []
        for _ in range(self.rhs):
            z = torch.randn(3, 2, n + 1, n + 1, n + 1, dtype=torch.float64, generator=g)
            comps = []
            for d in range(3):
                field = periodic_grf(z[d, 0], z[d, 1], self.velocity_alpha, self.velocity_tau, 1.0, dims=3).numpy()
                sl = [slice(0, n)] * 3
                sl[d] = slice(0, n + 1)
                comps.append(field[tuple(sl)])
            out.append(comps)
        return out

    def sample(self, index: int, seed: int) -> dict[str, Any]:
        g = sample_generator(seed, index)
        flags = self.geometry(g)
        A = assemble(flags, self.boundary)
        rhs = np.stack([divergence_rhs(flags, vel, self.boundary) for vel in self.velocities(g)])
        norms = np.sqrt((rhs**2).sum(axis=(1, 2, 3)))
        rhs = rhs / np.where(norms > 0, norms, 1.0)[:, None, None, None]
        return {"flags": flags, "indptr": A.indptr.astype(np.int32), "indices": A.indices.astype(np.int32),
                "data": A.data, "rhs": rhs, "definite": np.uint8(anchored(flags, self.boundary))}

    def generate(self, indices: Sequence[int], seed: int) -> dict[str, Any]:
        samples = [self.sample(int(i), seed) for i in indices]
        out: dict[str, Any] = {}
        for key in ("flags", "indptr", "rhs", "definite"):
            out[key] = np.stack([s[key] for s in samples])
        for key in ("indices", "data"):
            out[key] = [s[key] for s in samples]
        return out


def load_system(file: Any, index: int):
    """Sample `index` of a pressure-poisson HDF5 file (path or open `h5py.File`): the `scipy.sparse.csr_array`
    over all n^3 cells (float64), the flags `(n, n, n)` and the right-hand sides `(rhs, n, n, n)`."""
    import h5py
    import scipy.sparse as sp

    own = not isinstance(file, h5py.File)
    h5 = h5py.File(file, "r") if own else file
    try:
        flags = h5["flags"][index]
        N = flags.size
        A = sp.csr_array((h5["data"][index].astype(np.float64), h5["indices"][index], h5["indptr"][index]), shape=(N, N))
        return A, flags, h5["rhs"][index]
    finally:
        if own:
            h5.close()
