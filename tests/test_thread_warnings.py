"""Warnings caught per thread: two threads inside caught_warnings at once each get their own, and
the process's warning state is back as it was after both leave."""

from __future__ import annotations

import threading
import warnings

from pointpillars_trt.thread_warnings import caught_warnings


def test_two_threads_get_their_own_warnings_and_the_state_is_restored():
    show, filters = warnings.showwarning, list(warnings.filters)
    inside, got = threading.Barrier(2), {}

    def work(name: str) -> None:
        with caught_warnings() as caught:
            inside.wait()  # both threads are inside before either warns
            for i in range(50):
                warnings.warn(f"{name} {i}", UserWarning)
            inside.wait()  # and neither leaves before both have warned
        got[name] = caught

    threads = [threading.Thread(target=work, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in ("a", "b"):
        assert got[name] == [f"{name} {i}" for i in range(50)]  # every one (the "always" filter), only its own
    assert warnings.showwarning is show and warnings.filters == filters


def test_nested_and_outside_warnings():
    with caught_warnings() as outer:
        warnings.warn("outer", UserWarning)
        with caught_warnings() as inner:
            warnings.warn("inner", UserWarning)
        warnings.warn("outer again", UserWarning)
    assert (outer, inner) == (["outer", "outer again"], ["inner"])
    with warnings.catch_warnings(record=True) as shown:  # outside: shown as usual
        warnings.simplefilter("always")
        warnings.warn("plain", UserWarning)
    assert [str(w.message) for w in shown] == ["plain"]
