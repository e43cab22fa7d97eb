r"""Learned proximal networks (LPN; Fang, Buchanan & Sulam, ICLR 2024): an exact, learned prox.

An input-convex network (ICNN) :math:`\psi_\theta` plus a strong-convexity term gives a convex
potential :math:`\psi(x) = \mathrm{ICNN}(x) + \tfrac\alpha2\|x\|^2`; its gradient
:math:`f = \nabla\psi` is then the proximal operator of *some* (possibly nonconvex) regulariser
:math:`R`, namely :math:`f = \mathrm{prox}_R` with :math:`R = \psi^* - \tfrac12\|\cdot\|^2` up to an
additive constant. So a trained LPN is a MAP-style denoiser that can be plugged into PnP solvers
(``denoiser=model``) *and* whose regulariser can be evaluated (`regularizer`).

Two networks. `LPN` (registered "lpn") is dense, following the paper's 1-D / MNIST code (image inputs
``(B, 1, H, W)`` are flattened to ``in_features = H*W``)::

    z_1     = act(W_0 x)                                   (W_0 unconstrained, no bias)
    z_{k+1} = act(W_k z_k + V_k x + b_k),  k = 1..depth     (W_k >= 0: z-path)
    ICNN(x) = w_out . z_{depth+1} + v_out . x + c          (w_out >= 0)

``act`` = ``Softplus(beta)`` (convex, non-decreasing). Convexity needs the z-path weights
``W_1..W_depth, w_out`` non-negative. **Enforcement (our choice):** the forward pass uses
``W.clamp(min=0)``, so :math:`\psi` is convex for *any* parameter values (checkpoint-safe, no trainer
hook needed); additionally `LPN.project_()` clamps the stored weights in place (the paper's ``wclip``
after every optimizer step), and the "proximal-matching" loss calls it at the start of each step,
i.e. right after the previous optimizer step, so stored negative weights do not get stuck at zero
gradient. Initialisation of the z-path follows the paper: ``exp(N(-10, 0.1))`` unless
``init_scale`` is given (then ``U(0, init_scale/sqrt(fan_in))``, which trains faster on small toys).

`ConvLPN` (registered "lpn-conv") is the convolutional ICNN of the paper's 128 x 128 CT/CelebA code,
made fully convolutional so that one network is an exact prox on images of any size::

    z_1     = act(conv3x3(x))                                          (unconstrained)
    z_{k+1} = act(conv3x3_{s_k}^+(z_k) + conv3x3(resize(x, z_{k+1})))  (s_k the strides, e.g. 1,2,1,2,1,2)
    z_out   = act(conv1x1^+(z_L) + conv1x1(resize(x, z_L)))            (`features` channels)
    ICNN(x) = sum over pixels of (w_out^+ . z_out) + c                 (w_out >= 0)

``resize`` is bilinear interpolation of x to the layer's resolution (linear in x, as in the official code).
**Difference from the official code (our choice):** the paper's network ends in a 16 x 16 convolution
that ties it to 128 x 128 inputs and is applied to larger images patch by patch with overlapping
averages, which is not itself a prox. Here the potential sums a local convex function over positions,
so :math:`\psi` stays convex on any image size, its gradient is an exact prox of the whole image, and
the denoiser acts locally (receptive field about 2^(number of stride-2 layers + 2) pixels).

Strong convexity: :math:`\tfrac\alpha2\|x\|^2` (the official code writes ``alpha*||x||^2``, i.e. our
``alpha`` is twice theirs). With ``alpha > 0`` the prox inversion in `regularizer` is strongly convex.

Proximal matching ("proximal-matching", objective loss) -- exact form used (from the official code):
``L1 = mean |f(y) - x|`` for the first ``l1_steps`` calls, then
``L_PM = mean_b [1 - exp(-(||f(y_b) - x_b||_2 / gamma)^2)]`` with
``gamma = gamma_min * 2^(stages-1-stage)`` (stages of ``stage_steps`` calls: 8,4,2,1 x gamma_min for
4 stages; the last stage lasts for ever). The paper's default ``gamma_min = 0.08 sqrt(n)`` is used
when ``gamma_min`` is None. A fixed ``gamma`` overrides the schedule. The step counter is a
non-persistent attribute of the model incremented on each training-mode call (a resumed run sets it to
the trainer's step).
Batches are dicts with the clean ``x`` and noisy ``y`` (keys ``clean``/``noisy``).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.synthetic import laplace_denoising_batch  # noqa: F401 (the paper's toy data, re-exported)
from .registry import register_model, unwrap

__all__ = ["ConvLPN", "LPN", "laplace_denoising_batch", "proximal_matching", "proximal_matching_loss", "gamma_schedule",
           "invert_prox", "regularizer"]


def _init_constrained(layers: list[nn.Module], init_scale: float | None) -> None:
    """The paper's z-path init exp(N(-10, 0.1)) (tiny positive), or U(0, init_scale/sqrt(fan_in))."""
    with torch.no_grad():
        for layer in layers:
            w = layer.weight
            if init_scale is None:
                w.copy_(torch.exp(torch.randn_like(w) * 0.1 - 10.0))
            else:
                w.uniform_(0.0, init_scale / math.sqrt(w[0].numel()))


