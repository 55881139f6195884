"""The entropy (KL-divergence) range search of ONNX Runtime's calibrator, vectorized.

``HistogramCollector.get_entropy_threshold`` of ``onnxruntime.quantization.calibrate`` tries every
symmetric window of the histogram and, for each, merges and re-expands the bins in Python loops:
with the 2048-bin histograms that make the search worth doing (:class:`~.quantize.QuantizeOptions`
``histogram_bins``) that is seconds per tensor and many minutes per calibration. :func:`entropy_threshold`
computes the same windows, the same distributions and the same choice (the tests compare it with
ONNX Runtime's own), with each window's merge done by numpy; :func:`use_vectorized_entropy` puts it
into a calibrator's histogram collector.
"""

from __future__ import annotations

import numpy as np


def window_divergence(hist: np.ndarray, start: int, end: int, quantized_bins: int) -> float:
    """KL divergence between the window ``hist[start:end]`` (the outside counts added to its end
    bins) and the same window merged into ``quantized_bins`` bins and spread back evenly over each
    group's non-empty bins, as ONNX Runtime computes it (integer counts, its smoothing); inf if a
    side is all zeros."""
    from onnxruntime.quantization.calibrate import entropy
    from onnxruntime.quantization.quant_utils import smooth_distribution

    sliced = hist[start:end]
    p = sliced.copy()
    p[0] += hist[:start].sum()
    p[-1] += hist[end:].sum()
    merged = sliced.size // quantized_bins
    covered = quantized_bins * merged
    groups = sliced[:covered].reshape(quantized_bins, merged).sum(axis=1)
    groups[-1] += sliced[covered:].sum()
    norm = (p[:covered] != 0).reshape(quantized_bins, merged).sum(axis=1)
    q = np.zeros(p.size, dtype=np.int64)
    q[:covered] = np.repeat(np.where(norm != 0, groups // np.maximum(norm, 1), 0), merged)
    p, q = smooth_distribution(p), smooth_distribution(q)
    return float("inf") if p is None or q is None else float(entropy(p, q))


def entropy_threshold(histogram: tuple, quantized_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` of the window with the smallest :func:`window_divergence`, clipped to the
    values seen; ``histogram`` is ONNX Runtime's ``(hist, edges, min, max, threshold)`` of one tensor
    (``hist`` symmetric about 0). The result of ONNX Runtime's ``get_entropy_threshold``."""
    hist, edges, low, high = np.asarray(histogram[0]).astype(np.int64), histogram[1], histogram[2], histogram[3]
    zero, half = hist.size // 2, quantized_bins // 2
    candidates = range(half, zero + 1)
    divergences = [window_divergence(hist, zero - i, min(zero + i + 1, hist.size), quantized_bins) for i in candidates]
    i = candidates[int(np.argmin(divergences))]
    best = (edges[zero - i], edges[min(zero + i + 1, hist.size)])
    return (low if best[0] < low else best[0], high if best[1] > high else best[1])


def use_vectorized_entropy(calibrator) -> None:
    """Make ``calibrator`` (ONNX Runtime's entropy calibrator, after ``collect_data``) search with
    :func:`entropy_threshold`."""
    calibrator.collector.get_entropy_threshold = entropy_threshold
