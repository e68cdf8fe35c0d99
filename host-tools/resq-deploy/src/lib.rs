//! `resq-deploy`: put resq on Linux boards (Cortex-A, Jetson) so that it survives a power cut
//! at any moment and never leaves the board without a working classifier.
//!
//! - [`Bundle`]: firmware + model + board profile + systemd unit + a manifest of SHA-256 sums
//!   and versions; written alone as a tar file for offline transport.
//! - [`Target`]: `ssh://user@host[:port][/prefix]` (a live board, through the system OpenSSH
//!   client with verified host keys) or `dir:/mnt/rootfs` (a mounted card or image).
//! - [`flash`]: the atomic A/B install (see [`install`] for the steps), self-test on the
//!   device, automatic switch back on failure; [`rollback`] and [`status`].
//! - [`flash_fleet`]: many devices in parallel with a bounded number of connections.
//! - [`device`]: benchmark or accuracy check on a live board.
//!
//! Progress is reported through the [`Progress`] trait (no-op by default); the `resq` CLI
//! draws it with indicatif.

#![warn(missing_docs)]

pub mod board;
pub mod bundle;
pub mod device;
mod error;
mod fault;
pub mod fleet;
pub mod install;
mod local;
mod ssh;
pub mod uri;

pub use board::Board;
pub use bundle::{find_firmware, Bundle, BundleSpec, Manifest};
pub use error::{Error, ErrorKind, Result};
pub use fleet::{flash_fleet, for_each};
pub use install::{
    flash, rollback, status, FlashOptions, FlashReport, RollbackReport, SelfTest, State,
};
pub use ssh::SshOptions;
pub use uri::{read_inventory, Target};

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
