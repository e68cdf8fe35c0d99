//! `resq flash`, `resq bundle`, `resq device`: thin shells over `resq-deploy`, plus the
//! indicatif drawing of its progress callbacks.
//!
//! Exit statuses are `resq_io::exit`'s: a fleet with some boards flashed and some not ends
//! with [`exit::PARTIAL`], one where every board failed with [`exit::FAILURE`]. Everything
//! printed goes through `resq_io::say!`: a flash finishes installing even when nobody reads
//! its output any more.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::Result;
use clap::{Args, Subcommand};
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use resq_deploy::{
    Board, Bundle, BundleSpec, ErrorKind, FlashOptions, FlashReport, Progress, SshOptions, Step,
    Target,
};
use resq_io::{exit, say, ResultExt as _};
use serde_json::{json, Value};

/// How to reach boards over SSH.
#[derive(Args)]
pub struct SshArgs {
    /// Private key for SSH (ssh -i). Default: ssh's own keys and agent.
    #[arg(long, short = 'i', value_name = "KEY")]
    identity: Option<PathBuf>,
    /// known_hosts file holding the boards' host keys (default: ~/.ssh/known_hosts). Unknown
    /// or changed host keys are always refused.
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
    /// ssh_config file (ssh -F), e.g. for jump hosts. Default: ~/.ssh/config.
    #[arg(long, value_name = "FILE")]
    ssh_config: Option<PathBuf>,
}

impl SshArgs {
    fn options(&self) -> SshOptions {
        SshOptions {
            identity: self.identity.clone(),
            known_hosts: self.known_hosts.clone(),
            config: self.ssh_config.clone(),
            connect_timeout: None,
        }
    }
}

/// What goes into a release.
#[derive(Args)]
pub struct ReleaseArgs {
    /// Board profile: a name (rpi4, rpi5, jetson-nano, jetson-orin-nano, generic-aarch64,
    /// x86_64-host) or a TOML file.
    #[arg(long)]
    board: Option<String>,
    /// The .resq model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The resq-fw binary for the board. Default: the first resq-fw for the board's
    /// architecture beside this resq, on PATH, or in cargo's build output
    /// (target/<triple>/release/resq-fw; target/release/resq-fw for this machine's triple).
    #[arg(long, value_name = "PATH")]
    firmware: Option<PathBuf>,
}

/// A command line that lacks a flag: said on stderr, exit status [`exit::USAGE`] (as clap's).
struct Usage(String);

impl ReleaseArgs {
    /// The release, and the firmware file it was made with.
    fn bundle(&self, cmd: &str) -> Result<std::result::Result<(Bundle, PathBuf), Usage>> {
        let (Some(board), Some(model)) = (&self.board, &self.model) else {
            return Ok(Err(Usage(format!(
                "resq {cmd}: pass --board NAME and --model FILE.resq{}",
                if cmd == "flash" {
                    " (or --bundle FILE)"
                } else {
                    ""
                }
            ))));
        };
        let board = Board::load(board).map_err(classify)?;
        let firmware =
            resq_deploy::find_firmware(&board, self.firmware.as_deref()).map_err(classify)?;
        let bundle = Bundle::build(&BundleSpec {
            board: &board,
            model,
            firmware: &firmware,
        })
        .map_err(classify)?;
        Ok(Ok((bundle, firmware)))
    }
}

/// A `resq-deploy` error as the process reports it: a refused input (profile, model,
/// firmware file, bundle, `--to`) ends with [`exit::BAD_INPUT`], the rest with
/// [`exit::FAILURE`].
fn classify(e: resq_deploy::Error) -> anyhow::Error {
    match e.kind() {
        ErrorKind::BadInput | ErrorKind::BadUri => resq_io::bad_input(e),
        _ => anyhow::Error::new(e),
    }
}

fn usage(u: Usage) -> ExitCode {
    eprintln!("error: {}", u.0);
    ExitCode::from(exit::USAGE)
}

