"""The training loop: AdamW + one-cycle LR (OpenPCDet's ``adam_onecycle``), gradient clipping,
optional mixed precision, a multi-worker data pipeline."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config import PointPillarsConfig
from ..errors import ConfigError
from ..model import PointPillars
from ..postprocess import generate_anchors, to_canonical
from .batched import flatten_head_batch, forward_batch, init_head
from .dataset import AugmentConfig, RunSampler, TrainDataset, collate
from .freeze import freeze
from .gt_database import GTDatabase, build_database
from .kitti_data import KittiFrames
from .losses import LossWeights, detection_loss, distillation_loss, range_ramp, truncation_weight
from .schedule import OneCycle

AMP_MODES = ("auto", "bf16", "fp16", "none")


@dataclass(frozen=True)
class TrainSettings:
    """How to train. Give ``steps`` or ``epochs`` (epochs of the train split; fractions allowed).

    Defaults are OpenPCDet's PointPillars recipe: AdamW (betas 0.9/0.99, weight decay 0.01),
    one-cycle LR with max 0.003, div factor 10, 40 % warm-up, momentum 0.95 -> 0.85, gradient
    norm clip 10. ``amp="auto"`` is bf16 autocast on CUDA and float32 on CPU. ``max_seconds``: for runs
    with a hard wall-clock limit: the one-cycle schedule is fitted to it (:mod:`~.schedule`: a run that
    is too slow for ``steps`` in that time moves through the cycle by the clock instead), and training
    ends (logged) after the first step that finishes this long after the loop started, annealed
    (None: no limit). ``far_weight``:
    the classification loss of a positive anchor is weighted by :func:`~.losses.range_ramp` of its
    BEV range over ``far_weight_range`` (1 near, ``far_weight`` far; 1.0: off, OpenPCDet's).
    ``cut_box_weight``: the box and direction losses of a positive anchor are weighted by
    :func:`~.losses.truncation_weight` of its matched object's label truncation (objects cut by the
    image's edge, whose whole box is the target although only a part has points; 1.0: off).
    ``twin_negative_weight``: a background anchor whose twin (:func:`rotation_twins`: the other rotation
    at the same place, class and size) is positive gets this times its classification weight (1.0: off).
    ``distill``: the weight of :func:`~.losses.distillation_loss` against the ``teacher`` given to
    :func:`train` in the total loss (0: off, no teacher). ``freeze``: dotted names of the model's parts to keep
    fixed while fine-tuning (:func:`~.freeze.freeze`, e.g. ``("pfn", "rpn.blocks")``; empty: train all).
    """

    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 4
    workers: int = 0
    device: str = "cpu"
    seed: int = 0
    lr: float = 0.003
    weight_decay: float = 0.01
    div_factor: float = 10.0
    final_div_factor: float = 1e4
    pct_start: float = 0.4
    moms: tuple[float, float] = (0.95, 0.85)
    beta2: float = 0.99
    grad_clip: float = 10.0
    amp: str = "auto"
    log_every: int = 50
    iou: str = "nearest_bev"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss_weights: LossWeights = field(default_factory=LossWeights)
    channels_last: bool = True
    prefetch_factor: int = 4
    max_seconds: float | None = None
    far_weight: float = 1.0
    far_weight_range: tuple[float, float] = (20.0, 60.0)
    cut_box_weight: float = 1.0
    twin_negative_weight: float = 1.0
    distill: float = 0.0
    freeze: tuple[str, ...] = ()

    def total_steps(self, num_frames: int) -> int:
        if (self.steps is None) == (self.epochs is None):
            raise ConfigError("training: give exactly one of steps or epochs")
        n = self.steps if self.steps is not None else int(math.ceil(self.epochs * num_frames / self.batch_size))
        if n < 1:
            raise ConfigError(f"training: {n} steps; need at least 1")
        return int(n)

    def amp_dtype(self, device: torch.device) -> torch.dtype | None:
        if self.amp not in AMP_MODES:
            raise ConfigError(f"training: amp {self.amp!r} is not one of {AMP_MODES}")
        mode = ("bf16" if device.type == "cuda" else "none") if self.amp == "auto" else self.amp
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}[mode]


@dataclass
class TrainResult:
    """``model`` (float32, eval mode, on the CPU), ``steps`` done, ``seconds`` of training,
    ``history`` one dict per logged step, ``database`` object counts per class."""

    model: PointPillars
    steps: int
    seconds: float
    samples: int
    history: list[dict]
    database: dict[str, int]


def make_optimizer(model: torch.nn.Module, s: TrainSettings, total_steps: int) -> tuple[torch.optim.AdamW, OneCycle]:
    """AdamW over the parameters that need gradients and the one-cycle schedule (:class:`~.schedule.OneCycle`,
    advanced once per optimiser step; fitted to ``s.max_seconds`` when given)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=s.lr / s.div_factor, betas=(s.moms[0], s.beta2), weight_decay=s.weight_decay)
    return opt, OneCycle(opt, total_steps, s.lr, s.pct_start, s.div_factor, s.final_div_factor, s.moms, s.max_seconds)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def make_loader(dataset: TrainDataset, s: TrainSettings, total_steps: int, pin: bool) -> DataLoader:
    sampler = RunSampler(len(dataset), total_steps * s.batch_size, seed=s.seed)
    kw = dict(prefetch_factor=s.prefetch_factor, worker_init_fn=_worker_init) if s.workers > 0 else {}
    return DataLoader(
        dataset, batch_size=s.batch_size, sampler=sampler, num_workers=s.workers, collate_fn=collate,
        pin_memory=pin, drop_last=True, **kw,
    )


