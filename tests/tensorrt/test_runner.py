"""EngineRunner's checks before TensorRT is involved (headers, precisions, profiles): all CPU."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pointpillars_trt.errors import EngineError
from pointpillars_trt.tensorrt.engine_file import write_engine_file
from pointpillars_trt.tensorrt.runner import EngineRunner, common_precision, profile_max_pillars
from tests.tensorrt.test_engine_file import PLAN, make_header

H100 = SimpleNamespace(info=SimpleNamespace(name="NVIDIA H100 80GB HBM3", compute_capability=(9, 0)))


def _engine(tmp_path, cfg, part, **kw):
    return write_engine_file(tmp_path / f"{part}.engine", make_header(cfg, part=part, **kw), PLAN)


def test_runner_reads_and_checks_the_header(tmp_path, kitti_config):
    path = _engine(tmp_path, kitti_config, "rpn", profile={"min": 1, "opt": 1, "max": 30000})
    r = EngineRunner("rpn", path, kitti_config, H100, "10.3.0")
    assert r.header.part == "rpn" and r.warnings == [] and r.engine is None and r.what == str(path)
    pfn = EngineRunner("pfn", _engine(tmp_path, kitti_config, "pfn"), kitti_config, H100, "10.3.0")
    assert profile_max_pillars([pfn, r]) == 30000
    assert common_precision([pfn, r], "x") == "fp16"


def test_runner_refuses_wrong_part_config_and_precision_mix(tmp_path, kitti_config, example_config):
    path = _engine(tmp_path, kitti_config, "pfn")
    with pytest.raises(EngineError, match="holds the pfn engine, expected rpn"):
        EngineRunner("rpn", path, kitti_config, H100, "10.3.0")
    with pytest.raises(EngineError, match="rebuild"):
        EngineRunner("pfn", path, example_config, H100, "10.3.0")
    a = EngineRunner("pfn", path, kitti_config, H100, "10.3.0")
    b = EngineRunner("rpn", _engine(tmp_path, kitti_config, "rpn", precision="fp32"), kitti_config, H100, "10.3.0")
    with pytest.raises(EngineError, match="mixed precisions"):
        common_precision([a, b], str(tmp_path))


def test_runner_version_and_gpu_mismatch(tmp_path, kitti_config):
    path = _engine(tmp_path, kitti_config, "pfn")
    with pytest.raises(EngineError, match="built with TensorRT 10.3.0, this is 11.4.0"):
        EngineRunner("pfn", path, kitti_config, H100, "11.4.0")
    other = SimpleNamespace(info=SimpleNamespace(name="NVIDIA A100-SXM4-80GB", compute_capability=(8, 0)))
    r = EngineRunner("pfn", path, kitti_config, other, "10.3.0", on_mismatch="warn")
    assert len(r.warnings) == 1 and "compute capability 9.0" in r.warnings[0]
