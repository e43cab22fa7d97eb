"""Data generators: PDE datasets made from recipes (`datasets/*.toml`) into resumable, atomic HDF5 files.

    sciml data generate datasets/darcy_r85.toml [--num N] [--out FILE] [--seed S] [--force]

or from Python:

    from sciml.data.generators import load_recipe, generate
    result = generate(load_recipe("datasets/darcy_r85.toml", num=8, out="out/d.h5"))

Generators (`GENERATORS`, by recipe name): "darcy" (`DarcyGenerator`), "navier-stokes"
(`NavierStokesGenerator`), "pressure-poisson" (`PressurePoissonGenerator`), "image-patches"
(`PatchGenerator`). New ones subclass
`Generator` and register with `register_generator`.
"""
from .base import (GENERATORS, FieldSpec, GenerationError, Generator, Option, register_generator, sample_generator,
                   sample_seed)
from .darcy import DarcyGenerator, solve_darcy
from .navier_stokes import NavierStokesGenerator, VorticitySolver, navier_stokes_2d
from .patches import PatchGenerator
from .pressure_poisson import AIR, FLUID, SOLID, PressurePoissonGenerator, assemble, fluid_matrix, load_system
from .recipe import Recipe, load_recipe
from .writer import GenerateResult, generate, partial_path

__all__ = ["AIR", "FLUID", "GENERATORS", "SOLID", "DarcyGenerator", "FieldSpec", "GenerateResult", "GenerationError",
           "Generator", "NavierStokesGenerator", "Option", "PatchGenerator", "PressurePoissonGenerator", "Recipe", "VorticitySolver",
           "assemble", "fluid_matrix", "generate", "load_recipe", "load_system", "navier_stokes_2d", "partial_path",
           "register_generator", "sample_generator", "sample_seed", "solve_darcy"]
