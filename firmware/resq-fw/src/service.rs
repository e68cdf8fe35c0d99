//! The classification service: a capture thread hands the newest frame to inference workers
//! (a stale frame is replaced, never queued), results are smoothed and reported in order on
//! stdout and through GPIO. A lost camera is reopened with back-off; a source that is not
//! there at start-up ends the run at once (bad input); a stop request (SIGTERM / SIGINT) or a
//! closed stdout ends everything within a fraction of a second, LEDs off.
//!
//! ```text
//!  capture thread ──newest frame──▶ [one-slot mailbox] ──▶ worker 1..N ──results──▶ reporter
//!   (source, back-off)   replaces a stale frame            (own engine each)      (order, smoothing,
//!        ▲                                                        │                  stdout, GPIO)
//!        └──────────────── recycled frame buffers ◀───────────────┘
//! ```

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use embedded_hal::digital::OutputPin;
use resq_io::bad_input;

use crate::classify::{top_k, Classifier};
use crate::frame::FrameBuf;
use crate::gpio::Indicators;
use crate::model::{labels, ModelFile};
use crate::report::{entries, Record};
use crate::smooth::Smoother;
use crate::source::{FrameSource, Read, SourceError};

/// Most inference worker threads.
pub const MAX_THREADS: usize = 16;

/// How the service runs.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Inference worker threads, 1..=[`MAX_THREADS`].
    pub threads: usize,
    /// Frames to average scores over (1 = none).
    pub smooth: usize,
    /// Entries in each top-k list.
    pub top_k: usize,
    /// JSON lines instead of human lines.
    pub json: bool,
    /// First wait before reopening a lost source; doubles up to `backoff_max`.
    pub backoff: Duration,
    /// Longest wait between reopening attempts.
    pub backoff_max: Duration,
    /// Stop after this many processed frames.
    pub max_frames: Option<u64>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            threads: 1,
            smooth: 1,
            top_k: 3,
            json: false,
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            max_frames: None,
        }
    }
}

/// Opens the frame source; called again after the source is lost.
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn FrameSource>, SourceError> + Send>;

/// Why the service ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The source ended (a video file, a folder read once).
    EndOfStream,
    /// A stop was requested (signal, or `max_frames` reached).
    Stopped,
    /// Nobody reads the results any more: writing them failed (`resq-fw run … | head`, a
    /// closed socket). Handled like a stop request.
    OutputClosed,
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Why it ended.
    pub end: End,
    /// Frames classified and reported.
    pub processed: u64,
    /// Frames replaced in the hand-off before inference took them.
    pub replaced: u64,
    /// Frames the source delivered that were not processed (gaps in frame numbers, including
    /// `replaced`).
    pub dropped: u64,
    /// Times the source was lost.
    pub lost: u64,
    /// Frame buffers ever allocated (stays small: they are recycled).
    pub buffers: usize,
}

/// The newest-frame hand-off: one slot, and a pool of recycled buffers.
struct Mailbox {
    state: Mutex<Slot>,
    changed: Condvar,
}

#[derive(Default)]
struct Slot {
    frame: Option<FrameBuf>,
    closed: bool,
    pool: Vec<FrameBuf>,
    allocated: usize,
    replaced: u64,
    next_ticket: u64,
}

/// How long blocked threads wait before looking at the stop flag again.
const TICK: Duration = Duration::from_millis(20);

