//! GPIO indicators, written against embedded-hal's `OutputPin`: a status LED that is lit while
//! frames flow, and one line per watched class that is high while that class leads with at
//! least its threshold. On a board the pins are `linux-embedded-hal`'s `CdevPin`s
//! ([`open_line`]); tests drive the same code with a mock pin.

use std::path::Path;

use anyhow::{Context, Result};
use embedded_hal::digital::{Error as _, OutputPin, PinState};

/// Most watched classes.
pub const MAX_WATCHES: usize = 16;

/// One watched class and its line.
#[derive(Debug)]
pub struct Watch<P> {
    /// Class index.
    pub class: usize,
    /// Score at or above which the line goes high.
    pub threshold: f32,
    pin: P,
    state: Option<bool>,
}

/// The status LED and the watched-class lines.
#[derive(Debug)]
pub struct Indicators<P> {
    status: Option<P>,
    status_state: Option<bool>,
    watches: heapless::Vec<Watch<P>, MAX_WATCHES>,
    /// Lines that already failed once (warned about, then left alone).
    failed: u32,
}

impl<P> Default for Indicators<P> {
    fn default() -> Self {
        Indicators {
            status: None,
            status_state: None,
            watches: heapless::Vec::new(),
            failed: 0,
        }
    }
}

/// A line write that failed, for the log.
#[derive(Debug, Clone, PartialEq)]
pub struct LineError {
    /// Which line: `status LED` or `watch <class>`.
    pub line: String,
    /// What the driver said.
    pub why: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GPIO {} write failed: {}", self.line, self.why)
    }
}

impl<P: OutputPin> Indicators<P> {
    /// Indicators on `status` (optional) and `watches` (`(class, threshold, pin)`), all driven
    /// low first so the board starts from a known state.
    pub fn new(status: Option<P>, watches: Vec<(usize, f32, P)>) -> Result<Self> {
        anyhow::ensure!(
            watches.len() <= MAX_WATCHES,
            "{} watched classes given, at most {MAX_WATCHES} are supported",
            watches.len()
        );
        let mut ind = Indicators {
            status,
            ..Default::default()
        };
        for (class, threshold, pin) in watches {
            // Cannot fail: the length was checked above.
            let _ = ind.watches.push(Watch {
                class,
                threshold,
                pin,
                state: None,
            });
        }
        let mut errors = vec![];
        ind.set_status(false, &mut errors);
        ind.set_watches(None, &mut errors);
        if let Some(e) = errors.first() {
            anyhow::bail!("{e}");
        }
        Ok(ind)
    }

    /// Whether any line is configured.
    pub fn is_empty(&self) -> bool {
        self.status.is_none() && self.watches.is_empty()
    }

    /// Frames are flowing (`true`) or the camera is lost / the service stops (`false`).
    pub fn camera(&mut self, ok: bool) -> Vec<LineError> {
        let mut errors = vec![];
        self.set_status(ok, &mut errors);
        if !ok {
            self.set_watches(None, &mut errors);
        }
        errors
    }

    /// A result: the leading class and its (smoothed) score.
    pub fn result(&mut self, class: usize, score: f32) -> Vec<LineError> {
        let mut errors = vec![];
        self.set_status(true, &mut errors);
        self.set_watches(Some((class, score)), &mut errors);
        errors
    }

    /// Drives every line low (at shutdown).
    pub fn all_off(&mut self) -> Vec<LineError> {
        self.camera(false)
    }

    fn set_status(&mut self, on: bool, errors: &mut Vec<LineError>) {
        if let Some(pin) = self.status.as_mut() {
            drive(
                pin,
                &mut self.status_state,
                on,
                0,
                &mut self.failed,
                || "status LED".into(),
                errors,
            );
        }
    }

    fn set_watches(&mut self, top: Option<(usize, f32)>, errors: &mut Vec<LineError>) {
        for (i, w) in self.watches.iter_mut().enumerate() {
            let on = top.is_some_and(|(c, s)| c == w.class && s >= w.threshold);
            let class = w.class;
            drive(
                &mut w.pin,
                &mut w.state,
                on,
                i + 1,
                &mut self.failed,
                || format!("watch line of class {class}"),
                errors,
            );
        }
    }
}

/// Writes `on` to `pin` if it changed; a failing line is reported once, then left alone.
fn drive<P: OutputPin>(
    pin: &mut P,
    state: &mut Option<bool>,
    on: bool,
    index: usize,
    failed: &mut u32,
    name: impl Fn() -> String,
    errors: &mut Vec<LineError>,
) {
    let bit = 1u32 << index.min(31);
    if *state == Some(on) || *failed & bit != 0 {
        return;
    }
    match pin.set_state(PinState::from(on)) {
        Ok(()) => *state = Some(on),
        Err(e) => {
            *failed |= bit;
            errors.push(LineError {
                line: name(),
                why: format!("{e:?} ({:?})", e.kind()),
            });
        }
    }
}

/// Claims `line` of GPIO chip `chip` as an output, low, through the Linux GPIO character device.
pub fn open_line(chip: &Path, line: u32, what: &str) -> Result<linux_embedded_hal::CdevPin> {
    use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
    let hint = "is the user in the `gpio` group, and is the chip in the board profile right? \
                (`gpioinfo` lists chips and lines; --no-gpio runs without GPIO)";
    // The driver's errors repeat their cause in their own text, so they are formatted once
    // here rather than chained.
    let mut c = Chip::new(chip).map_err(|e| {
        anyhow::anyhow!(
            "cannot open GPIO chip {} for the {what}: {e}; {hint}",
            chip.display()
        )
    })?;
    let handle = c
        .get_line(line)
        .and_then(|l| l.request(LineRequestFlags::OUTPUT, 0, "resq-fw"))
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot claim line {line} of {} for the {what} as an output: {e}; {hint}",
                chip.display()
            )
        })?;
    linux_embedded_hal::CdevPin::new(handle)
        .with_context(|| format!("line {line} of {} ({what})", chip.display()))
}
