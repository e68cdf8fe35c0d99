//! `resq convert`: ONNX in, calibrated int8 `.resq` out.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use resq_format::{ChannelOrder, Layout};

use crate::calibrate::{calibrate, Method};
use crate::images::{digest_files, list_images, sha256_file, Preprocess};
use crate::import::{import, load};
use crate::quantize::{check_limits, quantize, FileInfo};

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
}

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
    let source_name = opts.model.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
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
    };
    let unquantized: Vec<&str> = graph.tensors.iter().filter(|t| t.qparams.is_none()).map(|t| t.name.as_str()).collect();
    let ranges = match &opts.calib {
        Some(calib) => {
            let images = list_images(calib)?;
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
    let bytes = quantize(&graph, &ranges, &info)?;
    Ok(Converted {
        bytes,
        layers: graph.layers.len(),
        calib_images: info.calib_images as usize,
    })
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
