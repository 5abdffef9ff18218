package dev.aule.vulkan;

import org.lwjgl.system.MemoryStack;
import org.lwjgl.vulkan.VkCooperativeMatrixPropertiesKHR;
import org.lwjgl.vulkan.VkPhysicalDevice;
import org.lwjgl.vulkan.VkPhysicalDevice16BitStorageFeatures;
import org.lwjgl.vulkan.VkPhysicalDeviceCooperativeMatrixFeaturesKHR;
import org.lwjgl.vulkan.VkPhysicalDeviceFeatures2;
import org.lwjgl.vulkan.VkPhysicalDeviceProperties2;
import org.lwjgl.vulkan.VkPhysicalDeviceShaderFloat16Int8Features;
import org.lwjgl.vulkan.VkPhysicalDeviceSubgroupSizeControlFeatures;
import org.lwjgl.vulkan.VkPhysicalDeviceSubgroupSizeControlProperties;
import org.lwjgl.vulkan.VkPhysicalDeviceVulkanMemoryModelFeatures;

import java.nio.IntBuffer;
import java.util.ArrayList;
import java.util.List;

import static org.lwjgl.system.MemoryStack.stackPush;
import static org.lwjgl.vulkan.KHRCooperativeMatrix.VK_SCOPE_SUBGROUP_KHR;
import static org.lwjgl.vulkan.KHRCooperativeMatrix.vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR;
import static org.lwjgl.vulkan.VK10.VK_SHADER_STAGE_COMPUTE_BIT;
import static org.lwjgl.vulkan.VK10.VK_SUCCESS;
import static org.lwjgl.vulkan.VK11.vkGetPhysicalDeviceFeatures2;
import static org.lwjgl.vulkan.VK11.vkGetPhysicalDeviceProperties2;

/**
 * Queries a device's cooperative-matrix support, and enables it at device creation. Only called for a device that
 * lists {@code VK_KHR_cooperative_matrix}; structures of an extension are chained only when the device lists it.
 */
final class CoopQuery {
    static final String MEMORY_MODEL = "VK_KHR_vulkan_memory_model";
    static final String SUBGROUP_SIZE_CONTROL = "VK_EXT_subgroup_size_control";

    private CoopQuery() {}

    /** The shapes, features and subgroup-size range; {@link CoopSupport#NONE} when the driver cannot list them. */
    static CoopSupport query(VkPhysicalDevice physical, boolean float16) {
        try (MemoryStack stack = stackPush()) {
            List<CoopSupport.Shape> shapes = shapes(physical, stack);
            boolean memoryModelExt = VulkanDevice.hasExtension(physical, MEMORY_MODEL, stack);
            boolean sizeControlExt = VulkanDevice.hasExtension(physical, SUBGROUP_SIZE_CONTROL, stack);
            VkPhysicalDeviceCooperativeMatrixFeaturesKHR coop =
                    VkPhysicalDeviceCooperativeMatrixFeaturesKHR.calloc(stack).sType$Default();
            VkPhysicalDeviceVulkanMemoryModelFeatures memoryModel =
                    VkPhysicalDeviceVulkanMemoryModelFeatures.calloc(stack).sType$Default();
            VkPhysicalDeviceSubgroupSizeControlFeatures sizeControl =
                    VkPhysicalDeviceSubgroupSizeControlFeatures.calloc(stack).sType$Default();
            long chain = coop.address();
            if (memoryModelExt) {
                memoryModel.pNext(chain);
                chain = memoryModel.address();
            }
            if (sizeControlExt) {
                sizeControl.pNext(chain);
                chain = sizeControl.address();
            }
            vkGetPhysicalDeviceFeatures2(
                    physical,
                    VkPhysicalDeviceFeatures2.calloc(stack).sType$Default().pNext(chain));
            int min = 0;
            int max = 0;
            boolean control = sizeControlExt && sizeControl.subgroupSizeControl();
            if (control) {
                VkPhysicalDeviceSubgroupSizeControlProperties range =
                        VkPhysicalDeviceSubgroupSizeControlProperties.calloc(stack)
                                .sType$Default();
                vkGetPhysicalDeviceProperties2(
                        physical,
                        VkPhysicalDeviceProperties2.calloc(stack)
                                .sType$Default()
                                .pNext(range.address()));
                control = (range.requiredSubgroupSizeStages() & VK_SHADER_STAGE_COMPUTE_BIT) != 0;
                min = control ? range.minSubgroupSize() : 0;
                max = control ? range.maxSubgroupSize() : 0;
            }
            return new CoopSupport(
                    coop.cooperativeMatrix() ? shapes : List.of(),
                    float16,
                    memoryModelExt && memoryModel.vulkanMemoryModel(),
                    control,
                    min,
                    max);
        } catch (RuntimeException e) {
            // A loader without the entry point (LWJGL finds none): report no cooperative matrices.
            return CoopSupport.NONE;
        }
    }

