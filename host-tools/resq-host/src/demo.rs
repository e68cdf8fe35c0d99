//! `resq demo`: the shipped ResNet-8, converted and run on the shipped photos.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use resq_engine::{AlignedBytes, Engine};
use resq_format::Layout;

use crate::calibrate::Method;
use crate::convert::{convert_with_progress, write_atomic, ConvertOptions, ResizeOptions};
use crate::eval::{argmax, preprocess_of};
use crate::images::list_images;
use crate::progress::Progress;

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

/// The demo's files (the models/ folder of the checkout), built into the program so that an
/// installed `resq demo` needs no checkout: path under models/, contents.
pub const BUILTIN: &[(&str, &[u8])] = &[
    (
        "resnet8/model_float.onnx",
        include_bytes!("../../../models/resnet8/model_float.onnx"),
    ),
    (
        "resnet8/labels.txt",
        include_bytes!("../../../models/resnet8/labels.txt"),
    ),
    (
        "resnet8/LICENSE-mlcommons-tiny.md",
        include_bytes!("../../../models/resnet8/LICENSE-mlcommons-tiny.md"),
    ),
    (
        "photos/astronaut.png",
        include_bytes!("../../../models/photos/astronaut.png"),
    ),
    (
        "photos/camera.png",
        include_bytes!("../../../models/photos/camera.png"),
    ),
    (
        "photos/chelsea.png",
        include_bytes!("../../../models/photos/chelsea.png"),
    ),
    (
        "photos/coffee.png",
        include_bytes!("../../../models/photos/coffee.png"),
    ),
    (
        "photos/coins.png",
        include_bytes!("../../../models/photos/coins.png"),
    ),
    (
        "photos/rocket.jpg",
        include_bytes!("../../../models/photos/rocket.jpg"),
    ),
    (
        "photos/scikit-image-LICENSE.txt",
        include_bytes!("../../../models/photos/scikit-image-LICENSE.txt"),
    ),
];

/// The models/ folder of the checkout this resq was built from (it may be gone).
pub fn checkout_models_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    dir.canonicalize().unwrap_or(dir)
}

/// The demo's models folder: the checkout's when it is there, else the built-in copy
/// unpacked (see [`find_models`]); the checkout's path if even that fails (the demo then
/// names the file it misses).
pub fn models_dir() -> PathBuf {
    find_models().unwrap_or_else(|_| checkout_models_dir())
}

/// The checkout's models/ folder when it holds the demo, else [`BUILTIN`] unpacked into
/// `$XDG_CACHE_HOME/resq/demo-<version>` (`~/.cache/…`; the temporary folder without a
/// home), written once and checked byte for byte on later runs.
pub fn find_models() -> Result<PathBuf> {
    let checkout = checkout_models_dir();
    if checkout.join("resnet8/model_float.onnx").is_file() {
        return Ok(checkout);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|d| !d.is_empty())
                .map(|h| Path::new(&h).join(".cache"))
        })
        .map(|c| c.join("resq"))
        .unwrap_or_else(|| std::env::temp_dir().join("resq"));
    let dir = cache.join(format!("demo-{}", env!("CARGO_PKG_VERSION")));
    unpack_builtin(&dir)?;
    Ok(dir)
}

/// Writes [`BUILTIN`] under `dir` (files already there with the same bytes are kept).
pub fn unpack_builtin(dir: &Path) -> Result<()> {
    for (name, bytes) in BUILTIN {
        let path = dir.join(name);
        if std::fs::read(&path).is_ok_and(|b| b == *bytes) {
            continue;
        }
        let parent = path.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        // Through a temporary name and a rename: two demos at once never see half a file.
        resq_io::write_atomic(&path, bytes)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Converts models/resnet8 with the shipped calibration images into `out`, then classifies the
/// shipped photos through the firmware engine; calibration reports to `progress`.
pub fn run_demo(models: &Path, out: &Path, progress: &dyn Progress) -> Result<Vec<DemoResult>> {
    // The checkout links resnet8/calibration to ../photos; the built-in copy has photos only.
    let calib = Some(models.join("resnet8/calibration"))
        .filter(|c| c.is_dir())
        .unwrap_or_else(|| models.join("photos"));
    let opts = ConvertOptions {
        model: models.join("resnet8/model_float.onnx"),
        calib: Some(calib),
        // MLPerf Tiny's ResNet-8 takes raw 0..255 pixels: mean 0 and std 1 on purpose.
        mean: [0.0; 3],
        std: [1.0; 3],
        mean_std_given: true,
        resize: ResizeOptions::default(),
        layout: Layout::Nchw,
        bgr: false,
        method: Method::MinMax,
        labels: Some(models.join("resnet8/labels.txt")),
        keep_int16: vec![],
        auto_fallback: None,
        // Six photos on purpose: the demo says what it calibrates on.
        warn_below_images: 0,
    };
    let converted = convert_with_progress(&opts, progress)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_copy_holds_every_shipped_demo_file() {
        let models = checkout_models_dir();
        let mut shipped: Vec<String> = vec![];
        for sub in ["resnet8", "photos"] {
            for e in std::fs::read_dir(models.join(sub)).unwrap().flatten() {
                if e.file_type().unwrap().is_file() {
                    shipped.push(format!("{sub}/{}", e.file_name().to_string_lossy()));
                }
            }
        }
        shipped.sort();
        let mut builtin: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
        builtin.sort();
        assert_eq!(builtin, shipped, "add new files of models/ to BUILTIN");
    }

    #[test]
    fn the_demo_runs_from_the_builtin_copy_alone() {
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        unpack_builtin(&models).unwrap();
        // A second unpack keeps what is there.
        unpack_builtin(&models).unwrap();
        let results = run_demo(
            &models,
            &dir.path().join("m.resq"),
            &crate::progress::NoProgress,
        )
        .unwrap();
        assert_eq!(results.len(), 6);
        let chelsea = results
            .iter()
            .find(|r| r.image.ends_with("chelsea.png"))
            .unwrap();
        assert_eq!(chelsea.label, "cat");
    }
}
