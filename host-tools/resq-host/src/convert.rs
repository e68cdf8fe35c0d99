//! `resq convert`: ONNX in, calibrated int8 `.resq` out.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use resq_format::{ChannelOrder, Layout};

use crate::calibrate::{calibrate, Method};
use crate::images::{digest_files, list_images, sha256_file, Preprocess};
use crate::import::{import, load};
use crate::ir::{Graph, Layer, Op};
use crate::quantize::{check_limits, quantize, FileInfo};
use crate::report::{layer_stats, spread};

/// What `resq convert` needs.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    /// Source ONNX model.
    pub model: PathBuf,
    /// Folder of calibration images; `None` for a pre-quantized (QDQ) model, whose own
    /// scales are kept.
    pub calib: Option<PathBuf>,
    /// Mean per channel, pixel units (model channel order).
    pub mean: [f32; 3],
    /// Std per channel, pixel units.
    pub std: [f32; 3],
    /// Input layout of the model.
    pub layout: Layout,
    /// Whether the model takes BGR.
    pub bgr: bool,
    /// Calibration method.
    pub method: Method,
    /// Class labels file, one per line.
    pub labels: Option<PathBuf>,
    /// Show a progress bar.
    pub progress: bool,
    /// Layers (names as `resq inspect` shows them) whose outputs are kept at int16.
    pub keep_int16: Vec<String>,
    /// `--auto-fallback`: keep layers at int16 while some layer's SQNR against tract f32 is
    /// below this many dB.
    pub auto_fallback: Option<f64>,
}

impl ConvertOptions {
    /// `model` with the defaults of `resq convert`: no calibration folder (set `calib` unless
    /// the model is QDQ), mean 0 and std 1, NCHW, RGB, minmax, no labels, no progress bar,
    /// every layer int8.
    pub fn new(model: impl Into<PathBuf>) -> Self {
        ConvertOptions {
            model: model.into(),
            calib: None,
            mean: [0.0; 3],
            std: [1.0; 3],
            layout: Layout::Nchw,
            bgr: false,
            method: Method::MinMax,
            labels: None,
            progress: false,
            keep_int16: Vec::new(),
            auto_fallback: None,
        }
    }
}

/// Summary of a conversion.
#[derive(Clone, Debug)]
pub struct Converted {
    /// The file image.
    pub bytes: Vec<u8>,
    /// Layers after fusion.
    pub layers: usize,
    /// Calibration images used.
    pub calib_images: usize,
    /// Layers whose outputs are int16 (asked for, chosen by `--auto-fallback`, or copies of
    /// those through pooling / padding / slicing).
    pub int16_layers: Vec<String>,
    /// What `--auto-fallback` did, one step per kept layer.
    pub fallback: Vec<FallbackStep>,
}

/// One `--auto-fallback` step: the layer kept at int16 and the SQNR it had and then has.
#[derive(Clone, Debug, PartialEq)]
pub struct FallbackStep {
    /// Layer name.
    pub layer: String,
    /// Its output's SQNR against tract f32 before (all-int8 up to this step), dB.
    pub sqnr_before: f64,
    /// The same after keeping it at int16, dB.
    pub sqnr_after: f64,
    /// The lowest SQNR over all layers after this step, dB.
    pub worst_after: f64,
}

/// Images `--auto-fallback` measures on (evenly spread over the calibration set).
pub const FALLBACK_IMAGES: usize = 8;
/// Most layers `--auto-fallback` keeps at int16.
pub const FALLBACK_MAX_LAYERS: usize = 8;

