//! `resq flash`, `resq bundle`, `resq device`: thin shells over `resq-deploy`, plus the
//! indicatif drawing of its progress callbacks.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use resq_deploy::{
    Board, Bundle, BundleSpec, FlashOptions, FlashReport, Progress, SshOptions, Step, Target,
};

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
    /// The resq-fw binary for the board. Default: target/<triple>/release/resq-fw
    /// (target/release/resq-fw for this machine's own triple).
    #[arg(long, value_name = "PATH")]
    firmware: Option<PathBuf>,
}

impl ReleaseArgs {
    fn bundle(&self, cmd: &str) -> Result<Bundle> {
        let (Some(board), Some(model)) = (&self.board, &self.model) else {
            bail!(
                "resq {cmd}: pass --board NAME and --model FILE.resq{}",
                if cmd == "flash" {
                    " (or --bundle FILE)"
                } else {
                    ""
                }
            );
        };
        let board = Board::load(board)?;
        let firmware = resq_deploy::find_firmware(&board, self.firmware.as_deref())?;
        Ok(Bundle::build(&BundleSpec {
            board: &board,
            model,
            firmware: &firmware,
        })?)
    }
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
        /// CSV with a header and columns `file` and `label` (class index).
        #[arg(long)]
        labels: Option<PathBuf>,
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
    fn new() -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
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

fn targets(a: &FlashArgs) -> Result<Vec<Target>> {
    let mut t =
        a.to.iter()
            .map(|u| Target::parse(u))
            .collect::<resq_deploy::Result<Vec<_>>>()?;
    if let Some(inv) = &a.inventory {
        t.extend(resq_deploy::read_inventory(inv)?);
    }
    if t.is_empty() {
        bail!("resq flash: say where with --to ssh://user@host[:port][/prefix] or --to dir:/mnt/rootfs (or --inventory FILE)");
    }
    resq_deploy::uri::check_unique(&t)?;
    Ok(t)
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

/// One line per device, then a count; fails when any device failed.
fn fleet_summary<T>(
    what: &str,
    targets: &[Target],
    results: &[resq_deploy::Result<T>],
    ok_line: impl Fn(&T) -> String,
) -> Result<()> {
    let mut failed = 0;
    for (t, r) in targets.iter().zip(results) {
        match r {
            Ok(x) => println!("ok      {t}  {}", ok_line(x)),
            Err(e) => {
                failed += 1;
                let msg = e
                    .message()
                    .strip_prefix(&format!("{t}: "))
                    .unwrap_or(e.message());
                println!("FAILED  {t}  {}", msg.lines().next().unwrap_or(""));
                for l in msg.lines().skip(1) {
                    println!("          {l}");
                }
                if let Some(h) = e.help_text() {
                    println!("          help: {h}");
                }
            }
        }
    }
    println!(
        "{} of {} devices {what}, {failed} failed",
        targets.len() - failed,
        targets.len()
    );
    if failed > 0 {
        bail!("{failed} of {} devices failed (see above)", targets.len());
    }
    Ok(())
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

pub fn cmd_flash(a: FlashArgs) -> Result<()> {
    let targets = targets(&a)?;
    let opts = FlashOptions {
        enable_service: a.enable_service,
        keep: a.keep,
        ssh: a.ssh.options(),
    };
    if a.status {
        let results =
            resq_deploy::for_each(&targets, a.jobs, |t| resq_deploy::status(t, &opts.ssh));
        for (t, r) in targets.iter().zip(&results) {
            if let Ok(st) = r {
                print_status(t, st);
            }
        }
        if targets.len() == 1 {
            return results
                .into_iter()
                .next()
                .map_or(Ok(()), |r| r.map(|_| ()).map_err(Into::into));
        }
        return fleet_summary("read", &targets, &results, |s| {
            format!("current {}", s.current.as_deref().unwrap_or("none"))
        });
    }
    let bars = Bars::new();
    if a.rollback {
        let results = resq_deploy::for_each(&targets, a.jobs, |t| {
            let r = resq_deploy::rollback(t, &opts, &bars);
            bars.finish(&t.to_string(), r.is_ok());
            r
        });
        let line = |r: &resq_deploy::RollbackReport| {
            format!(
                "current is now {} (was {}), {}{}",
                r.current,
                r.previous,
                match &r.selftest {
                    Some(t) if t.passed => "self-test passed",
                    Some(_) => "self-test FAILED",
                    None => "self-test not run here",
                },
                r.service
                    .as_ref()
                    .map(|s| format!(", {s}"))
                    .unwrap_or_default()
            )
        };
        if targets.len() == 1 {
            let r = results.into_iter().next().expect("one target")?;
            println!("rolled back {}: {}", targets[0], line(&r));
            return Ok(());
        }
        return fleet_summary("rolled back", &targets, &results, line);
    }
    let bundle = match &a.bundle {
        Some(p) => Bundle::read_tar(p)?,
        None => a.release.bundle("flash")?,
    };
    let results = resq_deploy::flash_fleet(&targets, &bundle, &opts, a.jobs, &bars);
    if targets.len() == 1 {
        let r = results.into_iter().next().expect("one target")?;
        print_flash(&targets[0], &bundle, &r);
        return Ok(());
    }
    fleet_summary("flashed", &targets, &results, flash_line)
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
    println!("flashed {t}: release {}{how}", r.id);
    println!("  board      {} ({})", m.board.name, m.board.target);
    println!(
        "  model      {} ({} classes, from {})",
        m.model.name, m.model.classes, m.model.source
    );
    let files: Vec<String> = b
        .files
        .iter()
        .map(|f| format!("{} {}", f.name, mib(f.data.len() as u64)))
        .collect();
    println!("  files      {}", files.join(", "));
    if r.sent_bytes > 0 {
        println!(
            "  sent       {} in {:.2} s ({}/s, checked and synced on the device)",
            mib(r.sent_bytes),
            r.transfer_secs,
            mib((r.sent_bytes as f64 / r.transfer_secs.max(1e-6)) as u64)
        );
    }
    match &r.selftest {
        Some(s) if s.passed => println!("  self-test  {}", first_line(&s.output)),
        Some(s) => println!("  self-test  FAILED: {}", first_line(&s.output)),
        None => println!("  self-test  not run here (the {} firmware runs on the board; check there with `resq-fw selftest`)", m.board.target),
    }
    if let Some(p) = &r.previous {
        println!("  previous   {p} (kept; `resq flash --rollback --to {t}` switches back)");
    }
    if !r.pruned.is_empty() {
        println!("  pruned     {}", r.pruned.join(", "));
    }
    if let Some(s) = &r.service {
        println!("  service    {s}");
    }
    for w in &r.warnings {
        println!("  warning: {w}");
    }
}

fn print_status(t: &Target, st: &resq_deploy::State) {
    println!("{t}");
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
    println!(
        "  current    {}{verified}",
        rel(&st.current, &st.current_manifest)
    );
    println!("  previous   {}", rel(&st.previous, &st.previous_manifest));
    let complete: Vec<&str> = st
        .releases
        .iter()
        .filter(|r| r.complete)
        .map(|r| r.id.as_str())
        .collect();
    let incomplete = st.releases.iter().filter(|r| !r.complete).count();
    println!(
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
        println!("  free       {}", mib(f));
    }
    if let Some(a) = &st.arch {
        println!("  arch       {a}");
    }
}

pub fn cmd_bundle(a: BundleArgs) -> Result<()> {
    let bundle = a.release.bundle("bundle")?;
    let size = bundle.write_tar(&a.output)?;
    let m = &bundle.manifest;
    println!(
        "wrote {} ({}): release {} for board {} ({})",
        a.output.display(),
        mib(size),
        m.id,
        m.board.name,
        m.board.target
    );
    for f in &bundle.files {
        println!(
            "  {:14} {:>10}  sha256 {}",
            f.name,
            mib(f.data.len() as u64),
            f.sha256
        );
    }
    println!(
        "flash it with: resq flash --bundle {} --to URI",
        a.output.display()
    );
    Ok(())
}

pub fn cmd_device(a: DeviceArgs) -> Result<()> {
    match a.command {
        DeviceCommand::Bench {
            to,
            iterations,
            json,
            ssh,
        } => {
            let t = Target::parse(&to)?;
            let r = resq_deploy::device::bench(&t, &ssh.options(), iterations)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
                return Ok(());
            }
            let b = &r.bench;
            println!(
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
                println!(
                    "  {what:<14} median {:8.3} ms  mean {:8.3} ms  p90 {:8.3} ms",
                    s["median"].as_f64().unwrap_or(f64::NAN),
                    s["mean"].as_f64().unwrap_or(f64::NAN),
                    s["p90"].as_f64().unwrap_or(f64::NAN)
                );
            }
            println!(
                "  {:.1} frames/s on the board (one thread, capture excluded)",
                b["frames_per_s"].as_f64().unwrap_or(f64::NAN)
            );
            Ok(())
        }
        DeviceCommand::Eval {
            to,
            images,
            labels,
            json,
            ssh,
        } => {
            let t = Target::parse(&to)?;
            let samples: Vec<(PathBuf, usize)> =
                resq_host::images::labelled_dataset(&images, labels.as_deref())?
                    .into_iter()
                    .map(|s| (s.path, s.label))
                    .collect();
            let bars = Bars::new();
            let r = resq_deploy::device::eval(&t, &ssh.options(), &samples, &bars);
            bars.finish(&t.to_string(), r.is_ok());
            let r = r?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
                return Ok(());
            }
            let pct = |x: usize| 100.0 * x as f64 / r.images.max(1) as f64;
            println!(
                "{} (release {})",
                r.device,
                r.release.as_deref().unwrap_or("?")
            );
            println!(
                "  images      {} ({} classified on the board)",
                r.images, r.classified
            );
            println!("  top-1 int8  {} ({:.1} %)", r.top1, pct(r.top1));
            for f in &r.failed {
                println!("  {f}");
            }
            Ok(())
        }
    }
}
