package dev.aule.vulkan;

import org.lwjgl.PointerBuffer;
import org.lwjgl.system.MemoryStack;
import org.lwjgl.vulkan.VkAllocationCallbacks;
import org.lwjgl.vulkan.VkApplicationInfo;
import org.lwjgl.vulkan.VkDevice;
import org.lwjgl.vulkan.VkDeviceCreateInfo;
import org.lwjgl.vulkan.VkDeviceQueueCreateInfo;
import org.lwjgl.vulkan.VkExtensionProperties;
import org.lwjgl.vulkan.VkInstance;
import org.lwjgl.vulkan.VkInstanceCreateInfo;
import org.lwjgl.vulkan.VkPhysicalDevice;
import org.lwjgl.vulkan.VkPhysicalDevice16BitStorageFeatures;
import org.lwjgl.vulkan.VkPhysicalDeviceFeatures2;
import org.lwjgl.vulkan.VkPhysicalDeviceLimits;
import org.lwjgl.vulkan.VkPhysicalDeviceMemoryProperties;
import org.lwjgl.vulkan.VkPhysicalDeviceProperties;
import org.lwjgl.vulkan.VkPhysicalDeviceProperties2;
import org.lwjgl.vulkan.VkPhysicalDeviceShaderFloat16Int8Features;
import org.lwjgl.vulkan.VkPhysicalDeviceSubgroupProperties;
import org.lwjgl.vulkan.VkQueue;
import org.lwjgl.vulkan.VkQueueFamilyProperties;
import org.lwjgl.vulkan.VkSubmitInfo;

import java.nio.IntBuffer;
import java.nio.LongBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.Supplier;

import static org.lwjgl.system.MemoryStack.stackPush;
import static org.lwjgl.vulkan.VK10.*;
import static org.lwjgl.vulkan.VK11.VK_API_VERSION_1_1;
import static org.lwjgl.vulkan.VK11.vkGetPhysicalDeviceFeatures2;
import static org.lwjgl.vulkan.VK11.vkGetPhysicalDeviceProperties2;

/**
 * One Vulkan device opened for compute: the instance, the chosen physical device, a logical device
 * with one compute queue, the shader compiler and the pipelines. Thread-safe: submissions to the
 * queue are serialised by {@link #submit}; everything else a call needs is its own while it runs: its
 * buffers, and a {@link SubmitContext} (command pool, descriptor pool, fence) lent by {@link #contexts()}.
 *
 * <p>Calls run inside {@link #whileUsable}, which holds the read side of the use lock; {@link #close()}
 * takes the write side, so the device is never destroyed under a running call.
 */
final class VulkanDevice implements AutoCloseable {
    /*
     * Shutdown invariants (maintainers):
     *  - Every Vulkan call on this device, and every touch of a buffer's memory, runs under the read side of
     *    useLock: calls and device-tensor uses in whileUsable (refused once closed), frees of device tensors in
     *    whileOpen (skipped once closed). So once close() holds the write side, nothing runs on the device and no
     *    VulkanTensor holds a lease.
     *  - close() (the JVM shutdown hook) waits up to SHUTDOWN_WAIT_SECONDS for the write side: the calls in
     *    flight finish (each waits for its own submission) and calls arriving meanwhile queue behind it, then see
     *    the device closed. Holding it, close frees every tensor still live, then the idle submit contexts (none
     *    is lent out then), the pipelines, the device and the instance.
     *  - A tensor leaves the live set only after its buffer was freed, so a tensor is freed by its own close or
     *    by the device's, never both and never neither.
     */

    /** How long JVM shutdown waits for the calls in flight before it leaves the device to the process exit. */
    static final long SHUTDOWN_WAIT_SECONDS = 60;

    /** System property choosing the device: an index in the driver's order, or a name substring. */
    static final String DEVICE_PROPERTY = "aule.vulkan.device";

    static final String COOP_EXTENSION = "VK_KHR_cooperative_matrix";

