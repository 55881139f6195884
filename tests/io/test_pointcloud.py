"""Point-cloud file I/O: every format round-trips, malformed files fail with messages naming the file."""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzzing import FUZZ, near, reads_or_typed_error
from tests.helpers import KITTI
from pointpillars_trt.errors import InputWarning, PointCloudError
from pointpillars_trt.io.pointcloud import (
    SUPPORTED_SUFFIXES,
    array_to_points,
    load_points,
    lzf_decompress,
    save_points,
    validate_points,
)

KITTI_FRAME = KITTI / "cuda_pointpillars" / "velodyne_reduced" / "000000.bin"


@pytest.fixture
def cloud() -> np.ndarray:
    rng = np.random.default_rng(7)
    xyz = rng.uniform(-50, 50, size=(257, 3))
    return np.concatenate([xyz, rng.uniform(0, 1, (257, 1))], axis=1).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# writers of the formats save_points does not produce (test-side, independent of the readers)


def lzf_compress(data: bytes) -> bytes:
    """Greedy liblzf-format compressor: literal runs (<= 32 bytes) and back references (3..264 bytes)."""
    out, literal, table, i = bytearray(), bytearray(), {}, 0

    def flush():
        for k in range(0, len(literal), 32):
            chunk = literal[k : k + 32]
            out.append(len(chunk) - 1)
            out.extend(chunk)
        literal.clear()

    while i < len(data):
        key = data[i : i + 3]
        ref = table.get(key) if len(key) == 3 else None
        if len(key) == 3:
            table[key] = i
        if ref is not None and i - ref <= 8192:
            length, limit = 3, min(264, len(data) - i)
            while length < limit and data[ref + length] == data[i + length]:
                length += 1
            flush()
            distance, code = i - ref - 1, length - 2
            if code < 7:
                out.append((code << 5) | (distance >> 8))
            else:
                out.extend([(7 << 5) | (distance >> 8), code - 7])
            out.append(distance & 0xFF)
            i += length
        else:
            literal.append(data[i])
            i += 1
    flush()
    return bytes(out)


def pcd_bytes(fields, columns, data="ascii", width=None, height=1, points=None) -> bytes:
    """A PCD file. ``fields``: ``[(name, TYPE, SIZE, COUNT)]``; ``columns[name]``: ``[N]`` or ``[N, COUNT]``."""
    n = len(next(iter(columns.values())))
    dtype = np.dtype(
        [(name, np.dtype(f"<{ {'F': 'f', 'I': 'i', 'U': 'u'}[t]}{s}"), (c,)) for name, t, s, c in fields]
    )
    table = np.zeros(n, dtype=dtype)
    for name, *_ in fields:
        table[name] = np.asarray(columns[name]).reshape(n, -1)
    header = (
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\n"
        f"FIELDS {' '.join(f[0] for f in fields)}\nSIZE {' '.join(str(f[2]) for f in fields)}\n"
        f"TYPE {' '.join(f[1] for f in fields)}\nCOUNT {' '.join(str(f[3]) for f in fields)}\n"
        f"WIDTH {width if width is not None else n}\nHEIGHT {height}\nVIEWPOINT 0 0 0 1 0 0 0\n"
        f"POINTS {points if points is not None else n}\nDATA {data}\n"
    ).encode()
    if data == "ascii":
        rows = [" ".join(" ".join(repr(v.item()) for v in table[i][name]) for name, *_ in fields) for i in range(n)]
        return header + ("\n".join(rows) + "\n").encode()
    if data == "binary":
        return header + table.tobytes()
    soa = b"".join(np.ascontiguousarray(table[name]).tobytes() for name, *_ in fields)
    packed = lzf_compress(soa)
    return header + struct.pack("<II", len(packed), len(soa)) + packed


PLY_CODES = {"float": "f4", "double": "f8", "uchar": "u1", "ushort": "u2", "int": "i4"}