def _gt_database(
    cfg: PointPillarsConfig, frames: KittiFrames, s: TrainSettings, database: GTDatabase | None, log
) -> GTDatabase | None:
    """``database``, or, when GT sampling is on and none is given, one built from ``frames`` (logged)."""
    if not s.augment.gt_sampling or database is not None:
        return database
    t0 = time.perf_counter()
    database = build_database(frames, cfg.classes, s.augment.db_min_points, workers=s.workers,
                              any_difficulty=s.augment.db_any_difficulty)
    log(f"gt database: {len(database)} objects ({', '.join(f'{c} {database.count(c)}' for c in cfg.classes)}) "
        f"in {time.perf_counter() - t0:.1f} s")
    return database


def _fresh_model(cfg: PointPillarsConfig, s: TrainSettings, device: torch.device,
                 init: Mapping[str, torch.Tensor] | None = None) -> PointPillars:
    """A model seeded with ``s.seed``, head initialised (or holding the weights ``init``, a native state dict
    that fits ``cfg`` exactly), in training mode on ``device``; on CUDA with a channels-last RPN (if
    ``s.channels_last``), cuDNN autotuning and TF32."""
    torch.manual_seed(s.seed)
    model = PointPillars(cfg)
    if init is None:
        init_head(model)
    else:
        model.load_state_dict(dict(init), strict=True)
    model.train().to(device)
    if s.channels_last and device.type == "cuda":
        model.rpn.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return model


def positive_weights(cfg: PointPillarsConfig, s: TrainSettings, device) -> torch.Tensor | None:
    """``[N]`` classification weights of positive anchors by BEV range (``s.far_weight``), in the
    anchor order of the head; None when ``s.far_weight`` is 1 (off)."""
    if s.far_weight == 1.0:
        return None
    lo, hi = s.far_weight_range
    if not (s.far_weight > 0 and 0 <= lo < hi):
        raise ConfigError(f"training: far_weight {s.far_weight} must be > 0 and far_weight_range {s.far_weight_range} 0 <= lo < hi")
    anchors = to_canonical(generate_anchors(cfg).reshape(-1, 7), cfg.head.box_layout)
    xy = torch.from_numpy(np.ascontiguousarray(anchors[:, :2], dtype=np.float32))
    return range_ramp(xy, s.far_weight, lo, hi).to(device)


def rotation_twins(cfg: PointPillarsConfig) -> np.ndarray:
    """int64 ``[N]`` in the anchor order of :func:`~pointpillars_trt.postprocess.anchors.generate_anchors`
    (``N = ny * nx * A``): for each anchor, the flat index of the anchor at the same place, of the same
    class and size, with the other of its class's two rotations; ``-1`` where the class has not exactly two."""
    per_loc = []
    for a in cfg.anchors:
        for _ in a.sizes:
            base = len(per_loc)
            r = len(a.rotations)
            per_loc += [base + (1 - j) if r == 2 else -1 for j in range(r)]
    twin = np.asarray(per_loc, dtype=np.int64)
    nx, ny = cfg.feature_map_size
    offsets = np.arange(nx * ny, dtype=np.int64)[:, None] * len(twin)
    return np.where(twin[None, :] >= 0, offsets + twin[None, :], -1).reshape(-1)


def check_distillation(s: TrainSettings, teacher: torch.nn.Module | None) -> None:
    """ConfigError unless ``s.distill`` >= 0 and a ``teacher`` is given exactly when ``s.distill`` > 0."""
    if s.distill < 0 or (s.distill > 0) != (teacher is not None):
        raise ConfigError(f"training: distill {s.distill} needs a teacher exactly when > 0 (and must be >= 0); "
                          f"teacher {'given' if teacher is not None else 'missing'}")


