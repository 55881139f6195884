"""Point-cloud files: read ``.bin`` / ``.npy`` / ``.pcd`` / ``.ply`` into one array layout, write them back.

Every reader returns ``float32 [N, 4]`` ``(x, y, z, intensity)`` in the LiDAR frame, C-contiguous,
and every cloud passes through :func:`validate_points` (non-finite rows). A file that holds no
point (a 0-byte ``.bin``, what a driver writes for a dropped sweep) is read as ``[0, 4]``: a
detector gives it an empty result with an ``EmptyFrameWarning``, like a cloud whose points all
lie outside the range.

Intensity is taken as stored (cast to float32, never rescaled): KITTI's reflectance is in
``[0, 1]``, many drivers write ``uint8``/``uint16`` intensities in ``[0, 255]``/``[0, 65535]``.
Scaling them to what a model was trained on is the caller's decision.

Formats (dispatch on the lower-cased suffix):

* ``.bin`` - KITTI velodyne: raw little-endian float32, 4 per point, no header.
* ``.npy`` - NumPy array ``[N, >=3]`` of any integer/float dtype, or a structured array with
  fields ``x, y, z`` (and optionally an intensity field).
* ``.pcd`` - PCL point cloud, ``DATA ascii``, ``binary`` or ``binary_compressed`` (LZF).
* ``.ply`` - ``ascii``, ``binary_little_endian`` or ``binary_big_endian``; the ``vertex`` element.

The intensity field is looked up by name (case-insensitive): ``intensity``, ``i``, ``reflectance``;
a cloud without one gets intensity 0.
"""

from __future__ import annotations

import struct
import tokenize
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputWarning, PointCloudError

SUPPORTED_SUFFIXES = (".bin", ".npy", ".pcd", ".ply")
INTENSITY_NAMES = ("intensity", "i", "reflectance")
NONFINITE_POLICIES = ("error", "drop")


# --------------------------------------------------------------------------------------------------
# validation


def validate_points(points: np.ndarray, source: str = "<array>", *, nonfinite: str = "error",
                    allow_empty: bool = False, check_finite: bool = True) -> np.ndarray:
    """Check a cloud and return it as a C-contiguous ``float32 [N, 4]`` array.

    Args:
        points: ``float32 [N, 4]`` ``(x, y, z, intensity)``.
        source: what the cloud came from (a file name), used in error messages.
        nonfinite: ``"error"`` raises on rows holding NaN/inf; ``"drop"`` removes those rows
            (the caller may compare lengths and log how many were dropped).
        allow_empty: return a ``[0, 4]`` array for an empty cloud (also when every row was
            dropped) instead of raising; a detector turns it into an empty result.
        check_finite: ``False`` leaves NaN/inf rows to the caller (the GPU executor counts them on
            the device and the detector applies ``nonfinite`` afterwards).

    Raises:
        PointCloudError: wrong type/shape/dtype, non-finite rows under ``"error"``, or an empty
            cloud (``N == 0``, also when every row was dropped) unless ``allow_empty``.
        ValueError: ``nonfinite`` is not one of ``"error"``, ``"drop"``.
    """
    if nonfinite not in NONFINITE_POLICIES:
        raise ValueError(f"nonfinite must be one of {NONFINITE_POLICIES}, got {nonfinite!r}")
    if not isinstance(points, np.ndarray):
        raise PointCloudError(f"{source}: expected a numpy array, got {type(points).__name__}")
    if points.ndim != 2 or points.shape[1] != 4:
        hint = ("; pass the x, y, z, intensity columns (points[:, :4] if they come first)"
                if points.ndim == 2 and points.shape[1] > 4 else "")
        raise PointCloudError(f"{source}: expected points of shape [N, 4], got {list(points.shape)}{hint}")
    if points.dtype != np.float32:
        # no silent conversion: a float64 cloud costs a copy per frame, and an integer one is often unscaled
        raise PointCloudError(f"{source}: expected float32 points, got {points.dtype}; "
                              f"convert with points.astype(np.float32)")
    if points.shape[0] == 0 and not allow_empty:
        raise PointCloudError(f"{source}: empty point cloud (0 points)")
    # one vectorized check in the common all-finite case; the per-row mask only for bad clouds
    if check_finite and not np.isfinite(points).all():
        finite = np.isfinite(points).all(axis=1)
        bad = np.flatnonzero(~finite)
        if bad.size and nonfinite == "error":
            raise PointCloudError(
                f"{source}: {bad.size} of {points.shape[0]} rows hold NaN/inf values "
                f"(first bad row index {int(bad[0])}); pass nonfinite='drop' (tools: --nonfinite drop) to remove them"
            )
        points = points[finite]
        if points.shape[0] == 0 and not allow_empty:
            raise PointCloudError(f"{source}: empty point cloud (all {bad.size} rows held NaN/inf values)")
    return np.ascontiguousarray(points, dtype=np.float32)


