//! `Engine::run` allocates nothing, on every kernel tier and with a thread pool: all memory
//! (arena, packed weights, scratch, worker threads) is taken at load.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use common::{aligned, build_dag, Step};
use resq_engine::{Engine, EngineOptions, Isa};
use resq_format::Model;

/// Counts the allocations of the threads that run the engine: the test's own thread and the
/// pool's workers (named `resq-N`). The test harness's threads allocate when they please (more
/// so on a busy machine) and are not counted.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set on the test's thread.
    static ENGINE_CALLER: Cell<bool> = const { Cell::new(false) };
    /// Set while `counted` looks at the thread's name (which may itself allocate once).
    static LOOKING: Cell<bool> = const { Cell::new(false) };
}

fn counted() -> bool {
    if ENGINE_CALLER.with(Cell::get) {
        return true;
    }
    if LOOKING.with(|l| l.replace(true)) {
        return false;
    }
    let worker = std::thread::current()
        .name()
        .is_some_and(|n| n.starts_with("resq-"));
    LOOKING.with(|l| l.set(false));
    worker
}

// SAFETY: forwards to the system allocator; the counter has no effect on the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counted() {
            ALLOCATIONS.fetch_add(1, SeqCst);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counted() {
            ALLOCATIONS.fetch_add(1, SeqCst);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn run_allocates_nothing_on_any_tier_or_thread_count() {
    ENGINE_CALLER.with(|c| c.set(true));
    // 3×3 and 1×1 convolutions, a residual add and pooling, large enough to use the threads.
    let steps = [
        Step::Conv {
            from: 0,
            kernel: 3,
            channels: 64,
        },
        Step::Conv {
            from: 1,
            kernel: 1,
            channels: 64,
        },
        Step::Add { a: 1, b: 2 },
        Step::Conv {
            from: 3,
            kernel: 3,
            channels: 32,
        },
    ];
    let file = build_dag(24, &steps, 3).file();
    let bytes = aligned(&file);
    for isa in Isa::ALL.into_iter().filter(|i| i.supported()) {
        for threads in [1, 2, 3] {
            let model = Model::parse(bytes.as_bytes()).unwrap();
            let mut engine = Engine::with_options(
                model,
                EngineOptions {
                    threads,
                    isa: Some(isa),
                },
            )
            .unwrap();
            let input = vec![3i8; engine.input_mut().len()];
            engine.set_input(&input).unwrap();
            engine.run();
            let before = ALLOCATIONS.load(SeqCst);
            for _ in 0..20 {
                engine.set_input(&input).unwrap();
                engine.run();
            }
            let after = ALLOCATIONS.load(SeqCst);
            assert_eq!(
                after, before,
                "{isa} with {threads} thread(s) allocated while running"
            );
        }
    }
}
