"""Our engine container and the checks made before TensorRT sees an engine (all CPU)."""

from __future__ import annotations

import json

import pytest

from pointpillars_trt.errors import ConfigError, EngineError
from pointpillars_trt.tensorrt.engine_file import (
    MAGIC, EngineHeader, check_engine_header, decode_engine_file, encode_engine_file, read_engine_file,
    read_engine_header, same_tensorrt_version, write_engine_file,
)

PLAN = b"\x00fake TensorRT plan bytes\xff" * 10


def make_header(cfg, **kw) -> EngineHeader:
    base = dict(
        part="pfn", precision="fp16", config=cfg.to_json(), config_hash=cfg.hash(), onnx_sha256="ab" * 32,
        tensorrt_version="10.3.0", gpu_name="NVIDIA H100 80GB HBM3", compute_capability=(9, 0),
        profile={"min": 1, "opt": 12000, "max": cfg.voxel.max_pillars},
        io={"features": {"mode": "input", "dtype": "float16", "shape": [-1, 32, 10]}}, created="2026-01-01T00:00:00+00:00",
    )
    base.update(kw)
    return EngineHeader(**base)


def test_round_trip(tmp_path, kitti_config):
    h = make_header(kitti_config)
    path = write_engine_file(tmp_path / "pfn.engine", h, PLAN)
    raw = path.read_bytes()
    assert raw[:8] == MAGIC and int.from_bytes(raw[8:12], "little") == len(h.to_json().encode())
    header, plan = read_engine_file(path)
    assert header == h and plan == PLAN
    assert read_engine_header(path) == h
    assert header.max_pillars == kitti_config.voxel.max_pillars
    assert not list(tmp_path.glob("*.tmp"))


def test_matching_header_passes(kitti_config):
    h = make_header(kitti_config)
    assert check_engine_header(h, kitti_config, "10.3.0", h.gpu_name, (9, 0), part="pfn") == []


def test_raw_plan_is_refused(tmp_path):
    p = tmp_path / "raw.engine"
    p.write_bytes(b"ftrt" + PLAN)
    with pytest.raises(EngineError, match="not a pointpillars_trt engine file"):
        read_engine_file(p)
    with pytest.raises(EngineError, match="bad magic"):
        read_engine_header(p)


def test_missing_file(tmp_path):
    with pytest.raises(EngineError, match="not found.*build_engines"):
        read_engine_file(tmp_path / "nope.engine")


@pytest.mark.parametrize("cut", [4, 10, 30])
def test_truncated_files(kitti_config, cut):
    data = encode_engine_file(make_header(kitti_config), PLAN)
    with pytest.raises(EngineError, match="truncated|magic"):
        decode_engine_file(data[:cut])


def test_header_without_engine(kitti_config):
    h = make_header(kitti_config)
    with pytest.raises(EngineError, match="no engine"):
        decode_engine_file(encode_engine_file(h, b""))


def test_bad_json_and_format(kitti_config):
    raw = b"{not json"
    with pytest.raises(EngineError, match="not valid JSON"):
        decode_engine_file(MAGIC + len(raw).to_bytes(4, "little") + raw + PLAN)
    d = json.loads(make_header(kitti_config).to_json())
    d["format_version"] = 99
    raw = json.dumps(d).encode()
    with pytest.raises(EngineError, match="format 99"):
        decode_engine_file(MAGIC + len(raw).to_bytes(4, "little") + raw + PLAN)
    del d["tensorrt_version"]
    d["format_version"] = 1
    raw = json.dumps(d).encode()
    with pytest.raises(EngineError, match="lacks.*tensorrt_version"):
        decode_engine_file(MAGIC + len(raw).to_bytes(4, "little") + raw + PLAN)


def test_other_config_names_the_fields(kitti_config, example_config):
    h = make_header(kitti_config)
    with pytest.raises(EngineError, match="another config; differing fields: anchors, classes") as exc:
        check_engine_header(h, example_config, "10.3.0", h.gpu_name, (9, 0))
    assert "build_engines.py" in str(exc.value)
    other = kitti_config.replace(postprocess={"score_threshold": 0.3})
    with pytest.raises(EngineError, match="postprocess.score_threshold"):
        check_engine_header(h, other, "10.3.0", h.gpu_name, (9, 0))


def test_other_tensorrt_version(kitti_config):
    h = make_header(kitti_config)
    with pytest.raises(EngineError, match=r"built with TensorRT 10\.3\.0, this is 11\.4\.0: rebuild with export/build_engines\.py"):
        check_engine_header(h, kitti_config, "11.4.0", h.gpu_name, (9, 0))


def test_other_gpu(kitti_config):
    h = make_header(kitti_config)
    with pytest.raises(EngineError, match=r"compute capability 9\.0 .*this GPU is 8\.9 \(NVIDIA L4\)"):
        check_engine_header(h, kitti_config, "10.3.0", "NVIDIA L4", (8, 9))
    with pytest.raises(EngineError, match="built on NVIDIA H100 80GB HBM3, this GPU is NVIDIA H100 PCIe"):
        check_engine_header(h, kitti_config, "10.3.0", "NVIDIA H100 PCIe", (9, 0))


def test_warn_policy_returns_messages(kitti_config):
    h = make_header(kitti_config)
    msgs = check_engine_header(h, kitti_config, "11.4.0", "NVIDIA L4", (8, 9), on_mismatch="warn", where="x.engine")
    assert len(msgs) == 2 and all(m.startswith("x.engine (pfn engine)") for m in msgs)
    with pytest.raises(EngineError, match="another config"):  # a config mismatch is never only a warning
        check_engine_header(h, kitti_config.replace(postprocess={"nms_post_max": 7}), "10.3.0", h.gpu_name, (9, 0), on_mismatch="warn")
    with pytest.raises(ConfigError):
        check_engine_header(h, kitti_config, "10.3.0", h.gpu_name, (9, 0), on_mismatch="ignore")


def test_wrong_part(kitti_config):
    with pytest.raises(EngineError, match="holds the pfn engine, expected rpn"):
        check_engine_header(make_header(kitti_config), kitti_config, "10.3.0", "x", (9, 0), part="rpn")


def test_same_tensorrt_version():
    assert same_tensorrt_version("10.16.1.11", "10.16.1")
    assert same_tensorrt_version("10.3.0", "10.3.0")
    assert not same_tensorrt_version("10.3.0", "10.3.1")
    assert not same_tensorrt_version("10.16.1.11", "10.16.1.9")
    assert not same_tensorrt_version("10.3.0", "11.4.0.106")
