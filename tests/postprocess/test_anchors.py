import numpy as np

from pointpillars_trt.postprocess import generate_anchors


def test_openpcdet_anchor_grid(kitti_config):
    """align_center False: x = i * 69.12 / 215, y = -39.68 + j * 79.36 / 247 (README of checkpoint formats)."""
    a = generate_anchors(kitti_config)
    nx, ny = kitti_config.feature_map_size
    assert a.shape == (ny, nx, 6, 7)
    r = kitti_config.voxel.point_cloud_range
    np.testing.assert_allclose(a[0, :, 0, 0], r[0] + np.arange(nx) * (r[3] - r[0]) / (nx - 1), atol=1e-4)
    np.testing.assert_allclose(a[:, 0, 0, 1], r[1] + np.arange(ny) * (r[4] - r[1]) / (ny - 1), atol=1e-4)
    # class-major then rotation; z is the centre: bottom + h / 2
    car, ped = kitti_config.anchors[0], kitti_config.anchors[1]
    np.testing.assert_allclose(a[5, 7, 0, 2:], [car.bottom_height + car.sizes[0][2] / 2, *car.sizes[0], 0.0], atol=1e-6)
    np.testing.assert_allclose(a[5, 7, 1, 6], car.rotations[1], atol=1e-6)
    np.testing.assert_allclose(a[5, 7, 2, 3:6], ped.sizes[0], atol=1e-6)


def test_cell_centred_anchors_and_wlh_layout(kitti_config):
    cfg = kitti_config.replace(head={"anchor_align_center": True, "box_layout": "wlh_cw"})
    a = generate_anchors(cfg)
    r = cfg.voxel.point_cloud_range
    nx, _ = cfg.feature_map_size
    step = (r[3] - r[0]) / nx
    np.testing.assert_allclose(a[0, :3, 0, 0], r[0] + (np.arange(3) + 0.5) * step, atol=1e-5)
    l, w, h = cfg.anchors[0].sizes[0]
    np.testing.assert_allclose(a[0, 0, 0, 3:6], [w, l, h], atol=1e-6)


def test_multiple_sizes_per_class(example_config):
    a = generate_anchors(example_config)
    assert a.shape[2] == 8
    sizes = [tuple(np.round(s, 3)) for s in a[0, 0, :, 3:6]]
    assert sizes[0] == sizes[1] == (4.6, 1.9, 1.7) and sizes[2] == (8.0, 2.5, 3.0) and sizes[4] == (0.8, 0.7, 1.75)
