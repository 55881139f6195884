"""GPU post-processing (``kernels/postprocess.cu``) against the CPU PostProcessor.

Head maps come from a model whose scores are realistically distributed (``lively_state_dict``)
run on real KITTI frames (KITTI config, class-agnostic NMS) and on random clouds with the
360-degree example config (class-aware NMS). The GPU must give the same boxes in the same order.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests.cuda_helpers import cuda_device, nvrtc_skip_reason, torch_cuda  # noqa: F401  (fixtures)
from pointpillars_trt.cuda.nvrtc import Target, choose_target, compile_source, read_kernel_source
from pointpillars_trt.errors import ConfigError
from tests.helpers import random_cloud

needs_nvrtc = pytest.mark.skipif(nvrtc_skip_reason() is not None, reason=str(nvrtc_skip_reason()))
ENTRIES = {f"pp_post_{n}" for n in ("score", "hist2", "hist3", "sel_count", "sel_write", "rank", "decode_agnostic", "sort_decode",
                                             "nms_mask", "nms_scan", "output")}
OPTIONS = ("--std=c++17", "--fmad=false")


@needs_nvrtc
@pytest.mark.parametrize("cc", [(8, 0), (9, 0)])
def test_postprocess_compiles(cc):
    src, _ = read_kernel_source("postprocess.cu")
    assert "#include" not in src
    image = compile_source(src, "postprocess.cu", choose_target(cc, [cc[0] * 10 + cc[1]]), OPTIONS)
    assert image.kind == "cubin" and image.data[:4] == b"\x7fELF"
    ptx = compile_source(src, "postprocess.cu", Target(f"--gpu-architecture=compute_{cc[0]}{cc[1]}", "ptx"), OPTIONS).data.decode(errors="replace")
    assert set(re.findall(r"\.entry (\w+)\(", ptx)) == ENTRIES


# ---- GPU -------------------------------------------------------------------------------------------
def head_maps(cfg, clouds, seed=0):
    """Head maps (numpy float32) of a lively model for each cloud."""
    import torch

    from pointpillars_trt.model import build_model
    from pointpillars_trt.voxelize import NumbaVoxelizer
    from tests.helpers import lively_state_dict

    model = build_model(cfg)
    model.load_state_dict(lively_state_dict(cfg, seed=seed))
    vox = NumbaVoxelizer(cfg.voxel)
    out = []
    for pts in clouds:
        p = vox(pts)
        with torch.inference_mode():
            maps = model(torch.from_numpy(p.features), torch.from_numpy(p.num_points), torch.from_numpy(p.coords))
        out.append([m.numpy() for m in maps])
    return out


def gpu_post(cfg, maps, score_threshold=None):
    import torch

    from pointpillars_trt.postprocess.cuda import CudaPostProcessor, postprocess_torch

    pp = CudaPostProcessor(cfg)
    boxes, scores, labels, count = postprocess_torch(pp, *(torch.from_numpy(m).cuda() for m in maps), score_threshold=score_threshold)
    n = int(count.item())
    res = boxes[:n].cpu().numpy(), scores[:n].cpu().numpy(), labels[:n].cpu().numpy()
    pp.free()
    return res


def assert_same_detections(cfg, maps, score_threshold=None):
    from pointpillars_trt.postprocess import PostProcessor, iou_bev

    want = PostProcessor(cfg)(*maps, score_threshold=score_threshold)
    boxes, scores, labels = gpu_post(cfg, maps, score_threshold)
    assert len(boxes) == len(want.boxes), f"GPU kept {len(boxes)} boxes, CPU {len(want.boxes)}"
    assert len(boxes) > 0
    np.testing.assert_array_equal(labels, want.labels)
    np.testing.assert_allclose(scores, want.scores, atol=1e-5, rtol=0)
    np.testing.assert_allclose(boxes, want.boxes, atol=1e-4, rtol=1e-5)
    assert np.all(np.diag(iou_bev(boxes, want.boxes)) > 0.99)
    return len(boxes)


@pytest.mark.gpu
def test_kitti_class_agnostic(torch_cuda, kitti_config, kitti_frames):
    clouds = [np.fromfile(p, dtype=np.float32).reshape(-1, 4) for p in kitti_frames[:4]]
    for maps in head_maps(kitti_config, clouds):
        assert_same_detections(kitti_config, maps)


@pytest.mark.gpu
def test_example_class_aware(torch_cuda, example_config):
    assert not example_config.postprocess.class_agnostic_nms
    clouds = [random_cloud(example_config, 15000, seed=s) for s in range(3)]
    for maps in head_maps(example_config, clouds):
        assert_same_detections(example_config, maps)


@pytest.mark.gpu
@pytest.mark.parametrize("config", ["kitti", "example"])
def test_ties_and_more_candidates_than_pre_max(torch_cuda, kitti_config, example_config, config):
    """Logits rounded to float16 (many exact ties) and a low threshold (candidates > nms_pre_max):
    the top-k and NMS orders must still follow the CPU's stable sorts."""
    cfg = kitti_config if config == "kitti" else example_config
    maps = head_maps(cfg, [random_cloud(cfg, 20000, seed=11)], seed=3)[0]
    maps = [m.astype(np.float16).astype(np.float32) for m in maps]
    assert_same_detections(cfg, maps, score_threshold=0.02)


