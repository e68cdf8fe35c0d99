//! Many devices at once: a bounded number of worker threads take devices off a shared list;
//! each device's result is kept, so one failing never stops the others.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::bundle::Bundle;
use crate::error::{Error, ErrorKind, Result};
use crate::install::{flash, FlashOptions, FlashReport};
use crate::progress::Progress;
use crate::uri::Target;

/// Runs `job` on every target with at most `jobs` at a time; results in the targets' order.
pub fn for_each<T: Send>(
    targets: &[Target],
    jobs: usize,
    job: impl Fn(&Target) -> Result<T> + Sync,
) -> Vec<Result<T>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<T>>>> =
        Mutex::new((0..targets.len()).map(|_| None).collect());
    let workers = jobs.clamp(1, targets.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(t) = targets.get(i) else { break };
                let r = job(t);
                if let Ok(mut v) = results.lock() {
                    v[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(Error::new(
                    ErrorKind::Io,
                    "the worker for this device stopped",
                ))
            })
        })
        .collect()
}

/// Flashes `bundle` to every target, at most `jobs` at a time.
pub fn flash_fleet(
    targets: &[Target],
    bundle: &Bundle,
    opts: &FlashOptions,
    jobs: usize,
    progress: &dyn Progress,
) -> Vec<Result<FlashReport>> {
    for_each(targets, jobs, |t| {
        let r = flash(t, bundle, opts, progress);
        progress.finish(&t.to_string(), r.is_ok());
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn runs_every_device_with_bounded_workers_and_keeps_order() {
        let targets: Vec<Target> = (0..9)
            .map(|i| Target::parse(&format!("ssh://h{i}")).unwrap())
            .collect();
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let r = for_each(&targets, 3, |t| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(5));
            running.fetch_sub(1, Ordering::SeqCst);
            if t.to_string() == "ssh://h4" {
                Err(Error::new(ErrorKind::Connect, "down"))
            } else {
                Ok(t.to_string())
            }
        });
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert_eq!(r.len(), 9);
        assert!(r[4].is_err());
        for (i, x) in r.iter().enumerate().filter(|(i, _)| *i != 4) {
            assert_eq!(x.as_ref().unwrap(), &format!("ssh://h{i}"));
        }
    }
}
