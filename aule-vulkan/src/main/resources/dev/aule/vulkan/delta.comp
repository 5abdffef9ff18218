// Backward, first pass: delta_i = sum_c dOut[i][c] * out[i][c] for every row of every (batch, query head).
#include "common.glsl"

layout(local_size_x = WG) in;

layout(std430, binding = 0) readonly buffer OBuf { uint o_data[]; };
layout(std430, binding = 1) readonly buffer DOBuf { uint do_data[]; };
layout(std430, binding = 2) writeonly buffer DeltaBuf { float delta[]; };

void main() {
    const uint row = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * uint(WG) + gl_LocalInvocationID.x;
    if (row >= uint(p.rowCount)) {
        return;
    }
    const uint base = row * uint(p.Dv);
    float sum = 0.0;
    for (int c = 0; c < p.Dv; c++) {
        sum += LOAD_TYPED(O_TYPE, o_data, base + uint(c)) * LOAD_TYPED(DO_TYPE, do_data, base + uint(c));
    }
    delta[row] = sum;
}
