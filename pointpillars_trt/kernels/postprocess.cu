// Post-processing on the device: sigmoid + score threshold + exact top-k + decode + direction +
// canonical boxes + rotated BEV NMS (exact polygon IoU) -> a fixed-size output with a count.
// Same results as pointpillars_trt/postprocess/decode.py::PostProcessor in every mode of the
// config's postprocess section (class-agnostic or per-class NMS; threshold-then-top-k or
// top-k-then-threshold; score >= or > threshold; suppress IoU > or >= threshold; source or
// canonical yaw), same order, same tie-breaking (stable: by score, then anchor index).
//
// Compiled at run time with NVRTC; no header is included. Float arithmetic that must match the
// CPU uses round-to-nearest intrinsics (never contracted into FMAs); the NMS geometry is float64
// like the CPU's numba code, and the module is compiled with --fmad=false.
//
// Inputs of one frame: cls [A*K, H, W], box [A*7, H, W], dir [A*D, H, W], float32 or float16,
// NCHW planes or channel slices of one NHWC tensor (see HeadLayout);
// anchors [H*W*A, 7] in the order of postprocess/anchors.py (row r = (y*W + x)*A + a).
//
// Passes (every count is read on the device, grids are sized from capacities: graph-capturable):
//   (memset, on the first frame only) hist[4096 + 4096 + 256] = 0; afterwards pp_post_rank clears them
//   1 pp_post_score      per anchor: best logit, key = order-preserving uint32 of it (0: not a
//                        candidate: threshold-then-top-k needs sigmoid(best) to pass the score
//                        rule); histogram of key >> 20
//   2 pp_post_hist2      find the 12-bit bin holding the k-th largest key; histogram of bits 8..19
//   3 pp_post_hist3      next 12 bits; histogram of the low 8 bits
//   4 pp_post_sel_count  the exact k-th key T; per tile of anchors: #(key > T), #(key == T)
//   5 pp_post_sel_write  compaction in anchor order: key > T, or key == T among the first
//                        (k - #(key > T)) ties in anchor order  -> exactly the CPU's stable top-k set
//   6 pp_post_rank       the selected candidates in (key desc, anchor asc) order: each one's rank is
//                        the number of larger (key, ~anchor) composites (unique), many blocks;
//                        clears the three histograms for the next frame
//   7 pp_post_decode_agnostic (class-agnostic NMS) one thread per candidate: decode the k boxes in that
//                        order; the NMS list is that order's prefix of candidates whose best score passes
//                        the score rule (scores fall with the rank)
//     pp_post_sort_decode (class-aware NMS) one block: decode them; one list per class of the candidates
//                        whose prob passes the rule, sorted by (prob desc, rank asc)
//   8 pp_post_nms_mask   64 x 64 tiles (one word of 64 rows) of the suppression bit matrix per list, on and
//                        above the diagonal (IoU > or >= threshold): cheap tests one lane per pair, the exact
//                        clips of the near pairs queued and run on full warps
//   9 pp_post_nms_scan   one block per list: greedy scan, 64 candidates at a time (warp 0, with the
//                        next word's bits from shared memory), the rows kept in the previous word
//                        ORed into later words by the other warps meanwhile; stops at post_max
//  10 pp_post_output     boxes / scores / labels [post_max] + count; class-aware: the per-class
//                        kept lists merged by (score desc, class asc, order asc) like the CPU's
//                        stable argsort of the concatenation; canonical yaw wrapped into [-pi, pi);
//                        also copies side_words int32 from side_src to side_dst (0: none), so that
//                        outputs written straight into mapped host memory carry the frame's counters
//
// State (int32[16]): 0 b1, 1 above1, 2 b2, 3 above2, 4 T, 5 need_eq, 6 take_all, 7 candidates,
// 8 n_sel.

// Programmatic dependent launch (sm_90+; see pointpillars_trt/cuda/nvrtc.py): every kernel first
// waits for the previous kernel on the stream to complete (its writes visible), then lets the next
// one be scheduled. Nothing is read or written before the wait, so results are as without PDL.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define PP_PDL_ENTRY() asm volatile("griddepcontrol.wait;\n\tgriddepcontrol.launch_dependents;" ::: "memory")
#else
#define PP_PDL_ENTRY() do { } while (0)
#endif

// Batched lanes (compiled with -DPP_POST_LANES: postprocess/cuda.py, CudaPostProcessor(lanes=B)): one launch of each
// pass serves up to B frames. The lane is blockIdx.z (nms_mask: blockIdx.z / lane_groups), and each per-frame pointer
// moves by lane * its stride in bytes: the scratch (one block of buffers per lane), the three head maps, the outputs.
// The anchors are shared. Compiled without the define, the kernels are exactly the one-frame ones.
#ifdef PP_POST_LANES
#define PP_LANE_PARAMS , long long lane_scratch, long long lane_cls, long long lane_box, long long lane_dir, \
                         long long lane_out, int lane_groups
#define PP_AT(p, stride, lane) (p = lane_ptr(p, stride, lane))
template <typename T>
__device__ __forceinline__ T* lane_ptr(T* p, long long stride, int lane) {
    return reinterpret_cast<T*>(reinterpret_cast<unsigned long long>(p) + (unsigned long long)lane * (unsigned long long)stride);
}
#else
#define PP_LANE_PARAMS
#define PP_AT(p, stride, lane) ((void)0)
#endif
#define PP_LANE ((int)blockIdx.z)

#define HBINS 4096
#define LBINS 256
#define TILE_THREADS 256
#define TILE_ITEMS 8
#define TILE_SIZE (TILE_THREADS * TILE_ITEMS)

enum { S_B1 = 0, S_ABOVE1 = 1, S_B2 = 2, S_ABOVE2 = 3, S_T = 4, S_NEED_EQ = 5, S_ALL = 6, S_CAND = 7, S_NSEL = 8 };

typedef unsigned long long u64;

__device__ __forceinline__ unsigned lanemask_lt() {
    unsigned m;
    asm("mov.u32 %0, %%lanemask_lt;" : "=r"(m));
    return m;
}

__device__ __forceinline__ unsigned float_key(float f) {
    const unsigned u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// the score rule: value >= threshold (at_least) or value > threshold
__device__ __forceinline__ bool passes(float v, float threshold, int at_least) {
    return at_least ? v >= threshold : v > threshold;
}

__device__ __forceinline__ float sigmoid_f32(float x) {
    // numpy: 1 / (1 + exp(-x)) in float32; exp through float64 is the correctly rounded float32 exp
    const float e = (float)exp(-(double)x);
    return __fdiv_rn(1.0f, __fadd_rn(1.0f, e));
}

// Head maps: element (channel c, pixel hw = y * W + x) of a map is at index c * cs + hw * ps of
// float32 (half = 0) or float16 (half = 1) values: cs = H*W, ps = 1 for NCHW planes; cs = 1,
// ps = total head channels for an NHWC tensor whose channel slices are the maps. float16 values
// are widened exactly, so both give the same results as a float32 copy of the maps.
struct HeadLayout {
    int cs, ps, half;
};

__device__ __forceinline__ float head_at(const void* __restrict__ map, const HeadLayout& L, int c, int hw) {
    const size_t i = (size_t)c * (size_t)L.cs + (size_t)hw * (size_t)L.ps;
    if (L.half) {
        const unsigned short h = reinterpret_cast<const unsigned short*>(map)[i];
        float f;
        asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
        return f;
    }
    return reinterpret_cast<const float*>(map)[i];
}

// exclusive scan of one int per thread across the block (blockDim.x <= 1024, multiple of 32)
__device__ int block_exclusive_scan(int v, int* scratch, int* total) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    int incl = v;
    for (int o = 1; o < 32; o <<= 1) {
        const int t = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += t;
    }
    __syncthreads();
    if (lane == 31) scratch[warp] = incl;
    __syncthreads();
    if (threadIdx.x == 0) {
        int run = 0;
        for (int w = 0; w < nw; ++w) {
            const int t = scratch[w];
            scratch[w] = run;
            run += t;
        }
        scratch[32] = run;
    }
    __syncthreads();
    *total = scratch[32];
    return scratch[warp] + incl - v;
}