#[derive(Args)]
pub struct FlashArgs {
    #[command(flatten)]
    release: ReleaseArgs,
    /// A bundle written by `resq bundle`, instead of --board / --model / --firmware.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["board", "model", "firmware"])]
    bundle: Option<PathBuf>,
    /// Device: ssh://user@host[:port][/prefix] (a live board) or dir:/mnt/rootfs (a mounted
    /// root filesystem). Repeat for a fleet.
    #[arg(long = "to", value_name = "URI")]
    to: Vec<String>,
    /// File with one --to URI per line (# comments allowed).
    #[arg(long, value_name = "FILE")]
    inventory: Option<PathBuf>,
    /// Install and enable the systemd unit (ssh: systemctl enable + restart; dir: the
    /// multi-user.target.wants link, so it starts at boot).
    #[arg(long)]
    enable_service: bool,
    /// Show what is installed instead of flashing.
    #[arg(long, conflicts_with_all = ["rollback", "bundle", "board", "model", "firmware", "enable_service"])]
    status: bool,
    /// Switch back to the previous release (then self-test it) instead of flashing.
    #[arg(long, conflicts_with_all = ["bundle", "board", "model", "firmware", "enable_service"])]
    rollback: bool,
    /// Print one JSON object per device and line (target, status, release, version, error;
    /// with --status: what is installed) instead of text.
    #[arg(long)]
    json: bool,
    /// Devices worked on at the same time.
    #[arg(long, default_value_t = 4)]
    jobs: usize,
    /// Releases kept on each device, current and previous included (at least 2).
    #[arg(long, default_value_t = 3)]
    keep: usize,
    #[command(flatten)]
    ssh: SshArgs,
}

#[derive(Args)]
pub struct BundleArgs {
    #[command(flatten)]
    release: ReleaseArgs,
    /// The bundle file to write (a tar; `tar -xf` unpacks it).
    #[arg(short, long)]
    output: PathBuf,
    /// Print one JSON object (file, bytes, sha256, release, board, model, versions, files).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct DeviceArgs {
    #[command(subcommand)]
    command: DeviceCommand,
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Run `resq-fw bench` of the installed release on the board and print its figures.
    ///
    /// Example:
    ///   resq device bench --to ssh://pi@rpi4.local
    Bench {
        /// The board: ssh://user@host[:port][/prefix].
        #[arg(long = "to", value_name = "URI")]
        to: String,
        /// Iterations.
        #[arg(long, default_value_t = 100)]
        iterations: usize,
        /// Print the board's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        ssh: SshArgs,
    },
    /// Classify a labelled image set on the board with the installed release; print top-1.
    ///
    /// Example:
    ///   resq device eval --to ssh://pi@rpi4.local --images val/      (ImageFolder: val/<class>/<img>)
    Eval {
        /// The board: ssh://user@host[:port][/prefix].
        #[arg(long = "to", value_name = "URI")]
        to: String,
        /// Image folder (ImageFolder layout, or the root the CSV's paths are relative to).
        #[arg(long)]
        images: PathBuf,
        /// Ground truth: a CSV with a header and columns `file` and `label` (class index), as
        /// for `resq eval` (`--labels` is an older name for it).
        #[arg(long = "ground-truth", value_name = "CSV", alias = "labels")]
        ground_truth: Option<PathBuf>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        ssh: SshArgs,
    },
}

