// Decode forward, split over the keys: one workgroup per (key split, KV head, batch). Its rows are the
// Sq queries of every query head that shares the KV head (row r = g * Sq + i for the g-th query head of the
// group), so each key and value row is read from memory once for the whole GQA group. A split walks its
// keys in blocks of BC and writes a normalised partial result: o (a convex combination of value rows) and
// lse = m + log(l) of its keys, or o = 0 and lse = -inf when no row sees any of them. merge.comp then
// combines the splits of a row in split order. With one split the partial is the result itself (the host
// binds out and lse directly).
//
// Defines: HD head-dim bucket, HDP = HD + 1 (the padded stride of a key row in shared memory, so the threads
// of a row, which read consecutive keys, hit distinct banks), BR rows of the workgroup (a power of two >=
// group * Sq), BC keys per block, TPR threads per row, WG = BR * TPR. p.rowCount holds the split count.
#include "common.glsl"

layout(local_size_x = WG) in;

layout(std430, binding = 0) readonly buffer QBuf { uint q_data[]; };
layout(std430, binding = 1) readonly buffer KBuf { uint k_data[]; };
layout(std430, binding = 2) readonly buffer VBuf { uint v_data[]; };
layout(std430, binding = 3) writeonly buffer OBuf { float o_part[]; };
layout(std430, binding = 4) writeonly buffer LseBuf { float lse_part[]; };
layout(std430, binding = 5) readonly buffer SlopeBuf { float slopes[]; };
#if SERVING // see common.glsl
layout(std430, binding = 6) readonly buffer KeyLens { int key_lens[]; };
#endif
#if SERVING >= 2
layout(std430, binding = 7) readonly buffer BlockTable { int block_table[]; };
#endif
// Four-element views of the inputs (see LOAD4_TYPED), read when VEC4 is 1: D and Dv multiples of 4.
layout(std430, binding = 0) readonly buffer QView4 { uvec4 q4[]; };
layout(std430, binding = 0) readonly buffer QView2 { uvec2 q2[]; };
layout(std430, binding = 1) readonly buffer KView4 { uvec4 k4[]; };
layout(std430, binding = 1) readonly buffer KView2 { uvec2 k2[]; };
layout(std430, binding = 2) readonly buffer VView4 { uvec4 v4[]; };
layout(std430, binding = 2) readonly buffer VView2 { uvec2 v2[]; };
#if SERVING == 4 && CODES8 // byte views of the code pools (see common.glsl)
layout(std430, binding = 1) readonly buffer KView8 { uint8_t k8[]; };
layout(std430, binding = 2) readonly buffer VView8 { uint8_t v8[]; };
#endif

#define SPT ((BC + TPR - 1) / TPR) // scores of a block one thread computes: keys jj = t + TPR * n
#define CPT (HD / TPR)             // output columns one thread owns: c = t + TPR * u (TPR <= 32 <= HD)

shared float sQ[BR * HD];
shared float sK[BC * HDP];
shared float sV[BC * HD];
shared float sP[BR * BC];
shared float sMax[WG];
shared float sSum[WG];