def _assemble(x: np.ndarray, y: np.ndarray, z: np.ndarray, intensity: np.ndarray | None) -> np.ndarray:
    """Stack ``[N]`` columns into ``float32 [N, 4]``; a missing intensity becomes zeros."""
    out = np.zeros((len(x), 4), dtype=np.float32)
    out[:, 0] = x
    out[:, 1] = y
    out[:, 2] = z
    if intensity is not None:
        out[:, 3] = intensity
    return out


def _find_intensity(names: Sequence[str]) -> str | None:
    """The first of ``names`` that is an intensity field (see ``INTENSITY_NAMES``), or None."""
    lowered = {name.lower(): name for name in reversed(list(names))}
    for candidate in INTENSITY_NAMES:
        if candidate in lowered:
            return lowered[candidate]
    return None


# --------------------------------------------------------------------------------------------------
# loading


def load_points(path: str | Path, *, nonfinite: str = "error") -> np.ndarray:
    """Read a point-cloud file into C-contiguous ``float32 [N, 4]`` ``(x, y, z, intensity)``.

    Args:
        path: a ``.bin``, ``.npy``, ``.pcd`` or ``.ply`` file (see the module docstring). A cloud
            without intensity (a 3-column ``.npy``, a PCD/PLY without an intensity field) gets
            intensity 0 in column 3; a ``.npy`` with more than 4 columns contributes its first 4.
        nonfinite: ``"error"`` (default) or ``"drop"``, as in :func:`validate_points` (and the
            tools' ``--nonfinite``). Organized PCD clouds mark missing returns with NaN: use ``"drop"``.

    A file with no point, or whose rows are all dropped under ``"drop"``, gives ``float32 [0, 4]``.

    Two unambiguous misencodings are read correctly with an :class:`InputWarning`: a UTF-8 byte
    order mark before a PCD/PLY header, and a transposed ``.npy`` (``[3 or 4, N]`` with ``N > 4``).

    A ``.bin`` file whose size is a multiple of 16 bytes but that holds something other than
    float32 x4 (for example float64 ``x, y, z, i``) cannot be told apart from a KITTI file and
    is read as garbage; only sizes that are not a multiple of 16 are detected.

    Raises:
        PointCloudError: missing/unreadable file, unknown suffix, malformed content, or non-finite
            rows under ``"error"``. The message names the file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise PointCloudError(
            f"{path}: unsupported point-cloud suffix {path.suffix!r}; supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise PointCloudError(f"{path}: point-cloud file {what}")
    if suffix == ".npy":
        points = _read_npy(path)
    else:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise PointCloudError(f"{path}: cannot read point-cloud file: {exc}") from exc
        parse = {".bin": parse_bin, ".pcd": parse_pcd, ".ply": parse_ply}[suffix]
        points = parse(data, str(path))
    return validate_points(points, str(path), nonfinite=nonfinite, allow_empty=True)


def parse_bin(data: bytes, source: str = "<bin>") -> np.ndarray:
    """KITTI ``.bin`` bytes (little-endian float32, 4 per point) -> ``float32 [N, 4]``."""
    remainder = len(data) % 16
    if remainder:
        raise PointCloudError(
            f"{source}: size {len(data)} bytes is not a multiple of 16 (float32 x, y, z, intensity); "
            f"{remainder} trailing bytes"
        )
    return np.frombuffer(data, dtype="<f4").reshape(-1, 4).astype(np.float32)


# what numpy's .npy header parser (ast.literal_eval of the header text) and memory map can raise
_NPY_ERRORS = (ValueError, TypeError, KeyError, OSError, EOFError, OverflowError, MemoryError, RecursionError,
               SyntaxError, tokenize.TokenError)


def _read_npy(path: Path) -> np.ndarray:
    """A ``.npy`` file -> ``float32 [N, 4]``. The file is memory-mapped first, so a header that
    claims more data than the file holds is an error, not an allocation of that size."""
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
        array = np.array(mapped)
    except _NPY_ERRORS as exc:
        raise PointCloudError(f"{path}: cannot read .npy point cloud ({type(exc).__name__}: {exc})") from exc
    finally:
        mapped = None  # release the map before the file may be replaced
    return array_to_points(array, str(path))


def array_to_points(array: np.ndarray, source: str = "<array>") -> np.ndarray:
    """An ``[N, >=3]`` numeric array (or structured array with ``x, y, z``) -> ``float32 [N, 4]``.

    Three columns mean no intensity: column 3 of the result is 0. More than four columns: the
    first four are used. Integer and float dtypes are cast to float32; bool, complex, object and
    string dtypes are rejected. A transposed cloud (``[3 or 4, N]`` with ``N > 4``: no cloud has
    fewer than five points and more than four features per point in so few rows) is transposed
    back, with an :class:`InputWarning`.
    """
    if not isinstance(array, np.ndarray):
        raise PointCloudError(f"{source}: expected a numpy array, got {type(array).__name__}")
    if array.dtype.names:
        return _structured_to_points(array, source)
    if array.dtype.kind not in "iuf":
        raise PointCloudError(f"{source}: unsupported dtype {array.dtype} (expected an integer or float array)")
    if array.ndim == 2 and array.shape[0] in (3, 4) and array.shape[1] > 4:
        warnings.warn(
            f"{source}: array of shape {list(array.shape)} read as {array.shape[1]} points of {array.shape[0]} "
            f"values (transposed); store clouds as [N, {array.shape[0]}]",
            InputWarning, stacklevel=3,
        )
        array = array.T
    if array.ndim != 2 or array.shape[1] < 3:
        raise PointCloudError(f"{source}: expected an array of shape [N, >=3], got {list(array.shape)}")
    columns = array[:, :4].astype(np.float32)
    if columns.shape[1] == 3:
        return _assemble(columns[:, 0], columns[:, 1], columns[:, 2], None)
    return np.ascontiguousarray(columns)


def _structured_to_points(array: np.ndarray, source: str) -> np.ndarray:
    names = list(array.dtype.names)
    lowered = {n.lower(): n for n in names}
    missing = [axis for axis in "xyz" if axis not in lowered]
    if missing:
        raise PointCloudError(f"{source}: structured array has no field(s) {missing}; fields are {names}")
    array = array.reshape(-1)
    intensity_name = _find_intensity(names)
    columns = [lowered[axis] for axis in "xyz"] + ([intensity_name] if intensity_name else [])
    for name in columns:
        if array.dtype[name].kind not in "iuf" or array.dtype[name].shape:
            raise PointCloudError(f"{source}: field {name!r} has unsupported dtype {array.dtype[name]}")
    x, y, z = (array[lowered[axis]] for axis in "xyz")
    return _assemble(x, y, z, array[intensity_name] if intensity_name else None)


# --------------------------------------------------------------------------------------------------
# LZF (PCD binary_compressed)


def lzf_decompress(data: bytes, expected_size: int, source: str = "<lzf>") -> bytes:
    """Decompress an LZF stream (liblzf format, as PCL writes it) of known output size.

    The stream is a sequence of chunks, each led by a control byte ``c``:
    ``c < 32``: a literal run of ``c + 1`` bytes follows; otherwise a back reference of length
    ``(c >> 5) + 2`` (``c >> 5 == 7``: plus the next byte) at distance
    ``((c & 31) << 8) + next byte + 1`` before the current output end (it may overlap the output
    it produces, which repeats the last ``distance`` bytes).

    Raises:
        PointCloudError: truncated or corrupt stream, or output size differs from ``expected_size``.
    """
    out = bytearray()
    pos, end = 0, len(data)
    while pos < end:
        ctrl = data[pos]
        pos += 1
        if ctrl < 32:
            run = ctrl + 1
            if pos + run > end:
                raise PointCloudError(f"{source}: LZF literal run past the end of the compressed data")
            out += data[pos : pos + run]
            pos += run
            continue
        length = ctrl >> 5
        if length == 7:
            if pos >= end:
                raise PointCloudError(f"{source}: LZF stream truncated in a back reference")
            length += data[pos]
            pos += 1
        if pos >= end:
            raise PointCloudError(f"{source}: LZF stream truncated in a back reference")
        distance = ((ctrl & 0x1F) << 8) + data[pos] + 1
        pos += 1
        length += 2
        start = len(out) - distance
        if start < 0:
            raise PointCloudError(f"{source}: LZF back reference points before the start of the output")
        if distance >= length:
            out += out[start : start + length]
        else:
            pattern = bytes(out[start:])
            out += (pattern * (length // distance + 1))[:length]
        if len(out) > expected_size:
            break
    if len(out) != expected_size:
        raise PointCloudError(
            f"{source}: LZF data decompressed to {len(out)} bytes, header says {expected_size}"
        )
    return bytes(out)


# --------------------------------------------------------------------------------------------------
# PCD

_PCD_TYPES = {
    ("F", 2): "f2", ("F", 4): "f4", ("F", 8): "f8",
    ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4", ("I", 8): "i8",
    ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("U", 8): "u8",
}  # fmt: skip


_BOM = b"\xef\xbb\xbf"


def _split_header(data: bytes, is_last, source: str, what: str) -> tuple[list[str], int]:
    """Header lines up to and including the one for which ``is_last(line)`` holds, and the data offset.

    A UTF-8 byte order mark before the header is skipped with an :class:`InputWarning`.
    """
    lines, pos = [], 0
    if data.startswith(_BOM):
        warnings.warn(f"{source}: {what} header starts with a UTF-8 byte order mark; skipped it", InputWarning, stacklevel=4)
        pos = len(_BOM)
    while True:
        newline = data.find(b"\n", pos)
        if newline < 0:
            raise PointCloudError(f"{source}: {what} header is not terminated")
        line = data[pos:newline].decode("ascii", errors="replace").strip()
        pos = newline + 1
        lines.append(line)
        if is_last(line):
            return lines, pos
        if len(lines) > 10_000:
            raise PointCloudError(f"{source}: {what} header is not terminated within 10000 lines")


def parse_pcd_header(lines: Sequence[str], source: str = "<pcd>") -> dict:
    """PCD header lines -> ``{"fields", "sizes", "types", "counts", "points", "data"}``.

    ``COUNT`` defaults to 1 per field, ``POINTS`` to ``WIDTH * HEIGHT``; both must agree when given.
    """
    entries: dict[str, list[str]] = {}
    for line in lines:
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        entries[key.upper()] = values
    for key in ("FIELDS", "SIZE", "TYPE", "DATA"):
        if key not in entries:
            raise PointCloudError(f"{source}: PCD header has no {key} line")
    fields = entries["FIELDS"]
    try:
        sizes = [int(v) for v in entries["SIZE"]]
        counts = [int(v) for v in entries.get("COUNT", ["1"] * len(fields))]
        width = int(entries["WIDTH"][0]) if "WIDTH" in entries else None
        height = int(entries["HEIGHT"][0]) if "HEIGHT" in entries else 1
        points = int(entries["POINTS"][0]) if "POINTS" in entries else None
    except (ValueError, IndexError) as exc:
        raise PointCloudError(f"{source}: malformed number in PCD header: {exc}") from exc
    _check_pcd_counts(sizes, counts, width, height, points, source)
    types = [t.upper() for t in entries["TYPE"]]
    if not (len(fields) == len(sizes) == len(types) == len(counts)):
        raise PointCloudError(
            f"{source}: PCD header has {len(fields)} FIELDS, {len(sizes)} SIZE, {len(types)} TYPE "
            f"and {len(counts)} COUNT entries; they must match"
        )
    for name, kind, size in zip(fields, types, sizes):
        if (kind, size) not in _PCD_TYPES:
            raise PointCloudError(f"{source}: PCD field {name!r} has unsupported TYPE {kind} SIZE {size}")
    if points is None:
        if width is None:
            raise PointCloudError(f"{source}: PCD header has neither POINTS nor WIDTH")
        points = width * height
    elif width is not None and width * height != points:
        raise PointCloudError(f"{source}: PCD WIDTH {width} x HEIGHT {height} != POINTS {points}")
    if not entries["DATA"]:
        raise PointCloudError(f"{source}: PCD DATA line names no encoding")
    return {
        "fields": fields, "sizes": sizes, "types": types, "counts": counts,
        "points": points, "data": entries["DATA"][0].lower(),
    }  # fmt: skip


_PCD_MAX_COUNT = 1 << 20  # values per field per point (PCL's largest descriptors have a few hundred)


def _check_pcd_counts(sizes, counts, width, height, points, source: str) -> None:
    """SIZE and COUNT entries must be in ``1..2**20``, WIDTH / HEIGHT / POINTS >= 0."""
    for key, values in (("SIZE", sizes), ("COUNT", counts)):
        if any(not 1 <= v <= _PCD_MAX_COUNT for v in values):
            raise PointCloudError(f"{source}: PCD {key} entries must be >= 1 (and <= {_PCD_MAX_COUNT}), got {values}")
    for key, value in (("WIDTH", width), ("HEIGHT", height), ("POINTS", points)):
        if value is not None and value < 0:
            raise PointCloudError(f"{source}: PCD {key} must be >= 0, got {value}")


def _pcd_field_dtypes(header: dict) -> list[tuple[str, np.dtype]]:
    """``[(field name, little-endian dtype of one point's value(s))]``; duplicate names made unique."""
    out, seen = [], {}
    for name, kind, size, count in zip(header["fields"], header["types"], header["sizes"], header["counts"]):
        seen[name] = seen.get(name, 0) + 1
        unique = name if seen[name] == 1 else f"{name}__{seen[name]}"
        base = np.dtype("<" + _PCD_TYPES[(kind, size)])
        out.append((unique, np.dtype((base, (count,))) if count != 1 else base))
    return out


def _pcd_columns(header: dict, source: str) -> tuple[str, str, str, str | None]:
    names = header["fields"]
    lowered = {n.lower(): n for n in reversed(names)}
    missing = [axis for axis in "xyz" if axis not in lowered]
    if missing:
        raise PointCloudError(f"{source}: PCD has no field(s) {missing}; FIELDS are {names}")
    return lowered["x"], lowered["y"], lowered["z"], _find_intensity(names)


def parse_pcd(data: bytes, source: str = "<pcd>") -> np.ndarray:
    """PCD file bytes (``DATA ascii | binary | binary_compressed``) -> ``float32 [N, 4]``.

    Fields may come in any order; fields other than ``x, y, z`` and the intensity field are
    ignored. A field with ``COUNT > 1`` contributes its first value. Binary data is little-endian.
    """
    lines, offset = _split_header(data, lambda line: line.upper().startswith("DATA"), source, "PCD")
    header = parse_pcd_header(lines, source)
    dtypes = _pcd_field_dtypes(header)
    record = np.dtype(dtypes)
    n = header["points"]
    encoding = header["data"]
    if encoding == "ascii":
        table = _pcd_ascii_table(data[offset:], header, source)
        columns = {name: table[:, col] for name, col in zip(header["fields"][::-1], _ascii_starts(header)[::-1])}
    elif encoding == "binary":
        if len(data) - offset < n * record.itemsize:
            raise PointCloudError(
                f"{source}: PCD binary data holds {len(data) - offset} bytes, "
                f"{n} points x {record.itemsize} bytes need {n * record.itemsize}"
            )
        rows = np.frombuffer(data, dtype=record, count=n, offset=offset)
        columns = _first_values(rows, dtypes, header["fields"])
    elif encoding == "binary_compressed":
        columns = _pcd_compressed_columns(data[offset:], dtypes, header, source)
    else:
        raise PointCloudError(
            f"{source}: unsupported PCD DATA {encoding!r} (expected ascii, binary or binary_compressed)"
        )
    x, y, z, intensity = _pcd_columns(header, source)
    return _assemble(columns[x], columns[y], columns[z], columns[intensity] if intensity else None)


def _ascii_starts(header: dict) -> list[int]:
    """Column index in an ASCII PCD row where each field's first value sits."""
    return list(np.concatenate([[0], np.cumsum(header["counts"])[:-1]]).astype(int))


def _pcd_ascii_table(body: bytes, header: dict, source: str) -> np.ndarray:
    """ASCII PCD body -> ``float64 [N, sum(COUNT)]``."""
    width = sum(header["counts"])
    n = header["points"]
    rows = [line for line in body.decode("ascii", errors="replace").splitlines() if line.strip()]
    if len(rows) < n:
        raise PointCloudError(f"{source}: PCD ascii data has {len(rows)} rows, header says POINTS {n}")
    tokens = " ".join(rows[:n]).split()
    if len(tokens) != n * width:
        raise PointCloudError(f"{source}: PCD ascii data has {len(tokens)} values, expected {n} rows x {width}")
    try:
        return np.array(tokens, dtype=np.float64).reshape(n, width)
    except ValueError as exc:
        raise PointCloudError(f"{source}: PCD ascii data holds a non-number: {exc}") from exc


def _first_values(rows: np.ndarray, dtypes: list[tuple[str, np.dtype]], names: Sequence[str]) -> dict:
    """Per original field name, the ``[N]`` column of its first value (first occurrence wins)."""
    columns = {}
    for (unique, dtype), name in zip(dtypes, names):
        if name in columns:
            continue
        values = rows[unique]
        columns[name] = values[:, 0] if dtype.shape else values
    return columns


def _pcd_compressed_columns(body: bytes, dtypes, header: dict, source: str) -> dict:
    """``binary_compressed`` body: two uint32 sizes, then LZF of the field-major (SoA) data."""
    if len(body) < 8:
        raise PointCloudError(f"{source}: PCD binary_compressed data is shorter than its 8-byte size header")
    compressed_size, uncompressed_size = struct.unpack("<II", body[:8])
    n = header["points"]
    expected = n * sum(dtype.itemsize for _, dtype in dtypes)
    if uncompressed_size != expected:
        raise PointCloudError(
            f"{source}: PCD binary_compressed says {uncompressed_size} uncompressed bytes, "
            f"{n} points need {expected}"
        )
    if 8 + compressed_size > len(body):
        raise PointCloudError(
            f"{source}: PCD binary_compressed says {compressed_size} compressed bytes, file holds {len(body) - 8}"
        )
    raw = lzf_decompress(body[8 : 8 + compressed_size], uncompressed_size, source)
    columns, offset = {}, 0
    for (unique, dtype), name in zip(dtypes, header["fields"]):
        values = np.frombuffer(raw, dtype=dtype, count=n, offset=offset)
        offset += n * dtype.itemsize
        if name not in columns:
            columns[name] = values[:, 0] if dtype.shape else values
    return columns


# --------------------------------------------------------------------------------------------------
# PLY

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_PLY_FORMATS = {"ascii": None, "binary_little_endian": "<", "binary_big_endian": ">"}


def parse_ply_header(lines: Sequence[str], source: str = "<ply>") -> tuple[str, list[dict]]:
    """PLY header lines -> ``(format, elements)``.

    Each element is ``{"name", "count", "properties": [(name, type) | (name, ("list", count_type, item_type))]}``
    with PLY type names mapped to NumPy type codes (``"f4"``, ``"u1"``, ...).
    """
    if not lines or lines[0] != "ply":
        raise PointCloudError(f"{source}: not a PLY file (first line is not 'ply')")
    fmt, elements = None, []
    for line in lines[1:]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info", "end_header"):
            continue
        if words[0] == "format":
            if len(words) < 2 or words[1] not in _PLY_FORMATS:
                raise PointCloudError(f"{source}: unsupported PLY format line {line!r}")
            fmt = words[1]
        elif words[0] == "element":
            try:
                elements.append({"name": words[1], "count": int(words[2]), "properties": []})
            except (IndexError, ValueError) as exc:
                raise PointCloudError(f"{source}: malformed PLY element line {line!r}") from exc
            if elements[-1]["count"] < 0:
                raise PointCloudError(f"{source}: PLY element count must be >= 0: {line!r}")
        elif words[0] == "property":
            if not elements:
                raise PointCloudError(f"{source}: PLY property before any element: {line!r}")
            elements[-1]["properties"].append(_ply_property(words, line, source))
        else:
            raise PointCloudError(f"{source}: unknown PLY header line {line!r}")
    if fmt is None:
        raise PointCloudError(f"{source}: PLY header has no format line")
    return fmt, elements


def _ply_property(words: list[str], line: str, source: str) -> tuple:
    """``property TYPE NAME`` -> ``(NAME, code)``; ``property list COUNT_TYPE ITEM_TYPE NAME`` ->
    ``(NAME, ("list", count code, item code))`` with an integer count type."""
    try:
        if words[1] == "list":
            prop = words[4], ("list", _PLY_TYPES[words[2]], _PLY_TYPES[words[3]])
            if prop[1][1][0] not in "iu":
                raise PointCloudError(f"{source}: PLY list count type must be an integer type: {line!r}")
            return prop
        return words[2], _PLY_TYPES[words[1]]
    except (IndexError, KeyError) as exc:
        raise PointCloudError(f"{source}: malformed or unsupported PLY property line {line!r}") from exc


def parse_ply(data: bytes, source: str = "<ply>") -> np.ndarray:
    """PLY file bytes -> ``float32 [N, 4]`` from the ``vertex`` element.

    Properties ``x, y, z`` (and an intensity property) may come in any order; other properties
    and other elements are ignored. Elements before ``vertex`` that have list properties (faces)
    are skipped record by record. A list property in the ``vertex`` element itself is rejected.
    """
    lines, offset = _split_header(data, lambda line: line == "end_header", source, "PLY")
    fmt, elements = parse_ply_header(lines, source)
    index = next((i for i, e in enumerate(elements) if e["name"] == "vertex"), None)
    if index is None:
        raise PointCloudError(f"{source}: PLY file has no 'vertex' element")
    vertex = elements[index]
    props = [name for name, _ in vertex["properties"]]
    lists = [name for name, kind in vertex["properties"] if isinstance(kind, tuple)]
    if lists:
        raise PointCloudError(f"{source}: PLY vertex element has list properties {lists}; not supported")
    lowered = {n.lower(): n for n in reversed(props)}
    missing = [axis for axis in "xyz" if axis not in lowered]
    if missing:
        raise PointCloudError(f"{source}: PLY vertex element has no property(ies) {missing}; it has {props}")
    if fmt == "ascii":
        columns = _ply_ascii_vertices(data[offset:], elements[:index], vertex, source)
    else:
        columns = _ply_binary_vertices(data, offset, elements[:index], vertex, _PLY_FORMATS[fmt], source)
    intensity = _find_intensity(props)
    x, y, z = (columns[lowered[axis]] for axis in "xyz")
    return _assemble(x, y, z, columns[intensity] if intensity else None)


def _ply_ascii_vertices(body: bytes, before: list[dict], vertex: dict, source: str) -> dict:
    """ASCII body (one record per line) -> ``{property: float64 [N]}`` for the vertex element."""
    rows = [line for line in body.decode("ascii", errors="replace").splitlines() if line.strip()]
    skip = sum(e["count"] for e in before)
    n, names = vertex["count"], [name for name, _ in vertex["properties"]]
    if len(rows) < skip + n:
        raise PointCloudError(f"{source}: PLY ascii data has {len(rows)} records, header needs {skip + n}")
    tokens = " ".join(rows[skip : skip + n]).split()
    if len(tokens) != n * len(names):
        raise PointCloudError(
            f"{source}: PLY ascii vertex data has {len(tokens)} values, expected {n} x {len(names)}"
        )
    try:
        table = np.array(tokens, dtype=np.float64).reshape(n, len(names))
    except ValueError as exc:
        raise PointCloudError(f"{source}: PLY ascii vertex data holds a non-number: {exc}") from exc
    return {name: table[:, i] for i, name in reversed(list(enumerate(names)))}


def _ply_binary_vertices(data: bytes, offset: int, before: list[dict], vertex: dict, order: str, source: str) -> dict:
    """Binary body -> ``{property: [N]}`` for the vertex element, skipping the elements before it."""
    for element in before:
        offset = _skip_ply_element(data, offset, element, order, source)
    names = [name for name, _ in vertex["properties"]]
    unique = [f"{name}__{i}" for i, name in enumerate(names)]
    record = np.dtype([(u, order + kind) for u, (_, kind) in zip(unique, vertex["properties"])])
    n = vertex["count"]
    if len(data) - offset < n * record.itemsize:
        raise PointCloudError(
            f"{source}: PLY vertex data holds {len(data) - offset} bytes, "
            f"{n} vertices x {record.itemsize} bytes need {n * record.itemsize}"
        )
    rows = np.frombuffer(data, dtype=record, count=n, offset=offset)
    return {name: rows[u] for name, u in reversed(list(zip(names, unique)))}


def _skip_ply_element(data: bytes, offset: int, element: dict, order: str, source: str) -> int:
    """Byte offset just past a binary element's records (walks records when it has list properties)."""
    props = element["properties"]
    if not any(isinstance(kind, tuple) for _, kind in props):
        size = sum(np.dtype(kind).itemsize for _, kind in props)
        return offset + element["count"] * size
    for _ in range(element["count"]):
        for _, kind in props:
            if not isinstance(kind, tuple):
                offset += np.dtype(kind).itemsize
                continue
            count_dtype = np.dtype(order + kind[1])
            if offset + count_dtype.itemsize > len(data):
                raise PointCloudError(f"{source}: PLY element {element['name']!r} runs past the end of the file")
            count = int(np.frombuffer(data, dtype=count_dtype, count=1, offset=offset)[0])
            if count < 0:
                raise PointCloudError(f"{source}: PLY element {element['name']!r} has a negative list count {count}")
            offset += count_dtype.itemsize + count * np.dtype(kind[2]).itemsize
    if offset > len(data):
        raise PointCloudError(f"{source}: PLY element {element['name']!r} runs past the end of the file")
    return offset


# --------------------------------------------------------------------------------------------------
# saving


def save_points(path: str | Path, points: np.ndarray) -> Path:
    """Write ``[N, 4]`` ``(x, y, z, intensity)`` points (cast to float32) to ``path``.

    The suffix picks the format: ``.bin`` (KITTI float32 x4), ``.npy``, ``.pcd`` (``DATA binary``,
    fields ``x y z intensity`` as F4) or ``.ply`` (``binary_little_endian``, float properties
    ``x y z intensity``). Non-finite values and empty clouds are written as they are.

    Returns:
        The path written.
    """
    path = Path(path)
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 4 or points.dtype.kind not in "iuf":
        raise PointCloudError(f"{path}: save_points needs numeric points of shape [N, 4], got {points.shape}")
    points = np.ascontiguousarray(points, dtype="<f4")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(path, points.astype(np.float32))
        return path
    writers = {".bin": lambda p: p.tobytes(), ".pcd": pcd_binary_bytes, ".ply": ply_binary_bytes}
    if suffix not in writers:
        raise PointCloudError(
            f"{path}: unsupported point-cloud suffix {path.suffix!r}; supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    try:
        path.write_bytes(writers[suffix](points))
    except OSError as exc:
        raise PointCloudError(f"{path}: cannot write point-cloud file: {exc}") from exc
    return path


def pcd_binary_bytes(points: np.ndarray) -> bytes:
    """``float32 [N, 4]`` -> bytes of a ``DATA binary`` PCD file (fields ``x y z intensity``)."""
    n = len(points)
    header = (
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS x y z intensity\n"
        "SIZE 4 4 4 4\nTYPE F F F F\nCOUNT 1 1 1 1\n"
        f"WIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA binary\n"
    )
    return header.encode("ascii") + np.ascontiguousarray(points, dtype="<f4").tobytes()


def ply_binary_bytes(points: np.ndarray) -> bytes:
    """``float32 [N, 4]`` -> bytes of a ``binary_little_endian`` PLY file (vertex x y z intensity)."""
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment written by pointpillars_trt\n"
        f"element vertex {len(points)}\nproperty float x\nproperty float y\nproperty float z\n"
        "property float intensity\nend_header\n"
    )
    return header.encode("ascii") + np.ascontiguousarray(points, dtype="<f4").tobytes()