__device__ int block_sum(int v, int* scratch) {
    int total;
    block_exclusive_scan(v, scratch, &total);
    return total;
}

// The largest bin b with count(bins >= b) >= need, and count(bins > b). need >= 1.
// Returns false (b = 0, above = sum) when all bins together hold fewer than `need`.
__device__ bool find_crossing(const unsigned* hist, int nbins, int need, int* scratch, int* out_bin, int* out_above) {
    __shared__ int found_bin, found_above;
    const int chunk = (nbins + blockDim.x - 1) / blockDim.x;
    const int hi = nbins - threadIdx.x * chunk;  // this thread: bins [hi - chunk, hi), scanned downwards
    int sum = 0;
    for (int b = hi - 1; b >= hi - chunk && b >= 0; --b) sum += (int)hist[b];
    int total;
    const int before = block_exclusive_scan(sum, scratch, &total);
    if (threadIdx.x == 0) {
        found_bin = 0;
        found_above = total;
    }
    __syncthreads();
    if (before < need && before + sum >= need) {
        int acc = before;
        for (int b = hi - 1; b >= hi - chunk && b >= 0; --b) {
            const int c = (int)hist[b];
            if (acc + c >= need) {
                found_bin = b;
                found_above = acc;
                break;
            }
            acc += c;
        }
    }
    __syncthreads();
    *out_bin = found_bin;
    *out_above = found_above;
    return total >= need;
}

__device__ void flush_hist(unsigned* sh, unsigned* global, int nbins) {
    __syncthreads();
    for (int b = threadIdx.x; b < nbins; b += blockDim.x) {
        const unsigned c = sh[b];
        if (c) atomicAdd(&global[b], c);
    }
}

extern "C" __global__ void __launch_bounds__(256)
pp_post_score(const void* __restrict__ cls, int cs, int ps, int half, int HW, int A, int K, int filter_first, int at_least,
              float threshold, unsigned* __restrict__ keys, unsigned* __restrict__ hist1 PP_LANE_PARAMS) {
    PP_PDL_ENTRY();
    PP_AT(cls, lane_cls, PP_LANE); PP_AT(keys, lane_scratch, PP_LANE); PP_AT(hist1, lane_scratch, PP_LANE);
    const HeadLayout L = {cs, ps, half};
    __shared__ unsigned sh[HBINS];
    for (int b = threadIdx.x; b < HBINS; b += blockDim.x) sh[b] = 0;
    __syncthreads();
    const int R = HW * A;
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < R; t += gridDim.x * blockDim.x) {
        const int a = t / HW, hw = t - a * HW;  // hw fastest: coalesced reads of NCHW class planes
        float best = head_at(cls, L, a * K, hw);
        for (int k = 1; k < K; ++k) {
            const float v = head_at(cls, L, a * K + k, hw);
            best = v > best ? v : best;
        }
        const bool cand = !filter_first || passes(sigmoid_f32(best), threshold, at_least);
        const unsigned key = cand ? float_key(best) : 0u;
        keys[hw * A + a] = key;
        if (cand) atomicAdd(&sh[key >> 20], 1u);
    }
    flush_hist(sh, hist1, HBINS);
}

extern "C" __global__ void __launch_bounds__(256)
pp_post_hist2(int R, int k, const unsigned* __restrict__ keys, const unsigned* __restrict__ hist1,
              unsigned* __restrict__ hist2, int* __restrict__ state PP_LANE_PARAMS) {
    PP_PDL_ENTRY();
    PP_AT(keys, lane_scratch, PP_LANE); PP_AT(hist1, lane_scratch, PP_LANE); PP_AT(hist2, lane_scratch, PP_LANE); PP_AT(state, lane_scratch, PP_LANE);
    __shared__ int scratch[33];
    __shared__ unsigned sh[HBINS];
    int b1, above1;
    const bool enough = find_crossing(hist1, HBINS, k, scratch, &b1, &above1);
    const int total = above1;  // when !enough, above = total
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        state[S_ALL] = enough ? 0 : 1;
        state[S_B1] = b1;
        state[S_ABOVE1] = enough ? above1 : 0;
        if (!enough) state[S_CAND] = total;
    }
    // total == k also counts as "take all" for the histogram levels below, but is handled exactly
    if (!enough) return;
    for (int b = threadIdx.x; b < HBINS; b += blockDim.x) sh[b] = 0;
    __syncthreads();
    for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < R; r += gridDim.x * blockDim.x) {
        const unsigned key = keys[r];
        if (key != 0u && (int)(key >> 20) == b1) atomicAdd(&sh[(key >> 8) & 0xFFFu], 1u);
    }
    flush_hist(sh, hist2, HBINS);
}

extern "C" __global__ void __launch_bounds__(256)
pp_post_hist3(int R, int k, const unsigned* __restrict__ keys, const unsigned* __restrict__ hist2,
              unsigned* __restrict__ hist3, int* __restrict__ state PP_LANE_PARAMS) {
    PP_PDL_ENTRY();
    PP_AT(keys, lane_scratch, PP_LANE); PP_AT(hist2, lane_scratch, PP_LANE); PP_AT(hist3, lane_scratch, PP_LANE); PP_AT(state, lane_scratch, PP_LANE);
    __shared__ int scratch[33];
    __shared__ unsigned sh[LBINS];
    if (state[S_ALL]) return;
    const int b1 = state[S_B1], above1 = state[S_ABOVE1];
    int b2, above2;
    find_crossing(hist2, HBINS, k - above1, scratch, &b2, &above2);
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        state[S_B2] = b2;
        state[S_ABOVE2] = above2;
    }
    for (int b = threadIdx.x; b < LBINS; b += blockDim.x) sh[b] = 0;
    __syncthreads();
    const unsigned prefix = ((unsigned)b1 << 12) | (unsigned)b2;
    for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < R; r += gridDim.x * blockDim.x) {
        const unsigned key = keys[r];
        if (key != 0u && (key >> 8) == prefix) atomicAdd(&sh[key & 0xFFu], 1u);
    }
    flush_hist(sh, hist3, LBINS);
}

extern "C" __global__ void __launch_bounds__(TILE_THREADS)
pp_post_sel_count(int R, int k, const unsigned* __restrict__ keys, const unsigned* __restrict__ hist3,
                  int* __restrict__ tile_gt, int* __restrict__ tile_eq, int* __restrict__ state PP_LANE_PARAMS) {
    PP_PDL_ENTRY();
    PP_AT(keys, lane_scratch, PP_LANE); PP_AT(hist3, lane_scratch, PP_LANE); PP_AT(tile_gt, lane_scratch, PP_LANE); PP_AT(tile_eq, lane_scratch, PP_LANE); PP_AT(state, lane_scratch, PP_LANE);
    __shared__ int scratch[33];
    unsigned T = 0u;
    int need_eq = 0;
    if (!state[S_ALL]) {
        const int b1 = state[S_B1], above1 = state[S_ABOVE1], b2 = state[S_B2], above2 = state[S_ABOVE2];
        int b3, above3;
        find_crossing(hist3, LBINS, k - above1 - above2, scratch, &b3, &above3);
        T = ((unsigned)b1 << 20) | ((unsigned)b2 << 8) | (unsigned)b3;
        need_eq = k - above1 - above2 - above3;
    }
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        state[S_T] = (int)T;
        state[S_NEED_EQ] = need_eq;
    }
    const int base = blockIdx.x * TILE_SIZE;
    int gt = 0, eq = 0;
