//! The install protocol, the same for every kind of target:
//!
//! ```text
//! <prefix>/opt/resq/
//! ├── releases/
//! │   ├── 20250301T101500Z-3f2a9c01b7de/   resq-fw model.resq board.toml resq.service
//! │   │                                    SHA256SUMS manifest.json (written last)
//! │   └── 20250214T080000Z-77c1d0e2a9b4/   the previous release, kept for rollback
//! ├── current  -> releases/20250301T101500Z-3f2a9c01b7de   (relative symlink)
//! └── previous -> releases/20250214T080000Z-77c1d0e2a9b4
//! ```
//!
//! 1. **state**: read the links and releases; refuse a device of another architecture.
//! 2. **prepare**: remove what an interrupted flash left (incomplete releases, `*.tmp`
//!    links), check the free space, create `releases/<id>/`.
//! 3. **upload** each file as `.NAME.part`, then **seal**: check every SHA-256, fsync,
//!    rename into place, fsync the folder, `manifest.json` last. A release with a
//!    `manifest.json` is complete; nothing else is ever pointed at.
//! 4. **activate**: `previous` → the old `current`, then `current` → the new release, each by
//!    creating `NAME.tmp` and renaming it over `NAME` (one atomic rename(2)).
//! 5. **self-test** `current/resq-fw selftest` on the device; on failure **restore** both links
//!    and delete the new release, and report the failure.
//! 6. **prune** releases beyond `keep` (never `current` or `previous`), **service**.

use std::time::Instant;

use crate::board::Board;
use crate::bundle::{id_content, Bundle, BundleFile};
use crate::error::{indent, Error, ErrorKind, Result};
use crate::progress::{Progress, Step};
use crate::target::local::Local;
use crate::target::ssh::{Ssh, SshOptions};
use crate::target::{Device, Release, SelfTest, State};
use crate::uri::Target;

/// Options of `resq flash`.
#[derive(Clone, Debug)]
pub struct FlashOptions {
    /// Install and enable the systemd unit.
    pub enable_service: bool,
    /// Releases to keep on the device, `current` and `previous` included (at least 2).
    pub keep: usize,
    /// How to reach SSH targets.
    pub ssh: SshOptions,
}

impl Default for FlashOptions {
    fn default() -> Self {
        FlashOptions {
            enable_service: false,
            keep: 3,
            ssh: SshOptions::default(),
        }
    }
}

/// What a flash did.
#[derive(Clone, Debug)]
pub struct FlashReport {
    /// The device.
    pub device: String,
    /// The release now current.
    pub id: String,
    /// The release before it (kept for `--rollback`).
    pub previous: Option<String>,
    /// The release was current already: nothing was sent or switched.
    pub unchanged: bool,
    /// The release was already on the device (e.g. as `previous`): switched to, not sent.
    pub reused: bool,
    /// Bytes sent.
    pub sent_bytes: u64,
    /// Seconds spent sending.
    pub transfer_secs: f64,
    /// The self-test, `None` when it cannot run here.
    pub selftest: Option<SelfTest>,
    /// Releases deleted by pruning.
    pub pruned: Vec<String>,
    /// What was done with the service.
    pub service: Option<String>,
    /// Things the user should know.
    pub warnings: Vec<String>,
}

/// What a rollback did.
#[derive(Clone, Debug)]
pub struct RollbackReport {
    /// The device.
    pub device: String,
    /// The release now current.
    pub current: String,
    /// The release switched away from (now `previous`).
    pub previous: String,
    /// The self-test of the release now current.
    pub selftest: Option<SelfTest>,
    /// What was done with the service.
    pub service: Option<String>,
}

/// The device behind `target`, connected.
fn open(target: &Target, opts: &SshOptions) -> Result<Box<dyn Device>> {
    Ok(match target {
        Target::Dir(p) => Box::new(Local::open(p)?),
        Target::Ssh(s) => Box::new(Ssh::connect(s, opts)?),
    })
}

/// Installs `bundle` on `target`: see the module docs for the steps.
pub fn flash(
    target: &Target,
    bundle: &Bundle,
    opts: &FlashOptions,
    progress: &dyn Progress,
) -> Result<FlashReport> {
    let name = target.to_string();
    flash_inner(target, bundle, opts, progress, &name).map_err(|e| e.on(&name))
}

