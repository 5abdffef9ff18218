package dev.aule.models;

import dev.aule.models.onnx.OnnxFormatException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A tokenizer of another model, and an ONNX file that lacks one weight: errors that name the files and the tensor. */
class BadModelFilesTest {
    @Test
    void vocabularySizeIsReadFromTheTokenizerFile() throws IOException {
        assertEquals(30522, TokenizerVocab.size(MiniLm.file(MiniLm.TOKENIZER)));
    }

    @Test
    void tokenizerOfASmallerVocabularyIsRejectedNamingBothFiles(@TempDir Path dir) throws IOException {
        Path other = writeWordPieceTokenizer(dir.resolve("tokenizer.json"), 8000);
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> SentenceEmbedder.of(MiniLm.encoder(), other, 512));
        assertNamesBoth(e, other, "8000 tokens");
    }

    @Test
    void tokenizerOfALargerVocabularyIsRejectedNamingBothFiles(@TempDir Path dir) throws IOException {
        Path other = writeWordPieceTokenizer(dir.resolve("tokenizer.json"), 32000);
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> SentenceEmbedder.of(MiniLm.encoder(), other, 512));
        assertNamesBoth(e, other, "32000 tokens");
    }

    @Test
    void tokenizerOfTheSameVocabularyIsAccepted(@TempDir Path dir) throws IOException {
        // The synthetic file is a working tokenizer: of the right size it loads and encodes.
        Path same = writeWordPieceTokenizer(dir.resolve("tokenizer.json"), 30522);
        try (SentenceEmbedder embedder = SentenceEmbedder.of(MiniLm.encoder(), same, 512)) {
            assertEquals(3, embedder.tokenIds("a").length);
        }
    }

    @Test
    void onnxFileMissingOneWeightNamesTheTensor(@TempDir Path dir) throws IOException {
        String missing = "encoder.layer.3.attention.output.LayerNorm.bias";
        byte[] full = Files.readAllBytes(MiniLm.file(MiniLm.ONNX));
        Path cut = dir.resolve("missing-one.onnx");
        Files.write(cut, withoutInitializer(full, missing));
        assertTrue(Files.size(cut) < full.length, "one initializer removed");
        OnnxFormatException e = assertThrows(OnnxFormatException.class, () -> BertEncoder.load(cut));
        assertTrue(
                e.getMessage().startsWith(cut + ": ") && e.getMessage().contains("'" + missing + "'"), e.getMessage());
    }

    private static void assertNamesBoth(IllegalArgumentException e, Path tokenizer, String size) {
        String m = e.getMessage();
        assertTrue(
                m.contains(tokenizer.toString())
                        && m.contains(MiniLm.file(MiniLm.ONNX).toString())
                        && m.contains(size)
                        && m.contains("30522 rows"),
                m);
    }

    /** A BERT WordPiece tokenizer.json whose vocabulary has {@code size} entries: specials, a to z, fillers. */
    private static Path writeWordPieceTokenizer(Path file, int size) throws IOException {
        String vocab = IntStream.range(0, size)
                .mapToObj(i -> "\"" + token(i) + "\": " + i)
                .collect(Collectors.joining(", "));
        String json = """
                {"version": "1.0", "truncation": null, "padding": null,
                 "added_tokens": [{"id": 0, "content": "[PAD]", "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": true}],
                 "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                   "strip_accents": null, "lowercase": true},
                 "pre_tokenizer": {"type": "BertPreTokenizer"},
                 "post_processor": {"type": "TemplateProcessing",
                   "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                   "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                   "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                     "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
                 "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
                 "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                   "max_input_chars_per_word": 100, "vocab": {%s}}}
                """.formatted(vocab);
        Files.writeString(file, json, StandardCharsets.UTF_8);
        return file;
    }

    private static String token(int i) {
        return switch (i) {
            case 0 -> "[PAD]";
            case 1 -> "[UNK]";
            case 2 -> "[CLS]";
            case 3 -> "[SEP]";
            default -> i < 30 ? String.valueOf((char) ('a' + i - 4)) : "w" + i;
        };
    }

    /*
     * The ONNX file with one initializer dropped, at the protobuf wire level: ModelProto field 7 is the GraphProto,
     * whose field 5 entries are the initializers (TensorProto, name in field 8). Everything else is copied as is.
     */
    private static byte[] withoutInitializer(byte[] model, String name) {
        return filter(model, 7, graph -> filterOut(graph, 5, tensor -> name.equals(tensorName(tensor))));
    }

    private static byte[] filter(byte[] message, int field, java.util.function.UnaryOperator<byte[]> edit) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Wire w = new Wire(message);
        while (w.more()) {
            int start = w.at;
            long key = w.varint();
            if ((key >>> 3) == field && (key & 7) == 2) {
                byte[] body = w.bytes();
                byte[] edited = edit.apply(body);
                writeVarint(out, key);
                writeVarint(out, edited.length);
                out.writeBytes(edited);
            } else {
                w.skip((int) (key & 7));
                out.write(message, start, w.at - start);
            }
        }
        return out.toByteArray();
    }

    private static byte[] filterOut(byte[] message, int field, java.util.function.Predicate<byte[]> drop) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Wire w = new Wire(message);
        while (w.more()) {
            int start = w.at;
            long key = w.varint();
            if ((key >>> 3) == field && (key & 7) == 2) {
                byte[] body = w.bytes();
                if (drop.test(body)) {
                    continue;
                }
            } else {
                w.skip((int) (key & 7));
            }
            out.write(message, start, w.at - start);
        }
        return out.toByteArray();
    }

    private static String tensorName(byte[] tensor) {
        Wire w = new Wire(tensor);
        while (w.more()) {
            long key = w.varint();
            if ((key >>> 3) == 8 && (key & 7) == 2) {
                return new String(w.bytes(), StandardCharsets.UTF_8);
            }
            w.skip((int) (key & 7));
        }
        return null;
    }

    private static void writeVarint(ByteArrayOutputStream out, long v) {
        while ((v & ~0x7FL) != 0) {
            out.write((int) ((v & 0x7F) | 0x80));
            v >>>= 7;
        }
        out.write((int) v);
    }

    private static final class Wire {
        final byte[] b;
        int at;

        Wire(byte[] b) {
            this.b = b;
        }

        boolean more() {
            return at < b.length;
        }

        long varint() {
            long v = 0;
            for (int shift = 0; ; shift += 7) {
                int x = b[at++] & 0xFF;
                v |= (long) (x & 0x7F) << shift;
                if (x < 0x80) {
                    return v;
                }
            }
        }

        byte[] bytes() {
            int n = (int) varint();
            byte[] out = java.util.Arrays.copyOfRange(b, at, at + n);
            at += n;
            return out;
        }

        void skip(int wireType) {
            switch (wireType) {
                case 0 -> varint();
                case 1 -> at += 8;
                case 2 -> {
                    int n = (int) varint(); // before reading at: at += varint() would use the old position
                    at += n;
                }
                case 5 -> at += 4;
                default -> throw new IllegalStateException("wire type " + wireType);
            }
        }
    }
}