/// Converts a model; returns the file bytes (write them with [`write_atomic`]).
pub fn convert(opts: &ConvertOptions) -> Result<Converted> {
    let source = load(&opts.model, opts.layout)?;
    let name = opts
        .model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let graph =
        import(&source, &name).with_context(|| format!("importing {}", opts.model.display()))?;
    check_limits(&graph)?;
    let [h, w, c] = graph.tensors[graph.input].shape;
    let channels = match (c, opts.bgr) {
        (1, _) => ChannelOrder::Grey,
        (_, false) => ChannelOrder::Rgb,
        (_, true) => ChannelOrder::Bgr,
    };
    for (i, s) in opts.std.iter().enumerate().take(c) {
        ensure!(
            *s != 0.0 && s.is_finite(),
            "--std value {} for channel {i} must be non-zero",
            s
        );
    }
    let pre = Preprocess {
        height: h,
        width: w,
        channels,
        layout: opts.layout,
        mean: opts.mean,
        std: opts.std,
    };
    let labels = match &opts.labels {
        Some(p) => read_labels(p, graph.tensors[graph.output].elems())?,
        None => vec![],
    };
    let source_name = opts
        .model
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut info = FileInfo {
        preprocess: pre,
        labels,
        source_name,
        source_sha256: sha256_file(&opts.model)?,
        calib_digest: [0; 32],
        calib_images: 0,
        method: "qdq".into(),
        method_param: 0.0,
        self_test_pixels: test_pattern(&pre),
        int16: keep_tensors(&graph, &opts.keep_int16)?,
    };
    let mut calib_images = Vec::new();
    let unquantized: Vec<&str> = graph
        .tensors
        .iter()
        .filter(|t| t.qparams.is_none())
        .map(|t| t.name.as_str())
        .collect();
    let ranges = match &opts.calib {
        Some(calib) => {
            let images = list_images(calib)?;
            calib_images = images.clone();
            info.calib_digest = digest_files(calib, &images)?;
            info.calib_images = images.len() as u32;
            info.method = opts.method.name().into();
            info.method_param = opts.method.param();
            info.self_test_pixels = pre.load_pixels(&images[0])?;
            calibrate(&source, &graph, &pre, &images, opts.method, opts.progress)?
        }
        None if unquantized.is_empty() => vec![(0.0, 0.0); graph.tensors.len()],
        None => bail!(
            "{} needs calibration images: pass --calib DIR (tensors without QuantizeLinear / DequantizeLinear: {})",
            opts.model.display(),
            unquantized.iter().take(5).copied().collect::<Vec<_>>().join(", ")
        ),
    };
    let mut bytes = quantize(&graph, &ranges, &info)?;
    let mut fallback = Vec::new();
    if let Some(min_sqnr) = opts.auto_fallback {
        ensure!(
            !calib_images.is_empty(),
            "--auto-fallback measures each layer against tract on the calibration images: pass --calib DIR"
        );
        let probe = spread(&calib_images, FALLBACK_IMAGES);
        let mut stats = layer_stats(&bytes, &opts.model, &probe)?;
        // Greedy, while some layer is below the threshold: keep the eligible int8 layer that
        // loses the most precision itself (its SQNR minus its inputs'), re-measure, repeat.
        // Layers inherit their inputs' error, so the worst *loss* is a cause and the worst
        // SQNR is often only where the errors add up.
        while fallback.len() < FALLBACK_MAX_LAYERS {
            let worst = stats
                .iter()
                .map(|s| s.output.sqnr_db)
                .fold(f64::INFINITY, f64::min);
            if worst >= min_sqnr {
                break;
            }
            let candidate = stats
                .iter()
                .zip(&graph.layers)
                .filter(|(s, l)| !s.int16 && can_be_int16(&graph, l))
                .min_by(|(a, _), (b, _)| a.sqnr_change_db.total_cmp(&b.sqnr_change_db));
            let Some((before, layer)) = candidate else {
                break;
            };
            let (name, sqnr_before) = (layer.name.clone(), before.output.sqnr_db);
            info.int16.push(layer.op.output());
            bytes = quantize(&graph, &ranges, &info)?;
            stats = layer_stats(&bytes, &opts.model, &probe)?;
            let after = stats
                .iter()
                .find(|s| s.name == name)
                .map_or(f64::NAN, |s| s.output.sqnr_db);
            let worst_after = stats
                .iter()
                .map(|s| s.output.sqnr_db)
                .fold(f64::INFINITY, f64::min);
            fallback.push(FallbackStep {
                layer: name,
                sqnr_before,
                sqnr_after: after,
                worst_after,
            });
        }
    }
    let aligned = resq_engine::AlignedBytes::new(&bytes);
    let model = resq_format::Model::parse(aligned.as_bytes())
        .map_err(|e| anyhow::anyhow!("internal: the converted file does not validate: {e}"))?;
    let int16_layers = model
        .meta
        .layers
        .iter()
        .filter(|l| model.is_int16(l.op.output()))
        .map(|l| l.name.to_string())
        .collect();
    Ok(Converted {
        layers: graph.layers.len(),
        calib_images: info.calib_images as usize,
        int16_layers,
        fallback,
        bytes,
    })
}

