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
// multiple of CN and CK, >= BR), Q_TYPE/K_TYPE/V_TYPE (inputs are rounded to F16 in shared memory).
//
// Shared rows are padded (HDS, BCS, BCP, HDO) to multiples of 16 bytes plus 16 bytes, which coopMatLoad/Store
// need aligned and which spreads rows over banks. A workgroup whose subgroups are not SG wide or not NSG of them
// writes NaN (the layout is assumed throughout, and the first-use check then disables the kernel).
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
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
shared float sMNew[BR];
shared float sKeep[BR];
shared float sW[BR];

void main() {
    const uint lid = gl_LocalInvocationID.x;
    const int row0 = int(gl_WorkGroupID.x) * BR;
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
    barrier();
    coopmat<float16_t, gl_ScopeSubgroup, CM, CK, gl_MatrixUseA> qf[HD / CK];
    for (int c = 0; c < HD / CK; c++) {
        coopMatLoad(qf[c], sK, uint(myRow0 * HDS + c * CK), uint(HDS), gl_CooperativeMatrixLayoutRowMajor);
    }

    // As in forward.comp: the tile visits the union of its rows' visible intervals and nothing else.
    const int kLo = firstKey(row0);
    const int kHi = lastKey(lastRow);
    // Lane r < CM keeps the running max and sum of the subgroup's row r.
    const int statRow = myRow0 + lane;
    const int statI = row0 + statRow;
    float m = NEG_INF;
    float l = 0.0;

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
        }
        barrier();

        // S = Q K^T for the subgroup's CM rows: K^T's column n is key row n of sK (column-major B).
        for (int n = 0; n < BC / CN; n++) {
            coopmat<float, gl_ScopeSubgroup, CM, CN, gl_MatrixUseAccumulator> acc =
                    coopmat<float, gl_ScopeSubgroup, CM, CN, gl_MatrixUseAccumulator>(0.0);
            for (int c = 0; c < HD / CK; c++) {
                coopmat<float16_t, gl_ScopeSubgroup, CK, CN, gl_MatrixUseB> kf;
                coopMatLoad(kf, sK, uint(n * CN * HDS + c * CK), uint(HDS), gl_CooperativeMatrixLayoutColumnMajor);
                acc = coopMatMulAdd(qf[c], kf, acc);
            }
            coopMatStore(acc, sS, uint(myRow0 * BCS + n * CN), uint(BCS), gl_CooperativeMatrixLayoutRowMajor);
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

        // The online-softmax update of each row (one lane per row): o = o * (alpha l / l_new) + (p / l_new) v.
        if (lane < CM) {
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
        for (int n = 0; n < HD / CN; n++) {
            coopmat<float, gl_ScopeSubgroup, CM, CN, gl_MatrixUseAccumulator> o;
            coopMatLoad(o, sO, uint(myRow0 * HDO + n * CN), uint(HDO), gl_CooperativeMatrixLayoutRowMajor);
            for (int c = 0; c < BC / CK; c++) {
                coopmat<float16_t, gl_ScopeSubgroup, CM, CK, gl_MatrixUseA> pf;
                coopmat<float16_t, gl_ScopeSubgroup, CK, CN, gl_MatrixUseB> vf;
                coopMatLoad(pf, sP, uint(myRow0 * BCP + c * CK), uint(BCP), gl_CooperativeMatrixLayoutRowMajor);
                coopMatLoad(vf, sV, uint(c * CK * HDS + n * CN), uint(HDS), gl_CooperativeMatrixLayoutRowMajor);
                o = coopMatMulAdd(pf, vf, o);
            }
            coopMatStore(o, sO, uint(myRow0 * HDO + n * CN), uint(HDO), gl_CooperativeMatrixLayoutRowMajor);
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
    if (lane < CM && statI < p.Sq && (p.flags & 1) != 0) {
        lse_data[outRows + uint(statI)] = l > 0.0 ? m + log(l) : NEG_INF;
    }
}
