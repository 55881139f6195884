"""compare/arrays.py: ErrorStats and array_errors against an element-by-element reference."""

from __future__ import annotations

import numpy as np
import pytest

from pointpillars_trt.compare.arrays import REL_FLOOR, ErrorStats, array_errors, merge_stats, named_errors


def brute_force_errors(ref, got) -> ErrorStats:
    """The module docstring's definition, one element at a time in Python floats."""
    r, g = [float(x) for x in np.ravel(ref)], [float(x) for x in np.ravel(got)]
    scale = max(abs(x) for x in r)
    floor = max(REL_FLOOR * scale, 1e-30)
    d = [abs(b - a) for a, b in zip(r, g)]
    return ErrorStats(max(d), sum(d) / len(d), max(e / max(abs(a), floor) for e, a in zip(d, r)), scale, len(r))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_matches_brute_force(seed, dtype):
    rng = np.random.default_rng(seed)
    ref = (rng.normal(size=(3, 7)) * 10 ** rng.uniform(-3, 3)).astype(dtype)
    ref.flat[rng.integers(0, ref.size)] = 0.0  # a zero in the reference: the floor applies
    got = (ref.astype(np.float64) + rng.normal(scale=1e-2, size=ref.shape)).astype(dtype)
    want, s = brute_force_errors(ref, got), array_errors(ref, got)
    for field in ("max_abs", "mean_abs", "max_rel", "ref_max"):
        assert getattr(s, field) == pytest.approx(getattr(want, field), rel=1e-12), field
    assert s.count == want.count == ref.size


def test_floor_and_edge_cases():
    ref = np.array([0.0, 1.0, -4.0, 1e-6])
    s = array_errors(ref, ref + np.array([0.0, 0.1, 0.0, 1e-3]))
    assert s.max_abs == pytest.approx(0.1) and s.ref_max == 4.0
    assert s.max_rel == pytest.approx(1e-3 / (REL_FLOOR * 4.0))  # tiny reference values: measured against 1e-3 * max
    assert s.mean_abs == pytest.approx((0.1 + 1e-3) / 4)
    assert array_errors(ref, ref) == ErrorStats(0.0, 0.0, 0.0, 4.0, 4)
    assert array_errors(np.zeros((0, 3)), np.zeros((0, 3))) == ErrorStats(0.0, 0.0, 0.0, 0.0, 0)
    assert array_errors(np.zeros(3), np.full(3, 1e-5)).max_rel > 0  # an all-zero reference does not divide by 0
    with pytest.raises(ValueError, match="shapes differ"):
        array_errors(np.zeros(3), np.zeros(4))


def test_merge_is_the_stats_of_both():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=20), rng.normal(size=30)
    da, db = rng.normal(scale=1e-3, size=20), rng.normal(scale=1e-3, size=30)
    merged = array_errors(a, a + da).merge(array_errors(b, b + db))
    whole = array_errors(np.concatenate([a, b]), np.concatenate([a + da, b + db]))
    assert merged.max_abs == whole.max_abs and merged.ref_max == whole.ref_max and merged.count == 50
    assert merged.mean_abs == pytest.approx(whole.mean_abs)
    assert merged.max_rel >= whole.max_rel * (1 - 1e-12)  # each part keeps its own (smaller or equal) floor
    assert ErrorStats(0, 0, 0, 0, 0).merge(ErrorStats(0, 0, 0, 0, 0)).mean_abs == 0.0


def test_merge_stats_and_named_errors():
    ref = {"cls": np.ones(3), "box": np.zeros(2)}
    first = named_errors(ref, {"cls": np.ones(3) * 1.1, "box": np.zeros(2)}, ("cls", "box"), "chain.")
    assert set(first) == {"chain.cls", "chain.box"}
    into = merge_stats(first, {})
    merge_stats(named_errors(ref, {"cls": np.ones(3) * 1.5, "box": np.zeros(2)}, ("cls", "box"), "chain."), into)
    assert into["chain.cls"].max_abs == pytest.approx(0.5) and into["chain.cls"].count == 6
    assert into["chain.box"].to_dict() == {"max_abs": 0.0, "mean_abs": 0.0, "max_rel": 0.0, "ref_max": 0.0, "count": 4}
