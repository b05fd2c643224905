"""Loading weights with every tensor checked against the module that receives it.

`torch.nn.Module.load_state_dict` reports a shape mismatch as one long string; the denoiser must
instead refuse weights made for another config with an error that names the parameter, so that the
cause (an old checkpoint, a config edited by hand) is obvious from the log.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn


class IncompatibleWeightsError(ValueError):
    """The weights do not fit the model: one parameter has the wrong shape, is missing or is extra."""

    def __init__(self, parameter: str, expected: tuple[int, ...] | None, found: tuple[int, ...] | None):
        self.parameter = parameter
        self.expected = expected
        self.found = found
        if found is None:
            detail = f"missing from the weights (the model expects shape {expected})"
        elif expected is None:
            detail = f"in the weights with shape {found} but not in the model"
        else:
            detail = f"expected shape {expected}, found {found}"
        super().__init__(f"incompatible weights for parameter {parameter!r}: {detail}")


def check_state_dict(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Raises IncompatibleWeightsError at the first parameter whose name or shape disagrees."""
    expected = module.state_dict()
    for name, tensor in expected.items():
        if name not in state:
            raise IncompatibleWeightsError(name, tuple(tensor.shape), None)
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise IncompatibleWeightsError(name, tuple(tensor.shape), tuple(state[name].shape))
    for name, tensor in state.items():
        if name not in expected:
            raise IncompatibleWeightsError(name, None, tuple(tensor.shape))


def load_weights(module: nn.Module, path: str | Path) -> None:
    """Loads a safetensors file into module after checking every name and shape."""
    state = load_file(str(path))
    check_state_dict(module, state)
    module.load_state_dict(state)


def save_weights(module: nn.Module, path: str | Path) -> None:
    save_file({k: v.detach().contiguous() for k, v in module.state_dict().items()}, str(path))
