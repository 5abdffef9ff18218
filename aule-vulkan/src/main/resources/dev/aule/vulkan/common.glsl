// Shared by every aule kernel. The host prepends "#version 450" and defines, per variant:
//   HD    the head-dim bucket (>= D and Dv of the call): sizes shared arrays and per-thread accumulators
//   BR/BC query rows / keys per tile, TPR threads per row (or per key), WG = rows * TPR
//   *_TYPE storage type of a tensor: 0 F32, 1 F16, 2 BF16 (16-bit tensors are read as packed uint pairs,
//          so no 16-bit storage feature is needed); keys and values of a quantized cache (SERVING 4) also
//          3 INT8, 4 FP8 E4M3, 5 FP8 E5M2 codes (see "Quantized caches" below)

#ifndef SERVING
#define SERVING 0
#endif
#ifndef CODES8
#define CODES8 0
#endif
#if SERVING == 4 && CODES8
// The forward kernels then declare byte views of the code pools (KView8, VView8; see "Quantized caches" below).
// The extension must precede every declaration.
#extension GL_EXT_shader_8bit_storage : require
#endif

#define NEG_INF uintBitsToFloat(0xff800000u)
#define NC (HD / TPR) // columns of a head-dim row that one thread owns: c = t + TPR * u

#define LOAD_F32(buf, i) uintBitsToFloat(buf[i])
#define LOAD_F16(buf, i) unpackHalf2x16(buf[(i) >> 1u])[(i) & 1u]
#define LOAD_BF16(buf, i) uintBitsToFloat((buf[(i) >> 1u] >> (((i) & 1u) << 4u)) << 16u)
#define LOAD_TYPED(T, buf, i) ((T) == 0 ? LOAD_F32(buf, i) : (T) == 1 ? LOAD_F16(buf, i) : LOAD_BF16(buf, i))

// Elements i .. i+3 (i a multiple of 4) in one read: from a uvec4 view of an F32 tensor, or a uvec2 view of a
// 16-bit one (views are second declarations of the tensor's binding). A CPU driver moves 16 or 8 bytes per
// invocation instead of 4 or 2.
#define UNPACK_BF16X2(w) vec2(uintBitsToFloat((w) << 16u), uintBitsToFloat((w) & 0xffff0000u))
#define LOAD4_TYPED(T, buf4, buf2, i) ((T) == 0 ? uintBitsToFloat(buf4[(i) >> 2u]) \
    : (T) == 1 ? vec4(unpackHalf2x16(buf2[(i) >> 2u].x), unpackHalf2x16(buf2[(i) >> 2u].y)) \
    : vec4(UNPACK_BF16X2(buf2[(i) >> 2u].x), UNPACK_BF16X2(buf2[(i) >> 2u].y)))

// Geometry and options of one call; windows were clamped on the host so every sum below fits an int.
layout(push_constant) uniform Params {
    int B; int Hq; int Hkv; int Sq; int Sk; int D; int Dv;
    float scale; float softcap;
    int left;    // keys visible before the diagonal, -1 unbounded
    int right;   // keys visible after it (0 when causal), -1 unbounded
    int alibi;   // 1 when the slopes buffer holds one slope per query head
    int flags;   // bit 0: write lse
    int rowCount; // delta kernel: B * Hq * Sq
    int tileBase; // forward, dQ: query tiles before this dispatch's first; dK/dV: key blocks (a split grid)
    int kvBlock;     // paged serving: keys per block of the pools
    int tableStride; // paged serving: block-table entries per batch entry
    int numBlocks;   // quantized serving: blocks in each pool
} p;

// Serving variants of the forward kernels (SERVING 1: a cache with a key count per batch entry; 2: the same
// keys read through a block table; 3: through a cache row and a left pad per entry). p.Sk is then the caches'
// capacity (cached and indexed: the row stride of k and v) or the longest context (paged); each batch entry's own
// key count SK comes from binding 6, validated on the host to be in [0, p.Sk], so keys past it are never read. Paged: key j of entry b is slot j % kvBlock of block
// block_table[b * tableStride + j / kvBlock] (binding 7) of pools [numBlocks, Hkv, kvBlock, D]; every entry a
// context reaches was checked on the host to lie in [0, numBlocks). Kernels set seqKeys at the top of main,
// before any use of SK.
#if SERVING
int seqKeys;
#define SK seqKeys
#else
#define SK p.Sk
#endif
// The forward kernels declare key_lens (binding 6) and block_table (binding 7) under SERVING; these macros
// expand in their main, after the declarations.
#if SERVING == 2
#define PAGED_ROW(j) uint((block_table[b * p.tableStride + (j) / p.kvBlock] * p.Hkv + hkv) * p.kvBlock \
    + (j) % p.kvBlock)
