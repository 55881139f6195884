"""Warnings recorded per thread, for code that runs detectors in several threads at once (a fleet actor
running several batches, a ROS node with a multi-threaded executor).

:func:`warnings.catch_warnings` swaps process-wide state (``warnings.showwarning`` and the filter
list) on entry and puts it back on exit: two threads inside it at once record each other's warnings
and may restore the other's state, so warnings go to the wrong rows or are lost. :func:`caught_warnings`
installs one hook for all threads while any is inside it; each warning goes to the list of the thread
that raised it. Warnings of threads outside it are shown as before (they see the ``"always"`` filter
meanwhile, so a repeated one is shown again).
"""

from __future__ import annotations

import threading
import warnings

_local = threading.local()
ALWAYS = ("always", None, Warning, None, 0)  # the entry warnings.simplefilter("always") puts first


class _Hook:
    """The process-wide hook: how many threads are inside :func:`caught_warnings`, and what the
    first of them found installed (put back when the last leaves). One instance: its state lives
    in instance attributes (setting a class attribute per frame costs microseconds)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.show = None
        self.filters: list = []

    def enter(self) -> None:
        with self.lock:
            if self.users == 0:  # the filters as simplefilter("always") leaves them, in a new list
                self.show, self.filters = warnings.showwarning, warnings.filters
                hooked = list(self.filters)
                if ALWAYS in hooked:
                    hooked.remove(ALWAYS)
                hooked.insert(0, ALWAYS)
                warnings.showwarning = _show
                warnings.filters = hooked  # type: ignore[misc]
                warnings._filters_mutated()  # type: ignore[attr-defined]  # as catch_warnings does
            self.users += 1

    def leave(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users == 0:  # the list found on entry, as it was
                warnings.showwarning = self.show
                warnings.filters = self.filters  # type: ignore[misc]
                warnings._filters_mutated()  # type: ignore[attr-defined]  # as catch_warnings does on exit


_hook = _Hook()


def _show(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` while the hook is on: into the calling thread's list, if it has one."""
    caught = getattr(_local, "caught", None)
    if caught is not None:
        caught.append(str(message))
    else:
        _hook.show(message, category, filename, lineno, file, line)


class caught_warnings:  # noqa: N801  (named and used as a function: ``with caught_warnings() as caught``)
    """Within: every warning this thread raises is appended to the list ``__enter__`` returns (its
    message text) instead of being shown; thread-safe, unlike :func:`warnings.catch_warnings`; nests.
    A class rather than a ``contextmanager`` generator: the ROS node enters it once per frame."""

    __slots__ = ("_caught", "_outer")

    def __enter__(self) -> list[str]:
        self._caught: list[str] = []
        self._outer = getattr(_local, "caught", None)
        _hook.enter()
        _local.caught = self._caught
        return self._caught

    def __exit__(self, *exc: object) -> None:
        _local.caught = self._outer
        _hook.leave()


__all__ = ["caught_warnings"]
