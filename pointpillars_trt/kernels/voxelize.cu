// Voxelization (points -> pillars) + 10-channel decoration, deterministic and identical to the CPU
// reference (pointpillars_trt/voxelize/numba_cpu.py + decorate.py).
//
// Compiled at run time with NVRTC (pointpillars_trt/cuda/nvrtc.py); no header is included. All
// float arithmetic that must match the CPU bit for bit uses the round-to-nearest intrinsics
// (__fadd_rn, __fmul_rn, __fdiv_rn, ...), which are never contracted into FMAs.
//
// Semantics (the CPU reference's): points are visited in input order; a point refused by the
// config's range filter (voxelize/range_filter.py: rule 1 xy_closed, min <= x, y <= max; rule 2
// open, min < x, y, z < max; float32) is out of range; the cell of a point is
// floor((p - min) / voxel) in float32, cells outside the grid (also along z) are out of range;
// pillars are numbered in first-seen order of their cells; only the first `max_pillars` cells get a
// pillar (points of later cells are dropped and counted); a pillar keeps its first M points in
// input order (later ones are "excess"); its mean is the float32 sum of those points in order,
// divided by n.
//
// Passes (N points, P pillars, all counts read on the device so every launch can sit in a graph):
//   (once)   cell_first[nx*ny] = INT_MAX, cell_count[nx*ny] = 0; pass 4 puts both back for the next
//            frame (the P cells of its pillars, or both whole tables when pillars were dropped,
//            whose cells are not listed)
//   1 pp_vox_cells    per point: cell (or -1 / -2); atomicMin(cell_first[cell], i);
//                     slot = atomicAdd(cell_count[cell], 1) (order of slots is arbitrary);
//                     resets the counters, the scan's tile states and its ticket; in the fused
//                     form also zeroes the canvas cells of the previous frame; with points_copy the
//                     points and their count are read from mapped pinned host memory and copied to
//                     points_copy / count_copy, which the later passes read (no host-to-device copy)
//   2 pp_vox_number   per tile of 1024 points (tiles numbered by a ticket in the order blocks
//                     start): first = (cell_first[cell] == i); a single-pass scan with decoupled
//                     look-back over the tiles, in index order, of the pair (first, count of the
//                     cell if first): pillar id = first-seen rank, bucket offset = points of the
//                     earlier pillars. Integer sums in a fixed order: the result is the sequential
//                     scan's whatever the timing. The first point of a cell writes
//                     cell_first[cell] := ~id (negative: no point index equals it, so another
//                     tile's `first` test of the same cell stays false whether it reads before or
//                     after; both are relaxed gpu-scope accesses) and cell_count[cell] := offset; for a kept pillar coords,
//                     pillar_count, pillar_offset, num_points = min(count, M); excess and dropped
//                     points from the counts; the last tile writes P / found / dropped pillars;
//                     out of range, non-finite rows, intensity range
//   3 pp_vox_bucket   per point of a kept pillar: bucket[offset(cell) + slot] = i;
//                     num_points[P..max_pillars) = 0
//   4 pp_vox_decorate one warp per pillar: the M smallest point indices of its bucket, sorted
//                     (this is what restores input order): up to 32 in registers (bitonic sort
//                     with shuffles; a pillar with more than 32 points and M <= 32 keeps the 32
//                     smallest by bitonic merges, one bucket read), beyond that in shared memory
//                     (threshold search + rank sort); gathered into shared memory, mean summed in
//                     order by one lane per axis, decorated one lane per point, staged in shared
//                     memory and written [M, 10] as coalesced float4 (scalars for odd M)
//     or pp_vox_decorate_pfn: the same, then the PFN (linear -> BN -> ReLU -> max) on the fly and
//                     the pillar's feature vector stored straight into the BEV canvas.
//
// What determinism costs: the scan of pass 2 (first-seen numbering by a scan instead of an atomic
// pillar counter) and pass 3 plus the in-warp selection/sort of pass 4 (input order inside a
// pillar instead of atomic slot order): one extra launch and ~8 * N extra bytes, and the look-back.
//
// Counters (int32[12]): 0 P (pillars kept, <= max_pillars), 1 pillars found, 2 out of range (rows
// holding NaN/inf too), 3 dropped pillars, 4 dropped points, 5 excess points, 6 N, 7 unused (0),
// 8 rows holding NaN/inf, 9 / 10 smallest / largest intensity of the finite rows as ordered_key
// (INT_MAX / INT_MIN when there is none), 11 unused. Pass 1 marks a non-finite row's cell -2 (out
// of range); pass 2 counts those rows and takes the intensity range, so the host checks neither.
//
// Layouts: points [N, 4] float32 (16-byte aligned rows); features [max_pillars, M, 10] float32;
// num_points [max_pillars] int32 (0 for rows >= P); coords [max_pillars, 2] int32 (ix, iy).
// Workspace: tile_status [num_tiles + 1] uint64 (the last word holds the ticket).

