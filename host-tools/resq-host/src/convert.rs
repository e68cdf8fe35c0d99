//! `resq convert`: ONNX in, calibrated int8 `.resq` out.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use resq_format::{ChannelOrder, Layout, Resize, ResizeMode, MAX_IMAGE_DIM};

use crate::calibrate::{calibrate, Method};
use crate::images::{digest_files, list_images, sha256_file, Preprocess};
use crate::import::{import, load};
use crate::ir::{Graph, Layer, Op};
use crate::progress::{NoProgress, Progress};
use crate::quantize::{check_limits, quantize, FileInfo};
use crate::report::measure::{measure_layers, FloatModel, LayerStats};
use crate::report::spread;

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
    /// Whether `--mean` / `--std` were given (a model converted with the defaults, mean 0 and
    /// std 1, gets a warning that it will see raw pixels).
    pub mean_std_given: bool,
    /// How images are resized before the centre crop to the model input.
    pub resize: ResizeOptions,
    /// Input layout of the model.
    pub layout: Layout,
    /// Whether the model takes BGR.
    pub bgr: bool,
    /// Calibration method.
    pub method: Method,
    /// Class labels file, one per line.
    pub labels: Option<PathBuf>,
    /// Layers (names as `resq inspect` shows them) whose outputs are kept at int16.
    pub keep_int16: Vec<String>,
    /// `--auto-fallback`: keep layers at int16 while some layer's SQNR against tract f32 is
    /// below this many dB.
    pub auto_fallback: Option<f64>,
    /// Warn when fewer calibration images than this were usable ([`MIN_CALIB_IMAGES`] unless
    /// the caller knows its set is small on purpose, as the demo's six photos).
    pub warn_below_images: usize,
}

impl ConvertOptions {
    /// `model` with the defaults of `resq convert`: no calibration folder (set `calib` unless
    /// the model is QDQ), mean 0 and std 1 (not given), shorter side to the input and centre
    /// crop, NCHW, RGB, minmax, no labels, every layer int8.
    pub fn new(model: impl Into<PathBuf>) -> Self {
        ConvertOptions {
            model: model.into(),
            calib: None,
            mean: [0.0; 3],
            std: [1.0; 3],
            mean_std_given: false,
            resize: ResizeOptions::default(),
            layout: Layout::Nchw,
            bgr: false,
            method: Method::MinMax,
            labels: None,
            keep_int16: Vec::new(),
            auto_fallback: None,
            warn_below_images: MIN_CALIB_IMAGES,
        }
    }
}

/// The resize recipe asked for: `resq convert --resize N | --crop-ratio R [--crop M]
/// [--resize-mode shorter|squash]`. [`ResizeOptions::recipe`] turns it into the file's
/// [`Resize`] once the model's input size is known.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResizeOptions {
    /// `--resize N`: the resized image's shorter side (for a non-square input, the shorter
    /// side of the input-shaped box the image is resized to).
    pub resize: Option<u32>,
    /// `--crop-ratio R`: the crop keeps this fraction of the resized image, so the resize is
    /// `floor(input / R)`, as timm computes it from `crop_pct` (0.875 gives 256 for a 224
    /// input, 0.95 gives 235).
    pub crop_ratio: Option<f64>,
    /// `--crop`: `[height, width]` of the centre crop; must be the model input (resq crops to
    /// the input), given to state the recipe in full.
    pub crop: Option<[u32; 2]>,
    /// `--resize-mode`: keep the aspect ratio (shorter side) or squash.
    pub mode: ResizeMode,
}

impl Default for ResizeOptions {
    /// Shorter side to the input, crop ratio 1.0: the recipe of version 1 and 2 files.
    fn default() -> Self {
        ResizeOptions {
            resize: None,
            crop_ratio: None,
            crop: None,
            mode: ResizeMode::Shorter,
        }
    }
}

