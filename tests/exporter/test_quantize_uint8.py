"""INT8 export with uint8 activations (``ActivationType.UINT8``, ONNX Runtime's CPU graphs): the demo
model calibrated on two real KITTI frames, asymmetric [0, max] activations after the ReLUs, run by a
real ONNX Runtime session; TensorRT's build refuses them; the histogram options checked; graphs
written before these fields existed still read as int8."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import KITTI

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from pointpillars_trt.artifacts import Quantization  # noqa: E402
from pointpillars_trt.errors import ConfigError, EngineError  # noqa: E402
from pointpillars_trt.exporter import ActivationType, Int8Export, QuantizeOptions, calibration_frames, export_onnx, read_graph_metadata  # noqa: E402
from pointpillars_trt.exporter.quantize import one_sided  # noqa: E402

CALIB = KITTI / "zhulf0804" / "velodyne_reduced"  # two real KITTI frames


@pytest.fixture(scope="module")
def uint8_dir(tmp_path_factory):
    from pointpillars_trt.detector import resolve_weights

    if not CALIB.is_dir():
        pytest.skip(f"real KITTI frames not found under {CALIB}")
    cfg, state_dict, source = resolve_weights(None, None, None)
    out = tmp_path_factory.mktemp("uint8")
    options = QuantizeOptions()  # the default: uint8
    export_onnx(state_dict, cfg, out, checkpoint_path=None if source.is_random else source.path, fused=True,
                int8=Int8Export(calibration_frames(CALIB), options, threads=1))
    return out, cfg, state_dict


def test_activations_are_uint8_from_zero_weights_int8_symmetric(uint8_dir):
    out, _, _ = uint8_dir
    q = read_graph_metadata(out / "rpn.onnx").quantization
    assert (q.activation_type, q.histogram_bins, q.method) == ("uint8", QuantizeOptions.histogram_bins, "entropy")
    rpn = onnx.load(str(out / "rpn.onnx"))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in rpn.graph.initializer}
    producer = {o: n for n in rpn.graph.node for o in n.output}
    weights = {producer[n.input[1]].input[0] for n in rpn.graph.node if n.op_type == "Conv" and n.input[1] in producer}
    assert weights and all(inits[w].dtype == np.int8 for w in weights)
    activations = [n for n in rpn.graph.node if n.op_type == "QuantizeLinear"]
    assert activations and all(inits[n.input[2]].dtype == np.uint8 for n in activations)
    # after the ReLUs (folded into the Q: its zero point 0 clamps) every quantized activation starts at 0
    assert all(int(inits[n.input[2]]) == 0 for n in activations)


def test_a_real_session_runs_the_uint8_graph_close_to_float(uint8_dir, kitti_points):
    from pointpillars_trt.exporter import as_model, build_graphs
    from pointpillars_trt.exporter.calibration import frame_feeds
    from pointpillars_trt.network.onnxruntime import INT8_DISABLED_OPTIMIZERS

    out, cfg, state_dict = uint8_dir
    x = frame_feeds(cfg, kitti_points)
    ref = ort.InferenceSession(build_graphs(as_model(state_dict, cfg), cfg, "fp32", fused=True)["full"].SerializeToString()).run(["cls"], x)[0]
    got = ort.InferenceSession(str(out / "full.onnx"), disabled_optimizers=list(INT8_DISABLED_OPTIMIZERS)).run(["cls"], x)[0]
    assert np.all(np.isfinite(got)) and np.corrcoef(ref.ravel(), got.ravel())[0, 1] > 0.85


def test_tensorrt_build_refuses_uint8_graphs_naming_the_reason(uint8_dir):
    from pointpillars_trt.tensorrt.build import check_graphs_consistent
    from pointpillars_trt.tensorrt.contract import read_onnx_info

    out, _, _ = uint8_dir
    infos = [read_onnx_info(out / f"{part}.onnx", part) for part in ("pfn", "rpn")]
    with pytest.raises(EngineError, match=r"(pfn|rpn).onnx: its activations are uint8.*only symmetric int8"):
        check_graphs_consistent(infos, "int8")


def test_one_sided_ranges_only_for_tensors_never_negative():
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData

    edges = np.linspace(-4, 4, 9, dtype=np.float32)
    hist = np.array([0, 0, 0, 0, 5, 2, 1, 0])
    relu = TensorData(lowest=np.float32(-3), highest=np.float32(3), hist=hist, bins=edges)
    signed = TensorData(lowest=np.float32(-3), highest=np.float32(3), hist=hist, bins=edges)
    seen = {"relu": (hist, edges, np.float32(0), np.float32(3), np.float32(3)),
            "signed": (hist, edges, np.float32(-0.1), np.float32(3), np.float32(3))}
    ranges = one_sided(TensorsData(CalibrationMethod.Entropy, {"relu": relu, "signed": signed}), seen)
    assert float(ranges["relu"].lowest) == 0.0 and float(ranges["relu"].highest) == 3.0
    assert float(ranges["signed"].lowest) == -3.0


def test_one_sided_takes_degenerate_histograms():
    """ONNX Runtime's percentile calibrator stores two counts as a range's hist/bins (0-d arrays), and an
    all-zero tensor's histogram has one value: neither may crash the uint8 calibration (int8_sweep.py did)."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData

    zeros = np.histogram(np.zeros(10, np.float32), 8, range=(0.0, 0.0))
    scalar = TensorData(lowest=np.float32(-2), highest=np.float32(2), hist=np.array(7), bins=np.array(0))
    const = TensorData(lowest=np.float32(0), highest=np.float32(0), hist=zeros[0], bins=zeros[1])
    seen = {"scalar": (np.array([1, 2]), np.array([-2.0, 0.0, 2.0]), np.float32(0.5), np.float32(2), np.float32(2)),
            "const": (*zeros, np.float32(0), np.float32(0), np.float32(0))}
    ranges = one_sided(TensorsData(CalibrationMethod.Percentile, {"scalar": scalar, "const": const, "unseen": scalar}), seen)
    assert (float(ranges["scalar"].lowest), float(ranges["scalar"].highest)) == (0.0, 2.0)
    assert (float(ranges["const"].lowest), float(ranges["const"].highest)) == (0.0, 0.0)
    assert float(ranges["unseen"].lowest) == -2.0


