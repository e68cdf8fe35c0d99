//! `resq-fw`: classify camera frames on the board, offline.
//!
//! A thin shell over the `resq_fw` library: each subcommand parses its flags and calls one
//! function. Every command ends through [`resq_io::finish`], with the exit statuses `resq`
//! uses too: 0 done, 1 failure while running (camera, device, disk), 2 usage (clap), 3 an input
//! was refused (model, image, camera URI, board profile, flag value), 4 self-test mismatch.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use resq_fw::board::{Profile, ProfileExt};
use resq_fw::classify::{top_k, Classifier, MAX_TOP_K};
use resq_fw::frame::FrameBuf;
use resq_fw::gpio::{open_line, Indicators};
use resq_fw::model::{labels, ModelFile};
use resq_fw::report::{entries, Columns, ImageRecord};
use resq_fw::service::{self, End, ServiceConfig};
use resq_fw::source::SourceSpec;
use resq_io::timing::Stats;
use resq_io::{bad_input, exit, ResultExt};
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
    /// Classify image files, one line each: image, label, probability, latency, runner-ups.
    ///
    /// Exits 3 when some images could not be read (after classifying the others).
    ///
    /// Example:
    ///   resq-fw classify --model m.resq photos/*.png
    Classify(ClassifyArgs),
    /// Measure preprocessing and inference speed on a synthetic camera frame.
    ///
    /// Example:
    ///   resq-fw bench --model m.resq --format yuyv --size 640x480
    Bench(BenchArgs),
    /// Run the model file's self-test vector; exits 4 on a mismatch.
    Selftest {
        #[command(flatten)]
        common: Common,
        /// One JSON object: passed, model, name, layers, classes, arena_bytes, kernel, isa.
        #[arg(long)]
        json: bool,
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
    Boards {
        /// A JSON array of {name, description}.
        #[arg(long)]
        json: bool,
    },
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
    /// Timed iterations.
    #[arg(long, default_value_t = 200)]
    iterations: usize,
    /// Untimed iterations first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
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
    // Commands that only print end like `cat` when their reader goes (`… | head -1`); `run`
    // drives GPIO lines, so it keeps SIGPIPE ignored and stops cleanly on the write error.
    if !matches!(cli.command, Command::Run(_)) {
        resq_io::die_quietly_on_closed_pipe();
    }
    resq_io::finish(match cli.command {
        Command::Run(a) => run(a),
        Command::Classify(a) => classify(a),
        Command::Bench(a) => bench(a),
        Command::Selftest { common, json } => selftest(common, json),
        Command::Unit { board, model } => Profile::load(&board).map(|p| {
            print!("{}", p.unit(model.as_deref()));
            ExitCode::SUCCESS
        }),
        Command::Boards { json } => boards(json),
    })
}

#[derive(Serialize)]
struct BoardLine {
    name: &'static str,
    description: String,
}

fn boards(json: bool) -> Result<ExitCode> {
    let list: Vec<BoardLine> = resq_fw::board::BUILTIN
        .iter()
        .map(|&(name, text)| BoardLine {
            name,
            description: Profile::parse(text, name)
                .map(|p| p.description)
                .unwrap_or_default(),
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&list)?)?;
    } else {
        for b in &list {
            writeln!(out, "{:<18} {}", b.name, b.description)?;
        }
    }
    Ok(ExitCode::SUCCESS)
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
    let spec: SourceSpec = uri.parse().bad_input()?;
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
        End::OutputClosed => "output closed",
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
            .collect::<Result<_>>()
            .bad_input()?;
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
        })
        .bad_input()?;
    let status = status
        .map(|line| open_line(&chip, line, "status LED"))
        .transpose()?;
    let mut pins = vec![];
    for (label, line, threshold) in watches {
        let class = names.iter().position(|n| *n == label).ok_or_else(|| {
            bad_input(format!(
                "watched label `{label}` is not a class of the model; its labels are: {}",
                names.join(", ")
            ))
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
        return Err(bad_input(bad()));
    }
    Ok((label.to_string(), line, threshold))
}

fn classify(a: ClassifyArgs) -> Result<ExitCode> {
    if a.common.board.is_some() {
        board(a.common.board.as_deref())?;
    }
    let model = ModelFile::load(&a.common.model)?;
    let mut c = Classifier::new(model)?;
    let names = labels(c.engine());
    let shown: Vec<String> = a.images.iter().map(|p| p.display().to_string()).collect();
    let cols = Columns::fit(
        shown.iter().map(String::as_str),
        names.iter().map(String::as_str),
    );
    let mut frame = FrameBuf::default();
    let mut failed = 0;
    let mut out = std::io::stdout().lock();
    for (path, image) in a.images.iter().zip(shown) {
        let t = Instant::now();
        // Read errors name the file themselves.
        let probabilities = match load_image(path, &mut frame).and_then(|_| {
            c.classify(&frame)
                .map_err(|e| bad_input(format!("image {}: {e}", path.display())))
        }) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e:#}");
                failed += 1;
                continue;
            }
        };
        let top = top_k(probabilities, a.top);
        let latency_ms = (t.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        let (class, score) = top[0];
        let rec = ImageRecord {
            image,
            label: &names[class],
            class,
            score,
            logit: c.logits()[class],
            topk: entries(&top, &names, c.logits()),
            latency_ms,
        };
        let line = if a.json { rec.json() } else { rec.human(cols) };
        writeln!(out, "{line}")?;
    }
    if failed > 0 {
        // Not an `error:` line: `resq device eval` counts those, one per image.
        eprintln!(
            "resq-fw: {failed} of {} images could not be classified",
            a.images.len()
        );
        return Ok(ExitCode::from(exit::BAD_INPUT));
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads an image file (size limits before decoding, damaged files refused) into `frame`.
fn load_image(path: &Path, frame: &mut FrameBuf) -> Result<()> {
    if path.is_dir() {
        return Err(bad_input(format!(
            "{0} is a folder; pass image files, or run `resq-fw run --camera dir:{0}`",
            path.display()
        )));
    }
    let img = resq_io::read_image(path)?;
    frame
        .set_contiguous(
            PixelFormat::Rgb24,
            img.width() as usize,
            img.height() as usize,
            0,
            img.as_raw(),
        )
        .map_err(|e| bad_input(format!("image {}: {e}", path.display())))?;
    Ok(())
}

#[derive(Serialize)]
struct SelftestReport {
    passed: bool,
    model: String,
    name: String,
    layers: usize,
    classes: usize,
    arena_bytes: usize,
    kernel: String,
    isa: &'static str,
}

fn selftest(common: Common, json: bool) -> Result<ExitCode> {
    board(common.board.as_deref())?;
    let model = ModelFile::load(&common.model)?;
    let mut engine = model.engine()?;
    let passed = engine.self_test();
    let m = engine.model();
    let r = SelftestReport {
        passed,
        model: common.model.display().to_string(),
        name: m.meta.name.to_string(),
        layers: m.meta.layers.len(),
        classes: m.classes(),
        arena_bytes: engine.arena_bytes(),
        kernel: format!("{} ({})", engine.isa(), engine.kernel_name()),
        isa: engine.isa().name(),
    };
    let what = format!(
        "{} ({}: {} layers, {} classes, {} bytes of activations, kernel {})",
        r.model, r.name, r.layers, r.classes, r.arena_bytes, r.kernel
    );
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&r)?)?;
    } else if passed {
        writeln!(out, "self-test passed: {what}")?;
    }
    if passed {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "self-test FAILED: {what}: the output differs from the vector stored in the file \
         (a damaged file, or kernels on this CPU that disagree with the converter's; \
         try the same file on another board)"
    );
    Ok(ExitCode::from(exit::SELF_TEST))
}

