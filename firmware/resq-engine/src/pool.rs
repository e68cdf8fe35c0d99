//! A fixed pool of worker threads, created once with the engine.
//!
//! [`Pool::run`] calls a borrowed closure once on every thread (the caller is thread 0) and
//! returns when all calls have returned; handing a job over allocates nothing.
//!
//! Waiting ([`wait`]) spins for a few microseconds (layers follow each other that quickly),
//! then yields the core between checks (so on a shared or oversubscribed machine the thread
//! that has work gets to run), and parks after a deadline, so an idle engine costs no CPU.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};
use std::vec::Vec;

type Job = dyn Fn(usize) + Sync;

/// How long an idle worker waits (spinning, then yielding) before parking.
const WORKER_WAIT: Duration = Duration::from_micros(500);
/// How long the caller waits for the workers to finish before parking.
const CALLER_WAIT: Duration = Duration::from_micros(200);
/// Pure spins before yielding (a few microseconds).
const SPINS: u32 = 256;

/// Waits until `done()`: spins, then yields between checks; once `deadline` has passed, calls
/// `park` (which must re-check `done` after announcing itself, then park).
fn wait(done: impl Fn() -> bool, deadline: Duration, park: impl Fn()) {
    let mut spins = 0u32;
    let mut start = None;
    while !done() {
        if spins < SPINS {
            spins += 1;
            core::hint::spin_loop();
        } else if start.get_or_insert_with(Instant::now).elapsed() < deadline {
            std::thread::yield_now();
        } else {
            park();
        }
    }
}

struct Shared {
    /// The current job while `pending > 0` (its true lifetime is `run`'s borrow; see `run`).
    job: Mutex<Option<&'static Job>>,
    /// Bumped once per job; workers wait for it to change.
    epoch: AtomicUsize,
    /// Workers that have not finished the current job.
    pending: AtomicUsize,
    /// Workers parked or about to park (they are unparked by the next `run`).
    sleeping: AtomicUsize,
    /// The caller of `run` when it parks waiting for the workers (unparked by the last one).
    caller: Mutex<Option<Thread>>,
    caller_sleeping: AtomicBool,
    panicked: AtomicBool,
    shutdown: AtomicBool,
    /// Workers that have started (and so made their start-up allocations).
    started: AtomicUsize,
}

/// `threads − 1` workers plus the calling thread.
pub(crate) struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `threads − 1` workers (none for `threads ≤ 1`).
    pub(crate) fn new(threads: usize) -> Pool {
        let shared = Arc::new(Shared {
            job: Mutex::new(None),
            epoch: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            sleeping: AtomicUsize::new(0),
            caller: Mutex::new(None),
            caller_sleeping: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            started: AtomicUsize::new(0),
        });
        let workers = (1..threads.max(1))
            .map(|index| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(std::format!("resq-{index}"))
                    .spawn(move || worker(&shared, index))
                    .expect("cannot start a worker thread")
            })
            .collect::<Vec<_>>();
        // A thread allocates as it starts (the runtime's per-thread records), which on a busy
        // machine can be after the first `run`: wait here, at load, so running never allocates.
        while shared.started.load(SeqCst) < workers.len() {
            std::thread::yield_now();
        }
        Pool { shared, workers }
    }

    /// Threads taking part in [`Pool::run`], the caller included.
    pub(crate) fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Calls `f(i)` once for every thread index `i` in `0..threads()` (0 on the caller) and
    /// returns when every call has returned. A panic in any call is re-raised here.
    pub(crate) fn run<'a>(&self, f: &'a (dyn Fn(usize) + Sync + 'a)) {
        if self.workers.is_empty() {
            f(0);
            return;
        }
        let s = &*self.shared;
        // SAFETY: only the lifetime is changed. Workers use `job` only between the epoch bump
        // below and their decrement of `pending`, and `Finish` (dropped on return *and* on
        // unwind) waits for `pending == 0` and clears the slot before this function returns,
        // so no worker can touch `f` after the borrow ends.
        let job: &'static Job =
            unsafe { core::mem::transmute::<&'a (dyn Fn(usize) + Sync + 'a), &'static Job>(f) };
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(job);
        s.pending.store(self.workers.len(), SeqCst);
        s.epoch.fetch_add(1, SeqCst);
        // Pairs with the worker's `sleeping` increment before its last epoch check.
        if s.sleeping.load(SeqCst) > 0 {
            for w in &self.workers {
                w.thread().unpark();
            }
        }

        struct Finish<'a>(&'a Shared);
        impl Drop for Finish<'_> {
            fn drop(&mut self) {
                let s = self.0;
                let done = || s.pending.load(SeqCst) == 0;
                wait(done, CALLER_WAIT, || {
                    *s.caller.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(std::thread::current());
                    s.caller_sleeping.store(true, SeqCst);
                    if !done() {
                        std::thread::park_timeout(Duration::from_millis(1));
                    }
                    s.caller_sleeping.store(false, SeqCst);
                });
                *s.job.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
        }
        let finish = Finish(s);
        f(0);
        drop(finish);
        if s.panicked.swap(false, SeqCst) {
            panic!("a resq worker thread panicked");
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.shutdown.store(true, SeqCst);
        s.epoch.fetch_add(1, SeqCst);
        for w in self.workers.drain(..) {
            w.thread().unpark();
            let _ = w.join();
        }
    }
}

