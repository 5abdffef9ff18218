// FlashAttention-2 forward on cooperative matrices (VK_KHR_cooperative_matrix, subgroup scope): both products,
// S = Q K^T and O += P V, are CM x CN x CK matrix multiply-adds with F16 operands and F32 accumulators; the
// softmax between them is scalar F32 with the semantics of forward.comp (causal, windows, scale, softcap,
// ALiBi, GQA, lse; o kept normalised).
//
// One workgroup per (query tile of BR = NSG * CM rows, query head, batch); subgroup g owns rows g*CM .. g*CM+CM-1
// of the tile, so S, P and O of a row are touched by its own subgroup only (subgroup barriers), and only the
// key/value block, which every subgroup reads, needs workgroup barriers.
//
// Defines (set by the host, CoopPlan): HD (64 or 128), CM/CN/CK (a shape the device lists with F16 A and B and
// F32 C), SG (the subgroup size the pipeline requires), NSG (subgroups per workgroup), BC (keys per block, a
// multiple of CN and CK, >= BR), Q_TYPE/K_TYPE/V_TYPE (inputs are rounded to F16 in shared memory), COOP_EMULATED
// (1: the matrix operations emulated over plain arrays, below).
//
// Shared rows are padded (HDS, BCS, BCP, HDO) to multiples of 16 bytes plus 16 bytes, which coopMatLoad/Store
// need aligned and which spreads rows over banks. A workgroup whose subgroups are not SG wide or not NSG of them
// writes NaN (the layout is assumed throughout, and the first-use check then disables the kernel).
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require

// The matrix operations, as macros so that COOP_EMULATED can replace them (tests on devices without cooperative
// matrices): there a matrix is spread over the subgroup's lanes (lane l holds elements l, l + SG, ... in row-major
// order), loads and stores honour the same offsets, strides and layouts, and a multiply-add passes A and B
// through a per-subgroup scratch area. Only the layout of elements over lanes differs from a real coopmat, and
// the kernel never depends on it.
#if COOP_EMULATED
#extension GL_EXT_control_flow_attributes : require
#define MAT_A(name) EmuA name
#define MAT_B(name) EmuB name
#define MAT_C(name) EmuC name
#define ROW_MAJOR 0
#define COL_MAJOR 1
struct EmuA { float e[CM * CK / SG]; };
struct EmuB { float e[CK * CN / SG]; };
struct EmuC { float e[CM * CN / SG]; };
shared float sEmuA[NSG * CM * CK];
shared float sEmuB[NSG * CK * CN];
#define EMU_AT(rows, cols, u, lay, stride) ((lay) == ROW_MAJOR \
    ? ((u) * SG + lane) / (cols) * (stride) + ((u) * SG + lane) % (cols) \
    : ((u) * SG + lane) % (cols) * (stride) + ((u) * SG + lane) / (cols))
#define EMU_LOAD(m, rows, cols, buf, off, stride, lay) \
    [[dont_unroll]] for (int u_ = 0; u_ < (rows) * (cols) / SG; u_++) { \
        m.e[u_] = float(buf[(off) + uint(EMU_AT(rows, cols, u_, lay, int(stride)))]); }
#define LOAD_A(m, buf, off, stride, lay) EMU_LOAD(m, CM, CK, buf, off, stride, lay)
#define LOAD_B(m, buf, off, stride, lay) EMU_LOAD(m, CK, CN, buf, off, stride, lay)
#define LOAD_C(m, buf, off, stride, lay) EMU_LOAD(m, CM, CN, buf, off, stride, lay)
#define STORE_C(m, buf, off, stride, lay) \
    [[dont_unroll]] for (int u_ = 0; u_ < CM * CN / SG; u_++) { buf[(off) + uint(EMU_AT(CM, CN, u_, lay, int(stride)))] = m.e[u_]; }
