"""EngineRunner's checks before TensorRT is involved (sidecars, plan hashes, precisions, profiles,
checkpoints), and the pure checks made at activation (layouts, head dtypes, geometry): all CPU."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from pointpillars_trt.errors import EngineError
from pointpillars_trt.tensorrt.api import EngineTensor
from pointpillars_trt.tensorrt.engine_file import LEGACY_MAGIC, sidecar_path, write_plan
from pointpillars_trt.tensorrt.runner import (
    DEFAULT_MAX_BATCH, INTEGRATED_MAX_BATCH, EngineRunner, check_geometry, check_layouts, check_same_checkpoint,
    common_precision, default_max_batch, header_from_engine, profile_max_pillars,
)
from tests.tensorrt.test_engine_file import PLAN, make_artifact, make_header

H100 = SimpleNamespace(info=SimpleNamespace(name="NVIDIA H100 80GB HBM3", compute_capability=(9, 0)))


def _plan(tmp_path, cfg, part, **kw):
    path = tmp_path / f"{part}.plan"
    write_plan(path, make_header(cfg, part, **kw), PLAN)
    return path


def test_runner_reads_and_checks_the_sidecar(tmp_path, kitti_config):
    path = _plan(tmp_path, kitti_config, "rpn", profile={"min": 1, "opt": 1, "max": 30000})
    r = EngineRunner("rpn", path, kitti_config, H100, "10.3.0")
    assert r.header.part == "rpn" and r.warnings == [] and r.engine is None and r.what == str(path)
    _plan(tmp_path, kitti_config, "pfn")
    pfn = EngineRunner("pfn", tmp_path, kitti_config, H100, "10.3.0")  # the folder: finds pfn.plan
    assert pfn.path == tmp_path / "pfn.plan" and pfn.header.has_sidecar
    assert EngineRunner("pfn", tmp_path / "pfn.engine", kitti_config, H100, "10.3.0").path == tmp_path / "pfn.plan"  # old callers
    assert profile_max_pillars([pfn, r]) == 30000
    assert common_precision([pfn, r], "x") == "fp16"
    check_same_checkpoint([pfn, r])


def test_runner_refuses_wrong_part_config_and_precision_mix(tmp_path, kitti_config, example_config):
    path = _plan(tmp_path, kitti_config, "pfn")
    with pytest.raises(EngineError, match="holds the pfn engine, expected rpn"):
        EngineRunner("rpn", path, kitti_config, H100, "10.3.0")
    with pytest.raises(EngineError, match="rebuild"):
        EngineRunner("pfn", path, example_config, H100, "10.3.0")
    a = EngineRunner("pfn", path, kitti_config, H100, "10.3.0")
    b = EngineRunner("rpn", _plan(tmp_path, kitti_config, "rpn", precision="fp32"), kitti_config, H100, "10.3.0")
    with pytest.raises(EngineError, match="mixed precisions"):
        common_precision([a, b], str(tmp_path))


def test_runner_refuses_a_plan_replaced_without_its_sidecar(tmp_path, kitti_config):
    path = _plan(tmp_path, kitti_config, "pfn")
    path.write_bytes(PLAN[::-1])
    with pytest.raises(EngineError, match="plan was replaced without its sidecar"):
        EngineRunner("pfn", path, kitti_config, H100, "10.3.0")


def test_runner_version_and_gpu_mismatch(tmp_path, kitti_config):
    path = _plan(tmp_path, kitti_config, "pfn")
    with pytest.raises(EngineError, match="built with TensorRT 10.3.0, this is 11.4.0"):
        EngineRunner("pfn", path, kitti_config, H100, "11.4.0")
    other = SimpleNamespace(info=SimpleNamespace(name="NVIDIA A100-SXM4-80GB", compute_capability=(8, 0)))
    r = EngineRunner("pfn", path, kitti_config, other, "10.3.0", on_mismatch="warn")
    assert len(r.warnings) == 1 and "compute capability 9.0" in r.warnings[0]
    pcie = SimpleNamespace(info=SimpleNamespace(name="NVIDIA H100 PCIe", compute_capability=(9, 0)))
    r = EngineRunner("pfn", path, kitti_config, pcie, "10.3.0")  # on_mismatch="error": still loads
    assert len(r.warnings) == 1 and "same compute capability" in r.warnings[0]


def test_plan_without_sidecar_loads_with_a_warning(tmp_path, kitti_config):
    (tmp_path / "pfn.plan").write_bytes(PLAN)
    r = EngineRunner("pfn", tmp_path / "pfn.plan", kitti_config, H100, "10.3.0")
    assert not r.header.has_sidecar and r.header.config == kitti_config.to_json()
    assert len(r.warnings) == 1 and "no sidecar pfn.plan.json; loaded unchecked" in r.warnings[0]
    assert common_precision([r], "x") == "unknown"
    assert profile_max_pillars([r]) == kitti_config.voxel.max_pillars  # checked against the engine by check_geometry
    check_same_checkpoint([r])


def test_old_container_is_refused_with_the_rebuild_command(tmp_path, kitti_config):
    (tmp_path / "pfn.engine").write_bytes(LEGACY_MAGIC + PLAN)
    for path in (tmp_path, tmp_path / "pfn.engine"):
        with pytest.raises(EngineError, match=r"pfn\.engine: an engine container of an earlier.*export/build_engines.py"):
            EngineRunner("pfn", path, kitti_config, H100, "10.3.0")


def test_partial_rebuild_is_refused(tmp_path, kitti_config):
    pfn = EngineRunner("pfn", _plan(tmp_path, kitti_config, "pfn"), kitti_config, H100, "10.3.0")
    other = make_artifact(kitti_config, "rpn", checkpoint_sha256="d" * 64)
    rpn = EngineRunner("rpn", _plan(tmp_path, kitti_config, "rpn", artifact=other), kitti_config, H100, "10.3.0")
    with pytest.raises(EngineError, match=r"not exported together: checkpoint_sha256 differs \(pfn.plan: cccc.*rpn.plan: dddd"):
        check_same_checkpoint([pfn, rpn])
    weights = make_artifact(kitti_config, "rpn", weights_sha256="e" * 64)
    rpn = EngineRunner("rpn", _plan(tmp_path, kitti_config, "rpn", artifact=weights), kitti_config, H100, "10.3.0")
    with pytest.raises(EngineError, match="weights_sha256 differs"):
        check_same_checkpoint([pfn, rpn])


def test_default_max_batch():
    assert default_max_batch(SimpleNamespace(compute_capability=(9, 0))) == DEFAULT_MAX_BATCH
    assert default_max_batch(SimpleNamespace(compute_capability=(8, 7))) == INTEGRATED_MAX_BATCH  # Jetson Orin
    assert default_max_batch(SimpleNamespace(compute_capability=(7, 2))) == INTEGRATED_MAX_BATCH  # Xavier
    assert default_max_batch(SimpleNamespace(compute_capability=(9, 0), integrated=True)) == INTEGRATED_MAX_BATCH
    assert INTEGRATED_MAX_BATCH < DEFAULT_MAX_BATCH


# ---- activation checks, on engine tensors as engine_io returns them ---------------------------------
def _tensors(cfg, dtype="float16", head_dtype="float32", fmt="linear", max_pillars=None):
    m, f, c = cfg.voxel.max_points_per_pillar, cfg.voxel.num_decorated_features, cfg.network.pfn_channels
    nx, ny, _ = cfg.grid_size
    hi = max_pillars or cfg.voxel.max_pillars
    prof = ((1, m, f), (hi, m, f), (hi, m, f))
    pfn = {"features": EngineTensor("features", (-1, m, f), dtype, True, prof, fmt),
           "num_points": EngineTensor("num_points", (-1,), "int32", True, ((1,), (hi,), (hi,))),
           "pillar_features": EngineTensor("pillar_features", (-1, c), dtype, False)}
    fx, fy = cfg.feature_map_size
    rpn = {"canvas": EngineTensor("canvas", (1, c, ny, nx), dtype, True)}
    rpn.update({n: EngineTensor(n, (1, cfg.head_channels[n], fy, fx), head_dtype, False) for n in ("cls", "box", "dir")})
    return SimpleNamespace(tensors=pfn, what="pfn.plan"), SimpleNamespace(tensors=rpn, what="rpn.plan")


def test_geometry_and_head_dtypes(kitti_config):
    pfn, rpn = _tensors(kitti_config)
    geo = check_geometry(kitti_config, pfn, rpn, kitti_config.voxel.max_pillars)
    assert geo["C"] == kitti_config.network.pfn_channels and geo["feat_size"] == 2
    pfn, rpn = _tensors(kitti_config, head_dtype="float16")
    with pytest.raises(EngineError, match=r"rpn\.plan: heads .*'cls': 'float16'.*static float32 heads"):
        check_geometry(kitti_config, pfn, rpn, kitti_config.voxel.max_pillars)
    pfn, rpn = _tensors(kitti_config, max_pillars=100)
    with pytest.raises(EngineError, match="does not reach"):
        check_geometry(kitti_config, pfn, rpn, kitti_config.voxel.max_pillars)


def test_layouts_must_be_linear(kitti_config):
    pfn, rpn = _tensors(kitti_config)
    check_layouts(pfn.tensors, "pfn.plan")
    check_layouts(rpn.tensors, "rpn.plan")
    pfn, _ = _tensors(kitti_config, fmt="TensorFormat.HWC8")
    with pytest.raises(EngineError, match=r"pfn\.plan: tensor 'features' has layout TensorFormat.HWC8, expected LINEAR"):
        check_layouts(pfn.tensors, "pfn.plan")


def test_sidecar_less_header_is_completed_from_the_engine(tmp_path, kitti_config):
    (tmp_path / "pfn.plan").write_bytes(PLAN)
    r = EngineRunner("pfn", tmp_path / "pfn.plan", kitti_config, H100, "10.3.0")
    pfn, rpn = _tensors(kitti_config, max_pillars=20000)
    h = header_from_engine(r.header, "pfn", pfn.tensors)
    assert h.precision == "fp16" and h.profile == {"min": 1, "opt": 20000, "max": 20000} and not h.has_sidecar
    assert header_from_engine(dataclasses.replace(r.header), "rpn", rpn.tensors).profile == {}
    assert not sidecar_path(tmp_path / "pfn.plan").exists()
