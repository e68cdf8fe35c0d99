//! Activation ranges from real images, observed on tract's float model.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use tract_onnx::prelude::*;

use crate::images::Preprocess;
use crate::import::Source;
use crate::ir::Graph;

/// How activation ranges are chosen from the calibration data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// The smallest and largest values seen.
    MinMax,
    /// The given percentile of values on each side (e.g. 99.99), which ignores rare outliers.
    Percentile(f32),
}

impl Method {
    /// Name stored in the file's provenance.
    pub fn name(&self) -> &'static str {
        match self {
            Method::MinMax => "minmax",
            Method::Percentile(_) => "percentile",
        }
    }

    /// Parameter stored in the file's provenance.
    pub fn param(&self) -> f32 {
        match self {
            Method::MinMax => 0.0,
            Method::Percentile(p) => *p,
        }
    }
}

/// tract's float model with every IR tensor exposed as an output, in tensor order.
pub struct Observer {
    plan: Arc<TypedSimplePlan>,
}

impl Observer {
    /// Builds the observing model.
    pub fn new(source: &Source, graph: &Graph) -> Result<Observer> {
        let mut model = source.model.clone();
        let outlets: Vec<OutletId> = graph.tensors.iter().map(|t| t.outlet).collect();
        model.select_output_outlets(&outlets)?;
        let plan = model.into_optimized()?.into_runnable()?;
        Ok(Observer { plan })
    }

    /// Every IR tensor's float values for one input.
    pub fn observe(&self, input: Tensor) -> Result<TVec<TValue>> {
        self.plan
            .run(tvec!(input.into()))
            .context("tract failed to run the float model")
    }
}

const BINS: usize = 2048;

/// Runs the calibration images through the float model and returns a `(lo, hi)` range per
/// IR tensor. Images are processed in the given (sorted) order, so results are deterministic.
pub fn calibrate(
    source: &Source,
    graph: &Graph,
    pre: &Preprocess,
    images: &[PathBuf],
    method: Method,
    progress: bool,
) -> Result<Vec<(f32, f32)>> {
    if images.is_empty() {
        bail!("no calibration images");
    }
    let observer = Observer::new(source, graph)?;
    let n = graph.tensors.len();
    let passes = if matches!(method, Method::MinMax) {
        1
    } else {
        2
    };
    let bar = if progress {
        let bar = ProgressBar::new((images.len() * passes) as u64);
        bar.set_style(
            ProgressStyle::with_template("calibrating {bar:40} {pos}/{len} images ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let inputs: Vec<Tensor> = images
        .iter()
        .map(|p| Ok(pre.float_input(&pre.load_pixels(p)?)))
        .collect::<Result<_>>()?;

    let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); n];
    for input in &inputs {
        let outs = observer.observe(input.clone())?;
        for (r, o) in ranges.iter_mut().zip(&outs) {
            for &v in o.to_plain_array_view::<f32>()?.iter() {
                r.0 = r.0.min(v);
                r.1 = r.1.max(v);
            }
        }
        bar.inc(1);
    }
    if let Method::Percentile(p) = method {
        let mut hist = vec![vec![0u64; BINS]; n];
        for input in &inputs {
            let outs = observer.observe(input.clone())?;
            for ((h, r), o) in hist.iter_mut().zip(&ranges).zip(&outs) {
                let width = (r.1 - r.0).max(f32::MIN_POSITIVE);
                for &v in o.to_plain_array_view::<f32>()?.iter() {
                    let b = (((v - r.0) / width) * BINS as f32) as usize;
                    h[b.min(BINS - 1)] += 1;
                }
            }
            bar.inc(1);
        }
        for (r, h) in ranges.iter_mut().zip(&hist) {
            *r = percentile_range(h, *r, p);
        }
    }
    bar.finish_and_clear();
    Ok(ranges)
}

/// The `(100 − p)`-th and `p`-th percentiles of a histogram over `range`.
fn percentile_range(hist: &[u64], range: (f32, f32), p: f32) -> (f32, f32) {
    let total: u64 = hist.iter().sum();
    let tail = ((1.0 - p as f64 / 100.0) * total as f64).floor() as u64;
    let width = (range.1 - range.0) / hist.len() as f32;
    let (mut acc, mut lo_bin) = (0, 0);
    for (i, &c) in hist.iter().enumerate() {
        acc += c;
        if acc > tail {
            lo_bin = i;
            break;
        }
    }
    let (mut acc, mut hi_bin) = (0, hist.len() - 1);
    for (i, &c) in hist.iter().enumerate().rev() {
        acc += c;
        if acc > tail {
            hi_bin = i;
            break;
        }
    }
    (
        range.0 + lo_bin as f32 * width,
        range.0 + (hi_bin + 1) as f32 * width,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_trims_outliers_only() {
        // 10 000 values in bin 0..=9 and one outlier in the last bin.
        let mut hist = vec![0u64; 100];
        for b in hist.iter_mut().take(10) {
            *b = 1000;
        }
        hist[99] = 1;
        let (lo, hi) = percentile_range(&hist, (0.0, 100.0), 99.99);
        assert_eq!(lo, 0.0);
        assert_eq!(hi, 10.0);
        let (_, hi) = percentile_range(&hist, (0.0, 100.0), 100.0);
        assert_eq!(hi, 100.0);
    }
}
