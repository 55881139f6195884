"""compare/detections.py: the exact comparison and the one matcher, against brute-force versions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pointpillars_trt.compare.detections import (
    BoxMatch, compare_detections, greedy_pairs, match_detections, select_above, threshold_in_gap,
)
from pointpillars_trt.postprocess import RawDetections, iou_bev


def dets(boxes, scores, labels) -> RawDetections:
    return RawDetections(np.asarray(boxes, np.float32).reshape(-1, 7), np.asarray(scores, np.float32),
                         np.asarray(labels, np.int64))


def brute_force_pairs(iou, scores, thr) -> list[tuple[int, int]]:
    """The documented rule written plainly: references best score first (equal: lower index), each
    takes the free other box of highest IoU >= thr (equal: lower index)."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    taken, pairs = set(), []
    for i in order:
        best = None
        for j in range(iou.shape[1]):
            if j not in taken and iou[i, j] >= thr and (best is None or iou[i, j] > iou[i, best]):
                best = j
        if best is not None:
            taken.add(best)
            pairs.append((i, best))
    return pairs


def random_scene(rng, n, m):
    """Two overlapping sets of boxes around a few centres (many contested pairs), 2 classes."""
    centres = rng.uniform(0, 12, size=(4, 2))

    def boxes(k):
        b = np.zeros((k, 7))
        b[:, :2] = centres[rng.integers(0, 4, k)] + rng.normal(scale=0.6, size=(k, 2))
        b[:, 3:6] = rng.uniform(1.0, 4.0, size=(k, 3))
        b[:, 6] = rng.uniform(-math.pi, math.pi, k)
        return b

    scores = np.round(rng.uniform(0, 1, n), 1)  # rounded: equal scores happen
    return dets(boxes(n), scores, rng.integers(0, 2, n)), dets(boxes(m), rng.uniform(0, 1, m), rng.integers(0, 2, m))


@pytest.mark.parametrize("seed", range(20))
def test_greedy_pairs_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(0, 12)), int(rng.integers(0, 12))
    iou = np.round(rng.uniform(0, 1, size=(n, m)), 1)  # rounded: equal IoUs happen
    scores = np.round(rng.uniform(0, 1, n), 1)
    ri, gi = greedy_pairs(iou, scores, 0.5)
    assert list(zip(ri.tolist(), gi.tolist())) == brute_force_pairs(iou, scores, 0.5)


@pytest.mark.parametrize("seed", range(10))
def test_match_detections_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    ref, got = random_scene(rng, int(rng.integers(1, 15)), int(rng.integers(1, 15)))
    iou = iou_bev(ref.boxes, got.boxes)
    iou[ref.labels[:, None] != got.labels[None, :]] = 0.0
    pairs = brute_force_pairs(iou, ref.scores, 0.3)
    m = match_detections(ref, got, iou_threshold=0.3)
    assert (m.n_ref, m.n_got, m.n_matched) == (len(ref.scores), len(got.scores), len(pairs))
    if pairs:
        ious = [iou[i, j] for i, j in pairs]
        assert m.mean_iou == pytest.approx(np.mean(ious)) and m.min_iou == pytest.approx(min(ious))
        assert m.max_score_diff == pytest.approx(max(abs(float(ref.scores[i]) - float(got.scores[j])) for i, j in pairs))
        assert m.max_center_diff == pytest.approx(max(np.linalg.norm(got.boxes[j, :3] - ref.boxes[i, :3]) for i, j in pairs), rel=1e-6)
        assert all(ref.labels[i] == got.labels[j] for i, j in pairs)


def test_greedy_is_by_reference_score_not_by_iou():
    # reference 0 (score 0.9) and reference 1 (score 0.5) both want other box 0; reference 1 overlaps it
    # more, but reference 0 comes first and takes it: the tie rule is the score order
    iou = np.array([[0.6, 0.55], [0.95, 0.0]])
    ri, gi = greedy_pairs(iou, np.array([0.9, 0.5]), 0.5)
    assert list(zip(ri, gi)) == [(0, 0)]
    ri, gi = greedy_pairs(iou, np.array([0.5, 0.5]), 0.5)  # equal scores: the lower index first
    assert list(zip(ri, gi)) == [(0, 0)]
    ri, gi = greedy_pairs(np.array([[0.7, 0.7]]), np.array([1.0]), 0.7)  # equal IoUs: the lower index; >= is inclusive
    assert list(zip(ri, gi)) == [(0, 0)]
    assert greedy_pairs(np.zeros((0, 3)), np.zeros(0), 0.5)[0].shape == (0,)
    assert greedy_pairs(np.zeros((2, 0)), np.zeros(2), 0.5)[1].shape == (0,)


