"""The scaling run of issue 17 (``bench_fleet.py --num-gpus 1 2``) on a real local Ray head that
declares two GPUs (``ray start --head --num-gpus 2``, a CPU machine): one detector actor per GPU,
the same rows on one and on two GPUs. The actors run the shipped model on ONNX Runtime (CPU), so
this checks the scheduling and the row check, not GPU speed (that waits for a multi-GPU machine)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray.data")

from tests.helpers import KITTI, REPO, free_port

from .conftest import BACKEND

pytestmark = pytest.mark.slow
# the head and its client alike, whatever this machine's ~/.ray holds: a token file there turned token
# authentication on for a new head (Ray >= 2.60), which a client without the token cannot pass
RAY_ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


@pytest.fixture
def two_gpu_head(tmp_path):
    """``ray start --head --num-cpus 4 --num-gpus 2 --block`` in its own process group (so that stopping it
    leaves the suite's other local Ray alone); yields its address."""
    ray_cli = Path(sys.executable).with_name("ray")
    if not ray_cli.is_file():
        pytest.skip(f"no ray command beside {sys.executable}")
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    log = (tmp_path / "ray_head.log").open("w")
    head = subprocess.Popen([str(ray_cli), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
                             "--num-cpus=4", "--num-gpus=2", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=RAY_ENV)
    try:
        deadline = time.monotonic() + 120
        while True:  # the GCS port answers once the head is up
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if head.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"ray start --head did not come up (exit {head.poll()}): {(tmp_path / 'ray_head.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):  # the head and everything it started (one process group)
            try:
                os.killpg(head.pid, sig)
                head.wait(timeout=30)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def test_one_actor_per_gpu_and_the_same_rows_on_one_and_two_gpus(two_gpu_head, tmp_path):
    if not any((KITTI / "cuda_pointpillars" / "velodyne_reduced").glob("*.bin")):
        pytest.skip("real KITTI frames not found")
    out = tmp_path / "scaling.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_fleet.py"), "--address", two_gpu_head,
                           "--num-gpus", "1", "2", "--backend", BACKEND, "--frames", "8", "--batch-size", "2",
                           "--frames-per-task", "2", "--warmup", "0", "--no-progress", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, env=RAY_ENV, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    runs = result["runs"]
    assert [(r["num_gpus"], r["actors"], r["gpu"], r["frames"], r["failed"]) for r in runs] == [(1, 1, True, 8, 0), (2, 2, True, 8, 0)]
    assert result["same_rows"] and runs[0]["rows_sha256"] == runs[1]["rows_sha256"] and result["same_boxes"]
    (scale,) = result["scaling"]
    assert scale["actors"] == 2 and scale["efficiency"] > 0
    assert "rows       : the same in every run" in proc.stdout and "scaling    : 2 GPUs" in proc.stdout
