// Pillar scatter: [P, C] pillar features at (ix, iy) grid cells -> dense BEV canvas [C, ny, nx].
//
// Compiled at run time with NVRTC (pointpillars_trt/cuda/nvrtc.py); no header is included, so the
// source compiles with a bare NVRTC and no CUDA toolkit headers.
//
// Element types: the kernels only move values, they never do arithmetic on them, so the half
// variant moves 16-bit words (`unsigned short`) and needs no cuda_fp16.h. Zero bits are +0.0 in
// both float and half.
//
// Layouts (row-major, contiguous):
//   features    [P, C]          element type T
//   coords      [P, 2] int32    (ix, iy), ix along x; 0 <= ix < nx, 0 <= iy < ny
//   canvas      [C, ny, nx]     element type T  (the [1, C, ny, nx] input of the RPN)
//   prev_coords [P_cap, 2] int32, prev_count [1] int32: the cells written by the last scatter
//
// Zeroing: the canvas is zeroed once when it is allocated. After that only the cells the previous
// frame wrote are non-zero, so `pp_clear_cells_*` zeroes exactly those (P_prev * C stores) before
// `pp_scatter_*` writes the new frame and records its cells in prev_coords / prev_count. The
// caller may instead memset the canvas on the stream and pass prev_coords = prev_count = NULL.
//
// Pillar count: `num_pillars` by value, or, when `num_pillars_dev` is not NULL, read on the device
// (clamped to `max_pillars`) so that the launch can sit in a CUDA graph whose count is only known
// on the device. P = 0 is a valid no-op (the launch still records prev_count = 0).
//
// Coordinates outside the grid are skipped (never written out of bounds). Duplicate coordinates
// are a caller error: which pillar wins a duplicated cell is unspecified.
//
// Thread mapping: one thread per (pillar, channel) with the channel fastest, so a warp reads
// contiguous features (coalesced) and the coords of one pillar are a broadcast; the canvas stores
// are scattered whatever the mapping, because pillar cells are scattered. Grid-stride loops let
// the host size the grid freely (any grid >= 1 block is correct).

// Programmatic dependent launch (sm_90+; see pointpillars_trt/cuda/nvrtc.py): every kernel first
// waits for the previous kernel on the stream to complete (its writes visible), then lets the next
// one be scheduled. Nothing is read or written before the wait, so results are as without PDL.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define PP_PDL_ENTRY() asm volatile("griddepcontrol.wait;\n\tgriddepcontrol.launch_dependents;" ::: "memory")
#else
#define PP_PDL_ENTRY() do { } while (0)
#endif

template <typename T>
__device__ __forceinline__ void scatter_impl(const T* __restrict__ features, const int* __restrict__ coords,
                                             int num_pillars, const int* num_pillars_dev, int max_pillars,
                                             int channels, int nx, int ny, T* __restrict__ canvas,
                                             int* __restrict__ prev_coords, int* prev_count) {
    int p_count = num_pillars;
    if (num_pillars_dev != nullptr) {
        p_count = *num_pillars_dev;
        p_count = p_count < max_pillars ? p_count : max_pillars;
    }
    if (p_count < 0) p_count = 0;
    if (prev_count != nullptr && blockIdx.x == 0 && threadIdx.x == 0) {
        *prev_count = p_count;
    }
    const long long plane = (long long)nx * (long long)ny;
    const long long total = (long long)p_count * (long long)channels;
    const long long stride = (long long)gridDim.x * (long long)blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int p = (int)(i / channels);
        const int c = (int)(i - (long long)p * channels);
        const int ix = coords[2 * p];
        const int iy = coords[2 * p + 1];
        if (c == 0 && prev_coords != nullptr) {
            prev_coords[2 * p] = ix;
            prev_coords[2 * p + 1] = iy;
        }
        if (ix < 0 || ix >= nx || iy < 0 || iy >= ny) continue;
        canvas[(long long)c * plane + (long long)iy * nx + ix] = features[i];
    }
}

template <typename T>
__device__ __forceinline__ void clear_cells_impl(T* __restrict__ canvas, const int* __restrict__ prev_coords,
                                                 const int* prev_count, int channels, int nx, int ny) {
    const int p_count = *prev_count;
    const long long plane = (long long)nx * (long long)ny;
    const long long total = (long long)(p_count > 0 ? p_count : 0) * (long long)channels;
    const long long stride = (long long)gridDim.x * (long long)blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int p = (int)(i / channels);
        const int c = (int)(i - (long long)p * channels);
        const int ix = prev_coords[2 * p];
        const int iy = prev_coords[2 * p + 1];
        if (ix < 0 || ix >= nx || iy < 0 || iy >= ny) continue;
        canvas[(long long)c * plane + (long long)iy * nx + ix] = T(0);
    }
}

extern "C" __global__ void __launch_bounds__(256)
pp_scatter_f32(const float* features, const int* coords, int num_pillars, const int* num_pillars_dev,
               int max_pillars, int channels, int nx, int ny, float* canvas, int* prev_coords, int* prev_count) {
    PP_PDL_ENTRY();
    scatter_impl<float>(features, coords, num_pillars, num_pillars_dev, max_pillars, channels, nx, ny, canvas,
                        prev_coords, prev_count);
}

extern "C" __global__ void __launch_bounds__(256)
pp_scatter_f16(const unsigned short* features, const int* coords, int num_pillars, const int* num_pillars_dev,
               int max_pillars, int channels, int nx, int ny, unsigned short* canvas, int* prev_coords,
               int* prev_count) {
    PP_PDL_ENTRY();
    scatter_impl<unsigned short>(features, coords, num_pillars, num_pillars_dev, max_pillars, channels, nx, ny,
                                 canvas, prev_coords, prev_count);
}

extern "C" __global__ void __launch_bounds__(256)
pp_clear_cells_f32(float* canvas, const int* prev_coords, const int* prev_count, int channels, int nx, int ny) {
    PP_PDL_ENTRY();
    clear_cells_impl<float>(canvas, prev_coords, prev_count, channels, nx, ny);
}

extern "C" __global__ void __launch_bounds__(256)
pp_clear_cells_f16(unsigned short* canvas, const int* prev_coords, const int* prev_count, int channels, int nx,
                   int ny) {
    PP_PDL_ENTRY();
    clear_cells_impl<unsigned short>(canvas, prev_coords, prev_count, channels, nx, ny);
}
