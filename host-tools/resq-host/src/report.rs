//! `resq report`: how well an int8 `.resq` file tracks its float model, layer by layer.
//!
//! The file does not record where tract computes each tensor, but the importer is
//! deterministic: re-importing the reference ONNX gives the same IR graph (same tensors in the
//! same order), checked against the file's tensor and layer names. tract then computes every
//! IR tensor in f32 ([`Observer`]) while the engine runs the file one layer at a time, and
//! each layer's int8 output is dequantized and compared with the f32 one: SQNR, cosine,
//! clipping, a histogram against the int8 range; per-channel weight ranges come from the
//! reference's (BatchNorm-folded) float weights. Top-1 / agreement come from
//! [`crate::eval::evaluate`]. [`Report::to_html`] draws one self-contained page (inline SVG
//! charts drawn with plotters, no scripts or fonts fetched); [`Report::to_json`] gives the
//! same numbers.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{anyhow, bail, ensure, Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use plotters::prelude::*;
use resq_engine::{AlignedBytes, Engine, Values};
use resq_format::{Layout, Model, Op};
use serde_json::{json, Value};

use crate::calibrate::Observer;
use crate::eval::{check_reference_input, evaluate, preprocess_of, EvalReport, Reference};
use crate::images::{labelled_dataset_for, list_images, sha256_file, Dataset, Sample};
use crate::import::{import, load};
use crate::ir;

/// What `resq report` needs.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    /// The `.resq` file.
    pub file: PathBuf,
    /// The float ONNX model it was converted from.
    pub reference: PathBuf,
    /// Image folder: ImageFolder layout (`DIR/<class>/<image>`), the root of `labels`' paths,
    /// or a plain folder of images (then only int8 / f32 agreement is reported).
    pub images: PathBuf,
    /// CSV with columns `file` and `label`.
    pub labels: Option<PathBuf>,
    /// Images (evenly spaced over the set) run layer by layer for the per-layer statistics.
    pub max_images: usize,
    /// Images (evenly spaced) for top-1 / agreement; 0 for all.
    pub eval_images: usize,
    /// Show a progress bar.
    pub progress: bool,
}

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

/// Everything the page shows.
#[derive(Clone, Debug)]
pub struct Report {
    /// The `.resq` file.
    pub file: PathBuf,
    /// The reference ONNX.
    pub reference: PathBuf,
    /// Model name stored in the file.
    pub model: String,
    /// Source model name stored in the file.
    pub source_name: String,
    /// Whether the reference's SHA-256 equals the one in the file's provenance.
    pub reference_matches_provenance: bool,
    /// Calibration method and image count from the provenance, e.g. `minmax on 100 images`.
    pub calibration: String,
    /// Images used for the per-layer statistics.
    pub stats_images: Vec<PathBuf>,
    /// Whether the images carry labels (else top-1 is not reported, only agreement).
    pub labelled: bool,
    /// Top-1 / agreement / logit cosine.
    pub eval: EvalReport,
    /// The input tensor's quantization (the LUT) against the f32 input.
    pub input: TensorStats,
    /// Layers in execution order.
    pub layers: Vec<LayerStats>,
    /// How the class folders were numbered when the model has no labels (see
    /// [`crate::images::Dataset::note`]); `resq report` prints it.
    pub notes: Vec<String>,
}

/// Evenly spaced picks of at most `k` items (all when `k` is 0 or ≥ the length), so a
/// sorted ImageFolder contributes images from every class.
pub(crate) fn spread<T: Clone>(items: &[T], k: usize) -> Vec<T> {
    let n = items.len();
    if k == 0 || k >= n {
        return items.to_vec();
    }
    (0..k).map(|i| items[i * n / k].clone()).collect()
}

/// The image set: labelled when a CSV is given or the folder has class sub-folders (matched
/// to the model's `classes` by name, see [`labelled_dataset_for`]).
fn dataset(images: &Path, labels: Option<&Path>, classes: &[&str]) -> Result<(Dataset, bool)> {
    if labels.is_some() {
        return Ok((labelled_dataset_for(images, labels, classes)?, true));
    }
    let has_classes = std::fs::read_dir(images)
        .with_context(|| format!("--images: cannot read folder {}", images.display()))?
        .filter_map(|e| e.ok())
        .any(|e| e.path().is_dir());
    if has_classes {
        let dataset = labelled_dataset_for(images, None, classes)?;
        ensure!(
            !dataset.samples.is_empty(),
            "--images {}: the class sub-folders hold no PNG or JPEG images",
            images.display()
        );
        return Ok((dataset, true));
    }
    // A plain folder: no labels, so only int8 / f32 agreement means anything; the label is a
    // placeholder that `evaluate` accepts and the report ignores.
    let samples = list_images(images)?
        .into_iter()
        .map(|path| Sample { path, label: 0 })
        .collect();
    Ok((
        Dataset {
            samples,
            note: None,
        },
        false,
    ))
}