/// indicatif bars, one per device.
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    /// Bars on stderr (drawn on a terminal only); none when `quiet` (JSON output).
    fn new(quiet: bool) -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(if quiet {
                ProgressDrawTarget::hidden()
            } else {
                ProgressDrawTarget::stderr()
            }),
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn bar(&self, device: &str) -> ProgressBar {
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        bars.entry(device.to_string())
            .or_insert_with(|| {
                let b = self.multi.add(ProgressBar::new(0));
                b.set_style(
                    ProgressStyle::with_template(
                        "{prefix:.bold} {msg:12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                b.set_prefix(device.to_string());
                b
            })
            .clone()
    }
}

impl Progress for Bars {
    fn step(&self, device: &str, step: Step) {
        self.bar(device).set_message(step.name());
    }
    fn transfer_start(&self, device: &str, total: u64) {
        let b = self.bar(device);
        b.set_length(total);
        b.set_position(0);
        b.reset_eta();
        b.set_message("sending");
    }
    fn transfer(&self, device: &str, sent: u64) {
        self.bar(device).set_position(sent);
    }
    fn finish(&self, device: &str, _ok: bool) {
        self.bar(device).finish_and_clear();
    }
}

fn targets(a: &FlashArgs) -> Result<std::result::Result<Vec<Target>, Usage>> {
    let mut t =
        a.to.iter()
            .map(|u| Target::parse(u))
            .collect::<resq_deploy::Result<Vec<_>>>()
            .map_err(classify)?;
    if let Some(inv) = &a.inventory {
        t.extend(resq_deploy::read_inventory(inv).map_err(classify)?);
    }
    if t.is_empty() {
        return Ok(Err(Usage("resq flash: say where with --to ssh://user@host[:port][/prefix] or --to dir:/mnt/rootfs (or --inventory FILE)".into())));
    }
    resq_deploy::uri::check_unique(&t).map_err(classify)?;
    Ok(Ok(t))
}

fn mib(b: u64) -> String {
    format!("{}", HumanBytes(b))
}

fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// The status a fleet ends with: OK, PARTIAL (some failed) or FAILURE (all failed), said on
/// stderr when not OK.
fn fleet_status(failed: usize, total: usize) -> ExitCode {
    if failed == 0 {
        return ExitCode::from(exit::OK);
    }
    if failed < total {
        eprintln!(
            "error: {failed} of {total} devices failed, {} succeeded",
            total - failed
        );
        ExitCode::from(exit::PARTIAL)
    } else {
        eprintln!("error: all {total} devices failed");
        ExitCode::from(exit::FAILURE)
    }
}

/// One line per device, then a count.
fn fleet_summary<T>(
    what: &str,
    targets: &[Target],
    results: &[resq_deploy::Result<T>],
    ok_line: impl Fn(&T) -> String,
) -> ExitCode {
    let mut failed = 0;
    for (t, r) in targets.iter().zip(results) {
        match r {
            Ok(x) => say!("ok      {t}  {}", ok_line(x)),
            Err(e) => {
                failed += 1;
                say!(
                    "FAILED  {t}  {}",
                    error_message(t, e).lines().next().unwrap_or("")
                );
                for l in error_message(t, e).lines().skip(1) {
                    say!("          {l}");
                }
                if let Some(h) = e.help_text() {
                    say!("          help: {h}");
                }
            }
        }
    }
    say!(
        "{} of {} devices {what}, {failed} failed",
        targets.len() - failed,
        targets.len()
    );
    fleet_status(failed, targets.len())
}

/// The message of a device's error without the device's name in front.
fn error_message<'e>(t: &Target, e: &'e resq_deploy::Error) -> &'e str {
    e.message()
        .strip_prefix(&format!("{t}: "))
        .unwrap_or(e.message())
}

/// JSON lines, one per device, and the fleet's status.
fn json_lines<T>(
    targets: &[Target],
    results: &[resq_deploy::Result<T>],
    ok: impl Fn(&T) -> Value,
    failed_fields: impl Fn() -> Value,
) -> ExitCode {
    let mut failed = 0;
    for (t, r) in targets.iter().zip(results) {
        let mut v = match r {
            Ok(x) => ok(x),
            Err(e) => {
                failed += 1;
                let mut v = failed_fields();
                v["status"] = json!("failed");
                v["error"] = json!(error_message(t, e));
                v["help"] = json!(e.help_text());
                v["kind"] = json!(format!("{:?}", e.kind()));
                v
            }
        };
        let mut obj = serde_json::Map::new();
        obj.insert("target".into(), json!(t.to_string()));
        if let Value::Object(m) = v.take() {
            obj.extend(m);
        }
        obj.entry("error").or_insert(Value::Null);
        say!("{}", Value::Object(obj));
    }
    fleet_status(failed, targets.len())
}

fn selftest_word(t: &Option<resq_deploy::SelfTest>) -> &'static str {
    match t {
        Some(t) if t.passed => "passed",
        Some(_) => "failed",
        None => "not run here",
    }
}

fn flash_json(b: &Bundle, r: &FlashReport) -> Value {
    json!({
        "status": if r.unchanged { "unchanged" } else { "ok" },
        "release": r.id,
        "version": b.manifest.versions.resq,
        "firmware_version": b.manifest.versions.firmware,
        "board": b.manifest.board.name,
        "model": b.manifest.model.name,
        "previous": r.previous,
        "reused": r.reused,
        "sent_bytes": r.sent_bytes,
        "transfer_secs": r.transfer_secs,
        "selftest": selftest_word(&r.selftest),
        "pruned": r.pruned,
        "service": r.service,
        "warnings": r.warnings,
    })
}

