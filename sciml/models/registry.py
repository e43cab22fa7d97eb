"""Models by name, and checkpoints that rebuild them: `model.safetensors` + `config.json`.

A registered class's constructor keyword arguments are its hyper-parameters; they are recorded when
the model is built, written to `config.json` as {"class": name, "hparams": {...}}, and used by
`load` to rebuild the module before the weights are read. Nothing is ever pickled.
"""
from __future__ import annotations

import functools
import inspect
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .._io import atomic_path

MODELS: dict[str, type[nn.Module]] = {}
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
_HPARAMS = "_sciml_hparams"


def register_model(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: register an `nn.Module` subclass under `name`.

    The constructor's arguments (with their defaults filled in) are recorded on every instance, so
    `save` can write them and `load` can rebuild the model. They must be named (no `*args`/`**kwargs`)
    and JSON-serialisable (numbers, strings, booleans, lists, dicts, None). Constructors should raise
    `ValueError("<hparam> ...")` for bad values: config errors then name the key `model.<hparam>`.
    """

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"register_model({name!r}) expects an nn.Module subclass, got {cls!r}")
        if name in MODELS:
            raise ValueError(f"model {name!r} is already registered (by {MODELS[name].__qualname__})")
        original = cls.__init__
        signature = inspect.signature(original)
        for p in list(signature.parameters.values())[1:]:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"model {name!r}: hyper-parameters must be named arguments, not *{p.name}")

        @functools.wraps(original)
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            original(self, *args, **kwargs)
            if type(self) is cls:  # a registered subclass records its own arguments
                object.__setattr__(self, _HPARAMS, (name, {k: v for k, v in list(bound.arguments.items())[1:]}))

        cls.__init__ = __init__
        cls.model_name = name
        MODELS[name] = cls
        return cls

    return wrap


def available_models() -> dict[str, type[nn.Module]]:
    """Registered model classes by name."""
    return dict(MODELS)


def build_model(name: str, **hparams: Any) -> nn.Module:
    """A new model `name` built with `hparams`.

    Raises:
        ValueError: unknown name (the message lists the registered ones) or a bad hyper-parameter.
        TypeError: an unknown hyper-parameter.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(sorted(MODELS))}")
    return MODELS[name](**hparams)


def hparam_names(name: str) -> list[str]:
    """The hyper-parameters (constructor arguments) of model `name`."""
    return list(inspect.signature(MODELS[name].__init__).parameters)[1:]


def hparam_errors(name: str, hparams: dict[str, Any]) -> tuple[str, str] | None:
    """(hparam, message) for the first unknown or wrongly typed hyper-parameter, else None.

    Types are checked against the constructor's annotations where they are plain (int, float, str,
    bool, list, tuple, dict, unions and Optional of those); anything else is left to the constructor.
    """
    cls = MODELS[name]
    params = inspect.signature(cls.__init__).parameters
    names = list(params)[1:]
    try:
        hints = typing.get_type_hints(inspect.unwrap(cls.__init__))
    except Exception:  # noqa: BLE001 - unresolvable annotations: no type checks
        hints = {}
    for key, value in hparams.items():
        if key not in names:
            return key, f"unknown hyper-parameter for model {name!r}; expected one of: {', '.join(names)}"
        if key in hints and not _matches(value, hints[key]):
            return key, f"expected {_describe(hints[key])}, got {type(value).__name__} {value!r}"
    missing = [n for n in names if params[n].default is inspect.Parameter.empty and n not in hparams]
    if missing:
        return missing[0], f"missing; model {name!r} needs it"
    return None


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint in (list, tuple) or origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if hint is dict or origin is dict:
        return isinstance(value, dict)
    return True


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    names = {int: "an integer", float: "a number", str: "a string", bool: "a boolean", list: "an array",
             tuple: "an array", dict: "a table", type(None): "none"}
    return names.get(origin or hint, getattr(hint, "__name__", str(hint)))


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel / DataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def model_config(model: nn.Module) -> dict[str, Any]:
    """{"class": name, "hparams": {...}, "dtype": ...} of a model built from the registry.

    Raises:
        TypeError: the model's class is not registered (or it is an unregistered subclass).
    """
    model = unwrap(model)
    recorded = getattr(model, _HPARAMS, None)
    if recorded is None:
        raise TypeError(f"{type(model).__qualname__} is not a registered model (use @sciml.models.register_model)")
    name, hparams = recorded
    try:
        json.dumps(hparams)
    except TypeError as err:
        raise TypeError(f"model {name!r}: hyper-parameters must be JSON-serialisable ({err})") from None
    return {"class": name, "hparams": hparams, "dtype": _dtype_name(model)}


def _dtype_name(model: nn.Module) -> str | None:
    dtypes = {t.dtype for t in model.state_dict().values() if t.is_floating_point()}
    return str(dtypes.pop()).removeprefix("torch.") if len(dtypes) == 1 else None


def write_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """The model's state dict as safetensors at `path` (tied weights stored once)."""
    from safetensors.torch import save_model

    save_model(unwrap(model), str(path), metadata={"format": "pt"})


def read_weights(model: nn.Module, path: str | os.PathLike, device: str | torch.device = "cpu") -> None:
    """Load safetensors weights into `model` (strict: every tensor must match)."""
    from safetensors.torch import load_model

    device = torch.device(device)
    load_model(unwrap(model), str(path), strict=True, device=str(device))


def save(model: nn.Module, directory: str | os.PathLike) -> Path:
    """Write `directory/model.safetensors` and `directory/config.json`, each file atomically.

    Returns the directory. Raises `TypeError` for a model not built from the registry.
    """
    config = model_config(model)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / WEIGHTS) as tmp:
        write_weights(model, tmp)
    with atomic_path(directory / CONFIG) as tmp:
        tmp.write_text(json.dumps(config, indent=2) + "\n")
    return directory


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """The config.json of a checkpoint directory (or of the folder holding `path`)."""
    directory = Path(path)
    if directory.is_file():
        directory = directory.parent
    file = directory / CONFIG
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such file (not a model checkpoint directory)")
    config = json.loads(file.read_text())
    if not isinstance(config, dict) or "class" not in config or not isinstance(config.get("hparams"), dict):
        raise ValueError(f"{file}: expected {{\"class\": name, \"hparams\": {{...}}}}")
    return config


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model saved by `save` (or a training checkpoint) from its directory, in eval mode.

    The class is looked up by name in the registry: import the module that registers it first.
    """
    directory = Path(path)
    if directory.is_file():
        directory = directory.parent
    config = read_config(directory)
    name = config["class"]
    if name not in MODELS:
        raise ValueError(f"{directory}: model class {name!r} is not registered (import the module that "
                         f"defines it); registered models: {', '.join(sorted(MODELS))}")
    model = build_model(name, **config["hparams"])
    dtype = config.get("dtype")
    if isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype):
        real = getattr(torch, dtype)  # real tensors only: `model.to` would drop the imaginary part of complex weights
        for t in [*model.parameters(), *model.buffers()]:
            if t.is_floating_point() and t.dtype != real:
                t.data = t.data.to(real)
    model = model.to(device)
    read_weights(model, directory / WEIGHTS, device)
    return model.eval()
