"""End to end against a real ROS 1 master: rosmaster, our node (tools/ros_node.py --ros 1) and
rospy in this process publishing real KITTI frames as PointCloud2.

Checks: one output of each kind per good cloud, the input stamps carried, the same boxes as
``Detector.detect`` on the same frame in this process, ROS parameters overriding flags, bad
clouds logged without killing the node, and a clean shutdown on SIGINT. Skips when Debian's
ROS 1 packages are missing (``bash tools/install_ros1_debian.sh`` installs them). Every process
it starts is stopped by a finalizer, also on failure; every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pointpillars_trt.ros.cloud import CloudData, Header, PointFieldData, Stamp, points_to_cloud
from pointpillars_trt.ros.markers import DELETEALL, box_line_segments
from pointpillars_trt.ros.messages import boxes_from_msg, cloud_msg, markers_from_msg
from tests.helpers import free_port

from .conftest import REPO, SCORE_THRESHOLD, assert_boxes_close

pytestmark = [pytest.mark.ros, pytest.mark.filterwarnings("ignore:notifyAll:DeprecationWarning")]

NODE_READY_S = 120.0  # torch import + model load + warm-up on a busy 2-core machine
FRAME_S = 60.0
TOPIC_PREFIX = "/pp_test"
FRAME_ID = "velodyne"
PARAM_NS = "from_param"


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 15.0) -> int | None:
    """Stop a process this test started (signal, wait, then kill); returns its exit code."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