#pragma unroll
    for (int j = 0; j < TILE_ITEMS; ++j) {
        const int r = base + j * TILE_THREADS + threadIdx.x;
        if (r < R) {
            const unsigned key = keys[r];
            gt += key > T;
            eq += key == T;
        }
    }
    gt = block_sum(gt, scratch);
    eq = block_sum(eq, scratch);
    if (threadIdx.x == 0) {
        tile_gt[blockIdx.x] = gt;
        tile_eq[blockIdx.x] = eq;
    }
}

extern "C" __global__ void __launch_bounds__(TILE_THREADS)
pp_post_sel_write(int R, int num_tiles, const unsigned* __restrict__ keys, const int* __restrict__ tile_gt,
                  const int* __restrict__ tile_eq, int* __restrict__ sel_idx, int* __restrict__ state PP_LANE_PARAMS) {
    PP_PDL_ENTRY();
    PP_AT(keys, lane_scratch, PP_LANE); PP_AT(tile_gt, lane_scratch, PP_LANE); PP_AT(tile_eq, lane_scratch, PP_LANE); PP_AT(sel_idx, lane_scratch, PP_LANE); PP_AT(state, lane_scratch, PP_LANE);
    __shared__ int scratch[33];
    __shared__ unsigned mgt[TILE_ITEMS * 8], meq[TILE_ITEMS * 8];
    __shared__ int pgt[TILE_ITEMS * 8], peq[TILE_ITEMS * 8];
    const unsigned T = (unsigned)state[S_T];
    const int need_eq = state[S_NEED_EQ];
    int gt_before = 0, eq_before = 0, gt_all = 0, eq_all = 0;
    for (int t = threadIdx.x; t < num_tiles; t += blockDim.x) {
        const int g = tile_gt[t], e = tile_eq[t];
        gt_all += g;
        eq_all += e;
        if (t < (int)blockIdx.x) {
            gt_before += g;
            eq_before += e;
        }
    }
    gt_before = block_sum(gt_before, scratch);
    eq_before = block_sum(eq_before, scratch);
    gt_all = block_sum(gt_all, scratch);
    eq_all = block_sum(eq_all, scratch);
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        state[S_NSEL] = gt_all + (eq_all < need_eq ? eq_all : need_eq);
        if (!state[S_ALL]) state[S_CAND] = -1;  // more candidates than k (the exact number is not needed)
    }
    const int base = blockIdx.x * TILE_SIZE;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = TILE_THREADS / 32;
    bool g[TILE_ITEMS], e[TILE_ITEMS];
#pragma unroll
    for (int j = 0; j < TILE_ITEMS; ++j) {
        const int r = base + j * TILE_THREADS + threadIdx.x;
        const unsigned key = r < R ? keys[r] : 0u;
        g[j] = r < R && key > T;
        e[j] = r < R && key == T;
        const unsigned a = __ballot_sync(0xffffffffu, g[j]), b = __ballot_sync(0xffffffffu, e[j]);
        if (lane == 0) {
            mgt[j * nw + warp] = a;
            meq[j * nw + warp] = b;
        }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int rg = 0, re = 0;
        for (int q = 0; q < TILE_ITEMS * nw; ++q) {
            pgt[q] = rg;
            peq[q] = re;
            rg += __popc(mgt[q]);
            re += __popc(meq[q]);
        }
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < TILE_ITEMS; ++j) {
        if (!g[j] && !e[j]) continue;
        const int q = j * nw + warp;
        const int r = base + j * TILE_THREADS + threadIdx.x;
        const int gr = gt_before + pgt[q] + __popc(mgt[q] & lanemask_lt());
        const int er = eq_before + peq[q] + __popc(meq[q] & lanemask_lt());
        if (g[j]) sel_idx[gr + (er < need_eq ? er : need_eq)] = r;
        else if (er < need_eq) sel_idx[gr + er] = r;
    }
}

// ---- decode (float32, as postprocess/box_coder.py) -----------------------------------------
struct DecodeParams {
    float dir_offset, dir_limit_offset, period, half_pi;
    int num_dir_bins, wlh_cw;
};

__device__ void decode_one(const void* __restrict__ box, const void* __restrict__ dir, const HeadLayout& L,
                           const float* __restrict__ anchors, int r, int HW, int A, const DecodeParams& d, float* out) {
    const int a = r % A, hw = r / A;
    const float* an = anchors + (size_t)r * 7;
    float t[7];
#pragma unroll
    for (int c = 0; c < 7; ++c) t[c] = head_at(box, L, a * 7 + c, hw);
    const float xa = an[0], ya = an[1], za = an[2], la = an[3], wa = an[4], ha = an[5], ra = an[6];
    const float diag = __fsqrt_rn(__fadd_rn(__fmul_rn(la, la), __fmul_rn(wa, wa)));
    float b[7];
    b[0] = __fadd_rn(__fmul_rn(t[0], diag), xa);
    b[1] = __fadd_rn(__fmul_rn(t[1], diag), ya);
    b[2] = __fadd_rn(__fmul_rn(t[2], ha), za);
    b[3] = __fmul_rn((float)exp((double)t[3]), la);
    b[4] = __fmul_rn((float)exp((double)t[4]), wa);
    b[5] = __fmul_rn((float)exp((double)t[5]), ha);
    b[6] = __fadd_rn(t[6], ra);
    int label = 0;
    float bestd = head_at(dir, L, a * d.num_dir_bins, hw);
    for (int q = 1; q < d.num_dir_bins; ++q) {
        const float v = head_at(dir, L, a * d.num_dir_bins + q, hw);
        if (v > bestd) {
            bestd = v;
            label = q;
        }
    }
    const float val = __fsub_rn(b[6], d.dir_offset);
    const float fl = floorf(__fadd_rn(__fdiv_rn(val, d.period), d.dir_limit_offset));
    const float rot = __fsub_rn(val, __fmul_rn(fl, d.period));
    b[6] = __fadd_rn(__fadd_rn(rot, d.dir_offset), __fmul_rn(d.period, (float)label));
    if (d.wlh_cw) {
        const float l = b[4], w = b[3];
        b[3] = l;
        b[4] = w;
        b[6] = __fsub_rn(-b[6], d.half_pi);
    }
#pragma unroll
    for (int c = 0; c < 7; ++c) out[c] = b[c];
}

// bitonic sort of s[0..S) (S a power of two) in descending order, by the whole block
__device__ void bitonic_desc(u64* s, int S) {
    for (int size = 2; size <= S; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int t = threadIdx.x; t < (S >> 1); t += blockDim.x) {
                const int i = 2 * t - (t & (stride - 1));
                const int j = i + stride;
                const u64 a = s[i], b = s[j];
                const bool desc = (i & size) == 0;
                if (desc ? (a < b) : (a > b)) {
                    s[i] = b;
                    s[j] = a;
                }
            }
            __syncthreads();
        }
    }
}

