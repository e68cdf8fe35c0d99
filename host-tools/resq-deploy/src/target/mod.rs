//! Install targets: what [`crate::install`] needs from a device, and the two kinds of device.
//!
//! - [`local`]: `dir:` targets, a board's root filesystem mounted on this machine.
//! - [`ssh`]: `ssh://` targets, a live board through the system OpenSSH client and
//!   `scripts/device.sh` run on it.
//!
//! Both lay releases out the same way (see [`crate::install`]) and implement [`Device`].

use crate::board::Board;
use crate::bundle::{BundleFile, Manifest};
use crate::error::Result;

pub(crate) mod local;
pub(crate) mod ssh;

/// One release folder on a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// Release id (folder name).
    pub id: String,
    /// Whether its `manifest.json` exists (all files checked and in place).
    pub complete: bool,
}

/// What is installed on a device.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// The release `current` points at.
    pub current: Option<String>,
    /// The release `previous` points at.
    pub previous: Option<String>,
    /// Every release folder, sorted by id (oldest first).
    pub releases: Vec<Release>,
    /// Free bytes on the file system of `<prefix>/opt/resq`, when known.
    pub free_bytes: Option<u64>,
    /// `uname -m` of a live device.
    pub arch: Option<String>,
    /// Manifest of the current release.
    pub current_manifest: Option<Manifest>,
    /// Manifest of the previous release.
    pub previous_manifest: Option<Manifest>,
    /// Whether the current release's files match their SHA-256 (asked by `--status`).
    pub current_verified: Option<bool>,
}

/// Outcome of `resq-fw selftest` on the device.
#[derive(Clone, Debug)]
pub struct SelfTest {
    /// Exit status 0.
    pub passed: bool,
    /// What it printed (stdout and stderr).
    pub output: String,
}

/// What [`Device::switch`] did.
pub(crate) struct Switched {
    /// The self-test of the new release (`None`: cannot run here).
    pub selftest: Option<SelfTest>,
    /// The links were put back after a failed self-test.
    pub restored: bool,
    /// A running service was restarted.
    pub service: Option<String>,
    /// Things the user should know.
    pub warnings: Vec<String>,
}

/// The operations a target supports; [`local::Local`] and [`ssh::Ssh`] implement them.
pub(crate) trait Device {
    /// `<prefix>/opt/resq` in the device's own terms, for messages.
    fn root(&self) -> String;
    /// What is installed (`verify`: also check the current release's files).
    fn state(&mut self, verify: bool) -> Result<State>;
    /// Steps 2 and 3: clean up (keeping `keep`), check space, send, seal `releases/<id>`.
    fn stage(
        &mut self,
        id: &str,
        keep: &[String],
        files: &[BundleFile],
        sent: &mut dyn FnMut(u64),
    ) -> Result<()>;
    /// Checks that a complete release holds exactly `files`.
    fn verify(&mut self, id: &str, files: &[BundleFile]) -> Result<()>;
    /// Steps 4 and 5: activates `id`, self-tests it, and on failure restores `current` /
    /// `previous` (and deletes `id` if `drop`); on success restarts a running service.
    fn switch(
        &mut self,
        id: &str,
        current: Option<&str>,
        previous: Option<&str>,
        drop: bool,
        board: &Board,
    ) -> Result<Switched>;
    /// Sets `current` and `previous` (`None` removes a link).
    fn restore(&mut self, current: Option<&str>, previous: Option<&str>) -> Result<()>;
    /// Deletes releases.
    fn remove(&mut self, ids: &[String]) -> Result<()>;
    /// `None` when the firmware cannot run here (a mounted card for another architecture).
    fn selftest(&mut self) -> Result<Option<SelfTest>>;
    /// Installs and enables the unit; returns what was done, and warnings.
    fn enable_service(&mut self, board: &Board) -> Result<(Option<String>, Vec<String>)>;
    /// Restarts the service if it runs.
    fn restart_service(&mut self, board: &Board) -> Result<(Option<String>, Vec<String>)>;
}

/// The release id of a link target `releases/<id>` (`current` and `previous` are relative
/// links of exactly that form; anything else is not resq's).
pub(crate) fn link_id(target: &str) -> Option<String> {
    let id = target.strip_prefix("releases/")?;
    (!id.is_empty() && !id.contains('/') && !id.starts_with('.')).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_links_into_releases_name_a_release() {
        assert_eq!(link_id("releases/x"), Some("x".into()));
        for t in [
            "../releases/x",
            "releases/",
            "releases/a/b",
            "releases/.trash-x",
            "/opt",
        ] {
            assert_eq!(link_id(t), None, "{t}");
        }
    }
}