/// Whether a layer's output can be kept at int16: it requantizes (conv, average pooling, add;
/// max pooling / padding / slicing copy their input's type) and is not the model's output
/// (firmware reads int8 logits).
fn can_be_int16(graph: &Graph, layer: &Layer) -> bool {
    matches!(layer.op, Op::Conv(_) | Op::AvgPool { .. } | Op::Add { .. })
        && layer.op.output() != graph.output
}

/// The output tensors of the layers named in `--keep-int16`.
fn keep_tensors(graph: &Graph, names: &[String]) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for name in names {
        let Some(layer) = graph.layers.iter().find(|l| &l.name == name) else {
            let known: Vec<&str> = graph
                .layers
                .iter()
                .filter(|l| can_be_int16(graph, l))
                .map(|l| l.name.as_str())
                .collect();
            bail!(
                "--keep-int16: no layer `{name}` in the model; layers that can be kept at int16: {}",
                known.join(", ")
            );
        };
        ensure!(
            layer.op.output() != graph.output,
            "--keep-int16: layer `{name}` writes the model's output (int8 logits, what the firmware \
             reads); keep an earlier layer"
        );
        ensure!(
            can_be_int16(graph, layer),
            "--keep-int16: layer `{name}` only copies values (max pooling, padding or slicing keep \
             their input's type); keep the layer that writes its input instead"
        );
        out.push(layer.op.output());
    }
    Ok(out)
}

/// A deterministic image (colour ramps) for the self-test of files made without calibration images.
fn test_pattern(p: &Preprocess) -> Vec<u8> {
    let c = p.channel_count();
    (0..p.height * p.width * c)
        .map(|i| {
            let (px, ch) = (i / c, i % c);
            let (y, x) = (px / p.width, px % p.width);
            ((x * 255 / p.width.max(1)) * (ch + 1) + y * 7) as u8
        })
        .collect()
}

/// Reads class names, one per line, and checks there is one per class.
pub fn read_labels(path: &Path, classes: usize) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read labels {}", path.display()))?;
    let labels: Vec<String> = text
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    ensure!(
        labels.len() == classes,
        "{} has {} labels but the model has {classes} classes; give one class name per line",
        path.display(),
        labels.len()
    );
    Ok(labels)
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so a
/// crash never leaves a half-written model.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile_in(dir, path)?;
    let result = (|| -> Result<()> {
        tmp.1.write_all(bytes)?;
        tmp.1.sync_all()?;
        std::fs::rename(&tmp.0, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp.0);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

fn tempfile_in(dir: &Path, target: &Path) -> Result<(PathBuf, std::fs::File)> {
    let stem = target
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    for i in 0..1000 {
        let p = dir.join(format!(".{stem}.{}.{i}.tmp", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
        {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot create a file in {}", dir.display()))
            }
        }
    }
    anyhow::bail!("cannot create a temporary file in {}", dir.display())
}