def test_match_detections_fields():
    ref = dets([[0, 0, 0, 4, 2, 1.5, 0], [10, 0, 0, 4, 2, 1.5, 0], [20, 0, 0, 1, 1, 1, 0]], [0.9, 0.8, 0.7], [0, 0, 1])
    got = dets([[10.05, 0, 0, 4, 2, 1.5, 0.01 + 2 * math.pi], [0, 0, 0, 4, 2, 1.5, 0], [20, 0, 0, 1, 1, 1, 0]], [0.81, 0.9, 0.7], [0, 0, 2])
    m = match_detections(ref, got)
    assert (m.n_ref, m.n_got, m.n_matched) == (3, 3, 2)  # the third pair differs in class
    assert m.recall == pytest.approx(2 / 3) and m.precision == pytest.approx(2 / 3)
    assert m.max_center_diff == pytest.approx(0.05, abs=1e-6) and m.max_score_diff == pytest.approx(0.01, abs=1e-6)
    assert m.max_yaw_diff == pytest.approx(0.01, abs=1e-5)  # modulo 2 pi
    assert m.max_size_diff == 0.0 and 0.9 < m.min_iou < 1.0
    empty = dets([], [], [])
    assert match_detections(ref, empty) == BoxMatch.unmatched(3, 0)
    assert match_detections(empty, empty).recall == 1.0 and match_detections(empty, got).precision == 0.0


def test_box_match_merge():
    a = BoxMatch(3, 2, 2, 0.9, 0.8, 0.1, 0.2, 0.3, 0.01)
    b = BoxMatch(1, 1, 1, 0.6, 0.6, 0.5, 0.1, 0.0, 0.02)
    t = BoxMatch.total([a, BoxMatch.unmatched(2, 0), b])
    assert (t.n_ref, t.n_got, t.n_matched) == (6, 3, 3)
    assert t.mean_iou == pytest.approx((0.9 * 2 + 0.6) / 3) and t.min_iou == 0.6  # the unmatched frame's 0 is not a minimum
    assert (t.max_center_diff, t.max_size_diff, t.max_yaw_diff, t.max_score_diff) == (0.5, 0.2, 0.3, 0.02)
    assert BoxMatch.total([]) == BoxMatch.unmatched(0, 0)


def test_compare_detections_pairs_swapped_and_wraps_yaw():
    a = dets([[1, 2, 0, 4, 2, 1.5, math.pi - 1e-6], [8, 2, 0, 4, 2, 1.5, 0]], [0.9, 0.9], [0, 1])
    b = dets([[8, 2, 0, 4, 2, 1.5, 0], [1, 2, 0, 4, 2, 1.5, -math.pi + 1e-6]], [0.9, 0.9], [1, 0])  # equal scores swapped
    d = compare_detections(a, b)
    assert d.agrees() and d.same_count and d.max_box_diff < 1e-5
    assert not compare_detections(a, dets([], [], [])).agrees()
    far = dets([[3, 2, 0, 4, 2, 1.5, 0]], [0.9], [0])  # 2 m away: not paired
    assert compare_detections(a, far).n_matched == 0
    assert not compare_detections(a, dets(a.boxes, a.scores + 1e-3, a.labels)).agrees()


def test_select_above_and_threshold_in_gap():
    d = dets([[0, 0, 0, 1, 1, 1, 0]] * 3, [0.9, 0.3, 0.1], [0, 1, 2])
    assert select_above(d, None) is d
    kept = select_above(d, 0.3)
    assert kept.scores.tolist() == pytest.approx([0.9]) and kept.labels.tolist() == [0] and kept.boxes.shape == (1, 7)
    scores = np.array([0.9, 0.8, 0.7, 0.4, 0.39, 0.2, 0.1, 0.05])
    thr = threshold_in_gap(scores)
    assert thr == pytest.approx(0.55)  # the widest gap of the middle half (0.7 .. 0.4)
