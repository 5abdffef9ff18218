// FlashAttention-2 forward, scalar path: one workgroup per (query tile of BR rows, query head, batch).
// Each row is owned by TPR threads; a thread keeps NC output columns of its row in registers.
// Shared memory holds the query tile and one key/value block of BC keys (tile sizes come from the
// device's shared-memory size on the host), plus the block's scores and probabilities.
// With MASKS defined (Kernel.FORWARD_MASKED) it also reads the host's DeviceMasks: mask bits, an F32 bias and a
// table of kernel tiles (empty: skipped, full: mask bits not read); key blocks are then aligned to BC.
#include "common.glsl"

layout(local_size_x = WG) in;

layout(std430, binding = 0) readonly buffer QBuf { uint q_data[]; };
layout(std430, binding = 1) readonly buffer KBuf { uint k_data[]; };
layout(std430, binding = 2) readonly buffer VBuf { uint v_data[]; };
layout(std430, binding = 3) writeonly buffer OBuf { float o_data[]; };
layout(std430, binding = 4) writeonly buffer LseBuf { float lse_data[]; };
layout(std430, binding = 5) readonly buffer SlopeBuf { float slopes[]; };
#if SERVING // see common.glsl
layout(std430, binding = 6) readonly buffer KeyLens { int key_lens[]; };
#endif
#if SERVING >= 2
layout(std430, binding = 7) readonly buffer BlockTable { int block_table[]; };
#endif
#if SERVING == 4 && CODES8 // byte views of the code pools (see common.glsl)
layout(std430, binding = 1) readonly buffer KView8 { uint8_t k8[]; };
layout(std430, binding = 2) readonly buffer VView8 { uint8_t v8[]; };
#endif

shared float sQ[BR * HD];
shared float sK[BC * HD];
shared float sV[BC * HD];
shared float sS[BR * BC];
shared float sP[BR * BC];

