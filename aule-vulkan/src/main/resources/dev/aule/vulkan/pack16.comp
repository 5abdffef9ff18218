// Rounds an F32 buffer into a packed 16-bit one (OUT_TYPE 1 F16, 2 BF16), to nearest even; one
// invocation per output word (two elements), so no two invocations write the same word.
#include "common.glsl"

layout(local_size_x = WG) in;

layout(std430, binding = 0) readonly buffer SrcBuf { float src[]; };
layout(std430, binding = 1) writeonly buffer DstBuf { uint dst[]; };

uint toBits16(float x) {
#if OUT_TYPE == 1
    return packHalf2x16(vec2(x, 0.0)) & 0xffffu;
#else
    uint bits = floatBitsToUint(x);
    if (isnan(x)) {
        return (bits >> 16u) | 0x40u;
    }
    return (bits + 0x7fffu + ((bits >> 16u) & 1u)) >> 16u;
#endif
}

void main() {
    const uint word = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * uint(WG) + gl_LocalInvocationID.x;
    const uint n = uint(p.rowCount); // element count
    if (2u * word >= n) {
        return;
    }
    uint lo = toBits16(src[2u * word]);
    uint hi = 2u * word + 1u < n ? toBits16(src[2u * word + 1u]) : 0u;
    dst[word] = lo | (hi << 16u);
}
