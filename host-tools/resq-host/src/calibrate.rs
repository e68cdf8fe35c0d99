//! Activation ranges from real images, observed on tract's float model.

use anyhow::{bail, Context, Result};
use tract_onnx::prelude::*;

use crate::images::Preprocess;
use crate::import::Source;
use crate::ir::Graph;
use crate::progress::{Progress, CALIBRATING};

/// How activation ranges are chosen from the calibration data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// The smallest and largest values seen.
    MinMax,
    /// The given percentile of values on each side (e.g. 99.99), which ignores rare outliers.
    Percentile(f32),
    /// The clipping threshold whose int8 distribution is closest to the float one in KL
    /// divergence (TensorRT's and ncnn's entropy calibration).
    Entropy,
    /// The clipping threshold with the least expected squared quantization error
    /// (rounding error inside the range plus clipping error outside it).
    Mse,
}

impl Method {
    /// Name stored in the file's provenance.
    pub fn name(&self) -> &'static str {
        match self {
            Method::MinMax => "minmax",
            Method::Percentile(_) => "percentile",
            Method::Entropy => "entropy",
            Method::Mse => "mse",
        }
    }

    /// Parameter stored in the file's provenance.
    pub fn param(&self) -> f32 {
        match self {
            Method::Percentile(p) => *p,
            _ => 0.0,
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

/// Runs the calibration images (their preprocessed pixels, see [`Preprocess::load_pixels`])
/// through the float model and returns a `(lo, hi)` range per IR tensor. Images are processed
/// in the given (sorted) order, so results are deterministic. Reports the task
/// [`CALIBRATING`] to `progress`.
pub fn calibrate(
    source: &Source,
    graph: &Graph,
    pre: &Preprocess,
    images: &[Vec<u8>],
    method: Method,
    progress: &dyn Progress,
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
    progress.start(CALIBRATING, (images.len() * passes) as u64);
    let inputs: Vec<Tensor> = images.iter().map(|px| pre.float_input(px)).collect();

    let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); n];
    for input in &inputs {
        let outs = observer.observe(input.clone())?;
        for (r, o) in ranges.iter_mut().zip(&outs) {
            for &v in o.to_plain_array_view::<f32>()?.iter() {
                r.0 = r.0.min(v);
                r.1 = r.1.max(v);
            }
        }
        progress.advance(CALIBRATING, 1);
    }
    if method != Method::MinMax {
        // Second pass: a histogram per tensor. Percentile bins the signed values over
        // [min, max]; entropy and MSE bin magnitudes over [0, max |x|] and pick a threshold T,
        // giving [0, T] for non-negative tensors (after ReLU) and [−T, T] otherwise.
        let spans: Vec<(f32, f32)> = ranges
            .iter()
            .map(|&(lo, hi)| match method {
                Method::Percentile(_) => (lo, hi),
                _ => (0.0, lo.abs().max(hi.abs())),
            })
            .collect();
        let magnitudes = !matches!(method, Method::Percentile(_));
        let mut hist = vec![vec![0u64; BINS]; n];
        for input in &inputs {
            let outs = observer.observe(input.clone())?;
            for ((h, span), o) in hist.iter_mut().zip(&spans).zip(&outs) {
                let width = (span.1 - span.0).max(f32::MIN_POSITIVE);
                for &v in o.to_plain_array_view::<f32>()?.iter() {
                    let v = if magnitudes { v.abs() } else { v };
                    let b = (((v - span.0) / width) * BINS as f32) as usize;
                    h[b.min(BINS - 1)] += 1;
                }
            }
            progress.advance(CALIBRATING, 1);
        }
        for (t, ((r, h), span)) in ranges.iter_mut().zip(&hist).zip(&spans).enumerate() {
            // Clipping the logits would change which class wins: keep their full range.
            if t == graph.output {
                continue;
            }
            let one_sided = r.0 >= 0.0;
            // int8 levels available on [0, T]: all 256 after ReLU, half of them when signed.
            let levels = if one_sided { 256 } else { 128 };
            let threshold = |bins: usize| bins as f32 * (span.1 - span.0) / BINS as f32;
            let t = match method {
                Method::Percentile(p) => {
                    *r = percentile_range(h, *r, p);
                    continue;
                }
                Method::Entropy if one_sided => {
                    // ReLU outputs pile up at exactly 0, which int8 represents exactly; left in,
                    // that spike dominates the divergence and drives the threshold far too low.
                    let mut h = h.clone();
                    h[0] = 0;
                    threshold(entropy_bins(&h, levels))
                }
                Method::Entropy => threshold(entropy_bins(h, levels)),
                _ => threshold(mse_bins(h, levels)),
            };
            *r = if one_sided { (0.0, t) } else { (-t, t) };
        }
    }
    progress.finish(CALIBRATING);
    Ok(ranges)
}

