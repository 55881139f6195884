#!/usr/bin/env bash
# Set up the environment and run the whole CPU test suite (GPU tests skip themselves).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