// Candidate j (anchor r) of the rank order: its anchor, decoded box, best class and score into slot j;
// with probs (class-aware NMS) also every class's probability. Returns the score.
__device__ float decode_candidate(const void* __restrict__ cls, const void* __restrict__ box, const void* __restrict__ dir,
                                  const HeadLayout& L, const float* __restrict__ anchors, int r, int HW, int A, int K,
                                  const DecodeParams& d, int j, int* __restrict__ cand, float* __restrict__ dec_boxes,
                                  float* __restrict__ dec_score, int* __restrict__ dec_label, float* __restrict__ probs) {
    cand[j] = r;
    decode_one(box, dir, L, anchors, r, HW, A, d, dec_boxes + (size_t)j * 7);
    const int a = r % A, hw = r / A;
    float best = head_at(cls, L, a * K, hw);
    int label = 0;
    if (probs) probs[(size_t)j * K] = sigmoid_f32(best);
    for (int k = 1; k < K; ++k) {
        const float v = head_at(cls, L, a * K + k, hw);
        if (probs) probs[(size_t)j * K + k] = sigmoid_f32(v);
        if (v > best) {
            best = v;
            label = k;
        }
    }
    const float score = sigmoid_f32(best);
    dec_score[j] = score;
    dec_label[j] = label;
    return score;
}

// Class-agnostic NMS: one thread per candidate of pp_post_rank's order, over many blocks. The NMS list is the
// candidates whose score passes the score rule, a prefix of that order since scores fall with the rank
// (sigmoid is monotone): its length is the rank of the first candidate that fails (atomicMin, so that the
// result is the same whatever the order of the blocks), or n when all pass.
extern "C" __global__ void __launch_bounds__(256)
pp_post_decode_agnostic(const void* __restrict__ cls, const void* __restrict__ box, const void* __restrict__ dir,
                        int cs, int ps, int half, const float* __restrict__ anchors, int HW, int A, int K,
                        int at_least, float threshold,
                        float dir_offset, float dir_limit_offset, float period, float half_pi, int num_dir_bins, int wlh_cw,
                        const u64* __restrict__ sorted, const int* __restrict__ state, int* __restrict__ cand,
                        float* __restrict__ dec_boxes, float* __restrict__ dec_score, int* __restrict__ dec_label,
                        int* __restrict__ group_list, int* __restrict__ group_count PP_LANE_PARAMS) {
    PP_PDL_ENTRY();
    PP_AT(cls, lane_cls, PP_LANE); PP_AT(box, lane_box, PP_LANE); PP_AT(dir, lane_dir, PP_LANE);
    PP_AT(sorted, lane_scratch, PP_LANE); PP_AT(state, lane_scratch, PP_LANE); PP_AT(cand, lane_scratch, PP_LANE); PP_AT(dec_boxes, lane_scratch, PP_LANE);
    PP_AT(dec_score, lane_scratch, PP_LANE); PP_AT(dec_label, lane_scratch, PP_LANE);
    PP_AT(group_list, lane_scratch, PP_LANE); PP_AT(group_count, lane_scratch, PP_LANE);
    const HeadLayout L = {cs, ps, half};
    const int n = state[S_NSEL];
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n) {
        if (j == 0) group_count[0] = 0;  // no candidate at all
        return;
    }
    const DecodeParams d = {dir_offset, dir_limit_offset, period, half_pi, num_dir_bins, wlh_cw};
    const float score = decode_candidate(cls, box, dir, L, anchors, (int)(0xFFFFFFFFu - (unsigned)(sorted[j] & 0xFFFFFFFFull)),
                                         HW, A, K, d, j, cand, dec_boxes, dec_score, dec_label, nullptr);
    group_list[j] = j;
    // the list's length: the first candidate that fails, else n (group_count[0] starts at INT_MAX: pp_post_rank).
    // One atomic per warp at most: its lowest such lane.
    const bool end = !passes(score, threshold, at_least) || j == n - 1;
    const unsigned ends = __ballot_sync(__activemask(), end);
    if (end && (ends & lanemask_lt()) == 0u) atomicMin(&group_count[0], passes(score, threshold, at_least) ? n : j);
}

// sorted[rank] = composite of the selected candidate; rank = #(larger composites). Composites are
// unique (the anchor index is part of them), so the ranks are a permutation: the same order as a
// descending sort, in O(n^2 / threads) instead of one block's bitonic network over 2^ceil(log2 k).
// Each block first loads all n composites into shared memory (dynamic: nms_pre_max words; the loads of
// RANK_LOADS rows at a time are independent, so their latency is paid once per round), then ranks
// RANK_CANDS candidates, RANK_PARTS threads each over interleaved quarters of the composites, summed by
// shuffles: many blocks, and no barrier in the comparison loop.
#define RANK_THREADS 256
#define RANK_PARTS 4
#define RANK_CANDS (RANK_THREADS / RANK_PARTS)
#define RANK_LOADS 4
extern "C" __global__ void __launch_bounds__(RANK_THREADS)
pp_post_rank(const unsigned* __restrict__ keys, const int* __restrict__ sel_idx, const int* __restrict__ state,
             u64* __restrict__ sorted, unsigned* __restrict__ hist, int* __restrict__ group_count PP_LANE_PARAMS) {
    PP_PDL_ENTRY();
    PP_AT(keys, lane_scratch, PP_LANE); PP_AT(sel_idx, lane_scratch, PP_LANE); PP_AT(state, lane_scratch, PP_LANE); PP_AT(sorted, lane_scratch, PP_LANE);
    PP_AT(hist, lane_scratch, PP_LANE); PP_AT(group_count, lane_scratch, PP_LANE);
    if (blockIdx.x == 0 && threadIdx.x == 0) group_count[0] = 0x7fffffff;  // pp_post_decode_agnostic's atomicMin starts here
    // the three histograms were last read by pp_post_sel_count: cleared here for the next frame (no memset node)
    for (int b = blockIdx.x * RANK_THREADS + threadIdx.x; b < 2 * HBINS + LBINS; b += gridDim.x * RANK_THREADS) hist[b] = 0u;
    extern __shared__ u64 comp[];  // the n composites, in selection order
    const int n = state[S_NSEL];
    if ((int)blockIdx.x * RANK_CANDS >= n) return;  // block-uniform
    for (int base = 0; base < n; base += RANK_THREADS * RANK_LOADS) {
        unsigned r[RANK_LOADS], k[RANK_LOADS];
#pragma unroll
        for (int q = 0; q < RANK_LOADS; ++q) {
            const int i = base + q * RANK_THREADS + threadIdx.x;
            r[q] = i < n ? (unsigned)sel_idx[i] : 0u;
        }
#pragma unroll
        for (int q = 0; q < RANK_LOADS; ++q) {
            const int i = base + q * RANK_THREADS + threadIdx.x;
            k[q] = i < n ? keys[r[q]] : 0u;
        }
#pragma unroll
        for (int q = 0; q < RANK_LOADS; ++q) {
            const int i = base + q * RANK_THREADS + threadIdx.x;
            if (i < n) comp[i] = ((u64)k[q] << 32) | (u64)(0xFFFFFFFFu - r[q]);
        }
    }
    __syncthreads();
    const int j = blockIdx.x * RANK_CANDS + threadIdx.x / RANK_PARTS, part = threadIdx.x % RANK_PARTS;
    const u64 mine = j < n ? comp[j] : 0ull;
    int rank = 0;
    for (int i = part; i < n; i += RANK_PARTS) rank += comp[i] > mine ? 1 : 0;
#pragma unroll
    for (int o = 1; o < RANK_PARTS; o <<= 1) rank += __shfl_xor_sync(0xffffffffu, rank, o);
    if (j < n && part == 0) sorted[rank] = mine;
}

