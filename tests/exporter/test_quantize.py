"""INT8 export (explicit Q/DQ): the demo model calibrated on two real KITTI frames, run by real ONNX
Runtime sessions and by the Detector through its ONNX Runtime backend; the metadata checked at load;
--keep-float honoured; the calibration frame sources."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from tests.helpers import KITTI, REPO

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from pointpillars_trt.artifacts import onnx_metadata  # noqa: E402
from pointpillars_trt.errors import ConfigError, DatasetError, EngineError  # noqa: E402
from pointpillars_trt.exporter import (  # noqa: E402
    Int8Export, QuantizeOptions, calibration_frames, export_onnx, quantizable_nodes, read_graph_metadata, synthetic_frames,
)
from pointpillars_trt.exporter.calibration import spread  # noqa: E402
from pointpillars_trt.exporter.quantize import CALIBRATION_FILE  # noqa: E402

CALIB = KITTI / "zhulf0804" / "velodyne_reduced"  # two real KITTI frames


@pytest.fixture(scope="module")
def demo():
    from pointpillars_trt.detector import resolve_weights

    cfg, state_dict, source = resolve_weights(None, None, None)
    return cfg, state_dict, None if source.is_random else source.path


@pytest.fixture(scope="module")
def int8_dir(tmp_path_factory, demo):
    if not CALIB.is_dir():
        pytest.skip(f"real KITTI frames not found under {CALIB}")
    cfg, state_dict, ckpt = demo
    out = tmp_path_factory.mktemp("int8")
    # int8 activations: TensorRT's form (the default, uint8, is ONNX Runtime's: tests/exporter/test_quantize_uint8.py)
    int8 = Int8Export(calibration_frames(CALIB), QuantizeOptions(activation_type="int8"))
    export_onnx(state_dict, cfg, out, checkpoint_path=ckpt, fused=True, int8=int8)
    return out


def test_graphs_are_int8_with_zero_point_symmetric_per_channel_weights(int8_dir):
    for part in ("pfn", "mfn", "rpn", "full"):
        meta = read_graph_metadata(int8_dir / f"{part}.onnx")
        assert meta.precision == "int8"
        q = meta.quantization
        assert (q.method, q.percentile, q.frames) == ("entropy", None, ("000002.bin", "000134.bin"))
        assert str(CALIB) in q.calibration and q.tool.startswith("onnxruntime.quantization")
    assert (int8_dir / CALIBRATION_FILE).is_file()
    rpn = onnx.load(str(int8_dir / "rpn.onnx"))
    ops = {n.op_type for n in rpn.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "DepthToSpace"} <= ops and "ConvTranspose" not in ops
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in rpn.graph.initializer}
    producer = {o: n for n in rpn.graph.node for o in n.output}
    keep = set(read_graph_metadata(int8_dir / "rpn.onnx").quantization.keep_float)  # by default the first conv and the head
    for conv in (n for n in rpn.graph.node if n.op_type == "Conv" and n.name not in keep):
        dq = producer[conv.input[1]]  # weights: int8 through a per-output-channel DQ
        assert dq.op_type == "DequantizeLinear" and inits[dq.input[0]].dtype == np.int8
        assert inits[dq.input[1]].shape == (inits[dq.input[0]].shape[0],)
        assert producer[conv.input[0]].op_type == "DequantizeLinear"  # the input too
    for q in (n for n in rpn.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")):
        assert not np.any(inits[q.input[2]]), f"{q.name}: TensorRT needs zero points of 0"
    # the PFN stays float by default (QuantizeOptions.quantize_pfn)
    pfn = onnx.load(str(int8_dir / "pfn.onnx"))
    assert not {"QuantizeLinear", "DequantizeLinear"} & {n.op_type for n in pfn.graph.node}
    assert set(quantizable_nodes(pfn)) <= set(read_graph_metadata(int8_dir / "pfn.onnx").quantization.keep_float)


def test_a_real_session_runs_the_quantized_rpn_close_to_float(int8_dir, demo, kitti_points):
    from pointpillars_trt.exporter import build_graphs, as_model
    from pointpillars_trt.exporter.calibration import frame_feeds
    from pointpillars_trt.network.onnxruntime import INT8_DISABLED_OPTIMIZERS

    cfg, state_dict, _ = demo
    x = frame_feeds(cfg, kitti_points)
    float_full = build_graphs(as_model(state_dict, cfg), cfg, "fp32", fused=True)["full"]
    ref = ort.InferenceSession(float_full.SerializeToString()).run(["cls"], x)[0]
    sess = ort.InferenceSession(str(int8_dir / "full.onnx"), disabled_optimizers=list(INT8_DISABLED_OPTIMIZERS))
    got = sess.run(["cls"], x)[0]
    # two calibration frames of real KITTI for a model trained on synthetic data: about 0.92 here
    assert np.all(np.isfinite(got)) and np.corrcoef(ref.ravel(), got.ravel())[0, 1] > 0.85


def test_the_detector_runs_int8_graphs_with_boxes_close_to_fp32(int8_dir, kitti_frames):
    """Over the real frames (one frame holds too few confident boxes to say much): most FP32 boxes
    with score > 0.5 come back from the INT8 graphs at score > 0.3, same label, BEV IoU > 0.5."""
    from pointpillars_trt.compare.detections import match_detections, select_above
    from pointpillars_trt.detector import Detector

    clouds = [np.fromfile(p, dtype=np.float32).reshape(-1, 4) for p in kitti_frames]
    with Detector.from_engine_dir(int8_dir, backend="onnxruntime", device="cpu") as det:
        got = det.detect_batch(clouds)
    with Detector.from_checkpoint(backend="onnxruntime", device="cpu") as ref_det:
        ref = ref_det.detect_batch(clouds)
    matches = [match_detections(select_above(r, 0.5), select_above(g, 0.3), iou_threshold=0.5) for r, g in zip(ref, got)]
    n_ref, n_matched = sum(m.n_ref for m in matches), sum(m.n_matched for m in matches)
    assert n_ref >= 10 and n_matched >= 0.8 * n_ref, matches
    assert min(m.mean_iou for m in matches if m.n_matched) > 0.7, matches


def test_keep_float_is_honoured_and_unknown_names_refused(int8_dir, demo, tmp_path):
    cfg, state_dict, ckpt = demo
    rpn = onnx.load(str(int8_dir / "rpn.onnx"))
    first = [n for n in rpn.graph.node if n.op_type == "Conv"][cfg.network.backbone.layer_nums[0] + 3].name  # the first block's are float by default
    options = QuantizeOptions(keep_float=(first,), activation_type="int8")  # int8_dir's ranges are int8's
    frames = calibration_frames(CALIB)
    out = tmp_path / "kept"
    export_onnx(state_dict, cfg, out, checkpoint_path=ckpt, int8=Int8Export(frames, options, ranges=int8_dir / CALIBRATION_FILE))
    kept = onnx.load(str(out / "rpn.onnx"))
    producer = {o: n for n in kept.graph.node for o in n.output}
    conv = next(n for n in kept.graph.node if n.name == first)
    assert conv.input[1] not in producer  # a float initializer, no DequantizeLinear
    assert first in read_graph_metadata(out / "rpn.onnx").quantization.keep_float
    with pytest.raises(ConfigError, match="rpn/Conv_99999"):
        export_onnx(state_dict, cfg, tmp_path / "bad", int8=Int8Export(frames, QuantizeOptions(keep_float=("rpn/Conv_99999",))))


def test_float_first_block_and_float_head_leave_those_convolutions_float(int8_dir, demo, tmp_path, kitti_points):
    from pointpillars_trt.exporter.calibration import frame_feeds
    from pointpillars_trt.network.onnxruntime import INT8_DISABLED_OPTIMIZERS

    cfg, state_dict, ckpt = demo
    options = QuantizeOptions(activation_type="int8")  # the default structure (int8_dir's ranges are int8's)
    assert options.float_first_conv and options.float_head and options.float_first_block
    block = cfg.network.backbone.layer_nums[0] + 3  # the first block's convolutions and the two reading its output
    out = tmp_path / "structural"
    export_onnx(state_dict, cfg, out, checkpoint_path=ckpt, fused=True,
                int8=Int8Export(calibration_frames(CALIB), options, ranges=int8_dir / CALIBRATION_FILE))
    rpn = onnx.load(str(out / "rpn.onnx"))
    producer = {o: n for n in rpn.graph.node for o in n.output}
    convs = [n for n in rpn.graph.node if n.op_type == "Conv"]
    heads = [n for n in convs if set(n.output) & {o.name for o in rpn.graph.output}]
    assert len(heads) == 3  # class, box, direction
    for conv in [*convs[:block], *heads]:
        assert conv.input[1] not in producer, f"{conv.name}: its weights should stay a float initializer"
    assert all(producer[c.input[1]].op_type == "DequantizeLinear" for c in convs[block:-3])  # the others stay int8
    keep = read_graph_metadata(out / "rpn.onnx").quantization.keep_float
    assert {*(c.name for c in convs[:block]), *(h.name for h in heads)} <= set(keep)
    sess = ort.InferenceSession(str(out / "full.onnx"), disabled_optimizers=list(INT8_DISABLED_OPTIMIZERS))
    assert np.all(np.isfinite(sess.run(["cls"], frame_feeds(cfg, kitti_points))[0]))


def test_calibration_with_one_thread_gives_the_ranges_of_the_default_session(int8_dir, demo, tmp_path):
    cfg, state_dict, ckpt = demo
    out = tmp_path / "one_thread"
    int8 = Int8Export(calibration_frames(CALIB), QuantizeOptions(activation_type="int8"), threads=1)  # as int8_dir's
    export_onnx(state_dict, cfg, out, checkpoint_path=ckpt, int8=int8)
    import json

    ours, ref = (json.loads((d / CALIBRATION_FILE).read_text())["data"] for d in (out, int8_dir))
    assert ours.keys() == ref.keys()
    for name, r in ref.items():
        assert np.allclose([ours[name]["lowest"], ours[name]["highest"]], [r["lowest"], r["highest"]], rtol=1e-5), name


def _with_props(path, **changes):
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    for k, v in changes.items():
        key = "pointpillars_trt." + k
        props.pop(key) if v is None else props.__setitem__(key, v)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    return model


def test_the_int8_metadata_is_checked_at_load(int8_dir, tmp_path):
    rpn = int8_dir / "rpn.onnx"
    with pytest.raises(EngineError, match="lacks pointpillars_trt.quantization"):
        onnx_metadata(_with_props(rpn, quantization=None), rpn)
    with pytest.raises(EngineError, match="fp32 artifact with pointpillars_trt.quantization"):
        onnx_metadata(_with_props(rpn, precision="fp32"), rpn)
    with pytest.raises(EngineError, match="QuantizeLinear/DequantizeLinear nodes but its metadata says fp32"):
        onnx_metadata(_with_props(rpn, precision="fp32", quantization=None), rpn)
    with pytest.raises(EngineError, match="quantization in its metadata is invalid"):
        onnx_metadata(_with_props(rpn, quantization='{"method": "minmax"}'), rpn)


def test_int8_graphs_cannot_be_exported_on_the_fly(demo):
    from pointpillars_trt.network.onnxruntime import OnnxRuntimeBackend

    cfg, state_dict, _ = demo
    with pytest.raises(ConfigError, match="export_onnx.py --int8"):
        OnnxRuntimeBackend(cfg, state_dict=state_dict, precision="int8")


def test_calibration_frame_sources(tmp_path):
    assert spread(10, 3) == [0, 4, 9] and spread(2, 5) == [0, 1]
    with pytest.raises(ConfigError):
        spread(5, 0)
    with pytest.raises(DatasetError, match="no point files"):
        calibration_frames(tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        calibration_frames(tmp_path / "missing")
    syn = synthetic_frames(2, seed=3)
    assert syn.names == ("000000", "000001") and "seed 3" in syn.source
    points = syn.load(1)
    assert points.dtype == np.float32 and points.shape[1] == 4 and len(points) > 1000
    from pointpillars_trt.synthetic import GENERATOR_VERSION, generate_frame, generator_settings

    g = generator_settings(GENERATOR_VERSION)  # the frames are the latest generator's, as the source says
    want = generate_frame(3, 1, g.sensor, g.scene, g.returns).points
    np.testing.assert_array_equal(points, want)
    assert f"generator v{GENERATOR_VERSION}," in syn.source
    v1 = synthetic_frames(1, seed=3, version="1")
    assert "generator v1," in v1.source and not np.array_equal(v1.load(0), syn.load(0))


spec = importlib.util.spec_from_file_location("export_onnx_cli_int8", REPO / "export" / "export_onnx.py")
cli = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cli)


def test_cli_int8_needs_calibration_frames_and_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--out-dir", str(tmp_path), "--int8"])
    assert exc.value.code == 2 and "--calib" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["--out-dir", str(tmp_path), "--calib", str(tmp_path)])
    assert exc.value.code == 2
    assert cli.main(["--out-dir", str(tmp_path / "o"), "--int8", "--calib", str(tmp_path / "missing")]) == 2


def int8_kernels(path, tmp_path):
    """``(QLinearConv count, float Conv count, ops)`` of ``path`` as ONNX Runtime's CPU optimizes it (a real session)."""
    from pointpillars_trt.network.onnxruntime import INT8_DISABLED_OPTIMIZERS

    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"],
                         disabled_optimizers=list(INT8_DISABLED_OPTIMIZERS))
    ops = [n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node]
    return ops.count("QLinearConv"), ops.count("Conv"), set(ops)