    private static List<CoopSupport.Shape> shapes(VkPhysicalDevice physical, MemoryStack stack) {
        IntBuffer count = stack.mallocInt(1);
        if (vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR(physical, count, null) != VK_SUCCESS) {
            return List.of();
        }
        VkCooperativeMatrixPropertiesKHR.Buffer props = VkCooperativeMatrixPropertiesKHR.calloc(count.get(0), stack);
        for (int i = 0; i < props.capacity(); i++) {
            props.get(i).sType$Default();
        }
        if (vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR(physical, count, props) != VK_SUCCESS) {
            return List.of();
        }
        List<CoopSupport.Shape> shapes = new ArrayList<>();
        for (int i = 0; i < count.get(0); i++) {
            VkCooperativeMatrixPropertiesKHR p = props.get(i);
            if (p.scope() == VK_SCOPE_SUBGROUP_KHR && !p.saturatingAccumulation()) {
                shapes.add(new CoopSupport.Shape(
                        p.MSize(),
                        p.NSize(),
                        p.KSize(),
                        CoopSupport.Type.of(p.AType()),
                        CoopSupport.Type.of(p.BType()),
                        CoopSupport.Type.of(p.CType()),
                        CoopSupport.Type.of(p.ResultType())));
            }
        }
        return shapes;
    }

    /**
     * Adds the extensions the coop kernel needs to {@code extensions} and returns the feature chain that enables
     * them (cooperativeMatrix, shaderFloat16, vulkanMemoryModel, subgroupSizeControl and computeFullSubgroups where
     * offered, storageBuffer16BitAccess where offered), for {@code VkDeviceCreateInfo.pNext}.
     */
    static long enable(VkPhysicalDevice physical, DeviceInfo info, List<String> extensions, MemoryStack stack) {
        CoopSupport coop = info.coop();
        extensions.add(VulkanDevice.COOP_EXTENSION);
        extensions.add(MEMORY_MODEL);
        long chain = VkPhysicalDeviceCooperativeMatrixFeaturesKHR.calloc(stack)
                .sType$Default()
                .cooperativeMatrix(true)
                .address();
        chain = VkPhysicalDeviceVulkanMemoryModelFeatures.calloc(stack)
                .sType$Default()
                .pNext(chain)
                .vulkanMemoryModel(true)
                .address();
        chain = VkPhysicalDeviceShaderFloat16Int8Features.calloc(stack)
                .sType$Default()
                .pNext(chain)
                .shaderFloat16(true)
                .address();
        if (info.storage16Bit()) {
            chain = VkPhysicalDevice16BitStorageFeatures.calloc(stack)
                    .sType$Default()
                    .pNext(chain)
                    .storageBuffer16BitAccess(true)
                    .address();
        }
        if (coop.subgroupSizeControl()) {
            extensions.add(SUBGROUP_SIZE_CONTROL);
            VkPhysicalDeviceSubgroupSizeControlFeatures offered =
                    VkPhysicalDeviceSubgroupSizeControlFeatures.calloc(stack).sType$Default();
            vkGetPhysicalDeviceFeatures2(
                    physical,
                    VkPhysicalDeviceFeatures2.calloc(stack).sType$Default().pNext(offered.address()));
            chain = VkPhysicalDeviceSubgroupSizeControlFeatures.calloc(stack)
                    .sType$Default()
                    .pNext(chain)
                    .subgroupSizeControl(true)
                    .computeFullSubgroups(offered.computeFullSubgroups())
                    .address();
        }
        return chain;
    }
}
