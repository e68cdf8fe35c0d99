//! `resq report`: how well an int8 `.resq` file tracks its float model, layer by layer.
//!
//! - [`measure`]: the numbers. Per-layer int8 against tract f32 ([`measure_layers`], also what
//!   `resq convert --auto-fallback` runs) and top-1 / agreement ([`crate::eval::evaluate`]).
//! - this module: [`build_report`] picks the images, loads and imports the reference ONNX once,
//!   runs both passes side by side and gathers a [`Report`].
//! - `render`: [`Report::to_html`] draws one self-contained page (inline SVG charts drawn with
//!   plotters, no scripts or fonts fetched); [`Report::to_json`] gives the same numbers.
//!
//! Progress goes to a [`Progress`]; nothing here draws on the terminal.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{anyhow, ensure, Context, Result};
use resq_engine::{AlignedBytes, Engine};
use resq_format::Model;

use crate::eval::{check_reference_input, EvalReport, Reference};
use crate::images::{labelled_dataset_for, list_images, sha256_file, Dataset, Sample};
use crate::import::{import, load, Source};
use crate::progress::{NoProgress, Progress, COMPARING_LAYERS, EVALUATING};

pub mod measure;
mod render;

use measure::{accuracy_pass, check_same_graph, measure_layers_until, stop_on_error, Stopped};
pub use measure::{
    layer_stats, measure_layers, FloatModel, Histogram, LayerMeasurement, LayerStats, TensorStats,
    WeightStats, INNER_BINS, OUTER_BINS,
};

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

/// Runs the comparison and collects the statistics, reporting no progress.
pub fn build_report(opts: &ReportOptions) -> Result<Report> {
    build_report_with_progress(opts, &NoProgress)
}

/// [`build_report`], reporting the tasks [`EVALUATING`] and [`COMPARING_LAYERS`] (run side by
/// side) to `progress`.
pub fn build_report_with_progress(opts: &ReportOptions, progress: &dyn Progress) -> Result<Report> {
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
    let stats_images: Vec<PathBuf> = spread(&samples, opts.max_images)
        .into_iter()
        .map(|s| s.path)
        .collect();
    let eval_samples = spread(&samples, opts.eval_images);
    // The reference, loaded once: the evaluation compiles its logits, the layer pass imports
    // it to the IR and exposes every tensor.
    let source = load(&opts.reference, model.meta.input.layout)?;
    check_reference_input(&model, &opts.file, &opts.reference, &source)?;

    progress.start(EVALUATING, eval_samples.len() as u64);
    progress.start(COMPARING_LAYERS, stats_images.len() as u64);
    let stop = AtomicBool::new(false);
    // Top-1 / agreement and the per-layer pass are independent, each with its own tract model
    // and engine: run them side by side (the machine has several cores). The first to fail
    // stops the other, so a wrong --reference is reported at once.
    let (eval, layers) = std::thread::scope(|s| {
        let eval = s.spawn(|| {
            stop_on_error(
                &stop,
                eval_pass(opts, &bytes, &source, &eval_samples, progress, &stop),
            )
        });
        let layers = stop_on_error(
            &stop,
            layer_pass(opts, &bytes, &source, &stats_images, progress, &stop),
        );
        let eval = eval
            .join()
            .map_err(|_| anyhow!("internal: the evaluation thread panicked"))
            .and_then(|r| r);
        (eval, layers)
    });
    let (LayerMeasurement { input, layers }, eval) = match (layers, eval) {
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
        stats_images,
        labelled,
        eval,
        input,
        layers,
        notes: note.into_iter().collect(),
    })
}

/// Top-1 / agreement of the file against the reference's logits.
fn eval_pass(
    opts: &ReportOptions,
    bytes: &AlignedBytes,
    source: &Source,
    samples: &[Sample],
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Result<EvalReport> {
    let mut engine = Engine::from_bytes(bytes.as_bytes())
        .map_err(|e| anyhow!("{}: {e}", opts.file.display()))?;
    let reference = Reference::from_source(source)?;
    accuracy_pass(&mut engine, &reference, samples, progress, stop)
}

/// The file layer by layer against the reference imported to the IR (checked to be the
/// file's graph).
fn layer_pass(
    opts: &ReportOptions,
    bytes: &AlignedBytes,
    source: &Source,
    images: &[PathBuf],
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Result<LayerMeasurement> {
    let mut engine = Engine::from_bytes(bytes.as_bytes())
        .map_err(|e| anyhow!("{}: {e}", opts.file.display()))?;
    let graph = import(source, engine.model().meta.name)
        .with_context(|| format!("importing the reference {}", opts.reference.display()))?;
    check_same_graph(engine.model(), &graph, &opts.file, &opts.reference)?;
    let float = FloatModel::new(source, &graph)?;
    measure_layers_until(&mut engine, &float, images, progress, stop)
}

impl Report {
    /// Layers, lowest SQNR first (ties in execution order).
    pub fn worst_first(&self) -> Vec<&LayerStats> {
        let mut v: Vec<&LayerStats> = self.layers.iter().collect();
        v.sort_by(|a, b| a.output.sqnr_db.total_cmp(&b.output.sqnr_db));
        v
    }
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
}
