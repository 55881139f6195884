"""Raw plan files, their sidecars, and the checks made before TensorRT sees a plan (all CPU)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from pointpillars_trt.artifacts import ArtifactMetadata
from pointpillars_trt.errors import ConfigError, EngineError, OutputError
from pointpillars_trt.tensorrt.engine_file import (
    LEGACY_MAGIC, SIDECAR_FORMAT, EngineHeader, check_engine_header, plan_config_json, plan_path, read_plan,
    read_sidecar, same_tensorrt_version, sidecar_path, write_plan,
)

PLAN = b"ftrt\x00fake TensorRT plan bytes\xff" * 10


def make_artifact(cfg, part="pfn", precision="fp16", **kw) -> ArtifactMetadata:
    base = dict(part=part, precision=precision, config_json=cfg.to_json(), config_hash=cfg.hash(), checkpoint_sha256="c" * 64,
                checkpoint_sha256_of="file", weights_sha256="w" * 64, graph_sha256="g" * 64, version="0.0.test")
    return ArtifactMetadata(**{**base, **kw})


def make_header(cfg, part="pfn", precision="fp16", artifact=None, **kw) -> EngineHeader:
    base = dict(
        artifact=artifact or make_artifact(cfg, part, precision), onnx_sha256="ab" * 32, plan_sha256="",
        tensorrt_version="10.3.0", gpu_name="NVIDIA H100 80GB HBM3", compute_capability=(9, 0),
        profile={"min": 1, "opt": cfg.voxel.max_pillars, "max": cfg.voxel.max_pillars},
        io={"features": {"mode": "input", "dtype": "float16", "shape": [-1, 32, 10]}}, created="2026-01-01T00:00:00+00:00",
    )
    return EngineHeader(**{**base, **kw})


def written(tmp_path, cfg, part="pfn", **kw):
    path = tmp_path / f"{part}.plan"
    return path, write_plan(path, make_header(cfg, part, **kw), PLAN)


def test_plan_holds_exactly_the_serialized_bytes_and_the_sidecar_round_trips(tmp_path, kitti_config):
    path, header = written(tmp_path, kitti_config)
    assert path.read_bytes() == PLAN  # byte 0 is TensorRT's: trtexec --loadEngine, Polygraphy, Triton read it as is
    assert header.plan_sha256 == hashlib.sha256(PLAN).hexdigest()
    side = sidecar_path(path)
    assert side.name == "pfn.plan.json"
    d = json.loads(side.read_text())
    assert d["format"] == SIDECAR_FORMAT and d["config"] == json.loads(kitti_config.to_json()) and d["plan_sha256"] == header.plan_sha256
    for key in ("tensorrt_version", "gpu_name", "compute_capability", "checkpoint_sha256", "onnx_sha256", "precision", "profile"):
        assert key in d
    back = read_sidecar(path)
    assert back == header and back.config == kitti_config.to_json() and back.max_pillars == kitti_config.voxel.max_pillars
    assert read_plan(path, back) == PLAN
    assert plan_config_json(tmp_path) == kitti_config.to_json()
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_a_sidecar_that_cannot_be_written_is_an_output_error_naming_it(tmp_path, kitti_config):
    sidecar_path(tmp_path / "pfn.plan").mkdir()  # a directory where the sidecar goes
    with pytest.raises(OutputError, match=r"pfn\.plan\.json: cannot write"):
        written(tmp_path, kitti_config)
    assert not list(tmp_path.glob(".*.tmp"))


def test_matching_header_passes(kitti_config):
    h = make_header(kitti_config)
    assert check_engine_header(h, kitti_config, "10.3.0", h.gpu_name, (9, 0), part="pfn") == []


def test_replaced_plan_is_refused(tmp_path, kitti_config):
    path, header = written(tmp_path, kitti_config)
    path.write_bytes(PLAN + b"x")
    with pytest.raises(EngineError, match="is not the plan_sha256 .* of its sidecar pfn.plan.json"):
        read_plan(path, header)


def test_plan_without_sidecar(tmp_path, kitti_config):
    (tmp_path / "pfn.plan").write_bytes(PLAN)
    assert read_sidecar(tmp_path / "pfn.plan") is None
    with pytest.raises(EngineError, match="has no sidecar pfn.plan.json.*pass the config"):
        plan_config_json(tmp_path)


def test_old_container_gives_the_rebuild_command(tmp_path, kitti_config):
    (tmp_path / "pfn.engine").write_bytes(LEGACY_MAGIC + b"\x10\x00\x00\x00{}" + PLAN)
    for call in (lambda: plan_path(tmp_path, "pfn"), lambda: read_sidecar(tmp_path / "pfn.engine"), lambda: plan_config_json(tmp_path)):
        with pytest.raises(EngineError, match=r"pfn\.engine: an engine container of an earlier .*python export/build_engines.py --onnx-dir"):
            call()
    (tmp_path / "rpn.plan").write_bytes(LEGACY_MAGIC + PLAN)  # renamed, still a container
    with pytest.raises(EngineError, match="earlier pointpillars_trt version"):
        read_sidecar(tmp_path / "rpn.plan")


def test_missing_plan(tmp_path):
    with pytest.raises(EngineError, match="not found.*build_engines"):
        plan_path(tmp_path, "pfn")
    with pytest.raises(EngineError, match="not found.*build_engines"):
        read_sidecar(tmp_path / "pfn.plan")


def _sidecar_with(tmp_path, cfg, **changes):
    path, header = written(tmp_path, cfg)
    d = json.loads(header.to_json())
    d.update(changes)
    sidecar_path(path).write_text(json.dumps(d))
    return path


@pytest.mark.parametrize("changes,message", [
    ({"config": 5}, r"pfn\.plan\.json: config is 5, expected the config as a JSON object"),
    ({"config_hash": 5}, r"pfn\.plan\.json: config_hash is 5, expected a string"),
    ({"compute_capability": [9]}, r"compute_capability is \[9\]"),
    ({"tf32": "yes"}, r"tf32 is 'yes', expected a bool"),
    ({"profile": {"min": 1}}, r"profile is"),
    ({"format": 99}, r"engine sidecar format 99, this package reads format 2"),
    ({"format": "1"}, r"engine sidecar format '1', this package reads format 2"),
    ({"part": "head"}, r"unknown part 'head'"),
])
def test_malformed_sidecars_name_the_file_and_field(tmp_path, kitti_config, changes, message):
    with pytest.raises(EngineError, match=message):
        read_sidecar(_sidecar_with(tmp_path, kitti_config, **changes))


def test_format_as_a_string_of_the_same_number_is_the_same_format(tmp_path, kitti_config):
    assert read_sidecar(_sidecar_with(tmp_path, kitti_config, format=str(SIDECAR_FORMAT))) is not None


def test_sidecar_not_json(tmp_path, kitti_config):
    path, _ = written(tmp_path, kitti_config)
    sidecar_path(path).write_text("{not json")
    with pytest.raises(EngineError, match=r"pfn\.plan\.json: not valid JSON"):
        read_sidecar(path)
    sidecar_path(path).write_text("[1, 2]")
    with pytest.raises(EngineError, match="not a JSON object"):
        read_sidecar(path)


# ---- each mismatch: the documented error or warning ----------------------------------------------
def test_other_config_names_the_fields(kitti_config, example_config):
    h = make_header(kitti_config)
    with pytest.raises(EngineError, match="another config; differing fields: anchors, classes") as exc:
        check_engine_header(h, example_config, "10.3.0", h.gpu_name, (9, 0))
    assert "build_engines.py" in str(exc.value)
    other = kitti_config.replace(postprocess={"score_threshold": 0.3})
    with pytest.raises(EngineError, match="postprocess.score_threshold"):
        check_engine_header(h, other, "10.3.0", h.gpu_name, (9, 0), on_mismatch="warn")  # never only a warning


def test_other_tensorrt_version(kitti_config):
    h = make_header(kitti_config)
    with pytest.raises(EngineError, match=r"built with TensorRT 10\.3\.0, this is 11\.4\.0: rebuild with export/build_engines\.py"):
        check_engine_header(h, kitti_config, "11.4.0", h.gpu_name, (9, 0))
    msgs = check_engine_header(h, kitti_config, "11.4.0", h.gpu_name, (9, 0), on_mismatch="warn")
    assert len(msgs) == 1 and "built with TensorRT 10.3.0" in msgs[0]


def test_version_compatible_engine_runs_on_a_later_runtime_of_the_same_major(kitti_config):
    h = make_header(kitti_config, version_compatible=True)
    msgs = check_engine_header(h, kitti_config, "10.16.1.11", h.gpu_name, (9, 0))
    assert len(msgs) == 1 and "version-compatible engine built with TensorRT 10.3.0, running on 10.16.1.11" in msgs[0]
    with pytest.raises(EngineError, match="built with TensorRT 10.3.0"):
        check_engine_header(h, kitti_config, "11.4.0", h.gpu_name, (9, 0))  # another major
    with pytest.raises(EngineError, match="built with TensorRT 10.16.1, this is 10.3.0"):
        check_engine_header(dataclasses.replace(h, tensorrt_version="10.16.1"), kitti_config, "10.3.0", h.gpu_name, (9, 0))  # older runtime


def test_other_compute_capability_is_refused(kitti_config):
    h = make_header(kitti_config)
    with pytest.raises(EngineError, match=r"compute capability 9\.0 .*this GPU is 8\.9 \(NVIDIA L4\)"):
        check_engine_header(h, kitti_config, "10.3.0", "NVIDIA L4", (8, 9))


def test_other_gpu_name_with_the_same_compute_capability_is_a_warning(kitti_config):
    h = make_header(kitti_config)
    msgs = check_engine_header(h, kitti_config, "10.3.0", "NVIDIA H100 PCIe", (9, 0))  # on_mismatch="error"
    assert len(msgs) == 1 and "built on NVIDIA H100 80GB HBM3, this GPU is NVIDIA H100 PCIe (same compute capability 9.0)" in msgs[0]


def test_hardware_compatible_engine_runs_on_ampere_and_later(kitti_config):
    h = make_header(kitti_config, hardware_compat=True)
    msgs = check_engine_header(h, kitti_config, "10.3.0", "NVIDIA A100-SXM4-80GB", (8, 0))
    assert len(msgs) == 1 and "hardware-compatible engine built for compute capability 9.0, running on 8.0" in msgs[0]
    with pytest.raises(EngineError, match="compute capability 9.0"):
        check_engine_header(h, kitti_config, "10.3.0", "Tesla T4", (7, 5))


def test_warn_policy_returns_messages(kitti_config):
    h = make_header(kitti_config)
    msgs = check_engine_header(h, kitti_config, "11.4.0", "NVIDIA L4", (8, 9), on_mismatch="warn", where="x.plan")
    assert len(msgs) == 2 and all(m.startswith("x.plan (pfn engine)") for m in msgs)
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