fn status_json(st: &resq_deploy::State) -> Value {
    let m = st.current_manifest.as_ref();
    json!({
        "status": "ok",
        "release": st.current,
        "version": m.map(|m| &m.versions.resq),
        "firmware_version": m.and_then(|m| m.versions.firmware.as_ref()),
        "board": m.map(|m| &m.board.name),
        "model": m.map(|m| &m.model.name),
        "classes": m.map(|m| m.model.classes),
        "created": m.map(|m| &m.created),
        "verified": st.current_verified,
        "previous": st.previous,
        "releases": st.releases.iter().map(|r| json!({"id": r.id, "complete": r.complete})).collect::<Vec<_>>(),
        "free_bytes": st.free_bytes,
        "arch": st.arch,
    })
}

fn flash_line(r: &FlashReport) -> String {
    let test = match &r.selftest {
        Some(t) if t.passed => "self-test passed",
        Some(_) => "self-test FAILED",
        None => "self-test not run here",
    };
    if r.unchanged {
        format!("release {} already current, {test}", r.id)
    } else if r.reused {
        format!("release {} switched to (was on the device), {test}", r.id)
    } else {
        format!(
            "release {}  {} in {:.2} s  {test}",
            r.id,
            mib(r.sent_bytes),
            r.transfer_secs
        )
    }
}

/// `resq flash`: install, `--status` or `--rollback` on one device or a fleet.
pub fn run_flash(a: FlashArgs) -> Result<ExitCode> {
    let targets = match targets(&a)? {
        Ok(t) => t,
        Err(u) => return Ok(usage(u)),
    };
    let opts = FlashOptions {
        enable_service: a.enable_service,
        keep: a.keep,
        ssh: a.ssh.options(),
    };
    if a.status {
        let results =
            resq_deploy::for_each(&targets, a.jobs, |t| resq_deploy::status(t, &opts.ssh));
        if a.json {
            return Ok(json_lines(
                &targets,
                &results,
                status_json,
                || json!({"release": null}),
            ));
        }
        for (t, r) in targets.iter().zip(&results) {
            if let Ok(st) = r {
                print_status(t, st);
            }
        }
        if targets.len() == 1 {
            let r = results.into_iter().next().expect("one target");
            return r.map(|_| ExitCode::SUCCESS).map_err(classify);
        }
        return Ok(fleet_summary("read", &targets, &results, |s| {
            format!("current {}", s.current.as_deref().unwrap_or("none"))
        }));
    }
    let bars = Bars::new(a.json);
    if a.rollback {
        let results = resq_deploy::for_each(&targets, a.jobs, |t| {
            let r = resq_deploy::rollback(t, &opts, &bars);
            bars.finish(&t.to_string(), r.is_ok());
            r
        });
        if a.json {
            return Ok(json_lines(
                &targets,
                &results,
                |r| {
                    json!({
                        "status": "ok",
                        "release": r.current,
                        "previous": r.previous,
                        "selftest": selftest_word(&r.selftest),
                        "service": r.service,
                    })
                },
                || json!({"release": null}),
            ));
        }
        let line = |r: &resq_deploy::RollbackReport| {
            format!(
                "current is now {} (was {}), self-test {}{}",
                r.current,
                r.previous,
                selftest_word(&r.selftest),
                r.service
                    .as_ref()
                    .map(|s| format!(", {s}"))
                    .unwrap_or_default()
            )
        };
        if targets.len() == 1 {
            let r = results
                .into_iter()
                .next()
                .expect("one target")
                .map_err(classify)?;
            say!("rolled back {}: {}", targets[0], line(&r));
            return Ok(ExitCode::SUCCESS);
        }
        return Ok(fleet_summary("rolled back", &targets, &results, line));
    }
    let bundle = match &a.bundle {
        Some(p) => Bundle::read_tar(p).map_err(classify)?,
        None => match a.release.bundle("flash")? {
            Ok((b, firmware)) => {
                if !a.json {
                    say!("using {}", firmware.display());
                }
                b
            }
            Err(u) => return Ok(usage(u)),
        },
    };
    let results = resq_deploy::flash_fleet(&targets, &bundle, &opts, a.jobs, &bars);
    if a.json {
        return Ok(json_lines(
            &targets,
            &results,
            |r| flash_json(&bundle, r),
            || {
                json!({
                    "release": null,
                    "version": bundle.manifest.versions.resq,
                    "firmware_version": bundle.manifest.versions.firmware,
                    "board": bundle.manifest.board.name,
                    "model": bundle.manifest.model.name,
                })
            },
        ));
    }
    if targets.len() == 1 {
        let r = results
            .into_iter()
            .next()
            .expect("one target")
            .map_err(classify)?;
        print_flash(&targets[0], &bundle, &r);
        return Ok(ExitCode::SUCCESS);
    }
    Ok(fleet_summary("flashed", &targets, &results, flash_line))
}