def wait_until(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            pytest.fail(f"process exited (rc {proc.returncode}) while waiting for {what}:\n{tail}")
        time.sleep(0.05)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")


@dataclass
class Master:
    uri: str
    env: dict[str, str]


@dataclass
class NodeProc:
    proc: subprocess.Popen
    log: Path
    name: str

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Collector:
    """Messages received on the node's outputs (rospy calls back from its own threads)."""

    markers: list[Any] = field(default_factory=list)
    boxes: list[Any] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    subscribers: dict[str, Any] = field(default_factory=dict)  # kind -> the rospy.Subscriber

    def add(self, kind: str, msg: Any) -> None:
        with self.lock:
            getattr(self, kind).append(msg.data if kind == "latency" else msg)

    def counts(self) -> tuple[int, int, int]:
        with self.lock:
            return len(self.markers), len(self.boxes), len(self.latency)


@pytest.fixture(scope="module")
def rospy_mod():
    from pointpillars_trt.ros.env import RosUnavailableError, import_ros

    try:
        rospy = import_ros(1)
    except RosUnavailableError as exc:
        pytest.skip(f"ROS 1 not installed (bash tools/install_ros1_debian.sh): {exc}")
    if shutil.which("rosmaster") is None:
        pytest.skip("rosmaster not installed (bash tools/install_ros1_debian.sh)")
    return rospy


@pytest.fixture(scope="module")
def master(rospy_mod, tmp_path_factory):
    home = tmp_path_factory.mktemp("ros_home")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    env = {**os.environ, "ROS_MASTER_URI": uri, "ROS_IP": "127.0.0.1", "ROS_HOME": str(home), "ROS_LOG_DIR": str(home / "log")}
    env.pop("ROS_HOSTNAME", None)
    env.pop("PYTHONPATH", None)  # the node must find rospy by itself
    log = (home / "rosmaster.log").open("w")
    proc = subprocess.Popen(["rosmaster", "--core", "-p", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    saved = {k: os.environ.get(k) for k in ("ROS_MASTER_URI", "ROS_IP", "ROS_HOME", "ROS_LOG_DIR", "ROS_HOSTNAME")}
    try:
        import xmlrpc.client

        def online() -> bool:
            try:
                return xmlrpc.client.ServerProxy(uri).getPid("/pp_test")[0] == 1
            except OSError:
                return False

        wait_until(online, 30.0, f"rosmaster on {uri}", proc, home / "rosmaster.log")
        for k in saved:
            os.environ.pop(k, None)
            if k in env:
                os.environ[k] = env[k]
        yield Master(uri, env)
    finally:
        stop(proc)
        log.close()
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v


@pytest.fixture(scope="module")
def node(master, ros_ckpt, tmp_path_factory):
    """Our node as a user starts it; ``~marker_ns`` is set as a ROS parameter to override the flag."""
    import xmlrpc.client

    name = f"pp_node_{uuid.uuid4().hex[:6]}"
    xmlrpc.client.ServerProxy(master.uri).setParam("/pp_test", f"/{name}/marker_ns", PARAM_NS)
    log = tmp_path_factory.mktemp("node") / "node.log"
    cmd = [
        sys.executable, str(REPO / "tools" / "ros_node.py"), "--ros", "1", "--name", name,
        "--input", f"{TOPIC_PREFIX}/points", "--markers", f"{TOPIC_PREFIX}/markers", "--boxes", f"{TOPIC_PREFIX}/boxes",
        "--frame-id", FRAME_ID, "--score-thresh", str(SCORE_THRESHOLD), "--warmup", "1", "--marker-ns", "from_flag",
    ] + (["--ckpt", str(ros_ckpt)] if ros_ckpt else [])
    env = {**master.env, "PYTHONUNBUFFERED": "1"}
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)
    n = NodeProc(proc, log, name)
    try:
        yield n
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def client(rospy_mod, master, node):
    """rospy in this process: a publisher of clouds and subscribers of the node's outputs."""
    from sensor_msgs.msg import PointCloud2
    from std_msgs.msg import Float32
    from visualization_msgs.msg import MarkerArray

    from pointpillars_trt.ros.factories import GenpyFactory

    rospy = rospy_mod
    rospy.init_node("pp_test_client", anonymous=True, disable_signals=True, argv=["pytest"])
    factory = GenpyFactory()
    got = Collector()
    subs = [
        rospy.Subscriber(f"{TOPIC_PREFIX}/markers", MarkerArray, lambda m: got.add("markers", m), queue_size=100),
        rospy.Subscriber(f"{TOPIC_PREFIX}/boxes", factory.cls("pointpillars_trt_msgs/msg/BoxArray"), lambda m: got.add("boxes", m), queue_size=100),
        rospy.Subscriber(f"/{node.name}/latency_ms", Float32, lambda m: got.add("latency", m), queue_size=100),
    ]
    got.subscribers.update(zip(("markers", "boxes", "latency"), subs))
    pub = rospy.Publisher(f"{TOPIC_PREFIX}/points", PointCloud2, queue_size=10)
    try:
        wait_until(
            lambda: pub.get_num_connections() > 0 and all(s.get_num_connections() > 0 for s in subs),
            NODE_READY_S, "the node to connect (model load + warm-up)", node.proc, node.log,
        )
        yield pub, got, factory
    finally:
        for s in subs:
            s.unregister()
        pub.unregister()
        rospy.signal_shutdown("test finished")


def send(client, node, points_or_cloud, stamp: Stamp, frame_id: str = FRAME_ID) -> None:
    pub, _, factory = client
    cloud = points_or_cloud if isinstance(points_or_cloud, CloudData) else points_to_cloud(points_or_cloud, Header(stamp, frame_id))
    pub.publish(cloud_msg(factory, cloud))


def wait_outputs(client, node, n: int) -> None:
    _, got, _ = client
    wait_until(lambda: min(got.counts()) >= n, FRAME_S, f"{n} outputs of each kind", node.proc, node.log)


def check_frame(client, index: int, stamp: Stamp, want) -> None:
    _, got, _ = client
    header, boxes, scores, names = boxes_from_msg(got.boxes[index])
    assert header == Header(stamp, FRAME_ID)
    assert names == want.label_names and len(names) > 0
    assert_boxes_close(boxes, want.boxes, atol=1e-4)
    np.testing.assert_allclose(scores, want.scores, rtol=1e-4, atol=1e-5)
    headers, markers = markers_from_msg(got.markers[index])
    assert set(headers) == {Header(stamp, FRAME_ID)}
    assert len(markers) == 1 + 2 * len(want) and markers[0].action == DELETEALL
    assert {m.ns for m in markers[1:]} == {f"{PARAM_NS}/boxes", f"{PARAM_NS}/labels"}  # the ROS parameter won
    np.testing.assert_allclose(markers[1].points, box_line_segments(want.boxes)[0], atol=1e-4)
    assert got.latency[index] > 0


def test_frames_round_trip(node, frames, expected, client):
    """Each real KITTI frame in, exactly one MarkerArray / BoxArray / latency out, same boxes, same stamp."""
    _, got, _ = client
    for i, pts in enumerate(frames):
        stamp = Stamp(1000 + i, 123_456_789)
        send(client, node, pts, stamp)
        wait_outputs(client, node, i + 1)
        check_frame(client, i, stamp, expected[i])
    time.sleep(0.3)
    assert got.counts() == (len(frames),) * 3
    log = node.log_text()
    assert log.count("boxes, latency") == len(frames)
    assert "warm-up (1 frames)" in log and f"listening on {TOPIC_PREFIX}/points" in log


def test_bad_clouds_are_logged_and_the_node_keeps_running(client, node, frames, expected):
    _, got, _ = client
    before = got.counts()
    hdr = Header(Stamp(2000, 0), FRAME_ID)
    no_xyz = CloudData(hdr, 1, 4, (PointFieldData("range", 0, 7), PointFieldData("intensity", 4, 7)), False, 8, 32, bytes(32))
    bad = [
        (no_xyz, "no field(s) ['x', 'y', 'z']"),
        (points_to_cloud(frames[0], Header(Stamp(2002, 0), "camera")), "frame 'camera'"),
    ]
    for cloud, text in bad:
        send(client, node, cloud, cloud.header.stamp)
        wait_until(lambda: text in node.log_text(), FRAME_S, f"the node to log {text!r}", node.proc, node.log)
    assert node.proc.poll() is None
    # a cloud with NaN rows: dropped (default nonfinite policy), the rest detected as the clean frame
    pts = np.insert(frames[0], [5, 500, 5000], np.nan, axis=0)
    stamp = Stamp(2003, 5)
    send(client, node, pts, stamp)
    wait_outputs(client, node, before[0] + 1)
    assert "dropped 3 of" in node.log_text()
    time.sleep(0.3)
    assert got.counts() == tuple(c + 1 for c in before)  # nothing was published for the bad clouds
    check_frame(client, before[0], stamp, expected[0])


def test_clouds_without_a_usable_point_publish_no_objects(client, node):
    """Empty, all-NaN and all-out-of-range clouds: a DELETEALL marker and an empty box array, input stamp."""
    _, got, _ = client
    for i, pts in enumerate([np.zeros((0, 4), np.float32), np.full((4, 4), np.nan, np.float32),
                             np.array([[900.0, 900.0, 0.0, 0.1]], np.float32)]):
        before = got.counts()
        stamp = Stamp(3000 + i, 7)
        send(client, node, pts, stamp)
        wait_outputs(client, node, before[0] + 1)
        header, boxes, _, _ = boxes_from_msg(got.boxes[before[0]])
        assert header == Header(stamp, FRAME_ID) and boxes.shape == (0, 7)
        headers, markers = markers_from_msg(got.markers[before[0]])
        assert headers == [Header(stamp, FRAME_ID)] and [m.action for m in markers] == [DELETEALL]
    assert "the result is empty" in node.log_text()


def test_markers_are_not_built_while_nobody_subscribes(client, node, frames, expected):
    """The marker subscriber leaves: the node stops building markers (its log says so), boxes and latency go on."""
    _, got, _ = client
    got.subscribers.pop("markers").unregister()
    before = got.counts()
    sent = 0

    def skipped() -> bool:  # the node notices the closed connection a moment later: send until it says so
        nonlocal sent
        if "(no marker subscriber)" in node.log_text():
            return True
        send(client, node, frames[0], Stamp(4000 + sent, 0))
        sent += 1
        time.sleep(0.2)
        return False

    wait_until(skipped, FRAME_S, "the node to stop building markers", node.proc, node.log)
    last = Header(Stamp(4000 + sent - 1, 0), FRAME_ID)  # the node's queue of 1 keeps the newest cloud

    def settled() -> bool:
        n_markers, n_boxes, n_latency = got.counts()
        return n_boxes > before[1] and boxes_from_msg(got.boxes[-1])[0] == last and n_latency - before[2] == n_boxes - before[1]

    wait_until(settled, FRAME_S, "the boxes and latency of the last cloud", node.proc, node.log)
    assert got.counts()[0] == before[0]
    assert_boxes_close(boxes_from_msg(got.boxes[-1])[1], expected[0].boxes, atol=1e-4)


def test_clean_shutdown(client, node):
    rc = stop(node.proc, signal.SIGINT, timeout=30.0)
    assert rc == 0, node.log_text()[-3000:]
    assert "shut down after" in node.log_text()


def test_no_master_exits_2_and_says_where_it_looked(rospy_mod):
    port = free_port()  # nothing listens there
    env = {**os.environ, "ROS_MASTER_URI": f"http://127.0.0.1:{port}", "ROS_IP": "127.0.0.1"}
    out = subprocess.run([sys.executable, str(REPO / "tools" / "ros_node.py"), "--ros", "1", "--master-timeout", "0.5"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 2
    assert f"no ROS master answers at http://127.0.0.1:{port}" in out.stderr
