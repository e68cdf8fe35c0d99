//! Progress of flashes and device checks: the [`Step`]s of one device, and the [`Progress`]
//! callbacks a front end implements (the `resq` CLI draws them with indicatif).

/// A step of a flash on one device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Connecting / reading what is installed.
    Connect,
    /// Cleaning up and making the release folder.
    Prepare,
    /// Checking SHA-256 sums and syncing.
    Verify,
    /// Switching `current`.
    Switch,
    /// Running the self-test on the device.
    SelfTest,
    /// Switching back after a failure.
    RollBack,
    /// Deleting old releases.
    Prune,
    /// Installing or restarting the service.
    Service,
    /// Running a benchmark or classifying images on the device.
    Measure,
}

impl Step {
    /// A short word for progress lines.
    pub fn name(self) -> &'static str {
        match self {
            Step::Connect => "connecting",
            Step::Prepare => "preparing",
            Step::Verify => "verifying",
            Step::Switch => "switching",
            Step::SelfTest => "self-test",
            Step::RollBack => "rolling back",
            Step::Prune => "pruning",
            Step::Service => "service",
            Step::Measure => "measuring",
        }
    }
}

/// Progress callbacks, per device (a fleet calls them from several threads). Every method
/// has a no-op default.
pub trait Progress: Sync {
    /// A step begins on `device`.
    fn step(&self, _device: &str, _step: Step) {}
    /// Sending `total` bytes to `device` begins.
    fn transfer_start(&self, _device: &str, _total: u64) {}
    /// `sent` of the total bytes have been sent to `device`.
    fn transfer(&self, _device: &str, _sent: u64) {}
    /// Sending to `device` is done.
    fn transfer_end(&self, _device: &str) {}
    /// `device` is done (`ok`: flashed).
    fn finish(&self, _device: &str, _ok: bool) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