fn worker(s: &Shared, index: usize) {
    s.started.fetch_add(1, SeqCst);
    // Epoch 0 is the pool's start: a job may be posted before this thread first looks.
    let mut seen = 0;
    loop {
        let posted = || s.epoch.load(SeqCst) != seen;
        wait(posted, WORKER_WAIT, || {
            s.sleeping.fetch_add(1, SeqCst);
            if !posted() {
                std::thread::park();
            }
            s.sleeping.fetch_sub(1, SeqCst);
        });
        seen = s.epoch.load(SeqCst);
        if s.shutdown.load(SeqCst) {
            return;
        }
        let job = *s.job.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(job) = job {
            if catch_unwind(AssertUnwindSafe(|| job(index))).is_err() {
                s.panicked.store(true, SeqCst);
            }
        }
        // Pairs with the caller's `caller_sleeping` store before its last check.
        if s.pending.fetch_sub(1, SeqCst) == 1 && s.caller_sleeping.load(SeqCst) {
            if let Some(caller) = &*s.caller.lock().unwrap_or_else(|e| e.into_inner()) {
                caller.unpark();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_runs_each_job_once_with_borrowed_data() {
        let pool = Pool::new(3);
        let counts: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
        for round in 0..300 {
            let local = round; // borrowed by the closure below
            pool.run(&|i| {
                counts[i].fetch_add(local - round + 1, SeqCst);
            });
            if round == 150 {
                // Long enough for the workers to fall asleep.
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        for c in &counts {
            assert_eq!(c.load(SeqCst), 300);
        }
    }

    #[test]
    fn a_worker_panic_reaches_the_caller_and_the_pool_survives() {
        let pool = Pool::new(2);
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(&|i| {
                if i == 1 {
                    panic!("boom");
                }
            })
        }));
        assert!(r.is_err());
        let n = AtomicUsize::new(0);
        pool.run(&|_| {
            n.fetch_add(1, SeqCst);
        });
        assert_eq!(n.load(SeqCst), 2);
    }

    #[test]
    fn a_caller_panic_still_waits_for_the_workers() {
        let pool = Pool::new(2);
        let done = AtomicBool::new(false);
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(&|i| {
                if i == 0 {
                    panic!("caller");
                }
                std::thread::sleep(Duration::from_millis(20));
                done.store(true, SeqCst);
            })
        }));
        assert!(r.is_err());
        assert!(done.load(SeqCst), "run returned before the worker finished");
    }

    #[test]
    fn one_thread_needs_no_workers() {
        let pool = Pool::new(1);
        assert_eq!(pool.threads(), 1);
        let n = AtomicUsize::new(0);
        pool.run(&|i| {
            n.fetch_add(i + 1, SeqCst);
        });
        assert_eq!(n.load(SeqCst), 1);
    }
}
#[cfg(test)]
mod overhead {
    use super::*;

    /// The cost of one `run` with trivial work on two threads (`cargo test --release -p
    /// resq-engine --lib -- --ignored --nocapture`): about 0.4 µs on an idle Zen 4.
    #[test]
    #[ignore]
    fn dispatch_cost() {
        let pool = Pool::new(2);
        let n = AtomicUsize::new(0);
        for _ in 0..1000 {
            pool.run(&|_| {
                n.fetch_add(1, Relaxed);
            });
        }
        let t = Instant::now();
        for _ in 0..100000 {
            pool.run(&|_| {
                n.fetch_add(1, Relaxed);
            });
        }
        std::eprintln!("dispatch: {:?} per run", t.elapsed() / 100000);
    }
}