def ply_bytes(fmt, props, columns, faces_before=False, faces_after=True) -> bytes:
    """A PLY file with a vertex element (``props``: ``[(name, ply type)]``) and a face element with a list."""
    n = len(next(iter(columns.values())))
    faces = [[0, 1, 2], [2, 3, 0, 1]]
    face_header = "element face 2\nproperty list uchar int vertex_indices\nproperty uchar flags\n"
    header = f"ply\nformat {fmt} 1.0\ncomment test file\n"
    header += face_header if faces_before else ""
    header += f"element vertex {n}\n" + "".join(f"property {t} {name}\n" for name, t in props)
    header += face_header if faces_after else ""
    header += "end_header\n"
    if fmt == "ascii":
        vertex_rows = [" ".join(repr(np.asarray(columns[name][i]).item()) for name, _ in props) for i in range(n)]
        face_rows = [f"{len(f)} {' '.join(map(str, f))} 5" for f in faces]
        rows = (face_rows if faces_before else []) + vertex_rows + (face_rows if faces_after else [])
        return (header + "\n".join(rows) + "\n").encode()
    order = "<" if fmt == "binary_little_endian" else ">"
    table = np.zeros(n, dtype=[(name, order + PLY_CODES[t]) for name, t in props])
    for name, _ in props:
        table[name] = columns[name]
    face_data = b"".join(struct.pack(f"{order}B{len(f)}iB", len(f), *f, 5) for f in faces)
    body = (face_data if faces_before else b"") + table.tobytes() + (face_data if faces_after else b"")
    return header.encode() + body


def write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("suffix", SUPPORTED_SUFFIXES)
def test_save_load_round_trip(tmp_path, cloud, suffix):
    path = save_points(tmp_path / f"cloud{suffix}", cloud)
    loaded = load_points(path)
    assert loaded.dtype == np.float32 and loaded.shape == cloud.shape
    assert loaded.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(loaded, cloud)


def test_suffix_is_case_insensitive(tmp_path, cloud):
    np.testing.assert_array_equal(load_points(save_points(tmp_path / "CLOUD.BIN", cloud)), cloud)


