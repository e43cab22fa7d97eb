"""Small helpers shared by the tests: reproducible random tensors, the example and benchmark scripts as modules."""
import importlib.util
from pathlib import Path

import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_example(name: str, folder: Path = EXAMPLES):
    """<folder>/<name>.py (examples/ by default) imported as a module (its functions, without running `__main__`)."""
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape, dtype=torch.float64, seed=0) -> torch.Tensor:
    """Standard normal tensor (complex: independent real and imaginary parts) from a seeded generator."""
    g = gen(seed)
    if dtype.is_complex:
        re = torch.randn(shape, dtype=dtype.to_real(), generator=g)
        im = torch.randn(shape, dtype=dtype.to_real(), generator=g)
        return torch.complex(re, im)
    return torch.randn(shape, dtype=dtype, generator=g)
