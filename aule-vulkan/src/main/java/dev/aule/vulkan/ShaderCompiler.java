package dev.aule.vulkan;

import org.lwjgl.system.MemoryUtil;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Map;

import static org.lwjgl.util.shaderc.Shaderc.*;

/**
 * GLSL to SPIR-V with shaderc, at run time: the shaders ship as text resources, and each variant's
 * #defines are passed to the compiler. {@code #include "common.glsl"} is resolved here, from the
 * same resource folder, so shaderc needs no include callback.
 */
final class ShaderCompiler implements AutoCloseable {
    private static final String INCLUDE = "#include \"common.glsl\"";

    private final long compiler;

    ShaderCompiler() {
        compiler = shaderc_compiler_initialize();
        if (compiler == 0) {
            throw new VulkanException("shaderc: could not initialise the GLSL compiler");
        }
    }

    /** The GLSL text of a kernel, common header included. */
    static String source(Kernel kernel) {
        String body = resource(kernel.resource);
        return body.replace(INCLUDE, resource("common.glsl"));
    }

    /**
     * Compiles {@code glsl} (without its {@code #version} line) for Vulkan 1.1 with the defines.
     *
     * @return the SPIR-V words, in a direct buffer the caller frees with {@link MemoryUtil#memFree}
     * @throws VulkanException with the compiler's messages when the source does not compile
     */
    synchronized ByteBuffer compile(String name, String glsl, Map<String, Integer> defines) {
        long options = shaderc_compile_options_initialize();
        long result = 0;
        try {
            shaderc_compile_options_set_target_env(options, shaderc_target_env_vulkan, shaderc_env_version_vulkan_1_1);
            shaderc_compile_options_set_optimization_level(options, shaderc_optimization_level_performance);
            for (Map.Entry<String, Integer> e : defines.entrySet()) {
                shaderc_compile_options_add_macro_definition(options, e.getKey(), Integer.toString(e.getValue()));
            }
            result = shaderc_compile_into_spv(
                    compiler, "#version 450\n" + glsl, shaderc_glsl_compute_shader, name, "main", options);
            if (result == 0) {
                throw new VulkanException("shaderc: out of memory compiling " + name);
            }
            if (shaderc_result_get_compilation_status(result) != shaderc_compilation_status_success) {
                throw new VulkanException("shader " + name + " " + defines + " does not compile: "
                        + shaderc_result_get_error_message(result).strip());
            }
            ByteBuffer spirv = shaderc_result_get_bytes(result);
            ByteBuffer copy = MemoryUtil.memAlloc(spirv.remaining());
            copy.put(spirv).flip();
            return copy;
        } finally {
            if (result != 0) {
                shaderc_result_release(result);
            }
            shaderc_compile_options_release(options);
        }
    }

    private static String resource(String name) {
        try (InputStream in = ShaderCompiler.class.getResourceAsStream(name)) {
            if (in == null) {
                throw new VulkanException("shader resource dev/aule/vulkan/" + name + " is missing from the jar");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("reading shader resource " + name, e);
        }
    }

    @Override
    public synchronized void close() {
        shaderc_compiler_release(compiler);
    }
}
