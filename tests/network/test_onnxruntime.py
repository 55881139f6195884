"""The ONNX Runtime backend: loading and checking graphs, binding by name, the export cache, and
parity with the PyTorch model on every real KITTI frame and on pillar counts from 1 to the max."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from tests.helpers import REPO, kitti_frame_paths, random_cloud
from pointpillars_trt.network import create_backend
from pointpillars_trt.network.onnxruntime import OnnxRuntimeBackend, resolve_graph_paths, select_providers
from pointpillars_trt.network.torch_backend import TorchBackend
from pointpillars_trt.detector import Detector
from pointpillars_trt.errors import BackendUnavailableError, ConfigError, EngineError
from pointpillars_trt.exporter import export_onnx
from pointpillars_trt.compare.detections import compare_detections, match_detections, threshold_in_gap, uncapped_threshold
from pointpillars_trt.compare.parts import head_errors, part_errors, torch_parts
from pointpillars_trt.exporter.parity import parity_state_dict, synthetic_pillars
from pointpillars_trt.model import build_model

FRAMES = kitti_frame_paths()
OPT_PILLARS = 12000


def load_frame(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype=np.float32).reshape(-1, 4)


def feeds_of(pillars) -> dict[str, np.ndarray]:
    return {"features": pillars.features, "num_points": pillars.num_points, "coords": pillars.coords}


class Setup:
    """One random model (non-degenerate outputs), its fp32 (+ fused) and fp16 graphs, and detectors."""

    def __init__(self, cfg, root: Path) -> None:
        self.cfg = cfg
        voxelize = Detector.from_backend(cfg, TorchBackend(cfg)).executor.voxelizer
        calib = feeds_of(voxelize(load_frame(FRAMES[0]))) if FRAMES else None
        self.state_dict = parity_state_dict(cfg, seed=0, calibration=calib)
        self.model = build_model(cfg)
        self.model.load_state_dict(self.state_dict)
        self.dirs = {"fp32": root / "fp32", "fp16": root / "fp16"}
        export_onnx(self.model, cfg, self.dirs["fp32"], fused=True)
        export_onnx(self.model, cfg, self.dirs["fp16"], fp16=True)
        self.torch = Detector.from_backend(cfg, TorchBackend(cfg, self.state_dict))
        self.ort = {p: Detector.from_backend(cfg, OnnxRuntimeBackend(cfg, engine_dir=d, device="cpu")) for p, d in self.dirs.items()}

    @lru_cache(maxsize=None)
    def reference(self, path: Path):
        """Pillars, torch PFN/MFN outputs and torch detections of a frame (computed once)."""
        points = load_frame(path)
        feeds = feeds_of(self.torch.executor.voxelizer(points))
        with torch.inference_mode():
            pf = self.model.pfn(torch.from_numpy(feeds["features"]), torch.from_numpy(feeds["num_points"]))
            canvas = self.model.mfn(pf, torch.from_numpy(feeds["coords"]))
        return points, feeds, {"pillar_features": pf.numpy(), "canvas": canvas.numpy()}, self.torch.detect(points)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, kitti_config) -> Setup:
    return Setup(kitti_config, tmp_path_factory.mktemp("ort"))


# ---- parity on real frames --------------------------------------------------------------------
@pytest.mark.parametrize("frame", FRAMES, ids=[f"{p.parent.parent.name}/{p.stem}" for p in FRAMES])
def test_fp32_parity_on_real_frame(setup, frame):
    points, feeds, ref, ref_det = setup.reference(frame)
    assert len(ref_det) >= 5, "the parity weights must produce boxes on real frames"
    errs = part_errors(ref, setup.ort["fp32"].executor.backend, feeds, rpn=False)
    assert errs["pfn"].max_abs <= 1e-4 * max(1.0, errs["pfn"].ref_max), errs["pfn"]
    assert errs["mfn"].max_abs == 0.0  # the scatter only moves values
    got = setup.ort["fp32"].detect(points)
    diff = compare_detections(ref_det, got)
    assert diff.agrees(box_tol=1e-4, score_tol=1e-5), diff
    assert set(got.timings_ms) >= {"pfn", "scatter", "rpn"}


@pytest.mark.slow
@pytest.mark.parametrize("frame", FRAMES, ids=[f"{p.parent.parent.name}/{p.stem}" for p in FRAMES])
def test_fp16_boxes_match_on_real_frame(setup, frame):
    points, feeds, ref, ref_det = setup.reference(frame)
    errs = part_errors(ref, setup.ort["fp16"].executor.backend, feeds, rpn=False)
    assert errs["pfn"].max_abs <= 2e-3 * errs["pfn"].ref_max, errs["pfn"]
    assert errs["mfn"].max_rel <= 1e-3, errs["mfn"]  # float16 rounding of the values only
    m = match_detections(ref_det, setup.ort["fp16"].detect(points))
    assert m.recall >= 0.9 and m.precision >= 0.9, m
    assert m.mean_iou >= 0.97 and m.max_score_diff <= 0.02, m


# ---- synthetic pillar counts across the profile -------------------------------------------------
@pytest.mark.parametrize("num_pillars", [1, 5, OPT_PILLARS, "max"])
def test_fp32_parity_across_pillar_counts(setup, num_pillars):
    """PFN and MFN at every count; the whole chain (and the RPN alone, FP32 and FP16) at 1 and at the
    config's max, so that the full-canvas RPN runs only where it adds something."""
    n = setup.cfg.voxel.max_pillars if num_pillars == "max" else num_pillars
    feeds = synthetic_pillars(setup.cfg, n, seed=n)
    be = setup.ort["fp32"].executor.backend
    if n in (5, OPT_PILLARS):
        with torch.inference_mode():
            pf = setup.model.pfn(torch.from_numpy(feeds["features"]), torch.from_numpy(feeds["num_points"]))
            ref = {"pillar_features": pf.numpy(), "canvas": setup.model.mfn(pf, torch.from_numpy(feeds["coords"])).numpy()}
        errs = part_errors(ref, be, feeds, rpn=False)
    else:
        ref = torch_parts(setup.model, feeds)
        out = be.infer(feeds)
        assert set(be.last_timings_ms) == {"pfn", "scatter", "rpn"}
        errs = {**part_errors(ref, be, feeds, rpn=n > 1), **head_errors(ref, out)}
        post = setup.torch.executor.postprocess
        thr = uncapped_threshold(post, ref)
        diff = compare_detections(post(ref["cls"], ref["box"], ref["dir"], thr), post(out["cls"], out["box"], out["dir"], thr))
        assert diff.agrees(), diff
        if n == 1:  # the fused graph gives the split graphs' outputs
            fused = OnnxRuntimeBackend(setup.cfg, engine_dir=setup.dirs["fp32"], fused=True, device="cpu")
            out_fused = fused.infer(feeds)
            assert fused.fused and set(fused.last_timings_ms) == {"full"}
            for k in ("cls", "box", "dir"):
                np.testing.assert_allclose(out_fused[k], out[k], atol=1e-5, rtol=1e-5)
        else:  # the FP16 RPN fed the same canvas
            e16 = part_errors(ref, setup.ort["fp16"].executor.backend, feeds)
            for k in ("rpn.cls", "rpn.box", "rpn.dir"):
                assert e16[k].max_abs <= 2e-2 * max(1.0, e16[k].ref_max), (k, e16[k])
    assert errs["mfn"].max_abs == 0.0  # the scatter only moves values
    for key, s in errs.items():
        assert s.max_abs <= 1e-4 * max(1.0, s.ref_max), (key, s)


