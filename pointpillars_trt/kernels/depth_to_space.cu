// Depth to space into a channel slice of an NHWC map: the copy that follows an upsampling
// transposed convolution (kernel = stride = s) computed as a 1x1 convolution.
//
// src: NHWC [N, h, w, s, s, run]   (channel (i*s + j)*run + c of pixel (y, x); see
//                                   model/inference_rpn.py::deconv_as_conv)
// dst: NHWC [N, h*s, w*s, pixel]    element (n, y*s + i, x*s + j, c) of the slice that starts at dst
// Everything is counted in 16-byte vectors (the caller checks sizes and alignment), so each thread
// moves 16 bytes: reads are linear in src, writes are runs of `run` vectors. Pure data movement:
// the element type does not matter.

// Programmatic dependent launch (sm_90+; see pointpillars_trt/cuda/nvrtc.py): every kernel first
// waits for the previous kernel on the stream to complete (its writes visible), then lets the next
// one be scheduled. Nothing is read or written before the wait, so results are as without PDL.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define PP_PDL_ENTRY() asm volatile("griddepcontrol.wait;\n\tgriddepcontrol.launch_dependents;" ::: "memory")
#else
#define PP_PDL_ENTRY() do { } while (0)
#endif

struct __align__(16) Vec16 {
    unsigned a, b, c, d;
};

extern "C" __global__ void __launch_bounds__(256)
pp_depth_to_space(const Vec16* __restrict__ src, Vec16* __restrict__ dst, long long total, int h, int w, int s,
                  int run, int pixel) {
    PP_PDL_ENTRY();
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long v = (long long)blockIdx.x * blockDim.x + threadIdx.x; v < total; v += step) {
        long long q = v;
        const int c = (int)(q % run);
        q /= run;
        const int j = (int)(q % s);
        q /= s;
        const int i = (int)(q % s);
        q /= s;
        const int x = (int)(q % w);
        q /= w;
        const int y = (int)(q % h);
        const long long n = q / h;
        const long long out_pixel = (n * h * s + (long long)y * s + i) * ((long long)w * s) + (long long)x * s + j;
        dst[out_pixel * pixel + c] = src[v];
    }
}

// ---- the head's per-branch terms, added in depth-to-space order ------------------------------------
// A 1x1 head over the concatenation of depth-to-space'd branches equals the bias plus, per branch k,
// the depth-to-space of (branch k's 1x1-conv output times its slice of the head weight): see
// model/inference_rpn.py::head_without_concat. This kernel does that last step for up to three
// branches at once, so the concatenated full-resolution map is never written.
//
// out: NHWC [N, Hs, Ws, run]                 (run = head channels in 16-byte vectors)
// z_k: NHWC [N, Hs/s_k, Ws/s_k, s_k, s_k, run] (rows (n, y, x, i, j) of a [rows, head channels] GEMM)
// out[n, Y, X, c] = (bias ? bias[c] : out[n, Y, X, c]) + sum_k z_k[n, Y/s_k, X/s_k, Y%s_k, X%s_k, c]
// summed in float32 in the order init, z0, z1, z2, rounded once (half = 1: float16 values, 8 per
// vector; half = 0: float32, 4 per vector). A null z_k is skipped. Deterministic: no atomics.

__device__ __forceinline__ float f16_bits_to_f32(unsigned bits) {
    const unsigned short h = (unsigned short)(bits & 0xffffu);
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ unsigned f32_to_f16_bits(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return (unsigned)h;
}

__device__ __forceinline__ void unpack(const Vec16 q, int half, float (&f)[8]) {
    const unsigned u[4] = {q.a, q.b, q.c, q.d};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        if (half) {
            f[2 * k] = f16_bits_to_f32(u[k]);
            f[2 * k + 1] = f16_bits_to_f32(u[k] >> 16);
        } else {
            f[k] = __uint_as_float(u[k]);
            f[k + 4] = 0.0f;
        }
    }
}

__device__ __forceinline__ Vec16 pack(const float (&f)[8], int half) {
    unsigned u[4];
#pragma unroll
    for (int k = 0; k < 4; ++k)
        u[k] = half ? (f32_to_f16_bits(f[2 * k]) | (f32_to_f16_bits(f[2 * k + 1]) << 16)) : __float_as_uint(f[k]);
    Vec16 q;
    q.a = u[0];
    q.b = u[1];
    q.c = u[2];
    q.d = u[3];
    return q;
}

// acc += z[n, Y/s, X/s, Y%s, X%s, c] (16-byte vector c)
__device__ __forceinline__ void add_term(float (&acc)[8], const Vec16* __restrict__ z, int s, long long n, int Y, int X, int Hs,
                                         int Ws, int run, int c, int half) {
    const int y = Y / s, i = Y - y * s, x = X / s, j = X - x * s;
    const long long at = ((((n * (Hs / s) + y) * (long long)(Ws / s) + x) * s + i) * s + j) * run + c;
    float t[8];
    unpack(z[at], half, t);
#pragma unroll
    for (int k = 0; k < 8; ++k) acc[k] = __fadd_rn(acc[k], t[k]);
}

extern "C" __global__ void __launch_bounds__(256)
pp_depth_to_space_add(Vec16* __restrict__ out, const Vec16* __restrict__ bias, long long total, int Hs, int Ws, int run, int half,
                      const Vec16* __restrict__ z0, int s0, const Vec16* __restrict__ z1, int s1, const Vec16* __restrict__ z2,
                      int s2) {
    PP_PDL_ENTRY();
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long v = (long long)blockIdx.x * blockDim.x + threadIdx.x; v < total; v += step) {
        const long long p = v / run;
        const int c = (int)(v - p * run);
        const long long r = p / Ws;
        const int X = (int)(p - r * Ws);
        const long long n = r / Hs;
        const int Y = (int)(r - n * Hs);
        float acc[8];
        unpack(bias != nullptr ? bias[c] : out[v], half, acc);
        if (z0 != nullptr) add_term(acc, z0, s0, n, Y, X, Hs, Ws, run, c, half);
        if (z1 != nullptr) add_term(acc, z1, s1, n, Y, X, Hs, Ws, run, c, half);
        if (z2 != nullptr) add_term(acc, z2, s2, n, Y, X, Hs, Ws, run, c, half);
        out[v] = pack(acc, half);
    }
}
