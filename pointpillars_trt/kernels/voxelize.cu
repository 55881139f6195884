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
//   (once)   cell_first[nx*ny] = INT_MAX; pass 7 puts it back for the next frame (the P cells of
//            its pillars, or the whole table when pillars were dropped, whose cells are not listed)
//   1 pp_vox_cells    per point: cell (or -1); atomicMin(cell_first[cell], i); in the fused form
//                     also zeroes the canvas cells of the previous frame
//   2 pp_vox_flags    per tile of 512 points: first[i] = (cell_first[cell] == i); tile counts
//   3 pp_vox_assign   per tile: pillar id = exclusive scan of `first` in index order (tile offset =
//                     sum of earlier tile counts); cell_first[cell] := pillar id; coords; P
//   4 pp_vox_count    per point: slot = atomicAdd(count[pillar]) (order of slots is arbitrary)
//   5 pp_vox_offsets  per pillar: bucket offset = atomicAdd(cursor, count); num_points = min(count, M)
//   6 pp_vox_bucket   per point: bucket[offset[pillar] + slot] = i
//   7 pp_vox_decorate one warp per pillar: the M smallest point indices of its bucket, sorted
//                     (this is what restores input order), gathered, decorated, written [M, 10]
//     or pp_vox_decorate_pfn: the same, then the PFN (linear -> BN -> ReLU -> max) on the fly and
//                     the pillar's feature vector stored straight into the BEV canvas.
//
// What determinism costs: passes 2-3 (first-seen numbering by a scan instead of an atomic pillar
// counter) and 5-6 plus the in-warp selection/sort of pass 7 (input order inside a pillar instead
// of atomic slot order): about 3 extra launches and ~4 * N extra bytes each, a few microseconds.
//
// Counters (int32[12]): 0 P (pillars kept, <= max_pillars), 1 pillars found, 2 out of range (rows
// holding NaN/inf too), 3 dropped pillars, 4 dropped points, 5 excess points, 6 N, 7 bucket cursor
// (internal), 8 rows holding NaN/inf, 9 / 10 smallest / largest intensity of the finite rows as
// ordered_key (INT_MAX / INT_MIN when there is none), 11 unused. Pass 1 marks a non-finite row's
// cell -2 (out of range); pass 2 counts those rows and takes the intensity range, so the host
// checks neither.
//
// Layouts: points [N, 4] float32 (16-byte aligned rows); features [max_pillars, M, 10] float32;
// num_points [max_pillars] int32 (0 for rows >= P); coords [max_pillars, 2] int32 (ix, iy).

#define PP_INT_MAX 0x7fffffff
#define TILE_THREADS 256
#define TILE_ITEMS 2
#define TILE_SIZE (TILE_THREADS * TILE_ITEMS)
#define WARPS_PER_BLOCK 8

// Programmatic dependent launch (sm_90+; see pointpillars_trt/cuda/nvrtc.py): every kernel first
// waits for the previous kernel on the stream to complete (its writes visible), then lets the next
// one be scheduled. Nothing is read or written before the wait, so results are as without PDL.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define PP_PDL_ENTRY() asm volatile("griddepcontrol.wait;\n\tgriddepcontrol.launch_dependents;" ::: "memory")
#else
#define PP_PDL_ENTRY() do { } while (0)
#endif

