//! Measurement: how far a `.resq` file's int8 tensors are from tract's f32 ones, layer by
//! layer, and how often the file and its float model agree on the top class.
//!
//! The file does not record where tract computes each tensor, but the importer is
//! deterministic: importing the file's source ONNX gives the same IR graph (same tensors in the
//! same order), checked against the file's tensor and layer names. tract then computes every
//! IR tensor in f32 ([`FloatModel`], an [`Observer`]) while the engine runs the file one layer
//! at a time, and each layer's int8 output is dequantized and compared with the f32 one: SQNR,
//! cosine, clipping, a histogram against the int8 range; per-channel weight ranges come from
//! the graph's (BatchNorm-folded) float weights. [`measure_layers`] is what `resq report` and
//! `resq convert --auto-fallback` run; nothing here draws or writes anything.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{anyhow, bail, ensure, Context, Result};
use resq_engine::{AlignedBytes, Engine, Values};
use resq_format::{Layout, Model, Op};

use crate::calibrate::Observer;
use crate::eval::{check_reference_input, evaluate, preprocess_of, EvalReport, Reference};
use crate::images::Sample;
use crate::import::{import, load, Source};
use crate::ir;
use crate::progress::{NoProgress, Progress, COMPARING_LAYERS, EVALUATING};

/// A histogram over the int8 representable range, with [`OUTER_BINS`] bins of the same width on
/// each side for values the int8 tensor clips (the outermost bins also hold everything beyond).
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    /// Left edge of the first bin.
    pub lo: f32,
    /// Right edge of the last bin.
    pub hi: f32,
    /// Counts, left to right.
    pub counts: Vec<u64>,
}

/// Bins across the int8 representable range.
pub const INNER_BINS: usize = 64;
/// Bins on each side of it.
pub const OUTER_BINS: usize = 8;

/// Per-output-channel float weight ranges of a convolution and how well int8 keeps them.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightStats {
    /// Smallest float weight per output channel (reference model, BatchNorm folded).
    pub min: Vec<f32>,
    /// Largest float weight per output channel.
    pub max: Vec<f32>,
    /// SQNR of the file's int8 weights (times their per-channel scale `max|w| / 127`) against
    /// the float weights, dB.
    pub sqnr_db: f64,
}

/// Statistics of one layer's output over the sampled images.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerStats {
    /// Execution index.
    pub index: usize,
    /// Layer name (ONNX node).
    pub name: String,
    /// Op kind (`conv`, `conv+add`, `maxpool`, …).
    pub kind: &'static str,
    /// Output `[h, w, c]`.
    pub shape: [usize; 3],
    /// Output quantization scale.
    pub scale: f32,
    /// Output zero point.
    pub zero_point: i8,
    /// Whether the output is kept at int16 (`resq convert --keep-int16` / `--auto-fallback`).
    pub int16: bool,
    /// The stats of the output tensor.
    pub output: TensorStats,
    /// This layer's SQNR minus the lowest SQNR of its inputs (dB, negative when the layer
    /// loses precision): the error this layer adds, roughly.
    pub sqnr_change_db: f64,
    /// Weights (convolutions only).
    pub weights: Option<WeightStats>,
}

impl LayerStats {
    /// The op kind, with `· int16` for a layer kept at int16.
    pub fn kind_label(&self) -> String {
        if self.int16 {
            format!("{} · int16", self.kind)
        } else {
            self.kind.to_string()
        }
    }
}

/// int8 against f32 for one tensor over the sampled images.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorStats {
    /// `10·log10(Σf² / Σ(f − q)²)` over all images, dB (+∞ when exact).
    pub sqnr_db: f64,
    /// Mean over images of the cosine similarity of f32 and dequantized int8 values.
    pub cosine: f64,
    /// Share of f32 values outside the int8 representable range (by more than half a step).
    pub clipped: f64,
    /// Smallest and largest f32 value seen.
    pub f32_range: (f32, f32),
    /// The int8 representable range `[scale·(−128 − zp), scale·(127 − zp)]`.
    pub int8_range: (f32, f32),
    /// The f32 values.
    pub histogram: Histogram,
}

/// The float side of a comparison: tract's model of the source ONNX with every tensor of its
/// imported IR graph exposed, and that graph (tensor shapes, BatchNorm-folded float weights).
/// Build it once and measure as many files converted from that graph as needed.
pub struct FloatModel<'g> {
    graph: &'g ir::Graph,
    observer: Observer,
}