/// Runs the comparison and collects the statistics.
pub fn build_report(opts: &ReportOptions) -> Result<Report> {
    ensure!(
        opts.max_images >= 1,
        "--max-images must be at least 1 (the per-layer statistics need an image)"
    );
    let raw = std::fs::read(&opts.file)
        .with_context(|| format!("cannot read {}", opts.file.display()))?;
    let bytes = AlignedBytes::new(&raw);
    let model =
        Model::parse(bytes.as_bytes()).map_err(|e| anyhow!("{}: {e}", opts.file.display()))?;
    let classes: Vec<&str> = model.labels().collect();
    let (Dataset { samples, note }, labelled) =
        dataset(&opts.images, opts.labels.as_deref(), &classes)?;
    let stats_samples = spread(&samples, opts.max_images);
    let eval_samples = spread(&samples, opts.eval_images);

    let bars = MultiProgress::new();
    if !opts.progress {
        bars.set_draw_target(ProgressDrawTarget::hidden());
    }
    let stop = AtomicBool::new(false);
    // Top-1 / agreement and the per-layer pass are independent, each with its own tract model
    // and engine: run them side by side (the machine has several cores). The first to fail
    // stops the other, so a wrong --reference is reported at once.
    let (eval, layers) = std::thread::scope(|s| {
        let eval = s.spawn(|| {
            let bar = progress(&bars, "top-1 / agreement", eval_samples.len());
            stop_on_error(&stop, eval_pass(opts, &bytes, &eval_samples, &stop, &bar))
        });
        let bar = progress(&bars, "comparing layers ", stats_samples.len());
        let layers = stop_on_error(&stop, layer_pass(opts, &bytes, &stats_samples, &stop, &bar));
        let eval = eval
            .join()
            .map_err(|_| anyhow!("internal: the evaluation thread panicked"))
            .and_then(|r| r);
        (eval, layers)
    });
    let ((input, layers), eval) = match (layers, eval) {
        (Ok(l), Ok(e)) => (l, e),
        (Err(a), Err(b)) if a.is::<Stopped>() => return Err(b),
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };

    let p = &model.meta.provenance;
    let calibration = if p.method == "qdq" {
        "the source model's own QDQ scales".to_string()
    } else if p.method == "percentile" {
        format!("percentile {} on {} images", p.method_param, p.calib_images)
    } else {
        format!("{} on {} images", p.method, p.calib_images)
    };
    Ok(Report {
        file: opts.file.clone(),
        reference: opts.reference.clone(),
        model: model.meta.name.to_string(),
        source_name: p.source_name.to_string(),
        reference_matches_provenance: sha256_file(&opts.reference)? == p.source_sha256,
        calibration,
        stats_images: stats_samples.into_iter().map(|s| s.path).collect(),
        labelled,
        eval,
        input,
        layers,
        notes: note.into_iter().collect(),
    })
}

/// Per-layer statistics of a converted file held in memory against its float source on
/// `images`: what `resq convert --auto-fallback` measures.
pub fn layer_stats(bytes: &[u8], reference: &Path, images: &[PathBuf]) -> Result<Vec<LayerStats>> {
    let opts = ReportOptions {
        file: PathBuf::from("<converted model>"),
        reference: reference.to_path_buf(),
        images: PathBuf::new(),
        labels: None,
        max_images: images.len(),
        eval_images: 0,
        progress: false,
    };
    let samples: Vec<Sample> = images
        .iter()
        .map(|p| Sample {
            path: p.clone(),
            label: 0,
        })
        .collect();
    let aligned = AlignedBytes::new(bytes);
    let stop = AtomicBool::new(false);
    let (_, layers) = layer_pass(&opts, &aligned, &samples, &stop, &ProgressBar::hidden())?;
    Ok(layers)
}

/// The error of a pass stopped because the other one failed.
#[derive(Debug)]
struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped")
    }
}

impl std::error::Error for Stopped {}

