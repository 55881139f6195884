"""The KITTI protocol on hand-built cases whose AP is known exactly, and against a plain-Python
re-statement of the devkit / OpenPCDet algorithm on random data.

Note on counts: KITTI samples precision at score thresholds chosen for recall steps of 1/40, so
with fewer than 41 valid ground-truth objects even perfect predictions score below 100 (that is the
protocol, not a bug). The cases below use >= 41 objects where they expect 100.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pointpillars_trt.eval import KittiEvaluator, evaluate, format_table
from pointpillars_trt.eval.kitti_eval import DIFFICULTIES, METRICS
from pointpillars_trt.io.kitti import KittiObject

SIZES = {"Car": (1.5, 1.6, 3.9), "Van": (2.0, 1.9, 4.8), "Truck": (3.0, 2.5, 8.0), "Pedestrian": (1.7, 0.6, 0.8),
         "Person_sitting": (1.2, 0.6, 0.8), "Cyclist": (1.7, 0.6, 1.8)}  # fmt: skip


def obj(kind, u, x, z, *, height_px=60.0, occluded=0, truncated=0.0, ry=0.0, alpha=0.0, score=None, bbox=None):
    """An object at camera (x, 1.6, z) with a 2D box 40 px wide starting at column ``u``."""
    if kind == "DontCare":
        return KittiObject("DontCare", -1, -1, -10, bbox or (u, 100, u + 40, 100 + height_px), (-1, -1, -1),
                           (-1000, -1000, -1000), -10)  # fmt: skip
    return KittiObject(kind, truncated, occluded, alpha, bbox or (u, 100, u + 40, 100 + height_px), SIZES[kind],
                       (x, 1.6, z), ry, score)  # fmt: skip


def as_prediction(o: KittiObject, score: float, **changes) -> KittiObject:
    fields = {**o.__dict__, "score": score, "truncated": 0.0, "occluded": 0, **changes}
    return KittiObject(**fields)


def all_values(table):
    return [table[c][m][d] for c in table for m in METRICS for d in DIFFICULTIES]


def perfect_split(frames=50):
    gt, dt = [], []
    for f in range(frames):
        objects = [obj("Car", 100, -5, 20, ry=0.3, alpha=0.5), obj("Pedestrian", 300, 0, 15, alpha=-1.0),
                   obj("Cyclist", 500, 5, 25, ry=-2.0, alpha=2.0), obj("DontCare", 900, 0, 0)]  # fmt: skip
        gt.append(objects)
        dt.append([as_prediction(o, 0.3 + 0.01 * (f % 50)) for o in objects[:3]])
    return gt, dt


def test_perfect_predictions_give_100_everywhere():
    gt, dt = perfect_split()
    result = evaluate(gt, dt)
    assert set(result) == {"R11", "R40", "loose"} and set(result["loose"]) == {"R11", "R40"}
    for table in (result["R11"], result["R40"], result["loose"]["R11"], result["loose"]["R40"]):
        assert set(table) == {"Car", "Pedestrian", "Cyclist"}
        assert all(set(table[c]) == set(METRICS) for c in table)
        assert all_values(table) == pytest.approx([100.0] * 36)


def test_one_missed_moderate_car_of_41():
    """41 moderate cars (occluded 1, 30 px), 40 found: recall 40/41. The 40 TP scores give 40
    thresholds (recall 1/41..40/41, each the best approximation of k/40), precision 1 at samples
    0..39 and 0 at sample 40: R40 = 39/40, R11 = samples 0,4,..,36 of 0..40 = 10/11."""
    gt, dt = [], []
    for f in range(41):
        car = obj("Car", 100, 0, 20, height_px=30, occluded=1)
        gt.append([car])
        dt.append([as_prediction(car, 0.5 + 0.01 * f)] if f != 17 else [])
    result = evaluate(gt, dt, classes=("Car",))
    for metric in METRICS:
        for difficulty in ("moderate", "hard"):
            assert result["R40"]["Car"][metric][difficulty] == pytest.approx(100 * 39 / 40)
            assert result["R11"]["Car"][metric][difficulty] == pytest.approx(100 * 10 / 11)
        assert result["R40"]["Car"][metric]["easy"] == 0.0  # no valid easy car; matches of ignored cars are not FP
    curve = KittiEvaluator(gt, dt).curve("Car", "3d", "moderate", 0.7)
    assert curve.num_gt == 41
    assert curve.recall.max() == pytest.approx(40 / 41)
    assert curve.precision[:40] == pytest.approx(np.ones(40)) and curve.precision[40] == 0.0


def test_one_false_positive_lowers_precision_exactly():
    """50 found cars and a false positive above them all: every threshold keeps the FP, so each
    sample's precision is tp / (tp + 1) with tp the recall step's TP count."""
    gt, dt = [], []
    for f in range(50):
        car = obj("Car", 100, 0, 20)
        gt.append([car])
        dt.append([as_prediction(car, 0.5 + 0.001 * f)])
    dt[0].append(as_prediction(obj("Car", 600, 8, 40), 0.99))
    curve = KittiEvaluator(gt, dt).curve("Car", "bev", "easy", 0.7)
    tp_counts = np.round(curve.recall * 50)
    assert curve.precision == pytest.approx(np.where(tp_counts > 0, tp_counts / (tp_counts + 1), 0.0))
    expected_r40 = float(np.sum(curve.precision[1:]) / 40 * 100)
    assert evaluate(gt, dt, classes=("Car",))["R40"]["Car"]["bev"]["easy"] == pytest.approx(expected_r40)
    assert expected_r40 < 100


def test_iou_069_is_a_miss_at_07_and_a_hit_at_05():
    length = SIZES["Car"][2]
    shift = length * (1 - 0.69) / 1.69  # same box slid along its length: IoU = (l - d) / (l + d) = 0.69
    gt, dt = [], []
    for f in range(45):
        car = obj("Car", 100, 0, 20)
        gt.append([car])
        dt.append([as_prediction(car, 0.5 + 0.01 * f, location=(shift, 1.6, 20))])
    ev = KittiEvaluator(gt, dt)
    assert ev.overlaps("bev") == pytest.approx(np.full(45, 0.69))
    assert ev.overlaps("3d") == pytest.approx(np.full(45, 0.69))
    result = evaluate(gt, dt, classes=("Car",))
    for table in (result["R11"], result["R40"]):
        assert table["Car"]["bev"]["moderate"] == 0.0 and table["Car"]["3d"]["moderate"] == 0.0
        assert table["Car"]["bbox"]["moderate"] == pytest.approx(100.0)
    for table in (result["loose"]["R11"], result["loose"]["R40"]):
        assert table["Car"]["bev"]["moderate"] == pytest.approx(100.0)
        assert table["Car"]["3d"]["moderate"] == pytest.approx(100.0)


def _with_extra_prediction(extra_gt, extra_dt, frames=45, kind="Car"):
    gt, dt = [], []
    for f in range(frames):
        o = obj(kind, 100, 0, 20)
        gt.append([o])
        dt.append([as_prediction(o, 0.5 + 0.01 * f)])
    gt[0] = gt[0] + list(extra_gt)
    dt[0] = dt[0] + list(extra_dt)
    return gt, dt


def test_predictions_in_dontcare_regions_are_ignored():
    stray = as_prediction(obj("Car", 805, 10, 50, height_px=50), 0.99)  # no ground truth there
    dontcare = obj("DontCare", 800, 0, 0, height_px=60)
    gt, dt = _with_extra_prediction([dontcare], [stray])
    result = evaluate(gt, dt, classes=("Car",))
    for table in (result["R11"], result["R40"]):
        assert [table["Car"]["bbox"][d] for d in DIFFICULTIES] == pytest.approx([100.0] * 3)
        assert [table["Car"]["aos"][d] for d in DIFFICULTIES] == pytest.approx([100.0] * 3)
        # OpenPCDet applies DontCare to the 2D metric only: in BEV / 3D the stray box is a FP
        assert table["Car"]["3d"]["moderate"] < 99.0
    devkit = evaluate(gt, dt, classes=("Car",), dontcare_all_metrics=True)
    assert all_values(devkit["R40"]) == pytest.approx([100.0] * 12)
    without = evaluate(*_with_extra_prediction([], [stray]), classes=("Car",))
    assert without["R40"]["Car"]["bbox"]["moderate"] < 99.0


def test_neighbouring_classes_are_ignored_not_false_positives():
    van = obj("Van", 600, 8, 30)
    gt, dt = _with_extra_prediction([van], [as_prediction(van, 0.99, type="Car")])
    assert all_values(evaluate(gt, dt, classes=("Car",))["R40"]) == pytest.approx([100.0] * 12)
    # a Van nobody detected is not a missed Car either
    gt, dt = _with_extra_prediction([van], [])
    assert all_values(evaluate(gt, dt, classes=("Car",))["R40"]) == pytest.approx([100.0] * 12)
    # a Truck is not a neighbour of Car: the same prediction is a false positive
    truck = obj("Truck", 600, 8, 30)
    gt, dt = _with_extra_prediction([truck], [as_prediction(truck, 0.99, type="Car")])
    assert evaluate(gt, dt, classes=("Car",))["R40"]["Car"]["3d"]["moderate"] < 99.0
    # Person_sitting for Pedestrian
    sitting = obj("Person_sitting", 600, 8, 30)
    gt, dt = _with_extra_prediction([sitting], [as_prediction(sitting, 0.99, type="Pedestrian")], kind="Pedestrian")
    assert all_values(evaluate(gt, dt, classes=("Pedestrian",))["R40"]) == pytest.approx([100.0] * 12)


def test_predictions_lower_than_the_minimum_height_are_ignored():
    tiny = as_prediction(obj("Car", 700, 10, 60, height_px=20), 0.99)  # 20 px < 25 px
    result = evaluate(*_with_extra_prediction([], [tiny]), classes=("Car",))
    assert all_values(result["R40"]) == pytest.approx([100.0] * 12)
    low = as_prediction(obj("Car", 700, 10, 60, height_px=30), 0.99)  # 30 px: ignored for easy only
    result = evaluate(*_with_extra_prediction([], [low]), classes=("Car",))
    assert result["R40"]["Car"]["3d"]["easy"] == pytest.approx(100.0)
    assert result["R40"]["Car"]["3d"]["moderate"] < 99.0


def test_difficulty_levels_follow_height_occlusion_and_truncation():
    cases = {  # (height px, occluded, truncated) -> counted in (easy, moderate, hard)
        (60, 0, 0.0): (1, 1, 1), (40, 0, 0.0): (0, 1, 1), (30, 1, 0.2): (0, 1, 1), (30, 2, 0.2): (0, 0, 1),
        (30, 0, 0.4): (0, 0, 1), (25, 0, 0.0): (0, 0, 0), (60, 3, 0.0): (0, 0, 0), (60, 0, 0.6): (0, 0, 0),
    }  # fmt: skip
    ev = KittiEvaluator([[obj("Car", 100, 0, 20, height_px=h, occluded=o, truncated=t)] for h, o, t in cases], [[]] * len(cases))
    for d, name in enumerate(DIFFICULTIES):
        ign_gt, _ = ev.ignore_flags("Car", d)
        assert list(ign_gt == 0) == [bool(v[d]) for v in cases.values()], name


def test_aos_measures_orientation():
    gt, dt = [], []
    for f in range(45):
        car = obj("Car", 100, 0, 20, alpha=0.4)
        gt.append([car])
        dt.append([as_prediction(car, 0.5 + 0.01 * f, alpha=0.4 + math.pi)])  # same box, facing backwards
    result = evaluate(gt, dt, classes=("Car",))["R40"]["Car"]
    assert result["bbox"]["moderate"] == pytest.approx(100.0)
    assert result["aos"]["moderate"] == pytest.approx(0.0, abs=1e-9)


def test_no_predictions_and_no_frames():
    gt, _ = perfect_split(5)
    assert all_values(evaluate(gt, [[] for _ in gt])["R40"]) == [0.0] * 36
    assert all_values(evaluate([], [])["R11"]) == [0.0] * 36


def test_input_errors():
    gt, dt = perfect_split(3)
    with pytest.raises(ValueError, match="3 ground-truth frames but 2 prediction frames"):
        evaluate(gt, dt[:2])
    unscored = [[KittiObject(**{**gt[0][0].__dict__, "score": None})], [], []]
    with pytest.raises(ValueError, match="prediction 0 of frame 0 .Car. has no finite score"):
        evaluate(gt, unscored)
    with pytest.raises(ValueError, match="unknown class 'Bus'"):
        evaluate(gt, dt, classes=("Car", "Bus"))


def test_format_table():
    text = format_table(evaluate(*perfect_split()))
    lines = text.splitlines()
    assert "Car AP@0.70, 0.70, 0.70:" in lines and "Car AP_R40@0.70, 0.70, 0.70:" in lines
    assert "Car AP@0.70, 0.50, 0.50:" in lines and "Pedestrian AP_R40@0.50, 0.25, 0.25:" in lines
    assert "3d   AP:100.0000, 100.0000, 100.0000" in lines
    assert sum(line.startswith("aos  AP:") for line in lines) == 12
    assert any(line.startswith("3d R11") for line in lines)


# --------------------------------------------------------------------------------------------------
# plain-Python statement of the protocol, for a cross-check on random data


def reference_curve(gt_annos, dt_annos, overlaps, cls, metric, difficulty, min_overlap):
    """Precision [41] of one class/metric/difficulty, written loop by loop after the devkit."""
    min_h, max_occ, max_trunc = (40, 25, 25)[difficulty], (0, 1, 2)[difficulty], (0.15, 0.3, 0.5)[difficulty]
    neighbour = {"car": "van", "pedestrian": "person_sitting"}.get(cls.lower())
    frames = []
    num_gt = 0
    for gts, dts, ov in zip(gt_annos, dt_annos, overlaps):
        gts = [g for g in gts if g.type != "DontCare"]
        dcs = [g.bbox for g in gt_annos[len(frames)] if g.type == "DontCare"]
        ign_gt = []
        for g in gts:
            valid = 1 if g.type.lower() == cls.lower() else 0 if g.type.lower() == neighbour else -1
            hard = g.occluded > max_occ or g.truncated > max_trunc or g.height_px <= min_h
            ign_gt.append(0 if valid == 1 and not hard else 1 if valid == 0 or valid == 1 else -1)
        num_gt += ign_gt.count(0)
        ign_dt = [1 if abs(d.bbox[3] - d.bbox[1]) < min_h else 0 if d.type.lower() == cls.lower() else -1 for d in dts]
        frames.append((gts, dts, ov, ign_gt, ign_dt, dcs))

    def statistics(gts, dts, ov, ign_gt, ign_dt, dcs, thresh, compute_fp):
        assigned = [False] * len(dts)
        below = [compute_fp and d.score < thresh for d in dts]
        tp = fp = fn = 0
        scores = []
        for i in range(len(gts)):
            if ign_gt[i] == -1:
                continue
            det, best, max_ov, on_ignored = -1, None, 0.0, False
            for j, d in enumerate(dts):
                if ign_dt[j] == -1 or assigned[j] or below[j] or not ov[j, i] > min_overlap:
                    continue
                if not compute_fp:
                    if best is None or d.score > best:
                        det, best = j, d.score
                elif (ov[j, i] > max_ov or on_ignored) and ign_dt[j] == 0:
                    det, max_ov, on_ignored = j, ov[j, i], False
                elif det == -1 and ign_dt[j] == 1:
                    det, on_ignored = j, True
            if det == -1:
                fn += ign_gt[i] == 0
            elif ign_gt[i] == 1 or ign_dt[det] == 1:
                assigned[det] = True
            else:
                tp += 1
                scores.append(dts[det].score)
                assigned[det] = True
        if compute_fp:
            fp = sum(not assigned[j] and ign_dt[j] == 0 and not below[j] for j in range(len(dts)))
            if metric == "bbox":
                for dc in dcs:
                    for j, d in enumerate(dts):
                        if assigned[j] or ign_dt[j] != 0 or below[j]:
                            continue
                        iw = min(d.bbox[2], dc[2]) - max(d.bbox[0], dc[0])
                        ih = min(d.bbox[3], dc[3]) - max(d.bbox[1], dc[1])
                        area = (d.bbox[2] - d.bbox[0]) * (d.bbox[3] - d.bbox[1])
                        if iw > 0 and ih > 0 and iw * ih / area > min_overlap:
                            assigned[j] = True
                            fp -= 1
        return tp, fp, fn, scores

    all_scores = sorted((s for f in frames for s in statistics(*f, 0.0, False)[3]), reverse=True)
    thresholds, current = [], 0.0
    for i, s in enumerate(all_scores):
        l_recall = (i + 1) / num_gt
        r_recall = (i + 2) / num_gt if i < len(all_scores) - 1 else l_recall
        if (r_recall - current) < (current - l_recall) and i < len(all_scores) - 1:
            continue
        thresholds.append(s)
        current += 1 / 40
    precision = np.zeros(41)
    for t, thresh in enumerate(thresholds):
        tp = fp = 0
        for f in frames:
            a, b, _, _ = statistics(*f, thresh, True)
            tp, fp = tp + a, fp + b
        precision[t] = tp / (tp + fp)
    for t in range(41):
        precision[t] = precision[t:].max()
    return precision


def random_split(frames, rng):
    kinds = ["Car", "Car", "Car", "Pedestrian", "Cyclist", "Van", "Person_sitting", "DontCare"]
    gt, dt = [], []
    for _ in range(frames):
        gts = []
        for k in range(int(rng.integers(0, 9))):
            kind = kinds[int(rng.integers(0, len(kinds)))]
            u, top = rng.uniform(0, 1000), rng.uniform(100, 200)
            bbox = (u, top, u + rng.uniform(20, 120), top + rng.uniform(15, 90))
            o = obj(kind, 0, rng.uniform(-10, 10), rng.uniform(5, 40), occluded=int(rng.integers(0, 3)),
                    truncated=float(rng.choice([0.0, 0.1, 0.2, 0.4])), ry=rng.uniform(-3, 3), alpha=rng.uniform(-3, 3),
                    bbox=bbox)  # fmt: skip
            gts.append(o)
        dts = []
        for o in gts:
            if o.type != "DontCare" and rng.random() < 0.8:
                jitter = rng.normal(0, [0.3, 0.05, 0.3])
                box = np.asarray(o.bbox) + rng.normal(0, 4, 4)
                kind = {"Van": "Car", "Person_sitting": "Pedestrian"}.get(o.type, o.type)
                dts.append(as_prediction(o, float(rng.random()), type=kind, location=np.asarray(o.location) + jitter,
                                         rotation_y=o.rotation_y + rng.normal(0, 0.2), bbox=box))  # fmt: skip
            if o.type != "DontCare" and rng.random() < 0.3:  # a duplicate, often lower than 40 px (ignored when easy)
                top = o.bbox[1] + rng.uniform(0, 10)
                box = (o.bbox[0], top, o.bbox[2], top + rng.choice([30.0, o.bbox[3] - o.bbox[1]]))
                dts.append(as_prediction(o, float(rng.random()), location=np.asarray(o.location) + rng.normal(0, 0.2, 3),
                                         bbox=box))  # fmt: skip
            if o.type == "DontCare" and rng.random() < 0.8:  # a false positive inside the DontCare box
                x1, y1, x2, y2 = o.bbox
                box = (x1 + 1, y1 + 1, x2 - rng.uniform(1, 10), y2 - 1)
                dts.append(as_prediction(obj("Car", 0, 0, 30, bbox=box), float(rng.random())))
        for k in range(int(rng.integers(0, 4))):  # false positives anywhere
            u = rng.uniform(0, 1000)
            kind = ["Car", "Pedestrian", "Cyclist"][int(rng.integers(0, 3))]
            fake = obj(kind, u, rng.uniform(-10, 10), rng.uniform(5, 40), height_px=rng.uniform(15, 80), ry=rng.uniform(-3, 3))
            dts.append(as_prediction(fake, float(rng.random())))
        gt.append(gts)
        dt.append(dts)
    return gt, dt


def test_matches_a_plain_python_statement_of_the_protocol():
    rng = np.random.default_rng(7)
    gt, dt = random_split(60, rng)
    ev = KittiEvaluator(gt, dt)
    for metric, min_overlap in (("bbox", 0.7), ("bev", 0.5), ("3d", 0.5), ("3d", 0.25)):
        flat = ev.overlaps(metric)
        per_frame = []
        for f in range(len(gt)):
            n_dt, n_gt = ev.dt_off[f + 1] - ev.dt_off[f], ev.gt_off[f + 1] - ev.gt_off[f]
            per_frame.append(flat[ev.ov_off[f] : ev.ov_off[f + 1]].reshape(n_dt, n_gt))
        for cls in ("Car", "Pedestrian", "Cyclist"):
            for d in range(3):
                expected = reference_curve(gt, dt, per_frame, cls, metric, d, min_overlap)
                got = ev.curve(cls, metric, d, min_overlap).precision
                np.testing.assert_allclose(got, expected, atol=1e-12, err_msg=f"{cls} {metric} {DIFFICULTIES[d]}")
    assert ev.curve("Car", "bev", "moderate", 0.5).precision.max() > 0  # the data exercise matches at all
