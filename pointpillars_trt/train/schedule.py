"""The one-cycle learning-rate and momentum schedule, as a function of progress, so that a run with a
wall-clock limit still completes its cycle (anneals to the final LR) when the limit comes first.

``torch.optim.lr_scheduler.OneCycleLR`` advances one step per call: a run stopped by a time limit
ends mid-cycle, at a high learning rate, and its weights are far from what the full schedule gives
(two H200 runs of 2026-12-01 lost their results so). Here the position in the cycle is
``max(step, (total - 1) * min(1, elapsed / max_seconds))``: the step count while the run keeps pace, the
share of the time budget once it does not. Without a limit the values are torch's to the bit
(same formulas, same phases; checked in tests against ``OneCycleLR``).
"""

from __future__ import annotations

import math

import torch


def cos_anneal(start: float, end: float, pct: float) -> float:
    """``start`` at ``pct`` 0 to ``end`` at 1 along half a cosine (torch's ``_annealing_cos``)."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def one_cycle(position: float, total: int, max_lr: float, pct_start: float, div_factor: float, final_div_factor: float,
              moms: tuple[float, float]) -> tuple[float, float]:
    """``(lr, momentum)`` at ``position`` (an optimiser-step count, fractional allowed, 0..total) of a
    ``total``-step two-phase cosine one-cycle: lr from ``max_lr / div_factor`` up to ``max_lr`` by step
    ``pct_start * total - 1``, then down to ``max_lr / div_factor / final_div_factor`` at ``total - 1``;
    momentum from ``moms[0]`` down to ``moms[1]`` and back (``OneCycleLR``'s phases)."""
    initial = max_lr / div_factor
    phases = ((float(pct_start * total) - 1, initial, max_lr, moms[0], moms[1]),
              (total - 1, max_lr, initial / final_div_factor, moms[1], moms[0]))
    start = 0
    for i, (end, lr0, lr1, m0, m1) in enumerate(phases):
        if position <= end or i == len(phases) - 1:
            pct = (position - start) / (end - start)
            return cos_anneal(lr0, lr1, pct), cos_anneal(m0, m1, pct)
        start = end
    raise AssertionError("unreachable")


class OneCycle:
    """The one-cycle schedule of an AdamW ``opt`` (momentum = ``betas[0]``) over ``total`` steps, fitted to
    ``max_seconds`` of wall clock when given (see the module docstring). :meth:`advance` after each
    optimiser step; :attr:`lr` is the learning rate the next step uses; :meth:`done` says when the
    time-fitted cycle has ended."""

    def __init__(self, opt: torch.optim.Optimizer, total: int, max_lr: float, pct_start: float, div_factor: float,
                 final_div_factor: float, moms: tuple[float, float], max_seconds: float | None = None) -> None:
        self.opt, self.total, self.max_seconds = opt, total, max_seconds
        self._args = (total, max_lr, pct_start, div_factor, final_div_factor, moms)
        self.position: float = 0
        self.lr = self._apply(0)

    def _apply(self, position: float) -> float:
        lr, momentum = one_cycle(position, *self._args)
        for group in self.opt.param_groups:
            group["lr"] = lr
            group["betas"] = (momentum, group["betas"][1])
        return lr

    def advance(self, step: int, elapsed: float) -> None:
        """Set the schedule for the step after ``step`` optimiser steps, ``elapsed`` seconds into the run."""
        position: float = step
        if self.max_seconds is not None:  # the share of the time budget used, as a step count (at most the cycle's end)
            used = min(1.0, elapsed / self.max_seconds) if self.max_seconds > 0 else 1.0
            position = max(step, (self.total - 1) * used)
        self.position = position
        self.lr = self._apply(position)

    def done(self, elapsed: float) -> bool:
        """True once ``elapsed`` reaches ``max_seconds`` (the cycle has been run to its end by then)."""
        return self.max_seconds is not None and elapsed >= self.max_seconds