    private final VkInstance instance;
    private final VkDevice device;
    private final VkQueue queue;
    private final int queueFamily;
    private final DeviceInfo info;
    private final VkPhysicalDeviceMemoryProperties memory;
    private final ShaderCompiler compiler;
    private final Pipelines pipelines;
    private final ContextPool contexts = new ContextPool(this);
    /** Buffer memory by memory type index, made on first use (see {@link #memoryPool}). */
    private final MemoryPool[] memoryPools = new MemoryPool[VK_MAX_MEMORY_TYPES];

    private final ReentrantLock submitLock = new ReentrantLock();
    private final ReentrantReadWriteLock useLock = new ReentrantReadWriteLock();
    private final Set<VulkanTensor> live = ConcurrentHashMap.newKeySet();
    private final boolean mapsBuffers;
    private final java.util.concurrent.atomic.AtomicLong submits = new java.util.concurrent.atomic.AtomicLong();
    private volatile boolean closed;
    private volatile String lostReason;
    private final String coopOpenFailure;
    /** Whether the device was opened with storageBuffer8BitAccess (see {@link ByteStorage}). */
    private final boolean storage8Bit;

    private volatile CoopCheck.Result coopStatus;
    /** Bits of the queue's timestamps that count (0: no timestamps), and nanoseconds per tick. */
    private final int timestampBits;

    private final float timestampPeriod;
    /** Device time of the calling thread's last submission, from its timestamps; -1 when there were none. */
    private final ThreadLocal<long[]> lastDeviceNanos = ThreadLocal.withInitial(() -> new long[] {-1});

    private VulkanDevice(
            VkInstance instance,
            VkDevice device,
            VkQueue queue,
            int queueFamily,
            DeviceInfo info,
            VkPhysicalDeviceMemoryProperties memory,
            ShaderCompiler compiler,
            boolean mapsBuffers,
            int timestampBits,
            float timestampPeriod,
            String coopOpenFailure,
            boolean storage8Bit) {
        this.coopOpenFailure = coopOpenFailure;
        this.storage8Bit = storage8Bit;
        this.coopStatus = CoopCheck.Result.notChecked(info);
        this.mapsBuffers = mapsBuffers;
        this.timestampBits = timestampBits;
        this.timestampPeriod = timestampPeriod;
        this.instance = instance;
        this.device = device;
        this.queue = queue;
        this.queueFamily = queueFamily;
        this.info = info;
        this.memory = memory;
        this.compiler = compiler;
        this.pipelines = new Pipelines(this);
    }

    /**
     * Opens the device {@code -Daule.vulkan.device} names, else the best one (discrete, integrated,
     * virtual, CPU). Frees everything it created when it fails.
     *
     * @throws VulkanException saying why no device could be opened
     */
    static VulkanDevice open() {
        return open(true);
    }

    /**
     * Opens the device as {@link #open()} does, with every kernel buffer device-local even on unified memory,
     * so host data goes through staging buffers as on a discrete GPU (tests of that path on any device).
     */
    static VulkanDevice openUnmapped() {
        return open(false);
    }

