"""Run-time compilation of the package's CUDA kernels with NVRTC, an on-disk cache, and launches.

* :func:`compile_source` compiles CUDA C++ to a CUBIN for a real architecture (``sm_XY``) or to
  PTX for a virtual one (``compute_XY``) when NVRTC does not know the device yet; it needs no GPU.
* :class:`KernelCache` keeps the images on disk, keyed by the SHA-256 of the source (and the
  ``.cuh`` headers beside it), the target, the options and the NVRTC version.
* :func:`load_kernels` compiles (or reads from the cache) one ``kernels/*.cu`` file for a device
  and loads it with ``cuModuleLoadData``; :func:`launch` calls ``cuLaunchKernel`` on a given
  stream handle with arguments packed by :func:`pack_kernel_args`.
* Programmatic dependent launch (PDL, compute capability 9.0 and newer): a kernel file whose every
  kernel begins with ``PP_PDL_ENTRY()`` (``griddepcontrol.wait`` then ``launch_dependents``: no
  block reads or writes memory before the previous kernel on the stream has completed) is loaded
  with ``CudaModule.programmatic`` set, and :func:`launch` of its kernels lets the
  driver start such a kernel while its predecessor drains (also inside a captured CUDA graph), once
  :func:`set_programmatic_launch` turns it on process-wide. Results are unchanged by construction.
  It is off by default: on an H200 (2026-12-03, ``benchmarks/pdl_ab.py``, 9000 interleaved frames
  each) a whole FOV frame took 0.394 ms of GPU time without it and 0.411 ms with it, although each
  kernel alone starts sooner (docs/PERFORMANCE.md).

The cache directory is ``$POINTPILLARS_TRT_KERNEL_CACHE``, else
``$XDG_CACHE_HOME/pointpillars_trt/kernels``, else ``~/.cache/pointpillars_trt/kernels``; an
unwritable cache is skipped (compilation still works).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import CudaError, KernelCompileError
from .bindings import bindings, check, check_nvrtc
from .device import CudaDevice

log = logging.getLogger(__name__)

KERNEL_DIR = Path(__file__).resolve().parent.parent / "kernels"
DEFAULT_OPTIONS = ("--std=c++17",)
PDL_ENTRY = "PP_PDL_ENTRY()"  # the first statement of every kernel of a PDL-ready file
_programmatic = {"enabled": False}
_pdl_functions: set[int] = set()  # handles of the kernels of PDL-ready modules (CudaModule.function)


# ---- pure helpers (no GPU, no NVRTC) -------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """What NVRTC is asked for: ``option`` e.g. ``--gpu-architecture=sm_90``, and the image kind."""

    option: str
    kind: str  # "cubin" or "ptx"

    @property
    def arch(self) -> str:
        return self.option.split("=", 1)[1]


def choose_target(compute_capability: tuple[int, int], supported_archs: Sequence[int]) -> Target:
    """A CUBIN for the device's own ``sm_XY`` when NVRTC supports it; otherwise PTX for the
    newest supported virtual architecture not above the device (the driver JITs it).

    >>> choose_target((9, 0), [75, 80, 90]).option
    '--gpu-architecture=sm_90'
    >>> choose_target((12, 9), [80, 90, 100]).option
    '--gpu-architecture=compute_100'
    """
    cc = compute_capability[0] * 10 + compute_capability[1]
    if cc in supported_archs:
        return Target(f"--gpu-architecture=sm_{cc}", "cubin")
    lower = [a for a in supported_archs if a <= cc]
    if not lower:
        raise KernelCompileError(
            f"NVRTC supports architectures {sorted(supported_archs)}, none of which runs on compute capability "
            f"{compute_capability[0]}.{compute_capability[1]}: install an NVRTC that knows this GPU"
        )
    return Target(f"--gpu-architecture=compute_{max(lower)}", "ptx")


def cache_key(source: str, headers: dict[str, str], target: Target, options: Sequence[str], nvrtc_version: tuple[int, int]) -> str:
    """SHA-256 over everything that changes the compiled image."""
    h = hashlib.sha256()
    for part in (source, target.option, target.kind, "\0".join(options), f"nvrtc{nvrtc_version[0]}.{nvrtc_version[1]}"):
        h.update(part.encode())
        h.update(b"\0\1")
    for name in sorted(headers):
        h.update(name.encode() + b"\0" + headers[name].encode() + b"\0\1")
    return h.hexdigest()


def read_kernel_source(filename: str, kernel_dir: Path = KERNEL_DIR) -> tuple[str, dict[str, str]]:
    """The ``.cu`` file and every ``.cuh`` header beside it (all of them feed the cache key)."""
    path = kernel_dir / filename
    if not path.is_file():
        raise KernelCompileError(f"{path}: kernel source not found (is the package data installed?)")
    headers = {p.name: p.read_text() for p in sorted(kernel_dir.glob("*.cuh"))}
    return path.read_text(), headers


def default_cache_dir() -> Path:
    env = os.environ.get("POINTPILLARS_TRT_KERNEL_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pointpillars_trt" / "kernels"


class KernelCache:
    """Compiled images on disk: ``<dir>/<key>.<kind>``; writes are atomic (temp file + rename)."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()

    def path(self, key: str, kind: str) -> Path:
        return self.directory / f"{key}.{kind}"

    def get(self, key: str, kind: str) -> bytes | None:
        p = self.path(key, kind)
        try:
            data = p.read_bytes()
        except OSError:
            return None
        return data or None

    def put(self, key: str, kind: str, data: bytes) -> bool:
        """Store ``data``; ``False`` (and a debug log line) when the directory is not writable."""
        p = self.path(key, kind)
        tmp = p.with_name(f"{p.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, p)
            return True
        except OSError as exc:
            log.debug("kernel cache %s not writable: %s", self.directory, exc)
            try:
                tmp.unlink()
            except OSError:
                pass
            return False


def pack_kernel_args(args: Sequence[Any]) -> tuple[np.ndarray, list[np.ndarray]]:
    """``cuLaunchKernel``'s ``kernelParams``: an array of addresses of each argument's value.

    Each argument must be a numpy scalar of the kernel parameter's exact type (``np.uint64`` for
    pointers, ``np.int32`` for ``int``, ``np.float32`` for ``float``): a bare Python ``int`` is
    refused because its size would be a guess. Keep the returned holders alive until the launch
    call has returned (the driver copies the values at launch).
    """
    holders = []
    for i, a in enumerate(args):
        if not isinstance(a, np.generic):
            raise TypeError(f"kernel argument {i} is {type(a).__name__}; pass np.uint64 (pointer), np.int32 or np.float32")
        holders.append(np.array([a], dtype=a.dtype))
    addresses = np.array([h.ctypes.data for h in holders], dtype=np.uint64)
    return addresses, holders


def ptr(value: int) -> np.uint64:
    """A device pointer argument."""
    return np.uint64(int(value))


def i32(value: int) -> np.int32:
    """An ``int`` argument (range-checked)."""
    v = int(value)
    if not -(2**31) <= v < 2**31:
        raise ValueError(f"{v} does not fit a kernel int")
    return np.int32(v)


def grid_for(work_items: int, block: int, max_blocks: int) -> int:
    """Blocks for a grid-stride loop over ``work_items``: enough to cover it, at most ``max_blocks``,
    at least 1."""
    return max(1, min(-(-int(work_items) // block), int(max_blocks)))


# ---- NVRTC -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CompiledImage:
    data: bytes
    kind: str
    target: Target
    log: str
    from_cache: bool = False


def nvrtc_version() -> tuple[int, int]:
    _, nv = bindings()
    major, minor = check_nvrtc(nv.nvrtcVersion(), "nvrtcVersion")
    return int(major), int(minor)


def nvrtc_supported_archs() -> list[int]:
    _, nv = bindings()
    if not hasattr(nv, "nvrtcGetSupportedArchs"):
        return []
    return [int(a) for a in check_nvrtc(nv.nvrtcGetSupportedArchs(), "nvrtcGetSupportedArchs")]


def _out_buffer(size: int) -> bytes:
    """A fresh ``bytes`` object for NVRTC to write ``size`` bytes into.

    cuda-bindings writes through the buffer of a ``bytes`` object. CPython shares one object for
    every bytes of length 0 or 1 (``b" " * 1 is b" "``), so a 1-byte buffer (an empty NVRTC log
    is exactly its NUL terminator) would overwrite that shared constant for the whole process.
    One spare byte keeps every buffer at least 2 bytes long and therefore private.
    """
    return bytes(int(size) + 1)


def _program_log(nv: Any, prog: Any) -> str:
    try:
        size = int(check_nvrtc(nv.nvrtcGetProgramLogSize(prog), "nvrtcGetProgramLogSize"))
        buf = _out_buffer(size)
        check_nvrtc(nv.nvrtcGetProgramLog(prog, buf), "nvrtcGetProgramLog")
        return buf[:size].rstrip(b"\0 ").decode(errors="replace")
    except CudaError as exc:
        return f"(no log: {exc})"


def compile_source(
    source: str,
    name: str,
    target: Target,
    options: Sequence[str] = DEFAULT_OPTIONS,
    include_dirs: Sequence[Path] = (),
) -> CompiledImage:
    """Compile CUDA C++ ``source`` (file name ``name`` for messages) with NVRTC.

    Raises :class:`KernelCompileError` carrying the NVRTC log when compilation fails.
    """
    _, nv = bindings()
    prog = check_nvrtc(nv.nvrtcCreateProgram(source.encode(), name.encode(), 0, [], []), "nvrtcCreateProgram")
    try:
        opts = [target.option, *options, *(f"--include-path={d}" for d in include_dirs)]
        result = nv.nvrtcCompileProgram(prog, len(opts), [o.encode() for o in opts])
        status = result[0] if isinstance(result, tuple) else result
        text = _program_log(nv, prog)
        if int(status) != 0:
            raise KernelCompileError(
                f"{name}: NVRTC compilation for {target.arch} failed ({getattr(status, 'name', int(status))}) "
                f"with options {opts}:\n{text}"
            )
        if target.kind == "cubin":
            size = int(check_nvrtc(nv.nvrtcGetCUBINSize(prog), "nvrtcGetCUBINSize"))
            buf = _out_buffer(size)
            check_nvrtc(nv.nvrtcGetCUBIN(prog, buf), "nvrtcGetCUBIN")
        else:
            size = int(check_nvrtc(nv.nvrtcGetPTXSize(prog), "nvrtcGetPTXSize"))
            buf = _out_buffer(size)
            check_nvrtc(nv.nvrtcGetPTX(prog, buf), "nvrtcGetPTX")
        return CompiledImage(buf[:size], target.kind, target, text)
    finally:
        nv.nvrtcDestroyProgram(prog)


def compile_kernel_file(
    filename: str,
    compute_capability: tuple[int, int],
    options: Sequence[str] = DEFAULT_OPTIONS,
    cache: KernelCache | None = None,
    kernel_dir: Path = KERNEL_DIR,
) -> CompiledImage:
    """Compile ``kernels/<filename>`` for ``compute_capability``, through the disk cache."""
    source, headers = read_kernel_source(filename, kernel_dir)
    target = choose_target(compute_capability, nvrtc_supported_archs() or [compute_capability[0] * 10 + compute_capability[1]])
    cache = cache if cache is not None else KernelCache()
    key = cache_key(source, headers, target, options, nvrtc_version())
    data = cache.get(key, target.kind)
    if data is not None:
        return CompiledImage(data, target.kind, target, "", from_cache=True)
    image = compile_source(source, filename, target, options, include_dirs=(kernel_dir,))
    cache.put(key, target.kind, image.data)
    return image


# ---- modules and launches ----------------------------------------------------------------------
class CudaModule:
    """A loaded module (``cuModuleLoadData``) and its functions by name."""

    def __init__(self, image: CompiledImage, device: CudaDevice, name: str = "<module>", pdl_ready: bool = False) -> None:
        self.device, self.name, self.image = device, name, image
        self.programmatic = bool(pdl_ready) and tuple(device.info.compute_capability) >= (9, 0)
        device.make_current()
        drv = bindings()[0]
        data = image.data if image.kind == "cubin" else image.data.rstrip(b"\0") + b"\0"  # PTX: NUL-terminated
        buf = np.frombuffer(data, dtype=np.uint8).copy()  # passed by address, as NVIDIA's samples do
        self._module = check(drv.cuModuleLoadData(buf.ctypes.data), f"cuModuleLoadData({name}, {image.target.arch})")
        self._functions: dict[str, Any] = {}

    def function(self, name: str) -> Any:
        """The ``CUfunction`` of ``extern "C"`` kernel ``name``."""
        fn = self._functions.get(name)
        if fn is None:
            self.device.make_current()
            fn = check(bindings()[0].cuModuleGetFunction(self._module, name.encode()), f"cuModuleGetFunction({self.name}: {name})")
            self._functions[name] = fn
            if self.programmatic:
                _pdl_functions.add(int(fn))
        return fn

    def resident_blocks(self, name: str, block_threads: int, dynamic_shared: int = 0) -> int:
        """How many blocks of ``block_threads`` threads of kernel ``name`` one multiprocessor holds at once
        (``cuOccupancyMaxActiveBlocksPerMultiprocessor``: its registers and shared memory decide), at least 1."""
        self.device.make_current()
        n = check(bindings()[0].cuOccupancyMaxActiveBlocksPerMultiprocessor(self.function(name), int(block_threads), int(dynamic_shared)),
                  f"cuOccupancyMaxActiveBlocksPerMultiprocessor({self.name}: {name})")
        return max(1, int(n))


_modules: dict[tuple[str, int, tuple[str, ...]], CudaModule] = {}
_modules_lock = threading.Lock()


def load_kernels(filename: str, device: CudaDevice, options: Sequence[str] = DEFAULT_OPTIONS, cache: KernelCache | None = None) -> CudaModule:
    """``kernels/<filename>`` compiled for ``device`` and loaded once per process."""
    key = (filename, device.index, tuple(options))
    with _modules_lock:
        mod = _modules.get(key)
        if mod is None:
            image = compile_kernel_file(filename, device.info.compute_capability, options, cache)
            mod = CudaModule(image, device, filename, pdl_ready=pdl_ready(read_kernel_source(filename)[0]))
            _modules[key] = mod
    return mod


def pdl_ready(source: str) -> bool:
    """True when every ``extern "C" __global__`` kernel of ``source`` starts with ``PP_PDL_ENTRY()``
    (and there is at least one): only then may its kernels be launched programmatically."""
    bodies = source.split('extern "C" __global__')[1:]
    return bool(bodies) and all(b.split("{", 1)[1].lstrip().startswith(PDL_ENTRY) for b in bodies)


def set_programmatic_launch(enabled: bool) -> bool:
    """Allow or forbid (default) programmatic dependent launches process-wide; returns the previous
    setting. Launches already captured in a CUDA graph keep the setting they were captured with."""
    old = _programmatic["enabled"]
    _programmatic["enabled"] = bool(enabled)
    return old


def launch_config(grid: tuple[int, int, int], block: tuple[int, int, int], stream: int, shared_mem: int, programmatic: bool) -> Any:
    """The ``CUlaunchConfig`` of ``cuLaunchKernelEx``: with ``programmatic``, one attribute
    (``CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION`` = 1)."""
    drv = bindings()[0]
    cfg = drv.CUlaunchConfig()
    cfg.gridDimX, cfg.gridDimY, cfg.gridDimZ = (int(v) for v in grid)
    cfg.blockDimX, cfg.blockDimY, cfg.blockDimZ = (int(v) for v in block)
    cfg.sharedMemBytes = int(shared_mem)
    cfg.hStream = drv.CUstream(int(stream))
    attrs = []
    if programmatic:
        a = drv.CUlaunchAttribute()
        a.id = drv.CUlaunchAttributeID.CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION
        a.value.programmaticStreamSerializationAllowed = 1
        attrs.append(a)
    cfg.attrs = attrs
    cfg.numAttrs = len(attrs)
    return cfg


def launch(function: Any, grid: int | tuple[int, int, int], block: int | tuple[int, int, int], args: Sequence[Any], stream: int,
           shared_mem: int = 0, programmatic: bool | None = None) -> None:
    """``cuLaunchKernel`` on ``stream`` (an ``int`` handle; 0 is the legacy default stream). A
    programmatic launch (``programmatic``; by default: ``function`` belongs to a module whose
    ``programmatic`` is set) uses ``cuLaunchKernelEx`` with programmatic stream serialization,
    unless :func:`set_programmatic_launch` turned it off."""
    if programmatic is None:
        programmatic = int(function) in _pdl_functions
    g = (grid, 1, 1) if isinstance(grid, int) else tuple(grid)
    b = (block, 1, 1) if isinstance(block, int) else tuple(block)
    addresses, holders = pack_kernel_args(args)
    drv = bindings()[0]
    if programmatic and _programmatic["enabled"]:
        cfg = launch_config(g, b, stream, shared_mem, True)
        check(drv.cuLaunchKernelEx(cfg, function, addresses.ctypes.data, 0), "cuLaunchKernelEx")
    else:
        check(
            drv.cuLaunchKernel(function, *g, *b, int(shared_mem), drv.CUstream(int(stream)), addresses.ctypes.data, 0),
            "cuLaunchKernel",
        )
    del holders