fn stop_on_error<T>(stop: &AtomicBool, r: Result<T>) -> Result<T> {
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

fn progress(bars: &MultiProgress, what: &str, len: usize) -> ProgressBar {
    let bar = bars.add(ProgressBar::new(len as u64));
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:40}} {{pos}}/{{len}} images ({{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Top-1 / agreement through [`evaluate`], one image at a time for the progress bar.
fn eval_pass(
    opts: &ReportOptions,
    bytes: &AlignedBytes,
    samples: &[Sample],
    stop: &AtomicBool,
    bar: &ProgressBar,
) -> Result<EvalReport> {
    let mut engine = Engine::from_bytes(bytes.as_bytes())
        .map_err(|e| anyhow!("{}: {e}", opts.file.display()))?;
    let reference = Reference::load_for(&opts.reference, engine.model(), &opts.file)?;
    let mut total = EvalReport {
        images: samples.len(),
        ..Default::default()
    };
    let (mut top1_f32, mut agreement, mut cosine) = (0, 0, 0.0);
    for s in samples {
        check_stop(stop)?;
        let r = evaluate(&mut engine, std::slice::from_ref(s), Some(&reference))?;
        total.top1_int8 += r.top1_int8;
        top1_f32 += r.top1_f32.unwrap_or(0);
        agreement += r.agreement.unwrap_or(0);
        cosine += r.cosine.unwrap_or(0.0);
        bar.inc(1);
    }
    bar.finish_and_clear();
    total.top1_f32 = Some(top1_f32);
    total.agreement = Some(agreement);
    total.cosine = Some(cosine / samples.len().max(1) as f64);
    Ok(total)
}

/// Checks that re-importing the reference gives the file's graph, so tensor `i` of the IR is
/// tensor `i` of the file.
fn check_same_graph(opts: &ReportOptions, model: &Model, graph: &ir::Graph) -> Result<()> {
    let (file, reference) = (opts.file.display(), opts.reference.display());
    let hint = format!(
        "pass as --reference the ONNX model {file} was converted from (its provenance names `{}`)",
        model.meta.provenance.source_name
    );
    let ft = &model.meta.tensors;
    ensure!(
        ft.len() == graph.tensors.len() && model.meta.layers.len() == graph.layers.len(),
        "{reference} does not match {file}: it imports to {} tensors and {} layers, the file has {} and {}; {hint}",
        graph.tensors.len(),
        graph.layers.len(),
        ft.len(),
        model.meta.layers.len()
    );
    for (i, (f, g)) in ft.iter().zip(&graph.tensors).enumerate() {
        let fshape = [f.shape[1], f.shape[2], f.shape[3]].map(|d| d as usize);
        ensure!(
            f.name == g.name && fshape == g.shape,
            "{reference} does not match {file}: tensor {i} is `{}` {:?} in the file but `{}` {:?} in the reference; {hint}",
            f.name,
            fshape,
            g.name,
            g.shape
        );
    }
    for (i, (f, g)) in model.meta.layers.iter().zip(&graph.layers).enumerate() {
        ensure!(
            f.name == g.name && f.op.output() as usize == g.op.output(),
            "{reference} does not match {file}: layer {i} is `{}` in the file but `{}` in the reference; {hint}",
            f.name,
            g.name
        );
    }
    Ok(())
}

/// Running sums for one tensor.
struct Acc {
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
    fn new(scale: f32, zero_point: i8, int16: bool) -> Acc {
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
    fn add(&mut self, f: &[f32], q: Values) {
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

    fn finish(self) -> TensorStats {
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

type LayerPass = (TensorStats, Vec<LayerStats>);

/// Runs tract (every IR tensor exposed) and the engine layer by layer on each image.
fn layer_pass(
    opts: &ReportOptions,
    bytes: &AlignedBytes,
    samples: &[Sample],
    stop: &AtomicBool,
    bar: &ProgressBar,
) -> Result<LayerPass> {
    let mut engine = Engine::from_bytes(bytes.as_bytes())
        .map_err(|e| anyhow!("{}: {e}", opts.file.display()))?;
    let model = engine.model().clone();
    let source = load(&opts.reference, model.meta.input.layout)?;
    check_reference_input(&model, &opts.file, &opts.reference, &source)?;
    let graph = import(&source, model.meta.name)
        .with_context(|| format!("importing the reference {}", opts.reference.display()))?;
    check_same_graph(opts, &model, &graph)?;
    let observer = Observer::new(&source, &graph)?;
    let pre = preprocess_of(&engine);
    let input = model.meta.input.tensor;
    let mut accs: Vec<Acc> = model
        .meta
        .tensors
        .iter()
        .enumerate()
        .map(|(i, t)| Acc::new(t.scale, t.zero_point, model.is_int16(i as u16)))
        .collect();
    let nhwc_input = model.meta.input.layout == Layout::Nhwc;
    for s in samples {
        check_stop(stop)?;
        let px = pre.load_pixels(&s.path)?;
        let f32s = observer
            .observe(pre.float_input(&px))
            .with_context(|| format!("tract on {}", s.path.display()))?;
        engine
            .set_input_pixels(&px)
            .map_err(|e| anyhow!("{}: {e}", s.path.display()))?;
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
        bar.inc(1);
    }
    bar.finish_and_clear();

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
    Ok((input, layers))
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

/// A finite number for JSON, `null` otherwise.
fn num(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

fn tensor_json(t: &TensorStats) -> Value {
    json!({
        "sqnr_db": num(t.sqnr_db),
        "cosine": num(t.cosine),
        "clipped": t.clipped,
        "f32_range": [num(t.f32_range.0 as f64), num(t.f32_range.1 as f64)],
        "int8_range": [t.int8_range.0, t.int8_range.1],
        "histogram": {"lo": t.histogram.lo, "hi": t.histogram.hi, "counts": t.histogram.counts},
    })
}

impl Report {
    /// Layers, lowest SQNR first (ties in execution order).
    pub fn worst_first(&self) -> Vec<&LayerStats> {
        let mut v: Vec<&LayerStats> = self.layers.iter().collect();
        v.sort_by(|a, b| a.output.sqnr_db.total_cmp(&b.output.sqnr_db));
        v
    }

    /// The numbers of the page as JSON; `layers` is worst first. SQNR is `null` when exact.
    pub fn to_json(&self) -> Value {
        let e = &self.eval;
        let layers: Vec<Value> = self
            .worst_first()
            .into_iter()
            .map(|l| {
                let mut v = tensor_json(&l.output);
                let o = v.as_object_mut().expect("object");
                o.insert("index".into(), json!(l.index));
                o.insert("name".into(), json!(l.name));
                o.insert("op".into(), json!(l.kind));
                o.insert("int16".into(), json!(l.int16));
                o.insert("shape".into(), json!(l.shape));
                o.insert("scale".into(), json!(l.scale));
                o.insert("zero_point".into(), json!(l.zero_point));
                o.insert("sqnr_change_db".into(), num(l.sqnr_change_db));
                o.insert(
                    "weights".into(),
                    l.weights.as_ref().map_or(
                        Value::Null,
                        |w| json!({"sqnr_db": num(w.sqnr_db), "min": w.min, "max": w.max}),
                    ),
                );
                v
            })
            .collect();
        json!({
            "file": self.file.display().to_string(),
            "reference": self.reference.display().to_string(),
            "model": self.model,
            "source_name": self.source_name,
            "reference_matches_provenance": self.reference_matches_provenance,
            "calibration": self.calibration,
            "stats_images": self.stats_images.len(),
            "summary": {
                "images": e.images,
                "labelled": self.labelled,
                "top1_int8": if self.labelled { json!(e.top1_int8) } else { Value::Null },
                "top1_f32": if self.labelled { json!(e.top1_f32) } else { Value::Null },
                "agreement": e.agreement.map(|a| a as f64 / e.images.max(1) as f64),
                "cosine": e.cosine.map(num),
            },
            "input": tensor_json(&self.input),
            "layers": layers,
        })
    }

    /// The self-contained HTML page.
    pub fn to_html(&self) -> Result<String> {
        html_page(self)
    }
}

// ---------------------------------------------------------------------------------------------
// The page.

/// Chart colours; the screenshot test looks for `HIST_BLUE`.
const HIST_BLUE: RGBColor = RGBColor(49, 130, 189);
const CLIP_ORANGE: RGBColor = RGBColor(230, 120, 20);
const RANGE_RED: RGBColor = RGBColor(200, 30, 30);
const GOOD: RGBColor = RGBColor(46, 160, 67);
const FAIR: RGBColor = RGBColor(220, 160, 0);
const POOR: RGBColor = RGBColor(207, 34, 46);
const GREY: RGBColor = RGBColor(150, 150, 150);

/// SQNR grades: ≥ 30 dB good, ≥ 20 dB fair, below poor.
fn grade(db: f64) -> (&'static str, RGBColor) {
    if db >= 30.0 {
        ("good", GOOD)
    } else if db >= 20.0 {
        ("fair", FAIR)
    } else {
        ("poor", POOR)
    }
}

fn draw_err<E: std::error::Error>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e}")
}

/// Drops the XML prolog plotters may write, so the SVG can sit inside HTML.
fn inline_svg(svg: String) -> String {
    match svg.find("<svg") {
        Some(i) => svg[i..].to_string(),
        None => svg,
    }
}

const FONT: &str = "sans-serif";

fn sqnr_chart(layers: &[LayerStats]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1180, 250)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let top = layers
            .iter()
            .map(|l| l.output.sqnr_db)
            .filter(|x| x.is_finite())
            .fold(30.0f64, f64::max)
            * 1.1;
        let n = layers.len() as f64;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(48)
            .build_cartesian_2d(-0.5..n - 0.5, 0.0..top)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(layers.len().clamp(2, 30))
            .x_label_formatter(&|v| format!("{:.0}", v))
            .y_desc("SQNR (dB)")
            .x_desc("layer (execution order)")
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .draw()
            .map_err(draw_err)?;
        chart
            .draw_series(layers.iter().map(|l| {
                let db = if l.output.sqnr_db.is_finite() {
                    l.output.sqnr_db.max(0.0)
                } else {
                    top
                };
                let x = l.index as f64;
                Rectangle::new([(x - 0.38, 0.0), (x + 0.38, db)], grade(db).1.filled())
            }))
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(inline_svg(svg))
}

fn histogram_chart(t: &TensorStats) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (390, 180)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let h = &t.histogram;
        let total = h.counts.iter().sum::<u64>().max(1) as f64;
        let pct: Vec<f64> = h.counts.iter().map(|&c| 100.0 * c as f64 / total).collect();
        let smallest = pct
            .iter()
            .copied()
            .filter(|&p| p > 0.0)
            .fold(100.0, f64::min);
        let (ymin, ymax) = (smallest / 2.0, 150.0);
        let (lo, hi) = (h.lo as f64, h.hi as f64);
        let width = (hi - lo) / h.counts.len() as f64;
        let mut chart = ChartBuilder::on(&root)
            .margin(6)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(lo..hi, (ymin..ymax).log_scale())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(6)
            .y_labels(4)
            .x_label_formatter(&|v| short(*v))
            .y_label_formatter(&|v| percent(*v))
            .max_light_lines(1)
            .x_desc("f32 value")
            .label_style((FONT, 11))
            .axis_desc_style((FONT, 11))
            .draw()
            .map_err(draw_err)?;
        let inner = OUTER_BINS..OUTER_BINS + INNER_BINS;
        chart
            .draw_series(
                pct.iter()
                    .enumerate()
                    .filter(|(_, &p)| p > 0.0)
                    .map(|(i, &p)| {
                        let x0 = lo + i as f64 * width;
                        let colour = if inner.contains(&i) {
                            HIST_BLUE
                        } else {
                            CLIP_ORANGE
                        };
                        Rectangle::new([(x0, ymin), (x0 + width, p)], colour.filled())
                    }),
            )
            .map_err(draw_err)?;
        // The int8 representable range: the clipping range chosen at calibration.
        for x in [t.int8_range.0 as f64, t.int8_range.1 as f64] {
            chart
                .draw_series(LineSeries::new(
                    [(x, ymin), (x, ymax)],
                    RANGE_RED.stroke_width(2),
                ))
                .map_err(draw_err)?;
        }
        root.present().map_err(draw_err)?;
    }
    Ok(inline_svg(svg))
}

/// Per-channel float weight ranges: a bar per channel, or a min–max band when there are many.
fn weights_chart(w: &WeightStats) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (390, 150)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let n = w.min.len();
        let m = w
            .min
            .iter()
            .chain(&w.max)
            .fold(0.0f32, |m, x| m.max(x.abs()))
            .max(1e-12) as f64;
        let mut chart = ChartBuilder::on(&root)
            .margin(6)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5..n as f64 - 0.5, -m * 1.05..m * 1.05)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(6)
            .y_labels(5)
            .x_label_formatter(&|v| format!("{:.0}", v))
            // Ticks like −5.6e-17 are zero in float noise.
            .y_label_formatter(&|v| short(if v.abs() < m * 1e-6 { 0.0 } else { *v }))
            .max_light_lines(1)
            .x_desc("output channel")
            .label_style((FONT, 11))
            .axis_desc_style((FONT, 11))
            .draw()
            .map_err(draw_err)?;
        const MAX_BARS: usize = 96;
        if n <= MAX_BARS {
            chart
                .draw_series((0..n).map(|i| {
                    let x = i as f64;
                    Rectangle::new(
                        [(x - 0.35, w.min[i] as f64), (x + 0.35, w.max[i] as f64)],
                        HIST_BLUE.filled(),
                    )
                }))
                .map_err(draw_err)?;
        } else {
            // Many channels: one polygon (upper edge forward, lower edge back) over at most
            // 300 columns, which looks the same and keeps the page small.
            let cols = n.min(300);
            let bucket = |k: usize| (k * n / cols)..((k + 1) * n / cols).max(k * n / cols + 1);
            let mut pts: Vec<(f64, f64)> = (0..cols)
                .map(|k| {
                    let r = bucket(k);
                    let x = (r.start + r.end - 1) as f64 / 2.0;
                    (x, w.max[r].iter().copied().fold(f32::MIN, f32::max) as f64)
                })
                .collect();
            pts.extend((0..cols).rev().map(|k| {
                let r = bucket(k);
                let x = (r.start + r.end - 1) as f64 / 2.0;
                (x, w.min[r].iter().copied().fold(f32::MAX, f32::min) as f64)
            }));
            chart
                .draw_series(std::iter::once(Polygon::new(pts, HIST_BLUE.filled())))
                .map_err(draw_err)?;
        }
        chart
            .draw_series(LineSeries::new([(-0.5, 0.0), (n as f64 - 0.5, 0.0)], GREY))
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(inline_svg(svg))
}

/// A compact number for axes and tables.
fn short(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e4).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .into()
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .into()
    }
}