enum { C_P = 0, C_FOUND = 1, C_OOR = 2, C_DROP_PILLARS = 3, C_DROP_POINTS = 4, C_EXCESS = 5, C_N = 6, C_CURSOR = 7,
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

// block-wide sum of one int per thread (blockDim.x a multiple of 32, <= 1024)
__device__ int block_sum(int v, int* scratch) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
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
// counters[C_P] still hold that frame's pillars then (pass 3 rewrites them).
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
             int* __restrict__ point_cell, int* __restrict__ cell_first, int* __restrict__ counters,
             const int* __restrict__ coords, int C, int nhwc, int half, void* __restrict__ canvas) {
    PP_PDL_ENTRY();
    if (canvas != nullptr) clear_canvas(coords, counters, C, nx, ny, nhwc, half, canvas);
    const float lo[3] = {xmin, ymin, zmin}, hi[3] = {xmax, ymax, zmax};
    const int N = read_count(n, n_dev, cap);
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        counters[C_OOR] = 0;
        counters[C_DROP_POINTS] = 0;
        counters[C_EXCESS] = 0;
        counters[C_N] = N;
        counters[C_CURSOR] = 0;
        counters[C_NONFINITE] = 0;
        counters[C_IMIN] = PP_INT_MAX;
        counters[C_IMAX] = -PP_INT_MAX - 1;
    }
    const float4* pts = reinterpret_cast<const float4*>(points);
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < N; i += gridDim.x * blockDim.x) {
        const float4 p = pts[i];
        const float fx = floorf(__fdiv_rn(__fsub_rn(p.x, xmin), vx));
        const float fy = floorf(__fdiv_rn(__fsub_rn(p.y, ymin), vy));
        const float fz = floorf(__fdiv_rn(__fsub_rn(p.z, zmin), vz));
        int cell = finite_f32(p.x) && finite_f32(p.y) && finite_f32(p.z) && finite_f32(p.w) ? -1 : -2;
        if (cell == -1 && !outside_range(p, lo, hi, range_rule) && fx >= 0.0f && fx < (float)nx && fy >= 0.0f && fy < (float)ny && fz >= 0.0f && fz < (float)nz) {
            cell = (int)fy * nx + (int)fx;
            atomicMin(&cell_first[cell], i);
        }
        point_cell[i] = cell;
    }
}

extern "C" __global__ void __launch_bounds__(TILE_THREADS)
pp_vox_flags(const float* __restrict__ points, int n, const int* n_dev, int cap, const int* __restrict__ point_cell,
             const int* __restrict__ cell_first, unsigned char* __restrict__ first, int* __restrict__ tile_count,
             int* __restrict__ counters) {
    PP_PDL_ENTRY();
    __shared__ int scratch[33];
    const int N = read_count(n, n_dev, cap);
    const int base = blockIdx.x * TILE_SIZE;
    const float4* pts = reinterpret_cast<const float4*>(points);
    int count = 0, oor = 0, bad = 0, kmin = PP_INT_MAX, kmax = -PP_INT_MAX - 1;
#pragma unroll
    for (int k = 0; k < TILE_ITEMS; ++k) {
        const int i = base + k * TILE_THREADS + threadIdx.x;
        if (i < N) {
            const int c = point_cell[i];
            const bool f = c >= 0 && cell_first[c] == i;
            first[i] = f ? 1 : 0;
            count += f;
            oor += c < 0;
            bad += c == -2;
            if (c != -2) {
                const int key = ordered_key(pts[i].w);
                kmin = min(kmin, key);
                kmax = max(kmax, key);
            }
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        kmin = min(kmin, __shfl_xor_sync(0xffffffffu, kmin, o));
        kmax = max(kmax, __shfl_xor_sync(0xffffffffu, kmax, o));
    }
    if ((threadIdx.x & 31) == 0 && kmin <= kmax) {
        atomicMin(&counters[C_IMIN], kmin);
        atomicMax(&counters[C_IMAX], kmax);
    }
    count = block_sum(count, scratch);
    oor = block_sum(oor, scratch);
    bad = block_sum(bad, scratch);
    if (threadIdx.x == 0) {
        tile_count[blockIdx.x] = count;
        if (oor) atomicAdd(&counters[C_OOR], oor);
        if (bad) atomicAdd(&counters[C_NONFINITE], bad);
    }
}

extern "C" __global__ void __launch_bounds__(TILE_THREADS)
pp_vox_assign(int n, const int* n_dev, int cap, int num_tiles, int max_pillars, int nx,
              const int* __restrict__ point_cell, const unsigned char* __restrict__ first,
              const int* __restrict__ tile_count, int* __restrict__ cell_first, int* __restrict__ coords,
              int* __restrict__ pillar_count, int* __restrict__ counters) {
    PP_PDL_ENTRY();
    __shared__ int scratch[33];
    __shared__ unsigned masks[TILE_ITEMS * (TILE_THREADS / 32)];
    __shared__ int prefix[TILE_ITEMS * (TILE_THREADS / 32)];
    const int N = read_count(n, n_dev, cap);
    // offset of this tile = pillars first seen in earlier tiles
    int before = 0, all = 0;
    for (int t = threadIdx.x; t < num_tiles; t += blockDim.x) {
        const int c = tile_count[t];
        all += c;
        if (t < (int)blockIdx.x) before += c;
    }
    const int offset = block_sum(before, scratch);
    const int total = block_sum(all, scratch);
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        const int kept = total < max_pillars ? total : max_pillars;
        counters[C_P] = kept;
        counters[C_FOUND] = total;
        counters[C_DROP_PILLARS] = total - kept;
    }
    const int base = blockIdx.x * TILE_SIZE;
    if (base >= N) return;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = TILE_THREADS / 32;
    bool f[TILE_ITEMS];
#pragma unroll
    for (int k = 0; k < TILE_ITEMS; ++k) {
        const int i = base + k * TILE_THREADS + threadIdx.x;
        f[k] = i < N && first[i] != 0;
        const unsigned m = __ballot_sync(0xffffffffu, f[k]);
        if (lane == 0) masks[k * nw + warp] = m;
    }
    __syncthreads();
    if (threadIdx.x == 0) {  // index order inside a tile is (k, warp, lane)
        int run = 0;
        for (int q = 0; q < TILE_ITEMS * nw; ++q) {
            prefix[q] = run;
            run += __popc(masks[q]);
        }
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < TILE_ITEMS; ++k) {
        if (!f[k]) continue;
        const int i = base + k * TILE_THREADS + threadIdx.x;
        const int pid = offset + prefix[k * nw + warp] + __popc(masks[k * nw + warp] & lanemask_lt());
        const int c = point_cell[i];
        cell_first[c] = pid;  // from now on the table maps cell -> pillar id
        if (pid < max_pillars) {
            coords[2 * pid] = c % nx;
            coords[2 * pid + 1] = c / nx;
            pillar_count[pid] = 0;
        }
    }
}

