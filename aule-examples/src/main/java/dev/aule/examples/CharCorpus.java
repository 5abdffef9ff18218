package dev.aule.examples;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.SplittableRandom;
import java.util.TreeSet;

/**
 * A character-level corpus: the distinct characters of the text are the vocabulary, and each
 * document is split into a training head and a validation tail, so that validation text is text
 * the model never trains on, from every document.
 *
 * @param vocabulary the characters, token {@code t} is {@code vocabulary.charAt(t)}
 * @param train the training tokens
 * @param validation the validation tokens
 */
record CharCorpus(String vocabulary, int[] train, int[] validation) {
    /** The bundled real English text: three licence documents, verbatim (see corpus/README.md). */
    static final List<String> BUNDLED = List.of("gpl-3.0.txt", "gpl-2.0.txt", "apache-2.0.txt");

    /** The bundled documents with the last {@code validationShare} of each held out. */
    static CharCorpus bundled(double validationShare) {
        return of(BUNDLED.stream().map(CharCorpus::resource).toList(), validationShare);
    }

    /** Documents split into train and validation; runs of spaces collapse to one (licence texts indent a lot). */
    static CharCorpus of(List<String> documents, double validationShare) {
        if (!(validationShare > 0 && validationShare < 1)) {
            throw new IllegalArgumentException("validationShare: must be in (0, 1), got " + validationShare);
        }
        List<String> texts =
                documents.stream().map(t -> t.replaceAll("[ \\t]+", " ")).toList();
        TreeSet<Character> chars = new TreeSet<>();
        texts.forEach(t -> t.chars().forEach(c -> chars.add((char) c)));
        StringBuilder vocabulary = new StringBuilder();
        chars.forEach(vocabulary::append);
        String vocab = vocabulary.toString();
        StringBuilder train = new StringBuilder();
        StringBuilder validation = new StringBuilder();
        for (String t : texts) {
            int cut = (int) Math.round(t.length() * (1 - validationShare));
            train.append(t, 0, cut);
            validation.append(t, cut, t.length());
        }
        return new CharCorpus(vocab, encode(vocab, train), encode(vocab, validation));
    }

    private static int[] encode(String vocabulary, CharSequence text) {
        int[] tokens = new int[text.length()];
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = vocabulary.indexOf(text.charAt(i));
        }
        return tokens;
    }

    private static String resource(String name) {
        try (InputStream in = CharCorpus.class.getResourceAsStream("corpus/" + name)) {
            if (in == null) {
                throw new IllegalStateException("missing resource dev/aule/examples/corpus/" + name);
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** {@return the size of the vocabulary} */
    int vocab() {
        return vocabulary.length();
    }

    /** {@code tokens} decoded back to text. */
    String decode(int[] tokens, int from, int count) {
        StringBuilder sb = new StringBuilder(count);
        for (int i = from; i < from + count; i++) {
            sb.append(vocabulary.charAt(tokens[i]));
        }
        return sb.toString();
    }

    /**
     * {@code batch} windows of {@code seq + 1} tokens from {@code source} at random offsets: {@code inputs}
     * gets the first {@code seq} of each, {@code targets} the next token at each position.
     */
    static void sample(int[] source, int batch, int seq, SplittableRandom rnd, int[] inputs, int[] targets) {
        for (int b = 0; b < batch; b++) {
            int at = rnd.nextInt(source.length - seq);
            System.arraycopy(source, at, inputs, b * seq, seq);
            System.arraycopy(source, at + 1, targets, b * seq, seq);
        }
    }
}