fn flash_inner(
    target: &Target,
    bundle: &Bundle,
    opts: &FlashOptions,
    progress: &dyn Progress,
    name: &str,
) -> Result<FlashReport> {
    let board = Board::parse(
        &String::from_utf8_lossy(
            &bundle
                .file("board.toml")
                .map(|f| f.data.clone())
                .unwrap_or_default(),
        ),
        "board.toml of the bundle",
    )?;
    progress.step(name, Step::Connect);
    let mut dev = open(target, &opts.ssh)?;
    let st = dev.state(false)?;
    check_arch(&st, &board)?;
    let content = id_content(bundle.id());
    let mut report = FlashReport {
        device: name.to_string(),
        id: bundle.id().to_string(),
        previous: st.previous.clone(),
        unchanged: false,
        reused: false,
        sent_bytes: 0,
        transfer_secs: 0.0,
        selftest: None,
        pruned: vec![],
        service: None,
        warnings: vec![],
    };
    if let Some(cur) = st.current.as_deref().filter(|c| id_content(c) == content) {
        // Same content already running: check it, change nothing.
        report.id = cur.to_string();
        report.unchanged = true;
        progress.step(name, Step::SelfTest);
        report.selftest = dev.selftest()?;
        if let Some(t) = report.selftest.as_ref().filter(|t| !t.passed) {
            return Err(Error::new(
                ErrorKind::SelfTest,
                format!(
                    "release {cur} is already current but fails its self-test:\n{}",
                    indent(&t.output)
                ),
            )
            .help("flash another model or firmware, or `resq flash --rollback`"));
        }
        finish(
            &mut *dev,
            &board,
            opts,
            &st,
            cur,
            &mut report,
            progress,
            name,
        )?;
        return Ok(report);
    }
    let existing = st
        .releases
        .iter()
        .find(|r| r.complete && id_content(&r.id) == content)
        .map(|r| r.id.clone());
    let id = match existing {
        Some(id) => {
            progress.step(name, Step::Verify);
            // The payload and its sums; the manifest differs when the same content was bundled
            // at another time.
            let files: Vec<BundleFile> = bundle
                .files
                .iter()
                .filter(|f| f.name != "manifest.json")
                .cloned()
                .collect();
            dev.verify(&id, &files).map_err(|e| {
                e.help(format!(
                    "release {id} on the device is damaged; delete {}/releases/{id} and flash again",
                    dev.root()
                ))
            })?;
            report.reused = true;
            id
        }
        None => {
            let id = bundle.id().to_string();
            progress.step(name, Step::Prepare);
            let keep: Vec<String> = st
                .current
                .iter()
                .chain(st.previous.iter())
                .cloned()
                .collect();
            let total = bundle.total_bytes();
            progress.transfer_start(name, total);
            let start = Instant::now();
            dev.stage(&id, &keep, &bundle.files, &mut |n| {
                progress.transfer(name, n)
            })?;
            report.transfer_secs = start.elapsed().as_secs_f64();
            report.sent_bytes = total;
            progress.transfer_end(name);
            id
        }
    };
    report.id = id.clone();
    progress.step(name, Step::Switch);
    let sw = dev.switch(
        &id,
        st.current.as_deref(),
        st.previous.as_deref(),
        !report.reused,
        &board,
    )?;
    report.previous = st
        .current
        .clone()
        .filter(|c| *c != id)
        .or(st.previous.clone());
    if let Some(t) = sw.selftest.as_ref().filter(|t| !t.passed) {
        progress.step(name, Step::RollBack);
        let back_msg = match (sw.restored, &st.current) {
            (true, Some(c)) => format!("switched back to release {c}"),
            (true, None) => "no release was installed before, so none is current now".to_string(),
            (false, _) => "switching back FAILED; check with `resq flash --status`".to_string(),
        };
        return Err(Error::new(
            ErrorKind::SelfTest,
            format!(
                "release {id} was installed but the self-test failed:\n{}\n{back_msg}",
                indent(&t.output)
            ),
        )
        .help("the firmware or model does not work on this board: check --board, rebuild resq-fw for it, or convert the model again"));
    }
    report.selftest = sw.selftest;
    report.service = sw.service;
    report.warnings.extend(sw.warnings);
    let mut after = st.clone();
    after.previous = report.previous.clone();
    after.current = Some(id.clone());
    if !after.releases.iter().any(|r| r.id == id) {
        after.releases.push(Release {
            id: id.clone(),
            complete: true,
        });
    }
    finish(
        &mut *dev,
        &board,
        opts,
        &after,
        &id,
        &mut report,
        progress,
        name,
    )?;
    Ok(report)
}

/// Prunes old releases (from the state after the switch) and installs the service.
#[allow(clippy::too_many_arguments)]
fn finish(
    dev: &mut dyn Device,
    board: &Board,
    opts: &FlashOptions,
    after: &State,
    id: &str,
    report: &mut FlashReport,
    progress: &dyn Progress,
    name: &str,
) -> Result<()> {
    let prune = prune_list(after, id, opts.keep);
    if !prune.is_empty() {
        progress.step(name, Step::Prune);
        match dev.remove(&prune) {
            Ok(()) => report.pruned = prune,
            Err(e) => report
                .warnings
                .push(format!("could not delete old releases: {e}")),
        }
    }
    if opts.enable_service {
        progress.step(name, Step::Service);
        let (service, warnings) = dev.enable_service(board).map_err(|e| {
            let help = e.help_text().unwrap_or("").to_string();
            Error::new(
                e.kind(),
                format!(
                    "release {id} is installed and current, but the service was not enabled: {}",
                    e.message()
                ),
            )
            .help(help)
        })?;
        report.service = service.or(report.service.take());
        report.warnings.extend(warnings);
    }
    Ok(())
}