void main() {
    const uint lid = gl_LocalInvocationID.x;
    const int r = int(lid) / TPR;
    const int t = int(lid) % TPR;
    const int row0 = (int(gl_WorkGroupID.x) + p.tileBase) * BR;
    const int hq = int(gl_WorkGroupID.y);
    const int b = int(gl_WorkGroupID.z);
#if SERVING
    seqKeys = key_lens[b];
#endif
    const int hkv = hq / (p.Hq / p.Hkv);
    const int i = row0 + r;
    const bool validRow = i < p.Sq;
    const int lastRow = min(row0 + BR, p.Sq) - 1;

    const uint qBase = uint((b * p.Hq + hq) * p.Sq + row0) * uint(p.D);
    const uint kBase = uint((b * p.Hkv + hkv) * p.Sk) * uint(p.D);
    const uint vBase = uint((b * p.Hkv + hkv) * p.Sk) * uint(p.Dv);
    const float slope = p.alibi != 0 ? slopes[hq] : 0.0;
#ifdef MASKS
    const bool hasBits = meta[META_HAS_BITS] != 0;
    const bool hasBias = meta[META_HAS_BIAS] != 0;
    const uint bitsRow = maskBitsRow(b, hq, i);
    const uint biasRow = maskBiasRow(b, hq, i);
    const int tileRow = maskTileRow(b, hq, row0 / BR);
#endif // MASKS

    for (int idx = int(lid); idx < BR * p.D; idx += WG) {
        int rr = idx / p.D;
        int d = idx - rr * p.D;
        sQ[rr * HD + d] = row0 + rr < p.Sq ? LOAD_TYPED(Q_TYPE, q_data, qBase + uint(idx)) : 0.0;
    }

    // Visible keys of a row form one interval whose ends never decrease with the row, so the tile
    // visits the union [first(row0), last(lastRow)] and nothing else.
    const int kLo = firstKey(row0);
    const int kHi = lastKey(lastRow);
    const int myFirst = validRow ? firstKey(i) : 1;
    const int myLast = validRow ? lastKey(i) : 0;

    float m = NEG_INF;
    float l = 0.0;
    float o[NC];
    for (int u = 0; u < NC; u++) {
        o[u] = 0.0;
    }

#ifdef MASKS
    // Key blocks start on multiples of BC, the key tiles of the host's table.
    for (int kb = kLo - kLo % BC; kb <= kHi; kb += BC) {
        const int tile = meta[tileRow + kb / BC]; // one value for the whole workgroup: skipping keeps barriers uniform
        if (tile == TILE_EMPTY) {
            continue;
        }
        const bool readBits = hasBits && tile != TILE_FULL;
#else
    for (int kb = kLo; kb <= kHi; kb += BC) {
#endif // MASKS
        barrier();
        for (int idx = int(lid); idx < BC * p.D; idx += WG) {
            int jj = idx / p.D;
            int d = idx - jj * p.D;
            sK[jj * HD + d] = kb + jj < SK ? LOAD_K(kb + jj, d) : 0.0;
        }
        for (int idx = int(lid); idx < BC * p.Dv; idx += WG) {
            int jj = idx / p.Dv;
            int d = idx - jj * p.Dv;
            sV[jj * HD + d] = kb + jj < SK ? LOAD_V(kb + jj, d) : 0.0;
        }
        barrier();

        for (int jj = t; jj < BC; jj += TPR) {
            int j = kb + jj;
            float s = NEG_INF;
            bool visible = j >= myFirst && j <= myLast;
#ifdef MASKS
            if (visible && readBits) {
                visible = maskBit(bitsRow, j);
            }
#endif // MASKS
            if (visible) {
                float dot = 0.0;
                for (int d = 0; d < p.D; d++) {
                    dot += sQ[r * HD + d] * sK[jj * HD + d];
                }
                s = p.scale * dot;
                if (p.softcap > 0.0) {
                    s = p.softcap * safeTanh(s / p.softcap);
                }
                s -= slope * abs(float(i + (SK - p.Sq) - j));
#ifdef MASKS
                if (hasBias) {
                    s = addBias(s, biasRow, j);
                }
#endif // MASKS
            }
            sS[r * BC + jj] = s;
        }
        barrier();

        float blockMax = NEG_INF;
        for (int jj = 0; jj < BC; jj++) {
            blockMax = max(blockMax, sS[r * BC + jj]);
        }
        float mNew = max(m, blockMax);
        for (int jj = t; jj < BC; jj += TPR) {
            float s = sS[r * BC + jj];
            sP[r * BC + jj] = s == NEG_INF ? 0.0 : exp(s - mNew);
        }
        barrier();

        // o is kept normalised, divided by the running sum l: o = o * (alpha * l / lNew) + (p / lNew) v. So it
        // stays a convex combination of value rows, |o| <= max |v|, and finite values never overflow it (an
        // unnormalised sum of up to Sk values near the float maximum would). Hidden keys (score -inf) are
        // skipped, not weighted by 0, so a NaN or Inf in a value row no row may see never reaches o.
        if (mNew != NEG_INF) {
            float alpha = m == NEG_INF ? 0.0 : exp(m - mNew);
            float rowSum = 0.0;
            for (int jj = 0; jj < BC; jj++) {
                rowSum += sP[r * BC + jj];
            }
            float kept = l * alpha;
            float lNew = kept + rowSum; // >= 1: the row's largest score contributes exp(0)
            float keep = kept / lNew;
            float w = 1.0 / lNew;
            for (int u = 0; u < NC; u++) {
                o[u] *= keep;
            }
            for (int jj = 0; jj < BC; jj++) {
                if (sS[r * BC + jj] == NEG_INF) {
                    continue;
                }
                float pj = sP[r * BC + jj] * w;
                for (int u = 0; u < NC; u++) {
                    o[u] += pj * sV[jj * HD + t + TPR * u];
                }
            }
            l = lNew;
            m = mNew;
        }
    }

    if (validRow) {
        const uint oBase = uint((b * p.Hq + hq) * p.Sq + i) * uint(p.Dv);
        for (int u = 0; u < NC; u++) {
            int c = t + TPR * u;
            if (c < p.Dv) {
                o_data[oBase + uint(c)] = o[u]; // already normalised; 0 for a row that sees no key
            }
        }
        if (t == 0 && (p.flags & 1) != 0) {
            lse_data[(b * p.Hq + hq) * p.Sq + i] = l > 0.0 ? m + log(l) : NEG_INF;
        }
    }
}