impl<'g> FloatModel<'g> {
    /// tract's float model of `source`, observing every tensor of `graph` (imported from
    /// `source` with [`import`]).
    pub fn new(source: &Source, graph: &'g ir::Graph) -> Result<FloatModel<'g>> {
        Ok(FloatModel {
            graph,
            observer: Observer::new(source, graph)?,
        })
    }

    /// The IR graph the file is compared with.
    pub fn graph(&self) -> &'g ir::Graph {
        self.graph
    }
}

/// What [`measure_layers`] finds: the input tensor and every layer's output, int8 against f32.
#[derive(Clone, Debug)]
pub struct LayerMeasurement {
    /// The input tensor's quantization (the LUT) against the f32 input.
    pub input: TensorStats,
    /// Layers in execution order.
    pub layers: Vec<LayerStats>,
}

/// Runs `images` through tract (every IR tensor exposed) and through `engine` layer by layer,
/// and compares every layer's int8 output with its f32 one. `engine` must run a file converted
/// from `float`'s graph (checked: same tensors and layers, else an error). Reports the task
/// [`COMPARING_LAYERS`] to `progress`.
pub fn measure_layers(
    engine: &mut Engine,
    float: &FloatModel,
    images: &[PathBuf],
    progress: &dyn Progress,
) -> Result<LayerMeasurement> {
    if let Some(why) = graph_mismatch(engine.model(), float.graph) {
        bail!("the float model does not match the int8 file: {why}");
    }
    progress.start(COMPARING_LAYERS, images.len() as u64);
    measure_layers_until(engine, float, images, progress, &AtomicBool::new(false))
}

/// Per-layer statistics of a file held in memory against the ONNX model `reference` it was
/// converted from, on `images`. Loads and imports `reference` on every call: to measure
/// several files against one model, build a [`FloatModel`] once and call [`measure_layers`].
pub fn layer_stats(bytes: &[u8], reference: &Path, images: &[PathBuf]) -> Result<Vec<LayerStats>> {
    let file = Path::new("the int8 file");
    let aligned = AlignedBytes::new(bytes);
    let mut engine = Engine::from_bytes(aligned.as_bytes()).map_err(|e| anyhow!("{e}"))?;
    let model = engine.model().clone();
    let source = load(reference, model.meta.input.layout)?;
    check_reference_input(&model, file, reference, &source)?;
    let graph = import(&source, model.meta.name)
        .with_context(|| format!("importing the reference {}", reference.display()))?;
    check_same_graph(&model, &graph, file, reference)?;
    let float = FloatModel::new(&source, &graph)?;
    Ok(measure_layers(&mut engine, &float, images, &NoProgress)?.layers)
}

/// The error of a pass stopped because the other one failed.
#[derive(Debug)]
pub(crate) struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped")
    }
}

impl std::error::Error for Stopped {}

/// Sets `stop` when `r` is an error, so a pass running beside stops too.
pub(crate) fn stop_on_error<T>(stop: &AtomicBool, r: Result<T>) -> Result<T> {
    if r.is_err() {
        stop.store(true, Ordering::Relaxed);
    }
    r
}

fn check_stop(stop: &AtomicBool) -> Result<()> {
    if stop.load(Ordering::Relaxed) {
        return Err(Stopped.into());
    }
    Ok(())
}

