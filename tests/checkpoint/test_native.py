"""The native safetensors format: round trips, fp16 storage, config checks."""

import pytest
import torch

from pointpillars_trt.checkpoint import LoadedCheckpoint, load_checkpoint, random_native_state_dict, save_native
from pointpillars_trt.config import load_config
from pointpillars_trt.errors import CheckpointError, ConfigError
from pointpillars_trt.model import build_model


@pytest.fixture(scope="module")
def cfg():
    return load_config()


@pytest.fixture(scope="module")
def state(cfg):
    return random_native_state_dict(cfg, seed=11)


def test_round_trip_is_identical(tmp_path, cfg, state):
    path = save_native(tmp_path / "m.safetensors", state, cfg, metadata={"command": "train.py --epochs 80", "seed": "11"})
    ck = load_checkpoint(path)
    assert isinstance(ck, LoadedCheckpoint)
    assert ck.format == "native" and ck.path == path and ck.config == cfg
    assert list(ck.state_dict) == list(state)
    for key, t in state.items():
        assert torch.equal(ck.state_dict[key], t), key
        assert ck.state_dict[key].dtype == (torch.int64 if key.endswith("num_batches_tracked") else torch.float32)
    assert ck.metadata["command"] == "train.py --epochs 80" and ck.metadata["seed"] == "11"
    assert ck.metadata["format_version"] == "1" and ck.metadata["config_hash"] == cfg.hash()
    assert "config" not in ck.metadata


def test_saving_a_model_and_loading_into_a_model(tmp_path, cfg, state):
    model = build_model(cfg)
    model.load_state_dict(state)
    ck = load_checkpoint(save_native(tmp_path / "m.safetensors", model, cfg))
    fresh = build_model(ck.config)
    fresh.load_state_dict(ck.state_dict)  # strict
    assert torch.equal(fresh.rpn.conv_cls.weight, model.rpn.conv_cls.weight)


def test_fp16_storage_loads_as_float32(tmp_path, cfg, state):
    p32 = save_native(tmp_path / "m32.safetensors", state, cfg)
    p16 = save_native(tmp_path / "m16.safetensors", state, cfg, dtype=torch.float16)
    assert p16.stat().st_size < 0.6 * p32.stat().st_size
    ck = load_checkpoint(p16)
    assert ck.metadata["dtype"] == "float16"
    for key, t in state.items():
        got = ck.state_dict[key]
        if key.endswith("num_batches_tracked"):
            assert got.dtype == torch.int64 and torch.equal(got, t)
        else:
            assert got.dtype == torch.float32
            torch.testing.assert_close(got, t, rtol=1e-3, atol=1e-4)


def test_a_different_config_is_a_config_error_naming_the_fields(tmp_path, cfg, state):
    path = save_native(tmp_path / "m.safetensors", state, cfg)
    assert load_checkpoint(path, config=load_config()).config == cfg  # an equal config is fine
    other = cfg.replace(postprocess={"score_threshold": 0.3}, head={"dir_offset": 0.0})
    with pytest.raises(ConfigError) as err:
        load_checkpoint(path, config=other)
    msg = str(err.value)
    assert str(path) in msg and "postprocess.score_threshold" in msg and "head.dir_offset" in msg


def test_converted_checkpoint_keeps_its_conventions_and_provenance(tmp_path, cfg):
    from pointpillars_trt.checkpoint import write_checkpoint

    src = load_checkpoint(write_checkpoint(tmp_path / "z.pth", "zhulf0804", cfg, seed=2))
    path = save_native(tmp_path / "z.safetensors", src.state_dict, src.config, src.metadata)
    ck = load_checkpoint(path)
    assert ck.config == src.config and ck.config.head.box_layout == "wlh_cw"
    assert ck.metadata["source_format"] == "zhulf0804" and ck.metadata["source_file"] == "z.pth"
    assert all(torch.equal(ck.state_dict[k], v) for k, v in src.state_dict.items())


def test_bare_native_pth_uses_the_given_or_default_config(tmp_path, cfg, state):
    path = tmp_path / "native.pth"
    torch.save(state, path)
    ck = load_checkpoint(path)
    assert ck.format == "native" and ck.config == cfg
    other = cfg.replace(postprocess={"score_threshold": 0.2})
    assert load_checkpoint(path, config=other).config == other