// Element d of key / value row j of the workgroup's (b, hkv); kBase and vBase are the contiguous layout's.
#define KADDR(j, d) (PAGED_ROW(j) * uint(p.D) + uint(d))
#define VADDR(j, d) (PAGED_ROW(j) * uint(p.Dv) + uint(d))
#elif SERVING == 3
// Indexed (cache_batch_idx, cache_leftpad): entry b reads keys [pad, pad + SK) of cache row block_table[2b],
// pad = block_table[2b + 1]; the caches are [Bc, Hkv, p.Sk, D], rows and pads validated on the host.
#define INDEXED_ROW(j) uint((block_table[2 * b] * p.Hkv + hkv) * p.Sk + block_table[2 * b + 1] + (j))
#define KADDR(j, d) (INDEXED_ROW(j) * uint(p.D) + uint(d))
#define VADDR(j, d) (INDEXED_ROW(j) * uint(p.Dv) + uint(d))
#elif SERVING == 4
// Quantized (QuantizedKv): 8-bit codes in pools head-major [Hkv][numBlocks][kvBlock][D] (the keys reordered row by
// row on upload: QuantizedCalls.keyRows), read through the block
// table as in SERVING 2; binding 7 holds the table [B, tableStride], then the key scales [Hkv][numBlocks], then
// the value scales, as float bits (validated on the host: finite, >= 0). Sizes were checked against the codes'
// 2^31 elements on the host, so every index below fits an int.
#define QUANT_BLOCK(j) block_table[b * p.tableStride + (j) / p.kvBlock]
#define QUANT_ROW(j) uint((hkv * p.numBlocks + QUANT_BLOCK(j)) * p.kvBlock + (j) % p.kvBlock)
#define KADDR(j, d) (QUANT_ROW(j) * uint(p.D) + uint(d))
#define VADDR(j, d) (QUANT_ROW(j) * uint(p.Dv) + uint(d))
#define KSCALE(j) intBitsToFloat(block_table[p.B * p.tableStride + hkv * p.numBlocks + QUANT_BLOCK(j)])
#define VSCALE(j) intBitsToFloat(block_table[p.B * p.tableStride + (p.Hkv + hkv) * p.numBlocks + QUANT_BLOCK(j)])
#else
#define KADDR(j, d) (kBase + uint((j) * p.D + (d)))
#define VADDR(j, d) (vBase + uint((j) * p.Dv + (d)))
#endif

// Quantized caches. A stored value is decodeCode(code) * scale, in float as on the host (QuantizedKv.Format
// .decode): the kernels dequantize each code as they load it into registers or their tile, never into a copy of
// the cache. Decoding is exact bit arithmetic: an FP8 magnitude's exponent and fraction are shifted into
// binary32's and its exponent field rebiased (+120 E4M3, +112 E5M2); a subnormal code is its fraction times
// 2^-9 (E4M3) or 2^-16 (E5M2), so no denormal float is ever formed (devices may flush them). E4M3 0x7F and E5M2
// exponent 31 are NaN and the infinities, as on the host. Codes are bytes of the uint words of their binding
// (little-endian), or, with CODES8 (the device's storageBuffer8BitAccess), of a uint8_t view of it.
float decodeCode(int T, uint c) {
    if (T == 3) {
        return float(int(c << 24u) >> 24);
    }
    uint mag = c & 0x7Fu;
    float v;
    if (T == 4) {
        if (mag == 0x7Fu) {
            return uintBitsToFloat(0x7fc00000u);
        }
        v = mag < 8u ? float(mag) * (1.0 / 512.0) : uintBitsToFloat((mag << 20u) + (120u << 23u));
    } else {
        if (mag >= 0x7Cu) {
            v = mag == 0x7Cu ? uintBitsToFloat(0x7f800000u) : uintBitsToFloat(0x7fc00000u);
        } else {
            v = mag < 4u ? float(mag) * (1.0 / 65536.0) : uintBitsToFloat((mag << 21u) + (112u << 23u));
        }
    }
    return (c & 0x80u) != 0u ? -v : v;
}

// Four codes of one uint word, lowest byte first.
vec4 decodeWord(int T, uint w) {
    return vec4(decodeCode(T, w & 0xFFu), decodeCode(T, (w >> 8u) & 0xFFu), decodeCode(T, (w >> 16u) & 0xFFu),
        decodeCode(T, w >> 24u));
}

