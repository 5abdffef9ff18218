package dev.aule.vulkan;

import org.lwjgl.system.MemoryStack;
import org.lwjgl.system.MemoryUtil;
import org.lwjgl.vulkan.VK10;
import org.lwjgl.vulkan.VkComputePipelineCreateInfo;
import org.lwjgl.vulkan.VkDescriptorSetLayoutBinding;
import org.lwjgl.vulkan.VkDescriptorSetLayoutCreateInfo;
import org.lwjgl.vulkan.VkPipelineCacheCreateInfo;
import org.lwjgl.vulkan.VkPipelineLayoutCreateInfo;
import org.lwjgl.vulkan.VkPushConstantRange;
import org.lwjgl.vulkan.VkShaderModuleCreateInfo;

import java.nio.ByteBuffer;
import java.nio.LongBuffer;
import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import static org.lwjgl.system.MemoryStack.stackPush;
import static org.lwjgl.vulkan.VK10.*;

/**
 * Compute pipelines of one device, one per {@link Variant}, built on first use: GLSL compiled by
 * shaderc, then a pipeline through a {@code VkPipelineCache} that {@link PipelineCacheFile} keeps on
 * disk between runs. A variant that fails to compile is not cached, and the exception reaches the
 * caller; other variants are unaffected.
 */
final class Pipelines implements AutoCloseable {
    /** Bytes of push constants: {@link Params}. */
    static final int PUSH_BYTES = Params.INTS * Integer.BYTES;
    /**
     * A variant's define that, when above 0, is the subgroup size its pipeline requires
     * ({@code VkPipelineShaderStageRequiredSubgroupSizeCreateInfo}, subgroup size control); shaderc sees it too.
     */
    static final String REQUIRED_SUBGROUP_SIZE = "REQUIRED_SUBGROUP_SIZE";

    private final VulkanDevice device;
    private final Map<Kernel, long[]> layouts = new EnumMap<>(Kernel.class); // {descriptor set layout, pipeline layout}
    private final Map<Variant, Long> pipelines = new ConcurrentHashMap<>();
    private final PipelineCacheFile cacheFile;
    private final long cache;

    Pipelines(VulkanDevice device) {
        this.device = device;
        this.cacheFile = PipelineCacheFile.forDevice(device.info());
        this.cache = createCache(cacheFile.read());
        for (Kernel k : Kernel.values()) {
            layouts.put(k, createLayouts(k.bindings));
        }
    }

    long descriptorSetLayout(Kernel kernel) {
        return layouts.get(kernel)[0];
    }

    long pipelineLayout(Kernel kernel) {
        return layouts.get(kernel)[1];
    }

    /** The pipeline of {@code variant}, compiling it on first use. */
    long pipeline(Variant variant) {
        Long existing = pipelines.get(variant);
        if (existing != null) {
            return existing;
        }
        return pipelines.computeIfAbsent(
                variant, v -> build(v.kernel(), v.kernel().resource, ShaderCompiler.source(v.kernel()), v.defines()));
    }

    /**
     * Compiles {@code glsl} into a pipeline with {@code kernel}'s layout and returns it, uncached; the
     * caller destroys it with {@link #destroy}. Used to check that a bad source fails cleanly.
     */
    long build(Kernel kernel, String name, String glsl, Map<String, Integer> defines) {
        ByteBuffer spirv = device.compiler().compile(name, glsl, defines);
        long module = VK_NULL_HANDLE;
        try (MemoryStack stack = stackPush()) {
            LongBuffer handle = stack.mallocLong(1);
            VkShaderModuleCreateInfo moduleInfo =
                    VkShaderModuleCreateInfo.calloc(stack).sType$Default().pCode(spirv);
            VulkanDevice.check(
                    vkCreateShaderModule(device.handle(), moduleInfo, null, handle), "vkCreateShaderModule " + name);
            module = handle.get(0);
            VkComputePipelineCreateInfo.Buffer create = VkComputePipelineCreateInfo.calloc(1, stack);
            int subgroup = defines.getOrDefault(REQUIRED_SUBGROUP_SIZE, 0);
            long required = subgroup <= 0
                    ? VK_NULL_HANDLE
                    : org.lwjgl.vulkan.VkPipelineShaderStageRequiredSubgroupSizeCreateInfo.calloc(stack)
                            .sType$Default()
                            .requiredSubgroupSize(subgroup)
                            .address();
            create.get(0)
                    .sType$Default()
                    .layout(pipelineLayout(kernel))
                    .stage(s -> s.sType$Default()
                            .pNext(required)
                            .stage(VK_SHADER_STAGE_COMPUTE_BIT)
                            .module(handle.get(0))
                            .pName(stack.UTF8("main")));
            VulkanDevice.check(
                    vkCreateComputePipelines(device.handle(), cache, create, null, handle),
                    "vkCreateComputePipelines " + name + " " + defines);
            return handle.get(0);
        } finally {
            if (module != VK_NULL_HANDLE) {
                vkDestroyShaderModule(device.handle(), module, null);
            }
            MemoryUtil.memFree(spirv);
        }
    }

