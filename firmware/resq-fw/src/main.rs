//! `resq-fw`: classify camera frames on the board, offline.
//!
//! A thin shell over the `resq_fw` library: each subcommand parses its flags and calls one
//! function.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use resq_fw::board::Profile;
use resq_fw::classify::{top_k, Classifier, MAX_TOP_K};
use resq_fw::frame::FrameBuf;
use resq_fw::gpio::{open_line, Indicators};
use resq_fw::model::{labels, ModelFile};
use resq_fw::report::{entries, human_score};
use resq_fw::service::{self, End, ServiceConfig};
use resq_fw::source::SourceSpec;
use resq_preprocess::PixelFormat;
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "resq-fw",
    version,
    about = "Classify camera frames with an int8 .resq model, offline, on the board"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Classify frames until stopped (SIGTERM / SIGINT) or the source ends.
    ///
    /// Examples:
    ///   resq-fw run --model m.resq --board rpi4
    ///   resq-fw run --model m.resq --camera 'v4l2:/dev/video0?width=640&height=480&format=MJPG' --json
    ///   resq-fw run --model m.resq --camera 'gst:videotestsrc num-buffers=300 ! videoconvert' --json
    ///   resq-fw run --model m.resq --camera dir:models/photos
    Run(RunArgs),
    /// Classify image files, one line each.
    ///
    /// Example:
    ///   resq-fw classify --model m.resq photos/*.png
    Classify(ClassifyArgs),
    /// Measure preprocessing and inference speed on a synthetic camera frame.
    ///
    /// Example:
    ///   resq-fw bench --model m.resq --format yuyv --size 640x480
    Bench(BenchArgs),
    /// Run the model file's self-test vector; exits 1 on a mismatch.
    Selftest {
        #[command(flatten)]
        common: Common,
    },
    /// Print the systemd unit for a board (install paths from its profile).
    ///
    /// Example:
    ///   resq-fw unit --board rpi4 > /etc/systemd/system/resq-fw.service
    Unit {
        /// Board profile: a name (see `resq-fw boards`) or a TOML file.
        #[arg(long)]
        board: String,
        /// Model path in the unit (default: the profile's install path).
        #[arg(long)]
        model: Option<String>,
    },
    /// List the built-in board profiles.
    Boards,
}

#[derive(Args)]
struct Common {
    /// The .resq model file.
    #[arg(long, short)]
    model: PathBuf,
    /// Board profile: a name (see `resq-fw boards`) or a TOML file. Default: the host's.
    #[arg(long)]
    board: Option<String>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Frame source: v4l2:/dev/videoN[?width=W&height=H&format=YUYV|MJPG|NV12|GREY],
    /// gst:PIPELINE, dir:PATH[?loop=true&fps=N] or file:PATH. Default: the board's camera.
    #[arg(long)]
    camera: Option<String>,
    /// Inference threads (each with its own engine). Default: the board's.
    #[arg(long)]
    threads: Option<usize>,
    /// One JSON object per line instead of human lines.
    #[arg(long)]
    json: bool,
    /// Average scores over the last N frames. Default: the board's for cameras, 1 for dir:.
    #[arg(long)]
    smooth: Option<usize>,
    /// Entries in each top-k list.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// Stop after N processed frames.
    #[arg(long)]
    max_frames: Option<u64>,
    /// Drive no GPIO line, whatever the board profile says.
    #[arg(long)]
    no_gpio: bool,
    /// GPIO chip (overrides the board's), e.g. /dev/gpiochip0.
    #[arg(long)]
    gpio_chip: Option<PathBuf>,
    /// Status LED line (overrides the board's).
    #[arg(long)]
    status_led: Option<u32>,
    /// A line that goes high while LABEL leads: LABEL=LINE or LABEL=LINE@THRESHOLD (repeatable;
    /// replaces the board's list).
    #[arg(long, value_name = "LABEL=LINE[@THRESHOLD]")]
    watch: Vec<String>,
}

