// Backward, dK and dV: one workgroup per (key block of BC keys, KV head, batch). It owns its keys'
// gradients outright (no atomics, a fixed order of additions: deterministic), walking every query
// head of its group and every query tile that can see the block. Each key is owned by TPR threads,
// a thread keeping NC columns of its key's dK and dV in registers.
// With MASKS defined (Kernel.BACKWARD_KV_MASKED) it reads the DeviceMasks of the backward's plan (BR = BC) at
// bindings 9 .. 11: query tiles are then aligned to BR, tiles the table calls EMPTY skipped, FULL ones read no
// bits; a hidden pair (bit 0 or bias -inf) has P = 0 and dS = 0 and adds nothing; the bias is added to the
// score where the forward adds it (it gets no gradient, as on cpu).
#ifdef MASKS
#define OWN_MASK_BINDINGS
layout(std430, binding = 9) readonly buffer MaskBits { uint mask_bits[]; };
layout(std430, binding = 10) readonly buffer BiasBuf { float bias_data[]; };
layout(std430, binding = 11) readonly buffer MaskMeta { int meta[]; };
#endif // MASKS
#include "common.glsl"

layout(local_size_x = WG) in;

layout(std430, binding = 0) readonly buffer QBuf { uint q_data[]; };
layout(std430, binding = 1) readonly buffer KBuf { uint k_data[]; };
layout(std430, binding = 2) readonly buffer VBuf { uint v_data[]; };
layout(std430, binding = 3) readonly buffer DOBuf { uint do_data[]; };
layout(std430, binding = 4) readonly buffer LseBuf { float lse_data[]; };
layout(std430, binding = 5) readonly buffer DeltaBuf { float delta[]; };
layout(std430, binding = 6) readonly buffer SlopeBuf { float slopes[]; };
layout(std430, binding = 7) writeonly buffer DKBuf { float dk_data[]; };
layout(std430, binding = 8) writeonly buffer DVBuf { float dv_data[]; };

shared float sK[BC * HD];
shared float sV[BC * HD];
shared float sQ[BR * HD];
shared float sDO[BR * HD];
shared float sP[BR * BC];
shared float sDS[BR * BC];
shared float sLse[BR];
shared float sDelta[BR];

