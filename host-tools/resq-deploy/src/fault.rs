//! Fault injection for the interruption tests: named kill points in the install protocol.
//!
//! `RESQ_FLASH_KILL_AT=LABEL:N` aborts the process (as a power cut or `kill -9` would stop
//! it: no destructors, no cleanup) the N-th time it passes point LABEL; points inside the
//! scripts that run on an SSH device kill that script with SIGKILL instead, and the host
//! process then aborts too. `RESQ_FLASH_KILL_AT=list` prints every point passed
//! (`resq-kill-point LABEL:N` on stderr), which is how the tests enumerate them.
//! `RESQ_FLASH_CORRUPT=NAME` flips one byte of file NAME on its way to the device.
//! Unset (always, outside tests), each point is one relaxed load.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

enum Spec {
    None,
    List,
    At(String, u32),
}

fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| match std::env::var("RESQ_FLASH_KILL_AT") {
        Ok(s) if s == "list" => Spec::List,
        Ok(s) => match s
            .rsplit_once(':')
            .and_then(|(l, n)| Some((l, n.parse().ok()?)))
        {
            Some((l, n)) => Spec::At(l.to_string(), n),
            None => Spec::None,
        },
        Err(_) => Spec::None,
    })
}

fn counts() -> &'static Mutex<HashMap<String, u32>> {
    static C: OnceLock<Mutex<HashMap<String, u32>>> = OnceLock::new();
    C.get_or_init(Default::default)
}

fn bump(label: &str) -> u32 {
    let mut c = counts().lock().unwrap_or_else(|e| e.into_inner());
    let n = c.entry(label.to_string()).or_insert(0);
    *n += 1;
    *n
}

/// Passes kill point `label` on the host.
pub(crate) fn point(label: &str) {
    match spec() {
        Spec::None => {}
        Spec::List => {
            let n = bump(label);
            eprintln!("resq-kill-point {label}:{n}");
        }
        Spec::At(l, at) => {
            if l == label && bump(label) == *at {
                eprintln!("resq: fault injection: stopping at {label}:{at}");
                std::process::abort();
            }
        }
    }
}

/// `LABEL:K` for a device script whose points are `remote-*` labels: the K-th time the
/// script passes LABEL is the N-th time overall. Empty when no remote point is due.
pub(crate) fn remote_spec() -> String {
    match spec() {
        Spec::At(l, at) if l.starts_with("remote-") => {
            let done = counts()
                .lock()
                .map(|c| c.get(l).copied().unwrap_or(0))
                .unwrap_or(0);
            if *at > done {
                format!("{l}:{}", at - done)
            } else {
                String::new()
            }
        }
        _ => String::new(),
    }
}

/// Counts the points a device script reported (`resq-kp LABEL` lines); aborts when the
/// script was killed at the requested point (it then never printed `resq-done`).
pub(crate) fn remote_passed(stdout: &str, asked: &str) {
    if matches!(spec(), Spec::None) {
        return;
    }
    for label in stdout.lines().filter_map(|l| l.strip_prefix("resq-kp ")) {
        let n = bump(label.trim());
        if matches!(spec(), Spec::List) {
            eprintln!("resq-kill-point {}:{n}", label.trim());
        }
    }
    if !asked.is_empty() && !stdout.lines().any(|l| l == "resq-done") {
        eprintln!("resq: fault injection: the device script stopped at {asked}");
        std::process::abort();
    }
}

/// Whether file `name` is to be damaged in transfer.
pub(crate) fn corrupt(name: &str) -> bool {
    std::env::var("RESQ_FLASH_CORRUPT").is_ok_and(|v| v == name)
}