def test_zero_pillars(example_config, tmp_path):
    """ONNX Runtime accepts P = 0 in every graph: the canvas is all zeros (documented in docs/ACCURACY.md)."""
    model = build_model(example_config)
    export_onnx(model, example_config, tmp_path, fused=True)
    empty = synthetic_pillars(example_config, 0)
    ref = torch_parts(model, empty)
    for fused in (False, True):
        be = OnnxRuntimeBackend(example_config, engine_dir=tmp_path, fused=fused, device="cpu")
        out = be.infer(empty)
        for k in ("cls", "box", "dir"):
            np.testing.assert_allclose(out[k], ref[k], atol=1e-5)
        if not fused:
            assert be.run_part("pfn", empty)["pillar_features"].shape == (0, example_config.network.pfn_channels)
            assert not be.run_part("mfn", {"pillar_features": np.zeros((0, example_config.network.pfn_channels), np.float32),
                                           "coords": empty["coords"]})["canvas"].any()


# ---- the non-KITTI config, end to end ------------------------------------------------------------
def test_example_config_end_to_end(example_config, tmp_path):
    """Detector.from_checkpoint with the onnxruntime backend exports a checkpoint of the example
    config (to the cache) and runs it; the boxes equal the torch backend's."""
    from pointpillars_trt.checkpoint import save_native

    cfg = example_config
    ckpt = save_native(tmp_path / "example.safetensors", parity_state_dict(cfg, seed=2), cfg)
    torch_det = Detector.from_checkpoint(ckpt, backend="torch")
    ort_det = Detector.from_checkpoint(ckpt, backend="onnxruntime", cache_dir=tmp_path)
    assert ort_det.config == cfg and isinstance(ort_det.executor.backend, OnnxRuntimeBackend) and ort_det.executor.backend.precision == "fp32"
    graphs = list((tmp_path / "onnx").glob("*/*.onnx"))
    assert sorted(p.name for p in graphs) == ["mfn.onnx", "pfn.onnx", "rpn.onnx"]
    points = random_cloud(cfg, 15000, seed=5)
    ref = torch_det.detect(points)
    thr = threshold_in_gap(ref.scores) if len(ref) >= cfg.postprocess.nms_post_max else None  # see uncapped_threshold
    ref = torch_det.detect(points, score_threshold=thr)
    got = ort_det.detect(points, score_threshold=thr)
    assert len(ref) > 0
    assert compare_detections(ref, got).agrees()
    # a second backend reuses the cached export
    mtimes = {p: p.stat().st_mtime_ns for p in graphs}
    again = create_backend("onnxruntime", cfg=cfg, state_dict=torch_det.executor.backend.model.state_dict(), cache_dir=tmp_path, device="cpu")
    assert {p: p.stat().st_mtime_ns for p in graphs} == mtimes
    assert again.graph_paths["pfn"] in graphs


