/* tpc_emu.h: a small host emulation of the TPC-C subset that hetc's Gaudi kernels use.
 *
 * Written for hetc's tests (not Habana code): it lets a C compiler (clang: TPC-C's int5/float64 need
 * ext_vector_type) compile a generated TPC-C kernel and its host glue on x86 and run them on random inputs.
 * Semantics modelled (from Habana's TPC-C programming guide, as we understand it):
 *   - tensor: up to 5 dims, dim 0 fastest; a coordinate is an int5 of element indices;
 *   - v_f32_ld_tnsr_b / v_i32_ld_tnsr_b: 64 lanes (256 bytes) starting at coord along dim 0; lanes outside the
 *     tensor read 0; v_*_st_tnsr: lanes outside the tensor are dropped;
 *   - get_index_space_offset / get_index_space_size: the index-space slice this TPC core owns;
 *   - gen_addr + s_*_ld_g / s_*_st_g: scalar global access to one element;
 *   - v_f32_reduce_add / v_f32_reduce_max: the reduction lands in lane 0 (other lanes: unspecified, here 0);
 *   - special functions (tpc-special library): v_exp_f32, v_rsqrt_f32, v_reciprocal_f32, computed per lane.
 * Compile with -march=x86-64-v3 (F16C) so that `half` conversions need no runtime library.
 */
#ifndef HETC_TPC_EMU_H
#define HETC_TPC_EMU_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define __global__
#define __local__
#define TPC_EMU_LANES 64

typedef int int5 __attribute__((ext_vector_type(5)));
typedef float float64 __attribute__((ext_vector_type(64)));
typedef int int64 __attribute__((ext_vector_type(64)));
/* TPC's scalar `half` is emulated as float; fp16 rounding happens in s_f16_st_g (round to nearest even). */
typedef float half;

typedef struct tensor {
    char *base;
    int elem_bytes;
    int dims;
    int size[5];      /* elements per dim, dim 0 fastest */
    int64_t stride[5]; /* in elements */
} tensor;

/* The index-space slice of the "current core" (set by the emulated launcher before calling main). */
static int5 tpc_emu_offset, tpc_emu_size;
static inline int5 get_index_space_offset(void) { return tpc_emu_offset; }
static inline int5 get_index_space_size(void) { return tpc_emu_size; }

static inline tensor tpc_emu_tensor(void *base, int elem_bytes, int dims, const int *size) {
    tensor t;
    memset(&t, 0, sizeof t);
    t.base = (char *)base;
    t.elem_bytes = elem_bytes;
    t.dims = dims;
    int64_t stride = 1;
    for (int d = 0; d < 5; ++d) {
        t.size[d] = d < dims ? size[d] : 1;
        t.stride[d] = stride;
        stride *= t.size[d];
    }
    return t;
}

static inline int tpc_emu_inside(int5 c, tensor t) {
    for (int d = 0; d < 5; ++d)
        if (c[d] < 0 || c[d] >= t.size[d]) return 0;
    return 1;
}

static inline char *tpc_emu_addr(int5 c, tensor t) {
    int64_t off = 0;
    for (int d = 0; d < 5; ++d) off += (int64_t)c[d] * t.stride[d];
    return t.base + off * t.elem_bytes;
}

static inline float64 v_f32_ld_tnsr_b(int5 c, tensor t) {
    float64 v = 0;
    for (int i = 0; i < TPC_EMU_LANES; ++i) {
        int5 ci = c;
        ci[0] += i;
        if (tpc_emu_inside(ci, t)) memcpy((char *)&v + 4 * i, tpc_emu_addr(ci, t), 4);
    }
    return v;
}

static inline int64 v_i32_ld_tnsr_b(int5 c, tensor t) {
    int64 v = 0;
    for (int i = 0; i < TPC_EMU_LANES; ++i) {
        int5 ci = c;
        ci[0] += i;
        if (tpc_emu_inside(ci, t)) memcpy((char *)&v + 4 * i, tpc_emu_addr(ci, t), 4);
    }
    return v;
}

static inline void v_f32_st_tnsr(int5 c, tensor t, float64 v) {
    for (int i = 0; i < TPC_EMU_LANES; ++i) {
        int5 ci = c;
        ci[0] += i;
        if (tpc_emu_inside(ci, t)) memcpy(tpc_emu_addr(ci, t), (char *)&v + 4 * i, 4);
    }
}

static inline void v_i32_st_tnsr(int5 c, tensor t, int64 v) {
    for (int i = 0; i < TPC_EMU_LANES; ++i) {
        int5 ci = c;
        ci[0] += i;
        if (tpc_emu_inside(ci, t)) memcpy(tpc_emu_addr(ci, t), (char *)&v + 4 * i, 4);
    }
}

static inline __global__ void *gen_addr(int5 c, tensor t) { return tpc_emu_addr(c, t); }
static inline float s_f32_ld_g(__global__ void *p) { float v; memcpy(&v, p, 4); return v; }
static inline int s_i32_ld_g(__global__ void *p) { int v; memcpy(&v, p, 4); return v; }
static inline half s_f16_ld_g(__global__ void *p) { __fp16 v; memcpy(&v, p, 2); return (float)v; }
static inline unsigned char s_u8_ld_g(__global__ void *p) { return *(unsigned char *)p; }
static inline void s_f32_st_g(__global__ void *p, float v) { memcpy(p, &v, 4); }
static inline void s_i32_st_g(__global__ void *p, int v) { memcpy(p, &v, 4); }
static inline void s_f16_st_g(__global__ void *p, half v) { __fp16 h = (__fp16)v; memcpy(p, &h, 2); }
static inline void s_u8_st_g(__global__ void *p, unsigned char v) { *(unsigned char *)p = v; }

static inline float64 v_f32_reduce_add(float64 v) {
    float s = 0;
    for (int i = 0; i < TPC_EMU_LANES; ++i) s += v[i];
    float64 r = 0;
    r[0] = s;
    return r;
}

static inline float64 v_f32_reduce_max(float64 v) {
    float m = v[0];
    for (int i = 1; i < TPC_EMU_LANES; ++i) m = v[i] > m ? v[i] : m;
    float64 r = 0;
    r[0] = m;
    return r;
}

static inline float64 v_exp_f32(float64 v) {
    for (int i = 0; i < TPC_EMU_LANES; ++i) v[i] = expf(v[i]);
    return v;
}

static inline float64 v_rsqrt_f32(float64 v) {
    for (int i = 0; i < TPC_EMU_LANES; ++i) v[i] = 1.0f / sqrtf(v[i]);
    return v;
}

static inline float64 v_reciprocal_f32(float64 v) {
    for (int i = 0; i < TPC_EMU_LANES; ++i) v[i] = 1.0f / v[i];
    return v;
}

static inline float64 v_f32_max_b(float64 a, float64 b) {
    for (int i = 0; i < TPC_EMU_LANES; ++i) a[i] = a[i] > b[i] ? a[i] : b[i];
    return a;
}

#endif /* HETC_TPC_EMU_H */