def test_onnx_runtime_runs_every_int8_convolution_and_depth_to_space_in_int8(int8_dir, tmp_path):
    rpn = onnx.load(str(int8_dir / "rpn.onnx"))
    keep = set(read_graph_metadata(int8_dir / "rpn.onnx").quantization.keep_float)
    convs = [n.name for n in rpn.graph.node if n.op_type == "Conv"]
    assert int8_kernels(int8_dir / "rpn.onnx", tmp_path)[:2] == (len(set(convs) - keep), len(keep & set(convs)))
    producer = {o: n for n in rpn.graph.node for o in n.output}
    d2s = [n for n in rpn.graph.node if n.op_type == "DepthToSpace"]
    assert d2s and all(producer[n.input[0]].op_type == "QuantizeLinear" for n in d2s)  # moved as int8
    heads = [n for n in rpn.graph.node if set(n.output) & {o.name for o in rpn.graph.output}]
    assert {producer[h.input[0]].op_type for h in heads} == {"Concat"}  # the float heads read the float Concat


@pytest.mark.parametrize("config_fixture", ["kitti_config", "example_config"])
def test_first_block_nodes_are_the_first_block_and_its_upsampling(request, config_fixture):
    # whatever the layer counts (3 in KITTI's first block, 2 in the 360-degree example): the last two nodes returned
    # are the first block's upsampling convolution and the second block's first, both reading the block's output
    from pointpillars_trt.exporter import as_model, build_graphs
    from pointpillars_trt.exporter.quantize import first_block_nodes
    from tests.helpers import lively_state_dict

    cfg = request.getfixturevalue(config_fixture)
    rpn = build_graphs(as_model(lively_state_dict(cfg), cfg), cfg, "fp32", deconv_as_conv=True)["rpn"]
    weighted = [n for n in rpn.graph.node if n.op_type in ("Conv", "ConvTranspose", "MatMul")]
    names = first_block_nodes(rpn, cfg)
    k = cfg.network.backbone.layer_nums[0] + 2
    assert names == [n.name for n in weighted[: k + 1]]  # the block, its upsampling, the second block's first
    producer = {o: n for n in rpn.graph.node for o in n.output}

    def source_conv(tensor):  # the weighted node a tensor comes from, through ReLU / BN-free activations
        n = producer[tensor]
        while n.op_type not in ("Conv", "ConvTranspose"):
            n = producer[n.input[0]]
        return n.name

    upsampling, second_block = weighted[k - 1], weighted[k]
    assert source_conv(upsampling.input[0]) == source_conv(second_block.input[0]) == weighted[k - 2].name
    assert [a.ints for a in second_block.attribute if a.name == "strides"][0] != [1, 1]  # the next block starts strided