#[derive(Args)]
struct ClassifyArgs {
    #[command(flatten)]
    common: Common,
    /// JSON lines.
    #[arg(long)]
    json: bool,
    /// Entries in each top-k list.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// PNG or JPEG files.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum BenchFormat {
    Yuyv,
    Nv12,
    Rgb,
    Mjpg,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    common: Common,
    /// Iterations.
    #[arg(long, default_value_t = 200)]
    iterations: usize,
    /// Synthetic frame size, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x480")]
    size: String,
    /// Synthetic frame format.
    #[arg(long, value_enum, default_value = "yuyv")]
    format: BenchFormat,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run(a),
        Command::Classify(a) => classify(a),
        Command::Bench(a) => bench(a),
        Command::Selftest { common } => selftest(common),
        Command::Unit { board, model } => Profile::load(&board).map(|p| {
            print!("{}", p.unit(model.as_deref()));
            ExitCode::SUCCESS
        }),
        Command::Boards => {
            for (name, text) in resq_fw::board::BUILTIN {
                let d = Profile::parse(text, name)
                    .map(|p| p.description)
                    .unwrap_or_default();
                println!("{name:<18} {d}");
            }
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The board profile (named, or the host's), with its CPU warnings printed.
fn board(name: Option<&str>) -> Result<Profile> {
    let p = match name {
        Some(n) => Profile::load(n)?,
        None => Profile::default_for_host(),
    };
    for w in p.check_cpu() {
        eprintln!("warning: {w}");
    }
    Ok(p)
}

fn run(a: RunArgs) -> Result<ExitCode> {
    let profile = board(a.common.board.as_deref())?;
    let model = ModelFile::load(&a.common.model)?;
    let uri = a
        .camera
        .clone()
        .unwrap_or_else(|| profile.camera.uri.clone());
    let spec: SourceSpec = uri.parse()?;
    let engine = model.engine()?;
    let names = labels(&engine);
    let cfg = ServiceConfig {
        threads: a.threads.unwrap_or(profile.threads),
        smooth: a
            .smooth
            .unwrap_or(if spec.is_stills() { 1 } else { profile.smooth }),
        top_k: a.top.clamp(1, MAX_TOP_K),
        json: a.json,
        max_frames: a.max_frames,
        ..ServiceConfig::default()
    };
    let mut indicators = if a.no_gpio {
        Indicators::default()
    } else {
        gpio(&a, &profile, &names)?
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // A second signal while stopping ends the process at once.
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let shape = engine.model().input().shape;
    eprintln!(
        "resq-fw: {} ({} classes, {}×{} input) on {}, camera {uri}, {} thread(s), smoothing over {} frame(s)",
        a.common.model.display(),
        names.len(),
        shape[2],
        shape[1],
        profile.name,
        cfg.threads,
        cfg.smooth
    );
    drop(engine);
    let open = Box::new(move || spec.open());
    let summary = service::run(
        model,
        open,
        &cfg,
        &mut indicators,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr(),
        stop.clone(),
    )?;
    let why = match summary.end {
        End::EndOfStream => "end of stream",
        End::Stopped
            if stop.load(Ordering::Relaxed)
                && a.max_frames.is_none_or(|m| summary.processed < m) =>
        {
            "stopped"
        }
        End::Stopped => "done",
    };
    eprintln!(
        "resq-fw: {why}: {} frames processed, {} dropped, camera lost {} time(s)",
        summary.processed, summary.dropped, summary.lost
    );
    Ok(ExitCode::SUCCESS)
}

/// The GPIO lines of the profile and the flags, claimed through the Linux GPIO character device.
fn gpio(
    a: &RunArgs,
    profile: &Profile,
    names: &[String],
) -> Result<Indicators<linux_embedded_hal::CdevPin>> {
    let status = a.status_led.or(profile.gpio.status_led);
    let mut watches: Vec<(String, u32, f32)> = profile
        .gpio
        .watch
        .iter()
        .map(|w| (w.label.clone(), w.line, w.threshold))
        .collect();
    if !a.watch.is_empty() {
        watches = a
            .watch
            .iter()
            .map(|w| parse_watch(w))
            .collect::<Result<_>>()?;
    }
    if status.is_none() && watches.is_empty() {
        return Ok(Indicators::default());
    }
    let chip = a
        .gpio_chip
        .clone()
        .or_else(|| profile.gpio.chip.as_ref().map(PathBuf::from))
        .with_context(|| {
            format!("GPIO lines are set but no GPIO chip: pass --gpio-chip or set [gpio] chip in board profile `{}`", profile.name)
        })?;
    let status = status
        .map(|line| open_line(&chip, line, "status LED"))
        .transpose()?;
    let mut pins = vec![];
    for (label, line, threshold) in watches {
        let class = names.iter().position(|n| *n == label).with_context(|| {
            format!(
                "watched label `{label}` is not a class of the model; its labels are: {}",
                names.join(", ")
            )
        })?;
        pins.push((
            class,
            threshold,
            open_line(&chip, line, &format!("watch line of `{label}`"))?,
        ));
    }
    Indicators::new(status, pins)
}

/// `LABEL=LINE[@THRESHOLD]`.
fn parse_watch(s: &str) -> Result<(String, u32, f32)> {
    let bad =
        || format!("--watch `{s}`: write LABEL=LINE or LABEL=LINE@THRESHOLD, e.g. cat=27@0.6");
    let (label, rest) = s.split_once('=').with_context(bad)?;
    let (line, threshold) = rest.split_once('@').unwrap_or((rest, "0.5"));
    let line: u32 = line.parse().ok().with_context(bad)?;
    let threshold: f32 = threshold
        .parse()
        .ok()
        .filter(|t: &f32| (0.0..=1.0).contains(t) || t.is_finite())
        .with_context(bad)?;
    if label.is_empty() {
        bail!("{}", bad());
    }
    Ok((label.to_string(), line, threshold))
}

#[derive(Serialize)]
struct ClassifyLine<'a> {
    image: String,
    label: &'a str,
    class: usize,
    score: f32,
    topk: heapless::Vec<resq_fw::report::Entry<'a>, MAX_TOP_K>,
}

fn classify(a: ClassifyArgs) -> Result<ExitCode> {
    if a.common.board.is_some() {
        board(a.common.board.as_deref())?;
    }
    let model = ModelFile::load(&a.common.model)?;
    let mut c = Classifier::new(model)?;
    let names = labels(c.engine());
    let probabilities = c.engine().model().meta.output.softmax;
    let mut frame = FrameBuf::default();
    let mut failed = 0;
    let out = std::io::stdout();
    let mut out = out.lock();
    for path in &a.images {
        let scores = match load_image(path, &mut frame).and_then(|_| Ok(c.classify(&frame)?)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {}: {e:#}", path.display());
                failed += 1;
                continue;
            }
        };
        let top = top_k(scores, a.top);
        let (class, score) = top[0];
        let line = if a.json {
            serde_json::to_string(&ClassifyLine {
                image: path.display().to_string(),
                label: &names[class],
                class,
                score,
                topk: entries(&top, &names),
            })?
        } else {
            let rest: Vec<String> = top
                .iter()
                .skip(1)
                .map(|&(c, s)| format!("{} {}", names[c], human_score(s, probabilities).trim()))
                .collect();
            format!(
                "{:<28} {:<12} {}  ({})",
                path.display(),
                names[class],
                human_score(score, probabilities),
                rest.join(", ")
            )
        };
        writeln!(out, "{line}")?;
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn load_image(path: &Path, frame: &mut FrameBuf) -> Result<()> {
    if path.is_dir() {
        bail!(
            "is a folder; pass image files, or run `resq-fw run --camera dir:{}`",
            path.display()
        );
    }
    let img = image::open(path)
        .context("cannot read the image")?
        .to_rgb8();
    frame.set_contiguous(
        PixelFormat::Rgb24,
        img.width() as usize,
        img.height() as usize,
        0,
        img.as_raw(),
    )?;
    Ok(())
}

fn selftest(common: Common) -> Result<ExitCode> {
    board(common.board.as_deref())?;
    let model = ModelFile::load(&common.model)?;
    let mut engine = model.engine()?;
    let m = engine.model();
    let what = format!(
        "{} ({}: {} layers, {} classes, {} bytes of activations)",
        common.model.display(),
        m.meta.name,
        m.meta.layers.len(),
        m.classes(),
        engine.arena_bytes()
    );
    if engine.self_test() {
        println!("self-test passed: {what}");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "self-test FAILED: {what}: the output differs from the vector stored in the file \
             (a damaged file, or kernels on this CPU that disagree with the converter's; \
             try the same file on another board)"
        );
        Ok(ExitCode::from(1))
    }
}

#[derive(Serialize)]
struct BenchReport {
    model: String,
    frame: String,
    iterations: usize,
    preprocess_ms: Stats,
    inference_ms: Stats,
    frames_per_s: f64,
}

#[derive(Serialize)]
struct Stats {
    median: f64,
    mean: f64,
    p90: f64,
}

fn stats(mut v: Vec<f64>) -> Stats {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Stats {
        median: at(0.5),
        mean: v.iter().sum::<f64>() / v.len() as f64,
        p90: at(0.9),
    }
}

fn bench(a: BenchArgs) -> Result<ExitCode> {
    board(a.common.board.as_deref())?;
    let (w, h) = a
        .size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<usize>().ok()?, h.parse::<usize>().ok()?)))
        .filter(|&(w, h)| w > 0 && h > 0 && w % 2 == 0 && h % 2 == 0)
        .with_context(|| {
            format!(
                "--size `{}`: write WIDTHxHEIGHT with even numbers, e.g. 640x480",
                a.size
            )
        })?;
    let iterations = a.iterations.max(1);
    let model = ModelFile::load(&a.common.model)?;
    let mut c = Classifier::new(model)?;
    let frame = synthetic_frame(a.format, w, h)?;
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64() * 1e3
    };
    for _ in 0..3 {
        c.prepare(&frame)?;
        c.infer();
    }
    let mut pre = vec![];
    let mut inf = vec![];
    for _ in 0..iterations {
        let mut err = None;
        pre.push(time(&mut || err = c.prepare(&frame).err()));
        if let Some(e) = err {
            return Err(e.into());
        }
        inf.push(time(&mut || {
            c.infer();
        }));
    }
    let (pre, inf) = (stats(pre), stats(inf));
    let r = BenchReport {
        model: a.common.model.display().to_string(),
        frame: format!("{w}x{h} {}", frame.encoding.name()),
        iterations,
        frames_per_s: 1e3 / (pre.median + inf.median),
        preprocess_ms: pre,
        inference_ms: inf,
    };
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} on {} frames, {} iterations",
            r.model, r.frame, r.iterations
        );
        for (what, s) in [
            ("preprocessing", &r.preprocess_ms),
            ("inference", &r.inference_ms),
        ] {
            println!(
                "  {what:<14} median {:8.3} ms  mean {:8.3} ms  p90 {:8.3} ms",
                s.median, s.mean, s.p90
            );
        }
        println!(
            "  {:.1} frames/s (one thread, capture excluded)",
            r.frames_per_s
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A colour test pattern in the camera format being measured.
fn synthetic_frame(format: BenchFormat, w: usize, h: usize) -> Result<FrameBuf> {
    let rgb: Vec<u8> = (0..w * h)
        .flat_map(|i| {
            let (x, y) = (i % w, i / w);
            [
                (x * 255 / w) as u8,
                (y * 255 / h) as u8,
                ((x + y) % 256) as u8,
            ]
        })
        .collect();
    let mut f = FrameBuf::default();
    let yuv = |p: &[u8]| {
        let (r, g, b) = (p[0] as i32, p[1] as i32, p[2] as i32);
        let y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16;
        let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
        let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
        [y as u8, u as u8, v as u8]
    };
    match format {
        BenchFormat::Rgb => f.set_contiguous(PixelFormat::Rgb24, w, h, 0, &rgb)?,
        BenchFormat::Yuyv => {
            let data: Vec<u8> = rgb
                .chunks_exact(6)
                .flat_map(|p| {
                    let (a, b) = (yuv(&p[..3]), yuv(&p[3..]));
                    [a[0], a[1], b[0], a[2]]
                })
                .collect();
            f.set_contiguous(PixelFormat::Yuyv, w, h, 0, &data)?
        }
        BenchFormat::Nv12 => {
            let mut data: Vec<u8> = rgb.chunks_exact(3).map(|p| yuv(p)[0]).collect();
            for y in (0..h).step_by(2) {
                for x in (0..w).step_by(2) {
                    let [_, u, v] = yuv(&rgb[(y * w + x) * 3..]);
                    data.extend([u, v]);
                }
            }
            f.set_contiguous(PixelFormat::Nv12, w, h, 0, &data)?
        }
        BenchFormat::Mjpg => {
            let mut jpeg = vec![];
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85).encode(
                &rgb,
                w as u32,
                h as u32,
                image::ExtendedColorType::Rgb8,
            )?;
            f.set_jpeg(w, h, &jpeg);
        }
    }
    Ok(f)
}
