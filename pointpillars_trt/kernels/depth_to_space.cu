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
// model/inference_rpn.py::head_without_concat. Each branch's product z_k is a float32 GEMM output (fp16
// inputs, fp32 accumulation and output), so nothing is rounded to float16 before the sum. This kernel
// does the last step for up to four branches at once, so the concatenated full-resolution map is never
// written.
//
// Counted in quads of 4 channels: run = head channels / 4 quads per pixel.
// dst:  NHWC [N, Hs, Ws, 4*run]                  float16 (dst_half = 1) or float32
// z_k:  NHWC [N, Hs/s_k, Ws/s_k, s_k, s_k, 4*run] float32 (rows (n, y, x, i, j) of a [rows, head channels] GEMM)
// init: prev[n, Y, X, c] (a float32 map, e.g. the previous launch's dst) when prev is not null, else
//       bias[c] (float16 when bias_half, else float32) when bias is not null, else 0
// dst[n, Y, X, c] = init + sum_k z_k[n, Y/s_k, X/s_k, Y%s_k, X%s_k, c], summed in float32 in the order
// init, z0, z1, z2, z3 (round to nearest at each add), rounded once to dst's type. A null z_k is skipped.
// prev may be dst itself (each thread reads its quad before writing it). Deterministic: no atomics.

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

// quad q of a float16 (half = 1; 8 bytes) or float32 (16 bytes) array
__device__ __forceinline__ float4 load_quad(const void* p, long long q, int half) {
    if (half) {
        const uint2 u = reinterpret_cast<const uint2*>(p)[q];
        return make_float4(f16_bits_to_f32(u.x), f16_bits_to_f32(u.x >> 16), f16_bits_to_f32(u.y), f16_bits_to_f32(u.y >> 16));
    }
    return reinterpret_cast<const float4*>(p)[q];
}

__device__ __forceinline__ void store_quad(void* p, long long q, const float4 f, int half) {
    if (half) {
        uint2 u;
        u.x = f32_to_f16_bits(f.x) | (f32_to_f16_bits(f.y) << 16);
        u.y = f32_to_f16_bits(f.z) | (f32_to_f16_bits(f.w) << 16);
        reinterpret_cast<uint2*>(p)[q] = u;
    } else {
        reinterpret_cast<float4*>(p)[q] = f;
    }
}

// acc += z[n, Y/s, X/s, Y%s, X%s, quad c]
__device__ __forceinline__ void add_term(float4& acc, const float4* __restrict__ z, int s, long long n, int Y, int X, int Hs,
                                         int Ws, int run, int c) {
    const int y = Y / s, i = Y - y * s, x = X / s, j = X - x * s;
    const long long at = ((((n * (Hs / s) + y) * (long long)(Ws / s) + x) * s + i) * s + j) * run + c;
    const float4 t = z[at];
    acc.x = __fadd_rn(acc.x, t.x);
    acc.y = __fadd_rn(acc.y, t.y);
    acc.z = __fadd_rn(acc.z, t.z);
    acc.w = __fadd_rn(acc.w, t.w);
}

extern "C" __global__ void __launch_bounds__(256)
pp_depth_to_space_add(void* dst, int dst_half, const void* __restrict__ bias, int bias_half, const float4* prev, long long total,
                      int Hs, int Ws, int run, const float4* __restrict__ z0, int s0, const float4* __restrict__ z1, int s1,
                      const float4* __restrict__ z2, int s2, const float4* __restrict__ z3, int s3) {
    PP_PDL_ENTRY();
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long v = (long long)blockIdx.x * blockDim.x + threadIdx.x; v < total; v += step) {
        const long long p = v / run;
        const int c = (int)(v - p * run);
        const long long r = p / Ws;
        const int X = (int)(p - r * Ws);
        const long long n = r / Hs;
        const int Y = (int)(r - n * Hs);
        float4 acc = prev != nullptr ? prev[v] : bias != nullptr ? load_quad(bias, c, bias_half) : make_float4(0.f, 0.f, 0.f, 0.f);
        if (z0 != nullptr) add_term(acc, z0, s0, n, Y, X, Hs, Ws, run, c);
        if (z1 != nullptr) add_term(acc, z1, s1, n, Y, X, Hs, Ws, run, c);
        if (z2 != nullptr) add_term(acc, z2, s2, n, Y, X, Hs, Ws, run, c);
        if (z3 != nullptr) add_term(acc, z3, s3, n, Y, X, Hs, Ws, run, c);
        store_quad(dst, v, acc, dst_half);
    }
}