    private static VulkanDevice open(boolean mapWhereUnified) {
        VkInstance instance = createInstance();
        VkDevice device = null;
        ShaderCompiler compiler = null;
        try (MemoryStack stack = stackPush()) {
            List<Candidate> candidates = candidates(instance, stack);
            Candidate chosen = choose(candidates, System.getProperty(DEVICE_PROPERTY));
            String[] coopFailure = new String[1];
            boolean storage8Bit = ByteStorage.offered(chosen.physical, stack);
            device = createDevice(chosen, stack, coopFailure, storage8Bit);
            PointerBuffer pq = stack.mallocPointer(1);
            vkGetDeviceQueue(device, chosen.queueFamily, 0, pq);
            VkQueue queue = new VkQueue(pq.get(0), device);
            VkPhysicalDeviceMemoryProperties mem = VkPhysicalDeviceMemoryProperties.malloc();
            vkGetPhysicalDeviceMemoryProperties(chosen.physical, mem);
            compiler = new ShaderCompiler();
            VkPhysicalDeviceProperties props = VkPhysicalDeviceProperties.malloc(stack);
            vkGetPhysicalDeviceProperties(chosen.physical, props);
            IntBuffer familyCount = stack.mallocInt(1);
            vkGetPhysicalDeviceQueueFamilyProperties(chosen.physical, familyCount, null);
            VkQueueFamilyProperties.Buffer families = VkQueueFamilyProperties.malloc(familyCount.get(0), stack);
            vkGetPhysicalDeviceQueueFamilyProperties(chosen.physical, familyCount, families);
            float period = props.limits().timestampPeriod();
            int bits = period > 0 ? families.get(chosen.queueFamily).timestampValidBits() : 0;
            return new VulkanDevice(
                    instance,
                    device,
                    queue,
                    chosen.queueFamily,
                    chosen.info,
                    mem,
                    compiler,
                    mapWhereUnified && chosen.info.unifiedMemory(),
                    bits,
                    period,
                    coopFailure[0],
                    storage8Bit);
        } catch (RuntimeException | Error e) {
            if (compiler != null) {
                compiler.close();
            }
            if (device != null) {
                vkDestroyDevice(device, null);
            }
            vkDestroyInstance(instance, null);
            throw e;
        }
    }

    private record Candidate(VkPhysicalDevice physical, int queueFamily, DeviceInfo info) {}

    private static VkInstance createInstance() {
        try (MemoryStack stack = stackPush()) {
            VkApplicationInfo app = VkApplicationInfo.calloc(stack)
                    .sType$Default()
                    .pApplicationName(stack.UTF8("aule-attention"))
                    .pEngineName(stack.UTF8("aule"))
                    .apiVersion(VK_API_VERSION_1_1);
            // Portability drivers (MoltenVK) are listed only when the instance asks for them.
            Set<String> offered = instanceExtensionNames(stack);
            VkInstanceCreateInfo create = VkInstanceCreateInfo.calloc(stack)
                    .sType$Default()
                    .flags(Portability.instanceFlags(offered))
                    .pApplicationInfo(app)
                    .ppEnabledExtensionNames(names(Portability.instanceExtensions(offered), stack));
            PointerBuffer handle = stack.mallocPointer(1);
            int result = vkCreateInstance(create, null, handle);
            if (result == VK_ERROR_INCOMPATIBLE_DRIVER) {
                throw new VulkanException("no Vulkan driver: vkCreateInstance returned VK_ERROR_INCOMPATIBLE_DRIVER;"
                        + " install a GPU driver, or mesa-vulkan-drivers for the lavapipe CPU device");
            }
            check(result, "vkCreateInstance");
            return new VkInstance(handle.get(0), create);
        }
    }

    private static List<Candidate> candidates(VkInstance instance, MemoryStack stack) {
        IntBuffer count = stack.mallocInt(1);
        check(vkEnumeratePhysicalDevices(instance, count, null), "vkEnumeratePhysicalDevices");
        if (count.get(0) == 0) {
            throw new VulkanException("the Vulkan loader found no device (no GPU driver and no lavapipe:"
                    + " install mesa-vulkan-drivers for a CPU device)");
        }
        PointerBuffer handles = stack.mallocPointer(count.get(0));
        check(vkEnumeratePhysicalDevices(instance, count, handles), "vkEnumeratePhysicalDevices");
        List<Candidate> found = new ArrayList<>();
        List<String> skipped = new ArrayList<>();
        for (int i = 0; i < handles.capacity(); i++) {
            VkPhysicalDevice physical = new VkPhysicalDevice(handles.get(i), instance);
            Candidate c = describe(i, physical, skipped);
            if (c != null) {
                found.add(c);
            }
        }
        if (found.isEmpty()) {
            throw new VulkanException("no usable Vulkan device: " + String.join("; ", skipped));
        }
        return found;
    }

