"""Import rospy / rclpy into the project's virtualenv from a system-wide ROS install.

A virtualenv does not see ROS: Debian's ROS 1 puts rospy in ``/usr/lib/python3/dist-packages``
(next to Debian's own NumPy), ROS from packages.ros.org in ``/opt/ros/<distro>/...``, usually
made visible by ``source /opt/ros/<distro>/setup.bash`` (which sets ``PYTHONPATH``). When the
plain import fails, :func:`import_ros` appends the usual places to ``sys.path`` - *after* the
venv's own entries, so the venv's NumPy and torch win - and tries again. When that fails too it
raises :class:`RosUnavailableError` saying what it tried and why it failed.

rospy, genpy and the ROS 1 message packages are pure Python, so they work from a venv whose
Python version differs from the system's. rclpy is a C extension built for one Python version
(``python3.X``) and needs ``LD_LIBRARY_PATH`` from ``setup.bash`` set before the process starts.
"""

from __future__ import annotations

import glob
import importlib
import os
import sys
from pathlib import Path

from ..errors import BackendUnavailableError

MODULES = {1: ("rospy", "genpy", "sensor_msgs.msg", "visualization_msgs.msg", "std_msgs.msg"), 2: ("rclpy",)}


class RosUnavailableError(BackendUnavailableError, ImportError):
    """rospy / rclpy (or the messages they need) cannot be imported."""


class RosMasterError(BackendUnavailableError):
    """The ROS 1 master does not answer."""


def _pyver() -> str:
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


def candidate_paths(version: int) -> list[str]:
    """Existing directories that may hold the ROS ``version`` Python packages, most specific first."""
    paths: list[str] = []
    if version == 1:
        prefixes = [p for p in os.environ.get("CMAKE_PREFIX_PATH", "").split(os.pathsep) if p]
        if os.environ.get("ROS_DISTRO"):
            prefixes.append(f"/opt/ros/{os.environ['ROS_DISTRO']}")
        prefixes += sorted(glob.glob("/opt/ros/*"))
        paths += [f"{p}/lib/python3/dist-packages" for p in prefixes]
        paths += [f"{p}/lib/{_pyver()}/site-packages" for p in prefixes]
        paths.append("/usr/lib/python3/dist-packages")
    else:
        prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
        if os.environ.get("ROS_DISTRO"):
            prefixes.append(f"/opt/ros/{os.environ['ROS_DISTRO']}")
        prefixes += sorted(glob.glob("/opt/ros/*"))
        for p in prefixes:
            paths += [f"{p}/lib/{_pyver()}/site-packages", f"{p}/local/lib/{_pyver()}/dist-packages"]
        paths.append("/usr/lib/python3/dist-packages")
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p) and p not in out:
            out.append(p)
    return out


def _import_all(names: tuple[str, ...]) -> object:
    first = None
    for name in names:
        mod = importlib.import_module(name)
        first = first or mod
    return first


def _forget(names: tuple[str, ...]) -> None:
    """Drop half-imported modules so that a retry starts clean."""
    roots = {n.split(".")[0] for n in names}
    for key in list(sys.modules):
        if key.split(".")[0] in roots:
            del sys.modules[key]


def _abi_hint() -> str:
    """For rclpy: the Python version its C extension was built for, when it differs from ours."""
    tags = set()
    for p in candidate_paths(2):
        for so in glob.glob(os.path.join(p, "rclpy", "_rclpy_pybind11*.so")):
            tags.add(Path(so).name.split(".")[1])
    mine = f"cpython-{sys.version_info.major}{sys.version_info.minor}"
    if tags and not any(t == mine or t.startswith(mine + "-") for t in tags):
        return (
            f" rclpy here is built for {sorted(tags)}, this interpreter is {mine}: create the venv with the "
            f"Python that ROS 2 uses."
        )
    return ""


def import_ros(version: int, extra_paths: list[str] | None = None) -> object:
    """Import and return ``rospy`` (``version=1``) or ``rclpy`` (``version=2``).

    Tries the plain import first; then appends ``extra_paths`` and :func:`candidate_paths` to
    the *end* of ``sys.path`` and tries again.

    Raises:
        RosUnavailableError: still not importable; the message lists the paths tried, the errors
            and what to install or source.
    """
    if version not in MODULES:
        raise ValueError(f"ROS version must be 1 or 2, got {version!r}")
    names = MODULES[version]
    try:
        return _import_all(names)
    except ImportError as exc:
        first_error = f"{type(exc).__name__}: {exc}"
    _forget(names)
    added = []
    for p in list(extra_paths or []) + candidate_paths(version):
        if p not in sys.path:
            sys.path.append(p)
            added.append(p)
    importlib.invalidate_caches()
    try:
        return _import_all(names)
    except ImportError as exc:
        second_error = f"{type(exc).__name__}: {exc}"
    _forget(names)
    for p in added:
        sys.path.remove(p)
    if version == 1:
        hint = (
            "install ROS 1's Python packages (Debian/Ubuntu: bash tools/install_ros1_debian.sh, i.e. apt-get install "
            "python3-rospy python3-rosmaster python3-sensor-msgs python3-visualization-msgs ...; ROS Noetic: "
            "source /opt/ros/noetic/setup.bash)"
        )
    else:
        hint = (
            "source /opt/ros/<distro>/setup.bash before starting this Python (rclpy's C extension needs its "
            "LD_LIBRARY_PATH), in a venv made with the Python ROS 2 uses." + _abi_hint()
        )
    tried = ", ".join(added) if added else "(no candidate directory exists)"
    raise RosUnavailableError(
        f"cannot import {names[0]} (ROS {version}) into {sys.executable}: plain import failed ({first_error}); "
        f"appended {tried} to sys.path and it failed again ({second_error}); {hint}"
    )