def test_real_kitti_frame_loads():
    if not KITTI_FRAME.is_file():
        pytest.skip(f"{KITTI_FRAME} not found")
    points = load_points(KITTI_FRAME)
    assert points.shape == (KITTI_FRAME.stat().st_size // 16, 4)
    assert points.dtype == np.float32 and points.flags["C_CONTIGUOUS"]
    assert 0.0 <= points[:, 3].min() and points[:, 3].max() <= 1.0
    assert points[:, 0].min() > -1 and points[:, 0].max() < 90  # camera-FOV crop: all in front


# --------------------------------------------------------------------------------------------------
# load_points / validate_points


def test_missing_file_is_named(tmp_path):
    with pytest.raises(PointCloudError, match="nope.bin.*does not exist"):
        load_points(tmp_path / "nope.bin")


def test_directory_is_rejected(tmp_path):
    (tmp_path / "dir.pcd").mkdir()
    with pytest.raises(PointCloudError, match="is not a file"):
        load_points(tmp_path / "dir.pcd")


def test_unknown_suffix_lists_supported(tmp_path):
    path = write(tmp_path, "cloud.las", b"1234")
    with pytest.raises(PointCloudError, match=r"cloud\.las.*'\.las'.*\.bin, \.npy, \.pcd, \.ply"):
        load_points(path)
    with pytest.raises(PointCloudError, match="unsupported"):
        save_points(tmp_path / "out.txt", np.zeros((1, 4), np.float32))


def test_bin_size_not_multiple_of_16(tmp_path, cloud):
    path = write(tmp_path, "bad.bin", cloud.tobytes() + b"\0" * 12)
    size = len(cloud.tobytes()) + 12
    with pytest.raises(PointCloudError, match=rf"bad\.bin.*size {size} bytes.*12 trailing bytes"):
        load_points(path)


def test_empty_file_is_empty_cloud(tmp_path):
    for suffix in SUPPORTED_SUFFIXES:
        path = save_points(tmp_path / f"empty{suffix}", np.zeros((0, 4), np.float32))
        points = load_points(path)
        assert points.shape == (0, 4) and points.dtype == np.float32 and points.flags["C_CONTIGUOUS"]
    zero_bytes = write(tmp_path, "dropout.bin", b"")
    assert load_points(zero_bytes).shape == (0, 4)


def test_all_rows_dropped_is_empty_cloud(tmp_path):
    path = save_points(tmp_path / "nan.pcd", np.full((3, 4), np.nan, np.float32))
    assert load_points(path, nonfinite="drop").shape == (0, 4)
    with pytest.raises(PointCloudError, match=r"nan\.pcd: 3 of 3 rows"):
        load_points(path)


def test_nonfinite_rows_error_or_drop(tmp_path, cloud):
    cloud[[5, 9, 200], [0, 3, 2]] = [np.nan, np.inf, -np.inf]
    path = save_points(tmp_path / "nan.pcd", cloud)
    with pytest.raises(PointCloudError, match=r"nan\.pcd: 3 of 257 rows.*first bad row index 5"):
        load_points(path)
    dropped = load_points(path, nonfinite="drop")
    np.testing.assert_array_equal(dropped, np.delete(cloud, [5, 9, 200], axis=0))


def test_validate_points_checks():
    good = np.ones((3, 4), np.float32)
    assert validate_points(good) is not None
    with pytest.raises(PointCloudError, match=r"frame7: expected points of shape \[N, 4\], got \[3, 3\]"):
        validate_points(np.ones((3, 3), np.float32), "frame7")
    with pytest.raises(PointCloudError, match=r"float32 points, got float64; convert with points\.astype"):
        validate_points(np.ones((3, 4), np.float64))
    with pytest.raises(PointCloudError, match=r"got \[3, 5\]; pass the x, y, z, intensity columns"):
        validate_points(np.ones((3, 5), np.float32))
    with pytest.raises(PointCloudError, match="numpy array"):
        validate_points([[1, 2, 3, 4]])
    with pytest.raises(PointCloudError, match="<array>: empty point cloud"):
        validate_points(np.zeros((0, 4), np.float32))
    with pytest.raises(PointCloudError, match="empty point cloud.*all 3 rows"):
        validate_points(np.full((3, 4), np.nan, np.float32), nonfinite="drop")
    with pytest.raises(ValueError, match="nonfinite must be one of"):
        validate_points(good, nonfinite="keep")
    strided = np.ones((6, 4), np.float32)[::2]
    assert validate_points(strided).flags["C_CONTIGUOUS"]


# --------------------------------------------------------------------------------------------------
# .npy


def test_npy_three_columns_get_zero_intensity(tmp_path, cloud):
    path = tmp_path / "xyz.npy"
    np.save(path, cloud[:, :3].astype(np.float64))
    points = load_points(path)
    np.testing.assert_array_equal(points[:, :3], cloud[:, :3])
    assert not points[:, 3].any()


def test_npy_extra_columns_and_int_dtype(tmp_path):
    wide = np.arange(30, dtype=np.int16).reshape(5, 6)
    np.save(tmp_path / "wide.npy", wide)
    np.testing.assert_array_equal(load_points(tmp_path / "wide.npy"), wide[:, :4].astype(np.float32))


def test_npy_structured_array(tmp_path, cloud):
    table = np.zeros(len(cloud), dtype=[("ring", "u2"), ("intensity", "f4"), ("z", "f4"), ("y", "f8"), ("x", "f4")])
    for i, name in enumerate("xyz"):
        table[name] = cloud[:, i]
    table["intensity"] = cloud[:, 3]
    np.save(tmp_path / "structured.npy", table)
    np.testing.assert_array_equal(load_points(tmp_path / "structured.npy"), cloud)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.ones((4, 4), np.complex64), "unsupported dtype complex64"),
        (np.ones((4, 4), bool), "unsupported dtype bool"),
        (np.ones((4, 2), np.float32), r"shape \[N, >=3\], got \[4, 2\]"),
        (np.ones(8, np.float32), r"shape \[N, >=3\], got \[8\]"),
    ],
)
def test_npy_rejected(tmp_path, array, message):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(PointCloudError, match=rf"bad\.npy: .*{message}"):
        load_points(tmp_path / "bad.npy")


def test_npy_object_dtype_rejected(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([[1, "a", None, 2]], dtype=object), allow_pickle=True)
    with pytest.raises(PointCloudError, match=r"obj\.npy: cannot read \.npy"):
        load_points(tmp_path / "obj.npy")
    with pytest.raises(PointCloudError, match="unsupported dtype object"):
        array_to_points(np.array([[1, "a", None, 2]], dtype=object))


# --------------------------------------------------------------------------------------------------
# LZF