fn print_flash(t: &Target, b: &Bundle, r: &FlashReport) {
    let m = &b.manifest;
    let how = if r.unchanged {
        " (already current: nothing sent or switched)"
    } else if r.reused {
        " (was on the device: switched to it, nothing sent)"
    } else {
        ""
    };
    say!("flashed {t}: release {}{how}", r.id);
    say!("  board      {} ({})", m.board.name, m.board.target);
    say!(
        "  model      {} ({} classes, from {})",
        m.model.name,
        m.model.classes,
        m.model.source
    );
    let files: Vec<String> = b
        .files
        .iter()
        .map(|f| format!("{} {}", f.name, mib(f.data.len() as u64)))
        .collect();
    say!("  files      {}", files.join(", "));
    if r.sent_bytes > 0 {
        say!(
            "  sent       {} in {:.2} s ({}/s, checked and synced on the device)",
            mib(r.sent_bytes),
            r.transfer_secs,
            mib((r.sent_bytes as f64 / r.transfer_secs.max(1e-6)) as u64)
        );
    }
    match &r.selftest {
        Some(s) if s.passed => say!("  self-test  {}", first_line(&s.output)),
        Some(s) => say!("  self-test  FAILED: {}", first_line(&s.output)),
        None => say!("  self-test  not run here (the {} firmware runs on the board; check there with `resq-fw selftest`)", m.board.target),
    }
    if let Some(p) = &r.previous {
        say!("  previous   {p} (kept; `resq flash --rollback --to {t}` switches back)");
    }
    if !r.pruned.is_empty() {
        say!("  pruned     {}", r.pruned.join(", "));
    }
    if let Some(s) = &r.service {
        say!("  service    {s}");
    }
    for w in &r.warnings {
        say!("  warning: {w}");
    }
}

fn print_status(t: &Target, st: &resq_deploy::State) {
    say!("{t}");
    let rel = |id: &Option<String>, m: &Option<resq_deploy::Manifest>| match (id, m) {
        (Some(id), Some(m)) => format!(
            "{id}  board {}  model {} ({} classes)  resq {}  made {}",
            m.board.name, m.model.name, m.model.classes, m.versions.resq, m.created
        ),
        (Some(id), None) => format!("{id} (no readable manifest)"),
        (None, _) => "none".to_string(),
    };
    let verified = match st.current_verified {
        Some(true) => "  files verified",
        Some(false) => "  FILES DAMAGED (flash again)",
        None => "",
    };
    say!(
        "  current    {}{verified}",
        rel(&st.current, &st.current_manifest)
    );
    say!("  previous   {}", rel(&st.previous, &st.previous_manifest));
    let complete: Vec<&str> = st
        .releases
        .iter()
        .filter(|r| r.complete)
        .map(|r| r.id.as_str())
        .collect();
    let incomplete = st.releases.iter().filter(|r| !r.complete).count();
    say!(
        "  releases   {}{}",
        if complete.is_empty() {
            "none".to_string()
        } else {
            complete.join(" ")
        },
        if incomplete > 0 {
            format!(" (+{incomplete} incomplete, removed by the next flash)")
        } else {
            String::new()
        }
    );
    if let Some(f) = st.free_bytes {
        say!("  free       {}", mib(f));
    }
    if let Some(a) = &st.arch {
        say!("  arch       {a}");
    }
}

