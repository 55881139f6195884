"""Fixtures of the fleet tests: one local Ray of 2 CPUs for them all, a directory of real KITTI
frames with one bad file, recordings written here, the detector both sides use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import KITTI

FRAMES_DIR = KITTI / "cuda_pointpillars" / "velodyne_reduced"
SCORE_THRESHOLD = 0.3
BACKEND = "onnxruntime"
PC2 = "sensor_msgs/msg/PointCloud2"


def make_detector():
    """The detector of both sides: the shipped model on ONNX Runtime (CPU)."""
    from pointpillars_trt.detector import build_detector

    return build_detector(None, None, backend=BACKEND)


@pytest.fixture(scope="package")
def ray_cluster():
    """``ray.init(num_cpus=2)`` once (about 5 s) for the fleet tests, the only ones using Ray; shut
    down after them, so that Ray's processes do not stay through the rest of the suite."""
    pytest.importorskip("ray.data")
    import ray

    from pointpillars_trt.fleet import connect

    connect("local", num_cpus=2, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="session")
def frame_files() -> list[Path]:
    paths = sorted(FRAMES_DIR.glob("*.bin"))[:3]
    if len(paths) < 3:
        pytest.skip(f"real KITTI frames not found under {FRAMES_DIR}")
    return paths


@pytest.fixture(scope="session")
def frames_dir(tmp_path_factory, frame_files) -> Path:
    """Links to 3 real frames and ``bad.bin`` (1001 bytes: not float32 x, y, z, intensity records)."""
    d = tmp_path_factory.mktemp("frames")
    for p in frame_files:
        (d / p.name).symlink_to(p)
    (d / "bad.bin").write_bytes(b"\x01" * 1001)
    return d


@pytest.fixture(scope="session")
def clouds(frame_files) -> list[np.ndarray]:
    return [np.fromfile(p, np.float32).reshape(-1, 4) for p in frame_files]


def write_bag(path: Path, clouds: list[np.ndarray | bytes], times: list[int], storage: str) -> Path:
    """A rosbag2 recording (``storage`` ``sqlite3`` or ``mcap``) of ``clouds`` on ``/points`` at record
    times ``times`` (header stamp = time + 7); a ``bytes`` entry is written as it is (no PointCloud2)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from pointpillars_trt.ros.cloud import Header, Stamp, points_to_cloud
    from pointpillars_trt.ros.factories import RosbagsFactory
    from pointpillars_trt.ros.messages import cloud_msg

    ts = get_typestore(Stores.ROS2_HUMBLE)
    f = RosbagsFactory(ts, 2)
    with Writer(path, version=9, storage_plugin=StoragePlugin[storage.upper()]) as writer:
        conn = writer.add_connection("/points", PC2, typestore=ts)
        for pts, t in zip(clouds, times):
            raw = pts if isinstance(pts, bytes) else bytes(ts.serialize_cdr(
                cloud_msg(f, points_to_cloud(pts, Header(Stamp.from_nanoseconds(t + 7), "velodyne"))), PC2))
            writer.write(conn, t, raw)
    return path


def mcap_file(bag_dir: Path) -> Path:
    """The one .mcap file of a rosbag2 MCAP directory, as a bare file beside it."""
    (found,) = bag_dir.glob("*.mcap")
    target = bag_dir.with_suffix(".mcap")
    found.rename(target)
    return target