def test_lzf_decompress_handcrafted_stream():
    # literal "abc"; back ref len 3 dist 3 ("abc"); overlapping ref len 8 dist 1 ("cccccccc");
    # long ref (len code 7 + 3 = 10, +2 = 12) dist 2 -> "cccccccccccc"; literal "Z"
    stream = bytes([2]) + b"abc" + bytes([1 << 5, 2]) + bytes([6 << 5, 0]) + bytes([7 << 5, 3, 1]) + bytes([0]) + b"Z"
    expected = b"abc" + b"abc" + b"c" * 8 + b"c" * 12 + b"Z"
    assert lzf_decompress(stream, len(expected)) == expected


def test_lzf_far_back_reference():
    # distance 300 needs the high bits of the control byte: ((c & 31) << 8) + next + 1
    literal = bytes(range(256)) + bytes(range(44))  # 300 bytes
    stream = b"".join(bytes([len(c) - 1]) + c for c in (literal[k : k + 32] for k in range(0, 300, 32)))
    distance = 300 - 1
    stream += bytes([(2 << 5) | (distance >> 8), distance & 0xFF])  # 4 bytes from 300 back
    assert lzf_decompress(stream, 304) == literal + literal[:4]


@pytest.mark.parametrize(
    "stream, message",
    [
        (bytes([5]) + b"ab", "literal run past the end"),
        (bytes([1 << 5]), "truncated"),
        (bytes([0]) + b"a" + bytes([1 << 5, 5]), "before the start"),
        (bytes([0]) + b"a", "decompressed to 1 bytes, header says 2"),
    ],
)
def test_lzf_corrupt_streams(stream, message):
    with pytest.raises(PointCloudError, match=f"x.pcd: LZF.*{message}"):
        lzf_decompress(stream, 2, "x.pcd")


def test_lzf_round_trip_of_test_compressor():
    data = np.random.default_rng(1).integers(0, 4, 5000, dtype=np.uint8).tobytes() + b"\0" * 3000
    packed = lzf_compress(data)
    assert len(packed) < len(data)
    assert lzf_decompress(packed, len(data)) == data


# --------------------------------------------------------------------------------------------------
# .pcd

XYZI = [("x", "F", 4, 1), ("y", "F", 4, 1), ("z", "F", 4, 1), ("intensity", "F", 4, 1)]


def _columns(cloud, intensity_name="intensity"):
    return {"x": cloud[:, 0], "y": cloud[:, 1], "z": cloud[:, 2], intensity_name: cloud[:, 3]}


@pytest.mark.parametrize("data", ["ascii", "binary", "binary_compressed"])
def test_pcd_encodings(tmp_path, cloud, data):
    path = write(tmp_path, "c.pcd", pcd_bytes(XYZI, _columns(cloud), data))
    np.testing.assert_array_equal(load_points(path), cloud)


@pytest.mark.parametrize("data", ["ascii", "binary", "binary_compressed"])
def test_pcd_field_order_extra_fields_counts(tmp_path, cloud, data):
    n = len(cloud)
    fields = [
        ("rgb", "U", 4, 1), ("z", "F", 8, 1), ("normal", "F", 4, 3), ("reflectance", "U", 1, 1),
        ("x", "F", 4, 1), ("_", "U", 1, 2), ("y", "F", 4, 1), ("ring", "U", 2, 1),
    ]  # fmt: skip
    reflect = np.arange(n) % 256
    columns = {
        "rgb": np.arange(n), "z": cloud[:, 2].astype(np.float64), "normal": np.ones((n, 3)),
        "reflectance": reflect, "x": cloud[:, 0], "_": np.zeros((n, 2)), "y": cloud[:, 1], "ring": np.arange(n) % 64,
    }  # fmt: skip
    points = load_points(write(tmp_path, "c.pcd", pcd_bytes(fields, columns, data)))
    np.testing.assert_array_equal(points[:, :3], cloud[:, :3])
    np.testing.assert_array_equal(points[:, 3], reflect.astype(np.float32))


@pytest.mark.parametrize("name, kind, size", [("i", "U", 2), ("Intensity", "F", 4), (None, None, None)])
def test_pcd_intensity_names_and_missing(tmp_path, cloud, name, kind, size):
    fields = XYZI[:3] + ([(name, kind, size, 1)] if name else [])
    values = (np.arange(len(cloud)) * 100 % 65536).astype(np.float32) if kind == "U" else cloud[:, 3]
    columns = {"x": cloud[:, 0], "y": cloud[:, 1], "z": cloud[:, 2], **({name: values} if name else {})}
    points = load_points(write(tmp_path, "c.pcd", pcd_bytes(fields, columns, "binary")))
    np.testing.assert_array_equal(points[:, 3], values if name else 0.0)