@pytest.mark.gpu
def test_nothing_above_threshold(torch_cuda, kitti_config):
    from pointpillars_trt.postprocess import PostProcessor

    maps = head_maps(kitti_config, [random_cloud(kitti_config, 5000, seed=1)])[0]
    maps[0] = np.full_like(maps[0], -20.0)
    assert len(PostProcessor(kitti_config)(*maps).boxes) == 0
    boxes, _, _ = gpu_post(kitti_config, maps)
    assert len(boxes) == 0


@pytest.mark.gpu
@pytest.mark.parametrize("config", ["kitti", "example"])
@pytest.mark.parametrize("half", [True, False], ids=["fp16", "fp32"])
def test_nhwc_head_slices_read_in_place(torch_cuda, kitti_config, example_config, config, half):
    """The GPU pipeline's layout: cls / box / dir as channel slices of one channels_last tensor
    (float16 in fp16 mode), read without a copy; same boxes as the CPU on the same values."""
    import torch

    from pointpillars_trt.postprocess.cuda import CudaPostProcessor
    from pointpillars_trt.network.device import head_layout
    from pointpillars_trt.postprocess import PostProcessor

    cfg = kitti_config if config == "kitti" else example_config
    maps = head_maps(cfg, [random_cloud(cfg, 20000, seed=5)], seed=2)[0]
    dtype = torch.float16 if half else torch.float32
    head = torch.cat([torch.from_numpy(m) for m in maps], dim=1).to("cuda", dtype).contiguous(memory_format=torch.channels_last)
    maps = [m.astype(np.float16).astype(np.float32) for m in maps] if half else maps
    splits = [m.shape[1] for m in maps]
    cls, box, dirs = torch.split(head, splits, dim=1)
    layout = head_layout(head)
    assert layout == (1, sum(splits), half)
    pp = CudaPostProcessor(cfg)
    out = [torch.zeros((pp.post_max, 7), device="cuda"), torch.zeros(pp.post_max, device="cuda"),
           torch.zeros(pp.post_max, dtype=torch.int32, device="cuda"), torch.zeros(1, dtype=torch.int32, device="cuda")]
    pp.enqueue(cls.data_ptr(), box.data_ptr(), dirs.data_ptr(), torch.cuda.current_stream().cuda_stream, boxes_ptr=out[0].data_ptr(),
               scores_ptr=out[1].data_ptr(), labels_ptr=out[2].data_ptr(), count_ptr=out[3].data_ptr(), layout=layout)
    n = int(out[3].item())
    want = PostProcessor(cfg)(*maps)
    assert n == len(want.boxes) > 0
    np.testing.assert_array_equal(out[2][:n].cpu().numpy(), want.labels)
    np.testing.assert_allclose(out[0][:n].cpu().numpy(), want.boxes, atol=1e-4, rtol=1e-5)
    pp.free()


