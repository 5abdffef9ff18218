// FlashAttention-2 forward with register blocks: one workgroup per (query tile of BR rows, query head, batch),
// as forward.comp, but each thread owns RM consecutive rows of the tile and, of those rows, RN keys of a key
// block (keys tx + TPR * n) and CN output columns (tx + TPR * c), so every value read from shared memory feeds
// RM or RN (CN) multiply-adds instead of one. The head dim is the compile-time HD: the loops over it unroll,
// and columns D .. HD-1 of q and k are stored as zeros so no bound is tested per element. Query and key rows
// are padded to HDP = HD + 1 floats in shared memory: the threads of a row group read consecutive keys, whose
// rows then start in distinct banks. A row's block maximum and sum are reduced from one partial per thread of
// its group (TPR of them), with subgroup operations or through shared memory (SUBGROUP_LAYOUT below).
//
// Defines: HD, HDP, BR, BC, WG as in forward.comp; TPR threads per row group (WG = TPR * BR / RM), RM rows per
// thread; the storage types Q_TYPE, K_TYPE, V_TYPE; SUBGROUP_LAYOUT; MASKS (Kernel.*_MASKED) as in forward.comp:
// mask bits, bias and tile table from DeviceMasks, key blocks aligned to BC, empty tiles skipped.
//
// SUBGROUP_LAYOUT 1: a row group is one subgroup (TPR = the subgroup size): rows come from gl_SubgroupID, so
// every read of q (from memory: no query tile in shared memory) and of sP is uniform across the subgroup (one read broadcast to all lanes, which CPU
// drivers such as lavapipe compile to a scalar load instead of a gather), the row reductions are subgroupMax and
// subgroupAdd, and a key block needs two workgroup barriers instead of four. A device whose subgroups are not
// TPR wide (it may choose another size per pipeline) gets NaN, never a silently wrong result, and the host
// only asks for this layout where the size is fixed. SUBGROUP_LAYOUT 0: row groups by invocation index, the
// reductions through shared memory.
#if SUBGROUP_LAYOUT
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
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

#define RN (BC / TPR) // keys of a block per thread
#define CN (HD / TPR) // output columns per thread

shared float sK[BC * HDP];
shared float sV[BC * HD];
shared float sP[BR * BC];
#if !SUBGROUP_LAYOUT // the query tile and the reductions' partials; the subgroup layout needs neither
shared float sQ[BR * HDP];
shared float sMax[BR * TPR];
shared float sSum[BR * TPR];
#endif