#define PP_INT_MAX 0x7fffffff
#define FULL_MASK 0xffffffffu
#define TILE_THREADS 256
#define TILE_ITEMS 4
#define TILE_WARPS (TILE_THREADS / 32)
#define TILE_SIZE (TILE_THREADS * TILE_ITEMS)
#define WARPS_PER_BLOCK 8
#if TILE_ITEMS * TILE_WARPS != 32
#error "pass 2 scans the (item, warp) totals of a tile with one warp: TILE_ITEMS * TILE_WARPS must be 32"
#endif

// Programmatic dependent launch (sm_90+; see pointpillars_trt/cuda/nvrtc.py): every kernel first
// waits for the previous kernel on the stream to complete (its writes visible), then lets the next
// one be scheduled. Nothing is read or written before the wait, so results are as without PDL.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define PP_PDL_ENTRY() asm volatile("griddepcontrol.wait;\n\tgriddepcontrol.launch_dependents;" ::: "memory")
#else
#define PP_PDL_ENTRY() do { } while (0)
#endif

enum { C_P = 0, C_FOUND = 1, C_OOR = 2, C_DROP_PILLARS = 3, C_DROP_POINTS = 4, C_EXCESS = 5, C_N = 6, C_UNUSED = 7,
       C_NONFINITE = 8, C_IMIN = 9, C_IMAX = 10 };

__device__ __forceinline__ bool finite_f32(float v) { return (__float_as_uint(v) & 0x7f800000u) != 0x7f800000u; }

// float -> int with the same order (for atomicMin / atomicMax); its own inverse on the int side
__device__ __forceinline__ int ordered_key(float f) {
    const int k = __float_as_int(f);
    return k >= 0 ? k : k ^ 0x7fffffff;
}

__device__ __forceinline__ int read_count(int n, const int* n_dev, int cap) {
    if (n_dev != nullptr) n = *n_dev;
    if (n > cap) n = cap;
    return n < 0 ? 0 : n;
}

__device__ __forceinline__ unsigned lanemask_lt() {
    unsigned m;
    asm("mov.u32 %0, %%lanemask_lt;" : "=r"(m));
    return m;
}

__device__ __forceinline__ int warp_sum(int v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

// block-wide sum of one int per thread (blockDim.x a multiple of 32, <= 1024)
__device__ int block_sum(int v, int* scratch) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(FULL_MASK, v, o);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    int total = 0;
    if (threadIdx.x == 0) {
        for (int w = 0; w < (int)(blockDim.x >> 5); ++w) total += scratch[w];
        scratch[32] = total;
    }
    __syncthreads();
    return scratch[32];
}

// Pass 1 of the fused form also zeroes the canvas cells written by the previous frame: coords /
// counters[C_P] still hold that frame's pillars then (pass 2 rewrites them).
__device__ void clear_canvas(const int* __restrict__ coords, const int* __restrict__ counters, int C, int nx, int ny, int nhwc,
                             int half, void* __restrict__ canvas) {
    const int P = counters[C_P];
    const long long total = (long long)P * C;
    const long long plane = (long long)nx * ny;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
        const int p = (int)(e / C), c = (int)(e - (long long)p * C);
        const int ix = coords[2 * p], iy = coords[2 * p + 1];
        if (ix < 0 || ix >= nx || iy < 0 || iy >= ny) continue;
        const long long at = nhwc ? ((long long)iy * nx + ix) * C + c : (long long)c * plane + (long long)iy * nx + ix;
        if (half) reinterpret_cast<unsigned short*>(canvas)[at] = 0;
        else reinterpret_cast<float*>(canvas)[at] = 0.0f;
    }
}

// the range filter of voxelize/range_filter.py::outside_range (rule 0: none)
__device__ __forceinline__ bool outside_range(const float4& p, const float* lo, const float* hi, int rule) {
    if (rule == 1) return !(p.x >= lo[0] && p.x <= hi[0] && p.y >= lo[1] && p.y <= hi[1]);
    if (rule == 2) return !(p.x > lo[0] && p.x < hi[0] && p.y > lo[1] && p.y < hi[1] && p.z > lo[2] && p.z < hi[2]);
    return false;
}