# ---- loading and checking graphs --------------------------------------------------------------
def test_config_mismatch_names_fields(setup, example_config):
    with pytest.raises(ConfigError, match=r"another config; differing fields: anchors"):
        OnnxRuntimeBackend(example_config, engine_dir=setup.dirs["fp32"])


def test_adopts_graph_config_and_checks_weights(setup):
    be = OnnxRuntimeBackend(None, engine_dir=setup.dirs["fp16"])
    assert be.cfg == setup.cfg and be.precision == "fp16" and not be.fused
    OnnxRuntimeBackend(setup.cfg, engine_dir=setup.dirs["fp32"], state_dict=setup.state_dict)
    other = dict(setup.state_dict)
    other["pfn.linear.weight"] = other["pfn.linear.weight"] * 1.01
    with pytest.raises(EngineError, match="other weights"):
        OnnxRuntimeBackend(setup.cfg, engine_dir=setup.dirs["fp32"], state_dict=other)
    with pytest.raises(EngineError, match="graphs are fp16"):
        OnnxRuntimeBackend(setup.cfg, engine_dir=setup.dirs["fp16"], precision="fp32")


def test_missing_and_mixed_graphs(setup, tmp_path):
    with pytest.raises(EngineError, match="not found"):
        OnnxRuntimeBackend(setup.cfg, engine_dir=tmp_path / "nowhere")
    with pytest.raises(EngineError, match="holds none of"):
        OnnxRuntimeBackend(setup.cfg, engine_dir=tmp_path)
    with pytest.raises(EngineError, match="no full.onnx"):
        OnnxRuntimeBackend(setup.cfg, engine_dir=setup.dirs["fp16"], fused=True)
    shutil.copy(setup.dirs["fp32"] / "pfn.onnx", tmp_path / "pfn.onnx")
    with pytest.raises(EngineError, match="missing mfn.onnx, rpn.onnx"):
        OnnxRuntimeBackend(setup.cfg, engine_dir=tmp_path)
    mixed = {"pfn": setup.dirs["fp32"] / "pfn.onnx", "mfn": setup.dirs["fp16"] / "mfn.onnx", "rpn": setup.dirs["fp32"] / "rpn.onnx"}
    with pytest.raises(EngineError, match="not exported together"):
        OnnxRuntimeBackend(setup.cfg, engine_dir=mixed)
    swapped = {"pfn": setup.dirs["fp32"] / "mfn.onnx", "mfn": setup.dirs["fp32"] / "pfn.onnx", "rpn": setup.dirs["fp32"] / "rpn.onnx"}
    with pytest.raises(EngineError, match="metadata says it is the 'mfn' graph"):
        OnnxRuntimeBackend(setup.cfg, engine_dir=swapped)
    assert set(resolve_graph_paths(setup.dirs["fp32"], fused=False)) == {"pfn", "mfn", "rpn"}
    with pytest.raises(ConfigError, match="needs its config|give engine_dir"):
        OnnxRuntimeBackend(setup.cfg)