def _check_common(beta: float, alpha: float, init_scale: float | None) -> None:
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha!r}")
    if init_scale is not None and not init_scale > 0:
        raise ValueError(f"init_scale must be > 0 or None, got {init_scale!r}")


class _ConvexPotentialProx(nn.Module):
    """A prox as the gradient of a convex potential: subclasses define `psi`, `constrained` and
    `_batch_shape`; this gives `forward` (= grad psi) and `project_` (the paper's weight clipping)."""

    def constrained(self) -> list[nn.Module]:
        """The z-path layers whose weights must be non-negative."""
        raise NotImplementedError

    @torch.no_grad()
    def project_(self) -> "_ConvexPotentialProx":
        """Clamp the z-path weights to >= 0 in place (the paper's `wclip`); returns self."""
        for layer in self.constrained():
            layer.weight.clamp_(min=0)
        return self

    def psi(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _batch_shape(self, shape: torch.Size) -> tuple[int, ...]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """The prox f(x) = grad psi(x), same shape as x. Differentiable (create_graph) in training mode
        or when x requires grad; otherwise returned detached. `sigma` is accepted and ignored (PnP solvers
        call D(x, sigma)): an LPN's prox strength is fixed by its training noise level, as in the paper."""
        create = self.training or (torch.is_grad_enabled() and x.requires_grad)
        with torch.enable_grad():
            xg = x if x.requires_grad else x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.psi(xg).sum(), xg, create_graph=create)
        return g if create else g.detach()


