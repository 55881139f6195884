"""The index math of the GPU NMS and ranking (``kernels/postprocess.cu``), mirrored in numpy.

``pp_post_nms_mask`` walks the tiles of each list with a grid-stride loop and must write every
(row, word) cell the scan reads, once.
``pp_post_nms_clip`` hands each warp 32 cells at a time and each lane one pair of them (an
inclusive scan of the cells' pair counts, a binary search over the lanes, the n-th set bit): every
marked pair must be clipped exactly once. ``pp_post_rank`` sums per-chunk counts into a rank that
must be the descending sort's permutation. The GPU comparison with the CPU boxes is
tests/postprocess/test_postprocess_cuda.py.
"""

from __future__ import annotations

import numpy as np
import pytest

MASK_ROWS, LANES, RANK_THREADS = 16, 32, 256


def mask_tiles(n: int, grid: int):
    """(block, row block, word) in pp_post_nms_mask's loop order, skipped tiles left out."""
    nw, nrb = (n + 63) >> 6, (n + MASK_ROWS - 1) // MASK_ROWS
    out = []
    for block in range(grid):
        for tile in range(block, nrb * nw, grid):
            rb, cb = divmod(tile, nw)
            if cb >= (rb * MASK_ROWS) >> 6:
                out.append((block, rb, cb))
    return out


def nth_set_bit(w: int, r: int) -> int:
    for _ in range(r):
        w &= w - 1
    return (w & -w).bit_length() - 1


def clip_pairs(need: np.ndarray, n: int, nwarps: int):
    """The (row, column) pairs pp_post_nms_clip clips, in its order, from ``need [n, words]`` uint64."""
    nw = (n + 63) >> 6
    cells, pairs = n * nw, []
    for warp in range(nwarps):
        for c0 in range(warp * LANES, cells, nwarps * LANES):
            q = c0 + np.arange(LANES)
            i, w = q // max(nw, 1), q - (q // max(nw, 1)) * nw
            word = [int(need[i[l], w[l]]) if q[l] < cells and w[l] >= (i[l] >> 6) else 0 for l in range(LANES)]
            cnt = np.array([bin(x).count("1") for x in word])
            incl = np.cumsum(cnt)
            total = int(incl[-1])
            for p0 in range(0, total, LANES):
                for lane in range(LANES):
                    p, k = p0 + lane, 0
                    for step in (16, 8, 4, 2, 1):
                        if incl[k + step - 1] <= p:
                            k += step
                    if p < total:
                        bit = nth_set_bit(word[k], p - int(incl[k] - cnt[k]))
                        pairs.append((int(i[k]), int(w[k]) * 64 + bit))
    return pairs


@pytest.mark.parametrize("n", [1, 15, 16, 17, 63, 64, 65, 200, 1000])
@pytest.mark.parametrize("grid", [1, 7, 528])
def test_mask_tiles_cover_the_scanned_cells_once(n, grid):
    tiles = mask_tiles(n, grid)
    written = {}
    for _, rb, cb in tiles:
        r0 = rb * MASK_ROWS
        for i in range(r0, min(r0 + MASK_ROWS, n)):
            written[(i, cb)] = written.get((i, cb), 0) + 1
    nw = (n + 63) >> 6
    want = {(i, w) for i in range(n) for w in range(i >> 6, nw)}
    assert set(written) == want and set(written.values()) == {1}


@pytest.mark.parametrize("n,density", [(1, 0.5), (40, 0.3), (64, 1.0), (65, 0.05), (300, 0.02), (700, 0.2)])
@pytest.mark.parametrize("nwarps", [1, 3, 2112])
def test_clip_lanes_take_every_marked_pair_once(n, density, nwarps):
    rng = np.random.default_rng(n)
    bits = np.triu(rng.random((n, n)) < density, 1)
    words = (n + 63) >> 6
    padded = np.zeros((n, words * 64), dtype=bool)
    padded[:, :n] = bits
    need = np.packbits(padded.reshape(n, words, 64)[..., ::-1], axis=-1, bitorder="big").view(">u8").reshape(n, words).astype(np.uint64)
    pairs = clip_pairs(need, n, nwarps)
    assert len(pairs) == len(set(pairs))
    assert set(pairs) == set(zip(*map(lambda a: a.tolist(), np.nonzero(bits))))


