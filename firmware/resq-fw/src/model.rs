//! Loading a `.resq` file for the life of the process.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use resq_engine::{AlignedBytes, Engine};

/// The model file's bytes, 8-byte aligned and kept for the life of the process, so every worker
/// thread can build its own engine over them.
#[derive(Clone, Copy)]
pub struct ModelFile {
    /// The bytes.
    pub bytes: &'static [u8],
    /// Where it came from, for messages.
    pub path: &'static str,
}

impl ModelFile {
    /// Reads and validates `path` (parses it once, so a bad file is refused before any camera
    /// is opened).
    pub fn load(path: &Path) -> Result<ModelFile> {
        let raw = std::fs::read(path).with_context(|| {
            format!(
                "cannot read model {}; pass a .resq file written by `resq convert` with --model",
                path.display()
            )
        })?;
        // Leaked on purpose: one model per process, borrowed by threads that may outlive `main`'s
        // stack frame during shutdown.
        let bytes = Box::leak(Box::new(AlignedBytes::new(&raw))).as_bytes();
        let path: &'static str = Box::leak(path.display().to_string().into_boxed_str());
        let model = ModelFile { bytes, path };
        model.engine()?;
        Ok(model)
    }

    /// A fresh engine (its own activation arena) over the file.
    pub fn engine(&self) -> Result<Engine<'static>> {
        Engine::from_bytes(self.bytes).map_err(|e| {
            anyhow!(
                "{} is not a usable .resq model: {e}; re-convert it with this version's `resq convert`",
                self.path
            )
        })
    }
}

/// Class labels of a model, `class N` where the file has none.
pub fn labels(engine: &Engine) -> Vec<String> {
    let named: Vec<String> = engine.model().labels().map(str::to_string).collect();
    (0..engine.model().classes())
        .map(|i| {
            named
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("class {i}"))
        })
        .collect()
}
