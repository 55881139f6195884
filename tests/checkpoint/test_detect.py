import pytest

from pointpillars_trt.checkpoint import FORMATS, detect_format
from pointpillars_trt.checkpoint.detect import check_forced_format
from pointpillars_trt.config import load_config
from pointpillars_trt.errors import CheckpointError
from pointpillars_trt.model import build_model

from .sources import FOREIGN, read_tsv


def test_formats_tuple():
    assert FORMATS == ("native", "openpcdet", "mmdet3d", "zhulf0804")


@pytest.mark.parametrize("fmt", FOREIGN)
def test_detects_the_published_key_sets(fmt):
    assert detect_format(read_tsv()[fmt]) == fmt


def test_detects_native():
    assert detect_format(build_model(load_config()).state_dict()) == "native"


def test_a_few_foreign_keys_among_unknown_ones_still_detect():
    assert detect_format(["backbone_3d.conv_input.0.weight", "dense_head.conv_cls.weight"]) == "openpcdet"


def test_unknown_keys_raise_with_a_sample():
    keys = [f"encoder.layer{i}.weight" for i in range(20)]
    with pytest.raises(CheckpointError) as err:
        detect_format(keys, where="bert.pth")
    msg = str(err.value)
    assert "bert.pth" in msg and "encoder.layer0.weight" in msg and "20 keys" in msg
    assert "openpcdet" in msg


def test_forced_format_must_own_some_keys():
    keys = read_tsv()["openpcdet"]
    check_forced_format(keys, "openpcdet")
    with pytest.raises(CheckpointError, match=r"format='zhulf0804'.*openpcdet"):
        check_forced_format(keys, "zhulf0804", where="a.pth")
    with pytest.raises(CheckpointError, match="unknown checkpoint format"):
        check_forced_format(keys, "second")