    private static Candidate describe(int index, VkPhysicalDevice physical, List<String> skipped) {
        try (MemoryStack stack = stackPush()) {
            VkPhysicalDeviceSubgroupProperties subgroup =
                    VkPhysicalDeviceSubgroupProperties.calloc(stack).sType$Default();
            VkPhysicalDeviceProperties2 props =
                    VkPhysicalDeviceProperties2.calloc(stack).sType$Default().pNext(subgroup.address());
            vkGetPhysicalDeviceProperties2(physical, props);
            String name = props.properties().deviceNameString();
            int api = props.properties().apiVersion();
            if (VK_API_VERSION_MAJOR(api) == 1 && VK_API_VERSION_MINOR(api) < 1) {
                skipped.add(name + ": Vulkan 1.0 only, 1.1 needed");
                return null;
            }
            int family = computeQueueFamily(physical, stack);
            if (family < 0) {
                skipped.add(name + ": no compute queue");
                return null;
            }
            VkPhysicalDeviceShaderFloat16Int8Features f16 =
                    VkPhysicalDeviceShaderFloat16Int8Features.calloc(stack).sType$Default();
            VkPhysicalDevice16BitStorageFeatures s16 = VkPhysicalDevice16BitStorageFeatures.calloc(stack)
                    .sType$Default()
                    .pNext(f16.address());
            VkPhysicalDeviceFeatures2 features =
                    VkPhysicalDeviceFeatures2.calloc(stack).sType$Default().pNext(s16.address());
            vkGetPhysicalDeviceFeatures2(physical, features);
            boolean coopExtension = hasExtension(physical, COOP_EXTENSION, stack);
            CoopSupport coop = coopExtension ? CoopQuery.query(physical, f16.shaderFloat16()) : CoopSupport.NONE;
            VkPhysicalDeviceLimits limits = props.properties().limits();
            int type = props.properties().deviceType();
            DeviceInfo.Kind kind = switch (type) {
                case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU -> DeviceInfo.Kind.DISCRETE_GPU;
                case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU -> DeviceInfo.Kind.INTEGRATED_GPU;
                case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU -> DeviceInfo.Kind.VIRTUAL_GPU;
                case VK_PHYSICAL_DEVICE_TYPE_CPU -> DeviceInfo.Kind.CPU;
                default -> DeviceInfo.Kind.OTHER;
            };
            String version =
                    VK_API_VERSION_MAJOR(api) + "." + VK_API_VERSION_MINOR(api) + "." + VK_API_VERSION_PATCH(api);
            DeviceInfo info = new DeviceInfo(
                    index,
                    name,
                    kind,
                    version,
                    Math.max(1, subgroup.subgroupSize()),
                    Integer.toUnsignedLong(limits.maxComputeSharedMemorySize()),
                    Integer.toUnsignedLong(limits.maxStorageBufferRange()),
                    limits.maxComputeWorkGroupInvocations(),
                    limits.maxComputeWorkGroupSize(0),
                    new int[] {
                        limits.maxComputeWorkGroupCount(0),
                        limits.maxComputeWorkGroupCount(1),
                        limits.maxComputeWorkGroupCount(2)
                    },
                    f16.shaderFloat16(),
                    s16.storageBuffer16BitAccess(),
                    coopExtension,
                    kind == DeviceInfo.Kind.INTEGRATED_GPU || kind == DeviceInfo.Kind.CPU,
                    props.properties().vendorID(),
                    coop,
                    limits.maxPerStageDescriptorStorageBuffers(),
                    limits.maxDescriptorSetStorageBuffers(),
                    new int[] {
                        limits.maxComputeWorkGroupSize(0),
                        limits.maxComputeWorkGroupSize(1),
                        limits.maxComputeWorkGroupSize(2)
                    });
            return new Candidate(physical, family, info);
        }
    }

