"""tools/int8_sensitivity.py: bad input exits 2 with one log line, in both modes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import REPO


@pytest.mark.parametrize("mode", [[], ["--sqnr"]])
def test_a_folder_without_int8_graphs_exits_2_with_one_line(tmp_path, mode):
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "int8_sensitivity.py"), *mode, "--int8-dir", str(tmp_path),
                           "--data-root", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "not found" in proc.stderr