/// `resq-fw bench --json`: the keys `resq bench --json` shares (model, iterations, warmup,
/// threads, kernel, isa) and the board's own (frame, preprocess_ms, frames_per_s).
#[derive(Serialize)]
struct BenchReport {
    model: String,
    iterations: usize,
    warmup: usize,
    threads: usize,
    kernel: String,
    isa: &'static str,
    inference_ms: Stats,
    preprocess_ms: Stats,
    frame: String,
    frames_per_s: f64,
}

/// `WIDTHxHEIGHT`, even numbers within the image limits, checked before any frame is made.
fn parse_size(size: &str) -> Result<(usize, usize)> {
    let (w, h) = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .filter(|&(w, h)| w > 0 && h > 0 && w % 2 == 0 && h % 2 == 0)
        .ok_or_else(|| {
            bad_input(format!(
                "--size `{size}`: write WIDTHxHEIGHT with even numbers, e.g. 640x480"
            ))
        })?;
    resq_io::image_file::check_size(w, h).map_err(|why| {
        bad_input(format!(
            "--size `{size}`: {}; pass a smaller size",
            why.split("; ").next().unwrap_or(&why)
        ))
    })?;
    Ok((w as usize, h as usize))
}

fn bench(a: BenchArgs) -> Result<ExitCode> {
    board(a.common.board.as_deref())?;
    let (w, h) = parse_size(&a.size)?;
    let iterations = a.iterations.max(1);
    let model = ModelFile::load(&a.common.model)?;
    let mut c = Classifier::new(model)?;
    let frame = synthetic_frame(a.format, w, h)?;
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64() * 1e3
    };
    for _ in 0..a.warmup {
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
    // Both lists hold `iterations` ≥ 1 times.
    let summary = |v: &[f64]| Stats::of(v).context("no iterations were timed");
    let (pre, inf) = (summary(&pre)?, summary(&inf)?);
    let engine = c.engine();
    let r = BenchReport {
        model: a.common.model.display().to_string(),
        iterations,
        warmup: a.warmup,
        threads: engine.threads(),
        kernel: format!("{} ({})", engine.isa(), engine.kernel_name()),
        isa: engine.isa().name(),
        frame: format!("{w}x{h} {}", frame.encoding.name()),
        frames_per_s: 1e3 / (pre.median + inf.median),
        preprocess_ms: pre,
        inference_ms: inf,
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string(&r)?)?;
    } else {
        writeln!(
            out,
            "{} on {} frames, {} iterations after {} warm-up, kernel {}",
            r.model, r.frame, r.iterations, r.warmup, r.kernel
        )?;
        for (what, s) in [
            ("preprocessing", &r.preprocess_ms),
            ("inference", &r.inference_ms),
        ] {
            writeln!(
                out,
                "  {what:<14} median {:8.3} ms  mean {:8.3} ms  min {:8.3} ms  max {:8.3} ms  p90 {:8.3} ms",
                s.median, s.mean, s.min, s.max, s.p90
            )?;
        }
        writeln!(
            out,
            "  {:.1} frames/s (one thread, capture excluded)",
            r.frames_per_s
        )?;
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
