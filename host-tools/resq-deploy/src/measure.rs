//! Checks on a live board (`resq device bench`, `resq device eval`): run the installed
//! release's benchmark, or classify a labelled set of images on the board and count top-1 on
//! the host.

use std::path::PathBuf;

use serde::Serialize;

use crate::error::{indent, io_error, Error, ErrorKind, Result};
use crate::progress::{Progress, Step};
use crate::target::ssh::{shq, Ssh, SshOptions};
use crate::uri::Target;

/// Figures of `resq-fw bench` on the board.
#[derive(Clone, Debug, Serialize)]
pub struct BenchFigures {
    /// The device.
    pub device: String,
    /// The release that ran.
    pub release: Option<String>,
    /// `resq-fw bench --json` as the board printed it.
    pub bench: serde_json::Value,
}

/// Result of classifying a labelled image set on the board.
#[derive(Clone, Debug, Serialize)]
pub struct EvalFigures {
    /// The device.
    pub device: String,
    /// The release that ran.
    pub release: Option<String>,
    /// Images sent.
    pub images: usize,
    /// Images the board classified.
    pub classified: usize,
    /// Top-1 hits.
    pub top1: usize,
    /// Images the board could not read, with its message.
    pub failed: Vec<String>,
}

fn ssh_of(target: &Target, opts: &SshOptions) -> Result<Ssh> {
    match target {
        Target::Ssh(s) => Ssh::connect(s, opts),
        Target::Dir(_) => Err(Error::new(
            ErrorKind::BadUri,
            format!("{target} is a mounted root filesystem, not a running board"),
        )
        .help("`resq device` runs on the board: pass --to ssh://user@host")),
    }
}

fn current_release(ssh: &Ssh) -> Result<Option<String>> {
    let (_, out, _) = ssh.shell(
        &format!("readlink {}", shq(&format!("{}/current", ssh.root_path()))),
        b"",
    )?;
    let id = out.trim().strip_prefix("releases/").map(str::to_string);
    if id.is_none() {
        return Err(Error::new(
            ErrorKind::NoRelease,
            format!("nothing is installed in {}", ssh.root_path()),
        )
        .help("flash a release first: resq flash --board … --model … --to …"));
    }
    Ok(id)
}

/// Runs `resq-fw bench --json` of the current release on the board.
pub fn bench(target: &Target, opts: &SshOptions, iterations: usize) -> Result<BenchFigures> {
    let name = target.to_string();
    (|| {
        let ssh = ssh_of(target, opts)?;
        let release = current_release(&ssh)?;
        let (code, out) =
            ssh.firmware(&format!("bench --json --iterations {}", iterations.max(1)))?;
        let json = out
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok());
        match json {
            Some(bench) if code == 0 => Ok(BenchFigures {
                device: name.clone(),
                release,
                bench,
            }),
            _ => Err(Error::new(
                ErrorKind::Device,
                format!(
                    "resq-fw bench failed on the board (exit {code}):\n{}",
                    indent(&out)
                ),
            )),
        }
    })()
    .map_err(|e| e.on(&name))
}

/// Sends `samples` (image file, class index) to the board, classifies them there with the
/// current release, and counts top-1. Images go as one tar stream into a temporary folder
/// that is removed afterwards.
pub fn eval(
    target: &Target,
    opts: &SshOptions,
    samples: &[(PathBuf, usize)],
    progress: &dyn Progress,
) -> Result<EvalFigures> {
    let name = target.to_string();
    (|| {
        if samples.is_empty() {
            return Err(Error::new(ErrorKind::BadInput, "--images: no images found"));
        }
        let ssh = ssh_of(target, opts)?;
        let release = current_release(&ssh)?;
        // Short, safe names on the board: i<index>.<ext>.
        let mut tar = tar::Builder::new(Vec::new());
        let mut names = vec![];
        for (i, (path, _)) in samples.iter().enumerate() {
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("img")
                .to_ascii_lowercase();
            let n = format!("i{i}.{ext}");
            let data =
                std::fs::read(path).map_err(|e| io_error("--images: cannot read", path, &e))?;
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, &n, data.as_slice())
                .map_err(|e| Error::new(ErrorKind::Io, format!("cannot pack the images: {e}")))?;
            names.push(n);
        }
        let tar = tar
            .into_inner()
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot pack the images: {e}")))?;
        let (code, dir, err) = ssh.shell("mktemp -d /tmp/resq-eval.XXXXXX", b"")?;
        let dir = dir.trim().to_string();
        if code != 0 || !dir.starts_with("/tmp/resq-eval.") {
            return Err(Error::new(
                ErrorKind::Device,
                format!(
                    "cannot make a temporary folder on the board: {}",
                    err.trim()
                ),
            ));
        }
        let result = (|| {
            progress.transfer_start(&name, tar.len() as u64);
            let (code, _, err) =
                ssh.shell_with(&format!("cd {} && tar -xf -", shq(&dir)), &tar, &mut |n| {
                    progress.transfer(&name, n)
                })?;
            progress.transfer_end(&name);
            if code != 0 {
                return Err(Error::new(
                    ErrorKind::Device,
                    format!(
                        "cannot unpack the images on the board (tar): {}",
                        err.trim()
                    ),
                ));
            }
            progress.step(&name, Step::Measure);
            let mut predicted: Vec<Option<usize>> = vec![None; samples.len()];
            let mut failed = vec![];
            // Batches keep each command line well under the board's ARG_MAX.
            for batch in names.chunks(200) {
                let files: Vec<String> = batch.iter().map(|n| shq(&format!("{dir}/{n}"))).collect();
                let (_, out) =
                    ssh.firmware(&format!("classify --json --top 1 {}", files.join(" ")))?;
                for line in out.lines() {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                        let idx = v["image"]
                            .as_str()
                            .and_then(|p| p.rsplit('/').next())
                            .and_then(|f| f.strip_prefix('i'))
                            .and_then(|f| f.split('.').next())
                            .and_then(|n| n.parse::<usize>().ok());
                        if let (Some(i), Some(c)) = (idx, v["class"].as_u64()) {
                            if i < predicted.len() {
                                predicted[i] = Some(c as usize);
                            }
                        }
                    } else if line.starts_with("error:") {
                        failed.push(line.to_string());
                    }
                }
            }
            let classified = predicted.iter().flatten().count();
            if classified == 0 {
                return Err(Error::new(
                    ErrorKind::Device,
                    format!(
                        "the board classified none of the images: {}",
                        failed.first().cloned().unwrap_or_default()
                    ),
                ));
            }
            let top1 = predicted
                .iter()
                .zip(samples)
                .filter(|(p, (_, label))| **p == Some(*label))
                .count();
            Ok(EvalFigures {
                device: name.clone(),
                release: release.clone(),
                images: samples.len(),
                classified,
                top1,
                failed,
            })
        })();
        let _ = ssh.shell(&format!("rm -rf {}", shq(&dir)), b"");
        result
    })()
    .map_err(|e| e.on(&name))
}
