//! indicatif drawing of `resq-host`'s progress callbacks (calibration, `resq report`'s passes).

use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use resq_host::progress::Progress;

/// One bar per task, `<task> [bar] pos/len images (eta)`, the task names padded to the same
/// width when several are shown together.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<Vec<(String, ProgressBar)>>,
}

impl Bars {
    /// Bars on stderr (drawn on a terminal only: indicatif hides them otherwise); none when
    /// not `visible` (JSON output).
    pub fn new(visible: bool) -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(if visible {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            }),
            bars: Mutex::new(Vec::new()),
        }
    }

    fn bar(&self, task: &str) -> Option<ProgressBar> {
        let bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        bars.iter().find(|(t, _)| t == task).map(|(_, b)| b.clone())
    }
}

fn style(task: &str, width: usize) -> ProgressStyle {
    ProgressStyle::with_template(&format!(
        "{task:width$} {{bar:40}} {{pos}}/{{len}} images ({{eta}})"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Progress for Bars {
    fn start(&self, task: &str, total: u64) {
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        bars.retain(|(t, _)| t != task);
        let width = bars
            .iter()
            .map(|(t, _)| t.as_str())
            .chain([task])
            .map(|t| t.chars().count())
            .max()
            .unwrap_or(0);
        for (t, b) in bars.iter() {
            b.set_style(style(t, width));
        }
        let bar = ProgressBar::new(total).with_style(style(task, width));
        bars.push((task.to_string(), self.multi.add(bar)));
    }

    fn advance(&self, task: &str, n: u64) {
        if let Some(b) = self.bar(task) {
            b.inc(n);
        }
    }

    fn finish(&self, task: &str) {
        if let Some(b) = self.bar(task) {
            b.finish_and_clear();
        }
    }
}
