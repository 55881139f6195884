"""Graph metadata checks: another config, graphs not exported together, other weights."""

from __future__ import annotations

import dataclasses

import pytest

from pointpillars_trt.errors import ConfigError, EngineError
from pointpillars_trt.exporter import (
    check_graph_config, check_graph_set, check_graph_weights, export_onnx, read_graph_metadata, state_dict_sha256,
)
from pointpillars_trt.model import build_model


@pytest.fixture(scope="module")
def example_graphs(tmp_path_factory, example_config):
    model = build_model(example_config)
    return model, export_onnx(model, example_config, tmp_path_factory.mktemp("example"))


def test_same_config_passes(example_graphs, example_config):
    _, paths = example_graphs
    for path in paths.values():
        check_graph_config(read_graph_metadata(path), example_config)


def test_other_config_names_the_differing_fields(example_graphs, example_config, kitti_config):
    _, paths = example_graphs
    meta = read_graph_metadata(paths["rpn"])
    with pytest.raises(ConfigError, match=r"rpn\.onnx.*another config.*differing fields: anchors, classes"):
        check_graph_config(meta, kitti_config)
    other = example_config.replace(postprocess={"score_threshold": 0.5})
    with pytest.raises(ConfigError, match=r"postprocess\.score_threshold"):
        check_graph_config(meta, other)


def test_graph_set_must_be_exported_together(example_graphs, example_config, tmp_path):
    model, paths = example_graphs
    metas = [read_graph_metadata(p) for p in paths.values()]
    check_graph_set(metas)
    fp16 = export_onnx(model, example_config, tmp_path, fp16=True)
    with pytest.raises(EngineError, match="precision differs"):
        check_graph_set([metas[0], read_graph_metadata(fp16["rpn"])])
    other = dataclasses.replace(metas[1], weights_sha256="0" * 64)
    with pytest.raises(EngineError, match="weights_sha256 differs"):
        check_graph_set([metas[0], other])


def test_graph_weights(example_graphs):
    model, paths = example_graphs
    meta = read_graph_metadata(paths["pfn"])
    check_graph_weights(meta, state_dict_sha256(model.state_dict()))
    with pytest.raises(EngineError, match="other weights"):
        check_graph_weights(meta, "f" * 64)