def test_options_refuse_bad_activation_types_and_too_few_bins():
    assert QuantizeOptions(activation_type="uint8").activation_type == ActivationType.UINT8
    assert QuantizeOptions().activation_type == ActivationType.UINT8  # the default: ONNX Runtime's CPU form
    assert (QuantizeOptions(activation_type="int8", histogram_bins=2048).quantized_bins, QuantizeOptions(histogram_bins=2048).quantized_bins) == (256, 512)
    with pytest.raises(ConfigError, match="activation type"):
        QuantizeOptions(activation_type="int4")
    assert QuantizeOptions(histogram_bins=128).quantized_bins == 128  # ONNX Runtime's defaults: the earlier recipe
    with pytest.raises(ConfigError, match="histogram_bins must be at least 128"):
        QuantizeOptions(activation_type="uint8", histogram_bins=64)


def test_older_quantization_records_read_as_int8():
    old = {"method": "entropy", "percentile": None, "calibration": "x", "frames": ["a"], "keep_float": [], "tool": "t"}
    q = Quantization.from_value(json.dumps(old), "old.onnx")
    assert (q.activation_type, q.histogram_bins) == ("int8", None)
    assert Quantization.from_value(q.to_json(), "new.onnx") == q
    with pytest.raises(EngineError, match="activation_type must be int8 or uint8"):
        Quantization.from_value({**old, "activation_type": "fp8"}, "bad.onnx")


def test_sqnr_per_node_against_float(uint8_dir, kitti_points):
    from pointpillars_trt.exporter import as_model, build_graphs
    from pointpillars_trt.exporter.calibration import frame_feeds
    from pointpillars_trt.exporter.sqnr import Sqnr, activation_sqnr

    out, cfg, state_dict = uint8_dir
    float_full = build_graphs(as_model(state_dict, cfg), cfg, "fp32", fused=True, deconv_as_conv=True)["full"]
    result = activation_sqnr(float_full, onnx.load(str(out / "full.onnx")), [frame_feeds(cfg, kitti_points)])
    keep = set(read_graph_metadata(out / "full.onnx").quantization.keep_float)
    first = next(n for n in result["nodes"] if n.startswith("rpn/"))
    assert first in keep and result["nodes"][first]["input_db"] > 100  # float PFN and scatter: the canvas is float's
    quantized = [r for n, r in result["nodes"].items() if n not in keep]
    assert quantized and all(np.isfinite(r["output_db"]) and r["output_db"] < 100 for r in quantized)  # -2 to 10 dB: ranges clipped
    assert set(result["outputs"]) == {"cls", "box", "dir"} and all(np.isfinite(v) for v in result["outputs"].values())
    acc = Sqnr()
    acc.add("x", np.array([3.0, 4.0]), np.array([3.0, 4.5]))  # |x| = 5, |noise| = 0.5: 20 dB
    assert acc.db("x") == 20.0


