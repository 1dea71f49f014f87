"""All or nothing: a call that changes a model and raises leaves the model exactly as it was.

This is the one mechanism that guarantees it: every verb that changes a model is wrapped in `transactional`,
which records the model's module tree (every module's children, parameters, buffers and plain attributes such
as a layer's active adapters), every parameter's and buffer's values and every requires_grad flag, and puts
all of them back if the call raises. The restored model holds the very same module and parameter objects, so an
optimizer built before still works. Verbs still check their arguments before they change anything, but for
clear error messages, not for safety.
"""

from __future__ import annotations

import copy
import functools

import torch
import torch.nn as nn

_OPEN: set[int] = set()  # models inside a transaction (a verb that calls another records once)
_SLOTS = ("_modules", "_parameters", "_buffers")


def _copy(value):
    """A shallow copy of a container attribute (lists of active names, settings, hooks); others as they are."""
    return copy.copy(value) if isinstance(value, (list, dict, set)) else value


def snapshot(model: nn.Module):
    modules = []
    for module in model.modules():
        attributes = {k: _copy(v) for k, v in vars(module).items() if k not in _SLOTS}
        modules.append((module, attributes, *(dict(getattr(module, slot)) for slot in _SLOTS)))
    tensors = {}
    for module in model.modules():
        for t in list(module._parameters.values()) + list(module._buffers.values()):
            if t is not None and id(t) not in tensors:
                tensors[id(t)] = (t, t.detach().clone(), t.requires_grad)
    return modules, list(tensors.values())


@torch.no_grad()
def restore(saved) -> None:
    modules, tensors = saved
    for module, attributes, *slots in modules:
        for key in [k for k in vars(module) if k not in _SLOTS and k not in attributes]:
            delattr(module, key)
        vars(module).update(attributes)
        for slot, content in zip(_SLOTS, slots):
            live = getattr(module, slot)
            live.clear()
            live.update(content)
    for tensor, value, requires_grad in tensors:
        if tensor.shape != value.shape:
            tensor.data = value
        else:
            tensor.copy_(value)
        if tensor.is_leaf:
            tensor.requires_grad_(requires_grad)


def transactional(verb):
    """Decorate a verb whose first argument is the model it changes: if it raises, nothing changed."""

    @functools.wraps(verb)
    def guarded(model, *args, **kwargs):
        if not isinstance(model, nn.Module) or id(model) in _OPEN:
            return verb(model, *args, **kwargs)
        saved = snapshot(model)
        _OPEN.add(id(model))
        try:
            return verb(model, *args, **kwargs)
        except BaseException:
            restore(saved)
            raise
        finally:
            _OPEN.discard(id(model))

    return guarded
