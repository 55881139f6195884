"""PointCloud2 layouts -> float32 [N, 4]: field order, extra fields, padding, byte order, intensity."""

import numpy as np
import pytest

from pointpillars_trt.errors import PointCloudError
from pointpillars_trt.ros.cloud import (
    CloudData,
    Header,
    PointFieldData,
    Stamp,
    cloud_dtype,
    cloud_to_points,
    parse_intensity_scale,
    points_to_cloud,
)

HDR = Header(Stamp(12, 345), "velodyne")
XYZ_FIELDS = [PointFieldData("x", 0, 7), PointFieldData("y", 4, 7), PointFieldData("z", 8, 7)]


def raw_cloud(records: np.ndarray, fields, height=1, row_padding=0, big=False) -> CloudData:
    """A cloud from a hand-made structured array (independent of points_to_cloud)."""
    n = records.shape[0]
    width = n // height
    step = records.dtype.itemsize
    raw = records.view(np.uint8).reshape(height, width * step)
    if row_padding:
        raw = np.concatenate([raw, np.full((height, row_padding), 0xAB, np.uint8)], axis=1)
    return CloudData(HDR, height, width, tuple(fields), big, step, width * step + row_padding, raw.tobytes())


def sample_points(n=50, seed=0):
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-40, 40, size=(n, 4)).astype(np.float32)
    pts[:, 3] = rng.uniform(0, 1, n)
    return pts


def test_xyzi_round_trip():
    pts = sample_points()
    cloud = points_to_cloud(pts, HDR)
    assert cloud.point_step == 16 and cloud.row_step == 16 * len(pts) and len(cloud.data) == 16 * len(pts)
    out = cloud_to_points(cloud)
    assert out.dtype == np.float32 and out.shape == (len(pts), 4)
    np.testing.assert_array_equal(out, pts)


