package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.AttentionShape;
import dev.aule.spi.Capabilities;
import dev.aule.spi.QuantizedKv;
import dev.aule.spi.QuantizedShapes;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Attention on a quantized cache ({@link VulkanBackend#forwardQuantized}): the serving forward kernels in their
 * quantized variant (SERVING 4 of common.glsl), which read the 8-bit codes where they were uploaded and dequantize
 * each as it is loaded ({@code decode(code) * scale}, as on the host), so neither the host nor the device holds a
 * widened copy of the cache.
 *
 * <p>Order: {@link QuantizedShapes#quantized} validates the call and copies the tables, lengths and scales; the
 * device's limits are checked; only then is anything allocated, and the kernels read those copies. The value codes
 * are uploaded as they are (the cache's memory, read in place on the host too) and the key codes row by row ({@link
 * #keyRows}), into buffers rounded up to whole words with zeros.
 */
final class QuantizedCalls {
    private QuantizedCalls() {}

    /**
     * The system property choosing how the kernels read codes: {@code bytes} (the default) through 8-bit views
     * where the device was opened with {@code storageBuffer8BitAccess}, {@code words} always by unpacking the
     * bytes of uint words (what a device without it runs).
     */
    static final String CODES_PROPERTY = "aule.vulkan.codes";

    static void forward(
            VulkanDevice device,
            Capabilities caps,
            Tensor q,
            QuantizedKv cache,
            Tensor out,
            Tensor lse,
            AttentionOptions options) {
        QuantizedShapes.QuantizedCall call = QuantizedShapes.quantized(q, cache, out, lse, options, caps);
        AttentionShape shape = call.shape();
        checkLimits(device, shape, q.dtype(), cache);
        AttentionKernels.InputTypes types =
                AttentionKernels.InputTypes.quantized(q.dtype(), cache.format(), byteViews(device));
        Submission.run(device, (scope, s) -> {
            DeviceBuffer qb = HostCopy.upload(device, scope, s, q);
            DeviceBuffer kb = codes(device, scope, s, keyRows(cache));
            DeviceBuffer vb = codes(device, scope, s, cache.valueCodes());
            ServingKeys keys = ServingKeys.quantized(
                    device,
                    scope,
                    s,
                    call.blockTables(),
                    call.contextLens(),
                    cache.blockSize(),
                    cache.numBlocks(),
                    call.keyScales(),
                    call.valueScales());
            ServingCalls.runHost(device, scope, s, shape, options, types, qb, kb, vb, keys, out, lse);
        });
    }

    /**
     * Whether this call reads codes through 8-bit views: the device has them and {@code -Daule.vulkan.codes} does
     * not say {@code words}.
     *
     * @throws IllegalArgumentException when the property is neither {@code bytes} nor {@code words}
     */
    static boolean byteViews(VulkanDevice device) {
        String mode = System.getProperty(CODES_PROPERTY, "bytes").strip().toLowerCase(java.util.Locale.ROOT);
        if (!mode.equals("bytes") && !mode.equals("words")) {
            throw new IllegalArgumentException("-D" + CODES_PROPERTY + "=" + mode + ": must be bytes or words");
        }
        return mode.equals("bytes") && device.storage8Bit();
    }

    /**
     * The limits of a quantized call: q and out as a forward's (its key extent counted as 1, since keys live in
     * the pools), each code pool and the table with its scales as one buffer of its own size.
     *
     * @throws IllegalArgumentException naming the pool and the limit
     */
    private static void checkLimits(VulkanDevice device, AttentionShape shape, DType q, QuantizedKv cache) {
        AttentionShape rows = new AttentionShape(
                shape.batch(),
                shape.queryHeads(),
                shape.kvHeads(),
                shape.queryLen(),
                1,
                shape.headDim(),
                shape.valueDim());
        AttentionKernels.checkLimits(
                device.info(), rows, false, new AttentionKernels.CallTypes(q, DType.F32, DType.F32, DType.F32, null));
        checkBytes(device, "keyCodes", words(cache.keyCodes().length) * Integer.BYTES);
        checkBytes(device, "valueCodes", words(cache.valueCodes().length) * Integer.BYTES);
    }

    private static void checkBytes(VulkanDevice device, String name, long bytes) {
        if (bytes > device.info().maxStorageBufferRange()) {
            throw new IllegalArgumentException(name + ": " + (bytes >> 20) + " MiB of codes, over the device's"
                    + " maxStorageBufferRange of " + (device.info().maxStorageBufferRange() >> 20) + " MiB on "
                    + device.info().name() + "; use smaller pools");
        }
    }

    private static long words(int bytes) {
        return Math.max(1, (bytes + 3L) / 4);
    }

    /**
     * The key codes row by row, {@code [Hkv][numBlocks][blockSize][D]}, as the kernels read keys (a row's elements in
     * the words of one load): the host's layout keeps a block's keys element by element ({@link QuantizedKv#keyCode},
     * for its vector kernels), so the upload reorders them, one pass over the pool beside the copy it makes anyway.
     */
    static byte[] keyRows(QuantizedKv cache) {
        byte[] codes = cache.keyCodes();
        byte[] rows = new byte[codes.length];
        int blockSize = cache.blockSize();
        int d = cache.headDim();
        int blocks = codes.length / Math.max(1, blockSize * d); // validated: Hkv * numBlocks of them
        for (int block = 0; block < blocks; block++) {
            int base = block * blockSize * d;
            for (int x = 0; x < d; x++) {
                for (int slot = 0, from = base + x * blockSize, to = base + x; slot < blockSize; slot++, to += d) {
                    rows[to] = codes[from + slot];
                }
            }
        }
        return rows;
    }

    /** {@code codes} in a buffer of {@code scope} of whole words, the bytes past them zero. */
    private static DeviceBuffer codes(VulkanDevice device, Scope scope, Submission s, byte[] codes) {
        long size = words(codes.length) * Integer.BYTES;
        DeviceBuffer buffer = scope.add(DeviceBuffer.allocate(device, size));
        s.write(buffer, memory -> {
            MemorySegment.copy(codes, 0, memory, ValueLayout.JAVA_BYTE, 0, codes.length);
            memory.asSlice(codes.length, size - codes.length).fill((byte) 0);
        });
        return buffer;
    }
}