/// Number of leading histogram bins whose clipped distribution, quantized to `levels` levels,
/// loses the least information (minimum KL divergence), as in TensorRT's entropy calibrator.
fn entropy_bins(hist: &[u64], levels: usize) -> usize {
    let n = hist.len();
    let mut best = (f64::INFINITY, n);
    for i in (levels..=n).step_by(8).chain([n]) {
        // P: the first i bins, with everything beyond folded into the last one.
        let mut p: Vec<f64> = hist[..i].iter().map(|&c| c as f64).collect();
        p[i - 1] += hist[i..].iter().sum::<u64>() as f64;
        // Q: the same bins merged into `levels` groups and spread back over their non-empty bins.
        let mut q = vec![0f64; i];
        for j in 0..levels {
            let (a, b) = (
                j * i / levels,
                ((j + 1) * i / levels).max(j * i / levels + 1).min(i),
            );
            let total: f64 = hist[a..b].iter().map(|&c| c as f64).sum();
            let nonzero = hist[a..b].iter().filter(|&&c| c != 0).count();
            if nonzero > 0 {
                for k in a..b {
                    if hist[k] != 0 {
                        q[k] = total / nonzero as f64;
                    }
                }
            }
        }
        let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
        if sp == 0.0 || sq == 0.0 {
            continue;
        }
        let kl: f64 = p
            .iter()
            .zip(&q)
            .filter(|(&pp, _)| pp > 0.0)
            // An empty Q bin where P has mass: a tiny floor instead of infinity (smoothing).
            .map(|(&pp, &qq)| (pp / sp) * ((pp / sp) / (qq / sq).max(1e-12)).ln())
            .sum();
        if kl < best.0 {
            best = (kl, i);
        }
    }
    best.1
}

/// Number of leading histogram bins minimising the expected squared error of quantizing to
/// `levels` steps: step²/12 for values inside the range, the squared distance for those clipped.
fn mse_bins(hist: &[u64], levels: usize) -> usize {
    let n = hist.len();
    let mut best = (f64::INFINITY, n);
    for i in 1..=n {
        let step = i as f64 / levels as f64; // in bins
        let mut err = 0.0;
        for (k, &c) in hist.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let center = k as f64 + 0.5;
            err += c as f64
                * if center <= i as f64 {
                    step * step / 12.0
                } else {
                    (center - i as f64).powi(2)
                };
        }
        if err < best.0 {
            best = (err, i);
        }
    }
    best.1
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
    fn entropy_and_mse_clip_a_long_tail_but_keep_the_bulk() {
        // Exponential-ish bulk in the first 200 bins, a few far outliers at the end.
        let mut hist = vec![0u64; BINS];
        for (k, b) in hist.iter_mut().enumerate().take(200) {
            *b = (100_000.0 * (-(k as f64) / 40.0).exp()) as u64 + 1;
        }
        hist[BINS - 1] = 3;
        for bins in [entropy_bins(&hist, 256), mse_bins(&hist, 256)] {
            assert!(bins < BINS / 2, "the outliers must be clipped: {bins}");
            assert!(bins >= 100, "the bulk must be kept: {bins}");
        }
    }

    #[test]
    fn entropy_and_mse_keep_a_uniform_range() {
        let hist = vec![1000u64; BINS];
        assert!(entropy_bins(&hist, 256) > BINS * 9 / 10);
        assert!(mse_bins(&hist, 256) > BINS * 9 / 10);
    }

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
