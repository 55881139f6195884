"""The staging copier: split_jobs covers every byte once, in shares on 64-byte boundaries; SplitCopier
copies exactly, splits only large copies, and refuses a bad thread count."""

from __future__ import annotations

import numpy as np
import pytest

from pointpillars_trt.errors import ConfigError
from pointpillars_trt.executors.staging import MIN_SHARE_BYTES, SplitCopier, split_jobs


def _covered(shares) -> list[tuple[int, int, int]]:
    """The (dst, src, n) pieces of all shares, merged back into maximal runs."""
    runs: list[list[int]] = []
    for share in shares:
        for d, s, n in share:
            if runs and runs[-1][0] + runs[-1][2] == d and runs[-1][1] + runs[-1][2] == s:
                runs[-1][2] += n
            else:
                runs.append([d, s, n])
    return [tuple(r) for r in runs]


@pytest.mark.parametrize("sizes, parts", [((1000,), 1), ((1000,), 3), ((64, 0, 4096, 17), 4), ((10 ** 6, 3 * 10 ** 5), 4), ((5,), 8)])
def test_split_jobs_covers_every_byte_once(sizes, parts):
    jobs, dst, src = [], 10 ** 9, 5 * 10 ** 9
    for n in sizes:
        jobs.append((dst, src, n))
        dst, src = dst + n + 4096, src + n + 8192
    shares = split_jobs(jobs, parts)
    assert 1 <= len(shares) <= parts or sum(sizes) == 0
    assert _covered(shares) == [j for j in jobs if j[2]]
    total, offset = sum(sizes), 0
    for share in shares[:-1]:  # every share but the last ends on a 64-byte boundary of the concatenation
        offset += sum(n for _, _, n in share)
        assert offset % 64 == 0
    assert offset <= total


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("num_points", [3, 20285, 101425])
def test_split_copier_copies_exactly(threads, num_points):
    rng = np.random.default_rng(num_points)
    clouds = [rng.standard_normal((num_points + 7 * b, 4)).astype(np.float32) for b in range(3)]
    rows = np.zeros((3, num_points + 64, 4), np.float32)
    copier = SplitCopier(threads)
    try:
        for _ in range(3):  # the workers are reused
            rows[:] = 0
            copier.copy([(rows[b].ctypes.data, c.ctypes.data, c.nbytes) for b, c in enumerate(clouds)])
            for b, c in enumerate(clouds):
                np.testing.assert_array_equal(rows[b, : len(c)], c)
                assert not rows[b, len(c):].any()
    finally:
        copier.close()


def test_small_copies_stay_on_the_callers_thread():
    copier = SplitCopier(4)
    assert copier.parts(20285 * 16) == 1  # a FOV cloud: the hand-off costs more than it saves
    assert copier.parts(2 * MIN_SHARE_BYTES) == 2 and copier.parts(101425 * 16) == 3 and copier.parts(10 ** 8) == 4
    with pytest.raises(ConfigError, match="shares for 4 threads"):
        copier.run([[]] * 5)
    copier.close()


@pytest.mark.parametrize("threads", [0, -1, 1.5])
def test_bad_thread_counts_are_refused(threads):
    with pytest.raises(ConfigError, match="staging_threads"):
        SplitCopier(threads)



def test_the_default_thread_count_is_a_quarter_of_the_cores_up_to_four():
    from pointpillars_trt.executors.staging import default_staging_threads

    assert [default_staging_threads(n) for n in (1, 2, 7, 8, 12, 16, 128)] == [1, 1, 1, 2, 3, 4, 4]
    assert default_staging_threads() >= 1
