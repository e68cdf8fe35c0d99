//! Progress of the long host steps (calibration, `resq report`'s passes), reported through
//! the [`Progress`] trait so the library draws nothing itself: the `resq` CLI draws it with
//! indicatif, other callers pass [`NoProgress`].

/// Progress callbacks, per task. Tasks are named by the constants of this module
/// ([`CALIBRATING`], [`EVALUATING`], [`COMPARING_LAYERS`]); every task counts images. Two
/// tasks may run at once on different threads (`resq report`). Every method has a no-op
/// default.
pub trait Progress: Sync {
    /// `task` begins, with `total` steps (images) to go.
    fn start(&self, _task: &str, _total: u64) {}
    /// `n` more steps of `task` are done.
    fn advance(&self, _task: &str, _n: u64) {}
    /// `task` is done.
    fn finish(&self, _task: &str) {}
}

/// Reports nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Calibration: images through tract's float model (twice each for the histogram methods).
pub const CALIBRATING: &str = "calibrating";
/// `resq report`: top-1 / agreement of the int8 file and tract f32.
pub const EVALUATING: &str = "top-1 / agreement";
/// `resq report`: images run layer by layer through the engine and tract.
pub const COMPARING_LAYERS: &str = "comparing layers";
