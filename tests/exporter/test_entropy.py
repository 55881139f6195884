"""The vectorized entropy range search gives ONNX Runtime's own threshold on the same histograms."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from pointpillars_trt.exporter.entropy import entropy_threshold  # noqa: E402


def _histogram(values: np.ndarray, bins: int):
    t = np.float32(np.abs(values).max())
    hist, edges = np.histogram(values, bins, range=(-t, t))
    return hist, edges.astype(np.float32), np.float32(values.min()), np.float32(values.max()), t


@pytest.mark.parametrize("kind", ["relu", "signed", "sparse"])
def test_same_threshold_as_onnxruntime(kind):
    from onnxruntime.quantization.calibrate import HistogramCollector

    rng = np.random.default_rng(3)
    values = {"relu": np.maximum(rng.standard_normal(50_000), 0) ** 2, "signed": rng.laplace(size=50_000),
              "sparse": np.concatenate([np.zeros(40_000), rng.exponential(size=2_000), [40.0]])}[kind].astype(np.float32)
    histogram = _histogram(values, 600)
    collector = HistogramCollector("entropy", symmetric=False, num_bins=600, num_quantized_bins=128, percentile=99.99, scenario="same")
    want = collector.get_entropy_threshold(histogram, 128)
    got = entropy_threshold(histogram, 128)
    assert (float(got[0]), float(got[1])) == (float(want[0]), float(want[1]))
    assert hasattr(got[0], "dtype") and hasattr(got[1], "dtype")  # what ONNX Runtime's TensorData requires