    private static int computeQueueFamily(VkPhysicalDevice physical, MemoryStack stack) {
        IntBuffer count = stack.mallocInt(1);
        vkGetPhysicalDeviceQueueFamilyProperties(physical, count, null);
        VkQueueFamilyProperties.Buffer families = VkQueueFamilyProperties.malloc(count.get(0), stack);
        vkGetPhysicalDeviceQueueFamilyProperties(physical, count, families);
        for (int i = 0; i < families.capacity(); i++) {
            if ((families.get(i).queueFlags() & VK_QUEUE_COMPUTE_BIT) != 0) {
                return i;
            }
        }
        return -1;
    }

    /** The instance extensions the loader offers (none when it cannot say). */
    private static Set<String> instanceExtensionNames(MemoryStack stack) {
        IntBuffer count = stack.mallocInt(1);
        if (vkEnumerateInstanceExtensionProperties((String) null, count, null) != VK_SUCCESS) {
            return Set.of();
        }
        VkExtensionProperties.Buffer ext = VkExtensionProperties.malloc(count.get(0), stack);
        if (vkEnumerateInstanceExtensionProperties((String) null, count, ext) != VK_SUCCESS) {
            return Set.of();
        }
        Set<String> names = new java.util.HashSet<>();
        for (int i = 0; i < ext.capacity(); i++) {
            names.add(ext.get(i).extensionNameString());
        }
        return names;
    }

    /** Extension names as the create infos take them, or null for none. */
    private static PointerBuffer names(List<String> names, MemoryStack stack) {
        if (names.isEmpty()) {
            return null;
        }
        PointerBuffer buffer = stack.mallocPointer(names.size());
        for (String name : names) {
            buffer.put(stack.UTF8(name));
        }
        return buffer.flip();
    }

    static boolean hasExtension(VkPhysicalDevice physical, String name, MemoryStack stack) {
        IntBuffer count = stack.mallocInt(1);
        if (vkEnumerateDeviceExtensionProperties(physical, (String) null, count, null) != VK_SUCCESS) {
            return false;
        }
        VkExtensionProperties.Buffer ext = VkExtensionProperties.malloc(count.get(0), stack);
        if (vkEnumerateDeviceExtensionProperties(physical, (String) null, count, ext) != VK_SUCCESS) {
            return false;
        }
        for (int i = 0; i < ext.capacity(); i++) {
            if (ext.get(i).extensionNameString().equals(name)) {
                return true;
            }
        }
        return false;
    }

    /** The device named by the property (index or name substring), else the first of the best kind. */
    private static Candidate choose(List<Candidate> candidates, String wanted) {
        if (wanted != null && !wanted.isBlank()) {
            String w = wanted.trim();
            for (Candidate c : candidates) {
                if (w.matches("\\d+")
                        ? c.info.index() == Integer.parseInt(w)
                        : c.info.name().toLowerCase(Locale.ROOT).contains(w.toLowerCase(Locale.ROOT))) {
                    return c;
                }
            }
            throw new VulkanException("-D" + DEVICE_PROPERTY + "=" + wanted + " matches no usable device; devices: "
                    + candidates.stream()
                            .map(c -> c.info.index() + " " + c.info.name())
                            .toList());
        }
        Candidate best = candidates.getFirst();
        for (Candidate c : candidates) {
            if (c.info.kind().ordinal() < best.info.kind().ordinal()) {
                best = c;
            }
        }
        return best;
    }

