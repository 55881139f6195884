"""The TensorRT backend's CPU-checkable behaviour: registration, clear errors, device parsing."""

from __future__ import annotations

import pytest

from pointpillars_trt.network import available_backends, create_backend
from pointpillars_trt.network.tensorrt import parse_device
from pointpillars_trt.errors import BackendUnavailableError, ConfigError



def _have_tensorrt() -> bool:
    # not a bare `import tensorrt`: this test folder itself is importable as a namespace package of that name
    from pointpillars_trt.tensorrt.api import load_tensorrt

    try:
        load_tensorrt()
    except BackendUnavailableError:
        return False
    return True


HAVE_TRT = _have_tensorrt()


def test_registered():
    from pointpillars_trt.network import _load_all

    _load_all()
    assert "tensorrt" in available_backends()


def test_engine_dir_required(kitti_config):
    with pytest.raises(ConfigError, match="engine_dir is required"):
        create_backend("tensorrt", cfg=kitti_config, state_dict=None, device="cuda")


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed")
def test_missing_tensorrt_is_a_clear_error(kitti_config, tmp_path):
    with pytest.raises(BackendUnavailableError, match="TensorRT is not installed.*pip install tensorrt"):
        create_backend("tensorrt", cfg=kitti_config, engine_dir=tmp_path, state_dict={"ignored": 1}, device="cpu")


def test_package_imports_without_tensorrt():
    import importlib

    for mod in ("pointpillars_trt.tensorrt.api", "pointpillars_trt.tensorrt.build", "pointpillars_trt.network.tensorrt",
                "pointpillars_trt.network.cuda_scatter", "pointpillars_trt.cuda.nvrtc"):
        importlib.import_module(mod)


@pytest.mark.parametrize("given,index", [(0, 0), (2, 2), (None, 0), ("cuda", 0), ("cuda:1", 1), ("cpu", 0), ("3", 3)])
def test_parse_device(given, index):
    assert parse_device(given) == index


def test_parse_device_rejects_garbage():
    with pytest.raises(ConfigError, match="not a CUDA device"):
        parse_device("tpu:0")
