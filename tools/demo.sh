#!/usr/bin/env bash
# Set up the environment and detect boxes in the shipped sample cloud with the shipped demo model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
exec .venv/bin/python tools/infer.py pointpillars_trt/data/sample_cloud.bin --bev out/sample_bev.png "$@"