#define ZERO_C(m) for (int u_ = 0; u_ < CM * CN / SG; u_++) { m.e[u_] = 0.0; }
// c += a * b, rounding the products' operands to F16 as the hardware's operands are
#define MULADD(c, a, b) { \
    for (int u_ = 0; u_ < CM * CK / SG; u_++) { sEmuA[sg * CM * CK + u_ * SG + lane] = a.e[u_]; } \
    for (int u_ = 0; u_ < CK * CN / SG; u_++) { sEmuB[sg * CK * CN + u_ * SG + lane] = b.e[u_]; } \
    subgroupMemoryBarrierShared(); subgroupBarrier(); \
    [[dont_unroll]] for (int u_ = 0; u_ < CM * CN / SG; u_++) { \
        int e_ = u_ * SG + lane; int r_ = e_ / CN; int n_ = e_ % CN; float acc_ = c.e[u_]; \
        [[dont_unroll]] for (int k_ = 0; k_ < CK; k_++) { \
            acc_ += float(float16_t(sEmuA[sg * CM * CK + r_ * CK + k_])) \
                    * float(float16_t(sEmuB[sg * CK * CN + k_ * CN + n_])); } \
        c.e[u_] = acc_; } \
    subgroupMemoryBarrierShared(); subgroupBarrier(); }
#else
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#define MAT_A(name) coopmat<float16_t, gl_ScopeSubgroup, CM, CK, gl_MatrixUseA> name
#define MAT_B(name) coopmat<float16_t, gl_ScopeSubgroup, CK, CN, gl_MatrixUseB> name
#define MAT_C(name) coopmat<float, gl_ScopeSubgroup, CM, CN, gl_MatrixUseAccumulator> name
#define ROW_MAJOR gl_CooperativeMatrixLayoutRowMajor
#define COL_MAJOR gl_CooperativeMatrixLayoutColumnMajor
#define LOAD_A(m, buf, off, stride, lay) coopMatLoad(m, buf, off, stride, lay)
#define LOAD_B(m, buf, off, stride, lay) coopMatLoad(m, buf, off, stride, lay)
#define LOAD_C(m, buf, off, stride, lay) coopMatLoad(m, buf, off, stride, lay)
#define STORE_C(m, buf, off, stride, lay) coopMatStore(m, buf, off, stride, lay)
#define ZERO_C(m) m = coopmat<float, gl_ScopeSubgroup, CM, CN, gl_MatrixUseAccumulator>(0.0)
#define MULADD(c, a, b) c = coopMatMulAdd(a, b, c)
#endif
#include "common.glsl"

#define WG (SG * NSG)
#define BR (NSG * CM)
#define HDS (HD + 8)
#define BCP (BC + 8)
#define BCS (BC + 4)
#define HDO (HD + 4)

layout(local_size_x = WG) in;

layout(std430, binding = 0) readonly buffer QBuf { uint q_data[]; };
layout(std430, binding = 1) readonly buffer KBuf { uint k_data[]; };
layout(std430, binding = 2) readonly buffer VBuf { uint v_data[]; };
layout(std430, binding = 3) writeonly buffer OBuf { float o_data[]; };
layout(std430, binding = 4) writeonly buffer LseBuf { float lse_data[]; };
layout(std430, binding = 5) readonly buffer SlopeBuf { float slopes[]; };

shared float16_t sK[BC * HDS];   // the key block; first the query tile, on its way into registers
shared float16_t sV[BC * HDS];   // the value block
shared float16_t sP[BR * BCP];   // p / l_new of the block, per row
shared float sS[BR * BCS];       // the block's scores, per row
shared float sO[BR * HDO];       // the normalised output rows
shared float sM[BR];             // running max of each row
shared float sL[BR];             // running sum of each row
shared float sMNew[BR];
shared float sKeep[BR];
shared float sW[BR];
shared int sBadBlock;            // kb + 1 when the value block at kb holds an Inf or NaN