void main() {
    const int lid = int(gl_LocalInvocationID.x);
#if SUBGROUP_LAYOUT
    const int ty = int(gl_SubgroupID);
    const int tx = int(gl_SubgroupInvocationID);
#else
    const int ty = lid / TPR;
    const int tx = lid - ty * TPR;
#endif
    const int row0 = (int(gl_WorkGroupID.x) + p.tileBase) * BR;
    const int hq = int(gl_WorkGroupID.y);
    const int b = int(gl_WorkGroupID.z);
#if SERVING
    seqKeys = key_lens[b];
#endif
    const int hkv = hq / (p.Hq / p.Hkv);
    const int lastRow = min(row0 + BR, p.Sq) - 1;
    const int rBase = ty * RM; // first of this thread's rows within the tile

    const uint qBase = uint((b * p.Hq + hq) * p.Sq + row0) * uint(p.D);
    const uint kBase = uint((b * p.Hkv + hkv) * p.Sk) * uint(p.D);
    const uint vBase = uint((b * p.Hkv + hkv) * p.Sk) * uint(p.Dv);
    const float slope = p.alibi != 0 ? slopes[hq] : 0.0;

#if SUBGROUP_LAYOUT
    if (gl_SubgroupSize != uint(TPR) || gl_NumSubgroups != uint(WG / TPR)) {
        // The layout assumes TPR-wide subgroups: mark the tile's rows as failed rather than compute them wrong.
        for (int idx = lid; idx < BR * p.Dv; idx += WG) {
            if (row0 + idx / p.Dv < p.Sq) {
                o_data[uint((b * p.Hq + hq) * p.Sq + row0) * uint(p.Dv) + uint(idx)] = uintBitsToFloat(0x7fc00000u);
            }
        }
        return;
    }
#endif

#if !SUBGROUP_LAYOUT
#if VEC4
    for (int idx = lid; idx < BR * HD / 4; idx += WG) {
        int rr = idx / (HD / 4);
        int d = (idx - rr * (HD / 4)) * 4;
        vec4 x = row0 + rr < p.Sq && d < p.D ? LOAD4_TYPED(Q_TYPE, q4, q2, qBase + uint(rr * p.D + d)) : vec4(0.0);
        for (int e = 0; e < 4; e++) {
            sQ[rr * HDP + d + e] = x[e];
        }
    }
#else
    for (int idx = lid; idx < BR * HD; idx += WG) {
        int rr = idx / HD;
        int d = idx - rr * HD;
        sQ[rr * HDP + d] = row0 + rr < p.Sq && d < p.D ? LOAD_TYPED(Q_TYPE, q_data, qBase + uint(rr * p.D + d)) : 0.0;
    }
#endif
#endif

    // Visible keys of a row form one interval whose ends never decrease with the row (see forward.comp).
    const int kLo = firstKey(row0);
    const int kHi = lastKey(lastRow);
    int first[RM];
    int last[RM];
    float m[RM];
    float l[RM];
    float o[RM * CN];
    for (int a = 0; a < RM; a++) {
        int i = row0 + rBase + a;
        first[a] = i < p.Sq ? firstKey(i) : 1;
        last[a] = i < p.Sq ? lastKey(i) : 0;
        m[a] = NEG_INF;
        l[a] = 0.0;
        for (int c = 0; c < CN; c++) {
            o[a * CN + c] = 0.0;
        }
    }
    // The keys any of the thread's rows sees (rows past Sq hold the empty interval [1, 0]).
#ifdef MASKS
    const bool hasBits = meta[META_HAS_BITS] != 0;
    const bool hasBias = meta[META_HAS_BIAS] != 0;
    const int tileRow = maskTileRow(b, hq, row0 / BR);
    uint bitsRow[RM];
    uint biasRow[RM];
    for (int a = 0; a < RM; a++) {
        bitsRow[a] = maskBitsRow(b, hq, row0 + rBase + a);
        biasRow[a] = maskBiasRow(b, hq, row0 + rBase + a);
    }
#endif // MASKS
    int myLo = first[0];
    int myHi = last[0];
    for (int a = 1; a < RM; a++) {
        myLo = min(myLo, first[a]);
        myHi = max(myHi, last[a]);
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

        float s[RM * RN];
        for (int e = 0; e < RM * RN; e++) {
            s[e] = 0.0;
        }
#if SUBGROUP_LAYOUT
        // q straight from memory: the row is the subgroup's, so each read is one load for all its lanes.
        for (int d0 = 0; d0 < HD; d0 += 4) {
            vec4 qv[RM];
            for (int a = 0; a < RM; a++) {
                bool inRow = row0 + rBase + a < p.Sq;
                uint at = qBase + uint((rBase + a) * p.D + d0);
#if VEC4
                qv[a] = inRow && d0 < p.D ? LOAD4_TYPED(Q_TYPE, q4, q2, at) : vec4(0.0);
#else
                for (int e = 0; e < 4; e++) {
                    qv[a][e] = inRow && d0 + e < p.D ? LOAD_TYPED(Q_TYPE, q_data, at + uint(e)) : 0.0;
                }
#endif
            }
            for (int e = 0; e < 4; e++) {
                float kv[RN];
                for (int n = 0; n < RN; n++) {
                    kv[n] = sK[(tx + TPR * n) * HDP + d0 + e];
                }
                for (int a = 0; a < RM; a++) {
                    for (int n = 0; n < RN; n++) {
                        s[a * RN + n] += qv[a][e] * kv[n];
                    }
                }
            }
        }
#else
        for (int d = 0; d < HD; d++) {
            float qv[RM];
            float kv[RN];
            for (int a = 0; a < RM; a++) {
                qv[a] = sQ[(rBase + a) * HDP + d];
            }
            for (int n = 0; n < RN; n++) {
                kv[n] = sK[(tx + TPR * n) * HDP + d];
            }
            for (int a = 0; a < RM; a++) {
                for (int n = 0; n < RN; n++) {
                    s[a * RN + n] += qv[a] * kv[n];
                }
            }
        }
#endif
        float mNew[RM];
        for (int a = 0; a < RM; a++) {
            int i = row0 + rBase + a;
            float partMax = NEG_INF;
            for (int n = 0; n < RN; n++) {
                int j = kb + tx + TPR * n;
                float x = NEG_INF;
                bool visible = j >= first[a] && j <= last[a];
#ifdef MASKS
                if (visible && readBits) {
                    visible = maskBit(bitsRow[a], j);
                }
#endif // MASKS
                if (visible) {
                    x = p.scale * s[a * RN + n];
                    if (p.softcap > 0.0) {
                        x = p.softcap * safeTanh(x / p.softcap);
                    }
                    x -= slope * abs(float(i + (SK - p.Sq) - j));
#ifdef MASKS
                    if (hasBias) {
                        x = addBias(x, biasRow[a], j);
                    }
#endif // MASKS
                }
                s[a * RN + n] = x;
                partMax = max(partMax, x);
            }
#if SUBGROUP_LAYOUT
            mNew[a] = max(m[a], subgroupMax(partMax));
#else
            sMax[(rBase + a) * TPR + tx] = partMax;
#endif
        }
#if !SUBGROUP_LAYOUT
        barrier();
        for (int a = 0; a < RM; a++) {
            float x = m[a];
            for (int u = 0; u < TPR; u++) {
                x = max(x, sMax[(rBase + a) * TPR + u]);
            }
            mNew[a] = x;
        }
#endif

        float rowSum[RM];
        for (int a = 0; a < RM; a++) {
            float partSum = 0.0;
            for (int n = 0; n < RN; n++) {
                float sv = s[a * RN + n];
                float pj = sv == NEG_INF ? 0.0 : exp(sv - mNew[a]);
                sP[(rBase + a) * BC + tx + TPR * n] = pj;
                partSum += pj;
            }
#if SUBGROUP_LAYOUT
            rowSum[a] = subgroupAdd(partSum);
#else
            sSum[(rBase + a) * TPR + tx] = partSum;
#endif
        }
#if SUBGROUP_LAYOUT
        // sP rows are written and read by their own subgroup only.
        subgroupMemoryBarrierShared();
        subgroupBarrier();
#else
        barrier();
        for (int a = 0; a < RM; a++) {
            float x = 0.0;
            for (int u = 0; u < TPR; u++) {
                x += sSum[(rBase + a) * TPR + u];
            }
            rowSum[a] = x;
        }
#endif

        // o stays normalised by the running sum, as in forward.comp (|o| <= max |v|).
        float w[RM];
        for (int a = 0; a < RM; a++) {
            w[a] = 0.0;
            if (mNew[a] != NEG_INF) {
                float kept = m[a] == NEG_INF ? 0.0 : l[a] * exp(m[a] - mNew[a]);
                float lNew = kept + rowSum[a]; // >= 1: the row's largest score contributes exp(0)
                float keep = kept / lNew;
                w[a] = 1.0 / lNew;
                for (int c = 0; c < CN; c++) {
                    o[a * CN + c] *= keep;
                }
                l[a] = lNew;
                m[a] = mNew[a];
            }
        }
        // Only keys some row of the thread sees, and for each row only its own: a NaN or Inf in a value row a
        // row may not see never reaches that row's o.
        int jLo = max(myLo, kb) - kb;
        int jHi = min(myHi, kb + BC - 1) - kb;
        for (int jj = jLo; jj <= jHi; jj++) {
            int j = kb + jj;
            float vv[CN];
            for (int c = 0; c < CN; c++) {
                vv[c] = sV[jj * HD + tx + TPR * c];
            }
            for (int a = 0; a < RM; a++) {
                if (j >= first[a] && j <= last[a] && w[a] != 0.0) {
                    float pj = sP[(rBase + a) * BC + jj] * w[a];
                    for (int c = 0; c < CN; c++) {
#ifdef MASKS
                        // A pair the mask or the bias hides inside the interval has pj = 0: a select, not a
                        // product (nor a branch, which costs lavapipe its unrolled loop), keeps its value out.
                        o[a * CN + c] += pj == 0.0 ? 0.0 : pj * vv[c];
#else
                        o[a * CN + c] += pj * vv[c];
#endif // MASKS
                    }
                }
            }
        }
    }

    for (int a = 0; a < RM; a++) {
        int i = row0 + rBase + a;
        if (i < p.Sq) {
            const uint oBase = uint((b * p.Hq + hq) * p.Sq + i) * uint(p.Dv);
            for (int c = 0; c < CN; c++) {
                int col = tx + TPR * c;
                if (col < p.Dv) {
                    o_data[oBase + uint(col)] = o[a * CN + c]; // already normalised; 0 for a row that sees no key
                }
            }
            if (tx == 0 && (p.flags & 1) != 0) {
                lse_data[(b * p.Hq + hq) * p.Sq + i] = l[a] > 0.0 ? m[a] + log(l[a]) : NEG_INF;
            }
        }
    }
}