extern "C" __global__ void __launch_bounds__(256)
pp_vox_count(int n, const int* n_dev, int cap, int max_pillars, const int* __restrict__ point_cell,
             const int* __restrict__ cell_pillar, int* __restrict__ pillar_count, int* __restrict__ point_pillar,
             int* __restrict__ point_slot, int* __restrict__ counters) {
    PP_PDL_ENTRY();
    __shared__ int scratch[33];
    const int N = read_count(n, n_dev, cap);
    int dropped = 0;
    const int stride = gridDim.x * blockDim.x;
    const int end = ((N + blockDim.x - 1) / blockDim.x) * blockDim.x;  // whole blocks for block_sum
    for (int i0 = blockIdx.x * blockDim.x; i0 < end; i0 += stride) {
        const int i = i0 + threadIdx.x;
        if (i < N) {
            const int c = point_cell[i];
            int p = -1, slot = -1;
            if (c >= 0) {
                p = cell_pillar[c];
                if (p >= max_pillars) {
                    ++dropped;
                    p = -1;
                } else {
                    slot = atomicAdd(&pillar_count[p], 1);
                }
            }
            point_pillar[i] = p;
            point_slot[i] = slot;
        }
    }
    dropped = block_sum(dropped, scratch);
    if (threadIdx.x == 0 && dropped) atomicAdd(&counters[C_DROP_POINTS], dropped);
}

extern "C" __global__ void __launch_bounds__(256)
pp_vox_offsets(int max_pillars, int max_points_per_pillar, const int* __restrict__ pillar_count,
               int* __restrict__ pillar_offset, int* __restrict__ num_points, int* __restrict__ counters) {
    PP_PDL_ENTRY();
    __shared__ int scratch[33];
    const int P = counters[C_P];
    const int lane = threadIdx.x & 31;
    int excess = 0;
    const int stride = gridDim.x * blockDim.x;
    const int end = ((max_pillars + blockDim.x - 1) / blockDim.x) * blockDim.x;
    for (int p0 = blockIdx.x * blockDim.x; p0 < end; p0 += stride) {
        const int p = p0 + threadIdx.x;
        const int cnt = p < P ? pillar_count[p] : 0;
        // warp-aggregated allocation of bucket ranges (their placement is irrelevant: pass 7 sorts)
        int incl = cnt;
        for (int o = 1; o < 32; o <<= 1) {
            const int v = __shfl_up_sync(0xffffffffu, incl, o);
            if (lane >= o) incl += v;
        }
        const int warp_total = __shfl_sync(0xffffffffu, incl, 31);
        int base = 0;
        if (lane == 31 && warp_total > 0) base = atomicAdd(&counters[C_CURSOR], warp_total);
        base = __shfl_sync(0xffffffffu, base, 31);
        if (p < max_pillars) {
            if (p < P) {
                pillar_offset[p] = base + incl - cnt;
                num_points[p] = cnt < max_points_per_pillar ? cnt : max_points_per_pillar;
                if (cnt > max_points_per_pillar) excess += cnt - max_points_per_pillar;
            } else {
                num_points[p] = 0;
            }
        }
    }
    excess = block_sum(excess, scratch);
    if (threadIdx.x == 0 && excess) atomicAdd(&counters[C_EXCESS], excess);
}

