"""The ONNX Runtime backend's host scatter (:class:`CanvasScatter`): the canvas ``mfn.onnx`` makes,
bit for bit, frame after frame on one reused buffer, and off-grid coordinates refused."""

from __future__ import annotations

import numpy as np
import pytest

from pointpillars_trt.errors import EngineError
from pointpillars_trt.exporter import export_onnx
from pointpillars_trt.model import build_model
from pointpillars_trt.network.onnxruntime import CanvasScatter, OnnxRuntimeBackend

pytest.importorskip("onnxruntime")


def _pillars(rng: np.random.Generator, nx: int, ny: int, count: int, channels: int):
    cells = rng.choice(nx * ny, size=count, replace=False)
    coords = np.stack([cells % nx, cells // nx], axis=1).astype(np.int32)
    return rng.standard_normal((count, channels)).astype(np.float32), coords


def test_host_scatter_equals_the_mfn_graph_frame_after_frame(example_config, tmp_path):
    cfg = example_config
    export_onnx(build_model(cfg), cfg, tmp_path)
    backend = OnnxRuntimeBackend(cfg, engine_dir=tmp_path, device="cpu", threads=1)
    nx, ny, _ = cfg.grid_size
    scatter = CanvasScatter(nx, ny)
    rng = np.random.default_rng(0)
    for count in (500, 40, 0, 300):  # fewer pillars after more: the cells of the frame before must be cleared
        pf, coords = _pillars(rng, nx, ny, count, cfg.network.pfn_channels)
        want = backend.run_part("mfn", {"pillar_features": pf, "coords": coords})["canvas"]
        got = scatter(pf, coords)
        assert got.shape == want.shape == (1, cfg.network.pfn_channels, ny, nx)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("cell", [(-1, 0), (0, -1), (10, 0), (0, 8)])
def test_host_scatter_refuses_coordinates_off_the_grid(cell):
    pf = np.ones((2, 4), np.float32)
    coords = np.array([[1, 1], cell], np.int32)
    with pytest.raises(EngineError, match="outside the 10 x 8 grid"):
        CanvasScatter(10, 8)(pf, coords)