def test_pcd_organized_cloud_with_nan(tmp_path, cloud):
    cloud = cloud[:256].copy()
    cloud[::4, :3] = np.nan
    path = write(tmp_path, "org.pcd", pcd_bytes(XYZI, _columns(cloud), "binary_compressed", width=16, height=16))
    with pytest.raises(PointCloudError, match=r"org\.pcd: 64 of 256 rows.*index 0"):
        load_points(path)
    np.testing.assert_array_equal(load_points(path, nonfinite="drop"), cloud[np.isfinite(cloud).all(1)])


def test_real_frame_through_compressed_pcd(tmp_path):
    if not KITTI_FRAME.is_file():
        pytest.skip(f"{KITTI_FRAME} not found")
    frame = load_points(KITTI_FRAME)[:3000]
    path = write(tmp_path, "kitti.pcd", pcd_bytes(XYZI, _columns(frame), "binary_compressed"))
    np.testing.assert_array_equal(load_points(path), frame)


@pytest.mark.parametrize(
    "kwargs, cut, message",
    [
        ({"width": 10}, 0, r"WIDTH 10 x HEIGHT 1 != POINTS 257"),
        ({"data": "binary"}, 100, r"binary data holds \d+ bytes, 257 points x 16 bytes need 4112"),
        ({"data": "ascii"}, 100, r"ascii data has 256 rows, header says POINTS 257"),
        ({"data": "binary_compressed"}, 100, "compressed bytes, file holds"),
        ({"data": "binary_lzma"}, 0, "unsupported PCD DATA 'binary_lzma'"),
    ],
)
def test_pcd_malformed(tmp_path, cloud, kwargs, cut, message):
    data = pcd_bytes(XYZI, _columns(cloud), **kwargs)
    path = write(tmp_path, "bad.pcd", data[: len(data) - cut])
    with pytest.raises(PointCloudError, match=rf"bad\.pcd: .*{message}"):
        load_points(path)


def test_pcd_ascii_ragged_or_non_numeric(tmp_path, cloud):
    data = pcd_bytes(XYZI, _columns(cloud[:3]), "ascii")
    rows = data.split(b"DATA ascii\n")[1].splitlines()
    ragged = data.replace(rows[1], rows[1].rsplit(b" ", 1)[0])
    with pytest.raises(PointCloudError, match="ascii data has 11 values, expected 3 rows x 4"):
        load_points(write(tmp_path, "ragged.pcd", ragged))
    with pytest.raises(PointCloudError, match="non-number"):
        load_points(write(tmp_path, "word.pcd", data.replace(rows[2], b"1 2 3 abc")))


def test_pcd_header_problems(tmp_path, cloud):
    no_x = pcd_bytes([("a", "F", 4, 1)] + XYZI[1:], {"a": cloud[:, 0], **_columns(cloud)}, "binary")
    with pytest.raises(PointCloudError, match=r"no field\(s\) \['x'\]"):
        load_points(write(tmp_path, "nox.pcd", no_x))
    bad_type = pcd_bytes(XYZI, _columns(cloud), "binary").replace(b"TYPE F F F F", b"TYPE F F F X")
    with pytest.raises(PointCloudError, match="unsupported TYPE X SIZE 4"):
        load_points(write(tmp_path, "type.pcd", bad_type))
    no_data = pcd_bytes(XYZI, _columns(cloud), "binary").split(b"DATA")[0]
    with pytest.raises(PointCloudError, match="header is not terminated"):
        load_points(write(tmp_path, "nodata.pcd", no_data))


# --------------------------------------------------------------------------------------------------
# .ply

PLY_PROPS = [("red", "uchar"), ("z", "float"), ("intensity", "ushort"), ("x", "double"), ("nx", "float"), ("y", "float")]