def test_save_refuses_what_would_not_load(tmp_path, cfg, state):
    broken = dict(state)
    del broken["rpn.conv_dir.bias"]
    with pytest.raises(CheckpointError, match=r"missing \(1\):\s+rpn.conv_dir.bias \[12\]"):
        save_native(tmp_path / "a.safetensors", broken, cfg)
    with pytest.raises(CheckpointError, match="strings"):
        save_native(tmp_path / "a.safetensors", state, cfg, metadata={"seed": 3})
    with pytest.raises(CheckpointError, match="float16"):
        save_native(tmp_path / "a.safetensors", state, cfg, dtype=torch.bfloat16)
    with pytest.raises(CheckpointError, match="cannot write"):
        save_native(tmp_path / "no" / "dir" / "a.safetensors", state, cfg)
    assert not list(tmp_path.iterdir())


def test_newer_format_version_is_refused(tmp_path, cfg, state):
    from safetensors.torch import save_file

    path = tmp_path / "future.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={"config": cfg.to_json(), "format_version": "2"})
    with pytest.raises(CheckpointError, match="format_version '2'"):
        load_checkpoint(path)


# --------------------------------------------------------------------------------------------------
# issue 14 items 6 and 7: weights are floats and finite, hashes are verified at load


def _resave(path, tensors=None, metadata=None):
    """Rewrite a safetensors file with other tensors or metadata, as an editor or a bit flip would."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        info, data = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    data.update(tensors or {})
    info.update(metadata or {})
    save_file({k: v.contiguous() for k, v in data.items()}, str(path), metadata=info)
    return path


def test_saved_file_records_both_hashes(tmp_path, cfg, state):
    from pointpillars_trt.exporter import state_dict_sha256

    ck = load_checkpoint(save_native(tmp_path / "m.safetensors", state, cfg))
    assert ck.metadata["weights_sha256"] == state_dict_sha256(ck.state_dict)  # what ONNX graphs record


def test_saved_file_gets_the_umask_mode_not_0600(tmp_path, cfg, state):
    """safetensors' save_file makes its file 0600; a saved checkpoint is readable as any file the user writes."""
    import os

    old = os.umask(0o022)
    try:
        path = save_native(tmp_path / "m.safetensors", state, cfg)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


KEY = "rpn.conv_cls.weight"


@pytest.mark.parametrize(
    "dtype", [torch.bool, torch.uint8, torch.int32, torch.int64, torch.float64], ids=str
)
def test_non_float_or_float64_weights_are_refused_naming_the_tensor(tmp_path, cfg, state, dtype):
    path = _resave(save_native(tmp_path / "m.safetensors", state, cfg), {KEY: (state[KEY] > 0).to(dtype)})
    with pytest.raises(CheckpointError, match=rf"m\.safetensors: tensor '{KEY}' has dtype {dtype}; weights must be float32"):
        load_checkpoint(path, verify=False)


def test_bfloat16_weights_load_exactly(tmp_path, cfg, state):
    bf = state[KEY].to(torch.bfloat16)
    ck = load_checkpoint(_resave(save_native(tmp_path / "m.safetensors", state, cfg), {KEY: bf}), verify=False)
    assert torch.equal(ck.state_dict[KEY], bf.to(torch.float32))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, cfg, state, value):
    bad = state[KEY].clone()
    bad.view(-1)[:3] = value
    path = _resave(save_native(tmp_path / "m.safetensors", state, cfg), {KEY: bad})
    with pytest.raises(CheckpointError, match=rf"tensor '{KEY}' holds 3 NaN/inf value\(s\)"):
        load_checkpoint(path, verify=False)


def test_changed_weights_fail_weights_sha256(tmp_path, cfg, state):
    path = _resave(save_native(tmp_path / "m.safetensors", state, cfg), {KEY: torch.zeros_like(state[KEY])})
    with pytest.raises(CheckpointError, match=r"m\.safetensors: weights_sha256 mismatch.*verify=False"):
        load_checkpoint(path)
    assert not load_checkpoint(path, verify=False).state_dict[KEY].any()  # the explicit escape hatch


def test_edited_embedded_config_fails_config_hash(tmp_path, cfg, state):
    path = save_native(tmp_path / "m.safetensors", state, cfg)
    renamed = cfg.to_json().replace('"Pedestrian"', '"Walker"')
    _resave(path, metadata={"config": renamed})
    with pytest.raises(CheckpointError, match=r"m\.safetensors: config_hash mismatch"):
        load_checkpoint(path)
    assert load_checkpoint(path, verify=False).config.classes == ("Car", "Walker", "Cyclist")


def test_file_without_weights_sha256_still_loads(tmp_path, cfg, state):
    """Files written before the field existed (the bundled demo model among them) carry no weights_sha256."""
    from safetensors.torch import save_file

    path = tmp_path / "old.safetensors"
    old_json = cfg.to_json()
    save_file({k: v.contiguous() for k, v in state.items()}, str(path),
              metadata={"config": old_json, "config_hash": cfg.hash(), "format_version": "1", "dtype": "float32"})
    assert load_checkpoint(path).config == cfg