extern "C" __global__ void __launch_bounds__(256)
pp_vox_bucket(int n, const int* n_dev, int cap, const int* __restrict__ point_pillar, const int* __restrict__ point_slot,
              const int* __restrict__ pillar_offset, int* __restrict__ bucket) {
    PP_PDL_ENTRY();
    const int N = read_count(n, n_dev, cap);
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < N; i += gridDim.x * blockDim.x) {
        const int s = point_slot[i];
        if (s >= 0) bucket[pillar_offset[point_pillar[i]] + s] = i;
    }
}

// ---- pass 7: one warp per pillar -------------------------------------------------------------
// Shared memory per warp: idx_in[M], idx_sorted[M] (int), x, y, z, r [M] (float).
struct PillarPoints {
    int n;
    float mx, my, mz, cx, cy, cz;
};

// Fills sh_x/y/z/r[0..n) with the pillar's first n points in input order; returns n and the
// pillar's mean and centre. Every lane gets the same result.
__device__ PillarPoints load_pillar(int p, int M, const float4* __restrict__ pts, const int* __restrict__ pillar_count,
                                    const int* __restrict__ pillar_offset, const int* __restrict__ bucket,
                                    const int* __restrict__ coords, float xmin, float ymin, float zmin, float vx,
                                    float vy, float vz, int* idx_in, int* idx_sorted, float* sx_, float* sy_,
                                    float* sz_, float* sr_) {
    const int lane = threadIdx.x & 31;
    const int cnt = pillar_count[p];
    const int base = pillar_offset[p];
    const int n = cnt < M ? cnt : M;
    const int* b = bucket + base;
    if (cnt <= M) {
        for (int j = lane; j < cnt; j += 32) idx_in[j] = b[j];
    } else {
        // threshold t = the M-th smallest point index of the bucket (indices are unique)
        int lo = PP_INT_MAX, hi = 0;
        for (int j = lane; j < cnt; j += 32) {
            const int v = b[j];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        for (int o = 16; o > 0; o >>= 1) {
            const int l2 = __shfl_xor_sync(0xffffffffu, lo, o), h2 = __shfl_xor_sync(0xffffffffu, hi, o);
            lo = l2 < lo ? l2 : lo;
            hi = h2 > hi ? h2 : hi;
        }
        while (lo < hi) {
            const int mid = lo + ((hi - lo) >> 1);
            int c = 0;
            for (int j0 = 0; j0 < cnt; j0 += 32) {
                const int j = j0 + lane;
                c += __popc(__ballot_sync(0xffffffffu, j < cnt && b[j] <= mid));
            }
            if (c >= M) hi = mid; else lo = mid + 1;
        }
        int run = 0;
        for (int j0 = 0; j0 < cnt; j0 += 32) {
            const int j = j0 + lane;
            const int v = j < cnt ? b[j] : PP_INT_MAX;
            const bool keep = j < cnt && v <= lo;
            const unsigned m = __ballot_sync(0xffffffffu, keep);
            if (keep) idx_in[run + __popc(m & lanemask_lt())] = v;
            run += __popc(m);
        }
    }
    __syncwarp();
    for (int q = lane; q < n; q += 32) {  // rank sort of <= M unique indices
        const int v = idx_in[q];
        int r = 0;
        for (int s = 0; s < n; ++s) r += idx_in[s] < v;
        idx_sorted[r] = v;
    }
    __syncwarp();
    for (int j = lane; j < n; j += 32) {
        const float4 pt = pts[idx_sorted[j]];
        sx_[j] = pt.x;
        sy_[j] = pt.y;
        sz_[j] = pt.z;
        sr_[j] = pt.w;
    }
    __syncwarp();
    float sx = 0.0f, sy = 0.0f, sz = 0.0f;
    for (int j = 0; j < n; ++j) {  // sequential, as the CPU reference sums
        sx = __fadd_rn(sx, sx_[j]);
        sy = __fadd_rn(sy, sy_[j]);
        sz = __fadd_rn(sz, sz_[j]);
    }
    PillarPoints out;
    out.n = n;
    const float fn = (float)n;
    out.mx = __fdiv_rn(sx, fn);
    out.my = __fdiv_rn(sy, fn);
    out.mz = __fdiv_rn(sz, fn);
    out.cx = __fadd_rn(__fadd_rn(__fmul_rn((float)coords[2 * p], vx), __fmul_rn(vx, 0.5f)), xmin);
    out.cy = __fadd_rn(__fadd_rn(__fmul_rn((float)coords[2 * p + 1], vy), __fmul_rn(vy, 0.5f)), ymin);
    out.cz = __fadd_rn(zmin, __fmul_rn(vz, 0.5f));
    return out;
}

__device__ __forceinline__ float decorated(const PillarPoints& pp, int j, int ch, const float* sx, const float* sy,
                                           const float* sz, const float* sr) {
    if (j >= pp.n) return 0.0f;
    switch (ch) {
        case 0: return sx[j];
        case 1: return sy[j];
        case 2: return sz[j];
        case 3: return sr[j];
        case 4: return __fsub_rn(sx[j], pp.mx);
        case 5: return __fsub_rn(sy[j], pp.my);
        case 6: return __fsub_rn(sz[j], pp.mz);
        case 7: return __fsub_rn(sx[j], pp.cx);
        case 8: return __fsub_rn(sy[j], pp.cy);
        default: return __fsub_rn(sz[j], pp.cz);
    }
}

// Pass 7 puts the cell table back for the next frame (pass 4 was its last reader): each pillar's
// warp resets its own cell; when pillars were dropped (their cells are listed nowhere) the whole
// table is reset as well.
__device__ __forceinline__ void reset_dropped_cells(int* __restrict__ cell_first, const int* __restrict__ counters, int ncells) {
    if (counters[C_FOUND] <= counters[C_P]) return;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < ncells; i += gridDim.x * blockDim.x) cell_first[i] = PP_INT_MAX;
}

