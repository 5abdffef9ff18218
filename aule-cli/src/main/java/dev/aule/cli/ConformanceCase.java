package dev.aule.cli;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionShape;

import java.util.ArrayList;
import java.util.List;

/**
 * One conformance check: a geometry, a storage type, a memory layout and options. The {@code with}
 * methods make variants so the case list reads as a table.
 *
 * @param name short, unique, stable: people quote it in bug reports
 */
record ConformanceCase(String name, AttentionShape shape, DType dtype, TensorLayout layout, AttentionOptions options) {

    /** F32, BHSD on the heap, default options; {@code Dv = D}. */
    static ConformanceCase of(
            String name, int batch, int queryHeads, int kvHeads, int queryLen, int keyLen, int headDim) {
        return new ConformanceCase(
                name,
                new AttentionShape(batch, queryHeads, kvHeads, queryLen, keyLen, headDim, headDim),
                DType.F32,
                TensorLayout.BHSD,
                AttentionOptions.defaults());
    }

    ConformanceCase valueDim(int dv) {
        AttentionShape s = shape;
        return new ConformanceCase(
                name,
                new AttentionShape(s.batch(), s.queryHeads(), s.kvHeads(), s.queryLen(), s.keyLen(), s.headDim(), dv),
                dtype,
                layout,
                options);
    }

    ConformanceCase dtype(DType type) {
        return new ConformanceCase(name, shape, type, layout, options);
    }

    ConformanceCase layout(TensorLayout where) {
        return new ConformanceCase(name, shape, dtype, where, options);
    }

    ConformanceCase options(AttentionOptions.Builder builder) {
        return new ConformanceCase(name, shape, dtype, layout, builder.build());
    }

    double tolerance() {
        return Accuracy.tolerance(dtype);
    }

    /** {@code B,Hq,Hkv,Sq,Sk,D,Dv}. */
    String shapeText() {
        AttentionShape s = shape;
        return s.batch() + "," + s.queryHeads() + "," + s.kvHeads() + "," + s.queryLen() + "," + s.keyLen() + ","
                + s.headDim() + "," + s.valueDim();
    }

    /** The options that differ from the defaults, tersely; "-" for none. */
    String optionsText() {
        List<String> parts = new ArrayList<>();
        if (options.causal()) {
            parts.add("causal");
        }
        if (options.windowLeft() >= 0 || options.windowRight() >= 0) {
            parts.add("window(" + options.windowLeft() + "," + options.windowRight() + ")");
        }
        options.explicitScale().ifPresent(s -> parts.add("scale " + compact(s)));
        if (options.softcap() > 0) {
            parts.add("softcap " + compact(options.softcap()));
        }
        if (options.hasAlibi()) {
            parts.add("alibi");
        }
        return parts.isEmpty() ? "-" : String.join(" ", parts);
    }

    private static String compact(float value) {
        return Float.toString(value).replaceAll("\\.0$", "");
    }
}
