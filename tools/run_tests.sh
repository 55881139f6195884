#!/usr/bin/env bash
# Set up the environment and run the whole CPU test suite (GPU tests skip themselves).
# As root on Debian it also installs Debian's ROS 1 Python packages for the live ROS node test and
# Xvfb and open3d for the Open3D viewer test (open3d is ~900 MB: PP_TEST_OPEN3D=0 leaves it out).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
bash tools/install_ros1_debian.sh
bash tools/install_viewer_test_deps.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
