//! End-to-end tests of resq across the host tools and the firmware engine live in `tests/`.
//! This library holds what they share: where the real assets are, and small fixtures.

use std::path::{Path, PathBuf};

/// The shared real assets (`../shared/assets` beside the repository), or `$RESQ_ASSETS`.
pub fn assets() -> PathBuf {
    std::env::var_os("RESQ_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/assets"))
}

/// The repository's models/ folder.
pub fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

/// The photos shipped in models/photos, sorted.
pub fn photos() -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(models().join("photos"))
        .expect("models/photos")
        .map(|e| e.expect("models/photos entry").path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("png" | "jpg")))
        .collect();
    v.sort();
    v
}

/// The MLPerf Tiny ResNet-8 files.
pub fn resnet8(file: &str) -> PathBuf {
    assets().join("resnet8-mlperf-tiny").join(file)
}

/// The CIFAR-10 ic01 images folder and its labels CSV.
pub fn ic01() -> (PathBuf, PathBuf) {
    let dir = assets().join("cifar10-ic01");
    (dir.join("png"), dir.join("labels.csv"))
}

/// A temporary folder linking the first `n` ic01 images (in labels.csv order), for calibration.
/// The images stay in ../shared: only symlinks are made.
pub fn ic01_subset(n: usize) -> tempfile::TempDir {
    let (png, csv) = ic01();
    let dir = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read_to_string(&csv).expect("ic01 labels.csv (is ../shared/assets there?)");
    for line in text.lines().skip(1).take(n) {
        let file = line.split(',').nth(1).expect("png column");
        std::os::unix::fs::symlink(png.join(file), dir.path().join(file)).expect("symlink");
    }
    dir
}

/// A temporary ImageFolder (one class, `0/`) of the CC0 photos, for models without real labels.
pub fn photo_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let class = dir.path().join("0");
    std::fs::create_dir(&class).expect("mkdir");
    for entry in std::fs::read_dir(assets().join("photos")).expect("photos") {
        let path = entry.expect("entry").path();
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("png" | "jpg")
        ) {
            std::os::unix::fs::symlink(&path, class.join(path.file_name().expect("name")))
                .expect("symlink");
        }
    }
    dir
}
