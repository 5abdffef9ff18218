package dev.aule.cpu.workers;

import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.function.IntConsumer;

/**
 * The threads every CPU kernel of the library runs on: the attention backend's calls and aule-models' dense layers
 * share one team ({@link #shared()}), sized to the cores or {@code -Daule.cpu.threads}, so the machine is never
 * oversubscribed however many threads call.
 *
 * <p>{@link #forEach} runs a body for every index of a range on the calling thread and on up to {@code maxWorkers -
 * 1} of the team's helpers, all taking indices in order from one counter (so callers put the costliest first). It
 * returns once every index has run, and rethrows the first exception a body threw (later ones suppressed into
 * it); after an exception no index not yet started runs. Calls from many threads at once, and from inside a body,
 * are allowed: every caller works on its own call, so each finishes even if no helper is free.
 *
 * <p>A helper that runs out of work spins for {@code -Daule.cpu.spinMicros} (default {@value #DEFAULT_SPIN_MICROS})
 * before it parks. A model's forward makes dozens of parallel calls a pass, a few hundred microseconds to a few
 * milliseconds each, with little between them: waking a parked thread cost about 80 µs of each such call on a
 * 2-vCPU VM (a fork-join pool of the same size), a spinning helper starts at once.
 */
public final class WorkerTeam {
    /** The system property for the team's size. */
    public static final String THREADS_PROPERTY = "aule.cpu.threads";

    /** The system property for how long an idle helper spins before it parks, in microseconds. */
    public static final String SPIN_PROPERTY = "aule.cpu.spinMicros";

    /** The most threads {@value #THREADS_PROPERTY} may ask for: more only adds scheduling and memory. */
    public static final int MAX_THREADS = 1024;

    /** The spin when {@value #SPIN_PROPERTY} is not set. */
    public static final int DEFAULT_SPIN_MICROS = 100;

    /** The longest spin {@value #SPIN_PROPERTY} may ask for (0.1 s). */
    public static final int MAX_SPIN_MICROS = 100_000;

    /** A configured value and, when the configured one was refused, why (logged once; null otherwise). */
    public record Choice(int value, String warning) {}

    private static final class Shared {
        static final WorkerTeam TEAM = create();

        private static WorkerTeam create() {
            Choice threads = chooseThreads(
                    System.getProperty(THREADS_PROPERTY), Runtime.getRuntime().availableProcessors());
            Choice spin = chooseSpinMicros(System.getProperty(SPIN_PROPERTY));
            for (Choice choice : new Choice[] {threads, spin}) {
                if (choice.warning() != null) {
                    System.getLogger("dev.aule.cpu").log(System.Logger.Level.WARNING, choice.warning());
                }
            }
            return new WorkerTeam(threads.value(), spin.value() * 1000L, "aule-cpu-");
        }
    }

    /*
     * Invariants. Every call (Job) is in `jobs` from just before its owner starts working on it until the owner's
     * own loop ends; a helper takes a seat on a job (at most maxWorkers - 1 seats) only while it is in `jobs` with
     * indices left. An index is claimed by one getAndIncrement of `next` and counted in `completed` once its body
     * returns or throws; an exception claims every unclaimed index at once (getAndSet) and counts them, so
     * `completed` reaches `items` exactly once, and the participant that makes it so unparks the owner. The owner
     * returns only then: no body of its call runs after forEach returns.
     *
     * A helper announces it is about to park (parked = true) and then looks for work once more; a caller adds its
     * job and then unparks every helper it sees announced. Either the helper finds the job or the caller sees the
     * announcement, and an unpark before the park makes the park return at once: no wake-up is lost.
     */
    private final int threads;
    private final long spinNanos;
    private final Helper[] helpers;
    private final ConcurrentLinkedQueue<Job> jobs = new ConcurrentLinkedQueue<>();

    private WorkerTeam(int threads, long spinNanos, String namePrefix) {
        this.threads = threads;
        this.spinNanos = spinNanos;
        this.helpers = new Helper[threads - 1];
        for (int i = 0; i < helpers.length; i++) {
            Helper helper = new Helper();
            Thread thread = new Thread(() -> helperLoop(helper), namePrefix + (i + 1));
            thread.setDaemon(true);
            helper.thread = thread;
            helpers[i] = helper;
            thread.start();
        }
    }

    /** The team every CPU kernel of the library shares. */
    public static WorkerTeam shared() {
        return Shared.TEAM;
    }

    /** A team of its own, for tests: {@code threads} in all (the caller and {@code threads - 1} helpers). */
    static WorkerTeam create(int threads, long spinNanos, String namePrefix) {
        return new WorkerTeam(threads, spinNanos, namePrefix);
    }

    /** The threads a call can run on: the caller and the helpers. */
    public int threads() {
        return threads;
    }