/// A log-axis percentage with just enough decimals: `10%`, `0.01%`, `0.0001%`.
fn percent(v: f64) -> String {
    if v >= 1.0 || v <= 0.0 {
        format!("{v:.0}%")
    } else {
        let decimals = (-v.log10()).ceil().clamp(1.0, 9.0) as usize;
        format!("{v:.decimals$}%")
    }
}

fn db(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1}")
    } else if x > 0.0 {
        "∞".into()
    } else {
        "—".into()
    }
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:20px 28px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.sub{color:#57606a;font-size:13px;margin-bottom:12px}
table{border-collapse:collapse;font-size:12.5px}td,th{padding:3px 9px;border-bottom:1px solid #eaeef2;text-align:right;white-space:nowrap}
th{background:#f6f8fa;position:sticky;top:0}td.l,th.l{text-align:left}
.kv td{text-align:left;white-space:normal}.kv td:first-child{color:#57606a}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:12px}
.layer{border:1px solid #d0d7de;border-radius:6px;padding:8px 10px}
.layer h3{font-size:13.5px;margin:0 0 2px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.layer .m{font-size:12px;color:#57606a;margin-bottom:4px}
.badge{display:inline-block;border-radius:9px;padding:0 7px;color:#fff;font-size:11.5px;font-weight:600}
.good{background:#2ea043}.fair{background:#c99a00}.poor{background:#cf222e}
.cap{font-size:11.5px;color:#57606a;margin:2px 0 6px}
svg{display:block;max-width:100%;height:auto}.layer svg{width:100%}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;vertical-align:-1px}
";

/// Runs in the browser after layout: the title becomes `resq report: ok` only when every chart
/// has drawn content and a non-empty box (the browser test reads it); an error shows in it.
const CHECK_SCRIPT: &str = "
(function(){
  var bad=[];
  window.addEventListener('error',function(e){document.title='resq report: error '+e.message;});
  var svgs=document.querySelectorAll('svg');
  for(var i=0;i<svgs.length;i++){var b=svgs[i].getBoundingClientRect();
    if(!(b.width>0&&b.height>0)||svgs[i].querySelectorAll('rect,polygon,polyline,path,line').length<2)bad.push(i);}
  var layers=document.querySelectorAll('section.layer').length;
  var want=+document.body.getAttribute('data-layers');
  var h=document.querySelector('section.layer svg');
  if(h){var r=h.getBoundingClientRect();document.body.setAttribute('data-first-chart',
    [Math.round(r.left+window.scrollX),Math.round(r.top+window.scrollY),Math.round(r.width),Math.round(r.height)].join(','));}
  document.body.setAttribute('data-charts',svgs.length);
  document.title=(bad.length===0&&svgs.length>0&&layers===want)?'resq report: ok':
    'resq report: FAILED ('+bad.length+' empty charts, '+layers+' of '+want+' layers)';
})();
";

fn html_page(r: &Report) -> Result<String> {
    let mut h = String::with_capacity(1 << 20);
    let e = &r.eval;
    let pct = |x: usize| 100.0 * x as f64 / e.images.max(1) as f64;
    let title = format!("resq report: {}", r.model);
    // `write!` to a String cannot fail; the results are ignored on purpose.
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head>\n<body data-layers=\"{}\">\n",
        esc(&title),
        r.layers.len()
    );
    let _ = writeln!(
        h,
        "<h1>Quantization report: {}</h1><div class=\"sub\">{} against tract f32 on {} \
         · int8 values dequantized with each tensor's scale and zero point</div>",
        esc(&r.model),
        esc(&file_name(&r.file)),
        esc(&file_name(&r.reference)),
    );

    // Summary.
    let worst = r.worst_first();
    let _ = write!(h, "<h2>Summary</h2><table class=\"kv\">");
    let mut row = |k: &str, v: String| {
        let _ = write!(h, "<tr><td>{k}</td><td>{v}</td></tr>");
    };
    row("layers", r.layers.len().to_string());
    row("calibration", esc(&r.calibration));
    row(
        "reference",
        if r.reference_matches_provenance {
            format!(
                "{} (same SHA-256 as the file's source)",
                esc(&file_name(&r.reference))
            )
        } else {
            format!(
                "{} — <b>not</b> byte-identical to the file's source <code>{}</code>; its graph matches, so it is compared",
                esc(&file_name(&r.reference)),
                esc(&r.source_name)
            )
        },
    );
    if r.labelled {
        row(
            "top-1 int8",
            format!("{} / {} ({:.1} %)", e.top1_int8, e.images, pct(e.top1_int8)),
        );
        if let Some(f) = e.top1_f32 {
            row("top-1 f32", format!("{f} / {} ({:.1} %)", e.images, pct(f)));
        }
    } else {
        row(
            "top-1",
            "not measured: the images have no labels (use DIR/&lt;class&gt;/&lt;image&gt; or --labels CSV)"
                .into(),
        );
    }
    if let Some(a) = e.agreement {
        row(
            "int8 / f32 agreement",
            format!("{a} / {} ({:.1} %) on the top class", e.images, pct(a)),
        );
    }
    if let Some(c) = e.cosine {
        row("logit cosine", format!("{c:.5}"));
    }
    row("input (LUT) SQNR", format!("{} dB", db(r.input.sqnr_db)));
    if let Some(w) = worst.first() {
        row(
            "worst layer",
            format!(
                "<a href=\"#layer-{}\">#{} {}</a>: {} dB",
                w.index,
                w.index,
                esc(&w.name),
                db(w.output.sqnr_db)
            ),
        );
    }
    row(
        "layer statistics",
        format!(
            "{} image{}: {}",
            r.stats_images.len(),
            if r.stats_images.len() == 1 { "" } else { "s" },
            esc(&r
                .stats_images
                .iter()
                .take(8)
                .map(|p| file_name(p))
                .collect::<Vec<_>>()
                .join(", "))
                + if r.stats_images.len() > 8 {
                    ", …"
                } else {
                    ""
                }
        ),
    );
    let _ = writeln!(h, "</table>");

    // Overview chart.
    let _ = writeln!(
        h,
        "<h2>SQNR per layer</h2><div class=\"cap legend\">10·log10(Σf² / Σ(f − q)²) over all sampled \
         values; error accumulates through the network, so later layers score lower.\
         <span style=\"background:#2ea043\"></span>≥ 30 dB<span style=\"background:#dca000\"></span>20–30 dB\
         <span style=\"background:#cf222e\"></span>&lt; 20 dB</div>{}",
        sqnr_chart(&r.layers)?
    );

    // Worst-first table.
    let _ = writeln!(
        h,
        "<h2>Layers, worst first</h2><table><tr><th>rank</th><th>#</th><th class=\"l\">layer</th>\
         <th class=\"l\">op</th><th>shape (h×w×c)</th><th>SQNR dB</th><th title=\"SQNR change against the \
         layer's worst input\">Δ dB</th><th>cosine</th><th>clipped</th><th>f32 range</th><th>int8 range</th>\
         <th>weights SQNR dB</th></tr>"
    );
    for (rank, l) in worst.iter().enumerate() {
        let t = &l.output;
        let (g, _) = grade(t.sqnr_db);
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"l\"><a href=\"#layer-{}\">{}</a></td><td class=\"l\">{}</td>\
             <td>{}×{}×{}</td><td><span class=\"badge {g}\">{}</span></td><td>{}</td><td>{:.5}</td><td>{:.3} %</td>\
             <td>[{}, {}]</td><td>[{}, {}]</td><td>{}</td></tr>",
            rank + 1,
            l.index,
            l.index,
            esc(&l.name),
            l.kind_label(),
            l.shape[0],
            l.shape[1],
            l.shape[2],
            db(t.sqnr_db),
            db(l.sqnr_change_db),
            t.cosine,
            100.0 * t.clipped,
            short(t.f32_range.0 as f64),
            short(t.f32_range.1 as f64),
            short(t.int8_range.0 as f64),
            short(t.int8_range.1 as f64),
            l.weights.as_ref().map_or("—".into(), |w| db(w.sqnr_db)),
        );
    }
    let _ = writeln!(h, "</table>");

    // One card per layer, worst first.
    let _ = writeln!(
        h,
        "<h2>Activations and weights, worst first</h2><div class=\"cap legend\">Histograms: f32 values of \
         the layer's output (log scale)<span style=\"background:#3182bd\"></span>inside the int8 range\
         <span style=\"background:#e67814\"></span>outside the int8 range (the outermost bins hold everything beyond)\
         <span style=\"background:#c81e1e\"></span>int8 range [scale·(−128−zp), scale·(127−zp)], the \
         calibrated clipping range. Weights: per-output-channel min–max of the reference's float weights \
         (BatchNorm folded), each quantized with its own scale max|w|/127.</div><div class=\"grid\">"
    );
    for l in &worst {
        let t = &l.output;
        let (g, _) = grade(t.sqnr_db);
        let _ = write!(
            h,
            "<section class=\"layer\" id=\"layer-{}\"><h3 title=\"{}\">#{} {}</h3>\
             <div class=\"m\"><span class=\"badge {g}\">{} dB</span> {} · {}×{}×{} · cosine {:.5} · clipped {:.3} % \
             · scale {} zp {}</div>{}",
            l.index,
            esc(&l.name),
            l.index,
            esc(&l.name),
            db(t.sqnr_db),
            l.kind_label(),
            l.shape[0],
            l.shape[1],
            l.shape[2],
            t.cosine,
            100.0 * t.clipped,
            short(l.scale as f64),
            l.zero_point,
            histogram_chart(t)?
        );
        if let Some(w) = &l.weights {
            let _ = write!(
                h,
                "<div class=\"cap\">weights: {} channels, int8 weight SQNR {} dB</div>{}",
                w.min.len(),
                db(w.sqnr_db),
                weights_chart(w)?
            );
        }
        let _ = writeln!(h, "</section>");
    }
    let _ = write!(
        h,
        "</div>\n<div class=\"sub\" style=\"margin-top:18px\">written by resq {}</div>\
         <script>{CHECK_SCRIPT}</script>\n</body></html>\n",
        env!("CARGO_PKG_VERSION")
    );
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_picks_evenly() {
        let v: Vec<usize> = (0..10).collect();
        assert_eq!(spread(&v, 0), v);
        assert_eq!(spread(&v, 20), v);
        assert_eq!(spread(&v, 5), vec![0, 2, 4, 6, 8]);
        assert_eq!(spread(&v, 1), vec![0]);
    }

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

    #[test]
    fn exact_tensor_has_infinite_sqnr_and_null_json() {
        let mut a = Acc::new(1.0, 0, false);
        a.add(&[1.0, -2.0], Values::I8(&[1, -2]));
        let s = a.finish();
        assert!(s.sqnr_db.is_infinite());
        assert!((s.cosine - 1.0).abs() < 1e-12);
        assert_eq!(tensor_json(&s)["sqnr_db"], Value::Null);
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short(0.0), "0");
        assert_eq!(short(1.5), "1.5");
        assert_eq!(short(250.4), "250");
        assert_eq!(short(0.0125), "0.013");
        assert_eq!(short(12345.0), "1.2e4");
        assert_eq!(percent(10.0), "10%");
        assert_eq!(percent(0.01), "0.01%");
        assert_eq!(percent(0.0001), "0.0001%");
    }
}
