// Second pass of decode.comp: out[row][c] = sum_s w_s o_s[row][c] with w_s = exp(lse_s - lse) and
// lse = log(sum_s exp(lse_s)), the splits taken in split order, so the result does not depend on how the
// splits were scheduled. The weights sum to 1, so out stays a convex combination of the splits' outputs
// (no overflow); a split no key of which the row sees (lse_s = -inf) weighs 0 and is skipped, and a row that
// sees no key at all gets out 0 and lse -inf, as in forward.comp. One thread per element of out;
// p.rowCount holds the split count.
#include "common.glsl"

layout(local_size_x = WG) in;

layout(std430, binding = 0) readonly buffer OPartBuf { float o_part[]; };
layout(std430, binding = 1) readonly buffer LsePartBuf { float lse_part[]; };
layout(std430, binding = 2) writeonly buffer OBuf { float o_data[]; };
layout(std430, binding = 3) writeonly buffer LseBuf { float lse_data[]; };

void main() {
    const uint e = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * uint(WG) + gl_LocalInvocationID.x;
    const uint rows = uint(p.B * p.Hq * p.Sq);
    if (e >= rows * uint(p.Dv)) {
        return;
    }
    const uint row = e / uint(p.Dv);
    const uint c = e - row * uint(p.Dv);
    const int splits = p.rowCount;
    const uint base = row * uint(splits);

    float top = NEG_INF;
    for (int s = 0; s < splits; s++) {
        top = max(top, lse_part[base + uint(s)]);
    }
    if (top == NEG_INF) {
        o_data[e] = 0.0;
        if (c == 0u && (p.flags & 1) != 0) {
            lse_data[row] = NEG_INF;
        }
        return;
    }
    float total = 0.0;
    for (int s = 0; s < splits; s++) {
        float x = lse_part[base + uint(s)];
        total += x == NEG_INF ? 0.0 : exp(x - top);
    }
    float acc = 0.0;
    for (int s = 0; s < splits; s++) {
        float x = lse_part[base + uint(s)];
        if (x != NEG_INF) {
            acc += (exp(x - top) / total) * o_part[(base + uint(s)) * uint(p.Dv) + c];
        }
    }
    o_data[e] = acc;
    if (c == 0u && (p.flags & 1) != 0) {
        lse_data[row] = top + log(total);
    }
}
