// Backward, dQ: one workgroup per (query tile of BR rows, query head, batch), walking the key blocks
// its rows can see; each row's dQ is owned by TPR threads (NC columns each), so no atomics.
// With MASKS defined (Kernel.BACKWARD_Q_MASKED) it reads the DeviceMasks of the backward's plan at bindings
// 8 .. 10, as backward_kv.comp does (key blocks then aligned to BC; EMPTY tiles skipped, FULL ones read no bits).
#ifdef MASKS
#define OWN_MASK_BINDINGS
layout(std430, binding = 8) readonly buffer MaskBits { uint mask_bits[]; };
layout(std430, binding = 9) readonly buffer BiasBuf { float bias_data[]; };
layout(std430, binding = 10) readonly buffer MaskMeta { int meta[]; };
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
layout(std430, binding = 7) writeonly buffer DQBuf { float dq_data[]; };

shared float sQ[BR * HD];
shared float sDO[BR * HD];
shared float sK[BC * HD];
shared float sV[BC * HD];
shared float sDS[BR * BC];
shared float sLse[BR];
shared float sDelta[BR];

void main() {
    const uint lid = gl_LocalInvocationID.x;
    const int r = int(lid) / TPR;
    const int t = int(lid) % TPR;
    const int row0 = (int(gl_WorkGroupID.x) + p.tileBase) * BR;
    const int hq = int(gl_WorkGroupID.y);
    const int b = int(gl_WorkGroupID.z);
    const int hkv = hq / (p.Hq / p.Hkv);
    const int offset = p.Sk - p.Sq;
    const int lastRow = min(row0 + BR, p.Sq) - 1;
    const float slope = p.alibi != 0 ? slopes[hq] : 0.0;
    const int rowHead = (b * p.Hq + hq) * p.Sq;

    const uint qBase = uint(rowHead + row0) * uint(p.D);
    const uint oBase = uint(rowHead + row0) * uint(p.Dv);
    for (int idx = int(lid); idx < BR * p.D; idx += WG) {
        int rr = idx / p.D;
        sQ[rr * HD + idx - rr * p.D] = row0 + rr < p.Sq ? LOAD_TYPED(Q_TYPE, q_data, qBase + uint(idx)) : 0.0;
    }
    for (int idx = int(lid); idx < BR * p.Dv; idx += WG) {
        int rr = idx / p.Dv;
        sDO[rr * HD + idx - rr * p.Dv] = row0 + rr < p.Sq ? LOAD_TYPED(DO_TYPE, do_data, oBase + uint(idx)) : 0.0;
    }
    if (int(lid) < BR) {
        bool valid = row0 + int(lid) < p.Sq;
        sLse[lid] = valid ? lse_data[rowHead + row0 + int(lid)] : NEG_INF;
        sDelta[lid] = valid ? delta[rowHead + row0 + int(lid)] : 0.0;
    }

    float dq[NC];
    for (int u = 0; u < NC; u++) {
        dq[u] = 0.0;
    }

    const int kLo = firstKey(row0);
    const int kHi = lastKey(lastRow);
    // The keys this thread's row sees: the ds condition below, per row (empty past Sq or when it sees none).
    barrier(); // sLse is written above
    const bool rowSees = row0 + r < p.Sq && sLse[r] != NEG_INF;
    const int myFirst = rowSees ? firstKey(row0 + r) : 1;
    const int myLast = rowSees ? lastKey(row0 + r) : 0;
    const uint kHead = uint((b * p.Hkv + hkv) * p.Sk);
#ifdef MASKS
    const bool hasBits = meta[META_HAS_BITS] != 0;
    const bool hasBias = meta[META_HAS_BIAS] != 0;
    const int wordsPerRow = meta[META_WORDS_PER_ROW]; // read once: a pair's offsets below are plain arithmetic
    const uint bitsHead = maskBitsRow(b, hq, 0); // row i's bits at bitsHead + i * wordsPerRow
    const uint biasHead = maskBiasRow(b, hq, 0); // row i's bias at biasHead + i * Sk
    const uint myBitsRow = bitsHead + uint((row0 + r) * wordsPerRow);
    const uint myBiasRow = biasHead + uint(row0 + r) * uint(p.Sk);
    const int tileRow = maskTileRow(b, hq, row0 / BR);
    // Key blocks start on multiples of BC, the key tiles of the host's table.
    for (int kb = kLo - kLo % BC; kb <= kHi; kb += BC) {
        const int tile = meta[tileRow + kb / BC]; // uniform: skipping keeps barriers uniform
        if (tile == TILE_EMPTY) {
            continue;
        }
        const bool readBits = hasBits && tile != TILE_FULL;
        const bool checkMask = readBits || hasBias; // false: nothing in this tile can hide a pair
#else
    for (int kb = kLo; kb <= kHi; kb += BC) {
#endif // MASKS
        barrier();
        for (int idx = int(lid); idx < BC * p.D; idx += WG) {
            int jj = idx / p.D;
            sK[jj * HD + idx - jj * p.D] = kb + jj < p.Sk ? LOAD_TYPED(K_TYPE, k_data, (kHead + uint(kb)) * uint(p.D) + uint(idx)) : 0.0;
        }
        for (int idx = int(lid); idx < BC * p.Dv; idx += WG) {
            int jj = idx / p.Dv;
            sV[jj * HD + idx - jj * p.Dv] = kb + jj < p.Sk ? LOAD_TYPED(V_TYPE, v_data, (kHead + uint(kb)) * uint(p.Dv) + uint(idx)) : 0.0;
        }
        barrier();

        for (int pair = int(lid); pair < BR * BC; pair += WG) {
            int rr = pair / BC;
            int jj = pair - rr * BC;
            int i = row0 + rr;
            int j = kb + jj;
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
                float prob = exp(s - lse);
                float dp = 0.0;
                for (int d = 0; d < p.Dv; d++) {
                    dp += sDO[rr * HD + d] * sV[jj * HD + d];
                }
                ds = prob * (dp - sDelta[rr]) * capSlope * p.scale;
            }
            sDS[pair] = ds;
        }
        barrier();

        for (int jj = 0; jj < BC; jj++) {
            // A key hidden from this row adds nothing, not 0 * k: a NaN or Inf in it must not reach dq.
            if (kb + jj < myFirst || kb + jj > myLast) {
                continue;
            }
#ifdef MASKS
            if (checkMask && maskHides(readBits, hasBias, myBitsRow, myBiasRow, kb + jj)) {
                continue;
            }
#endif // MASKS
            float dsr = sDS[r * BC + jj];
            for (int u = 0; u < NC; u++) {
                dq[u] += dsr * sK[jj * HD + t + TPR * u];
            }
        }
    }

    const int i = row0 + r;
    if (i < p.Sq) {
        const uint base = uint(rowHead + i) * uint(p.D);
        for (int u = 0; u < NC; u++) {
            int c = t + TPR * u;
            if (c < p.D) {
                dq_data[base + uint(c)] = dq[u];
            }
        }
    }
}