void main() {
    const uint lid = gl_LocalInvocationID.x;
    const int jr = int(lid) / TPR; // the key this thread accumulates
    const int t = int(lid) % TPR;
    const int k0 = (int(gl_WorkGroupID.x) + p.tileBase) * BC;
    const int hkv = int(gl_WorkGroupID.y);
    const int b = int(gl_WorkGroupID.z);
    const int group = p.Hq / p.Hkv;
    const int offset = p.Sk - p.Sq;
    const int kEnd = min(k0 + BC, p.Sk) - 1;
    const int myKey = k0 + jr;

    const uint kBase = uint((b * p.Hkv + hkv) * p.Sk + k0) * uint(p.D);
    const uint vBase = uint((b * p.Hkv + hkv) * p.Sk + k0) * uint(p.Dv);
    for (int idx = int(lid); idx < BC * p.D; idx += WG) {
        int jj = idx / p.D;
        sK[jj * HD + idx - jj * p.D] = k0 + jj < p.Sk ? LOAD_TYPED(K_TYPE, k_data, kBase + uint(idx)) : 0.0;
    }
    for (int idx = int(lid); idx < BC * p.Dv; idx += WG) {
        int jj = idx / p.Dv;
        sV[jj * HD + idx - jj * p.Dv] = k0 + jj < p.Sk ? LOAD_TYPED(V_TYPE, v_data, vBase + uint(idx)) : 0.0;
    }

    // Rows that can see a key of this block: last(i) >= k0 and first(i) <= kEnd, an interval of rows.
    const int iLo = p.right < 0 ? 0 : clamp(k0 - offset - p.right, 0, p.Sq);
    const int iHi = p.left < 0 ? p.Sq - 1 : clamp(kEnd - offset + p.left, -1, p.Sq - 1);

#ifdef MASKS
    const bool hasBits = meta[META_HAS_BITS] != 0;
    const bool hasBias = meta[META_HAS_BIAS] != 0;
    const int wordsPerRow = meta[META_WORDS_PER_ROW]; // read once: a pair's offsets below are plain arithmetic
#endif // MASKS
    float dk[NC];
    float dv[NC];
    for (int u = 0; u < NC; u++) {
        dk[u] = 0.0;
        dv[u] = 0.0;
    }

    for (int g = 0; g < group; g++) {
        const int hq = hkv * group + g;
        const float slope = p.alibi != 0 ? slopes[hq] : 0.0;
        const int rowHead = (b * p.Hq + hq) * p.Sq;
#ifdef MASKS
        const uint bitsHead = maskBitsRow(b, hq, 0); // row i's bits at bitsHead + i * wordsPerRow
        const uint biasHead = maskBiasRow(b, hq, 0); // row i's bias at biasHead + i * Sk
#endif // MASKS
#ifdef MASKS
        // Query tiles start on multiples of BR, the query tiles of the host's table.
        for (int i0 = iLo - iLo % BR; i0 <= iHi; i0 += BR) {
            const int tile = meta[maskTileRow(b, hq, i0 / BR) + k0 / BC]; // uniform: skipping keeps barriers uniform
            if (tile == TILE_EMPTY) {
                continue;
            }
            const bool readBits = hasBits && tile != TILE_FULL;
            const bool checkMask = readBits || hasBias; // false: nothing in this tile can hide a pair
#else
        for (int i0 = iLo; i0 <= iHi; i0 += BR) {
#endif // MASKS
            barrier();
            const uint qBase = uint(rowHead + i0) * uint(p.D);
            const uint oBase = uint(rowHead + i0) * uint(p.Dv);
            for (int idx = int(lid); idx < BR * p.D; idx += WG) {
                int rr = idx / p.D;
                sQ[rr * HD + idx - rr * p.D] = i0 + rr < p.Sq ? LOAD_TYPED(Q_TYPE, q_data, qBase + uint(idx)) : 0.0;
            }
            for (int idx = int(lid); idx < BR * p.Dv; idx += WG) {
                int rr = idx / p.Dv;
                sDO[rr * HD + idx - rr * p.Dv] = i0 + rr < p.Sq ? LOAD_TYPED(DO_TYPE, do_data, oBase + uint(idx)) : 0.0;
            }
            if (int(lid) < BR) {
                bool valid = i0 + int(lid) < p.Sq;
                sLse[lid] = valid ? lse_data[rowHead + i0 + int(lid)] : NEG_INF;
                sDelta[lid] = valid ? delta[rowHead + i0 + int(lid)] : 0.0;
            }
            barrier();

            for (int pair = int(lid); pair < BR * BC; pair += WG) {
                int rr = pair / BC;
                int jj = pair - rr * BC;
                int i = i0 + rr;
                int j = k0 + jj;
                float prob = 0.0;
                float ds = 0.0;
                float lse = sLse[rr];
                bool visible = i < p.Sq && j < p.Sk && lse != NEG_INF && j >= firstKey(i) && j <= lastKey(i);
#ifdef MASKS
                if (visible && checkMask
                        && maskHides(readBits, hasBias, bitsHead + uint(i * wordsPerRow), biasHead + uint(i) * uint(p.Sk), j)) {
                    visible = false;
                }
#endif // MASKS
                if (visible) {
                    float dot = 0.0;
                    for (int d = 0; d < p.D; d++) {
                        dot += sQ[rr * HD + d] * sK[jj * HD + d];
                    }
                    float s = p.scale * dot;
                    float capSlope = 1.0;
                    if (p.softcap > 0.0) {
                        float th = safeTanh(s / p.softcap);
                        s = p.softcap * th;
                        capSlope = 1.0 - th * th;
                    }
                    s -= slope * abs(float(i + offset - j));
#ifdef MASKS
                    if (hasBias) {
                        s = addBias(s, biasHead + uint(i) * uint(p.Sk), j);
                    }
#endif // MASKS
                    prob = exp(s - lse);
                    float dp = 0.0;
                    for (int d = 0; d < p.Dv; d++) {
                        dp += sDO[rr * HD + d] * sV[jj * HD + d];
                    }
                    ds = prob * (dp - sDelta[rr]) * capSlope * p.scale;
                }
                sP[pair] = prob;
                sDS[pair] = ds;
            }
            barrier();

            for (int rr = 0; rr < BR; rr++) {
                // A row that cannot see this thread's key adds nothing, not 0 * q or 0 * dOut: a NaN or Inf in
                // it must not reach dk or dv (the ds condition above, for this key).
                int i = i0 + rr;
                if (i >= p.Sq || myKey >= p.Sk || sLse[rr] == NEG_INF || myKey < firstKey(i) || myKey > lastKey(i)) {
                    continue;
                }
#ifdef MASKS
                if (checkMask
                        && maskHides(readBits, hasBias, bitsHead + uint(i * wordsPerRow), biasHead + uint(i) * uint(p.Sk), myKey)) {
                    continue;
                }
#endif // MASKS
                float pr = sP[rr * BC + jr];
                float dsr = sDS[rr * BC + jr];
                for (int u = 0; u < NC; u++) {
                    int c = t + TPR * u;
                    dv[u] += pr * sDO[rr * HD + c];
                    dk[u] += dsr * sQ[rr * HD + c];
                }
            }
        }
    }

    const int j = k0 + jr;
    if (j < p.Sk) {
        const uint row = uint((b * p.Hkv + hkv) * p.Sk + j);
        for (int u = 0; u < NC; u++) {
            int c = t + TPR * u;
            if (c < p.D) {
                dk_data[row * uint(p.D) + uint(c)] = dk[u];
            }
            if (c < p.Dv) {
                dv_data[row * uint(p.Dv) + uint(c)] = dv[u];
            }
        }
    }
}
