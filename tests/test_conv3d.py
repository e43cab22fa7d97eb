"""`sciml.models.nets.Conv3d`: the oneDNN path gives nn.Conv3d's values and gradients."""
import pytest
import torch
from torch import nn

from sciml.models.nets import Conv3d


@pytest.mark.parametrize("batch,size,kwargs", [(1, 12, {"padding": 1}), (2, 9, {"padding": 1, "stride": 2}),
                                                (1, 8, {"padding": 0, "dilation": 2, "bias": False}),
                                                (1, 8, {"padding": 1, "groups": 2})])
def test_conv3d_matches_torch_in_values_and_gradients(batch, size, kwargs):
    torch.manual_seed(0)
    ours = Conv3d(4, 6, 3, **kwargs)
    ref = nn.Conv3d(4, 6, 3, **kwargs)
    ref.load_state_dict(ours.state_dict())  # same parameter names
    x = torch.randn(batch, 4, size, size + 1, size + 2, requires_grad=True)
    xr = x.detach().clone().requires_grad_(True)
    y, yr = ours(x), ref(xr)
    assert y.shape == yr.shape
    torch.testing.assert_close(y, yr, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y)
    y.backward(g), yr.backward(g)
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-3)


def test_conv3d_float64_and_other_padding_modes_use_torch():
    torch.manual_seed(0)
    for conv, dtype in ((Conv3d(2, 3, 3, padding=1).double(), torch.float64),
                        (Conv3d(2, 3, 3, padding=1, padding_mode="circular"), torch.float32)):
        ref = nn.Conv3d(2, 3, 3, padding=1, padding_mode=conv.padding_mode).to(dtype)
        ref.load_state_dict(conv.state_dict())
        x = torch.randn(1, 2, 6, 6, 6, dtype=dtype)
        assert torch.equal(conv(x), ref(x))
