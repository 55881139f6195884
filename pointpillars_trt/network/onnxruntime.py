"""ONNX Runtime backend: the exported PFN, MFN and RPN graphs (or the fused chain) in ONNX Runtime.

Graphs come from a folder (``engine_dir``, e.g. written by ``export/export_onnx.py``) whose
metadata is checked against the config, or are exported on the fly from a state dict into a
cache folder keyed by config, weights, precision and package version
(``$POINTPILLARS_TRT_CACHE`` or ``~/.cache/pointpillars_trt``, else a temporary folder).

``onnxruntime`` and ``onnx`` are imported only when a backend is built, so the package imports
without them.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .. import __version__
from ..config import PointPillarsConfig
from ..contract import GRAPH_IO, PARTS, PRECISIONS
from ..errors import BackendUnavailableError, ConfigError, EngineError
from ..options import OnnxRuntimeOptions
from .base import OUTPUT_NAMES, Backend, StageTimer, register_backend

SPLIT_PARTS = PARTS
#: graph optimizers left out for INT8 (Q/DQ) graphs: common-subexpression elimination merges the
#: one Q/DQ pair per consumer that the exporter writes, and ONNX Runtime's x86 int8 convolution
#: (``QLinearConv``, u8 activations) then no longer forms where a tensor feeds two convolutions
INT8_DISABLED_OPTIMIZERS = ("CommonSubexpressionElimination",)
_PIP = "pip install onnxruntime onnx   (or onnxruntime-gpu for the CUDA provider)"


def _import_ort():
    try:
        import onnx  # noqa: F401  (metadata and export)
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailableError(f"onnxruntime backend: {exc.name} is not installed; {_PIP}") from exc
    return onnxruntime


def default_cache_dir() -> Path:
    """``$POINTPILLARS_TRT_CACHE``, else ``~/.cache/pointpillars_trt``."""
    env = os.environ.get("POINTPILLARS_TRT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "pointpillars_trt"


def resolve_graph_paths(engine_dir: str | Path | Mapping[str, str | Path], fused: bool) -> dict[str, Path]:
    """``{part: path}`` of the graphs to run: ``full.onnx`` when ``fused`` (or when it is the only
    graph there), else ``pfn/mfn/rpn.onnx``. ``engine_dir`` is a folder or a ``{part: path}`` map."""
    if isinstance(engine_dir, Mapping):
        paths = {str(k): Path(v) for k, v in engine_dir.items()}
        unknown = sorted(set(paths) - set(GRAPH_IO))
        if unknown:
            raise ConfigError(f"onnxruntime backend: unknown graph part(s) {unknown}; expected {sorted(GRAPH_IO)}")
    else:
        folder = Path(engine_dir)
        if not folder.is_dir():
            raise EngineError(f"{folder}: ONNX graph folder not found")
        paths = {p: folder / f"{p}.onnx" for p in (*SPLIT_PARTS, "full") if (folder / f"{p}.onnx").is_file()}
        if not paths:
            raise EngineError(f"{folder}: holds none of pfn.onnx, mfn.onnx, rpn.onnx, full.onnx; run export/export_onnx.py")
    if fused or not any(p in paths for p in SPLIT_PARTS):
        if "full" not in paths:
            raise EngineError(f"{engine_dir}: no full.onnx (the fused chain); export with --fused")
        return {"full": paths["full"]}
    missing = [p for p in SPLIT_PARTS if p not in paths]
    if missing:
        raise EngineError(f"{engine_dir}: missing {', '.join(f'{p}.onnx' for p in missing)}")
    return {p: paths[p] for p in SPLIT_PARTS}


def select_providers(available: Sequence[str], device: str | None, providers: Sequence[Any] | None) -> list[Any]:
    """Execution providers: ``providers`` as given; else by ``device``: ``None``/``"auto"`` = CUDA
    first when ONNX Runtime has it, then CPU; ``"cpu"``; ``"cuda"`` or ``"cuda:N"`` (required)."""
    if providers:
        for p in providers:
            name = p[0] if isinstance(p, (tuple, list)) else p
            if name not in available:
                raise BackendUnavailableError(f"onnxruntime backend: provider {name!r} is not available; available: {list(available)}")
        return list(providers)
    dev = (device or "auto").lower()
    has_cuda = "CUDAExecutionProvider" in available
    if dev == "auto":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"] if has_cuda else ["CPUExecutionProvider"]
    if dev == "cpu":
        return ["CPUExecutionProvider"]
    if dev.startswith("cuda"):
        if not has_cuda:
            raise BackendUnavailableError(
                f"onnxruntime backend: device {device!r} requested but this ONNX Runtime has no CUDAExecutionProvider "
                f"(available: {list(available)}); pip install onnxruntime-gpu"
            )
        idx = int(dev.split(":", 1)[1]) if ":" in dev else 0
        return [("CUDAExecutionProvider", {"device_id": idx}), "CPUExecutionProvider"]
    raise ConfigError(f"onnxruntime backend: device must be auto, cpu, cuda or cuda:N, got {device!r}")


def export_cached(cfg: PointPillarsConfig, state_dict: Mapping[str, Any], precision: str, fused: bool,
                  cache_dir: str | Path | None = None) -> dict[str, Path]:
    """Export ``state_dict`` once per (config, weights, precision, FP16 policy, package version)
    into ``cache_dir`` (default :func:`default_cache_dir`, else a temporary folder) and return the paths.
    INT8 graphs need calibration frames: export them with ``export/export_onnx.py --int8`` and pass the folder."""
    if precision not in ("fp32", "fp16"):
        raise ConfigError(f"onnxruntime backend: graphs exported on the fly are fp32 or fp16, not {precision!r}; "
                          "export INT8 graphs with export/export_onnx.py --int8 --calib DIR and load that folder (engine_dir)")
    from ..artifacts import METADATA_FORMAT
    from ..exporter import DEFAULT_FP16_POLICY, OPSET, export_onnx, read_graph_metadata, state_dict_sha256

    weights = state_dict_sha256(state_dict)
    key_text = "|".join([cfg.hash(), weights, precision, repr(DEFAULT_FP16_POLICY), __version__, METADATA_FORMAT, str(OPSET)])
    key = hashlib.sha256(key_text.encode()).hexdigest()[:20]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = root / "onnx" / f"{cfg.name}-{precision}-{key}"
    wanted = ("full",) if fused else SPLIT_PARTS
    if all((folder / f"{p}.onnx").is_file() for p in wanted):
        try:
            metas = [read_graph_metadata(folder / f"{p}.onnx") for p in wanted]
            if all(m.weights_sha256 == weights and m.config_hash == cfg.hash() for m in metas):
                return {p: folder / f"{p}.onnx" for p in wanted}
        except EngineError:
            pass  # a damaged or edited cache entry (verified at read) is simply exported again
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.mkdtemp(prefix="pointpillars_trt_onnx_"))
    paths = export_onnx(state_dict, cfg, folder, fp16=precision == "fp16", fused=fused)
    return {p: paths[p] for p in wanted}


def load_graph_metadata(paths: Mapping[str, Path], cfg: PointPillarsConfig | None, state_dict: Mapping[str, Any] | None,
                        precision: str | None, verify: bool = True) -> tuple[PointPillarsConfig, dict[str, Any]]:
    """``(config, {part: ArtifactMetadata})`` of the graphs at ``paths``, checked: each is the part
    it is named for; they were exported together; with ``verify`` each one's embedded config and
    graph match their recorded hashes (``config_hash``, ``graph_sha256``: an edited config or weight
    is an :class:`EngineError` naming the field); ``cfg`` (adopted from the graphs when None) is
    theirs (:class:`ConfigError` naming the fields); the precision is ``precision`` when given;
    and with ``state_dict`` they hold those weights (``weights_sha256``)."""
    from ..artifacts import check_artifact_config, read_onnx_metadata
    from ..exporter import check_graph_set, check_graph_weights, state_dict_sha256

    metas = {part: read_onnx_metadata(p, verify=verify) for part, p in paths.items()}
    for part, meta in metas.items():
        if meta.part != part:
            raise EngineError(f"{meta.path}: its metadata says it is the {meta.part!r} graph, not {part!r}")
    check_graph_set(metas.values())
    first = next(iter(metas.values()))
    cfg = cfg if cfg is not None else first.config
    for meta in metas.values():
        check_artifact_config(meta, cfg)
    if precision is not None and first.precision != precision:
        raise EngineError(f"{first.path}: graphs are {first.precision}, but precision={precision!r} was asked for")
    if state_dict is not None:
        weights = state_dict_sha256(state_dict)
        for meta in metas.values():
            check_graph_weights(meta, weights)
    return cfg, metas


class CanvasScatter:
    """The MFN on the host, as ``mfn.onnx`` computes it: ``[P, C]`` pillar features at ``coords``
    ``[P, 2]`` int (ix, iy) -> the ``[1, C, ny, nx]`` canvas, zero where no pillar is. One canvas
    per thread is kept between frames and only the cells the thread's previous frame wrote are
    cleared (a frame fills a few percent of the cells; zeroing, scattering and transposing the whole
    canvas, as the graph does, took about 30 ms a frame on 2 cores). The array returned is
    overwritten by the same thread's next call. :class:`EngineError` for a coordinate off the grid."""

    def __init__(self, nx: int, ny: int) -> None:
        self.nx, self.ny = nx, ny
        self._local = threading.local()

    def __call__(self, pillar_features: np.ndarray, coords: np.ndarray) -> np.ndarray:
        p, c = pillar_features.shape
        ix, iy = coords[:, 0].astype(np.int64), coords[:, 1].astype(np.int64)
        if p and (min(ix.min(), iy.min()) < 0 or ix.max() >= self.nx or iy.max() >= self.ny):
            raise EngineError(f"scatter: pillar coordinates outside the {self.nx} x {self.ny} grid")
        canvas = getattr(self._local, "canvas", None)
        if canvas is None or canvas.shape[0] != c or canvas.dtype != pillar_features.dtype:
            canvas = self._local.canvas = np.zeros((c, self.ny * self.nx), pillar_features.dtype)
            self._local.written = np.zeros(0, np.int64)
        canvas[:, self._local.written] = 0
        flat = iy * self.nx + ix
        order = np.argsort(flat, kind="stable")  # cells in memory order: each channel's row written front to back
        flat = flat[order]
        canvas[:, flat] = pillar_features[order].T
        self._local.written = flat
        return canvas.reshape(1, c, self.ny, self.nx)