@pytest.mark.parametrize("n", [1, 255, 256, 257, 1000, 4096])
def test_chunked_rank_is_the_descending_permutation(n):
    rng = np.random.default_rng(n)
    keys = rng.integers(1, 1 << 32 if n % 2 else 8, n, dtype=np.uint64)  # many ties when n is even
    anchors = np.sort(rng.choice(1 << 20, n, replace=False)).astype(np.uint64)
    comp = (keys << np.uint64(32)) | (np.uint64(0xFFFFFFFF) - anchors)
    rank = np.zeros(n, dtype=np.int64)
    chunks = -(-n // RANK_THREADS)
    for bx in range(chunks):
        for by in range(chunks):
            mine = comp[bx * RANK_THREADS:(bx + 1) * RANK_THREADS]
            tile = comp[by * RANK_THREADS:(by + 1) * RANK_THREADS]
            rank[bx * RANK_THREADS: bx * RANK_THREADS + len(mine)] += (tile[None, :] > mine[:, None]).sum(axis=1)
    order = np.lexsort((anchors, -keys.astype(np.float64)))  # key desc, then anchor asc (stable top-k order)
    assert np.array_equal(np.argsort(rank), order)


def greedy_keep(sup: np.ndarray, max_keep: int) -> list[int]:
    """The CPU's greedy NMS on a boolean suppression matrix ``sup [n, n]`` (row i removes j > i)."""
    removed, keep = np.zeros(len(sup), dtype=bool), []
    for i in range(len(sup)):
        if not removed[i]:
            keep.append(i)
            if len(keep) >= max_keep:
                break
            removed |= sup[i]
    return keep


def pipelined_scan(sup: np.ndarray, max_keep: int) -> list[int]:
    """pp_post_nms_scan's schedule: word w is scanned against removed[w] (kept rows of words <= w - 2,
    pushed one iteration late) and the carry (word w - 1's kept rows, their superdiagonal word)."""
    n = len(sup)
    nw = (n + 63) >> 6
    words = np.zeros((n, nw * 64), dtype=bool)
    words[:, :n] = sup
    words = words.reshape(n, nw, 64)
    removed = np.zeros((nw, 64), dtype=bool)
    carry = np.zeros(64, dtype=bool)
    keep, prev = [], []
    for w in range(nw):
        alive = ~(removed[w] | carry)
        alive[max(0, n - w * 64):] = False
        cur = []
        for b in range(64):
            if len(keep) >= max_keep:
                break
            if alive[b]:
                keep.append(w * 64 + b)
                cur.append(w * 64 + b)
                alive &= ~words[w * 64 + b, w]
        carry = np.zeros(64, dtype=bool)
        for r in cur:
            if w + 1 < nw:
                carry |= words[r, w + 1]
        for r in prev:  # the other warps, during this iteration: words >= w + 1
            removed[w + 1:] |= words[r, w + 1:]
        prev = cur
        if len(keep) >= max_keep:
            break
    return keep


@pytest.mark.parametrize("n,density,max_keep", [(1, 0.0, 5), (64, 0.1, 500), (65, 0.5, 500), (200, 0.03, 500),
                                                (700, 0.01, 500), (700, 0.01, 37), (1000, 0.002, 1000), (300, 0.9, 3)])
def test_pipelined_scan_keeps_what_the_greedy_keeps(n, density, max_keep):
    rng = np.random.default_rng(n + max_keep)
    sup = np.triu(rng.random((n, n)) < density, 1)
    assert pipelined_scan(sup, max_keep) == greedy_keep(sup, max_keep)


def test_bev_box_buffer_size_matches_the_struct():
    """postprocess/cuda.py sizes the per-candidate BevBox buffer from BEV_BOX_BYTES: the struct in the
    kernel source must be that many bytes (doubles only, arrays counted)."""
    import re

    from pointpillars_trt.cuda.nvrtc import read_kernel_source
    from pointpillars_trt.postprocess.cuda import BEV_BOX_BYTES

    src, _ = read_kernel_source("postprocess.cu")
    body = re.search(r"struct BevBox \{(.*?)\};", src, re.S).group(1)
    body = re.sub(r"//[^\n]*", "", body)
    doubles = 0
    for decl in body.split(";"):
        decl = decl.strip()
        if not decl:
            continue
        assert decl.startswith("double "), decl
        for name in decl[len("double "):].split(","):
            m = re.fullmatch(r"\s*\w+\s*(?:\[(\d+)\])?\s*", name)
            doubles += int(m.group(1) or 1)
    assert doubles * 8 == BEV_BOX_BYTES