    void destroy(long pipeline) {
        vkDestroyPipeline(device.handle(), pipeline, null);
    }

    private long createCache(byte[] initial) {
        try (MemoryStack stack = stackPush()) {
            LongBuffer handle = stack.mallocLong(1);
            if (initial.length > 0) {
                ByteBuffer data =
                        MemoryUtil.memAlloc(initial.length).put(initial).flip();
                try {
                    VkPipelineCacheCreateInfo info = VkPipelineCacheCreateInfo.calloc(stack)
                            .sType$Default()
                            .pInitialData(data);
                    if (vkCreatePipelineCache(device.handle(), info, null, handle) == VK_SUCCESS) {
                        return handle.get(0);
                    }
                } finally {
                    MemoryUtil.memFree(data);
                }
                // Drivers reject a cache of another version or device; a corrupt file must not matter either.
            }
            VkPipelineCacheCreateInfo empty =
                    VkPipelineCacheCreateInfo.calloc(stack).sType$Default();
            VulkanDevice.check(vkCreatePipelineCache(device.handle(), empty, null, handle), "vkCreatePipelineCache");
            return handle.get(0);
        }
    }

    /** Writes the pipeline cache to disk; failures are logged, never thrown. */
    void saveCache() {
        try (MemoryStack stack = stackPush()) {
            org.lwjgl.PointerBuffer size = stack.mallocPointer(1);
            if (vkGetPipelineCacheData(device.handle(), cache, size, null) != VK_SUCCESS || size.get(0) == 0) {
                return;
            }
            ByteBuffer data = MemoryUtil.memAlloc((int) size.get(0));
            try {
                if (vkGetPipelineCacheData(device.handle(), cache, size, data) == VK_SUCCESS) {
                    byte[] bytes = new byte[(int) size.get(0)];
                    data.get(0, bytes);
                    cacheFile.write(bytes);
                }
            } finally {
                MemoryUtil.memFree(data);
            }
        }
    }

    private long[] createLayouts(int bindings) {
        try (MemoryStack stack = stackPush()) {
            VkDescriptorSetLayoutBinding.Buffer b = VkDescriptorSetLayoutBinding.calloc(bindings, stack);
            for (int i = 0; i < bindings; i++) {
                b.get(i)
                        .binding(i)
                        .descriptorType(VK_DESCRIPTOR_TYPE_STORAGE_BUFFER)
                        .descriptorCount(1)
                        .stageFlags(VK_SHADER_STAGE_COMPUTE_BIT);
            }
            long setLayout = device.create(
                    VK10::vkCreateDescriptorSetLayout,
                    VkDescriptorSetLayoutCreateInfo.calloc(stack)
                            .sType$Default()
                            .pBindings(b),
                    "vkCreateDescriptorSetLayout");
            VkPushConstantRange.Buffer push = VkPushConstantRange.calloc(1, stack);
            push.get(0).stageFlags(VK_SHADER_STAGE_COMPUTE_BIT).offset(0).size(PUSH_BYTES);
            long layout = device.create(
                    VK10::vkCreatePipelineLayout,
                    VkPipelineLayoutCreateInfo.calloc(stack)
                            .sType$Default()
                            .pSetLayouts(stack.longs(setLayout))
                            .pPushConstantRanges(push),
                    "vkCreatePipelineLayout");
            return new long[] {setLayout, layout};
        }
    }

    @Override
    public void close() {
        for (long p : pipelines.values()) {
            vkDestroyPipeline(device.handle(), p, null);
        }
        pipelines.clear();
        for (long[] l : layouts.values()) {
            vkDestroyPipelineLayout(device.handle(), l[1], null);
            vkDestroyDescriptorSetLayout(device.handle(), l[0], null);
        }
        vkDestroyPipelineCache(device.handle(), cache, null);
    }
}