/// `resq bundle`: one release as a tar file.
pub fn run_bundle(a: BundleArgs) -> Result<ExitCode> {
    let (bundle, firmware) = match a.release.bundle("bundle")? {
        Ok(b) => b,
        Err(u) => return Ok(usage(u)),
    };
    let tar = bundle.write_tar(&a.output).map_err(classify)?;
    let m = &bundle.manifest;
    if a.json {
        say!(
            "{}",
            json!({
                "file": a.output.display().to_string(),
                "bytes": tar.bytes,
                "sha256": tar.sha256,
                "release": m.id,
                "created": m.created,
                "board": m.board.name,
                "target": m.board.target,
                "model": {
                    "name": m.model.name,
                    "classes": m.model.classes,
                    "source": m.model.source,
                    "source_sha256": m.model.source_sha256,
                },
                "versions": {
                    "resq": m.versions.resq,
                    "firmware": m.versions.firmware,
                    "model_format": m.versions.model_format,
                },
                "firmware_path": firmware.display().to_string(),
                "files": m.files.iter().map(|f| json!({"name": f.name, "bytes": f.size, "sha256": f.sha256})).collect::<Vec<_>>(),
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    say!(
        "wrote {} ({}): release {} for board {} ({})",
        a.output.display(),
        mib(tar.bytes),
        m.id,
        m.board.name,
        m.board.target
    );
    say!("  sha256         {}", tar.sha256);
    say!("  firmware from  {}", firmware.display());
    for f in &bundle.files {
        say!(
            "  {:14} {:>10}  sha256 {}",
            f.name,
            mib(f.data.len() as u64),
            f.sha256
        );
    }
    say!(
        "flash it with: resq flash --bundle {} --to URI",
        a.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `resq device`: measure on a live board.
pub fn run_device(a: DeviceArgs) -> Result<ExitCode> {
    match a.command {
        DeviceCommand::Bench {
            to,
            iterations,
            json,
            ssh,
        } => {
            let t = Target::parse(&to).map_err(classify)?;
            let r =
                resq_deploy::measure::bench(&t, &ssh.options(), iterations).map_err(classify)?;
            if json {
                say!("{}", serde_json::to_string(&r)?);
                return Ok(ExitCode::SUCCESS);
            }
            let b = &r.bench;
            say!(
                "{} (release {}): {} on {} frames, {} iterations",
                r.device,
                r.release.as_deref().unwrap_or("?"),
                b["model"].as_str().unwrap_or("?"),
                b["frame"].as_str().unwrap_or("?"),
                b["iterations"]
            );
            for (what, key) in [
                ("preprocessing", "preprocess_ms"),
                ("inference", "inference_ms"),
            ] {
                let s = &b[key];
                say!(
                    "  {what:<14} median {:8.3} ms  mean {:8.3} ms  p90 {:8.3} ms",
                    s["median"].as_f64().unwrap_or(f64::NAN),
                    s["mean"].as_f64().unwrap_or(f64::NAN),
                    s["p90"].as_f64().unwrap_or(f64::NAN)
                );
            }
            say!(
                "  {:.1} frames/s on the board (one thread, capture excluded)",
                b["frames_per_s"].as_f64().unwrap_or(f64::NAN)
            );
            Ok(ExitCode::SUCCESS)
        }
        DeviceCommand::Eval {
            to,
            images,
            ground_truth,
            json,
            ssh,
        } => {
            let t = Target::parse(&to).map_err(classify)?;
            let samples: Vec<(PathBuf, usize)> =
                resq_host::images::labelled_dataset(&images, ground_truth.as_deref())
                    .bad_input()?
                    .into_iter()
                    .map(|s| (s.path, s.label))
                    .collect();
            let bars = Bars::new(json);
            let r = resq_deploy::measure::eval(&t, &ssh.options(), &samples, &bars);
            bars.finish(&t.to_string(), r.is_ok());
            let r = r.map_err(classify)?;
            if json {
                say!("{}", serde_json::to_string(&r)?);
                return Ok(ExitCode::SUCCESS);
            }
            let pct = |x: usize| 100.0 * x as f64 / r.images.max(1) as f64;
            say!(
                "{} (release {})",
                r.device,
                r.release.as_deref().unwrap_or("?")
            );
            say!(
                "  images      {} ({} classified on the board)",
                r.images,
                r.classified
            );
            say!("  top-1 int8  {} ({:.1} %)", r.top1, pct(r.top1));
            for f in &r.failed {
                say!("  {f}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
