#!/usr/bin/env bash
# Install Debian's ROS 1 (Noetic-era, ros_comm 1.15) Python packages so that the ROS 1 node and its
# end-to-end test can run: rosmaster, rospy and the message packages the node uses.
# Idempotent; skips cleanly when not root or without apt-get (see tools/apt_install.sh).
# Usage: bash tools/install_ros1_debian.sh
exec bash "$(dirname "$0")/apt_install.sh" install_ros1_debian \
  python3-rosmaster python3-rospy python3-rostopic python3-rosgraph python3-roslib python3-genpy \
  python3-std-msgs python3-geometry-msgs python3-sensor-msgs python3-visualization-msgs