void main() {
    const uint lid = gl_LocalInvocationID.x;
    const int row0 = (int(gl_WorkGroupID.x) + p.tileBase) * BR;
    const int hq = int(gl_WorkGroupID.y);
    const int b = int(gl_WorkGroupID.z);
    const int hkv = hq / (p.Hq / p.Hkv);
    const int lastRow = min(row0 + BR, p.Sq) - 1;
    const uint outRows = uint((b * p.Hq + hq) * p.Sq);

    if (gl_SubgroupSize != SG || gl_NumSubgroups != NSG) { // uniform over the workgroup: no barrier skipped
        for (int idx = int(lid); idx < BR * p.Dv; idx += WG) {
            int i = row0 + idx / p.Dv;
            if (i < p.Sq) {
                o_data[(outRows + uint(i)) * uint(p.Dv) + uint(idx % p.Dv)] = uintBitsToFloat(0x7fc00000u);
            }
        }
        return;
    }
    const int sg = int(gl_SubgroupID);
    const int lane = int(gl_SubgroupInvocationID);
    const int myRow0 = sg * CM; // the subgroup's first row in the tile

    const uint qBase = (outRows + uint(row0)) * uint(p.D);
    const uint kBase = uint((b * p.Hkv + hkv) * p.Sk) * uint(p.D);
    const uint vBase = uint((b * p.Hkv + hkv) * p.Sk) * uint(p.Dv);
    const float slope = p.alibi != 0 ? slopes[hq] : 0.0;

    // The query tile, through sK, into registers for the whole call (BR <= BC, so it fits).
    for (int idx = int(lid); idx < BR * HD; idx += WG) {
        int rr = idx / HD;
        int d = idx - rr * HD;
        float x = row0 + rr < p.Sq && d < p.D ? LOAD_TYPED(Q_TYPE, q_data, qBase + uint(rr * p.D + d)) : 0.0;
        sK[rr * HDS + d] = float16_t(x);
    }
    for (int idx = int(lid); idx < BR * HDO; idx += WG) {
        sO[idx] = 0.0;
    }
    for (int idx = int(lid); idx < BR; idx += WG) {
        sM[idx] = NEG_INF;
        sL[idx] = 0.0;
    }
    if (lid == 0) {
        sBadBlock = 0;
    }
    barrier();
    MAT_A(qf[HD / CK]);
    for (int c = 0; c < HD / CK; c++) {
        LOAD_A(qf[c], sK, uint(myRow0 * HDS + c * CK), uint(HDS), ROW_MAJOR);
    }

    // As in forward.comp: the tile visits the union of its rows' visible intervals and nothing else.
    const int kLo = firstKey(row0);
    const int kHi = lastKey(lastRow);

    for (int kb = kLo; kb <= kHi; kb += BC) {
        barrier(); // every subgroup is done with the previous block (and with the query tile in sK)
        for (int idx = int(lid); idx < BC * HD; idx += WG) {
            int jj = idx / HD;
            int d = idx - jj * HD;
            bool key = kb + jj < p.Sk;
            float kx = key && d < p.D ? LOAD_TYPED(K_TYPE, k_data, kBase + uint((kb + jj) * p.D + d)) : 0.0;
            float vx = key && d < p.Dv ? LOAD_TYPED(V_TYPE, v_data, vBase + uint((kb + jj) * p.Dv + d)) : 0.0;
            sK[jj * HDS + d] = float16_t(kx);
            sV[jj * HDS + d] = float16_t(vx);
            if (isnan(vx) || isinf(vx)) {
                sBadBlock = kb + 1; // every writer writes the same value; a new block has a new one
            }
        }
        barrier();
        // A non-finite value times a hidden key's p = 0 is NaN in a matrix product, where forward.comp skips the
        // key: such a block (rare) takes the scalar P V below, which skips zero probabilities as forward.comp does.
        const bool badBlock = sBadBlock == kb + 1;

        // S = Q K^T for the subgroup's CM rows: K^T's column n is key row n of sK (column-major B).
        for (int n = 0; n < BC / CN; n++) {
            MAT_C(acc);
            ZERO_C(acc);
            for (int c = 0; c < HD / CK; c++) {
                MAT_B(kf);
                LOAD_B(kf, sK, uint(n * CN * HDS + c * CK), uint(HDS), COL_MAJOR);
                MULADD(acc, qf[c], kf);
            }
            STORE_C(acc, sS, uint(myRow0 * BCS + n * CN), uint(BCS), ROW_MAJOR);
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();

        // Scores as forward.comp makes them: -inf outside a row's interval, then scale, softcap, ALiBi.
        for (int idx = lane; idx < CM * BC; idx += SG) {
            int r = idx / BC;
            int jj = idx - r * BC;
            int i = row0 + myRow0 + r;
            int j = kb + jj;
            float s = NEG_INF;
            if (i < p.Sq && j >= firstKey(i) && j <= lastKey(i)) {
                s = p.scale * sS[(myRow0 + r) * BCS + jj];
                if (p.softcap > 0.0) {
                    s = p.softcap * safeTanh(s / p.softcap);
                }
                s -= slope * abs(float(i + (p.Sk - p.Sq) - j));
            }
            sS[(myRow0 + r) * BCS + jj] = s;
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();

        // The online-softmax update of each row (lanes take rows r, r + SG, ...; one each when SG >= CM):
        // o = o * (alpha l / l_new) + (p / l_new) v.
        for (int statRow = myRow0 + lane; statRow < myRow0 + CM; statRow += SG) {
            float m = sM[statRow];
            float l = sL[statRow];
            float blockMax = NEG_INF;
            for (int jj = 0; jj < BC; jj++) {
                blockMax = max(blockMax, sS[statRow * BCS + jj]);
            }
            float mNew = max(m, blockMax);
            float keep = 1.0;
            float w = 0.0;
            if (mNew != NEG_INF) {
                float alpha = m == NEG_INF ? 0.0 : exp(m - mNew);
                float rowSum = 0.0;
                for (int jj = 0; jj < BC; jj++) {
                    float s = sS[statRow * BCS + jj];
                    rowSum += s == NEG_INF ? 0.0 : exp(s - mNew);
                }
                float kept = l * alpha;
                float lNew = kept + rowSum; // >= 1: the row's largest score contributes exp(0)
                keep = kept / lNew;
                w = 1.0 / lNew;
                l = lNew;
                m = mNew;
            }
            sM[statRow] = m;
            sL[statRow] = l;
            sMNew[statRow] = mNew;
            sKeep[statRow] = keep;
            sW[statRow] = w;
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        for (int idx = lane; idx < CM * BC; idx += SG) {
            int r = myRow0 + idx / BC;
            int jj = idx % BC;
            float s = sS[r * BCS + jj];
            sP[r * BCP + jj] = float16_t(s == NEG_INF ? 0.0 : exp(s - sMNew[r]) * sW[r]);
        }
        for (int idx = lane; idx < CM * HD; idx += SG) {
            int r = myRow0 + idx / HD;
            int c = idx % HD;
            sO[r * HDO + c] *= sKeep[r];
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();

        // O += P V, column tile by column tile of the head dim.
        if (badBlock) {
            for (int idx = lane; idx < CM * HD; idx += SG) {
                int r = myRow0 + idx / HD;
                int c = idx % HD;
                float acc = 0.0;
                for (int jj = 0; jj < BC; jj++) {
                    float pj = float(sP[r * BCP + jj]);
                    if (pj != 0.0) {
                        acc += pj * float(sV[jj * HDS + c]);
                    }
                }
                sO[r * HDO + c] += acc;
            }
        } else {
            for (int n = 0; n < HD / CN; n++) {
                MAT_C(o);
                LOAD_C(o, sO, uint(myRow0 * HDO + n * CN), uint(HDO), ROW_MAJOR);
                for (int c = 0; c < BC / CK; c++) {
                    MAT_A(pf);
                    MAT_B(vf);
                    LOAD_A(pf, sP, uint(myRow0 * BCP + c * CK), uint(BCP), ROW_MAJOR);
                    LOAD_B(vf, sV, uint(c * CK * HDS + n * CN), uint(HDS), ROW_MAJOR);
                    MULADD(o, pf, vf);
                }
                STORE_C(o, sO, uint(myRow0 * HDO + n * CN), uint(HDO), ROW_MAJOR);
            }
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();
    }

    for (int idx = lane; idx < CM * p.Dv; idx += SG) {
        int r = idx / p.Dv;
        int c = idx - r * p.Dv;
        int i = row0 + myRow0 + r;
        if (i < p.Sq) {
            o_data[(outRows + uint(i)) * uint(p.Dv) + uint(c)] = sO[(myRow0 + r) * HDO + c];
        }
    }
    for (int r = myRow0 + lane; r < myRow0 + CM && (p.flags & 1) != 0; r += SG) {
        if (row0 + r < p.Sq) {
            lse_data[outRows + uint(row0 + r)] = sL[r] > 0.0 ? sM[r] + log(sL[r]) : NEG_INF;
        }
    }
}