def _head_rows(model, b: dict, cfg: PointPillarsConfig, device, amp_dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``model``'s per-anchor head rows (:func:`flatten_head_batch`) of the batch ``b`` (on ``device``), the
    forward pass under autocast to ``amp_dtype`` (None: float32)."""
    with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        heads = forward_batch(model, b["raw"], b["num_points"], b["coords"], b["labels"].shape[0])
    return flatten_head_batch(*heads, cfg)


def _batch_losses(model, batch: dict, cfg: PointPillarsConfig, s: TrainSettings, device, amp_dtype,
                  pos_w: torch.Tensor | None = None, teacher: torch.nn.Module | None = None,
                  twins: torch.Tensor | None = None) -> tuple[dict, int]:
    """``(losses, B)``: :func:`detection_loss` of one collated batch of ``B`` frames, the forward pass
    under autocast to ``amp_dtype`` (None: float32); ``pos_w``: see :func:`positive_weights`; ``twins``: see
    :func:`rotation_twins` (used with ``s.twin_negative_weight``). With a
    ``teacher`` (run on the same batch without gradients), :func:`distillation_loss` too, and
    ``total`` = detection total + ``s.distill`` * ``kd``."""
    b = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    rows = _head_rows(model, b, cfg, device, amp_dtype)
    box_w = truncation_weight(b["pos_truncation"], s.cut_box_weight) if s.cut_box_weight != 1.0 else None
    losses = detection_loss(*rows, b["labels"], b["pos_index"], b["box_targets"], b["dir_targets"], s.loss_weights, pos_w, box_w,
                            twins, s.twin_negative_weight)
    if teacher is not None:
        with torch.no_grad():
            teacher_rows = _head_rows(teacher, b, cfg, device, amp_dtype)
        losses.update(distillation_loss(rows, teacher_rows, b["labels"], s.loss_weights))
        losses["total"] = losses["total"] + s.distill * losses["kd"]
    return losses, b["labels"].shape[0]


def _optimizer_step(loss: torch.Tensor, model, opt, scaler, grad_clip: float) -> None:
    """Backward, clip the gradient norm to ``grad_clip``, step (through the fp16 ``scaler`` if any)."""
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()


class _LossMeter:
    """Mean losses (total, cls, box, dir, and kd with its three parts when ``distill``) since the last record, with the frame
    rate and the share of the time spent waiting for data (``wait``, added to by the caller)."""

    def __init__(self, device: torch.device, distill: bool = False) -> None:
        self.keys = ("total", "cls", "box", "dir") + (("kd", "kd_cls", "kd_box", "kd_dir") if distill else ())
        self.acc = torch.zeros(len(self.keys), device=device)
        self.n = 0
        self.t_start = time.perf_counter()
        self.t_log = self.t_start
        self.wait = 0.0

    def add(self, losses: dict) -> None:
        self.acc += torch.stack([losses[k].detach() for k in self.keys])
        self.n += 1

    def record(self, step: int, lr: float, batch_size: int) -> dict:
        """The history entry of ``step``; starts the next interval."""
        vals = dict(zip(self.keys, (self.acc / self.n).tolist()))
        now = time.perf_counter()
        rec = {
            "step": step, "loss": vals.pop("total"), **vals, "lr": lr, "elapsed_s": now - self.t_start,
            "frames_per_s": self.n * batch_size / max(now - self.t_log, 1e-9),
            "data_wait_frac": self.wait / max(now - self.t_log, 1e-9),
        }
        self.acc.zero_()
        self.n = 0
        self.t_log = now
        self.wait = 0.0
        return rec


def _format_record(rec: dict, total: int) -> str:
    kd = (f" kd {rec['kd']:.4f} = {rec['kd_cls']:.4f} + {rec['kd_box']:.4f} + {rec['kd_dir']:.4f}"
          if "kd" in rec else "")
    return (f"step {rec['step']}/{total} loss {rec['loss']:.4f} (cls {rec['cls']:.4f} box {rec['box']:.4f} "
            f"dir {rec['dir']:.4f}{kd}) lr {rec['lr']:.2e} {rec['frames_per_s']:.1f} frames/s "
            f"data-wait {100 * rec['data_wait_frac']:.0f}%")


def _cpu_eval(model: PointPillars) -> PointPillars:
    """The model on the CPU in eval mode, every parameter contiguous."""
    model = model.to("cpu").to(memory_format=torch.contiguous_format).eval()
    for p in model.parameters():
        p.data = p.data.contiguous()
    return model


def train(
    cfg: PointPillarsConfig,
    frames: KittiFrames,
    settings: TrainSettings,
    log: Callable[[str], None] = print,
    database: GTDatabase | None = None,
    model: torch.nn.Module | None = None,
    teacher: torch.nn.Module | None = None,
    init: Mapping[str, torch.Tensor] | None = None,
) -> TrainResult:
    """Train a fresh model on ``frames`` (the train split). Builds the GT database from ``frames``
    when GT sampling is on and none is given. ``init``: start from these weights (a native state dict
    fitting ``cfg``, e.g. :func:`~pointpillars_trt.checkpoint.load_checkpoint`'s) instead of a fresh
    initialisation. ``model``: fine-tune this one instead, in the mode it
    is in (e.g. :class:`~.qat.QatPointPillars`, eval mode); ``TrainResult.model`` is then it.
    ``settings.freeze`` keeps the named parts of either fixed (:func:`~.freeze.freeze`).
    ``teacher``: the model to imitate (weight ``settings.distill``, :func:`check_distillation`), run
    in the mode it is in (eval, frozen, for a float model distilled into QAT); the history gets ``kd``."""
    s = settings
    check_distillation(s, teacher)
    if s.workers > 0:
        # Workers hand back many small tensors; passing them as file descriptors runs out of
        # descriptors on large datasets ("received 0 items of ancdata").
        torch.multiprocessing.set_sharing_strategy("file_system")
    device = torch.device(s.device)
    total = s.total_steps(len(frames))
    amp_dtype = s.amp_dtype(device)
    if model is not None and init is not None:
        raise ConfigError("training: give a model to fine-tune or init weights, not both")
    model = _fresh_model(cfg, s, device, init) if model is None else model.to(device)
    frozen = freeze(model, s.freeze)
    if frozen:
        log(f"frozen: {', '.join(s.freeze)} ({len(frozen)} parameter tensors, "
            f"{sum(p.numel() for p in model.parameters() if not p.requires_grad)} of "
            f"{sum(p.numel() for p in model.parameters())} weights)")
    database = _gt_database(cfg, frames, s, database, log)  # after the model: a bad freeze fails before this work
    counts = {c: database.count(c) for c in cfg.classes} if database is not None else {}
    teacher = teacher.to(device) if teacher is not None else None
    opt, sched = make_optimizer(model, s, total)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    pos_w = positive_weights(cfg, s, device)
    if not s.cut_box_weight > 0:
        raise ConfigError(f"training: cut_box_weight {s.cut_box_weight} must be > 0 (1: off)")
    if not s.twin_negative_weight > 0:
        raise ConfigError(f"training: twin_negative_weight {s.twin_negative_weight} must be > 0 (1: off)")
    twins = torch.from_numpy(rotation_twins(cfg)).to(device) if s.twin_negative_weight != 1.0 else None

    dataset = TrainDataset(frames, cfg, s.augment, database, seed=s.seed, iou=s.iou)
    dataset[0]  # compile the numba kernels once here; forked workers inherit them
    loader = make_loader(dataset, s, total, pin=device.type == "cuda")
    log(f"training {total} steps, batch {s.batch_size}, {len(frames)} frames, device {device}, "
        f"amp {amp_dtype or 'off'}, workers {s.workers}")

    history: list[dict] = []
    meter = _LossMeter(device, distill=teacher is not None)
    t_fetch = time.perf_counter()
    step = 0
    for batch in loader:
        meter.wait += time.perf_counter() - t_fetch
        losses, B = _batch_losses(model, batch, cfg, s, device, amp_dtype, pos_w, teacher, twins)
        _optimizer_step(losses["total"], model, opt, scaler, s.grad_clip)
        step += 1
        meter.add(losses)
        sched.advance(step, time.perf_counter() - meter.t_start)
        if step % s.log_every == 0 or step == total:
            history.append(meter.record(step, sched.lr, B))
            log(_format_record(history[-1], total))
        t_fetch = time.perf_counter()
        if sched.done(t_fetch - meter.t_start) and step < total:
            log(f"stopped after {step} of {total} steps: the {s.max_seconds:.0f} s time limit is up "
                f"(the schedule was fitted to it and has annealed: lr {sched.lr:.2e})")
            if meter.n:
                history.append(meter.record(step, sched.lr, B))
            break
    seconds = time.perf_counter() - meter.t_start
    return TrainResult(_cpu_eval(model), step, seconds, step * s.batch_size, history, counts)


def state_dict_fp32(model: PointPillars) -> dict[str, torch.Tensor]:
    """The model's state dict as contiguous CPU tensors (what :func:`save_native` wants)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


@torch.no_grad()
def refresh_batchnorm(model: PointPillars, batches, device: str | torch.device = "cpu") -> None:
    """Re-estimate every BatchNorm's running statistics as the plain average over ``batches``
    (collated training batches) in training mode, then restore the momenta; the model is left in
    eval mode. Useful after short runs: the model's BN momentum (0.01, OpenPCDet's) needs
    hundreds of steps before the running statistics follow the weights."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for batch in batches:
        b = {k: v.to(device) for k, v in batch.items()}
        forward_batch(model, b["raw"], b["num_points"], b["coords"], b["labels"].shape[0])
    for m, mom in zip(norms, momenta):
        m.momentum = mom
    model.eval()