@pytest.mark.parametrize("fmt", ["ascii", "binary_little_endian", "binary_big_endian"])
@pytest.mark.parametrize("faces_before", [False, True])
def test_ply_formats_orders_and_extra_elements(tmp_path, cloud, fmt, faces_before):
    n = len(cloud)
    intensity = (np.arange(n) * 250 % 65536).astype(np.uint16)
    columns = {"red": np.arange(n) % 256, "z": cloud[:, 2], "intensity": intensity,
               "x": cloud[:, 0].astype(np.float64), "nx": np.zeros(n), "y": cloud[:, 1]}  # fmt: skip
    path = write(tmp_path, "c.ply", ply_bytes(fmt, PLY_PROPS, columns, faces_before=faces_before))
    points = load_points(path)
    np.testing.assert_array_equal(points[:, :3], cloud[:, :3])
    np.testing.assert_array_equal(points[:, 3], intensity.astype(np.float32))


def test_ply_without_intensity(tmp_path, cloud):
    props = [("x", "float"), ("y", "float"), ("z", "float")]
    path = write(tmp_path, "xyz.ply", ply_bytes("ascii", props, _columns(cloud), faces_after=False))
    points = load_points(path)
    np.testing.assert_array_equal(points[:, :3], cloud[:, :3])
    assert not points[:, 3].any()


def test_ply_rejections(tmp_path, cloud):
    columns = _columns(cloud)
    good = ply_bytes("binary_little_endian", [(a, "float") for a in ("x", "y", "z")], columns)
    listy = good.replace(b"property float z\n", b"property float z\nproperty list uchar int idx\n", 1)
    with pytest.raises(PointCloudError, match=r"list\.ply: PLY vertex element has list properties \['idx'\]"):
        load_points(write(tmp_path, "list.ply", listy))
    with pytest.raises(PointCloudError, match="no 'vertex' element"):
        load_points(write(tmp_path, "novertex.ply", good.replace(b"element vertex", b"element point")))
    with pytest.raises(PointCloudError, match="unsupported PLY format"):
        load_points(write(tmp_path, "fmt.ply", good.replace(b"binary_little_endian", b"binary_middle_endian")))
    with pytest.raises(PointCloudError, match="not a PLY file"):
        load_points(write(tmp_path, "magic.ply", b"plx\n" + good[4:]))
    truncated = good[: good.index(b"end_header") + 11 + 100]
    with pytest.raises(PointCloudError, match=r"trunc\.ply: PLY vertex data holds 100 bytes"):
        load_points(write(tmp_path, "trunc.ply", truncated))
    with pytest.raises(PointCloudError, match="unsupported PLY property"):
        load_points(write(tmp_path, "ptype.ply", good.replace(b"property float x", b"property float128 x")))


# --------------------------------------------------------------------------------------------------
# issue 14: fuzzing finds (typed errors, no silent misreads) and property tests


@pytest.mark.parametrize(
    "old, new, message",
    [
        (b"COUNT 1 1 1 1", b"COUNT 1 0 1 1", r"COUNT entries must be >= 1"),
        (b"COUNT 1 1 1 1", b"COUNT 1 -2 1 1", r"COUNT entries must be >= 1"),
        (b"POINTS 257", b"POINTS -1", r"POINTS must be >= 0"),
        (b"WIDTH 257", b"WIDTH -1", r"WIDTH must be >= 0"),
        (b"SIZE 4 4 4 4", b"SIZE 4 4 4 -4", r"SIZE entries must be >= 1"),
    ],
)
def test_pcd_negative_counts_are_errors(tmp_path, cloud, old, new, message):
    data = pcd_bytes(XYZI, _columns(cloud), "binary").replace(old, new)
    if old.startswith(b"WIDTH"):
        data = data.replace(b"POINTS 257\n", b"")  # WIDTH alone decides the number of points
    with pytest.raises(PointCloudError, match=rf"bad\.pcd: PCD {message}"):
        load_points(write(tmp_path, "bad.pcd", data))


def test_ply_negative_element_and_list_counts_are_errors(tmp_path, cloud):
    good = ply_bytes("binary_little_endian", [(a, "float") for a in ("x", "y", "z")], _columns(cloud), faces_before=True)
    with pytest.raises(PointCloudError, match=r"neg\.ply: PLY element count must be >= 0"):
        load_points(write(tmp_path, "neg.ply", good.replace(b"element face 2", b"element face -1")))
    signed = good.replace(b"property list uchar int", b"property list char int")
    body = signed.index(b"end_header\n") + len(b"end_header\n")
    negative = signed[:body] + b"\xff" + signed[body + 1:]  # first face: list count -1
    with pytest.raises(PointCloudError, match=r"negative list count -1"):
        load_points(write(tmp_path, "negl.ply", negative))
    with pytest.raises(PointCloudError, match=r"list count type must be an integer"):
        load_points(write(tmp_path, "fl.ply", good.replace(b"property list uchar int", b"property list float int")))