extern "C" __global__ void __launch_bounds__(1024)
pp_post_sort_decode(const void* __restrict__ cls, const void* __restrict__ box, const void* __restrict__ dir,
                    int cs, int ps, int half, const float* __restrict__ anchors, int HW, int A, int K, int S,
                    int at_least, float threshold,
                    float dir_offset, float dir_limit_offset, float period, float half_pi, int num_dir_bins, int wlh_cw,
                    const u64* __restrict__ sorted, const int* __restrict__ state, int* __restrict__ cand, float* __restrict__ dec_boxes, float* __restrict__ dec_score,
                    int* __restrict__ dec_label, float* __restrict__ probs, int* __restrict__ group_list,
                    int* __restrict__ group_count, int list_stride PP_LANE_PARAMS) {
    PP_PDL_ENTRY();
    PP_AT(cls, lane_cls, PP_LANE); PP_AT(box, lane_box, PP_LANE); PP_AT(dir, lane_dir, PP_LANE);
    PP_AT(sorted, lane_scratch, PP_LANE); PP_AT(state, lane_scratch, PP_LANE); PP_AT(cand, lane_scratch, PP_LANE); PP_AT(dec_boxes, lane_scratch, PP_LANE);
    PP_AT(dec_score, lane_scratch, PP_LANE); PP_AT(dec_label, lane_scratch, PP_LANE); PP_AT(probs, lane_scratch, PP_LANE);
    PP_AT(group_list, lane_scratch, PP_LANE); PP_AT(group_count, lane_scratch, PP_LANE);
    extern __shared__ u64 s[];
    __shared__ int counter;
    const HeadLayout L = {cs, ps, half};
    const int n = state[S_NSEL];
    for (int t = threadIdx.x; t < S; t += blockDim.x) s[t] = t < n ? sorted[t] : 0ull;  // pp_post_rank's order
    __syncthreads();
    const DecodeParams d = {dir_offset, dir_limit_offset, period, half_pi, num_dir_bins, wlh_cw};
    for (int j = threadIdx.x; j < n; j += blockDim.x)
        decode_candidate(cls, box, dir, L, anchors, (int)(0xFFFFFFFFu - (unsigned)(s[j] & 0xFFFFFFFFull)), HW, A, K, d, j,
                         cand, dec_boxes, dec_score, dec_label, probs);
    __syncthreads();  // probs visible to the block
    for (int c = 0; c < K; ++c) {
        for (int t = threadIdx.x; t < S; t += blockDim.x) s[t] = 0;
        if (threadIdx.x == 0) counter = 0;
        __syncthreads();
        for (int j = threadIdx.x; j < n; j += blockDim.x) {
            const float p = probs[(size_t)j * K + c];
            if (passes(p, threshold, at_least)) {
                const int slot = atomicAdd(&counter, 1);
                s[slot] = ((u64)__float_as_uint(p) << 32) | (u64)(0xFFFFFFFFu - (unsigned)j);
            }
        }
        __syncthreads();
        const int m = counter;
        bitonic_desc(s, S);
        for (int q = threadIdx.x; q < m; q += blockDim.x)
            group_list[(size_t)c * list_stride + q] = (int)(0xFFFFFFFFu - (unsigned)(s[q] & 0xFFFFFFFFull));
        if (threadIdx.x == 0) group_count[c] = m;
        __syncthreads();
    }
}

// ---- rotated BEV IoU in float64 (as postprocess/nms.py + polygon.py) ---------------------------
// The corners, the clip and the area follow postprocess/polygon.py operation for operation (the
// module is compiled with --fmad=false), so the intersection area is the CPU's to the bit.
struct BevBox {
    double x, y, radius, area;
    double c, s, hl, hw;  // cos / sin of the yaw, half length / width (separating-axis reject)
    double reach;         // |x| + |y| + radius, or +inf when the reject must not be used (see separated)
    double cx[4], cy[4];
};

__device__ void make_bev(const float* b, BevBox& o) {
    const double x = b[0], y = b[1], l = b[3], w = b[4], yaw = b[6];
    const double c = cos(yaw), s = sin(yaw);
    const double hl = 0.5 * l, hw = 0.5 * w;
    const double dx[4] = {hl, -hl, -hl, hl};
    const double dy[4] = {hw, hw, -hw, -hw};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        o.cx[k] = x + dx[k] * c - dy[k] * s;
        o.cy[k] = y + dx[k] * s + dy[k] * c;
    }
    o.x = x;
    o.y = y;
    o.radius = 0.5 * sqrt(l * l + w * w);
    o.area = l * w;
    o.c = c;
    o.s = s;
    o.hl = hl;
    o.hw = hw;
    const double reach = fabs(x) + fabs(y) + o.radius;
    // sides below 1e-3 of the reach (or negative, NaN, inf): no reject, the exact clip decides
    o.reach = (fmin(l, w) >= 1e-3 * reach && reach < 1e300) ? reach : __longlong_as_double(0x7ff0000000000000ll);
}

// True when the two rectangles are farther apart than 1e-6 * (a.reach + b.reach) along one of
// their four side normals. The clip of such a pair is exactly 0.0 on the CPU, so the reject
// changes no IoU: every vertex the float64 clip makes lies within ~1e-12 * reach of both
// rectangles (rounding of ~30 operations of 2^-53 relative error on coordinates <= reach; a clip
// edge's direction is off by <= ~1e-13 rad as no side is below 1e-3 * reach), so with a gap above
// that no vertex survives all four edges and the CPU returns 0.0 (n < 3). Non-finite or degenerate
// boxes have reach = inf and are never rejected; NaN gaps compare false.
__device__ __forceinline__ bool separated(const BevBox& a, const BevBox& b) {
    const double dx = b.x - a.x, dy = b.y - a.y;
    const double C = fabs(a.c * b.c + a.s * b.s), S = fabs(a.s * b.c - a.c * b.s);
    const double gua = fabs(dx * a.c + dy * a.s) - a.hl - (b.hl * C + b.hw * S);
    const double gva = fabs(dy * a.c - dx * a.s) - a.hw - (b.hl * S + b.hw * C);
    const double gub = fabs(dx * b.c + dy * b.s) - b.hl - (a.hl * C + a.hw * S);
    const double gvb = fabs(dy * b.c - dx * b.s) - b.hw - (a.hl * S + a.hw * C);
    const double margin = 1e-6 * (a.reach + b.reach);
    return gua > margin || gva > margin || gub > margin || gvb > margin;
}

// numba's max(v, 0.0) (as polygon.py's return): NaN and -0.0 pass through
__device__ __forceinline__ double numba_max0(double v) { return 0.0 > v ? 0.0 : v; }

// One Sutherland-Hodgman step of polygon.py::convex_intersection_area: the polygon s[0..n-1]
// (n <= NIN; s[n] repeats s[0], so s[(k + 1) % n] is s[k + 1]) clipped by the half-plane left of
// the edge from (ex, ey) along (ux, uy). The kept vertices go to sink.emit(flag, x, y, bound) in the
// CPU's order (for each vertex k: k itself if inside, then the crossing of the edge k -> k+1);
// bound is a compile-time upper limit of the number of vertices emitted before this one. Every
// array index is a compile-time constant after unrolling, so the polygon stays in registers.
template <int NIN, class Sink>
__device__ __forceinline__ void sh_step(const double (&sx)[NIN + 1], const double (&sy)[NIN + 1], int n, double ex,
                                        double ey, double ux, double uy, Sink& sink) {
    double d[NIN + 1];
#pragma unroll
    for (int k = 0; k <= NIN; ++k) d[k] = ux * (sy[k] - ey) - uy * (sx[k] - ex);  // >= 0: inside
#pragma unroll
    for (int k = 0; k < NIN; ++k) {
        const bool live = k < n, pin = d[k] >= 0.0;
        const double dq = d[k + 1], t = d[k] / (d[k] - dq);  // t: used only where the edge k -> k+1 crosses
        sink.emit(live && pin, sx[k], sy[k], 2 * k);
        sink.emit(live && (pin ? dq < 0.0 : dq >= 0.0), sx[k] + t * (sx[k + 1] - sx[k]), sy[k] + t * (sy[k + 1] - sy[k]),
                  2 * k + 1);
    }
}

