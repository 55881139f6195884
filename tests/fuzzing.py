"""Hypothesis strategies shared by the readers' property tests: bytes near a valid file.

Random bytes alone rarely get past a header; ``near(seed)`` also truncates a valid file,
overwrites a span of it with random bytes, or replaces one number in it with an extreme one
(negative, zero, huge, NaN), which is how the fuzzing of issue 14 found its cases.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Callable

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from pointpillars_trt.errors import PointPillarsError

FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
EXTREMES = [b"-1", b"0", b"-0", b"1e9", b"99999999999999999999", b"nan", b"inf", b"-inf", b"32.7", b"", b"a"]
_NUMBER = re.compile(rb"-?\d+(\.\d+)?(e-?\d+)?")


def _replace_number(seed: bytes, index: int, new: bytes) -> bytes:
    spans = [m.span() for m in _NUMBER.finditer(seed)]
    if not spans:
        return seed
    start, end = spans[index % len(spans)]
    return seed[:start] + new + seed[end:]


def near(seed: bytes) -> st.SearchStrategy[bytes]:
    """Bytes of ``seed`` truncated, overwritten in one span, with one number replaced, or random."""
    n = len(seed)
    truncated = st.integers(0, n).map(lambda k: seed[:k])
    overwritten = st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=16)).map(
        lambda t: seed[: t[0]] + t[1] + seed[t[0] + len(t[1]):]
    )
    renumbered = st.tuples(st.integers(0, 10_000), st.sampled_from(EXTREMES)).map(
        lambda t: _replace_number(seed, *t)
    )
    return st.one_of(truncated, overwritten, renumbered, st.binary(max_size=256))


def reads_or_typed_error(read: Callable[[Path], object], path: Path, data: bytes) -> object | None:
    """Write ``data`` to ``path`` and read it: the result, or None after a PointPillarsError.

    Any other exception (a traceback a user would see) fails the test.
    """
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return read(path)
        except PointPillarsError:
            return None
