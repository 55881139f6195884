"""The one artifact schema and reader: ONNX metadata verified at load (issue 14 items 7, 11, 13),
the config a folder of artifacts carries, atomic writes with the umask's mode. Real exports, real files."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import numpy_helper  # noqa: E402

from pointpillars_trt.artifacts import (  # noqa: E402
    PREFIX, ArtifactMetadata, artifact_config, artifact_config_json, graph_sha256, read_onnx_metadata,
)
from pointpillars_trt.errors import ConfigError, EngineError, OutputError  # noqa: E402
from pointpillars_trt.exporter import export_onnx  # noqa: E402
from pointpillars_trt.io.atomic import atomic_write_bytes  # noqa: E402
from pointpillars_trt.model import build_model  # noqa: E402


@pytest.fixture(scope="module")
def graphs(tmp_path_factory, example_config):
    out = tmp_path_factory.mktemp("graphs")
    return export_onnx(build_model(example_config), example_config, out)


def _copy(graphs, tmp_path):
    for p in graphs.values():
        shutil.copy(p, tmp_path / p.name)
    return {k: tmp_path / p.name for k, p in graphs.items()}


def _set_props(path, **changes):
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    props.update({PREFIX + k: v for k, v in changes.items()})
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(path))
    return model


def test_props_round_trip_and_the_sidecar_form(graphs, example_config):
    meta = read_onnx_metadata(graphs["rpn"], "rpn")
    assert meta.config == example_config and meta.part == "rpn" and meta.precision == "fp32"
    assert ArtifactMetadata.from_props(meta.to_props(), meta.path) == meta
    assert ArtifactMetadata.from_dict(json.loads(json.dumps(meta.to_dict())), "x") == meta
    assert meta.graph_sha256 == graph_sha256(onnx.load(str(graphs["rpn"])))


def test_edited_embedded_config_fails_naming_config_hash(graphs, tmp_path, example_config):
    paths = _copy(graphs, tmp_path)
    cfg = json.loads(example_config.to_json())
    renamed = dict(zip(cfg["classes"], ["Truck", "Person"]))
    cfg["classes"] = [renamed[c] for c in cfg["classes"]]
    for anchor in cfg["anchors"]:
        anchor["class"] = renamed[anchor["class"]]
    _set_props(paths["pfn"], config=json.dumps(cfg))
    with pytest.raises(EngineError, match=r"pfn\.onnx: the embedded config hashes to \w+, not to the recorded config_hash.*verify=False"):
        read_onnx_metadata(paths["pfn"])
    meta = read_onnx_metadata(paths["pfn"], verify=False)  # the escape hatch
    assert meta.config.classes[0] == "Truck"


def test_zeroed_rpn_tensor_fails_naming_graph_sha256(graphs, tmp_path):
    paths = _copy(graphs, tmp_path)
    model = onnx.load(str(paths["rpn"]))
    t = model.graph.initializer[0]
    t.CopyFrom(numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(t)), t.name))
    onnx.save(model, str(paths["rpn"]))
    with pytest.raises(EngineError, match=r"rpn\.onnx: the graph hashes to .*not to the recorded graph_sha256.*weights or nodes were edited"):
        read_onnx_metadata(paths["rpn"])
    assert read_onnx_metadata(paths["rpn"], verify=False).part == "rpn"


def test_onnx_runtime_backend_verifies_at_load(graphs, tmp_path, example_config):
    pytest.importorskip("onnxruntime")
    from pointpillars_trt.network.onnxruntime import OnnxRuntimeBackend, load_graph_metadata

    paths = _copy(graphs, tmp_path)
    paths.pop("full", None)
    model = onnx.load(str(paths["rpn"]))
    t = model.graph.initializer[-1]
    t.CopyFrom(numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(t)), t.name))
    onnx.save(model, str(paths["rpn"]))
    with pytest.raises(EngineError, match="graph_sha256"):
        OnnxRuntimeBackend(example_config, engine_dir=paths, device="cpu")
    cfg, metas = load_graph_metadata(paths, None, None, None, verify=False)
    assert cfg == example_config and set(metas) == {"pfn", "mfn", "rpn"}


@pytest.mark.parametrize("config,message", [
    ("{not json", r"pfn\.onnx: pointpillars_trt\.config in its metadata is not JSON"),
    ("5", r"pfn\.onnx: pointpillars_trt\.config is 5, expected the config as a JSON object"),
    ('{"name": "x"}', r"pfn\.onnx: the config in its metadata is invalid"),
])
def test_unreadable_embedded_config_is_a_typed_error_naming_the_file(graphs, tmp_path, config, message):
    paths = _copy(graphs, tmp_path)
    _set_props(paths["pfn"], config=config)
    with pytest.raises(EngineError, match=message):
        read_onnx_metadata(paths["pfn"], verify=False)


def test_other_metadata_format(graphs, tmp_path):
    paths = _copy(graphs, tmp_path)
    _set_props(paths["pfn"], format="1")
    with pytest.raises(EngineError, match=r"pointpillars_trt metadata format '1', this package reads format '2'; re-export"):
        read_onnx_metadata(paths["pfn"])


def test_stale_engine_beside_onnx_graphs_is_reported_as_itself(graphs, tmp_path, example_config):
    _copy(graphs, tmp_path)
    assert artifact_config_json(tmp_path) == example_config.to_json()
    (tmp_path / "pfn.engine").write_bytes(b"PPTRTENG" + b"\x00" * 40)
    with pytest.raises(EngineError, match=r"pfn\.engine: an engine container of an earlier") as exc:
        artifact_config_json(tmp_path)
    assert "pfn.onnx" not in str(exc.value)


def test_artifact_config_of_plans(tmp_path, kitti_config, example_config):
    from pointpillars_trt.tensorrt.engine_file import write_plan
    from tests.tensorrt.test_engine_file import make_header

    (tmp_path / "pfn.plan").write_bytes(b"raw plan from trtexec")
    with pytest.raises(EngineError, match="has no sidecar pfn.plan.json.*pass the config"):
        artifact_config(tmp_path)
    assert artifact_config(tmp_path, kitti_config) == kitti_config  # unchecked; EngineRunner warns
    write_plan(tmp_path / "pfn.plan", make_header(kitti_config), b"plan")
    assert artifact_config(tmp_path) == kitti_config
    with pytest.raises(ConfigError, match="differing fields"):
        artifact_config(tmp_path, example_config)
    with pytest.raises(EngineError, match="no pfn.plan, pfn.onnx or full.onnx"):
        artifact_config(tmp_path / "empty")


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_get_the_umasks_mode(tmp_path, umask, graphs, example_config):
    old = os.umask(umask)
    try:
        path = atomic_write_bytes(tmp_path / "x.bin", b"data")
        out = export_onnx(build_model(example_config), example_config, tmp_path / "onnx") if umask == 0o002 else {}
    finally:
        os.umask(old)
    assert path.read_bytes() == b"data" and (path.stat().st_mode & 0o777) == 0o666 & ~umask
    for p in out.values():
        assert (p.stat().st_mode & 0o777) == 0o664
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_graph_that_cannot_be_written_is_an_output_error_naming_it(tmp_path, example_config):
    (tmp_path / "onnx" / "pfn.onnx").mkdir(parents=True)  # a directory where the graph goes
    with pytest.raises(OutputError, match=r"onnx/pfn\.onnx: cannot write"):
        export_onnx(build_model(example_config), example_config, tmp_path / "onnx")
    assert not [p for p in (tmp_path / "onnx").iterdir() if p.name.endswith(".tmp")]


def test_an_output_folder_that_is_a_file_is_an_output_error_naming_it(tmp_path, example_config):
    (tmp_path / "onnx").write_text("not a folder")
    with pytest.raises(OutputError, match=r"onnx"):
        export_onnx(build_model(example_config), example_config, tmp_path / "onnx")