/// Top-1 / agreement of `engine` against `reference` through [`evaluate`], one image at a
/// time for the progress of the task [`EVALUATING`] (started by the caller). Stops with
/// [`Stopped`] once `stop` is set.
pub(crate) fn accuracy_pass(
    engine: &mut Engine,
    reference: &Reference,
    samples: &[Sample],
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Result<EvalReport> {
    let mut total = EvalReport {
        images: samples.len(),
        ..Default::default()
    };
    let (mut top1_f32, mut agreement, mut cosine) = (0, 0, 0.0);
    for s in samples {
        check_stop(stop)?;
        let r = evaluate(engine, std::slice::from_ref(s), Some(reference))?;
        total.top1_int8 += r.top1_int8;
        top1_f32 += r.top1_f32.unwrap_or(0);
        agreement += r.agreement.unwrap_or(0);
        cosine += r.cosine.unwrap_or(0.0);
        progress.advance(EVALUATING, 1);
    }
    progress.finish(EVALUATING);
    total.top1_f32 = Some(top1_f32);
    total.agreement = Some(agreement);
    total.cosine = Some(cosine / samples.len().max(1) as f64);
    Ok(total)
}

/// Why `graph` is not the graph `model` was quantized from, if it is not: tensor `i` of the
/// IR must be tensor `i` of the file.
fn graph_mismatch(model: &Model, graph: &ir::Graph) -> Option<String> {
    let ft = &model.meta.tensors;
    if ft.len() != graph.tensors.len() || model.meta.layers.len() != graph.layers.len() {
        return Some(format!(
            "it imports to {} tensors and {} layers, the file has {} and {}",
            graph.tensors.len(),
            graph.layers.len(),
            ft.len(),
            model.meta.layers.len()
        ));
    }
    for (i, (f, g)) in ft.iter().zip(&graph.tensors).enumerate() {
        let fshape = [f.shape[1], f.shape[2], f.shape[3]].map(|d| d as usize);
        if f.name != g.name || fshape != g.shape {
            return Some(format!(
                "tensor {i} is `{}` {:?} in the file but `{}` {:?} in the reference",
                f.name, fshape, g.name, g.shape
            ));
        }
    }
    for (i, (f, g)) in model.meta.layers.iter().zip(&graph.layers).enumerate() {
        if f.name != g.name || f.op.output() as usize != g.op.output() {
            return Some(format!(
                "layer {i} is `{}` in the file but `{}` in the reference",
                f.name, g.name
            ));
        }
    }
    None
}

/// Checks that importing the reference ONNX `reference` gave the graph of `file` (`model`),
/// so tensor `i` of the IR is tensor `i` of the file; the error says which `--reference` to
/// pass.
pub(crate) fn check_same_graph(
    model: &Model,
    graph: &ir::Graph,
    file: &Path,
    reference: &Path,
) -> Result<()> {
    match graph_mismatch(model, graph) {
        None => Ok(()),
        Some(why) => bail!(
            "{} does not match {}: {why}; pass as --reference the ONNX model {} was converted \
             from (its provenance names `{}`)",
            reference.display(),
            file.display(),
            file.display(),
            model.meta.provenance.source_name
        ),
    }
}

/// Running sums for one tensor.
pub(super) struct Acc {
    signal: f64,
    noise: f64,
    cosine: f64,
    images: usize,
    clipped: u64,
    total: u64,
    min: f32,
    max: f32,
    scale: f32,
    zero_point: i8,
    int16: bool,
    counts: Vec<u64>,
}

impl Acc {
    pub(super) fn new(scale: f32, zero_point: i8, int16: bool) -> Acc {
        Acc {
            signal: 0.0,
            noise: 0.0,
            cosine: 0.0,
            images: 0,
            clipped: 0,
            total: 0,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            scale,
            zero_point,
            int16,
            counts: vec![0; INNER_BINS + 2 * OUTER_BINS],
        }
    }

    /// The representable range: `[scale·(−128 − zp), scale·(127 − zp)]`, or
    /// `scale · [−32768, 32767]` for int16.
    fn int8_range(&self) -> (f32, f32) {
        if self.int16 {
            return (self.scale * -32768.0, self.scale * 32767.0);
        }
        let zp = self.zero_point as f32;
        (self.scale * (-128.0 - zp), self.scale * (127.0 - zp))
    }

    /// One image: `f` the f32 values, `q` the quantized ones, both `[h][w][c]`.
    pub(super) fn add(&mut self, f: &[f32], q: Values) {
        let (lo, hi) = self.int8_range();
        let width = (hi - lo) / INNER_BINS as f32;
        let start = lo - OUTER_BINS as f32 * width;
        let last = (self.counts.len() - 1) as f32;
        let half = self.scale / 2.0;
        let zp = self.zero_point as f32;
        let (mut dot, mut nf, mut nq, mut noise) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for (i, &x) in f.iter().enumerate().take(q.len()) {
            let d = self.scale * (q.get(i) as f32 - zp);
            let (x64, d64) = (x as f64, d as f64);
            dot += x64 * d64;
            nf += x64 * x64;
            nq += d64 * d64;
            noise += (x64 - d64) * (x64 - d64);
            self.min = self.min.min(x);
            self.max = self.max.max(x);
            self.clipped += (x < lo - half || x > hi + half) as u64;
            let b = ((x - start) / width).clamp(0.0, last);
            // NaN (never from a finite model) lands in bin 0 rather than panicking.
            self.counts[b as usize] += 1;
        }
        self.signal += nf;
        self.noise += noise;
        self.cosine += if nf == 0.0 || nq == 0.0 {
            (nf == nq) as u8 as f64
        } else {
            dot / (nf.sqrt() * nq.sqrt())
        };
        self.images += 1;
        self.total += f.len().min(q.len()) as u64;
    }

    pub(super) fn finish(self) -> TensorStats {
        let (lo, hi) = self.int8_range();
        let width = (hi - lo) / INNER_BINS as f32;
        TensorStats {
            sqnr_db: sqnr_db(self.signal, self.noise),
            cosine: self.cosine / self.images.max(1) as f64,
            clipped: self.clipped as f64 / self.total.max(1) as f64,
            f32_range: (self.min, self.max),
            int8_range: (lo, hi),
            histogram: Histogram {
                lo: lo - OUTER_BINS as f32 * width,
                hi: hi + OUTER_BINS as f32 * width,
                counts: self.counts,
            },
        }
    }
}

fn sqnr_db(signal: f64, noise: f64) -> f64 {
    if noise == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (signal / noise).log10()
    }
}

