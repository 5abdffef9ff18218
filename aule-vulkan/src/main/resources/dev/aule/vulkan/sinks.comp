// Sink logits (attention sinks, gpt-oss), after a forward: each row of head h gets the extra softmax term
// exp(sink_h) in its denominator. With the forward's normalised out and lse = log(sum_j exp(s_j)), the row with
// the sink is out' = out * exp(lse - lse') and lse' = log(exp(lse) + exp(sink)) (computed from the larger of the
// two, so neither overflows); a row that sees no key (lse = -inf) keeps out = 0 and gets lse' = sink. Sinks are
// finite (validated on the host). One thread per row of [B, Hq, Sq]; p.rowCount holds the rows.
#include "common.glsl"

layout(local_size_x = WG) in;

layout(std430, binding = 0) buffer OBuf { float o_data[]; };
layout(std430, binding = 1) buffer LseBuf { float lse_data[]; };
layout(std430, binding = 2) readonly buffer SinkBuf { float sinks[]; };

void main() {
    const uint row = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * uint(WG) + gl_LocalInvocationID.x;
    if (row >= uint(p.rowCount)) {
        return;
    }
    const float sink = sinks[(row / uint(p.Sq)) % uint(p.Hq)];
    const float lse = lse_data[row];
    const float top = max(lse, sink);
    const float lseNew = top + log(exp(lse - top) + exp(sink - top));
    const float scale = exp(lse - lseNew); // 0 for a row without keys
    for (int c = 0; c < p.Dv; c++) {
        o_data[row * uint(p.Dv) + uint(c)] *= scale;
    }
    lse_data[row] = lseNew;
}
