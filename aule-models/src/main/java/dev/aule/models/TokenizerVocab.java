package dev.aule.models;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The vocabulary size of a Hugging Face {@code tokenizer.json}: one more than the largest id in {@code model.vocab} (an
 * object of token to id for WordPiece and BPE, an array of pieces for Unigram) and in {@code added_tokens}. The file
 * is scanned, not built into a tree: the reader below knows just enough JSON to skip values it does not need.
 */
final class TokenizerVocab {
    private final String json;
    private int at;
    private long maxId = -1;

    private TokenizerVocab(String json) {
        this.json = json;
    }

    /**
     * {@return the vocabulary size, or -1 when the file has neither a model vocabulary nor added tokens}
     *
     * @throws IOException when the file cannot be read
     * @throws IllegalArgumentException when it is not JSON
     */
    static long size(Path tokenizerJson) throws IOException {
        TokenizerVocab v = new TokenizerVocab(Files.readString(tokenizerJson, StandardCharsets.UTF_8));
        v.topLevel();
        return v.maxId < 0 ? -1 : v.maxId + 1;
    }

    private void topLevel() {
        expect('{');
        while (!next('}')) {
            String key = string();
            expect(':');
            if (key.equals("model") && peek() == '{') {
                modelObject();
            } else if (key.equals("added_tokens") && peek() == '[') {
                addedTokens();
            } else {
                skipValue();
            }
            next(',');
        }
    }

    private void modelObject() {
        expect('{');
        while (!next('}')) {
            String key = string();
            expect(':');
            if (key.equals("vocab") && peek() == '{') {
                expect('{');
                while (!next('}')) {
                    string();
                    expect(':');
                    maxId = Math.max(maxId, number());
                    next(',');
                }
            } else if (key.equals("vocab") && peek() == '[') {
                expect('[');
                long count = 0;
                while (!next(']')) {
                    skipValue();
                    count++;
                    next(',');
                }
                maxId = Math.max(maxId, count - 1);
            } else {
                skipValue();
            }
            next(',');
        }
    }

    private void addedTokens() {
        expect('[');
        while (!next(']')) {
            expect('{');
            while (!next('}')) {
                String key = string();
                expect(':');
                if (key.equals("id") && isNumberStart(peek())) {
                    maxId = Math.max(maxId, number());
                } else {
                    skipValue();
                }
                next(',');
            }
            next(',');
        }
    }

    private void skipValue() {
        char c = peek();
        if (c == '{' || c == '[') {
            char close = c == '{' ? '}' : ']';
            at++;
            while (!next(close)) {
                if (c == '{') {
                    string();
                    expect(':');
                }
                skipValue();
                next(',');
            }
        } else if (c == '"') {
            string();
        } else {
            while (at < json.length() && ",}] \t\r\n".indexOf(json.charAt(at)) < 0) {
                at++;
            }
        }
    }

    private String string() {
        expect('"');
        StringBuilder s = new StringBuilder();
        while (true) {
            if (at >= json.length()) {
                throw bad("unterminated string");
            }
            char c = json.charAt(at++);
            if (c == '"') {
                return s.toString();
            }
            if (c == '\\') {
                if (at >= json.length()) {
                    throw bad("unterminated string");
                }
                char e = json.charAt(at++);
                if (e == 'u') {
                    at += 4; // the key's exact spelling never matters here beyond ASCII names
                    s.append('?');
                } else {
                    s.append(e);
                }
            } else {
                s.append(c);
            }
        }
    }

    private long number() {
        skipSpace();
        int start = at;
        while (at < json.length() && (Character.isDigit(json.charAt(at)) || json.charAt(at) == '-')) {
            at++;
        }
        if (start == at || at < json.length() && ".eE".indexOf(json.charAt(at)) >= 0) {
            throw bad("expected an integer id");
        }
        return Long.parseLong(json, start, at, 10);
    }

    private static boolean isNumberStart(char c) {
        return c == '-' || Character.isDigit(c);
    }

    private char peek() {
        skipSpace();
        if (at >= json.length()) {
            throw bad("unexpected end");
        }
        return json.charAt(at);
    }

    private boolean next(char c) {
        skipSpace();
        if (at < json.length() && json.charAt(at) == c) {
            at++;
            return true;
        }
        return false;
    }

    private void expect(char c) {
        if (!next(c)) {
            throw bad("expected '" + c + "'");
        }
    }

    private void skipSpace() {
        while (at < json.length() && Character.isWhitespace(json.charAt(at))) {
            at++;
        }
    }

    private IllegalArgumentException bad(String what) {
        return new IllegalArgumentException("not JSON: " + what + " at character " + at);
    }
}
