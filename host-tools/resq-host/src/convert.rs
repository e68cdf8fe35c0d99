//! `resq convert`: ONNX in, calibrated int8 `.resq` out.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
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
    /// Folder of calibration images.
    pub calib: PathBuf,
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
    let images = list_images(&opts.calib)?;
    let ranges = calibrate(&source, &graph, &pre, &images, opts.method, opts.progress)?;
    let labels = match &opts.labels {
        Some(p) => read_labels(p, graph.tensors[graph.output].elems())?,
        None => vec![],
    };
    let info = FileInfo {
        preprocess: pre,
        labels,
        source_name: opts
            .model
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        source_sha256: sha256_file(&opts.model)?,
        calib_digest: digest_files(&opts.calib, &images)?,
        calib_images: images.len() as u32,
        method: opts.method.name().to_string(),
        method_param: opts.method.param(),
        self_test_pixels: pre.load_pixels(&images[0])?,
    };
    let bytes = quantize(&graph, &ranges, &info)?;
    Ok(Converted {
        bytes,
        layers: graph.layers.len(),
        calib_images: images.len(),
    })
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