#if SERVING == 4
#if CODES8
#define CODE_AT(buf8, buf, i) uint(buf8[i])
#else
#define CODE_AT(buf8, buf, i) ((buf[(i) >> 2u] >> (((i) & 3u) << 3u)) & 0xFFu)
#endif
// Element d (d0 .. d0+3, d0 and the row a multiple of 4) of key / value row j, dequantized.
#define LOAD_K(j, d) (decodeCode(K_TYPE, CODE_AT(k8, k_data, KADDR(j, d))) * KSCALE(j))
#define LOAD_V(j, d) (decodeCode(V_TYPE, CODE_AT(v8, v_data, VADDR(j, d))) * VSCALE(j))
#define LOAD4_K(j, d) (decodeWord(K_TYPE, k_data[KADDR(j, d) >> 2u]) * KSCALE(j))
#define LOAD4_V(j, d) (decodeWord(V_TYPE, v_data[VADDR(j, d) >> 2u]) * VSCALE(j))
#else
#define LOAD_K(j, d) LOAD_TYPED(K_TYPE, k_data, KADDR(j, d))
#define LOAD_V(j, d) LOAD_TYPED(V_TYPE, v_data, VADDR(j, d))
#define LOAD4_K(j, d) LOAD4_TYPED(K_TYPE, k4, k2, KADDR(j, d))
#define LOAD4_V(j, d) LOAD4_TYPED(V_TYPE, v4, v2, VADDR(j, d))
#endif

int firstKey(int i) {
    return p.left < 0 ? 0 : clamp(i + (SK - p.Sq) - p.left, 0, SK);
}

int lastKey(int i) {
    return p.right < 0 ? SK - 1 : clamp(i + (SK - p.Sq) + p.right, -1, SK - 1);
}

// tanh accurate to a few float ulps everywhere: a short series near 0 (where (e-1)/(e+1) cancels),
// and finite for large arguments (tanh(15) rounds to 1 in float).
float safeTanh(float x) {
    float a = abs(x);
    if (a < 0.125) {
        float x2 = x * x;
        return x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0 + x2 * (62.0 / 2835.0)))));
    }
    float e = exp(2.0 * min(a, 15.0));
    return sign(x) * ((e - 1.0) / (e + 1.0));
}

#ifdef MASKS
// The masked kernels (Kernel.*_MASKED, MASKS defined) read what DeviceMasks writes, at bindings 6 .. 8 in the
// forwards, after their own bindings in the backward kernels (OWN_MASK_BINDINGS).
// Layout written by DeviceMasks (its constants mirror these). Bits: bit j & 31 of word
// (b * bitsB + h * bitsH + i * wordsPerRow + j / 32), 1 = visible. Bias: F32 at b * biasB + h * biasH + i * Sk + j.
// Meta: a header, then one code per (b, h, query tile of BR rows, key tile of BC keys).
#ifndef OWN_MASK_BINDINGS // the backward kernels, whose 6 .. 8 are taken, declare these three after their own
layout(std430, binding = 6) readonly buffer MaskBits { uint mask_bits[]; };
layout(std430, binding = 7) readonly buffer BiasBuf { float bias_data[]; };
layout(std430, binding = 8) readonly buffer MaskMeta { int meta[]; };
#endif // OWN_MASK_BINDINGS
#define META_HAS_BITS 0
#define META_BITS_B 1
#define META_BITS_H 2
#define META_WORDS_PER_ROW 3
#define META_HAS_BIAS 4
#define META_BIAS_B 5
#define META_BIAS_H 6
#define META_TILES_B 7
#define META_TILES_H 8
#define META_KEY_TILES 9
#define META_HEADER 16
#define TILE_EMPTY 0
#define TILE_PARTIAL 1
#define TILE_FULL 2

uint maskBitsRow(int b, int h, int i) {
    return uint(b * meta[META_BITS_B] + h * meta[META_BITS_H] + i * meta[META_WORDS_PER_ROW]);
}

uint maskBiasRow(int b, int h, int i) {
    return uint(b * meta[META_BIAS_B] + h * meta[META_BIAS_H]) + uint(i) * uint(p.Sk);
}

// Index in meta of the code of key tile 0 of query tile rt (row0 / BR: split grids start at p.tileBase) of
// (b, h); key tile kt is kt further.
int maskTileRow(int b, int h, int rt) {
    return META_HEADER + b * meta[META_TILES_B] + h * meta[META_TILES_H] + rt * meta[META_KEY_TILES];
}

bool maskBit(uint bitsRow, int j) {
    return ((mask_bits[bitsRow + uint(j >> 5)] >> uint(j & 31)) & 1u) != 0u;
}

// A -inf bias hides the key whatever the score (NaN + -inf is not computed).
float addBias(float s, uint biasRow, int j) {
    float add = bias_data[biasRow + uint(j)];
    return add == NEG_INF ? NEG_INF : s + add;
}

// Whether the masks hide key j from the row of bitsRow / biasRow: its bit is 0 (read only where readBits: a
// tile the table calls FULL has every bit set) or its bias is -inf. The masked backward skips such pairs
// (P = 0, dS = 0) and adds nothing of them, so a NaN behind a mask never reaches a gradient.
bool maskHides(bool readBits, bool hasBias, uint bitsRow, uint biasRow, int j) {
    return (readBits && !maskBit(bitsRow, j)) || (hasBias && bias_data[biasRow + uint(j)] == NEG_INF);
}
#endif // MASKS