impl Mailbox {
    fn new() -> Mailbox {
        Mailbox {
            state: Mutex::new(Slot::default()),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slot> {
        // A panicking thread cannot leave the slot inconsistent (every update is one assignment).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, g: MutexGuard<'a, Slot>) -> MutexGuard<'a, Slot> {
        match self.changed.wait_timeout(g, TICK) {
            Ok((g, _)) => g,
            Err(e) => e.into_inner().0,
        }
    }

    fn spare(&self) -> FrameBuf {
        let mut s = self.lock();
        s.pool.pop().unwrap_or_else(|| {
            s.allocated += 1;
            FrameBuf::default()
        })
    }

    fn recycle(&self, frame: FrameBuf) {
        self.lock().pool.push(frame);
    }

    /// Live sources replace a frame inference has not taken yet; others wait for the slot.
    fn publish(&self, frame: FrameBuf, live: bool, stop: &AtomicBool) {
        let mut s = self.lock();
        if !live {
            while s.frame.is_some() && !stop.load(Ordering::Relaxed) {
                s = self.wait(s);
            }
        }
        if let Some(stale) = s.frame.replace(frame) {
            s.replaced += 1;
            s.pool.push(stale);
        }
        self.changed.notify_all();
    }

    fn take(&self, stop: &AtomicBool) -> Option<(u64, FrameBuf)> {
        let mut s = self.lock();
        loop {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            if let Some(f) = s.frame.take() {
                let ticket = s.next_ticket;
                s.next_ticket += 1;
                self.changed.notify_all();
                return Some((ticket, f));
            }
            if s.closed {
                return None;
            }
            s = self.wait(s);
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }
}

/// What threads tell the reporter.
enum Msg {
    Opened(String),
    Lost { why: String, retry: Duration },
    BadFrame(String),
    EndOfStream,
    Fatal(String),
    Result(Box<Outcome>),
}

struct Outcome {
    ticket: u64,
    seq: u64,
    wall: SystemTime,
    captured: Instant,
    name: Option<String>,
    /// Probabilities and logits.
    scores: Result<(Vec<f32>, Vec<f32>), String>,
    infer: Duration,
    done: Instant,
}

fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= until {
            break;
        }
        std::thread::sleep((until - now).min(TICK));
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// The capture thread: open, read, hand over; on loss, back off and reopen. A source missing
/// at the first attempt ends the run (the command line names something that is not there);
/// once it has opened, a missing source is waited for like a lost one.
fn capture(
    mut open: Opener,
    mailbox: Arc<Mailbox>,
    tx: Sender<Msg>,
    stop: Arc<AtomicBool>,
    cfg: ServiceConfig,
) {
    let mut delay = cfg.backoff;
    let mut source: Option<Box<dyn FrameSource>> = None;
    let mut opened_once = false;
    let mut last_frame = Instant::now();
    // Third-party drivers may panic (e.g. on an unplugged device); that is a lost camera too.
    let lose = |source: &mut Option<Box<dyn FrameSource>>, why: String, delay: &mut Duration| {
        if let Some(s) = source.take() {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(s)));
        }
        let _ = tx.send(Msg::Lost { why, retry: *delay });
        sleep_unless(&stop, *delay);
        *delay = (*delay * 2).min(cfg.backoff_max);
    };
    while !stop.load(Ordering::Relaxed) {
        let Some(s) = source.as_mut() else {
            match catch_unwind(AssertUnwindSafe(&mut open)) {
                Ok(Ok(s)) => {
                    let _ = tx.send(Msg::Opened(s.describe()));
                    source = Some(s);
                    opened_once = true;
                    last_frame = Instant::now();
                }
                Ok(Err(SourceError::Fatal(why))) => {
                    let _ = tx.send(Msg::Fatal(why));
                    break;
                }
                Ok(Err(SourceError::Missing(why))) if !opened_once => {
                    let _ = tx.send(Msg::Fatal(why));
                    break;
                }
                Ok(Err(
                    SourceError::Lost(why) | SourceError::BadFrame(why) | SourceError::Missing(why),
                )) => lose(&mut source, why, &mut delay),
                Err(p) => lose(
                    &mut source,
                    format!("the source panicked: {}", panic_text(p)),
                    &mut delay,
                ),
            }
            continue;
        };
        let mut buf = mailbox.spare();
        let read = catch_unwind(AssertUnwindSafe(|| s.read(&mut buf)));
        let live = s.live();
        let stall = s.stall_after();
        match read {
            Ok(Ok(Read::Frame)) => {
                delay = cfg.backoff;
                last_frame = Instant::now();
                mailbox.publish(buf, live, &stop);
            }
            Ok(Ok(Read::Timeout)) => {
                mailbox.recycle(buf);
                if let Some(limit) = stall.filter(|&l| last_frame.elapsed() > l) {
                    lose(
                        &mut source,
                        format!("no frame for {} s", limit.as_secs()),
                        &mut delay,
                    );
                }
            }
            Ok(Ok(Read::End)) => {
                mailbox.recycle(buf);
                let _ = tx.send(Msg::EndOfStream);
                break;
            }
            Ok(Err(SourceError::BadFrame(why))) => {
                mailbox.recycle(buf);
                let _ = tx.send(Msg::BadFrame(why));
            }
            Ok(Err(SourceError::Fatal(why))) => {
                mailbox.recycle(buf);
                let _ = tx.send(Msg::Fatal(why));
                break;
            }
            Ok(Err(SourceError::Lost(why) | SourceError::Missing(why))) => {
                mailbox.recycle(buf);
                lose(&mut source, why, &mut delay);
            }
            Err(p) => {
                mailbox.recycle(buf);
                lose(
                    &mut source,
                    format!("the source panicked: {}", panic_text(p)),
                    &mut delay,
                );
            }
        }
    }
    if let Some(s) = source.take() {
        let _ = catch_unwind(AssertUnwindSafe(move || drop(s)));
    }
    mailbox.close();
}

/// An inference worker: newest frame → scores, until the hand-off closes or a stop.
fn worker(
    mut classifier: Classifier,
    mailbox: Arc<Mailbox>,
    tx: Sender<Msg>,
    stop: Arc<AtomicBool>,
) {
    while let Some((ticket, frame)) = mailbox.take(&stop) {
        let t0 = Instant::now();
        let scores = match classifier.classify(&frame) {
            Ok(p) => Ok(p.to_vec()),
            Err(e) => Err(format!("frame {}: {e}", frame.seq)),
        }
        .map(|p| (p, classifier.logits().to_vec()));
        let outcome = Outcome {
            ticket,
            seq: frame.seq,
            wall: frame.wall,
            captured: frame.captured,
            name: frame.name.clone(),
            scores,
            infer: t0.elapsed(),
            done: Instant::now(),
        };
        mailbox.recycle(frame);
        if stop.load(Ordering::Relaxed) || tx.send(Msg::Result(Box::new(outcome))).is_err() {
            break;
        }
    }
}

/// Runs the service until the source ends, `stop` is raised or `out` is closed. Results go to
/// `out`, messages (camera opened / lost, skipped frames) to `log`; `indicators` follow both
/// and are dark at the end. A source that cannot work as given (`Fatal`, or `Missing` before
/// it ever opened) ends the run with a bad-input error.
pub fn run<P: OutputPin>(
    model: ModelFile,
    open: Opener,
    cfg: &ServiceConfig,
    indicators: &mut Indicators<P>,
    out: &mut dyn Write,
    log: &mut dyn Write,
    stop: Arc<AtomicBool>,
) -> Result<Summary> {
    if !(1..=MAX_THREADS).contains(&cfg.threads) {
        return Err(bad_input(format!(
            "--threads {} is out of range: use 1..={MAX_THREADS}",
            cfg.threads
        )));
    }
    let classifiers = (0..cfg.threads)
        .map(|_| Classifier::new(model))
        .collect::<Result<Vec<_>>>()?;
    let engine = classifiers[0].engine();
    let labels = labels(engine);
    let mailbox = Arc::new(Mailbox::new());
    let (tx, rx) = mpsc::channel();
    // Threads are detached, not scoped: a driver call stuck in the kernel must not keep the
    // process from exiting on SIGTERM.
    {
        let (mailbox, tx, stop, cfg) = (mailbox.clone(), tx.clone(), stop.clone(), cfg.clone());
        std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || capture(open, mailbox, tx, stop, cfg))?;
    }
    for (i, c) in classifiers.into_iter().enumerate() {
        let (mailbox, tx, stop) = (mailbox.clone(), tx.clone(), stop.clone());
        std::thread::Builder::new()
            .name(format!("infer-{i}"))
            .spawn(move || worker(c, mailbox, tx, stop))?;
    }
    drop(tx);

