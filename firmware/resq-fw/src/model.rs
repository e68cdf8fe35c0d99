//! Loading a `.resq` file for the life of the process.

use std::path::Path;

use anyhow::Result;
use resq_engine::Engine;
use resq_io::bad_input;

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
    /// is opened). The file is read through [`resq_io::read_model`]: its header first, then
    /// exactly the length the header states, at most [`resq_io::MAX_MODEL_BYTES`], so a file
    /// that is not a model (even `/dev/zero`) is refused after 64 bytes. Every error here is
    /// bad input (exit status [`resq_io::exit::BAD_INPUT`]).
    pub fn load(path: &Path) -> Result<ModelFile> {
        let aligned = resq_io::read_model(path)?;
        // Leaked on purpose: one model per process, borrowed by threads that may outlive `main`'s
        // stack frame during shutdown.
        let bytes = Box::leak(Box::new(aligned)).as_bytes();
        let path: &'static str = Box::leak(path.display().to_string().into_boxed_str());
        let model = ModelFile { bytes, path };
        model.engine()?;
        Ok(model)
    }

    /// A fresh engine (its own activation arena) over the file.
    pub fn engine(&self) -> Result<Engine<'static>> {
        Engine::from_bytes(self.bytes).map_err(|e| {
            bad_input(format!(
                "{} is not a usable .resq model: {e}; re-convert it with this version's `resq convert`",
                self.path
            ))
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