// Sink of a clip step: the emitted vertices in order, x/y[0..m-1], then close() repeats vertex 0
// at slot m. A write to slot m is a select on every slot j <= bound, so no index is dynamic. m
// counts every emission; m > NOUT means only the first NOUT were kept (the caller then falls back
// to the general clip).
template <int NOUT>
struct Polygon {
    double x[NOUT + 1], y[NOUT + 1];
    int m;
    __device__ __forceinline__ void emit(bool flag, double vx, double vy, int bound) {
#pragma unroll
        for (int j = 0; j < NOUT; ++j) {
            const bool here = j <= bound && flag && m == j;
            x[j] = here ? vx : x[j];
            y[j] = here ? vy : y[j];
        }
        m += (int)flag;
    }
    __device__ __forceinline__ void close() {
#pragma unroll
        for (int j = 1; j <= NOUT; ++j) {
            x[j] = m == j ? x[0] : x[j];
            y[j] = m == j ? y[0] : y[j];
        }
    }
};

// Sink of the last clip step: the shoelace sum of the emitted polygon, term by term in the CPU's
// order (x[k] * y[k+1] - x[k+1] * y[k] for k = 0..m-1, the last term closing onto vertex 0).
struct ShoelaceSum {
    double area, fx, fy, lx, ly;
    int m;
    __device__ __forceinline__ void emit(bool flag, double vx, double vy, int) {
        if (flag) {
            if (m > 0) area += lx * vy - vx * ly;
            else {
                fx = vx;
                fy = vy;
            }
            lx = vx;
            ly = vy;
            ++m;
        }
    }
    __device__ __forceinline__ double close() const { return area + (lx * fy - fx * ly); }
};

// The general clip (polygon.py's 16-vertex buffers, here one warp's shared scratch: buf[0..1] x / y
// of one polygon, buf[2..3] of the other), for the rare pairs whose polygon outgrows the register
// clip's fixed sizes (a convex polygon clipped by a half-plane gains at most one vertex; only
// rounding on near-collinear vertices, e.g. of boxes of a few ulps, breaks that). One lane at a time.
__device__ double clip_area_general(const BevBox& subject, const BevBox& clip, double (*buf)[16]) {
    int n = 4, cur = 0;
    for (int k = 0; k < 4; ++k) {
        buf[0][k] = subject.cx[k];
        buf[1][k] = subject.cy[k];
    }
    for (int e = 0; e < 4; ++e) {
        const double ex = clip.cx[e], ey = clip.cy[e];
        const double ux = clip.cx[(e + 1) & 3] - ex, uy = clip.cy[(e + 1) & 3] - ey;
        const double *sx = buf[2 * cur], *sy = buf[2 * cur + 1];
        double *dx = buf[2 - 2 * cur], *dy = buf[3 - 2 * cur];
        int m = 0;
        for (int k = 0; k < n; ++k) {
            const double px = sx[k], py = sy[k];
            const double qx = sx[(k + 1) % n], qy = sy[(k + 1) % n];
            const double dp = ux * (py - ey) - uy * (px - ex);
            const double dq = ux * (qy - ey) - uy * (qx - ex);
            const bool emit_p = dp >= 0.0, emit_i = dp >= 0.0 ? dq < 0.0 : dq >= 0.0;
            if (emit_p && m < 16) {
                dx[m] = px;
                dy[m] = py;
            }
            m += (int)emit_p;
            if (emit_i) {
                const double t = dp / (dp - dq);
                if (m < 16) {
                    dx[m] = px + t * (qx - px);
                    dy[m] = py + t * (qy - py);
                }
                ++m;
            }
        }
        n = m < 16 ? m : 16;  // the CPU writes past its buffers there; 16 is as far as it is defined
        if (n < 3) return 0.0;
        cur ^= 1;
    }
    const double *x = buf[2 * cur], *y = buf[2 * cur + 1];
    double area = 0.0;
    for (int k = 0; k < n; ++k) {
        const int j = (k + 1) % n;
        area += x[k] * y[j] - x[j] * y[k];
    }
    return numba_max0(0.5 * area);
}

// CPU verdict after a step's m vertices: n < 3 returns 0; m > cap means the fixed-size polygon overflowed.
// Only the first of the two events counts (the CPU stops at the first).
__device__ __forceinline__ void settle(int m, int cap, bool& dead, bool& overflow) {
    const bool open = !dead && !overflow;
    overflow = overflow || (open && m > cap);
    dead = dead || (open && m < 3);
}

// Area of convex CCW `subject` (4 vertices) clipped by convex CCW `clip`, exactly as
// polygon.py::convex_intersection_area, in registers: the polygon has at most 5, 6, 7 vertices after
// the first three edges (a convex polygon gains at most one per edge) and the fourth edge's vertices
// go straight into the area sum. A pair that outgrows that sets `general` (the return value is
// then meaningless) and must take clip_area_general.
__device__ __forceinline__ double clip_area(const BevBox& subject, const BevBox& clip, bool& general) {
    Polygon<4> p0{};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        p0.x[k] = subject.cx[k];
        p0.y[k] = subject.cy[k];
    }
    p0.x[4] = subject.cx[0];
    p0.y[4] = subject.cy[0];
    bool dead = false, overflow = false;
    Polygon<5> p1{};  // zeros: no slot is ever undefined, even the unused ones
    sh_step<4>(p0.x, p0.y, 4, clip.cx[0], clip.cy[0], clip.cx[1] - clip.cx[0], clip.cy[1] - clip.cy[0], p1);
    settle(p1.m, 5, dead, overflow);
    p1.close();
    Polygon<6> p2{};
    sh_step<5>(p1.x, p1.y, p1.m, clip.cx[1], clip.cy[1], clip.cx[2] - clip.cx[1], clip.cy[2] - clip.cy[1], p2);
    settle(p2.m, 6, dead, overflow);
    p2.close();
    Polygon<7> p3{};
    sh_step<6>(p2.x, p2.y, p2.m, clip.cx[2], clip.cy[2], clip.cx[3] - clip.cx[2], clip.cy[3] - clip.cy[2], p3);
    settle(p3.m, 7, dead, overflow);
    p3.close();
    ShoelaceSum sum = {0.0, 0.0, 0.0, 0.0, 0.0, 0};
    sh_step<7>(p3.x, p3.y, p3.m, clip.cx[3], clip.cy[3], clip.cx[0] - clip.cx[3], clip.cy[0] - clip.cy[3], sum);
    settle(sum.m, 14, dead, overflow);
    general = overflow && !dead;
    return dead ? 0.0 : numba_max0(0.5 * sum.close());
}

// nms.py::_pair_iou from the intersection area
__device__ __forceinline__ double iou_of(const BevBox& a, const BevBox& b, double inter) {
    const double uni = a.area + b.area - inter;
    return uni <= 0.0 ? 0.0 : inter / uni;
}

// false: IoU 0 (nms.py::_nms: boxes farther apart than their circumradii; here also separated ones,
// whose clip is 0.0 as well); true: the exact clip decides
__device__ __forceinline__ bool may_overlap(const BevBox& a, const BevBox& b) {
    const double ddx = a.x - b.x, ddy = a.y - b.y, rr = a.radius + b.radius;
    return ddx * ddx + ddy * ddy <= rr * rr && !separated(a, b);
}