    let mut smoother = Smoother::new(cfg.smooth, labels.len());
    let mut logit_smoother = Smoother::new(cfg.smooth, labels.len());
    // Results that arrived before an earlier ticket's. Not a fixed-capacity list: a worker sends
    // its result and takes the next frame at once, so the others can run any number of frames
    // ahead of a slow one, and a full list would drop a result and stall the order for good.
    let mut pending: Vec<Box<Outcome>> = Vec::with_capacity(MAX_THREADS);
    let mut next_ticket = 0u64;
    let mut last_seq: Option<u64> = None;
    let mut summary = Summary {
        end: End::Stopped,
        processed: 0,
        replaced: 0,
        dropped: 0,
        lost: 0,
        buffers: 0,
    };
    let mut fatal = None;
    let mut write_error: Option<std::io::Error> = None;
    let mut deadline: Option<Instant> = None;
    let gpio_log = |log: &mut dyn Write, errors: Vec<crate::gpio::LineError>| {
        for e in errors {
            let _ = writeln!(log, "warning: {e}; that line is left alone from now on");
        }
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            // Give threads a moment to finish their frame; do not wait on a stuck one.
            let d = *deadline.get_or_insert_with(|| Instant::now() + Duration::from_millis(500));
            if Instant::now() > d {
                break;
            }
        }
        let msg = match rx.recv_timeout(TICK) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        match msg {
            Msg::Opened(what) => {
                let _ = writeln!(log, "camera: {what}");
                last_seq = None;
            }
            Msg::Lost { why, retry } => {
                summary.lost += 1;
                let _ = writeln!(
                    log,
                    "camera lost: {why}; retrying in {:.1} s",
                    retry.as_secs_f64()
                );
                smoother.reset();
                logit_smoother.reset();
                gpio_log(log, indicators.camera(false));
            }
            Msg::BadFrame(why) => {
                let _ = writeln!(log, "warning: {why}");
            }
            Msg::EndOfStream if summary.end != End::OutputClosed => summary.end = End::EndOfStream,
            Msg::EndOfStream => {}
            Msg::Fatal(why) => fatal = Some(why),
            // Once stopping, results still in flight are not reported.
            Msg::Result(_) if stop.load(Ordering::Relaxed) => {}
            Msg::Result(o) => {
                pending.push(o);
                while let Some(i) = pending.iter().position(|o| o.ticket == next_ticket) {
                    let o = pending.swap_remove(i);
                    next_ticket += 1;
                    let (probabilities, logits) = match &o.scores {
                        Ok(s) => s,
                        Err(why) => {
                            let _ = writeln!(log, "warning: skipping {why}");
                            continue;
                        }
                    };
                    let dropped = match last_seq {
                        Some(prev) if o.seq > prev => o.seq - prev - 1,
                        _ => 0,
                    };
                    last_seq = Some(o.seq);
                    summary.dropped += dropped;
                    let mean = smoother.push(probabilities);
                    let mean_logits = logit_smoother.push(logits);
                    let top = top_k(mean, cfg.top_k);
                    let (class, score) = top[0];
                    let rec = Record {
                        frame: o.seq,
                        ts: o
                            .wall
                            .duration_since(UNIX_EPOCH)
                            .map_or(0.0, |d| (d.as_millis() as f64) / 1e3),
                        image: o.name.as_deref(),
                        label: &labels[class],
                        class,
                        score,
                        logit: mean_logits[class],
                        topk: entries(&top, &labels, mean_logits),
                        latency_ms: ms(o.done - o.captured),
                        infer_ms: ms(o.infer),
                        dropped,
                        smoothed: smoother.len(),
                    };
                    let line = if cfg.json { rec.json() } else { rec.human() };
                    // A closed stdout (e.g. `| head`) ends the service like a stop request:
                    // no result of this frame reaches anyone, so it is not counted either.
                    // Another write error (a full disk) ends it too, as a failure.
                    if let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush()) {
                        if e.kind() != std::io::ErrorKind::BrokenPipe {
                            write_error = Some(e);
                        }
                        summary.end = End::OutputClosed;
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                    gpio_log(log, indicators.result(class, score));
                    summary.processed += 1;
                    if cfg.max_frames.is_some_and(|m| summary.processed >= m) {
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                }
            }
        }
    }
    gpio_log(log, indicators.all_off());
    {
        let s = mailbox.lock();
        summary.replaced = s.replaced;
        summary.buffers = s.allocated;
    }
    if let Some(why) = fatal {
        return Err(bad_input(why));
    }
    if let Some(e) = write_error {
        return Err(anyhow::anyhow!("cannot write the results: {e}"));
    }
    Ok(summary)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}
