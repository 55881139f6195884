"""The CPU side of the engine build: profiles, graph discovery and metadata, and the tool's
behaviour without TensorRT (exit code 2 and what to install)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pointpillars_trt.artifacts import graph_sha256
from pointpillars_trt.errors import BackendUnavailableError, ConfigError, EngineError
from pointpillars_trt.tensorrt.api import TensorSpec
from pointpillars_trt.tensorrt.build import (
    BuildOptions, PillarProfile, TimingCacheWarning, attach_timing_cache, build_engines, check_graphs_consistent,
    engine_header, onnx_file_for, parts_to_build, pillar_profile, profile_shapes,
)
from pointpillars_trt.tensorrt.contract import PART_INPUTS, PART_OUTPUTS, check_io_names, read_onnx_info
from pointpillars_trt.tensorrt.engine_file import EngineHeader, write_plan
from tests.tensorrt.test_engine_file import make_artifact

REPO = Path(__file__).resolve().parents[2]
onnx = pytest.importorskip("onnx")



def _have_tensorrt() -> bool:
    # not a bare `import tensorrt`: this test folder itself is importable as a namespace package of that name
    from pointpillars_trt.tensorrt.api import load_tensorrt

    try:
        load_tensorrt()
    except BackendUnavailableError:
        return False
    return True


HAVE_TRT = _have_tensorrt()


def tiny_graph(path: Path, cfg, part: str, precision: str = "fp32", checkpoint: str = "c" * 64, io_names=None) -> Path:
    """A graph with the contract's I/O names (Identity/Cast nodes only) and our metadata."""
    from onnx import TensorProto, helper

    ins, outs = io_names or (PART_INPUTS[part], PART_OUTPUTS[part])
    ft = TensorProto.FLOAT16 if precision == "fp16" else TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT32 if n in ("num_points", "coords") else ft, ["num_pillars", 4]) for n in ins]
    outputs = [helper.make_tensor_value_info(n, ft, ["num_pillars", 4]) for n in outs]
    nodes = [helper.make_node("Cast", [ins[0]], [o], to=ft) for o in outs]
    model = helper.make_model(helper.make_graph(nodes, part, inputs, outputs), opset_imports=[helper.make_opsetid("", 17)])
    meta = make_artifact(cfg, part, precision, checkpoint_sha256=checkpoint, graph_sha256=graph_sha256(model))
    helper.set_model_props(model, meta.to_props())
    onnx.save(model, str(path))
    return path


def test_profile_defaults_come_from_the_config(kitti_config, example_config):
    p = pillar_profile(kitti_config)
    hi = kitti_config.voxel.max_pillars
    assert p == PillarProfile(1, hi, hi)  # opt = max: what the GPU pipeline feeds the PFN every frame
    small = kitti_config.replace(voxel={"max_pillars": 5000})
    assert pillar_profile(small) == PillarProfile(1, 5000, 5000)
    assert pillar_profile(example_config).max == example_config.voxel.max_pillars
    assert pillar_profile(kitti_config, 16, 100, 200) == PillarProfile(16, 100, 200)
    assert pillar_profile(kitti_config, min_pillars=20000, max_pillars=30000).opt == 30000


@pytest.mark.parametrize("args", [(0, None, None), (10, 5, 100), (1, 200, 100), (None, None, 0)])
def test_bad_profiles(kitti_config, args):
    with pytest.raises(ConfigError, match="1 <= min <= opt <= max"):
        pillar_profile(kitti_config, *args)


def test_profile_shapes():
    prof = PillarProfile(1, 12000, 40000)
    assert profile_shapes((-1, 32, 10), prof) == ((1, 32, 10), (12000, 32, 10), (40000, 32, 10))
    assert profile_shapes((-1,), prof) == ((1,), (12000,), (40000,))


def test_parts_to_build():
    assert parts_to_build(False) == ("pfn", "rpn")
    assert parts_to_build(True) == ("pfn", "mfn", "rpn")


def test_read_onnx_info(tmp_path, kitti_config):
    path = tiny_graph(tmp_path / "pfn.onnx", kitti_config, "pfn", "fp16")
    info = read_onnx_info(path, "pfn")
    assert info.meta.part == "pfn" and info.meta.precision == "fp16" and info.meta.config == kitti_config
    assert set(info.inputs) == {"features", "num_points"} and info.inputs["features"] == (None, 4)
    assert len(info.sha256) == 64
    with pytest.raises(EngineError, match="holds the pfn part, expected rpn"):
        read_onnx_info(path, "rpn")


def test_foreign_graphs_are_refused(tmp_path, kitti_config):
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(g), str(tmp_path / "pfn.onnx"))
    with pytest.raises(EngineError, match="lacks the pointpillars_trt metadata"):
        read_onnx_info(tmp_path / "pfn.onnx")
    (tmp_path / "rpn.onnx").write_bytes(b"garbage")
    with pytest.raises(EngineError, match="not a readable ONNX model"):
        read_onnx_info(tmp_path / "rpn.onnx")
    wrong = tiny_graph(tmp_path / "mfn.onnx", kitti_config, "mfn", io_names=(("pillar_features", "xy"), ("canvas",)))
    with pytest.raises(EngineError, match=r"inputs \['pillar_features', 'xy'\] \(expected \['coords', 'pillar_features'\]\)"):
        read_onnx_info(wrong)


