"""Training (OpenPCDet's PointPillars recipe) on KITTI-layout data: data pipeline with GT sampling
and augmentations, anchor target assignment, losses, the training loop and the final evaluation."""

from .augment import flip_x, object_noise, random_flip_x, random_rotation, random_scaling, rotate, scale
from .batched import RawPillarizer, decorate, flatten_head_batch, forward_batch, init_head, scatter_batch
from .dataset import AugmentConfig, RunSampler, Sample, TrainDataset, collate
from .evaluate import evaluate_model, predict_frames
from .freeze import freeze, module_names
from .geometry import boxes_in_range, count_points_in_boxes, points_in_any_box, points_in_boxes, points_in_range
from .gt_database import GTDatabase, GTSampler, build_database
from .kitti_data import FrameAnnotations, KittiFrames, object_difficulty, read_dataset_info
from .losses import LossWeights, add_sin_difference, bce_with_logits, detection_loss, distillation_loss, range_ramp, sigmoid_focal_loss, truncation_weight
from .provenance import data_provenance
from .targets import IOU_MODES, FrameTargets, TargetAssigner, direction_bins, from_canonical
from .trainer import TrainResult, TrainSettings, make_optimizer, positive_weights, refresh_batchnorm, state_dict_fp32, train

__all__ = [
    "AugmentConfig", "FrameAnnotations", "FrameTargets", "GTDatabase", "GTSampler", "IOU_MODES", "KittiFrames",
    "LossWeights", "RawPillarizer", "RunSampler", "Sample", "TargetAssigner", "TrainDataset", "TrainResult",
    "TrainSettings", "add_sin_difference", "bce_with_logits", "boxes_in_range", "build_database", "collate", "count_points_in_boxes",
    "data_provenance", "decorate", "detection_loss", "direction_bins", "distillation_loss", "evaluate_model", "flatten_head_batch", "flip_x",
    "forward_batch", "freeze", "from_canonical", "init_head", "make_optimizer", "module_names", "object_difficulty", "object_noise",
    "points_in_any_box", "points_in_boxes", "points_in_range", "positive_weights", "predict_frames", "random_flip_x",
    "random_rotation", "random_scaling", "range_ramp", "read_dataset_info", "refresh_batchnorm", "rotate", "scale", "scatter_batch",
    "sigmoid_focal_loss", "state_dict_fp32", "train", "truncation_weight",
]
