// Decode for CPU devices: decode.comp's rows and splits (one workgroup per (key split, KV head, batch), rows
// r = g * Sq + i over the GQA group), but without shared memory. On a CPU driver (lavapipe) every read at an
// address that differs between lanes is a loop over the lanes, so staging keys and values in shared memory
// costs three such reads per element (the load, the store, the read back) where reading them from memory four
// at a time costs a quarter. So each thread walks its own keys of the split (keys j = first + t, first + t +
// TPR, ...), with its query row and its output row in registers (HD floats each: fine for a CPU's stack,
// too many registers for a GPU, which runs decode.comp), and writes its own normalised partial (o, lse): a
// row has splits * TPR partials, merged by merge.comp in order like decode.comp's splits.
//
// Defines: HD, BR rows (a power of two >= group * Sq), TPR threads per row, WG = BR * TPR, VEC4, the storage
// types. p.rowCount holds the split count (key ranges); partial s * TPR + t is thread t of split s.
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

// Elements d0 .. d0+3 of a row of n elements at base (zeros past n), four at a time or one at a time.
#if VEC4
#define ROW4(T, buf, b4, b2, base, d0, n) ((d0) < (n) ? LOAD4_TYPED(T, b4, b2, (base) + uint(d0)) : vec4(0.0))
#else
#define ROW1(T, buf, base, d, n) ((d) < (n) ? LOAD_TYPED(T, buf, (base) + uint(d)) : 0.0)
#define ROW4(T, buf, b4, b2, base, d0, n) vec4(ROW1(T, buf, base, (d0), n), ROW1(T, buf, base, (d0) + 1, n), \
    ROW1(T, buf, base, (d0) + 2, n), ROW1(T, buf, base, (d0) + 3, n))
#endif
// Key and value rows: codes (SERVING 4) decoded four at a time from their word, or one at a time, unscaled (the
// row's scale multiplies the dot product and the probability instead, once per key); else as q's.
#if SERVING == 4
#if VEC4
#define CODES4(T, buf8, buf, base, d0, n) ((d0) < (n) ? decodeWord(T, buf[((base) + uint(d0)) >> 2u]) : vec4(0.0))
#else
#define CODE1(T, buf8, buf, base, d, n) ((d) < (n) ? decodeCode(T, CODE_AT(buf8, buf, (base) + uint(d))) : 0.0)
#define CODES4(T, buf8, buf, base, d0, n) vec4(CODE1(T, buf8, buf, base, (d0), n), \
    CODE1(T, buf8, buf, base, (d0) + 1, n), CODE1(T, buf8, buf, base, (d0) + 2, n), \
    CODE1(T, buf8, buf, base, (d0) + 3, n))
#endif
#define KROW4(base, d0) CODES4(K_TYPE, k8, k_data, base, d0, p.D)
#define VROW4(base, d0) CODES4(V_TYPE, v8, v_data, base, d0, p.Dv)
#else
#define KROW4(base, d0) ROW4(K_TYPE, k_data, k4, k2, base, d0, p.D)
#define VROW4(base, d0) ROW4(V_TYPE, v_data, v4, v2, base, d0, p.Dv)
#define KSCALE(j) 1.0
#define VSCALE(j) 1.0
#endif

void main() {
    const int lid = int(gl_LocalInvocationID.x);
    const int r = lid / TPR;
    const int t = lid - r * TPR;
    const int split = int(gl_WorkGroupID.x);
    const int hkv = int(gl_WorkGroupID.y);
    const int b = int(gl_WorkGroupID.z);
    const int group = p.Hq / p.Hkv;
    const int rows = group * p.Sq;
    if (r >= rows) {
        return; // no barrier in this kernel: idle rows may leave
    }
    const int g = r / p.Sq;
    const int i = r - g * p.Sq;
    const int splits = p.rowCount;
#if SERVING
    seqKeys = key_lens[b];
#endif

    // The split boundaries of decode.comp (a function of Sk and the split count only), with BC = 64.
    const int chunk = ((SK + splits - 1) / splits + 63) / 64 * 64;
    const int s0 = split * chunk;
    const int s1 = min(SK, s0 + chunk); // exclusive
    const int jFirst = max(s0, firstKey(i));
    const int jLast = min(s1 - 1, lastKey(i));
    const float slope = p.alibi != 0 ? slopes[hkv * group + g] : 0.0;

    const int row = (b * p.Hq + hkv * group) * p.Sq + r;
    const uint qBase = uint(row) * uint(p.D);
    const uint kBase = uint((b * p.Hkv + hkv) * p.Sk) * uint(p.D);
    const uint vBase = uint((b * p.Hkv + hkv) * p.Sk) * uint(p.Dv);

    vec4 q[HD / 4];
    vec4 o[HD / 4];
    for (int c = 0; c < HD / 4; c++) {
        q[c] = ROW4(Q_TYPE, q_data, q4, q2, qBase, 4 * c, p.D);
        o[c] = vec4(0.0);
    }
    float m = NEG_INF;
    float l = 0.0;
    // Only the row's visible keys are visited, so a NaN or Inf in a value row it may not see never reaches o;
    // o stays normalised by the running sum, as in forward.comp (|o| <= max |v|).
    for (int j = jFirst + t; j <= jLast; j += TPR) {
        uint kRow = KADDR(j, 0);
        vec4 acc = vec4(0.0);
        for (int c = 0; c < HD / 4; c++) {
            acc += q[c] * KROW4(kRow, 4 * c);
        }
        float s = p.scale * (KSCALE(j) * (acc.x + acc.y + acc.z + acc.w));
        if (p.softcap > 0.0) {
            s = p.softcap * safeTanh(s / p.softcap);
        }
        s -= slope * abs(float(i + (SK - p.Sq) - j));
        if (s == NEG_INF) {
            continue; // as forward.comp: a key of score -inf adds nothing
        }
        float mNew = max(m, s);
        float kept = m == NEG_INF ? 0.0 : l * exp(m - mNew);
        float pj = exp(s - mNew);
        float lNew = kept + pj; // >= 1: the largest score so far contributes exp(0)
        float keep = kept / lNew;
        float w = pj / lNew;
        float wv = w * VSCALE(j);
        uint vRow = VADDR(j, 0);
        for (int c = 0; c < HD / 4; c++) {
            o[c] = o[c] * keep + wv * VROW4(vRow, 4 * c);
        }
        l = lNew;
        m = mNew;
    }

    const uint part = uint(row) * uint(splits * TPR) + uint(split * TPR + t);
    for (int c = 0; c < HD / 4; c++) {
        for (int e = 0; e < 4; e++) {
            if (4 * c + e < p.Dv) {
                o_part[part * uint(p.Dv) + uint(4 * c + e)] = o[c][e]; // 0 when the thread saw no key
            }
        }
    }
    lse_part[part] = l > 0.0 ? m + log(l) : NEG_INF;
}
