#!/usr/bin/env bash
# Install Debian's ROS 1 (Noetic-era, ros_comm 1.15) Python packages so that the ROS 1 node and its
# end-to-end test can run: rosmaster, rospy and the message packages the node uses.
# Idempotent: does nothing when they are installed already. Does nothing (exit 0, with a message)
# when not root or when apt-get is missing; the ROS tests then skip themselves.
# Usage: bash tools/install_ros1_debian.sh
set -uo pipefail

PACKAGES=(
  python3-rosmaster python3-rospy python3-rostopic python3-rosgraph python3-roslib python3-genpy
  python3-std-msgs python3-geometry-msgs python3-sensor-msgs python3-visualization-msgs
)

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install_ros1_debian: no apt-get here; skipping (the ROS 1 tests will skip)"
  exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install_ros1_debian: not root; skipping ${missing[*]} (the ROS 1 tests will skip)"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
# a fresh machine has no package lists, an old one may have stale lists: update when needed
if ! apt-cache show "${missing[0]}" >/dev/null 2>&1 || ! install; then
  apt-get update -qq || { echo "install_ros1_debian: apt-get update failed; the ROS 1 tests will skip"; exit 0; }
  if ! install; then
    echo "install_ros1_debian: apt-get install failed for ${missing[*]}; the ROS 1 tests will skip"
    exit 0
  fi
fi
echo "install_ros1_debian: installed ${missing[*]}"