// the suppression rule: IoU > threshold, or >= threshold with at_least
__device__ __forceinline__ bool suppresses(double iou, double threshold, int at_least) {
    return iou > threshold || (at_least && iou == threshold);
}

// A tile covers 64 rows x 64 columns of the suppression bit matrix of one list: one word of each of
// 64 rows. Rows only need the words from their own on (the scan reads no other), so a list of n
// candidates has w (w + 1) / 2 tiles, w = ceil(n / 64), numbered row block by row block; the blocks of
// a list take them in turn (tile = blockIdx.x, then + gridDim.x, ...), up to the list's own count read
// here, so a grid of the blocks that can be resident (postprocess/cuda.py sizes it by the occupancy
// API; not one block per tile of nms_pre_max, which would be mostly empty) does the work. Each tile is
// computed as by one block per tile, so the bits are the same. The tile is a square word so that
// each block's fixed costs (the boxes' loads and corners, three barriers, the clip's latency) are paid
// once per 4096 pairs: near pairs are a few per row, and 16-row tiles left most warps idle through
// the clip. Pass 1: one lane per pair (8 warps x 8 rows x 2 halves) runs the cheap tests; the pairs that
// need the exact clip are queued in shared memory. Pass 2: the queue is clipped 256 pairs at a time,
// on full lanes. Bits are ORed into shared words, so the queue order changes nothing.
#define MASK_ROWS 64
extern "C" __global__ void __launch_bounds__(256)
pp_post_nms_mask(const float* __restrict__ dec_boxes, const int* __restrict__ group_list,
                 const int* __restrict__ group_count, int list_stride, int words, double threshold, int at_least,
                 u64* __restrict__ mask PP_LANE_PARAMS) {
    PP_PDL_ENTRY();
    __shared__ BevBox cols[64];
    __shared__ BevBox rows[MASK_ROWS];
    __shared__ double scratch[8][4][16];  // per warp, for clip_area_general
    __shared__ u64 bits[MASK_ROWS];
    __shared__ unsigned short queue[MASK_ROWS * 64];  // row * 64 + column
    __shared__ int queued;
#ifdef PP_POST_LANES
    const int g = blockIdx.z % lane_groups, frame = blockIdx.z / lane_groups;
#else
    const int g = blockIdx.z;
#endif
    PP_AT(dec_boxes, lane_scratch, frame); PP_AT(group_list, lane_scratch, frame); PP_AT(group_count, lane_scratch, frame);
    PP_AT(mask, lane_scratch, frame);
    const int n = group_count[g];
    const int* list = group_list + (size_t)g * list_stride;
    const int t = threadIdx.x;
    const int col_words = (n + 63) >> 6, tiles = col_words * (col_words + 1) / 2;
    for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {  // block-uniform
        int rb = 0, q = tile;  // row block rb holds the tiles of words rb .. col_words - 1
        while (q >= col_words - rb) {
            q -= col_words - rb;
            ++rb;
        }
        const int cb = rb + q, r0 = rb * MASK_ROWS;
        const int ncol = min(64, n - cb * 64);
        if (t < ncol) make_bev(dec_boxes + (size_t)list[cb * 64 + t] * 7, cols[t]);
        if (t >= 64 && t < 64 + MASK_ROWS && r0 + t - 64 < n) make_bev(dec_boxes + (size_t)list[r0 + t - 64] * 7, rows[t - 64]);
        if (t < MASK_ROWS) bits[t] = 0ull;
        if (t == 0) queued = 0;
        __syncthreads();
        const int warp = t >> 5, lane = t & 31;
        const unsigned all = 0xffffffffu;
        const bool zero_suppresses = suppresses(0.0, threshold, at_least);
#pragma unroll
        for (int p = 0; p < 2 * (MASK_ROWS / 8); ++p) {  // p >> 1: the warp's row, p & 1: the word's half
            const int rr = warp * (MASK_ROWS / 8) + (p >> 1), i = r0 + rr, col = lane + 32 * (p & 1);
            const bool pair = i < n && col < ncol && cb * 64 + col > i;
            const bool clip = pair && may_overlap(rows[rr], cols[col]);
            const unsigned q = __ballot_sync(all, clip);
            int base = 0;
            if (lane == 0 && q) base = atomicAdd(&queued, __popc(q));
            base = __shfl_sync(all, base, 0);
            if (clip) queue[base + __popc(q & lanemask_lt())] = (unsigned short)(rr * 64 + col);
            const unsigned z = __ballot_sync(all, pair && !clip && zero_suppresses);
            if (lane == 0 && z) atomicOr(&bits[rr], (u64)z << (32 * (p & 1)));
        }
        __syncthreads();
        const int m = queued;
        for (int base = warp * 32; base < m; base += 256) {  // warp-uniform
            const int k = base + lane, rr = k < m ? queue[k] >> 6 : 0, col = k < m ? queue[k] & 63 : 0;
            bool general = false;
            double iou = k < m ? iou_of(rows[rr], cols[col], clip_area(rows[rr], cols[col], general)) : 0.0;
            for (unsigned rare = __ballot_sync(all, general); rare; rare &= rare - 1) {  // one lane at a time
                if (lane == __ffs(rare) - 1) iou = iou_of(rows[rr], cols[col], clip_area_general(rows[rr], cols[col], scratch[warp]));
                __syncwarp();
            }
            if (k < m && suppresses(iou, threshold, at_least)) atomicOr(&bits[rr], 1ull << col);
        }
        __syncthreads();
        if (t < MASK_ROWS && r0 + t < n) mask[((size_t)g * list_stride + r0 + t) * words + cb] = bits[t];
        __syncthreads();  // the next tile rewrites the shared rows, columns, bits and queue
    }
}

