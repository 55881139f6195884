#!/usr/bin/env bash
# What the Open3D viewer test (tests/viz/test_open3d_view.py) needs: Debian's Xvfb (a virtual X
# display, with Mesa's software OpenGL) and libusb (open3d's wheel links it), installed like the
# ROS 1 packages (idempotent, skipped when not root; see tools/apt_install.sh).
# open3d itself is large (about 900 MB installed, ~1-2 min from PyPI); PP_TEST_OPEN3D=0 skips it
# (the viewer test then skips). Usage: [PP_TEST_OPEN3D=0] bash tools/install_viewer_test_deps.sh
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/apt_install.sh install_viewer_test_deps xvfb libusb-1.0-0 libgl1 libgomp1
if [ "${PP_TEST_OPEN3D:-1}" = "1" ] && ! .venv/bin/python -c "import open3d" >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q "open3d==0.20.*" \
    || echo "install_viewer_test_deps: pip install open3d failed; the viewer test will skip"
fi