@register_model("lpn")
class LPN(_ConvexPotentialProx):
    """Learned proximal network: `forward(x)` = prox f(x) = grad psi(x); `psi(x)` the convex potential.

    Args:
        in_features: n, the size of one (flattened) input.
        hidden: width of the hidden layers.
        depth: number of constrained hidden layers (z-path layers after the first).
        beta: Softplus sharpness.
        alpha: strong-convexity weight, psi += alpha/2 ||x||^2 (>= 0).
        init_scale: None: the paper's z-path init exp(N(-10, 0.1)); else U(0, init_scale/sqrt(fan_in)).
    """

    def __init__(self, in_features: int, hidden: int = 50, depth: int = 4, beta: float = 10.0,
                 alpha: float = 0.0, init_scale: float | None = None):
        super().__init__()
        for name, v, lo in (("in_features", in_features, 1), ("hidden", hidden, 1), ("depth", depth, 0)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        _check_common(beta, alpha, init_scale)
        self.in_features, self.alpha, self.beta = in_features, float(alpha), float(beta)
        self.first = nn.Linear(in_features, hidden, bias=False)
        self.z_layers = nn.ModuleList([nn.Linear(hidden, hidden, bias=False) for _ in range(depth)])
        self.x_layers = nn.ModuleList([nn.Linear(in_features, hidden) for _ in range(depth)])
        self.out = nn.Linear(hidden, 1, bias=False)
        self.out_x = nn.Linear(in_features, 1)
        _init_constrained(self.constrained(), init_scale)
        self._pm_step = 0

    def constrained(self) -> list[nn.Module]:
        return [*self.z_layers, self.out]

    def psi(self, x: torch.Tensor) -> torch.Tensor:
        """The convex potential psi(x): x of shape (..., *) with in_features elements per sample -> (...)."""
        bshape = self._batch_shape(x.shape)
        h = x.reshape(-1, self.in_features).to(self.first.weight.dtype)
        z = F.softplus(self.first(h), beta=self.beta)
        for zl, xl in zip(self.z_layers, self.x_layers):
            z = F.softplus(F.linear(z, zl.weight.clamp(min=0)) + xl(h), beta=self.beta)
        out = F.linear(z, self.out.weight.clamp(min=0)).squeeze(-1) + self.out_x(h).squeeze(-1)
        if self.alpha:
            out = out + 0.5 * self.alpha * (h * h).sum(-1)
        return out.reshape(bshape).to(x.dtype)

    def _batch_shape(self, shape: torch.Size) -> tuple[int, ...]:
        """Batch dims of an input: (B,) for (B, *sample) with prod(sample) = in_features (vectors (B, n),
        images (B, 1, H, W)); () for one unbatched sample; else (..., n) with the last dim the features."""
        n = self.in_features
        if len(shape) >= 2 and math.prod(shape[1:]) == n:
            return (shape[0],)
        if math.prod(shape) == n:
            return ()
        if len(shape) >= 1 and shape[-1] == n:
            return tuple(shape[:-1])
        raise ValueError(f"LPN: input shape {tuple(shape)} does not hold in_features={n} elements per sample")


@register_model("lpn-conv")
class ConvLPN(_ConvexPotentialProx):
    """Convolutional learned proximal network for images (see the module docstring): `forward(x)` =
    prox f(x) = grad psi(x) on `(B, C, H, W)` (or `(B, H, W)` / `(H, W)` when `channels = 1`) of any size;
    a complex input is denoised through its magnitude with its phase kept (the magnitude prox).

    Args:
        channels: image channels C.
        hidden: channels of the z-path layers.
        strides: stride of each constrained 3x3 layer after the first (the paper's 1,2,1,2,1,2).
        features: channels of the last (1x1) layer, summed over pixels into the potential.
        beta: Softplus sharpness (the paper's 100).
        alpha: strong-convexity weight, psi += alpha/2 ||x||^2 (>= 0).
        init_scale: None: the paper's z-path init exp(N(-10, 0.1)); else U(0, init_scale/sqrt(fan_in)).
    """

    def __init__(self, channels: int = 1, hidden: int = 64, strides: tuple[int, ...] | list[int] = (1, 2, 1, 2, 1, 2),
                 features: int = 64, beta: float = 100.0, alpha: float = 1e-6, init_scale: float | None = None):
        super().__init__()
        for name, v in (("channels", channels), ("hidden", hidden), ("features", features)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        strides = tuple(strides)
        if not all(isinstance(s, int) and not isinstance(s, bool) and s in (1, 2) for s in strides):
            raise ValueError(f"strides must be a list of 1s and 2s, got {list(strides)!r}")
        _check_common(beta, alpha, init_scale)
        self.channels, self.strides, self.alpha, self.beta = channels, strides, float(alpha), float(beta)
        self.first = nn.Conv2d(channels, hidden, 3, padding=1)
        self.z_layers = nn.ModuleList([nn.Conv2d(hidden, hidden, 3, stride=s, padding=1, bias=False) for s in strides])
        self.x_layers = nn.ModuleList([nn.Conv2d(channels, hidden, 3, padding=1) for _ in strides])
        self.last = nn.Conv2d(hidden, features, 1, bias=False)
        self.last_x = nn.Conv2d(channels, features, 1)
        self.out = nn.Linear(features, 1, bias=False)
        _init_constrained(self.constrained(), init_scale)
        self._pm_step = 0

    def constrained(self) -> list[nn.Module]:
        return [*self.z_layers, self.last, self.out]

    def _batch_shape(self, shape: torch.Size) -> tuple[int, ...]:
        """(B,) for (B, C, H, W) (and (B, H, W) when C = 1), () for (H, W) or (C, H, W)."""
        if len(shape) == 4 and shape[1] == self.channels:
            return (shape[0],)
        if self.channels == 1 and len(shape) in (2, 3):
            return tuple(shape[:-2])
        if len(shape) == 3 and shape[0] == self.channels:
            return ()
        want = "(B, C, H, W) or (C, H, W)" + (", (B, H, W) or (H, W)" if self.channels == 1 else "")
        raise ValueError(f"lpn-conv: expected an input {want} with C = {self.channels}, got shape {tuple(shape)}")

    def psi(self, x: torch.Tensor) -> torch.Tensor:
        """The convex potential psi(x): `(*batch, [C,] H, W)` -> `batch`."""
        bshape = self._batch_shape(x.shape)
        h = x.reshape((-1, self.channels) + tuple(x.shape[-2:])).to(self.first.weight.dtype)
        act = lambda t: F.softplus(t, beta=self.beta)  # noqa: E731
        z = act(self.first(h))
        for zl, xl in zip(self.z_layers, self.x_layers):
            z = zl._conv_forward(z, zl.weight.clamp(min=0), None)
            z = act(z + xl(_resize(h, z.shape[-2:])))
        z = act(F.conv2d(z, self.last.weight.clamp(min=0)) + self.last_x(_resize(h, z.shape[-2:])))
        out = torch.einsum("bfhw,f->b", z, self.out.weight.clamp(min=0)[0])
        if self.alpha:
            out = out + 0.5 * self.alpha * h.flatten(1).pow(2).sum(1)
        return out.reshape(bshape).to(x.dtype)

    def forward(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """The prox f(x) = grad psi(x), same shape and dtype as x (see `_ConvexPotentialProx.forward`);
        a complex x: prox of its magnitude with its phase kept."""
        if x.is_complex():
            m = x.abs()
            return torch.polar(self.forward(m, sigma), x.angle())
        self._batch_shape(x.shape)
        return super().forward(x, sigma).to(x.dtype)


def _resize(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """x bilinearly resampled to `size` (itself when the size matches): linear in x."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


# --- training ---------------------------------------------------------------------------------
def gamma_schedule(step: int, gamma_min: float, stages: int = 4, stage_steps: int = 1000) -> float:
    """gamma = gamma_min * 2^(stages-1-stage), stage = min(step // stage_steps, stages-1)."""
    stage = min(step // max(stage_steps, 1), stages - 1)
    return gamma_min * 2.0 ** (stages - 1 - stage)


def proximal_matching_loss(pred: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """mean_b [1 - exp(-(||pred_b - target_b||_2 / gamma)^2)], norms over all but the first dim."""
    d = (pred - target).reshape(pred.shape[0], -1).norm(dim=1) if pred.ndim > 1 else (pred - target).abs()
    return (1 - torch.exp(-(d / gamma) ** 2)).mean()


def _register_loss() -> None:
    from ..training.losses import LOSSES, register_loss

    if "proximal-matching" not in LOSSES:
        register_loss("proximal-matching", objective=True)(proximal_matching)


def proximal_matching(model: nn.Module, batch: Any, l1_steps: int = 0, gamma: float | None = None,
                      gamma_min: float | None = None, stages: int = 4, stage_steps: int = 1000,
                      clean: str = "x", noisy: str = "y") -> torch.Tensor:
    """LPN training objective: L1 warm-up for `l1_steps` calls, then gamma-annealed proximal matching.

    `batch[clean]` = x, `batch[noisy]` = y = x + noise. Projects the z-path weights (wclip) first.
    """
    net = unwrap(model)
    if isinstance(net, _ConvexPotentialProx):
        net.project_()
    x, y = batch[clean], batch[noisy]
    step = getattr(net, "_pm_step", 0)
    if net.training:
        net._pm_step = step + 1
    pred = model(y)
    if step < l1_steps:
        return (pred - x).abs().mean()
    if gamma is None:
        if gamma_min is None:
            gamma_min = 0.08 * math.sqrt(x[0].numel() if x.ndim > 1 else 1)
        gamma = gamma_schedule(step - l1_steps, gamma_min, stages, stage_steps)
    return proximal_matching_loss(pred, x, gamma)


# --- the learned regulariser --------------------------------------------------------------------
def invert_prox(model: LPN, x: torch.Tensor, maxiter: int = 200, tol: float = 1e-10,
                y0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """y with f(y) = grad psi(y) = x, by minimising psi(y) - <x, y> (strongly convex when alpha > 0)
    with L-BFGS (strong-Wolfe line search), all samples jointly (the objective is separable).

    Returns (y, residual) with residual the per-sample max |f(y) - x|.
    """
    net = unwrap(model)
    x = x.detach()
    y = (x.clone() if y0 is None else y0.detach().clone()).requires_grad_(True)
    opt = torch.optim.LBFGS([y], lr=1, max_iter=maxiter, tolerance_grad=tol, tolerance_change=0,
                            history_size=50, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        obj = net.psi(y).sum() - (x * y).sum()
        obj.backward()
        return obj

    with torch.enable_grad():
        opt.step(closure)
    y = y.detach()
    res = (net(y).detach() - x).reshape(*net._batch_shape(x.shape), -1).abs().amax(-1)
    return y, res


def regularizer(model: LPN, x: torch.Tensor, maxiter: int = 200, tol: float = 1e-10,
                return_inverse: bool = False) -> Any:
    r"""The learned R at x (up to an additive constant): find y with f(y) = x, then
    :math:`R(x) = \langle x, y\rangle - \psi(y) - \tfrac12\|x\|^2` (= :math:`\psi^*(x) - \tfrac12\|x\|^2`).

    Returns R of shape x's batch shape; with `return_inverse`, (R, y, residual).
    """
    net = unwrap(model)
    y, res = invert_prox(net, x, maxiter=maxiter, tol=tol)
    bshape = net._batch_shape(x.shape)
    with torch.no_grad():
        xf, yf = x.reshape(*bshape, -1), y.reshape(*bshape, -1)
        R = (xf * yf).sum(-1) - net.psi(y) - 0.5 * (xf * xf).sum(-1)
    return (R, y, res) if return_inverse else R


_register_loss()