def test_check_io_names_ignores_order():
    check_io_names("rpn", ["canvas"], ["dir", "cls", "box"], "x")
    with pytest.raises(EngineError, match="outputs"):
        check_io_names("rpn", ["canvas"], ["cls", "box"], "x")


def test_graph_discovery_and_consistency(tmp_path, kitti_config, example_config):
    for part in ("pfn", "rpn"):
        tiny_graph(tmp_path / f"{part}.onnx", kitti_config, part)
    assert onnx_file_for(tmp_path, "pfn", None) == tmp_path / "pfn.onnx"
    with pytest.raises(EngineError, match="no ONNX graph for the mfn part"):
        onnx_file_for(tmp_path, "mfn", None)
    infos = [read_onnx_info(tmp_path / f"{p}.onnx") for p in ("pfn", "rpn")]
    check_graphs_consistent(infos, None)
    check_graphs_consistent(infos, "fp32")
    with pytest.raises(EngineError, match="fp32 graph but --precision fp16"):
        check_graphs_consistent(infos, "fp16")
    other = read_onnx_info(tiny_graph(tmp_path / "other.onnx", example_config, "rpn"))
    with pytest.raises(EngineError, match="not exported together: config_hash differs"):
        check_graphs_consistent([infos[0], other], None)
    ckpt = read_onnx_info(tiny_graph(tmp_path / "ckpt.onnx", kitti_config, "rpn", checkpoint="d" * 64))
    with pytest.raises(EngineError, match="checkpoint_sha256 differs"):
        check_graphs_consistent([infos[0], ckpt], None)
    fp16 = read_onnx_info(tiny_graph(tmp_path / "h.onnx", kitti_config, "rpn", "fp16"))
    with pytest.raises(EngineError, match="precision differs"):
        check_graphs_consistent([infos[0], fp16], None)


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed")
def test_build_without_tensorrt_raises(tmp_path):
    with pytest.raises(BackendUnavailableError, match="TensorRT is not installed.*pip install tensorrt"):
        build_engines(tmp_path, tmp_path, BuildOptions())


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed")
def test_tool_exits_2_without_tensorrt(tmp_path, kitti_config):
    for part in ("pfn", "rpn"):
        tiny_graph(tmp_path / f"{part}.onnx", kitti_config, part)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, str(REPO / "export" / "build_engines.py"), "--onnx-dir", str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "TensorRT is not installed" in r.stderr and "pip install tensorrt" in r.stderr
    assert not list(tmp_path.glob("*.plan"))


def test_tool_help():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, str(REPO / "export" / "build_engines.py"), "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0
    for flag in ("--onnx-dir", "--precision", "--min-pillars", "--opt-pillars", "--max-pillars", "--workspace", "--timing-cache", "--native-scatter", "--out-dir",
                 "--hardware-compat", "--version-compatible"):
        assert flag in r.stdout


def test_timing_cache_refused_warns_and_starts_empty(tmp_path):
    """TensorRT refuses a cache of another GPU or version: warn, then build with an empty one."""
    cache_file = tmp_path / "trt.cache"
    cache_file.write_bytes(b"a cache from another GPU")
    calls = []

    def attach(config, data):  # stands for api.attach_timing_cache: None = refused
        calls.append(data)
        return None if data else "empty cache"

    with pytest.warns(TimingCacheWarning, match="refused this timing cache"):
        assert attach_timing_cache("config", BuildOptions(timing_cache=cache_file), attach) == "empty cache"
    assert calls == [b"a cache from another GPU", b""]
    assert attach_timing_cache("config", BuildOptions(timing_cache=tmp_path / "none.cache"), attach) == "empty cache"
    with pytest.raises(EngineError, match="refused an empty timing cache"):
        attach_timing_cache("config", BuildOptions(), lambda config, data: None)


def test_sidecar_from_a_build(tmp_path, kitti_config):
    """What build_engine writes after TensorRT's build: the plan as is, and its sidecar."""
    info = read_onnx_info(tiny_graph(tmp_path / "pfn.onnx", kitti_config, "pfn", "fp16"))
    specs = [TensorSpec("features", (-1, 32, 10), "float16", True), TensorSpec("num_points", (-1,), "int32", True),
             TensorSpec("pillar_features", (-1, 64), "float16", False)]
    options = BuildOptions(hardware_compat=True, version_compatible=True, tf32=False)
    header = engine_header(info, options, specs, pillar_profile(kitti_config).as_dict(), "10.3.0", "NVIDIA H100", (9, 0))
    written = write_plan(tmp_path / "pfn.plan", header, b"plan bytes")
    assert (tmp_path / "pfn.plan").read_bytes() == b"plan bytes"
    back = EngineHeader.from_json((tmp_path / "pfn.plan.json").read_text(), "x")
    assert back == written and back.artifact == info.meta and back.onnx_sha256 == info.sha256
    assert back.hardware_compat and back.version_compatible and not back.tf32
    assert back.io["features"] == {"mode": "input", "dtype": "float16", "shape": [-1, 32, 10]}
