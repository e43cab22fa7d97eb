"""Image quality metrics: PSNR and SSIM (Wang et al. 2004), batched over leading dimensions."""
from __future__ import annotations

import torch


def psnr(x: torch.Tensor, ref: torch.Tensor, data_range: float | None = None) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB over the last two dims, `(*batch,)`; `data_range` defaults to
    max(ref) - min(ref) per image. Complex inputs are compared in magnitude."""
    x, ref = _magnitude(x), _magnitude(ref)
    if data_range is None:
        data_range = ref.amax(dim=(-2, -1)) - ref.amin(dim=(-2, -1))
    mse = ((x - ref) ** 2).mean(dim=(-2, -1))
    return 10 * torch.log10(torch.as_tensor(data_range, dtype=mse.dtype) ** 2 / mse)


def ssim(x: torch.Tensor, ref: torch.Tensor, data_range: float | None = None, window: int = 11,
         sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity over the last two dims with an 11x11 Gaussian window (sigma 1.5) and
    K1 = 0.01, K2 = 0.03 (Wang et al., IEEE TIP 2004), mean over valid windows, `(*batch,)`."""
    x, ref = _magnitude(x), _magnitude(ref)
    if data_range is None:
        data_range = float((ref.amax() - ref.amin()).item())
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    t = torch.arange(window, dtype=x.dtype, device=x.device) - (window - 1) / 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).reshape(1, 1, window, window)
    lead = x.shape[:-2]
    a = x.reshape(-1, 1, *x.shape[-2:])
    b = ref.reshape(-1, 1, *ref.shape[-2:])

    def blur(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(t, kernel)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean(dim=(-3, -2, -1)).reshape(lead)


def _magnitude(t: torch.Tensor) -> torch.Tensor:
    return t.abs() if t.is_complex() else t