impl ResizeOptions {
    /// The file's recipe for a model whose input is `height`×`width`; errors name the flag
    /// to change and the input size.
    pub fn recipe(&self, height: usize, width: usize) -> Result<Resize> {
        let input = format!("{height}×{width} (height × width)");
        if let Some([ch, cw]) = self.crop {
            ensure!(
                [ch as usize, cw as usize] == [height, width],
                "--crop {}: resq crops to the model input, which is {input}; pass --crop {} or \
                 leave --crop out (set the resize with --resize or --crop-ratio)",
                if ch == cw {
                    ch.to_string()
                } else {
                    format!("{ch}x{cw}")
                },
                if height == width {
                    height.to_string()
                } else {
                    format!("{height}x{width}")
                }
            );
        }
        let [h, w] = [height as f64, width as f64];
        let size: [f64; 2] = match (self.resize, self.crop_ratio) {
            (Some(_), Some(_)) => bail!(
                "--resize and --crop-ratio both set the resize; give one (--crop-ratio R is \
                 --resize floor(input / R))"
            ),
            (Some(0), None) => {
                bail!("--resize 0: give the resized shorter side in pixels, e.g. --resize 256")
            }
            (Some(n), None) => {
                // The shorter side of the input-shaped box is n.
                let k = n as f64 / h.min(w);
                [w * k, h * k]
            }
            (None, Some(r)) => {
                ensure!(
                    r.is_finite() && r > 0.0 && r <= 1.0,
                    "--crop-ratio {r}: give the fraction of the resized image the centre crop \
                     keeps, above 0 and at most 1 (timm's crop_pct, e.g. 0.875: a 224 input is \
                     cropped from 256)"
                );
                // timm: scale_size = math.floor(img_size / crop_pct), in f64 as here.
                [(w / r).floor(), (h / r).floor()]
            }
            (None, None) => [w, h],
        };
        let size = size.map(|d| d.round().min(u32::MAX as f64) as u32);
        let flag = match (self.resize, self.crop_ratio) {
            (Some(n), _) => format!("--resize {n}"),
            (_, Some(r)) => format!("--crop-ratio {r}"),
            _ => "the default resize".to_string(),
        };
        ensure!(
            size[0] as usize >= width && size[1] as usize >= height,
            "{flag} resizes to {}×{} (width × height), smaller than the model input {input}, so \
             the centre crop would not fit; use --resize {} or more",
            size[0],
            size[1],
            height.min(width)
        );
        ensure!(
            size.iter().all(|&d| d <= MAX_IMAGE_DIM),
            "{flag} resizes to {}×{} (width × height), over resq's limit of {MAX_IMAGE_DIM} \
             pixels a side; use a smaller --resize",
            size[0],
            size[1]
        );
        Ok(Resize {
            mode: self.mode,
            size,
        })
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
    /// The preprocessing stored in the file (resize recipe, channels, mean, std).
    pub preprocess: Preprocess,
    /// Things the user probably got wrong (e.g. mean / std in 0..1 units); `resq convert`
    /// prints each on stderr.
    pub warnings: Vec<String>,
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

/// Converts a model; returns the file bytes (write them with [`write_atomic`]). Reports no
/// progress.
pub fn convert(opts: &ConvertOptions) -> Result<Converted> {
    convert_with_progress(opts, &NoProgress)
}

/// [`convert`], reporting calibration ([`crate::progress::CALIBRATING`]) to `progress`.
pub fn convert_with_progress(opts: &ConvertOptions, progress: &dyn Progress) -> Result<Converted> {
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
    let resize = opts
        .resize
        .recipe(h, w)
        .with_context(|| format!("{}: the resize recipe", opts.model.display()))?;
    let pre = Preprocess {
        height: h,
        width: w,
        resize,
        channels,
        layout: source.layout,
        mean: opts.mean,
        std: opts.std,
    };
    let mut warnings =
        normalisation_warnings(opts, &pre, graph.tensors[graph.input].qparams.is_none());
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
            let (images, pixels) =
                calibration_set(calib, &pre, opts.warn_below_images, &mut warnings)?;
            calib_images = images.clone();
            info.calib_digest = digest_files(calib, &images)?;
            info.calib_images = images.len() as u32;
            info.method = opts.method.name().into();
            info.method_param = opts.method.param();
            info.self_test_pixels = pixels[0].clone();
            calibrate(&source, &graph, &pre, &pixels, opts.method, progress)?
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
        // The float side once (the source and graph in hand); each step re-measures the file.
        let float = FloatModel::new(&source, &graph)?;
        let measure = |bytes: &[u8]| -> Result<Vec<LayerStats>> {
            let aligned = resq_engine::AlignedBytes::new(bytes);
            let mut engine = resq_engine::Engine::from_bytes(aligned.as_bytes()).map_err(|e| {
                anyhow::anyhow!("internal: the converted file does not validate: {e}")
            })?;
            Ok(measure_layers(&mut engine, &float, &probe, &NoProgress)?.layers)
        };
        let mut stats = measure(&bytes)?;
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
            stats = measure(&bytes)?;
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
        preprocess: pre,
        warnings,
        bytes,
    })
}

