//! `resq demo`: the shipped ResNet-8, converted and run on the shipped photos.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use resq_engine::{AlignedBytes, Engine};
use resq_format::Layout;

use crate::calibrate::Method;
use crate::convert::{convert, write_atomic, ConvertOptions, ResizeOptions};
use crate::eval::{argmax, preprocess_of};
use crate::images::list_images;

/// One classified photo.
#[derive(Clone, Debug)]
pub struct DemoResult {
    /// The photo.
    pub image: PathBuf,
    /// Predicted label.
    pub label: String,
    /// Its probability.
    pub confidence: f32,
    /// Inference latency (preprocessing excluded), milliseconds.
    pub latency_ms: f64,
}

/// The models/ folder of the workspace.
pub fn models_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    dir.canonicalize().unwrap_or(dir)
}

/// Converts models/resnet8 with the shipped calibration images into `out`, then classifies the
/// shipped photos through the firmware engine.
pub fn run_demo(models: &Path, out: &Path, progress: bool) -> Result<Vec<DemoResult>> {
    let opts = ConvertOptions {
        model: models.join("resnet8/model_float.onnx"),
        calib: Some(models.join("resnet8/calibration")),
        // MLPerf Tiny's ResNet-8 takes raw 0..255 pixels: mean 0 and std 1 on purpose.
        mean: [0.0; 3],
        std: [1.0; 3],
        mean_std_given: true,
        resize: ResizeOptions::default(),
        layout: Layout::Nchw,
        bgr: false,
        method: Method::MinMax,
        labels: Some(models.join("resnet8/labels.txt")),
        progress,
        keep_int16: vec![],
        auto_fallback: None,
    };
    let converted = convert(&opts)?;
    write_atomic(out, &converted.bytes)?;
    let bytes = AlignedBytes::new(
        &std::fs::read(out).with_context(|| format!("cannot read {}", out.display()))?,
    );
    let mut engine =
        Engine::from_bytes(bytes.as_bytes()).map_err(|e| anyhow!("{}: {e}", out.display()))?;
    let pre = preprocess_of(&engine);
    let labels: Vec<String> = engine.model().labels().map(str::to_string).collect();
    let mut results = vec![];
    let mut scores = vec![0.0; engine.model().classes()];
    for image in list_images(&models.join("photos"))? {
        let px = pre.load_pixels(&image)?;
        engine.set_input_pixels(&px).map_err(|e| anyhow!("{e}"))?;
        let t = Instant::now();
        engine.run();
        let latency_ms = t.elapsed().as_secs_f64() * 1e3;
        engine.scores(&mut scores);
        let best = argmax(&scores);
        results.push(DemoResult {
            image,
            label: labels
                .get(best)
                .cloned()
                .unwrap_or_else(|| format!("class {best}")),
            confidence: scores[best],
            latency_ms,
        });
    }
    Ok(results)
}