extern "C" __global__ void __launch_bounds__(256)
pp_vox_cells(const float* __restrict__ points, int n, const int* n_dev, int cap, float xmin, float ymin, float zmin,
             float vx, float vy, float vz, int nx, int ny, int nz, float xmax, float ymax, float zmax, int range_rule,
             int* __restrict__ point_cell, int* __restrict__ point_slot, int* __restrict__ cell_first,
             int* __restrict__ cell_count, unsigned long long* __restrict__ tile_status, int num_tiles,
             int* __restrict__ counters, const int* __restrict__ coords, int C, int nhwc, int half, void* __restrict__ canvas,
             float* __restrict__ points_copy, int* __restrict__ count_copy) {
    PP_PDL_ENTRY();
    if (canvas != nullptr) clear_canvas(coords, counters, C, nx, ny, nhwc, half, canvas);
    const float lo[3] = {xmin, ymin, zmin}, hi[3] = {xmax, ymax, zmax};
    int N;
    const int tid = blockIdx.x * blockDim.x + threadIdx.x, stride = gridDim.x * blockDim.x;
    if (points_copy == nullptr) {
        N = read_count(n, n_dev, cap);
    } else {  // the count is in pinned host memory: one read over the bus per block (uniform branch)
        __shared__ int s_count;
        if (threadIdx.x == 0) s_count = *n_dev;
        __syncthreads();
        N = read_count(s_count, nullptr, cap);
        if (tid == 0) *count_copy = s_count;  // the later passes read the device copy
    }
    if (tid == 0) {
        counters[C_OOR] = 0;
        counters[C_DROP_POINTS] = 0;
        counters[C_EXCESS] = 0;
        counters[C_N] = N;
        counters[C_UNUSED] = 0;
        counters[C_NONFINITE] = 0;
        counters[C_IMIN] = PP_INT_MAX;
        counters[C_IMAX] = -PP_INT_MAX - 1;
    }
    for (int t = tid; t <= num_tiles; t += stride) tile_status[t] = 0ull;  // [num_tiles]: the ticket
    const float4* pts = reinterpret_cast<const float4*>(points);
    float4* copy = reinterpret_cast<float4*>(points_copy);
    for (int i = tid; i < N; i += stride) {
        const float4 p = pts[i];
        if (copy != nullptr) copy[i] = p;
        const float fx = floorf(__fdiv_rn(__fsub_rn(p.x, xmin), vx));
        const float fy = floorf(__fdiv_rn(__fsub_rn(p.y, ymin), vy));
        const float fz = floorf(__fdiv_rn(__fsub_rn(p.z, zmin), vz));
        int cell = finite_f32(p.x) && finite_f32(p.y) && finite_f32(p.z) && finite_f32(p.w) ? -1 : -2;
        if (cell == -1 && !outside_range(p, lo, hi, range_rule) && fx >= 0.0f && fx < (float)nx && fy >= 0.0f && fy < (float)ny && fz >= 0.0f && fz < (float)nz) {
            cell = (int)fy * nx + (int)fx;
            atomicMin(&cell_first[cell], i);
            point_slot[i] = atomicAdd(&cell_count[cell], 1);
        }
        point_cell[i] = cell;
    }
}

// ---- pass 2: numbering by a single-pass scan with decoupled look-back ---------------------------
// A tile's status word: bits 62-63 its state (0 nothing yet, 1 its aggregate, 2 its inclusive
// prefix), bits 31-61 pillars first seen, bits 0-30 their points (both < 2^31 as N < 2^31 - 1).
// One 64-bit word, so its reader never sees a state with another state's values.
#define ST_AGGREGATE 1ull
#define ST_PREFIX 2ull

__device__ __forceinline__ unsigned long long tile_word(unsigned long long state, int pillars, int points) {
    return (state << 62) | ((unsigned long long)(unsigned)pillars << 31) | (unsigned long long)(unsigned)points;
}

