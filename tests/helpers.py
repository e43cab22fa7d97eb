"""Small helpers shared by the tests: reproducible random tensors."""
import torch


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