#define PILLAR_SHARED(M)                                                              \
    extern __shared__ int smem[];                                                     \
    const int warp_in_block = threadIdx.x >> 5;                                       \
    int* idx_in = smem + warp_in_block * (M) * 6;                                     \
    int* idx_sorted = idx_in + (M);                                                   \
    float* sx = reinterpret_cast<float*>(idx_sorted + (M));                           \
    float* sy = sx + (M);                                                             \
    float* sz = sy + (M);                                                             \
    float* sr = sz + (M);

extern "C" __global__ void __launch_bounds__(256)
pp_vox_decorate(const float* __restrict__ points, int M, float xmin, float ymin, float zmin, float vx, float vy,
                float vz, const int* __restrict__ pillar_count, const int* __restrict__ pillar_offset,
                const int* __restrict__ bucket, const int* __restrict__ coords, const int* __restrict__ counters,
                int* __restrict__ cell_first, int table_nx, int ncells,
                float* __restrict__ features) {
    PP_PDL_ENTRY();
    PILLAR_SHARED(M)
    const int P = counters[C_P];
    const int lane = threadIdx.x & 31;
    const float4* pts = reinterpret_cast<const float4*>(points);
    reset_dropped_cells(cell_first, counters, ncells);
    for (int p = blockIdx.x * WARPS_PER_BLOCK + warp_in_block; p < P; p += gridDim.x * WARPS_PER_BLOCK) {
        if (lane == 0) cell_first[coords[2 * p + 1] * table_nx + coords[2 * p]] = PP_INT_MAX;
        const PillarPoints pp = load_pillar(p, M, pts, pillar_count, pillar_offset, bucket, coords, xmin, ymin, zmin,
                                            vx, vy, vz, idx_in, idx_sorted, sx, sy, sz, sr);
        float* out = features + (size_t)p * M * 10;
        for (int e = lane; e < M * 10; e += 32) {
            const int j = e / 10;
            out[e] = decorated(pp, j, e - j * 10, sx, sy, sz, sr);
        }
        __syncwarp();
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
extern "C" __global__ void __launch_bounds__(256)
pp_vox_decorate_pfn(const float* __restrict__ points, int M, float xmin, float ymin, float zmin, float vx, float vy,
                    float vz, const int* __restrict__ pillar_count, const int* __restrict__ pillar_offset,
                    const int* __restrict__ bucket, const int* __restrict__ coords, const int* __restrict__ counters,
                int* __restrict__ cell_first, int table_nx, int ncells,
                    const float* __restrict__ weight, const float* __restrict__ scale, const float* __restrict__ shift,
                    int C, int nx, int ny, int nhwc, int half, void* __restrict__ canvas) {
    PP_PDL_ENTRY();
    PILLAR_SHARED(M)
    const int P = counters[C_P];
    const int lane = threadIdx.x & 31;
    const float4* pts = reinterpret_cast<const float4*>(points);
    const long long plane = (long long)nx * ny;
    reset_dropped_cells(cell_first, counters, ncells);
    for (int p = blockIdx.x * WARPS_PER_BLOCK + warp_in_block; p < P; p += gridDim.x * WARPS_PER_BLOCK) {
        if (lane == 0) cell_first[coords[2 * p + 1] * table_nx + coords[2 * p]] = PP_INT_MAX;
        const PillarPoints pp = load_pillar(p, M, pts, pillar_count, pillar_offset, bucket, coords, xmin, ymin, zmin,
                                            vx, vy, vz, idx_in, idx_sorted, sx, sy, sz, sr);
        const int ix = coords[2 * p], iy = coords[2 * p + 1];
        // two channels per pass of a lane (c0 and c0 + 32): each point's ten features are made once
        // for both, and the two dependency chains interleave; each channel's arithmetic (and so its
        // rounding) is the same sequence as one channel at a time
        for (int c0 = lane; c0 < C; c0 += 64) {
            const int c1 = c0 + 32;
            const bool has1 = c1 < C;
            float w0[10], w1[10];
#pragma unroll
            for (int f = 0; f < 10; ++f) {
                w0[f] = weight[c0 * 10 + f];
                w1[f] = has1 ? weight[c1 * 10 + f] : 0.0f;
            }
            const float sc0 = scale[c0], sh0 = shift[c0];
            const float sc1 = has1 ? scale[c1] : 0.0f, sh1 = has1 ? shift[c1] : 0.0f;
            // empty slots: features 0 -> linear 0 -> relu(shift)
            float best0 = pp.n < M ? fmaxf(sh0, 0.0f) : -3.0e38f;
            float best1 = pp.n < M ? fmaxf(sh1, 0.0f) : -3.0e38f;
            for (int j = 0; j < pp.n; ++j) {
                float feat[10];
#pragma unroll
                for (int f = 0; f < 10; ++f) feat[f] = decorated(pp, j, f, sx, sy, sz, sr);
                float acc0 = 0.0f, acc1 = 0.0f;
#pragma unroll
                for (int f = 0; f < 10; ++f) {
                    acc0 = __fadd_rn(acc0, __fmul_rn(feat[f], w0[f]));
                    acc1 = __fadd_rn(acc1, __fmul_rn(feat[f], w1[f]));
                }
                best0 = fmaxf(best0, fmaxf(__fadd_rn(__fmul_rn(acc0, sc0), sh0), 0.0f));
                best1 = fmaxf(best1, fmaxf(__fadd_rn(__fmul_rn(acc1, sc1), sh1), 0.0f));
            }
            store_feature(canvas, nhwc, half, C, nx, plane, ix, iy, c0, best0);
            if (has1) store_feature(canvas, nhwc, half, C, nx, plane, ix, iy, c1, best1);
        }
        __syncwarp();
    }
}