def test_any_field_order_extra_fields_and_padding():
    """Ouster-like layout: fields out of order, a ring and a float64 time, 7 padding bytes per point."""
    pts = sample_points()
    dt = np.dtype({
        "names": ["ring", "refl", "z", "x", "y", "t"],
        "formats": ["<u2", "u1", "<f4", "<f4", "<f4", "<f8"],
        "offsets": [0, 2, 4, 8, 12, 16],
        "itemsize": 31,
    })
    rec = np.zeros(len(pts), dtype=dt)
    rec["x"], rec["y"], rec["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
    rec["ring"] = np.arange(len(pts)) % 64
    rec["refl"] = (pts[:, 3] * 255).astype(np.uint8)
    rec["t"] = 1e9
    fields = [
        PointFieldData("ring", 0, 4), PointFieldData("reflectivity", 2, 2), PointFieldData("z", 4, 7),
        PointFieldData("x", 8, 7), PointFieldData("y", 12, 7), PointFieldData("t", 16, 8),
    ]
    cloud = raw_cloud(rec, fields)
    out = cloud_to_points(cloud, intensity_field="reflectivity", intensity_scale=1 / 255)
    np.testing.assert_array_equal(out[:, :3], pts[:, :3])
    np.testing.assert_allclose(out[:, 3], rec["refl"] / 255.0, rtol=1e-6)
    # without an intensity name it finds nothing called intensity/i/reflectance: zeros
    np.testing.assert_array_equal(cloud_to_points(cloud)[:, 3], 0.0)


def test_big_endian_and_float64():
    pts = sample_points()
    dt = np.dtype({"names": ["x", "y", "z", "intensity"], "formats": [">f8", ">f8", ">f8", ">f4"],
                   "offsets": [0, 8, 16, 24], "itemsize": 32})
    rec = np.zeros(len(pts), dtype=dt)
    for i, name in enumerate(dt.names):
        rec[name] = pts[:, i]
    fields = [PointFieldData("x", 0, 8), PointFieldData("y", 8, 8), PointFieldData("z", 16, 8), PointFieldData("intensity", 24, 7)]
    out = cloud_to_points(raw_cloud(rec, fields, big=True))
    np.testing.assert_array_equal(out, pts)
    # points_to_cloud writes the same big-endian layout
    cloud = points_to_cloud(pts, HDR, fields, point_step=32, is_bigendian=True)
    assert cloud.is_bigendian
    np.testing.assert_array_equal(cloud_to_points(cloud), pts)


@pytest.mark.parametrize("scale, expect_div", [(1 / 255, 255.0), ("auto", 255.0), (1.0, 1.0)])
def test_intensity_0_255(scale, expect_div):
    pts = sample_points()
    pts[:, 3] = np.round(pts[:, 3] * 255)
    cloud = points_to_cloud(pts, HDR)
    out = cloud_to_points(cloud, intensity_scale=scale)
    np.testing.assert_allclose(out[:, 3], pts[:, 3] / expect_div, rtol=1e-6)


def test_auto_scale_leaves_0_1_intensity_alone():
    pts = sample_points()
    np.testing.assert_array_equal(cloud_to_points(points_to_cloud(pts, HDR), intensity_scale="auto"), pts)


def test_uint16_intensity_field_named_i():
    pts = sample_points()
    fields = (PointFieldData("x", 0, 7), PointFieldData("y", 4, 7), PointFieldData("z", 8, 7), PointFieldData("i", 12, 4))
    cloud = points_to_cloud(np.c_[pts[:, :3], np.arange(len(pts)) * 1000.0], HDR, fields)
    assert cloud.point_step == 14
    np.testing.assert_array_equal(cloud_to_points(cloud)[:, 3], np.arange(len(pts)) * 1000.0)


def test_missing_intensity_gives_zeros():
    pts = sample_points()
    fields = (PointFieldData("x", 0, 7), PointFieldData("y", 4, 7), PointFieldData("z", 8, 7))
    out = cloud_to_points(points_to_cloud(pts[:, :3], HDR, fields))
    np.testing.assert_array_equal(out[:, :3], pts[:, :3])
    np.testing.assert_array_equal(out[:, 3], 0.0)


def test_organized_cloud_with_row_padding_keeps_nan_rows():
    pts = sample_points(48)
    pts[[3, 17]] = np.nan
    dt = np.dtype({"names": ["x", "y", "z", "intensity"], "formats": ["<f4"] * 4, "offsets": [0, 4, 8, 16], "itemsize": 32})
    rec = np.zeros(len(pts), dtype=dt)
    for i, name in enumerate(dt.names):
        rec[name] = pts[:, i]
    fields = [PointFieldData(n, o, 7) for n, o in zip(dt.names, (0, 4, 8, 16))]
    cloud = raw_cloud(rec, fields, height=4, row_padding=24)
    assert cloud.row_step == 12 * 32 + 24
    out = cloud_to_points(cloud)
    np.testing.assert_array_equal(out, pts)  # NaN == NaN for assert_array_equal


@pytest.mark.parametrize("offset", [0, 4])
def test_xyzi_side_by_side_are_copied_as_one_unit_in_any_row_layout(offset):
    """x, y, z, intensity as float32 at four consecutive offsets (the 16-byte copy): rows with padding,
    a field before them, NaN rows, and the bytes around each point left alone."""
    pts = sample_points(48)
    pts[[3, 17]] = np.nan
    names = ["x", "y", "z", "intensity"]
    dt = np.dtype({"names": ["ring", *names], "formats": ["<u2"] + ["<f4"] * 4,
                   "offsets": [20 if offset == 0 else 0] + [offset + 4 * i for i in range(4)], "itemsize": 22})
    rec = np.zeros(len(pts), dtype=dt)
    rec["ring"] = np.arange(len(pts)) % 16
    for i, name in enumerate(names):
        rec[name] = pts[:, i]
    fields = [PointFieldData(n, dt.fields[n][1], 4 if n == "ring" else 7) for n in dt.names]
    out = cloud_to_points(raw_cloud(rec, fields, height=4, row_padding=6))
    np.testing.assert_array_equal(out, pts)


def test_decodes_into_a_given_array():
    pts, other = sample_points(30), sample_points(30, seed=1)
    buf = np.full((30, 4), 7.0, np.float32)
    assert cloud_to_points(points_to_cloud(pts, HDR), out=buf) is buf
    np.testing.assert_array_equal(buf, pts)
    cloud_to_points(points_to_cloud(other[:, :3], HDR, XYZ_FIELDS), out=buf)  # no intensity field: zeros, not the old values
    np.testing.assert_array_equal(buf[:, :3], other[:, :3])
    assert not buf[:, 3].any()
    for bad in (np.zeros((29, 4), np.float32), np.zeros((30, 4), np.float64), np.zeros((4, 30), np.float32).T):
        with pytest.raises(PointCloudError, match=r"cloud stamp .* needs a C-contiguous float32 \[30, 4\] array"):
            cloud_to_points(points_to_cloud(pts, HDR), out=bad)


def test_empty_cloud():
    cloud = points_to_cloud(np.zeros((0, 4), np.float32), HDR)
    assert cloud.num_points == 0
    assert cloud_to_points(cloud).shape == (0, 4)


def test_missing_xyz_names_the_fields():
    fields = (PointFieldData("a", 0, 7), PointFieldData("b", 4, 7), PointFieldData("z", 8, 7))
    cloud = CloudData(HDR, 1, 2, fields, False, 12, 24, bytes(24))
    with pytest.raises(PointCloudError, match=r"no field\(s\) \['x', 'y'\].*\['a', 'b', 'z'\]"):
        cloud_to_points(cloud)


def test_truncated_data():
    cloud = points_to_cloud(sample_points(10), HDR)
    short = CloudData(HDR, 1, 10, cloud.fields, False, 16, 160, bytes(cloud.data)[:150])
    with pytest.raises(PointCloudError, match="150 bytes"):
        cloud_to_points(short)


def test_bad_layouts():
    with pytest.raises(PointCloudError, match="unknown datatype 9"):
        cloud_dtype([PointFieldData("x", 0, 9)], 16, False)
    with pytest.raises(PointCloudError, match="does not fit in point_step 8"):
        cloud_dtype([PointFieldData("x", 0, 7), PointFieldData("y", 6, 7)], 8, False)
    with pytest.raises(PointCloudError, match="point_step must be positive"):
        cloud_dtype([PointFieldData("x", 0, 7)], 0, False)
    with pytest.raises(PointCloudError, match="no intensity field 'refl'"):
        cloud_to_points(points_to_cloud(sample_points(3), HDR), intensity_field="refl")


def test_parse_intensity_scale():
    assert parse_intensity_scale("1/255") == pytest.approx(1 / 255)
    assert parse_intensity_scale("AUTO") == "auto"
    assert parse_intensity_scale(0.5) == 0.5
    with pytest.raises(ValueError):
        parse_intensity_scale("bright")


def test_stamp():
    s = Stamp.from_nanoseconds(1_700_000_000_123_456_789)
    assert (s.sec, s.nsec) == (1_700_000_000, 123_456_789)
    assert s.nanoseconds == 1_700_000_000_123_456_789 and str(s) == "1700000000.123456789"


# -- issue 14 items 5, 12, 13: intensity_scale auto by datatype, bad scales, field names in errors ----

XYZ_F32 = (PointFieldData("x", 0, 7), PointFieldData("y", 4, 7), PointFieldData("z", 8, 7))


@pytest.mark.parametrize(
    "datatype, top, divisor",
    [(2, 254, 255.0), (2, 1, 255.0), (4, 254, 65535.0), (4, 65535, 65535.0), (7, 254.0, 255.0), (7, 0.9, 1.0), (8, 3000.0, 255.0)],
)
def test_auto_scale_goes_by_datatype_and_maximum(kitti_points, datatype, top, divisor):
    """uint8 / 255, uint16 / 65535 whatever the frame's maximum; floats / 255 only above 1."""
    pts = kitti_points[:500].copy()
    pts[:, 3] = np.round(pts[:, 3] / max(pts[:, 3].max(), 1e-6) * top, 0 if datatype in (2, 4) else 6)
    fields = XYZ_F32 + (PointFieldData("intensity", 12, datatype),)
    out = cloud_to_points(points_to_cloud(pts, HDR, fields), intensity_scale="auto")
    np.testing.assert_allclose(out[:, 3], pts[:, 3] / divisor, rtol=1e-6)


def test_auto_float_scale_is_configurable():
    pts = sample_points()
    pts[:, 3] *= 4000
    out = cloud_to_points(points_to_cloud(pts, HDR), intensity_scale="auto", auto_float_scale="1/65535")
    np.testing.assert_allclose(out[:, 3], pts[:, 3] / 65535, rtol=1e-6)


@pytest.mark.parametrize("value", ["nan", float("nan"), "inf", "-1", 0, "0/1", "1/0", True])
def test_nan_infinite_or_non_positive_scales_are_refused(value):
    with pytest.raises(ValueError, match="intensity scale must be"):
        parse_intensity_scale(value)
    with pytest.raises(PointCloudError, match="intensity scale must be"):
        cloud_to_points(points_to_cloud(sample_points(3), HDR), intensity_scale=value)


def test_layout_errors_name_the_roles_not_c0_c3():
    fields = XYZ_F32 + (PointFieldData("reflectivity", 20, 7),)
    cloud = CloudData(HDR, 1, 2, fields, False, 16, 32, b"\0" * 32)
    with pytest.raises(PointCloudError, match=r"field 'intensity \(reflectivity\)' at offset 20"):
        cloud_to_points(cloud, intensity_field="reflectivity")
    bad_z = CloudData(HDR, 1, 2, XYZ_F32[:2] + (PointFieldData("z", 8, 9),), False, 16, 32, b"\0" * 32)
    with pytest.raises(PointCloudError, match=r"field 'z' has unknown datatype 9"):
        cloud_to_points(bad_z)