/// torchvision's ImageNet normalisation in resq's pixel units (its 0..1 values × 255).
const TORCHVISION: &str = "--mean 123.675,116.28,103.53 --std 58.395,57.12,57.375";

/// Warnings about `--mean` / `--std`: values that look like 0..1 units on a float model, and
/// the defaults (raw pixels) on any model. `float_input`: the model's input is not quantized
/// by the model itself (not QDQ).
fn normalisation_warnings(
    opts: &ConvertOptions,
    pre: &Preprocess,
    float_input: bool,
) -> Vec<String> {
    let c = pre.channel_count();
    let (mean, std) = (&opts.mean[..c], &opts.std[..c]);
    let list = |v: &[f32]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let raw = mean.iter().all(|&m| m == 0.0) && std.iter().all(|&s| s == 1.0);
    let mut out = Vec::new();
    if !opts.mean_std_given {
        out.push(format!(
            "no --mean / --std given: {} will see raw 0..255 pixels (mean 0, std 1); pass the \
             normalisation it was trained with (torchvision: {TORCHVISION}), or --mean 0 --std 1 \
             to silence this if raw pixels are intended",
            opts.model.display()
        ));
    } else if float_input && !raw && mean.iter().chain(std).all(|v| v.abs() <= 1.0) {
        out.push(format!(
            "--mean {} --std {} look like 0..1 units, but resq's mean/std are in pixel units \
             0..255; for torchvision use {TORCHVISION} (its 0..1 values × 255)",
            list(mean),
            list(std)
        ));
    }
    out
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

/// Below this many calibration images convert warns: activation ranges from a handful of
/// images miss the tails the board will see (TensorRT and onnxruntime suggest hundreds).
pub const MIN_CALIB_IMAGES: usize = 50;

/// The calibration images under `dir` and their preprocessed pixels. Damaged or unreadable
/// images (a truncated JPEG, a PNG with a bad CRC) are left out and counted in a warning;
/// none usable is an error, fewer than `warn_below` a warning.
fn calibration_set(
    dir: &Path,
    pre: &Preprocess,
    warn_below: usize,
    warnings: &mut Vec<String>,
) -> Result<(Vec<PathBuf>, Vec<Vec<u8>>)> {
    let mut images = Vec::new();
    let mut pixels = Vec::new();
    let mut skipped = Vec::new();
    for path in list_images(dir)? {
        match pre.load_pixels(&path) {
            Ok(px) => {
                images.push(path);
                pixels.push(px);
            }
            Err(e) => skipped.push(format!("{e:#}")),
        }
    }
    if !skipped.is_empty() {
        warnings.push(format!(
            "left out {} damaged or unreadable calibration image(s): {}{}",
            skipped.len(),
            skipped[..skipped.len().min(3)].join("; "),
            if skipped.len() > 3 { "; …" } else { "" }
        ));
    }
    if images.is_empty() {
        return Err(resq_io::bad_input(format!(
            "no usable calibration image in {} ({} damaged or unreadable)",
            dir.display(),
            skipped.len()
        )));
    }
    if images.len() < warn_below {
        warnings.push(format!(
            "calibrating on {} image(s) from {}: activation ranges from so few miss what the \
             board will see; use 100–500 images like the board's",
            images.len(),
            dir.display()
        ));
    }
    Ok((images, pixels))
}

/// Reads class names, one per line, and checks there is one per class.
pub fn read_labels(path: &Path, classes: usize) -> Result<Vec<String>> {
    let text = resq_io::read_text(path, "labels file")?;
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

/// Writes `bytes` to `path` atomically ([`resq_io::write_atomic`]: a temporary file in the same
/// folder and a rename), so a crash never leaves a half-written model; errors name `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    resq_io::write_atomic(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