/// tract's values for an IR tensor of shape `[h, w, c]`, reordered to the engine's `[h][w][c]`.
/// tract computes maps as `[1, C, H, W]` (or `[1, H, W, C]` for an NHWC model's input) and
/// vectors as `[1, C]` (a flattened map in C, H, W order).
fn to_hwc<'a>(
    values: &'a tract_onnx::prelude::TValue,
    t: &ir::Tensor,
    nhwc_first: bool,
) -> Result<Cow<'a, [f32]>> {
    let view = values.to_plain_array_view::<f32>()?;
    let dims = view.shape().to_vec();
    let [h, w, c] = t.shape;
    let data: Cow<[f32]> = match view.to_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(view.iter().copied().collect()),
    };
    let n = h * w * c;
    ensure!(
        data.len() == n,
        "internal: tract computes tensor `{}` with shape {dims:?}, resq expects [{h}, {w}, {c}]",
        t.name
    );
    let chw = |data: &[f32]| {
        let mut out = vec![0.0f32; n];
        for (ch, plane) in data.chunks_exact(h * w).enumerate() {
            for (px, &v) in plane.iter().enumerate() {
                out[px * c + ch] = v;
            }
        }
        Cow::Owned(out)
    };
    Ok(match dims.as_slice() {
        _ if h * w == 1 || c == 1 => data,
        [1, a, b, d] if nhwc_first && [*a, *b, *d] == [h, w, c] => data,
        [1, a, b, d] if [*a, *b, *d] == [c, h, w] => chw(&data),
        [1, a, b, d] if [*a, *b, *d] == [h, w, c] => data,
        _ if dims.len() <= 3 => chw(&data),
        _ => bail!(
            "internal: tract computes tensor `{}` with shape {dims:?}, resq expects [{h}, {w}, {c}]",
            t.name
        ),
    })
}