@pytest.mark.parametrize(
    "old, new",
    [(b"'descr'", b"'descr"), (b"'shape': (", b"'shape': (((("), (b"'<f4'", b"'''<f"), (b"{", b"\t"), (b"'fortran_order': False", b"'fortran_order': )")],
)
def test_npy_corrupt_header_is_typed(tmp_path, cloud, old, new):
    path = save_points(tmp_path / "c.npy", cloud)
    path.write_bytes(path.read_bytes().replace(old, new, 1))
    with pytest.raises(PointCloudError, match=r"c\.npy: cannot read \.npy point cloud"):
        load_points(path)


def test_npy_header_claiming_more_data_than_the_file(tmp_path, cloud):
    path = save_points(tmp_path / "c.npy", cloud)
    path.write_bytes(path.read_bytes().replace(b"(257, 4)", b"(2570000000, 4)"))
    with pytest.raises(PointCloudError, match=r"c\.npy: cannot read"):
        load_points(path)


@pytest.mark.parametrize("rows", [3, 4])
def test_transposed_npy_is_read_with_a_warning(tmp_path, cloud, rows):
    path = tmp_path / "t.npy"
    np.save(path, np.ascontiguousarray(cloud[:, :rows].T))
    with pytest.warns(InputWarning, match=r"t\.npy: array of shape \[%d, 257\] read as 257 points" % rows):
        points = load_points(path)
    np.testing.assert_array_equal(points[:, :rows], cloud[:, :rows])


@pytest.mark.parametrize("suffix", [".pcd", ".ply"])
def test_utf8_bom_before_header_is_read_with_a_warning(tmp_path, cloud, suffix):
    path = save_points(tmp_path / f"c{suffix}", cloud)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    with pytest.warns(InputWarning, match="byte order mark"):
        np.testing.assert_array_equal(load_points(path), cloud)


def test_load_points_nonfinite_spelling(tmp_path, cloud):
    bad = cloud.copy()
    bad[3, 1] = np.nan
    path = save_points(tmp_path / "nan.bin", bad)
    with pytest.raises(PointCloudError, match=r"pass nonfinite='drop' \(tools: --nonfinite drop\)"):
        load_points(path)
    assert load_points(path, nonfinite="drop").shape == (256, 4)
    with pytest.raises(TypeError):
        load_points(path, allow_nonfinite="drop")  # the old spelling is gone: one spelling everywhere


def _seed(suffix: str, cloud: np.ndarray) -> bytes:
    small = cloud[:5]
    if suffix == ".pcd":
        return pcd_bytes(XYZI, _columns(small), "ascii")
    if suffix == ".ply":
        return ply_bytes("binary_little_endian", [(a, "float") for a in ("x", "y", "z")], _columns(small), faces_before=True)
    return save_points(Path(tempfile.mkdtemp()) / f"seed{suffix}", small).read_bytes()


_SEED_CLOUD = np.arange(40, dtype=np.float32).reshape(10, 4)


@pytest.mark.parametrize("suffix", SUPPORTED_SUFFIXES)
def test_any_bytes_give_points_or_a_point_cloud_error(tmp_path, suffix):
    seeds = [_seed(suffix, _SEED_CLOUD)]
    if suffix == ".pcd":
        seeds.append(pcd_bytes(XYZI, _columns(_SEED_CLOUD[:5]), "binary_compressed"))
    if suffix == ".ply":
        seeds.append(ply_bytes("ascii", [(a, "float") for a in ("x", "y", "z")], _columns(_SEED_CLOUD[:5]), faces_before=True))

    @FUZZ
    @given(st.one_of(*[near(s) for s in seeds]))
    def check(data):
        points = reads_or_typed_error(load_points, tmp_path / f"f{suffix}", data)
        if points is not None:
            assert points.dtype == np.float32 and points.ndim == 2 and points.shape[1] == 4  # [0, 4]: a file with no point
            assert np.isfinite(points).all()

    check()