class _Frames:
    """A CalibrationReader stand-in over fixed feeds (the calibrator's interface: len, set_range, get_next)."""

    def __init__(self, feeds):
        self.feeds, self._next, self._end = feeds, 0, len(feeds)

    def __len__(self):
        return len(self.feeds)

    def set_range(self, start, end):
        self._next, self._end = start, min(end, len(self.feeds))

    def get_next(self):
        if self._next >= self._end:
            return None
        self._next += 1
        return self.feeds[self._next - 1]


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy"])
def test_uint8_calibration_of_a_real_graph_with_an_all_zero_tensor(tmp_path, method):
    """ONNX Runtime's calibrator on a Conv -> Relu graph whose second Conv reads a tensor that is 0 in every
    frame: every method's uint8 ranges are computed (percentile crashed in one_sided), the ReLU's from 0."""
    from onnx import TensorProto, helper, numpy_helper

    from pointpillars_trt.exporter.quantize import calibrate
    from onnxruntime.quantization.calibrate import load_tensors_data

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(4, 2, 1, 1)).astype(np.float32), "w")
    w2 = numpy_helper.from_array(rng.normal(size=(4, 4, 1, 1)).astype(np.float32), "w2")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Mul", ["r", "zero"], ["z"], name="mul"), helper.make_node("Conv", ["z", "w2"], ["y"], name="conv2")]
    zero = numpy_helper.from_array(np.zeros((1,), np.float32), "zero")
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [w, w2, zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feeds = [{"x": rng.normal(size=(1, 2, 8, 8)).astype(np.float32)} for _ in range(3)]
    cache = tmp_path / "calibration.json"
    calibrate(model, QuantizeOptions(method=method, activation_type="uint8", histogram_bins=512), _Frames(feeds), cache, threads=1)
    ranges = load_tensors_data(cache)
    assert float(np.min(ranges["r"].lowest)) == 0.0 and float(np.max(ranges["r"].highest)) > 0.0
    assert float(np.max(ranges["z"].highest)) == 0.0


def test_onnx_runtime_runs_every_int8_convolution_of_the_uint8_graph(uint8_dir, tmp_path):
    """A Conv whose output feeds two readers had two Qs (the ReLU folded into them) and stayed a float Conv."""
    from tests.exporter.test_quantize import int8_kernels

    out, _, _ = uint8_dir
    keep = set(read_graph_metadata(out / "rpn.onnx").quantization.keep_float)
    convs = {n.name for n in onnx.load(str(out / "rpn.onnx")).graph.node if n.op_type == "Conv"}
    int8, float_convs, ops = int8_kernels(out / "rpn.onnx", tmp_path)
    assert (int8, float_convs) == (len(convs - keep), len(convs & keep)) and "Relu" not in ops


def test_ranges_of_another_activation_type_are_refused_naming_both(uint8_dir, tmp_path):
    # uint8_dir's calibration.json beside its uint8 graphs, reused for int8 graphs: refused before anything is written
    from pointpillars_trt.errors import ExportError
    from pointpillars_trt.exporter.quantize import CALIBRATION_FILE

    out, cfg, state_dict = uint8_dir
    int8 = Int8Export(calibration_frames(CALIB), QuantizeOptions(activation_type="int8"), ranges=out / CALIBRATION_FILE)
    with pytest.raises(ExportError, match=r"calibration.json: the ranges of .*rpn.onnx's export are uint8, but the export asks for int8"):
        export_onnx(state_dict, cfg, tmp_path / "int8", int8=int8)
    assert not (tmp_path / "int8").exists()
    # a foreign rpn.onnx beside the ranges says nothing about them: the export goes on (and calibrates from those ranges)
    import shutil

    import onnx

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    shutil.copyfile(out / CALIBRATION_FILE, foreign / CALIBRATION_FILE)
    onnx.save(onnx.helper.make_model(onnx.helper.make_graph([], "g", [], [])), str(foreign / "rpn.onnx"))
    from pointpillars_trt.exporter.export import check_ranges_activation_type

    check_ranges_activation_type(Int8Export(calibration_frames(CALIB), QuantizeOptions(activation_type="int8"),
                                            ranges=foreign / CALIBRATION_FILE), None)