    /**
     * One compute queue; the portability subset enabled where the device offers it, as the specification requires.
     * The scalar kernels need no optional feature (they read 16-bit data as packed words). When the device has
     * what the coop kernel needs ({@link CoopSupport#missingFeature()} null), {@code VK_KHR_cooperative_matrix} and
     * the features it uses are enabled too (see {@link CoopQuery#enable}); if that device creation fails, the
     * device is created again without them and {@link #coopOpenFailure()} says why. {@code storage8Bit}: 8-bit
     * storage buffers are enabled too (the quantized kernels' byte views, {@link ByteStorage}).
     */
    private static VkDevice createDevice(
            Candidate chosen, MemoryStack stack, String[] coopFailure, boolean storage8Bit) {
        if (chosen.info.coop().missingFeature() == null) {
            try (MemoryStack inner = stack.push()) {
                return createDevice(chosen, inner, true, storage8Bit);
            } catch (VulkanException e) {
                coopFailure[0] = "creating the device with " + COOP_EXTENSION + " failed (" + e.getMessage() + ")";
            }
        }
        return createDevice(chosen, stack, false, storage8Bit);
    }

    private static VkDevice createDevice(Candidate chosen, MemoryStack stack, boolean coop, boolean storage8Bit) {
        VkDeviceQueueCreateInfo.Buffer queues = VkDeviceQueueCreateInfo.calloc(1, stack);
        queues.get(0).sType$Default().queueFamilyIndex(chosen.queueFamily).pQueuePriorities(stack.floats(1f));
        Set<String> offered =
                hasExtension(chosen.physical, Portability.SUBSET, stack) ? Set.of(Portability.SUBSET) : Set.of();
        List<String> extensions = new ArrayList<>(Portability.deviceExtensions(offered));
        long features = coop ? CoopQuery.enable(chosen.physical, chosen.info, extensions, stack) : 0;
        if (storage8Bit) {
            features = ByteStorage.enable(extensions, features, stack);
        }
        VkDeviceCreateInfo create = VkDeviceCreateInfo.calloc(stack)
                .sType$Default()
                .pNext(features)
                .pQueueCreateInfos(queues)
                .ppEnabledExtensionNames(names(extensions, stack));
        PointerBuffer handle = stack.mallocPointer(1);
        check(vkCreateDevice(chosen.physical, create, null, handle), "vkCreateDevice on " + chosen.info.name());
        return new VkDevice(handle.get(0), chosen.physical, create, VK_API_VERSION_1_1);
    }

    /** {@return whether shaders may read storage buffers through 8-bit views ({@link ByteStorage})} */
    boolean storage8Bit() {
        return storage8Bit;
    }

    /** Null, or why the device was created without cooperative matrices although it offers what they need. */
    String coopOpenFailure() {
        return coopOpenFailure;
    }

    /** Whether the forward on cooperative matrices may run here: set once by its first-use check. */
    CoopCheck.Result coopStatus() {
        return coopStatus;
    }

    void coopStatus(CoopCheck.Result status) {
        coopStatus = status;
    }

    DeviceInfo info() {
        return info;
    }

    VkDevice handle() {
        return device;
    }

    /** {@return bits of the compute queue's timestamps that count; 0 when it has none} */
    int timestampBits() {
        return timestampBits;
    }

    /** {@return nanoseconds per timestamp tick} */
    float timestampPeriod() {
        return timestampPeriod;
    }

    /** Records the device time of the calling thread's submission that just completed (-1: not measured). */
    void noteDeviceNanos(long nanos) {
        lastDeviceNanos.get()[0] = nanos;
    }

    /** {@return the device time of the calling thread's last completed submission, or -1} */
    long lastDeviceNanos() {
        return lastDeviceNanos.get()[0];
    }

    int queueFamily() {
        return queueFamily;
    }

    ShaderCompiler compiler() {
        return compiler;
    }

    Pipelines pipelines() {
        return pipelines;
    }

    /**
     * Whether kernel buffers are host-visible and mapped (unified memory), so the host reads and writes them in
     * place; otherwise they are device-local and host data goes through staging.
     */
    boolean mapsBuffers() {
        return mapsBuffers;
    }

    /** The recording objects submissions borrow and give back (see {@link ContextPool}). */
    ContextPool contexts() {
        return contexts;
    }

    /** Submits to the one queue, which Vulkan requires to be externally synchronised. */
    int submit(VkSubmitInfo info, long fence) {
        submitLock.lock();
        try {
            submits.incrementAndGet();
            return vkQueueSubmit(queue, info, fence);
        } finally {
            submitLock.unlock();
        }
    }