class OnnxRuntimeBackend(Backend):
    """PFN -> scatter (MFN) -> RPN as three ONNX Runtime sessions, or one session of ``full.onnx``.

    ``engine_dir``: a folder of exported graphs or a ``{part: path}`` map; their metadata is
    verified and must match ``cfg`` (:func:`load_graph_metadata`), or ``cfg=None`` adopts the
    graphs' config. With ``state_dict`` too, the graphs must hold those weights
    (:class:`EngineError` otherwise). Without ``engine_dir``, ``state_dict`` is exported to the
    cache (:func:`export_cached`) in ``precision``. Inputs and outputs are bound by name;
    ``features`` is cast to the graph's float type; outputs are float32. INT8 graphs (their metadata
    says ``int8``: explicit Q/DQ, ``export/export_onnx.py --int8``) run as they are, the graph
    optimizers of :data:`INT8_DISABLED_OPTIMIZERS` left out.
    The split graphs' scatter runs on the host (:class:`CanvasScatter`, the same function as
    ``mfn.onnx``, which is loaded and checked but not run per frame). Per-stage times (``pfn``,
    ``scatter``, ``rpn``; ``full`` for the fused graph) are in ``last_timings_ms``.
    """

    name = "onnxruntime"

    def __init__(
        self,
        cfg: PointPillarsConfig | None = None,
        engine_dir: str | Path | Mapping[str, str | Path] | None = None,
        state_dict: Mapping[str, Any] | None = None,
        providers: Sequence[Any] | None = None,
        fused: bool = False,
        *,
        precision: str | None = None,
        device: str | None = None,
        cache_dir: str | Path | None = None,
        threads: int | None = None,
        verify: bool = True,
    ) -> None:
        ort = _import_ort()
        if precision not in (None, *PRECISIONS):
            raise ConfigError(f"onnxruntime backend: precision must be one of {PRECISIONS}, got {precision!r}")
        if engine_dir is not None:
            paths = resolve_graph_paths(engine_dir, fused)
        elif state_dict is not None:
            if cfg is None:
                raise ConfigError("onnxruntime backend: a state dict needs its config (cfg)")
            paths = export_cached(cfg, state_dict, precision or "fp32", fused, cache_dir)
        else:
            raise ConfigError("onnxruntime backend: give engine_dir (exported ONNX graphs) or a state_dict to export")
        cfg, metas = load_graph_metadata(paths, cfg, state_dict if engine_dir is not None else None, precision, verify)
        first = next(iter(metas.values()))
        super().__init__(cfg)
        self.graph_paths = paths
        self.metadata = metas
        self.precision = first.precision
        self.fused = "full" in paths
        self.providers = select_providers(ort.get_available_providers(), device, providers)
        self.threads = threads
        self._ort = ort
        self._sessions: dict[str, Any] = {}
        nx, ny, _ = cfg.grid_size
        self._scatter = CanvasScatter(nx, ny)

    # ---- lifecycle ------------------------------------------------------------------------
    def _activate(self) -> None:
        opts = self._ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = int(self.threads)
        sessions = {}
        disabled = list(INT8_DISABLED_OPTIMIZERS) if self.precision == "int8" else None
        for part, path in self.graph_paths.items():
            try:
                sess = self._ort.InferenceSession(str(path), sess_options=opts, providers=self.providers, disabled_optimizers=disabled)
            except Exception as exc:  # onnxruntime raises its own exception types
                raise EngineError(f"{path}: ONNX Runtime cannot load it: {exc}") from exc
            want_in, want_out = GRAPH_IO[part]
            got_in = {i.name for i in sess.get_inputs()}
            got_out = {o.name for o in sess.get_outputs()}
            if got_in != set(want_in) or not set(want_out) <= got_out:
                raise EngineError(
                    f"{path}: inputs {sorted(got_in)} / outputs {sorted(got_out)} are not the {part} graph's "
                    f"{list(want_in)} / {list(want_out)}"
                )
            sessions[part] = sess
        self._sessions = sessions
        first = sessions["full"] if self.fused else sessions["pfn"]
        ftype = {i.name: i.type for i in first.get_inputs()}["features"]
        self._float = np.float16 if ftype == "tensor(float16)" else np.float32

    def _deactivate(self) -> None:
        self._sessions = {}

    @property
    def active_providers(self) -> list[str]:
        """Providers the sessions really use (after activation)."""
        return next(iter(self._sessions.values())).get_providers() if self._sessions else []

    # ---- running ------------------------------------------------------------------------
    def run_part(self, part: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one graph (``pfn``, ``mfn``, ``rpn`` or ``full``) on named inputs, as given (no casts)."""
        self.activate()
        if part not in self._sessions:
            raise ConfigError(f"onnxruntime backend: no {part!r} graph loaded (have {sorted(self._sessions)})")
        names = list(GRAPH_IO[part][1])
        try:
            outs = self._sessions[part].run(names, {k: feeds[k] for k in GRAPH_IO[part][0]})
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EngineError(f"{self.graph_paths[part]}: ONNX Runtime failed: {exc}") from exc
        return dict(zip(names, outs))

    def _infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        timings: dict[str, float] = {}
        timer = StageTimer(timings)
        x = {
            "features": np.ascontiguousarray(feeds["features"], dtype=self._float),
            "num_points": np.ascontiguousarray(feeds["num_points"], dtype=np.int32),
            "coords": np.ascontiguousarray(feeds["coords"], dtype=np.int32),
        }
        if self.fused:
            out = self.run_part("full", x)
            timer.mark("full")
        else:
            pf = self.run_part("pfn", x)["pillar_features"]
            timer.mark("pfn")
            canvas = self._scatter(pf, x["coords"])
            timer.mark("scatter")
            out = self.run_part("rpn", {"canvas": canvas})
            timer.mark("rpn")
        self.last_timings_ms = timings
        return {k: np.asarray(out[k], dtype=np.float32) for k in OUTPUT_NAMES}


@register_backend("onnxruntime", OnnxRuntimeOptions)
def _make_onnxruntime(cfg: PointPillarsConfig, state_dict, engine_dir, options: OnnxRuntimeOptions) -> OnnxRuntimeBackend:
    o = options
    return OnnxRuntimeBackend(cfg, engine_dir, state_dict, o.providers, o.fused, precision=o.precision and str(o.precision),
                              device=o.device, cache_dir=o.cache_dir, threads=o.threads, verify=o.verify)
