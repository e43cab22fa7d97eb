"""`TimeWindows`: input/target pairs of consecutive states cut from stored trajectories.

The autoregressive benchmarks of FNO and LSM (2-D Navier-Stokes: the first 10 states in, the next 10
out) store each trajectory as one field with a time axis, e.g. `u` `(64, 64, 20)` (time last, the FNO
`.mat` layout and sciml's "navier-stokes" generator). `TimeWindows` wraps any dataset of such items
and gives `{"x": (input, *space), "y": (output, *space)}`: the time axis moved to the front, where a
model reads channels. From a training config, any dataset kind takes a `window` table:

```toml
[data]
kind = "hdf5"
path = "../out/datasets/ns_v1e-5.h5"
fields = { u = "u" }
window = { field = "u", input = 10, output = 10 }   # axis = -1 (time) and start = 0 by default
```
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch.utils.data import Dataset

WINDOW_KEYS = ("field", "input", "output", "axis", "start")


class TimeWindows(Dataset):
    """`{"x": u[start : start+input], "y": u[start+input : start+input+output]}` along `axis` of the
    item's `field`, both with that axis first: `(input, *space)`, `(output, *space)`.

    Args:
        dataset: items `{name: tensor}`.
        field: the trajectory's name in the items.
        input, output: numbers of states in and out (>= 1).
        axis: the time axis of one item (default -1: time last).
        start: the first state used (default 0).

    Raises:
        ValueError: naming the option, for a bad count or an item without enough states.
    """

    def __init__(self, dataset: Dataset, field: str = "u", input: int = 10, output: int = 10, axis: int = -1,
                 start: int = 0):
        for name, value, low in (("input", input, 1), ("output", output, 1), ("start", start, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"window.{name}: expected an integer >= {low}, got {value!r}")
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise ValueError(f"window.axis: expected an integer axis, got {axis!r}")
        self.dataset, self.field, self.axis = dataset, field, axis
        self.input, self.output, self.start = input, output, start
        first = dataset[0] if len(dataset) else None
        if first is not None:
            if not isinstance(first, Mapping) or field not in first:
                keys = list(first) if isinstance(first, Mapping) else type(first).__name__
                raise ValueError(f"window.field: the items have no field {field!r}; they hold {keys}")
            u = first[field]
            if not -u.ndim <= axis < u.ndim:
                raise ValueError(f"window.axis: {axis} is out of range for {field!r} items of shape {tuple(u.shape)}")
            need = start + input + output
            if u.shape[axis] < need:
                raise ValueError(f"window: {field!r} has {u.shape[axis]} states along axis {axis} (shape "
                                 f"{tuple(u.shape)}), but start + input + output = {need}")

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        u = torch.movedim(self.dataset[i][self.field], self.axis, 0)
        a, b = self.start, self.start + self.input
        return {"x": u[a:b], "y": u[b:b + self.output]}


def windowed(dataset: Dataset, window: Any) -> Dataset:
    """`dataset` wrapped in `TimeWindows` as a config's `window` table says (ValueError naming bad keys)."""
    if not isinstance(window, Mapping):
        raise ValueError(f"window: expected a table such as {{field = \"u\", input = 10, output = 10}}, got {window!r}")
    unknown = sorted(set(window) - set(WINDOW_KEYS))
    if unknown:
        raise ValueError(f"window: unknown key(s) {unknown}; expected any of {list(WINDOW_KEYS)}")
    return TimeWindows(dataset, **window)


__all__ = ["TimeWindows", "windowed"]