    /** Queue submits so far (tests: one per call). */
    long submits() {
        return submits.get();
    }

    /**
     * Runs {@code call} under the read side of the use lock, once the device is known to be neither closed
     * nor lost: {@link #close()} waits for it to finish.
     *
     * @throws VulkanException when the device was closed or lost
     */
    <T> T whileUsable(Supplier<T> call) {
        Lock use = useLock.readLock();
        use.lock();
        try {
            checkUsable();
            return call.get();
        } finally {
            use.unlock();
        }
    }

    /**
     * Runs {@code action} under the read side of the use lock unless the device was closed (lost is fine:
     * freeing is allowed on a lost device).
     *
     * @return whether it ran
     */
    boolean whileOpen(Runnable action) {
        Lock use = useLock.readLock();
        use.lock();
        try {
            if (closed) {
                return false;
            }
            action.run();
            return true;
        } finally {
            use.unlock();
        }
    }

    /** Records a device tensor that {@link #close()} frees if its owner did not; under the use lock. */
    void register(VulkanTensor t) {
        live.add(t);
    }

    /** How many device tensors are open on this device (tests: closing frees them). */
    int liveTensors() {
        return live.size();
    }

    /** Forgets a device tensor whose buffer was freed. */
    void unregister(VulkanTensor t) {
        live.remove(t);
    }

    /** Throws when the device was closed or lost. */
    private void checkUsable() {
        if (closed) {
            throw new VulkanException("the Vulkan device " + info.name() + " was closed (JVM shutting down)");
        }
        if (lostReason != null) {
            throw new VulkanException("the Vulkan device " + info.name() + " was lost earlier (" + lostReason
                    + "); restart the process to use it again");
        }
    }

    /** Whether the device was lost (a new device is needed). */
    boolean lost() {
        return lostReason != null;
    }

    void markLost(String why) {
        lostReason = why;
    }

    /**
     * A memory type with all of {@code required}, preferring one that also has {@code preferred}.
     *
     * @return the index, or -1
     */
    int memoryType(int allowedTypes, int required, int preferred) {
        int fallback = -1;
        for (int i = 0; i < memory.memoryTypeCount(); i++) {
            int flags = memory.memoryTypes(i).propertyFlags();
            if ((allowedTypes & (1 << i)) == 0 || (flags & required) != required) {
                continue;
            }
            if ((flags & preferred) == preferred) {
                return i;
            }
            if (fallback < 0) {
                fallback = i;
            }
        }
        return fallback;
    }

    /**
     * The pool buffers of memory type {@code type} take their memory from: blocks of {@link
     * MemoryPool#blockBytes} of the type's heap, mapped once where the type is host-visible.
     */
    MemoryPool memoryPool(int type) {
        synchronized (memoryPools) {
            MemoryPool pool = memoryPools[type];
            if (pool == null) {
                int flags = memory.memoryTypes(type).propertyFlags();
                long heap =
                        memory.memoryHeaps(memory.memoryTypes(type).heapIndex()).size();
                pool = new MemoryPool(
                        new VulkanMemory(this, type, (flags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) != 0),
                        MemoryPool.blockBytes(heap));
                memoryPools[type] = pool;
            }
            return pool;
        }
    }

    /** {@return the {@code vkAllocateMemory} calls this device's buffers made so far (tests: none once warm)} */
    long memoryAllocations() {
        synchronized (memoryPools) {
            long n = 0;
            for (MemoryPool pool : memoryPools) {
                n += pool == null ? 0 : pool.allocations();
            }
            return n;
        }
    }