    /**
     * Runs {@code body} for every index in {@code [0, items)}, on the calling thread and at most {@code maxWorkers -
     * 1} helpers (see the class comment).
     *
     * @param items how many indices; 0 runs nothing
     * @param maxWorkers the most threads, the caller's included (at least 1; 1 runs every index on the caller)
     * @param body what to run for an index
     * @throws IllegalArgumentException if {@code items < 0} or {@code maxWorkers < 1}
     */
    public void forEach(int items, int maxWorkers, IntConsumer body) {
        if (items < 0) {
            throw new IllegalArgumentException("items must be at least 0, got " + items);
        }
        if (maxWorkers < 1) {
            throw new IllegalArgumentException("maxWorkers must be at least 1, got " + maxWorkers);
        }
        int workers = Math.min(Math.min(items, maxWorkers), threads);
        if (workers <= 1) {
            for (int i = 0; i < items; i++) {
                body.accept(i);
            }
            return;
        }
        Job job = new Job(body, items, Thread.currentThread(), workers - 1);
        jobs.add(job);
        for (Helper helper : helpers) {
            if (helper.parked) {
                LockSupport.unpark(helper.thread);
            }
        }
        job.work();
        jobs.remove(job);
        awaitCompletion(job);
        Throwable failure = job.failure;
        if (failure instanceof RuntimeException e) {
            throw e;
        }
        if (failure instanceof Error e) {
            throw e;
        }
        if (failure != null) { // a checked exception thrown past the compiler
            throw new IllegalStateException(failure);
        }
    }

    private void awaitCompletion(Job job) {
        long start = System.nanoTime();
        while (job.completed.get() < job.items) {
            if (System.nanoTime() - start < spinNanos) {
                Thread.onSpinWait();
            } else {
                LockSupport.parkNanos(job, 1_000_000L);
            }
        }
    }

    private void helperLoop(Helper self) {
        long idleSince = System.nanoTime();
        while (true) {
            Job job = takeSeat();
            if (job == null && System.nanoTime() - idleSince < spinNanos) {
                Thread.onSpinWait();
                continue;
            }
            if (job == null) {
                self.parked = true;
                job = takeSeat();
                if (job == null) {
                    LockSupport.park(this);
                }
                self.parked = false;
            }
            if (job != null) {
                job.work();
            }
            idleSince = System.nanoTime();
        }
    }

    /** The first call with indices left and a free seat, its seat taken; null when there is none. */
    private Job takeSeat() {
        if (jobs.isEmpty()) { // the idle spin's usual case, without an iterator
            return null;
        }
        for (Job job : jobs) {
            if (!job.open()) {
                continue;
            }
            for (int seats; (seats = job.seats.get()) > 0; ) {
                if (job.seats.compareAndSet(seats, seats - 1)) {
                    return job;
                }
            }
        }
        return null;
    }

    private static final class Helper {
        Thread thread;
        volatile boolean parked;
    }

    /** One call of {@link #forEach}. */
    private static final class Job {
        final IntConsumer body;
        final int items;
        final Thread owner;
        final AtomicInteger next = new AtomicInteger();
        final AtomicInteger completed = new AtomicInteger();
        final AtomicInteger seats;
        volatile Throwable failure;

        Job(IntConsumer body, int items, Thread owner, int seats) {
            this.body = body;
            this.items = items;
            this.owner = owner;
            this.seats = new AtomicInteger(seats);
        }

        boolean open() {
            int n = next.get();
            return n >= 0 && n < items;
        }

        void work() {
            // i >= 0: the counter passes items by at most one per participant, so it wraps only for a range
            // within a thousand or so of Integer.MAX_VALUE; a wrapped value claims nothing.
            for (int i; (i = next.getAndIncrement()) < items && i >= 0; ) {
                try {
                    body.accept(i);
                } catch (Throwable t) {
                    fail(t);
                } finally {
                    count(1);
                }
            }
        }

        private void fail(Throwable t) {
            synchronized (this) {
                if (failure == null) {
                    failure = t;
                } else if (failure != t) {
                    failure.addSuppressed(t);
                }
            }
            int from = next.getAndSet(items);
            if (from >= 0 && from < items) {
                count(items - from);
            }
        }

        private void count(int done) {
            if (completed.addAndGet(done) == items && Thread.currentThread() != owner) {
                LockSupport.unpark(owner);
            }
        }
    }

    /**
     * The team's size for a configured {@value #THREADS_PROPERTY} value (null or blank: the cores). A bad value
     * never breaks the library: it is reported and the cores are used.
     */
    public static Choice chooseThreads(String configured, int cores) {
        return choose(
                configured, THREADS_PROPERTY, 1, MAX_THREADS, cores, "using the " + cores + " available processors");
    }

    /** The spin for a configured {@value #SPIN_PROPERTY} value (null or blank: the default), as {@link #chooseThreads}. */
    public static Choice chooseSpinMicros(String configured) {
        return choose(
                configured,
                SPIN_PROPERTY,
                0,
                MAX_SPIN_MICROS,
                DEFAULT_SPIN_MICROS,
                "spinning " + DEFAULT_SPIN_MICROS + " µs");
    }

    /** An integer property in {@code [min, max]}: {@code fallback} when unset, and with a warning when refused. */
    private static Choice choose(String configured, String property, int min, int max, int fallback, String instead) {
        if (configured == null || configured.isBlank()) {
            return new Choice(fallback, null);
        }
        try {
            int value = Integer.parseInt(configured.trim());
            if (value >= min && value <= max) {
                return new Choice(value, null);
            }
        } catch (NumberFormatException ignored) {
            // reported below
        }
        return new Choice(
                fallback,
                property + " must be an integer in [" + min + ", " + max + "], got '" + configured + "': " + instead);
    }
}