def _edited_pfn(setup, tmp_path: Path, edit) -> dict[str, Path]:
    """The fp32 graphs with the PFN edited by ``edit`` and its graph hash re-recorded (as if exported so)."""
    from pointpillars_trt.artifacts import PREFIX, graph_sha256

    model = onnx.load(str(setup.dirs["fp32"] / "pfn.onnx"))
    edit(model.graph)
    props = {p.key: p.value for p in model.metadata_props}
    onnx.helper.set_model_props(model, {**props, PREFIX + "graph_sha256": graph_sha256(model)})
    onnx.save(model, tmp_path / "pfn.onnx")
    return {"pfn": tmp_path / "pfn.onnx", "mfn": setup.dirs["fp32"] / "mfn.onnx", "rpn": setup.dirs["fp32"] / "rpn.onnx"}


def test_binds_inputs_by_name(setup, tmp_path):
    """A PFN graph whose inputs are declared in the other order gives the same result."""

    def reverse_inputs(graph):
        inputs = list(graph.input)[::-1]
        del graph.input[:]
        graph.input.extend(inputs)

    paths = _edited_pfn(setup, tmp_path, reverse_inputs)
    be = OnnxRuntimeBackend(setup.cfg, engine_dir=paths, device="cpu")
    assert [i.name for i in be.activate()._sessions["pfn"].get_inputs()] == ["num_points", "features"]
    feeds = synthetic_pillars(setup.cfg, 50, seed=3)
    pfn_feeds = {"features": feeds["features"], "num_points": feeds["num_points"]}
    a = be.run_part("pfn", pfn_feeds)["pillar_features"]
    b = setup.ort["fp32"].executor.backend.run_part("pfn", pfn_feeds)["pillar_features"]
    np.testing.assert_array_equal(a, b)


def test_rejects_graph_with_other_io_names(setup, tmp_path):
    def rename(graph):
        for node in graph.node:
            node.input[:] = ["points" if x == "features" else x for x in node.input]
        graph.input[0].name = "points"

    be = OnnxRuntimeBackend(setup.cfg, engine_dir=_edited_pfn(setup, tmp_path, rename), device="cpu")
    with pytest.raises(EngineError, match="not the pfn graph's"):
        be.activate()


def test_infer_checks_inputs(setup):
    be = setup.ort["fp32"].executor.backend
    with pytest.raises(ConfigError, match="missing input"):
        be.infer({"features": np.zeros((1, 32, 10), np.float32)})
    too_many = setup.cfg.voxel.max_pillars + 1
    with pytest.raises(ConfigError, match="exceed"):
        be.infer({"features": np.zeros((too_many, 1, 1), np.float32), "num_points": np.zeros(too_many, np.int32),
                  "coords": np.zeros((too_many, 2), np.int32)})


# ---- providers and optional dependency -------------------------------------------------------------
def test_select_providers():
    cpu_only = ["CPUExecutionProvider"]
    both = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert select_providers(cpu_only, None, None) == ["CPUExecutionProvider"]
    assert select_providers(both, None, None) == both
    assert select_providers(both, "cpu", None) == ["CPUExecutionProvider"]
    assert select_providers(both, "cuda:1", None) == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    with pytest.raises(BackendUnavailableError, match="onnxruntime-gpu"):
        select_providers(cpu_only, "cuda", None)
    with pytest.raises(BackendUnavailableError, match="not available"):
        select_providers(cpu_only, None, ["TensorrtExecutionProvider"])
    with pytest.raises(ConfigError):
        select_providers(cpu_only, "tpu", None)


def test_missing_onnxruntime_is_a_clear_error(setup, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(BackendUnavailableError, match="pip install onnxruntime"):
        OnnxRuntimeBackend(setup.cfg, engine_dir=setup.dirs["fp32"])


def test_package_imports_without_loading_onnxruntime():
    code = ("import sys, pointpillars_trt, pointpillars_trt.network.onnxruntime, pointpillars_trt.exporter.metadata; "
            "print('onnxruntime' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