// One block per list. Warp 0 runs the greedy scan inside each 64-candidate word w: its diagonal block of
// the matrix (row i's word i >> 6) and its superdiagonal (row i's word (i >> 6) + 1) are preloaded into
// shared memory when they fit (diag_in_shared), so the scan of word w and the bits its kept rows remove
// from word w + 1 (`carry`) need no global load. Meanwhile warps 1.. OR the rows kept in word w - 1 into
// words w + 1 and later (independent global loads spread over the block): they have a whole word's scan
// to finish, and one barrier per word orders the two. Same greedy result as scanning row by row.
#define SCAN_THREADS 256
extern "C" __global__ void __launch_bounds__(SCAN_THREADS)
pp_post_nms_scan(const u64* __restrict__ mask, const int* __restrict__ group_count, int list_stride, int words,
                 int max_keep, int diag_in_shared, int* __restrict__ keep, int* __restrict__ keep_count PP_LANE_PARAMS) {
    PP_PDL_ENTRY();
    PP_AT(mask, lane_scratch, PP_LANE); PP_AT(group_count, lane_scratch, PP_LANE); PP_AT(keep, lane_scratch, PP_LANE); PP_AT(keep_count, lane_scratch, PP_LANE);
    extern __shared__ u64 sh[];  // removed[words], then diag[words * 64] and sup[words * 64] when diag_in_shared
    __shared__ int kept_idx[2][64];  // the rows kept in word w, double-buffered by w & 1
    __shared__ int n_kept[2], m_total;
    u64* removed = sh;
    u64* diag = sh + words;
    u64* sup = diag + (size_t)words * 64;
    const int g = blockIdx.x, t = threadIdx.x, lane = t & 31;
    const int n = group_count[g];
    const int nw = (n + 63) >> 6;
    const u64* M = mask + (size_t)g * list_stride * words;
    int* out = keep + (size_t)g * max_keep;
    for (int w = t; w < nw; w += SCAN_THREADS) removed[w] = 0ull;
    if (diag_in_shared)
        for (int i = t; i < nw * 64; i += SCAN_THREADS) {
            const int wi = i >> 6;
            diag[i] = i < n ? M[(size_t)i * words + wi] : 0ull;
            sup[i] = i < n && wi + 1 < nw ? M[(size_t)i * words + wi + 1] : 0ull;
        }
    if (t == 0) {
        m_total = 0;
        n_kept[0] = n_kept[1] = 0;
    }
    __syncthreads();
    u64 carry = 0ull;  // warp 0: the bits of word w removed by the rows kept in word w - 1
    for (int w = 0; w < nw; ++w) {
        if (t < 32) {
            const int i0 = w * 64 + lane, i1 = i0 + 32;
            u64 d0, d1;
            if (diag_in_shared) {
                d0 = diag[i0];
                d1 = diag[i1];
            } else {
                d0 = i0 < n ? M[(size_t)i0 * words + w] : 0ull;
                d1 = i1 < n ? M[(size_t)i1 * words + w] : 0ull;
            }
            const int valid = n - w * 64;
            u64 alive = ~(removed[w] | carry);
            if (valid < 64) alive &= (1ull << valid) - 1ull;
            int m = m_total, nk = 0;
            u64 kept = 0ull;
            while (alive && m < max_keep) {
                const int b = __ffsll((long long)alive) - 1;
                const u64 row = __shfl_sync(0xffffffffu, b < 32 ? d0 : d1, b & 31);
                if (lane == 0) {
                    out[m] = w * 64 + b;
                    kept_idx[w & 1][nk] = w * 64 + b;
                }
                ++m;
                ++nk;
                kept |= 1ull << b;
                alive &= ~row;
                alive &= ~(1ull << b);
            }
            // carry for word w + 1: OR of the kept rows' superdiagonal words
            u64 c = 0ull;
            if (w + 1 < nw) {
                if ((kept >> lane) & 1ull) c |= diag_in_shared ? sup[i0] : M[(size_t)i0 * words + w + 1];
                if ((kept >> (lane + 32)) & 1ull) c |= diag_in_shared ? sup[i1] : M[(size_t)i1 * words + w + 1];
            }
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) c |= __shfl_xor_sync(0xffffffffu, c, o);
            carry = c;
            if (lane == 0) {
                m_total = m;
                n_kept[w & 1] = nk;
            }
        } else if (w > 0) {  // warps 1..: the rows kept in word w - 1 into words w + 1 .. nw - 1
            const int nk = n_kept[(w - 1) & 1], span = nw - w - 1;
            const int* rows = kept_idx[(w - 1) & 1];
            for (int item = t - 32; item < nk * span; item += SCAN_THREADS - 32) {
                const int j = item / span, ww = w + 1 + item % span;
                const u64 bits = M[(size_t)rows[j] * words + ww];
                if (bits) atomicOr(&removed[ww], bits);
            }
        }
        __syncthreads();
        if (m_total >= max_keep) break;  // block-uniform
    }
    if (t == 0) keep_count[g] = m_total;
}

// yaw -> [-pi, pi) in float32 exactly as postprocess/box_coder.py::canonical_yaw (pi, 2 pi as float32)
__device__ __forceinline__ float canonical_yaw(float y, float pi, float two_pi) {
    float r = __fsub_rn(y, __fmul_rn(floorf(__fadd_rn(__fdiv_rn(y, two_pi), 0.5f)), two_pi));
    if (r >= pi) r = __fsub_rn(r, two_pi);
    if (r < -pi) r = __fadd_rn(r, two_pi);
    return r;
}

// number of kept entries of class c' whose score is > s (strict) or >= s (!strict); scores desc
__device__ int count_above(const int* keep, int m, const int* list, const float* probs, int K, int c, float s, bool strict) {
    int lo = 0, hi = m;  // first position whose score fails the test
    while (lo < hi) {
        const int mid = (lo + hi) >> 1;
        const float v = probs[(size_t)list[keep[mid]] * K + c];
        const bool pass = strict ? v > s : v >= s;
        if (pass) lo = mid + 1; else hi = mid;
    }
    return lo;
}

extern "C" __global__ void __launch_bounds__(256)
pp_post_output(int agnostic, int K, int post_max, int list_stride, int canonical, float pi, float two_pi,
               const float* __restrict__ dec_boxes,
               const float* __restrict__ dec_score, const int* __restrict__ dec_label, const float* __restrict__ probs,
               const int* __restrict__ group_list, const int* __restrict__ keep, const int* __restrict__ keep_count,
               float* __restrict__ out_boxes, float* __restrict__ out_scores, int* __restrict__ out_labels,
               int* __restrict__ out_count, const int* __restrict__ side_src, int* __restrict__ side_dst,
               int side_words PP_LANE_PARAMS) {
    PP_PDL_ENTRY();
    PP_AT(side_src, lane_out, PP_LANE); PP_AT(side_dst, lane_out, PP_LANE);
    // words that travel with the outputs (the voxelizer's counters, when the outputs go straight to host memory)
    for (int q = threadIdx.x; q < side_words; q += blockDim.x) side_dst[q] = side_src[q];
    PP_AT(dec_boxes, lane_scratch, PP_LANE); PP_AT(dec_score, lane_scratch, PP_LANE); PP_AT(dec_label, lane_scratch, PP_LANE); PP_AT(probs, lane_scratch, PP_LANE);
    PP_AT(group_list, lane_scratch, PP_LANE); PP_AT(keep, lane_scratch, PP_LANE); PP_AT(keep_count, lane_scratch, PP_LANE);
    PP_AT(out_boxes, lane_out, PP_LANE); PP_AT(out_scores, lane_out, PP_LANE); PP_AT(out_labels, lane_out, PP_LANE); PP_AT(out_count, lane_out, PP_LANE);
    const int groups = agnostic ? 1 : K;
    int total = 0;
    for (int c = 0; c < groups; ++c) total += keep_count[c];
    const int count = total < post_max ? total : post_max;
    for (int c = 0; c < groups; ++c) {
        const int m = keep_count[c];
        const int* kp = keep + (size_t)c * post_max;
        const int* list = group_list + (size_t)c * list_stride;
        for (int q = threadIdx.x; q < m; q += blockDim.x) {
            const int j = list[kp[q]];
            float s;
            int label, rank = q;
            if (agnostic) {
                s = dec_score[j];
                label = dec_label[j];
            } else {
                s = probs[(size_t)j * K + c];
                label = c;
                for (int o = 0; o < K; ++o) {
                    if (o == c) continue;
                    rank += count_above(keep + (size_t)o * post_max, keep_count[o], group_list + (size_t)o * list_stride,
                                        probs, K, o, s, o > c);
                }
            }
            if (rank >= post_max) continue;
#pragma unroll
            for (int e = 0; e < 7; ++e) out_boxes[(size_t)rank * 7 + e] = dec_boxes[(size_t)j * 7 + e];
            if (canonical) out_boxes[(size_t)rank * 7 + 6] = canonical_yaw(dec_boxes[(size_t)j * 7 + 6], pi, two_pi);
            out_scores[rank] = s;
            out_labels[rank] = label;
        }
    }
    for (int q = count + threadIdx.x; q < post_max; q += blockDim.x) {
#pragma unroll
        for (int e = 0; e < 7; ++e) out_boxes[(size_t)q * 7 + e] = 0.0f;
        out_scores[q] = 0.0f;
        out_labels[q] = -1;
    }
    if (threadIdx.x == 0) *out_count = count;
}
