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
