"""Reading and writing point clouds and KITTI files."""
