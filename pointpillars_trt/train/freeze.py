"""Fine-tuning part of a model: keep named parts fixed (gradients off, BatchNorm statistics kept)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..errors import ConfigError


def module_names(model: nn.Module, depth: int = 2) -> list[str]:
    """The dotted names of ``model``'s sub-modules up to ``depth`` levels (``pfn``, ``rpn``, ``rpn.blocks``, ...)
    that hold parameters: what :func:`freeze` accepts (any deeper name of a parameter's path works too)."""
    return [n for n, m in model.named_modules() if n and n.count(".") < depth and any(True for _ in m.parameters())]


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def freeze(model: nn.Module, prefixes: Sequence[str]) -> list[str]:
    """Keep the parameters under the modules named by ``prefixes`` (dotted state-dict paths such as ``pfn`` or
    ``rpn.blocks.0``; a prefix matches whole path components only) fixed: ``requires_grad`` off, and every
    BatchNorm whose parameters are all frozen gets momentum 0, so that its running statistics stay as they
    are while it still normalises by batch statistics in training mode, as it did when the model was trained.

    Why not eval mode (detectron2's frozen BatchNorm)? The parts after a frozen one were trained on what it
    gave in training mode, and their own running statistics describe that. A PointPillars backbone's
    activations in eval mode can differ from those by more than their own norm (the demo model's third block:
    2.4 times), so a frozen backbone in eval mode feeds its upsampling layers, in training mode, inputs they
    never saw: the shipped model's loss on one batch went from 0.59 to 3.4 (0.5865 with momentum 0, as unfrozen).

    Returns the frozen parameters' names. :class:`ConfigError` for a prefix that names no parameter (listing
    :func:`module_names`) or when nothing is left to train. No prefixes: a no-op.
    """
    if not prefixes:
        return []
    params = dict(model.named_parameters())
    for p in prefixes:
        if not any(_matches(n, p) for n in params):
            raise ConfigError(f"freeze: {p!r} names no parameter of the model; its parts are {', '.join(module_names(model))}")
    frozen = [n for n in params if any(_matches(n, p) for p in prefixes)]
    if len(frozen) == len(params):
        raise ConfigError(f"freeze: {', '.join(prefixes)} freezes every parameter; nothing is left to train")
    for n in frozen:
        params[n].requires_grad_(False)
    for m in model.modules():
        own = list(m.parameters())
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and own and not any(q.requires_grad for q in own):
            m.momentum = 0.0
    return frozen