void main() {
    const int lid = int(gl_LocalInvocationID.x);
    const int r = lid / TPR;
    const int t = lid - r * TPR;
    const int split = int(gl_WorkGroupID.x);
    const int hkv = int(gl_WorkGroupID.y);
    const int b = int(gl_WorkGroupID.z);
    const int group = p.Hq / p.Hkv;
    const int rows = group * p.Sq;
    const bool validRow = r < rows;
    const int g = validRow ? r / p.Sq : 0;
    const int i = validRow ? r - g * p.Sq : 0;
    const int splits = p.rowCount;
#if SERVING
    seqKeys = key_lens[b];
#endif

    // Split boundaries depend on Sk (serving: the entry's own), the split count and BC only: never on the batch
    // or the head.
    const int chunk = ((SK + splits - 1) / splits + BC - 1) / BC * BC;
    const int s0 = split * chunk;
    const int s1 = min(SK, s0 + chunk); // exclusive
    const int kLo = max(s0, firstKey(0));
    const int kHi = min(s1 - 1, lastKey(p.Sq - 1));
    const int myFirst = validRow ? max(s0, firstKey(i)) : 1;
    const int myLast = validRow ? min(s1 - 1, lastKey(i)) : 0;
    const float slope = p.alibi != 0 && validRow ? slopes[hkv * group + g] : 0.0;

    // The group's rows are consecutive rows of q and out: (b, hkv * group + g, i) is row (b * Hq + hkv * group)
    // * Sq + r.
    const int row0 = (b * p.Hq + hkv * group) * p.Sq;
    const uint qBase = uint(row0) * uint(p.D);
    const uint kBase = uint((b * p.Hkv + hkv) * p.Sk) * uint(p.D);
    const uint vBase = uint((b * p.Hkv + hkv) * p.Sk) * uint(p.Dv);

    // Columns D .. HD-1 of q and k are zero, so the dot products run over the compile-time HD.
#if VEC4
    for (int idx = lid; idx < BR * HD / 4; idx += WG) {
        int rr = idx / (HD / 4);
        int d = (idx - rr * (HD / 4)) * 4;
        vec4 x = rr < rows && d < p.D ? LOAD4_TYPED(Q_TYPE, q4, q2, qBase + uint(rr * p.D + d)) : vec4(0.0);
        for (int e = 0; e < 4; e++) {
            sQ[rr * HD + d + e] = x[e];
        }
    }
#else
    for (int idx = lid; idx < BR * HD; idx += WG) {
        int rr = idx / HD;
        int d = idx - rr * HD;
        sQ[idx] = rr < rows && d < p.D ? LOAD_TYPED(Q_TYPE, q_data, qBase + uint(rr * p.D + d)) : 0.0;
    }
#endif

    float m = NEG_INF;
    float l = 0.0;
    float o[CPT];
    for (int u = 0; u < CPT; u++) {
        o[u] = 0.0;
    }

    for (int kb = kLo; kb <= kHi; kb += BC) {
        barrier();
#if VEC4
        for (int idx = lid; idx < BC * HD / 4; idx += WG) {
            int jj = idx / (HD / 4);
            int d = (idx - jj * (HD / 4)) * 4;
            int j = kb + jj;
            vec4 kx = j < SK && d < p.D ? LOAD4_K(j, d) : vec4(0.0);
            vec4 vx = j < SK && d < p.Dv ? LOAD4_V(j, d) : vec4(0.0);
            for (int e = 0; e < 4; e++) {
                sK[jj * HDP + d + e] = kx[e];
                sV[jj * HD + d + e] = vx[e];
            }
        }
#else
        for (int idx = lid; idx < BC * HD; idx += WG) {
            int jj = idx / HD;
            int d = idx - jj * HD;
            int j = kb + jj;
            sK[jj * HDP + d] = j < SK && d < p.D ? LOAD_K(j, d) : 0.0;
            sV[idx] = j < SK && d < p.Dv ? LOAD_V(j, d) : 0.0;
        }
#endif
        barrier();

        float sc[SPT];
        float partMax = NEG_INF;
        for (int n = 0; n < SPT; n++) {
            int jj = t + TPR * n;
            int j = kb + jj;
            float s = NEG_INF;
            if (jj < BC && j >= myFirst && j <= myLast) {
                float dot = 0.0;
                for (int d = 0; d < HD; d++) {
                    dot += sQ[r * HD + d] * sK[jj * HDP + d];
                }
                s = p.scale * dot;
                if (p.softcap > 0.0) {
                    s = p.softcap * safeTanh(s / p.softcap);
                }
                s -= slope * abs(float(i + (SK - p.Sq) - j));
            }
            sc[n] = s;
            partMax = max(partMax, s);
        }
        sMax[lid] = partMax;
        barrier();

        float mNew = m;
        for (int u = 0; u < TPR; u++) {
            mNew = max(mNew, sMax[r * TPR + u]);
        }
        float partSum = 0.0;
        for (int n = 0; n < SPT; n++) {
            int jj = t + TPR * n;
            if (jj < BC) {
                float pj = sc[n] == NEG_INF ? 0.0 : exp(sc[n] - mNew);
                sP[r * BC + jj] = pj;
                partSum += pj;
            }
        }
        sSum[lid] = partSum;
        barrier();

        // As in forward.comp, o stays normalised by the running sum (|o| <= max |v|, no overflow), and only the
        // row's visible keys of the block are visited, so a NaN or Inf in a hidden value row never reaches o.
        if (mNew != NEG_INF) {
            float rowSum = 0.0;
            for (int u = 0; u < TPR; u++) {
                rowSum += sSum[r * TPR + u];
            }
            float kept = m == NEG_INF ? 0.0 : l * exp(m - mNew);
            float lNew = kept + rowSum; // >= 1: the row's largest score contributes exp(0)
            float keep = kept / lNew;
            float w = 1.0 / lNew;
            for (int u = 0; u < CPT; u++) {
                o[u] *= keep;
            }
            int jFirst = max(myFirst, kb) - kb;
            int jLast = min(myLast, kb + BC - 1) - kb;
            for (int jj = jFirst; jj <= jLast; jj++) {
                float pj = sP[r * BC + jj] * w;
                for (int u = 0; u < CPT; u++) {
                    o[u] += pj * sV[jj * HD + t + TPR * u];
                }
            }
            l = lNew;
            m = mNew;
        }
    }

    if (validRow) {
        const uint part = uint(row0 + r) * uint(splits) + uint(split);
        for (int u = 0; u < CPT; u++) {
            int c = t + TPR * u;
            if (c < p.Dv) {
                o_part[part * uint(p.Dv) + uint(c)] = o[u]; // 0 when the row sees no key of the split
            }
        }
        if (t == 0 && (p.flags & 1) != 0) {
            lse_part[part] = l > 0.0 ? m + log(l) : NEG_INF;
        }
    }
}