// Relaxed (morally strong, gpu scope) loads and stores, for words that other blocks of the same
// kernel write or read meanwhile: the tile states and, in pass 2, cell_first.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
__device__ __forceinline__ unsigned long long load_relaxed(const unsigned long long* p) {
    unsigned long long v;
    asm volatile("ld.relaxed.gpu.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ int load_relaxed(const int* p) {
    int v;
    asm volatile("ld.relaxed.gpu.s32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ void store_relaxed(unsigned long long* p, unsigned long long v) {
    asm volatile("st.relaxed.gpu.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}
__device__ __forceinline__ void store_relaxed(int* p, int v) {
    asm volatile("st.relaxed.gpu.s32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
#else
template <typename T> __device__ __forceinline__ T load_relaxed(const T* p) { return *reinterpret_cast<const volatile T*>(p); }
template <typename T> __device__ __forceinline__ void store_relaxed(T* p, T v) { *reinterpret_cast<volatile T*>(p) = v; }
#endif

// Exclusive prefix (pillars, points) of tile t >= 1, in every lane of the calling warp: the sum of
// the words of tiles t-1, t-2, ... down to and including the nearest one that holds its inclusive
// prefix (tile 0 always does), waiting while a tile of the window has published nothing. The tiles
// below t took their tickets earlier, so they are running and the wait ends.
__device__ int2 look_back(const unsigned long long* tile_status, int t) {
    const int lane = threadIdx.x & 31;
    int pillars = 0, points = 0;
    for (int top = t - 1;; top -= 32) {
        const int q = top - lane;
        unsigned long long s;
        do {
            s = q >= 0 ? load_relaxed(tile_status + q) : tile_word(ST_PREFIX, 0, 0);
        } while (__any_sync(FULL_MASK, (s >> 62) == 0ull));
        const unsigned prefix = __ballot_sync(FULL_MASK, (s >> 62) == ST_PREFIX);
        const bool mine = prefix == 0u || lane <= __ffs(prefix) - 1;
        pillars += warp_sum(mine ? (int)((s >> 31) & 0x7fffffffull) : 0);
        points += warp_sum(mine ? (int)(s & 0x7fffffffull) : 0);
        if (prefix) break;
    }
    return make_int2(pillars, points);
}

// sums of four ints over the block, in thread 0 (called once per kernel: scratch is not reused)
__device__ int4 block_sum4(int4 v, int4* scratch) {
    v = make_int4(warp_sum(v.x), warp_sum(v.y), warp_sum(v.z), warp_sum(v.w));
    if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
    __syncthreads();
    int4 t = make_int4(0, 0, 0, 0);
    if (threadIdx.x == 0) {
        for (int w = 0; w < (int)(blockDim.x >> 5); ++w) {
            t.x += scratch[w].x;
            t.y += scratch[w].y;
            t.z += scratch[w].z;
            t.w += scratch[w].w;
        }
    }
    return t;
}

// Warp 0 of a tile: scans the (item, warp) totals in place (exclusive), publishes the tile's
// aggregate, looks back, publishes its inclusive prefix; returns the tile's exclusive prefix.
// The last tile writes P, pillars found and dropped pillars.
__device__ int2 tile_prefix(int* s_pillars, int* s_points, unsigned long long* tile_status, int tile, int max_pillars,
                            int* __restrict__ counters) {
    const int lane = threadIdx.x & 31;
    const int a = s_pillars[lane], b = s_points[lane];
    int ia = a, ib = b;
    for (int o = 1; o < 32; o <<= 1) {
        const int va = __shfl_up_sync(FULL_MASK, ia, o), vb = __shfl_up_sync(FULL_MASK, ib, o);
        if (lane >= o) {
            ia += va;
            ib += vb;
        }
    }
    s_pillars[lane] = ia - a;
    s_points[lane] = ib - b;
    const int agg_pillars = __shfl_sync(FULL_MASK, ia, 31), agg_points = __shfl_sync(FULL_MASK, ib, 31);
    int2 excl = make_int2(0, 0);
    if (tile > 0) {
        if (lane == 0) store_relaxed(tile_status + tile, tile_word(ST_AGGREGATE, agg_pillars, agg_points));
        excl = look_back(tile_status, tile);
    }
    if (lane == 0) {
        store_relaxed(tile_status + tile, tile_word(ST_PREFIX, excl.x + agg_pillars, excl.y + agg_points));
        if (tile == (int)gridDim.x - 1) {
            const int found = excl.x + agg_pillars;
            const int kept = found < max_pillars ? found : max_pillars;
            counters[C_P] = kept;
            counters[C_FOUND] = found;
            counters[C_DROP_PILLARS] = found - kept;
        }
    }
    return excl;
}

// The first point of cell c (count m) records pillar id pid and bucket offset off; sums.z / .w
// collect excess / dropped points.
__device__ __forceinline__ void number_pillar(int c, int m, int pid, int off, int max_pillars, int M, int nx, int* cell_first,
                                              int* cell_count, int* __restrict__ coords, int* __restrict__ pillar_count,
                                              int* __restrict__ pillar_offset, int* __restrict__ num_points, int4& sums) {
    store_relaxed(cell_first + c, ~pid);  // from now on the tables map cell -> (~pillar id, bucket offset)
    cell_count[c] = off;
    if (pid < max_pillars) {
        coords[2 * pid] = c % nx;
        coords[2 * pid + 1] = c / nx;
        pillar_count[pid] = m;
        pillar_offset[pid] = off;
        num_points[pid] = m < M ? m : M;
        sums.z += m > M ? m - M : 0;
    } else {
        sums.w += m;
    }
}

// cell_first / cell_count are read and written here by several tiles (see the header): no
// __restrict__, no read-only loads.
extern "C" __global__ void __launch_bounds__(TILE_THREADS)
pp_vox_number(const float* __restrict__ points, int n, const int* n_dev, int cap, int max_pillars, int M, int nx,
              const int* __restrict__ point_cell, int* cell_first, int* cell_count, unsigned long long* tile_status,
              int* __restrict__ coords, int* __restrict__ pillar_count, int* __restrict__ pillar_offset,
              int* __restrict__ num_points, int* __restrict__ counters) {
    PP_PDL_ENTRY();
    __shared__ int s_pillars[32], s_points[32];  // per (item, warp): totals, then what precedes it in the tile
    __shared__ int4 scratch[TILE_WARPS];
    __shared__ int s_tile;
    __shared__ int2 s_excl;
    const int N = read_count(n, n_dev, cap);
    if (threadIdx.x == 0) s_tile = atomicAdd(reinterpret_cast<int*>(tile_status + gridDim.x), 1);
    __syncthreads();
    const int tile = s_tile;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const float4* pts = reinterpret_cast<const float4*>(points);
    int cell[TILE_ITEMS], cnt[TILE_ITEMS], rank[TILE_ITEMS], before[TILE_ITEMS];
    int4 sums = make_int4(0, 0, 0, 0);  // out of range, non-finite, excess points, dropped points
    int kmin = PP_INT_MAX, kmax = -PP_INT_MAX - 1;
#pragma unroll
    for (int k = 0; k < TILE_ITEMS; ++k) {  // index order inside a tile is (k, warp, lane)
        const int i = tile * TILE_SIZE + k * TILE_THREADS + threadIdx.x;
        int c = -3;  // no point
        if (i < N) {
            c = point_cell[i];
            sums.x += c < 0;
            sums.y += c == -2;
            if (c != -2) {
                const int key = ordered_key(pts[i].w);
                kmin = min(kmin, key);
                kmax = max(kmax, key);
            }
        }
        const bool first = c >= 0 && load_relaxed(cell_first + c) == i;
        const int m = first ? cell_count[c] : 0;
        const unsigned ballot = __ballot_sync(FULL_MASK, first);
        int incl = m;
        for (int o = 1; o < 32; o <<= 1) {
            const int v = __shfl_up_sync(FULL_MASK, incl, o);
            if (lane >= o) incl += v;
        }
        cell[k] = first ? c : -1;
        cnt[k] = m;
        rank[k] = __popc(ballot & lanemask_lt());
        before[k] = incl - m;
        if (lane == 31) {
            s_pillars[k * TILE_WARPS + warp] = __popc(ballot);
            s_points[k * TILE_WARPS + warp] = incl;
        }
    }
    __syncthreads();
    if (warp == 0) {
        const int2 excl = tile_prefix(s_pillars, s_points, tile_status, tile, max_pillars, counters);
        if (lane == 0) s_excl = excl;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < TILE_ITEMS; ++k) {
        if (cell[k] < 0) continue;
        const int pid = s_excl.x + s_pillars[k * TILE_WARPS + warp] + rank[k];
        const int off = s_excl.y + s_points[k * TILE_WARPS + warp] + before[k];
        number_pillar(cell[k], cnt[k], pid, off, max_pillars, M, nx, cell_first, cell_count, coords, pillar_count,
                      pillar_offset, num_points, sums);
    }
    for (int o = 16; o > 0; o >>= 1) {
        kmin = min(kmin, __shfl_xor_sync(FULL_MASK, kmin, o));
        kmax = max(kmax, __shfl_xor_sync(FULL_MASK, kmax, o));
    }
    if (lane == 0 && kmin <= kmax) {
        atomicMin(&counters[C_IMIN], kmin);
        atomicMax(&counters[C_IMAX], kmax);
    }
    sums = block_sum4(sums, scratch);
    if (threadIdx.x == 0) {
        if (sums.x) atomicAdd(&counters[C_OOR], sums.x);
        if (sums.y) atomicAdd(&counters[C_NONFINITE], sums.y);
        if (sums.z) atomicAdd(&counters[C_EXCESS], sums.z);
        if (sums.w) atomicAdd(&counters[C_DROP_POINTS], sums.w);
    }
}

extern "C" __global__ void __launch_bounds__(256)
pp_vox_bucket(int n, const int* n_dev, int cap, int max_pillars, const int* __restrict__ point_cell,
              const int* __restrict__ point_slot, const int* __restrict__ cell_pillar, const int* __restrict__ cell_offset,
              const int* __restrict__ counters, int* __restrict__ bucket, int* __restrict__ num_points) {
    PP_PDL_ENTRY();
    const int N = read_count(n, n_dev, cap);
    const int tid = blockIdx.x * blockDim.x + threadIdx.x, stride = gridDim.x * blockDim.x;
    for (int i = tid; i < N; i += stride) {
        const int c = point_cell[i];
        if (c >= 0 && ~cell_pillar[c] < max_pillars) bucket[cell_offset[c] + point_slot[i]] = i;
    }
    for (int p = counters[C_P] + tid; p < max_pillars; p += stride) num_points[p] = 0;
}

// ---- pass 4: one warp per pillar -------------------------------------------------------------
// Shared memory per warp (voxelize/cuda.py: shared_bytes): pts [M] float4, then a scratch area of
// round16(max(8 M, 1280)) bytes: idx_in [M], idx_sorted [M] int (the selection of more than 32
// points), reused as stage [32 * 10] float (one chunk of decorated output).
struct PillarPoints {
    int n;
    float mx, my, mz, cx, cy, cz;
};

struct PillarSmem {
    float4* pts;
    int* idx_in;
    int* idx_sorted;
    float* stage;
};

__device__ __forceinline__ PillarSmem pillar_smem(int M) {
    extern __shared__ float4 smem[];
    const int scratch = ((8 * M > 1280 ? 8 * M : 1280) + 15) & ~15;
    char* base = reinterpret_cast<char*>(smem) + (threadIdx.x >> 5) * (16 * M + scratch);
    PillarSmem s;
    s.pts = reinterpret_cast<float4*>(base);
    s.idx_in = reinterpret_cast<int*>(base + 16 * M);
    s.idx_sorted = s.idx_in + M;
    s.stage = reinterpret_cast<float*>(base + 16 * M);
    return s;
}

// Sorts v ascending over the lanes when the lanes >= len hold INT_MAX: the bitonic stages up to the
// first power of two >= len (none for len 1); lane j then holds the j-th smallest.
__device__ __forceinline__ int warp_sort(int v, int len) {
    const int lane = threadIdx.x & 31;
    for (int k = 2; k <= 32 && (k >> 1) < len; k <<= 1) {
        for (int j = k >> 1; j > 0; j >>= 1) {
            const int o = __shfl_xor_sync(FULL_MASK, v, j);
            v = (((lane & j) == 0) == ((lane & k) == 0)) ? min(v, o) : max(v, o);
        }
    }
    return v;
}

// The 32 smallest of the ascending v and the ascending w, ascending (a bitonic merge).
__device__ __forceinline__ int warp_merge_smallest(int v, int w) {
    const int lane = threadIdx.x & 31;
    v = min(v, __shfl_sync(FULL_MASK, w, 31 - lane));
    for (int j = 16; j > 0; j >>= 1) {
        const int o = __shfl_xor_sync(FULL_MASK, v, j);
        v = (lane & j) == 0 ? min(v, o) : max(v, o);
    }
    return v;
}

// Lane j < min(cnt, 32) gets the j-th smallest of the unique point indices b[0..cnt), cnt >= 1;
// each bucket entry is read once.
__device__ int smallest_indices(const int* __restrict__ b, int cnt) {
    const int lane = threadIdx.x & 31;
    int v = warp_sort(lane < cnt ? b[lane] : PP_INT_MAX, cnt);
    for (int j0 = 32; j0 < cnt; j0 += 32) {
        const int j = j0 + lane;
        v = warp_merge_smallest(v, warp_sort(j < cnt ? b[j] : PP_INT_MAX, cnt - j0));
    }
    return v;
}

// idx_sorted[0..n) = the n = min(cnt, M) smallest of the unique indices b[0..cnt), ascending, for
// M > 32 and cnt > 32: threshold t = the n-th smallest by a binary search on the values, then a
// rank sort in shared memory.
__device__ void select_sorted(const int* __restrict__ b, int cnt, int M, int* idx_in, int* idx_sorted) {
    const int lane = threadIdx.x & 31;
    const int n = cnt < M ? cnt : M;
    if (cnt <= M) {
        for (int j = lane; j < cnt; j += 32) idx_in[j] = b[j];
    } else {
        int lo = PP_INT_MAX, hi = 0;
        for (int j = lane; j < cnt; j += 32) {
            const int v = b[j];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        for (int o = 16; o > 0; o >>= 1) {
            const int l2 = __shfl_xor_sync(FULL_MASK, lo, o), h2 = __shfl_xor_sync(FULL_MASK, hi, o);
            lo = l2 < lo ? l2 : lo;
            hi = h2 > hi ? h2 : hi;
        }
        while (lo < hi) {
            const int mid = lo + ((hi - lo) >> 1);
            int c = 0;
            for (int j0 = 0; j0 < cnt; j0 += 32) {
                const int j = j0 + lane;
                c += __popc(__ballot_sync(FULL_MASK, j < cnt && b[j] <= mid));
            }
            if (c >= M) hi = mid; else lo = mid + 1;
        }
        int run = 0;
        for (int j0 = 0; j0 < cnt; j0 += 32) {
            const int j = j0 + lane;
            const int v = j < cnt ? b[j] : PP_INT_MAX;
            const bool keep = j < cnt && v <= lo;
            const unsigned m = __ballot_sync(FULL_MASK, keep);
            if (keep) idx_in[run + __popc(m & lanemask_lt())] = v;
            run += __popc(m);
        }
    }
    __syncwarp();
    for (int q = lane; q < n; q += 32) {
        const int v = idx_in[q];
        int r = 0;
        for (int s = 0; s < n; ++s) r += idx_in[s] < v;
        idx_sorted[r] = v;
    }
    __syncwarp();
}

// Fills s.pts[0..n) with the pillar's first n = min(count, M) points in input order; returns n and
// the pillar's mean (summed in order, one lane per axis) and centre. Every lane gets the same result.
__device__ PillarPoints load_pillar(int p, int M, const float4* __restrict__ pts, const int* __restrict__ pillar_count,
                                    const int* __restrict__ pillar_offset, const int* __restrict__ bucket,
                                    const int* __restrict__ coords, float xmin, float ymin, float zmin, float vx,
                                    float vy, float vz, const PillarSmem& s) {
    const int lane = threadIdx.x & 31;
    const int cnt = pillar_count[p];
    const int* b = bucket + pillar_offset[p];
    const int n = cnt < M ? cnt : M;
    if (cnt <= 32 || M <= 32) {
        const int v = smallest_indices(b, cnt);
        if (lane < n) s.pts[lane] = pts[v];
    } else {
        select_sorted(b, cnt, M, s.idx_in, s.idx_sorted);
        for (int j = lane; j < n; j += 32) s.pts[j] = pts[s.idx_sorted[j]];
    }
    __syncwarp();
    const float* f = reinterpret_cast<const float*>(s.pts);
    const int axis = lane & 3;
    float sum = 0.0f;
    for (int j = 0; j < n; ++j) sum = __fadd_rn(sum, f[4 * j + axis]);  // sequential, as the CPU reference sums
    const float mean = __fdiv_rn(sum, (float)n);
    PillarPoints out;
    out.n = n;
    out.mx = __shfl_sync(FULL_MASK, mean, 0);
    out.my = __shfl_sync(FULL_MASK, mean, 1);
    out.mz = __shfl_sync(FULL_MASK, mean, 2);
    out.cx = __fadd_rn(__fadd_rn(__fmul_rn((float)coords[2 * p], vx), __fmul_rn(vx, 0.5f)), xmin);
    out.cy = __fadd_rn(__fadd_rn(__fmul_rn((float)coords[2 * p + 1], vy), __fmul_rn(vy, 0.5f)), ymin);
    out.cz = __fadd_rn(zmin, __fmul_rn(vz, 0.5f));
    return out;
}

// the ten channels of point q: x, y, z, r, xyz - mean, xyz - centre
__device__ __forceinline__ void decorate10(const float4& q, const PillarPoints& pp, float* f) {
    f[0] = q.x;
    f[1] = q.y;
    f[2] = q.z;
    f[3] = q.w;
    f[4] = __fsub_rn(q.x, pp.mx);
    f[5] = __fsub_rn(q.y, pp.my);
    f[6] = __fsub_rn(q.z, pp.mz);
    f[7] = __fsub_rn(q.x, pp.cx);
    f[8] = __fsub_rn(q.y, pp.cy);
    f[9] = __fsub_rn(q.z, pp.cz);
}

// Writes `total` floats of output; the first `valid` (even) come from the staged chunk, the rest
// are zero. vec4: out and stage 16-byte aligned and total a multiple of 4 (float4 stores).
__device__ __forceinline__ void write_chunk(float* __restrict__ out, const float* stage, int total, int valid, bool vec4) {
    const int lane = threadIdx.x & 31;
    if (vec4) {
        const float4* s4 = reinterpret_cast<const float4*>(stage);
        for (int q = lane; 4 * q < total; q += 32) {
            float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (4 * q < valid) {
                v = s4[q];
                if (4 * q + 4 > valid) v.z = v.w = 0.0f;  // valid is even: 2 of the 4 are the pillar's
            }
            reinterpret_cast<float4*>(out)[q] = v;
        }
    } else {
        for (int e = lane; e < total; e += 32) out[e] = e < valid ? stage[e] : 0.0f;
    }
}

// Pass 4 puts the cell tables back for the next frame (pass 3 was their last reader): each
// pillar's warp resets its own cell; when pillars were dropped (their cells are listed nowhere)
// both whole tables are reset as well.
__device__ __forceinline__ void reset_dropped_cells(int* __restrict__ cell_first, int* __restrict__ cell_count,
                                                    const int* __restrict__ counters, int ncells) {
    if (counters[C_FOUND] <= counters[C_P]) return;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < ncells; i += gridDim.x * blockDim.x) {
        cell_first[i] = PP_INT_MAX;
        cell_count[i] = 0;
    }
}

__device__ __forceinline__ void reset_cell(int p, const int* __restrict__ coords, int table_nx, int* __restrict__ cell_first,
                                           int* __restrict__ cell_count) {
    const int c = coords[2 * p + 1] * table_nx + coords[2 * p];
    cell_first[c] = PP_INT_MAX;
    cell_count[c] = 0;
}

extern "C" __global__ void __launch_bounds__(256)
pp_vox_decorate(const float* __restrict__ points, int M, float xmin, float ymin, float zmin, float vx, float vy,
                float vz, const int* __restrict__ pillar_count, const int* __restrict__ pillar_offset,
                const int* __restrict__ bucket, const int* __restrict__ coords, const int* __restrict__ counters,
                int* __restrict__ cell_first, int* __restrict__ cell_count, int table_nx, int ncells,
                float* __restrict__ features) {
    PP_PDL_ENTRY();
    const PillarSmem s = pillar_smem(M);
    const int P = counters[C_P];
    const int lane = threadIdx.x & 31, warp_in_block = threadIdx.x >> 5;
    const float4* pts = reinterpret_cast<const float4*>(points);
    const bool vec4 = ((reinterpret_cast<unsigned long long>(features) | (unsigned long long)(40 * M)) & 15ull) == 0ull;
    reset_dropped_cells(cell_first, cell_count, counters, ncells);
    for (int p = blockIdx.x * WARPS_PER_BLOCK + warp_in_block; p < P; p += gridDim.x * WARPS_PER_BLOCK) {
        const PillarPoints pp = load_pillar(p, M, pts, pillar_count, pillar_offset, bucket, coords, xmin, ymin, zmin,
                                            vx, vy, vz, s);
        if (lane == 0) reset_cell(p, coords, table_nx, cell_first, cell_count);
        float* out = features + (size_t)p * M * 10;
        for (int c0 = 0; c0 < M; c0 += 32) {  // chunks of 32 slots, one lane per slot
            const int rest = pp.n - c0;
            const int valid = rest <= 0 ? 0 : (rest < 32 ? rest : 32);
            if (lane < valid) {
                float f[10];
                decorate10(s.pts[c0 + lane], pp, f);
                float2* st = reinterpret_cast<float2*>(s.stage + lane * 10);
#pragma unroll
                for (int k = 0; k < 5; ++k) st[k] = make_float2(f[2 * k], f[2 * k + 1]);
            }
            __syncwarp();
            write_chunk(out + c0 * 10, s.stage, (M - c0 < 32 ? M - c0 : 32) * 10, valid * 10, vec4);
            __syncwarp();
        }
    }
}

__device__ __forceinline__ unsigned short f32_to_f16_bits(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

__device__ __forceinline__ void store_feature(void* __restrict__ canvas, int nhwc, int half, int C, int nx, long long plane, int ix,
                                              int iy, int c, float v) {
    const long long at = nhwc ? ((long long)iy * nx + ix) * C + c : (long long)c * plane + (long long)iy * nx + ix;
    if (half) reinterpret_cast<unsigned short*>(canvas)[at] = f32_to_f16_bits(v);
    else reinterpret_cast<float*>(canvas)[at] = v;
}

// Fused decoration + PFN + scatter: the pillar's C-channel feature
//   max_j relu((sum_f feat[j, f] * weight[c, f]) * scale[c] + shift[c])     (j over all M slots;
// empty slots have zero features, as in the PFN's masking) is written to the canvas at (ix, iy):
// canvas layout NCHW [C, ny, nx] (nhwc = 0) or NHWC [ny, nx, C] (nhwc = 1); half = 1 stores float16.
// The canvas cells of the previous frame were cleared by pass 1 (pp_vox_cells with a canvas).
// Channels go 64 at a time (lane c and c + 32): the weights are loaded once per warp and pass over
// the pillars (one pass for C <= 64; a wider PFN loads its pillars once per 64 channels).
extern "C" __global__ void __launch_bounds__(256)
pp_vox_decorate_pfn(const float* __restrict__ points, int M, float xmin, float ymin, float zmin, float vx, float vy,
                    float vz, const int* __restrict__ pillar_count, const int* __restrict__ pillar_offset,
                    const int* __restrict__ bucket, const int* __restrict__ coords, const int* __restrict__ counters,
                    int* __restrict__ cell_first, int* __restrict__ cell_count, int table_nx, int ncells,
                    const float* __restrict__ weight, const float* __restrict__ scale, const float* __restrict__ shift,
                    int C, int nx, int ny, int nhwc, int half, void* __restrict__ canvas) {
    PP_PDL_ENTRY();
    const PillarSmem s = pillar_smem(M);
    const int P = counters[C_P];
    const int lane = threadIdx.x & 31, warp_in_block = threadIdx.x >> 5;
    const float4* pts = reinterpret_cast<const float4*>(points);
    const long long plane = (long long)nx * ny;
    reset_dropped_cells(cell_first, cell_count, counters, ncells);
    for (int cbase = 0; cbase < C; cbase += 64) {
        // two channels per lane (c0 and c0 + 32): each point's ten features are made once for both,
        // and the two dependency chains interleave; each channel's arithmetic (and so its rounding)
        // is the same sequence as one channel at a time
        const int c0 = cbase + lane, c1 = c0 + 32;
        const bool has0 = c0 < C, has1 = c1 < C;
        float w0[10], w1[10];
#pragma unroll
        for (int f = 0; f < 10; ++f) {
            w0[f] = has0 ? weight[c0 * 10 + f] : 0.0f;
            w1[f] = has1 ? weight[c1 * 10 + f] : 0.0f;
        }
        const float sc0 = has0 ? scale[c0] : 0.0f, sh0 = has0 ? shift[c0] : 0.0f;
        const float sc1 = has1 ? scale[c1] : 0.0f, sh1 = has1 ? shift[c1] : 0.0f;
        for (int p = blockIdx.x * WARPS_PER_BLOCK + warp_in_block; p < P; p += gridDim.x * WARPS_PER_BLOCK) {
            const PillarPoints pp = load_pillar(p, M, pts, pillar_count, pillar_offset, bucket, coords, xmin, ymin, zmin,
                                                vx, vy, vz, s);
            if (lane == 0 && cbase == 0) reset_cell(p, coords, table_nx, cell_first, cell_count);
            // empty slots: features 0 -> linear 0 -> relu(shift)
            float best0 = pp.n < M ? fmaxf(sh0, 0.0f) : -3.0e38f;
            float best1 = pp.n < M ? fmaxf(sh1, 0.0f) : -3.0e38f;
            for (int j = 0; j < pp.n; ++j) {
                float feat[10];
                decorate10(s.pts[j], pp, feat);
                float acc0 = 0.0f, acc1 = 0.0f;
#pragma unroll
                for (int f = 0; f < 10; ++f) {
                    acc0 = __fadd_rn(acc0, __fmul_rn(feat[f], w0[f]));
                    acc1 = __fadd_rn(acc1, __fmul_rn(feat[f], w1[f]));
                }
                best0 = fmaxf(best0, fmaxf(__fadd_rn(__fmul_rn(acc0, sc0), sh0), 0.0f));
                best1 = fmaxf(best1, fmaxf(__fadd_rn(__fmul_rn(acc1, sc1), sh1), 0.0f));
            }
            const int ix = coords[2 * p], iy = coords[2 * p + 1];
            if (has0) store_feature(canvas, nhwc, half, C, nx, plane, ix, iy, c0, best0);
            if (has1) store_feature(canvas, nhwc, half, C, nx, plane, ix, iy, c1, best1);
            __syncwarp();
        }
    }
}