/// Complete releases beyond the newest `keep` (by id, i.e. by age), never `current`,
/// `previous` or `id`.
pub(crate) fn prune_list(after: &State, id: &str, keep: usize) -> Vec<String> {
    let keep = keep.max(2);
    let protected = |r: &str| {
        Some(r) == after.current.as_deref() || Some(r) == after.previous.as_deref() || r == id
    };
    let mut complete: Vec<&Release> = after.releases.iter().filter(|r| r.complete).collect();
    complete.sort_by(|a, b| b.id.cmp(&a.id));
    let mut kept = complete.iter().filter(|r| protected(&r.id)).count();
    let mut prune = vec![];
    for r in complete.iter().filter(|r| !protected(&r.id)) {
        if kept < keep {
            kept += 1;
        } else {
            prune.push(r.id.clone());
        }
    }
    prune
}

fn check_arch(st: &State, board: &Board) -> Result<()> {
    let Some(arch) = st.arch.as_deref() else {
        return Ok(());
    };
    let want = board.arch();
    let same = arch == want
        || (want.starts_with("arm") && arch.starts_with("arm"))
        || (want == "aarch64" && arch == "arm64");
    if same {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::BadInput,
            format!(
                "the device is {arch} (uname -m), but board `{}` is for {}",
                board.name, board.target
            ),
        )
        .help("pick the --board that matches the device (resq-fw boards lists them)"))
    }
}

/// What is installed on `target`, with the current release's files checked.
pub fn status(target: &Target, opts: &SshOptions) -> Result<State> {
    let name = target.to_string();
    (|| {
        let mut dev = open(target, opts)?;
        dev.state(true)
    })()
    .map_err(|e| e.on(&name))
}

/// Switches `current` back to `previous` (and `previous` to what was current), then runs the
/// self-test; if that fails, switches forward again.
pub fn rollback(
    target: &Target,
    opts: &FlashOptions,
    progress: &dyn Progress,
) -> Result<RollbackReport> {
    let name = target.to_string();
    (|| {
        progress.step(&name, Step::Connect);
        let mut dev = open(target, &opts.ssh)?;
        let st = dev.state(false)?;
        let (Some(cur), Some(prev)) = (st.current.clone(), st.previous.clone()) else {
            return Err(Error::new(
                ErrorKind::NoRelease,
                match &st.current {
                    None => "nothing is installed".to_string(),
                    Some(c) => format!("release {c} is current and there is no previous release to roll back to"),
                },
            )
            .help("flash a release with `resq flash --board … --model … --to …`"));
        };
        if !st.releases.iter().any(|r| r.id == prev && r.complete) {
            return Err(Error::new(
                ErrorKind::NoRelease,
                format!("the previous release {prev} is not complete on the device, so it is not activated"),
            )
            .help("flash a release instead"));
        }
        progress.step(&name, Step::Switch);
        dev.restore(Some(&prev), Some(&cur))?;
        progress.step(&name, Step::SelfTest);
        let test = dev.selftest()?;
        if let Some(t) = test.as_ref().filter(|t| !t.passed) {
            progress.step(&name, Step::RollBack);
            dev.restore(Some(&cur), Some(&prev))?;
            return Err(Error::new(
                ErrorKind::SelfTest,
                format!(
                    "release {prev} fails its self-test, so {cur} stays current:\n{}",
                    indent(&t.output)
                ),
            )
            .help("flash a working release instead"));
        }
        // A running service is restarted so it runs the release now current; the unit path
        // is the board's (every shipped profile uses the same one).
        let board = st
            .previous_manifest
            .as_ref()
            .and_then(|m| Board::load(&m.board.name).ok())
            .or_else(|| Board::load("generic-aarch64").ok());
        let service = match board {
            Some(board) => dev.restart_service(&board).map(|s| s.0).unwrap_or(None),
            None => None,
        };
        Ok(RollbackReport {
            device: name.clone(),
            current: prev,
            previous: cur,
            selftest: test,
            service,
        })
    })()
    .map_err(|e| e.on(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(ids: &[&str], current: &str, previous: Option<&str>) -> State {
        State {
            current: Some(current.into()),
            previous: previous.map(Into::into),
            releases: ids
                .iter()
                .map(|i| Release {
                    id: i.to_string(),
                    complete: !i.starts_with('x'),
                })
                .collect(),
            ..State::default()
        }
    }

    #[test]
    fn pruning_keeps_current_previous_and_the_newest() {
        let st = state(&["1", "2", "3", "4", "5"], "5", Some("4"));
        assert_eq!(prune_list(&st, "5", 3), vec!["2", "1"]);
        assert_eq!(prune_list(&st, "5", 2), vec!["3", "2", "1"]);
        // An old release that was rolled back to stays, whatever its age.
        let st = state(&["1", "2", "3", "4", "5"], "1", Some("5"));
        assert_eq!(prune_list(&st, "1", 2), vec!["4", "3", "2"]);
        // Incomplete folders are the next flash's to clean, not pruning's.
        let st = state(&["1", "x2", "3"], "3", None);
        assert!(prune_list(&st, "3", 2).is_empty());
        // `keep` below 2 would delete the rollback target: it is raised to 2.
        let st = state(&["1", "2", "3"], "3", Some("2"));
        assert_eq!(prune_list(&st, "3", 0), vec!["1"]);
    }
}