/// [`measure_layers`] without the graph check and without starting the task (the caller
/// starts [`COMPARING_LAYERS`]), stopping with [`Stopped`] once `stop` is set.
pub(crate) fn measure_layers_until(
    engine: &mut Engine,
    float: &FloatModel,
    images: &[PathBuf],
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Result<LayerMeasurement> {
    let graph = float.graph;
    let model = engine.model().clone();
    let pre = preprocess_of(engine);
    let input = model.meta.input.tensor;
    let mut accs: Vec<Acc> = model
        .meta
        .tensors
        .iter()
        .enumerate()
        .map(|(i, t)| Acc::new(t.scale, t.zero_point, model.is_int16(i as u16)))
        .collect();
    let nhwc_input = model.meta.input.layout == Layout::Nhwc;
    for path in images {
        check_stop(stop)?;
        let px = pre.load_pixels(path)?;
        let f32s = float
            .observer
            .observe(pre.float_input(&px))
            .with_context(|| format!("tract on {}", path.display()))?;
        engine
            .set_input_pixels(&px)
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let i = input as usize;
        let f = to_hwc(&f32s[i], &graph.tensors[i], nhwc_input)?;
        accs[i].add(&f, engine.tensor(input));
        for (l, layer) in model.meta.layers.iter().enumerate() {
            engine.run_layer(l);
            // The arena reuses memory: read the output now, before the next layer runs.
            let o = layer.op.output() as usize;
            let f = to_hwc(&f32s[o], &graph.tensors[o], false)?;
            accs[o].add(&f, engine.tensor(o as u16));
        }
        progress.advance(COMPARING_LAYERS, 1);
    }
    progress.finish(COMPARING_LAYERS);

    let mut stats: Vec<Option<TensorStats>> = accs.into_iter().map(|a| Some(a.finish())).collect();
    let sqnr: Vec<f64> = stats
        .iter()
        .map(|s| s.as_ref().map_or(f64::NAN, |s| s.sqnr_db))
        .collect();
    let mut layers = Vec::with_capacity(model.meta.layers.len());
    for (index, (layer, ir_layer)) in model.meta.layers.iter().zip(&graph.layers).enumerate() {
        let o = layer.op.output();
        let t = model.tensor(o);
        let worst_input = layer
            .op
            .inputs()
            .iter()
            .flatten()
            .map(|&i| sqnr[i as usize])
            .fold(f64::INFINITY, f64::min);
        let weights = match (layer.op, &ir_layer.op) {
            (Op::Conv(c), ir::Op::Conv(ic)) if model.has_int16_weights(index) => {
                let q: Vec<i32> = model.i16s(c.weights).iter().map(|&w| w as i32).collect();
                Some(weight_stats(ic, &q, 32767.0))
            }
            (Op::Conv(c), ir::Op::Conv(ic)) => {
                let q: Vec<i32> = model.i8s(c.weights).iter().map(|&w| w as i32).collect();
                Some(weight_stats(ic, &q, 127.0))
            }
            _ => None,
        };
        layers.push(LayerStats {
            index,
            name: layer.name.to_string(),
            kind: layer.op.kind(),
            shape: [t.shape[1], t.shape[2], t.shape[3]].map(|d| d as usize),
            scale: t.scale,
            zero_point: t.zero_point,
            int16: model.is_int16(o),
            output: stats[o as usize]
                .take()
                .context("internal: a tensor is written by two layers")?,
            sqnr_change_db: sqnr[o as usize] - worst_input,
            weights,
        });
    }
    let input = stats[input as usize]
        .take()
        .context("internal: the input tensor is written by a layer")?;
    Ok(LayerMeasurement { input, layers })
}

/// `q`: the file's weights; `qmax`: 127 (int8) or 32767 (int16 weights).
fn weight_stats(c: &ir::Conv, q: &[i32], qmax: f32) -> WeightStats {
    let flen = c.filter_len().max(1);
    let (mut min, mut max) = (Vec::new(), Vec::new());
    let (mut signal, mut noise) = (0.0f64, 0.0f64);
    for (filter, qf) in c.weights.chunks(flen).zip(q.chunks(flen)) {
        let lo = filter.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = filter.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        // The quantizer's per-channel scale (not stored in the file): max|w| / qmax.
        let m = lo.abs().max(hi.abs());
        let sw = if m > 0.0 { m / qmax } else { 1.0 };
        for (&w, &qw) in filter.iter().zip(qf) {
            let e = w as f64 - qw as f64 * sw as f64;
            signal += w as f64 * w as f64;
            noise += e * e;
        }
        min.push(lo);
        max.push(hi);
    }
    WeightStats {
        min,
        max,
        sqnr_db: sqnr_db(signal, noise),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acc_measures_sqnr_clipping_and_histogram() {
        // scale 0.1, zp −128: int8 range [0, 25.5].
        let mut a = Acc::new(0.1, -128, false);
        let f = [0.0f32, 1.0, 2.0, 30.0];
        let q = [-128i8, -118, -108, 127];
        a.add(&f, Values::I8(&q));
        let s = a.finish();
        assert_eq!(s.int8_range, (0.0, 25.5));
        assert!((s.clipped - 0.25).abs() < 1e-12);
        assert_eq!(s.f32_range, (0.0, 30.0));
        let noise = (30.0f64 - 25.5).powi(2);
        let expected = 10.0 * ((1.0 + 4.0 + 900.0) / noise).log10();
        assert!((s.sqnr_db - expected).abs() < 1e-3, "{}", s.sqnr_db);
        assert_eq!(s.histogram.counts.iter().sum::<u64>(), 4);
        // 30.0 is beyond the range: in the last (overflow) bin.
        assert_eq!(*s.histogram.counts.last().unwrap(), 1);
    }
}
