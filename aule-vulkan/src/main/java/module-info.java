/**
 * The {@code vulkan} backend of aule-attention: FlashAttention as GLSL compute shaders, compiled with
 * shaderc at run time and run through LWJGL on any Vulkan 1.1 device.
 *
 * <p>{@link java.util.ServiceLoader} finds {@link dev.aule.vulkan.VulkanBackend} through the
 * {@code provides} clause below on the module path and through {@code META-INF/services} on the class
 * path. The one exported package holds what a user calls: the backend, its device tensors and its
 * exception; devices, buffers, pipelines and shaders stay inside the module.
 */
module dev.aule.vulkan {
    requires dev.aule;
    requires org.lwjgl;
    requires org.lwjgl.vulkan;
    requires org.lwjgl.shaderc;

    exports dev.aule.vulkan;

    provides dev.aule.spi.AttentionBackend with
            dev.aule.vulkan.VulkanBackend;
}