def test_lane_layout_aligns_every_buffer():
    from pointpillars_trt.postprocess.cuda import LANE_ALIGN, lane_layout

    offsets, size = lane_layout({"a": 10, "b": 0, "c": 257, "d": 4})
    assert offsets == {"a": 0, "b": 256, "c": 512, "d": 1024} and size == 1280 and all(o % LANE_ALIGN == 0 for o in offsets.values())


def kernel_mask_tile(tile: int, words: int) -> tuple[int, int]:
    """pp_post_nms_mask's tile -> (row block, word), as its loop computes it (reference for the index arithmetic)."""
    rb, q = 0, tile
    while q >= words - rb:
        q -= words - rb
        rb += 1
    return rb, rb + q


@pytest.mark.parametrize("n", [1, 63, 64, 65, 640, 2168, 4096])
def test_mask_tiles_cover_each_word_on_and_above_the_diagonal_once(n):
    from pointpillars_trt.postprocess.cuda import mask_tiles

    w = -(-n // 64)
    tiles = [kernel_mask_tile(t, w) for t in range(mask_tiles(n))]
    assert sorted(tiles) == [(r, c) for r in range(w) for c in range(r, w)]


@pytest.mark.gpu
def test_nms_mask_on_one_block(torch_cuda, kitti_config, kitti_frames):
    """pp_post_nms_mask's blocks take the tiles in turn: a grid of one block, which computes every tile itself,
    gives the CPU's boxes as the resident-sized grid does (a real frame has hundreds of tiles)."""
    import torch

    from pointpillars_trt.postprocess import PostProcessor
    from pointpillars_trt.postprocess.cuda import CudaPostProcessor, mask_tiles, postprocess_torch

    clouds = [np.fromfile(p, dtype=np.float32).reshape(-1, 4) for p in kitti_frames[:2]]
    pp = CudaPostProcessor(kitti_config)
    sized = pp._mask_blocks
    assert pp.device.info.multiprocessor_count <= sized <= mask_tiles(pp.pre_max)
    for blocks in (1, sized):
        pp._mask_blocks = blocks
        for maps in head_maps(kitti_config, clouds):
            boxes, scores, labels, count = postprocess_torch(pp, *(torch.from_numpy(m).cuda() for m in maps))
            n, want = int(count.item()), PostProcessor(kitti_config)(*maps)
            assert n == len(want.boxes) > 0, blocks
            np.testing.assert_array_equal(labels[:n].cpu().numpy(), want.labels)
            np.testing.assert_allclose(boxes[:n].cpu().numpy(), want.boxes, atol=1e-4, rtol=1e-5)
    pp.free()


@pytest.mark.gpu
@pytest.mark.parametrize("in_shared", [True, False])
def test_nms_scan_with_and_without_the_diag_in_shared_memory(torch_cuda, kitti_config, kitti_frames, in_shared):
    """pp_post_nms_scan reads the matrix's diagonal and superdiagonal blocks from shared memory where they fit (here
    they do) and from global memory otherwise (large nms_pre_max): both give the CPU's boxes."""
    import torch

    from pointpillars_trt.postprocess import PostProcessor
    from pointpillars_trt.postprocess.cuda import CudaPostProcessor, postprocess_torch

    clouds = [np.fromfile(p, dtype=np.float32).reshape(-1, 4) for p in kitti_frames[:2]]
    pp = CudaPostProcessor(kitti_config)
    assert pp._diag_in_shared
    if not in_shared:
        pp._diag_in_shared, pp._scan_shared = False, pp.words * 8
    for maps in head_maps(kitti_config, clouds):
        boxes, scores, labels, count = postprocess_torch(pp, *(torch.from_numpy(m).cuda() for m in maps))
        n, want = int(count.item()), PostProcessor(kitti_config)(*maps)
        assert n == len(want.boxes) > 0
        np.testing.assert_array_equal(labels[:n].cpu().numpy(), want.labels)
        np.testing.assert_allclose(boxes[:n].cpu().numpy(), want.boxes, atol=1e-4, rtol=1e-5)
    pp.free()


@pytest.mark.gpu
def test_one_post_processor_over_many_frames(torch_cuda, kitti_config, kitti_frames):
    """The histograms are cleared by the rank pass, not by a memset per frame: one post-processor used frame after
    frame (and after a call that fails part way: the next one clears them) gives each frame the CPU's boxes."""
    import torch

    from pointpillars_trt.postprocess import PostProcessor
    from pointpillars_trt.postprocess.cuda import CudaPostProcessor, postprocess_torch

    clouds = [np.fromfile(p, dtype=np.float32).reshape(-1, 4) for p in kitti_frames[:3]]
    frames = head_maps(kitti_config, clouds)
    pp = CudaPostProcessor(kitti_config)
    ref = PostProcessor(kitti_config)
    for k, maps in enumerate([frames[0], frames[1], frames[2], frames[0], None, frames[1]]):
        if maps is None:  # an enqueue that stops after the first pass (bad argument): the histograms stay dirty
            pp._fn["hist2"], saved = None, pp._fn["hist2"]
            with pytest.raises(Exception):
                postprocess_torch(pp, *(torch.from_numpy(m).cuda() for m in frames[2]))
            pp._fn["hist2"] = saved
            assert not pp._hist_clean
            continue
        boxes, scores, labels, count = postprocess_torch(pp, *(torch.from_numpy(m).cuda() for m in maps))
        n = int(count.item())
        want = ref(*maps)
        assert n == len(want.boxes) > 0, k
        np.testing.assert_array_equal(labels[:n].cpu().numpy(), want.labels)
        np.testing.assert_allclose(boxes[:n].cpu().numpy(), want.boxes, atol=1e-4, rtol=1e-5)
        assert pp._hist_clean
    pp.free()


@pytest.mark.gpu
@pytest.mark.parametrize("config", ["kitti", "example", "mmdet3d"])
def test_lanes_give_each_frame_what_one_frame_gives(torch_cuda, kitti_config, example_config, kitti_frames, config):
    """``CudaPostProcessor(lanes=4)``: three frames' stacked maps in one launch per pass (class-agnostic and
    class-aware NMS) give, frame by frame, exactly the one-frame post-processor's boxes (and so the CPU's)."""
    import torch

    from pointpillars_trt.config import load_config
    from pointpillars_trt.executors.buffers import PackedLayout, tensor_ptr
    from pointpillars_trt.postprocess.cuda import CudaPostProcessor, LaneStrides

    cfg = {"kitti": kitti_config, "example": example_config, "mmdet3d": load_config("mmdet3d_kitti_3class")}[config]
    clouds = ([np.fromfile(p, dtype=np.float32).reshape(-1, 4) for p in kitti_frames[:3]] if config != "example"
              else [random_cloud(cfg, 15000, seed=s) for s in range(3)])
    frames = head_maps(cfg, clouds)
    stacked = [torch.from_numpy(np.concatenate([f[i] for f in frames])).cuda() for i in range(3)]  # [3, C, H, W] each
    lay = PackedLayout(cfg.postprocess.nms_post_max)
    packed = torch.zeros((3, lay.words), dtype=torch.int32, device="cuda")
    pp = CudaPostProcessor(cfg, lanes=4)
    strides = LaneStrides(*(t.stride(0) * t.element_size() for t in stacked), out=packed.stride(0) * packed.element_size())
    pp.enqueue(*(t.data_ptr() for t in stacked), torch.cuda.current_stream().cuda_stream, frames=3, strides=strides,
               boxes_ptr=tensor_ptr(packed, 0, lay.boxes), scores_ptr=tensor_ptr(packed, 0, lay.scores),
               labels_ptr=tensor_ptr(packed, 0, lay.labels), count_ptr=tensor_ptr(packed, 0, lay.count))
    rows = packed.cpu().numpy()
    f = rows.view(np.float32)
    for b, maps in enumerate(frames):
        n = int(rows[b, lay.count])
        want = gpu_post(cfg, maps)
        assert n == len(want[0]) > 0
        np.testing.assert_array_equal(f[b, : 7 * n].reshape(n, 7), want[0])
        np.testing.assert_array_equal(f[b, lay.scores: lay.scores + n], want[1])
        np.testing.assert_array_equal(rows[b, lay.labels: lay.labels + n], want[2])
    with pytest.raises(ConfigError, match="lanes"):
        pp.enqueue(*(t.data_ptr() for t in stacked), 0, frames=5, strides=strides, boxes_ptr=0, scores_ptr=0, labels_ptr=0,
                   count_ptr=0)
    pp.free()


# ---- every post-processing mode (issue 12): the GPU gives the CPU's boxes on real frames ----------
MODES = {
    "mmdet3d_preset": {},  # class-aware, top 100, score > 0.1, IoU > 0.01, keep 50
    "class_aware_score_at_least": {"score_rule": "at_least"},
    "class_aware_nms_at_least": {"nms_suppress_rule": "at_least"},
    "class_aware_threshold_first": {"pre_nms_order": "threshold_then_topk", "nms_pre_max": 1000, "nms_post_max": 300},
    "agnostic_topk_first_above": {"class_agnostic_nms": True, "pre_nms_order": "topk_then_threshold", "score_rule": "above"},
    "agnostic_nms_at_least": {"class_agnostic_nms": True, "nms_suppress_rule": "at_least", "nms_pre_max": 4096, "nms_post_max": 500},
    "canonical_yaw": {"yaw_range": "canonical", "nms_post_max": 500},
}


@pytest.mark.gpu
@pytest.mark.parametrize("mode", list(MODES))
def test_every_mode_on_real_frames(torch_cuda, kitti_frames, mode):
    from pointpillars_trt.config import load_config

    cfg = load_config("mmdet3d_kitti_3class").replace(postprocess=MODES[mode])
    clouds = [np.fromfile(p, dtype=np.float32).reshape(-1, 4) for p in (kitti_frames[0], kitti_frames[-1])]
    for maps in head_maps(cfg, clouds):
        assert_same_detections(cfg, maps)


@pytest.mark.gpu
@pytest.mark.parametrize("rule", ["above", "at_least"])
def test_nms_tie_rule_at_the_threshold(torch_cuda, kitti_config, rule):
    """An exact tie: far-apart boxes have IoU 0; at threshold 0 ``above`` keeps them all and
    ``at_least`` keeps only the best, as on the CPU."""
    from pointpillars_trt.postprocess import PostProcessor

    cfg = kitti_config.replace(postprocess={"nms_iou_threshold": 0.0, "nms_suppress_rule": rule})
    maps = head_maps(cfg, [random_cloud(cfg, 5000, seed=1)])[0]
    maps[0][:] = -20.0
    for k, (ix, iy) in enumerate([(20, 20), (100, 100), (180, 200)]):
        maps[0][0, 0, iy, ix] = 3.0 - k  # the car score of anchor 0 at three places
    want = PostProcessor(cfg)(*maps)
    assert len(want.boxes) == (3 if rule == "above" else 1)
    boxes, scores, labels = gpu_post(cfg, maps)
    assert len(boxes) == len(want.boxes)
    np.testing.assert_array_equal(labels, want.labels)
    np.testing.assert_allclose(scores, want.scores, atol=1e-6)
    np.testing.assert_allclose(boxes, want.boxes, atol=1e-4)