    /**
     * Waits for the calls in flight ({@link #SHUTDOWN_WAIT_SECONDS} at most), saves the pipeline cache, frees
     * the device tensors still open and destroys the device. Called at JVM shutdown; later calls throw
     * {@link VulkanException}, later {@link VulkanTensor#close()}s do nothing. When calls are still running
     * after the wait, the device is left to the process's exit rather than destroyed under them.
     */
    @Override
    public void close() {
        boolean locked = false;
        boolean interrupted = false;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(SHUTDOWN_WAIT_SECONDS);
        while (!locked) {
            try {
                locked = useLock.writeLock().tryLock(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
                if (!locked) {
                    break;
                }
            } catch (InterruptedException e) {
                interrupted = true; // shutting down: the wait matters more than the interrupt, restored below
            }
        }
        try {
            if (closed) {
                return;
            }
            pipelines.saveCache();
            if (!locked) {
                System.getLogger(VulkanDevice.class.getName())
                        .log(
                                System.Logger.Level.WARNING,
                                "Vulkan calls still running after " + SHUTDOWN_WAIT_SECONDS
                                        + " s at shutdown; leaving the device " + info.name() + " to the process exit");
                return;
            }
            closed = true;
            vkDeviceWaitIdle(device);
            for (VulkanTensor t : live.toArray(VulkanTensor[]::new)) {
                t.freeAtShutdown();
            }
            live.clear();
            contexts.close();
            pipelines.close();
            compiler.close();
            synchronized (memoryPools) {
                for (MemoryPool pool : memoryPools) {
                    if (pool != null) {
                        pool.close(); // after every buffer was freed; a leaked call's buffers go with it
                    }
                }
            }
            vkDestroyDevice(device, null);
            vkDestroyInstance(instance, null);
            memory.free();
        } finally {
            if (locked) {
                useLock.writeLock().unlock();
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /**
     * A {@code vkCreate...} function of a device that writes one handle ({@code vkCreateBuffer},
     * {@code vkCreateCommandPool} and the like).
     *
     * @param <I> its create-info struct
     */
    @FunctionalInterface
    interface Create<I> {
        int create(VkDevice device, I info, VkAllocationCallbacks allocator, LongBuffer handle);
    }

    /** Creates one object on this device from {@code info} and returns its handle, checked as {@link #check} does. */
    <I> long create(Create<I> function, I info, String what) {
        try (MemoryStack stack = stackPush()) {
            LongBuffer handle = stack.mallocLong(1);
            check(function.create(device, info, null, handle), what);
            return handle.get(0);
        }
    }

    /** Throws a {@link VulkanException} naming the operation and the result code unless it is success. */
    static void check(int result, String what) {
        if (result != VK_SUCCESS) {
            throw new VulkanException(what + " failed: " + resultName(result));
        }
    }

    static String resultName(int result) {
        return switch (result) {
            case VK_ERROR_OUT_OF_HOST_MEMORY -> "VK_ERROR_OUT_OF_HOST_MEMORY";
            case VK_ERROR_OUT_OF_DEVICE_MEMORY -> "VK_ERROR_OUT_OF_DEVICE_MEMORY";
            case VK_ERROR_INITIALIZATION_FAILED -> "VK_ERROR_INITIALIZATION_FAILED";
            case VK_ERROR_DEVICE_LOST -> "VK_ERROR_DEVICE_LOST";
            case VK_ERROR_MEMORY_MAP_FAILED -> "VK_ERROR_MEMORY_MAP_FAILED";
            case VK_ERROR_INCOMPATIBLE_DRIVER -> "VK_ERROR_INCOMPATIBLE_DRIVER (no driver for Vulkan 1.1)";
            case VK_ERROR_FEATURE_NOT_PRESENT -> "VK_ERROR_FEATURE_NOT_PRESENT";
            case VK_ERROR_EXTENSION_NOT_PRESENT -> "VK_ERROR_EXTENSION_NOT_PRESENT";
            case VK_ERROR_TOO_MANY_OBJECTS -> "VK_ERROR_TOO_MANY_OBJECTS";
            case VK_TIMEOUT -> "VK_TIMEOUT";
            default -> "VkResult " + result;
        };
    }
}
