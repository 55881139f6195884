"""benchmarks/landed_vs_head.py's tree preparation (its measurement needs a GPU: tools/gpu_suite.sh)."""

from __future__ import annotations

import sys

from tests.helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
try:
    import landed_vs_head as lvh
finally:
    sys.path.remove(str(REPO / "benchmarks"))


def test_a_landed_tree_runs_this_checkouts_model(tmp_path):
    """Without weights, or with another model (one shipped before), the landed tree gets this
    checkout's: only the code may differ between the two trees."""
    (tmp_path / "pointpillars_trt").mkdir()
    got = lvh.with_weights(tmp_path)
    assert got == tmp_path / "pointpillars_trt" / "data" / "demo_model.safetensors"
    assert got.read_bytes() == (REPO / lvh.WEIGHTS).read_bytes()
    got.write_bytes(b"an earlier model")
    assert lvh.with_weights(tmp_path).read_bytes() == (REPO / lvh.WEIGHTS).read_bytes()
