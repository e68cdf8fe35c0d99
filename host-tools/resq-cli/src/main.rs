//! `resq`: convert ONNX ResNets to int8 `.resq` files, inspect and evaluate them.
//!
//! A thin shell over `resq-host`: each subcommand parses its flags and calls one function.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use resq_engine::Engine;
use resq_format::{Layout, Model, Op, ResizeMode};
use resq_host::calibrate::Method;
use resq_host::convert::{convert_with_progress, write_atomic, ConvertOptions, ResizeOptions};
use resq_host::eval::{evaluate, preprocess_of_model, Reference};
use resq_host::images::labelled_dataset_for;
use resq_host::synth::{synth_resnet, Arch, SynthSpec};
use resq_io::{bad_input, exit, hex, ResultExt};

mod deploy;
mod progress;

#[derive(Parser)]
#[command(
    name = "resq",
    version,
    about = "ONNX ResNet → calibrated int8 model for Cortex-A boards"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert an ONNX ResNet to an int8 .resq file, calibrating on a folder of images.
    ///
    /// Examples:
    ///   resq convert -m resnet18.onnx --calib photos/ --resize 256 --crop 224 \
    ///       --mean 123.675,116.28,103.53 --std 58.395,57.12,57.375 -o resnet18.resq   (torchvision)
    ///   resq convert -m resnet50.onnx --calib photos/ --layout nhwc --bgr --resize-mode squash \
    ///       --mean 103.939,116.779,123.68 --std 1 -o resnet50.resq            (Keras "caffe")
    ///   resq convert -m model_int8_qdq.onnx -o model.resq     (pre-quantized QDQ: keeps its scales)
    ///   resq convert -m resnet18.onnx --calib photos/ --auto-fallback -o resnet18.resq
    ///                                    (keeps the layers that lose most precision at int16)
    #[command(verbatim_doc_comment)]
    Convert(ConvertArgs),
    /// Show a .resq file: header, layers, sizes, quantization, provenance.
    ///
    /// Example:
    ///   resq inspect -m resnet18.resq
    ///   resq inspect -m resnet18.resq --json
    #[command(verbatim_doc_comment)]
    Inspect(InspectArgs),
    /// Measure int8 top-1 on a labelled image set, optionally against tract's f32 answers.
    ///
    /// Examples:
    ///   resq eval -m model.resq --images val/                       (ImageFolder: val/<class>/<img>)
    ///   resq eval -m model.resq --images imgs/ --ground-truth truth.csv --reference model.onnx --json
    #[command(verbatim_doc_comment)]
    Eval(EvalArgs),
    /// Write a torchvision-layout ResNet with seeded random weights as ONNX (for tests and benchmarks).
    ///
    /// Example:
    ///   resq synth --arch resnet50 --size 224 --classes 1000 --seed 1 -o resnet50.onnx
    #[command(verbatim_doc_comment)]
    Synth(SynthArgs),
    /// Per-layer quantization report against tract f32: one self-contained HTML page (SQNR,
    /// cosine, activation histograms with the int8 range, per-channel weight ranges, top-1).
    ///
    /// Examples:
    ///   resq report -m model.resq --images val/ --reference model.onnx -o report.html
    ///   resq report -m model.resq --images imgs/ --ground-truth truth.csv --reference model.onnx --json
    #[command(verbatim_doc_comment)]
    Report(ReportArgs),
    /// Time inference: warm-up, then median / min / max latency, kernel path and peak memory.
    ///
    /// Examples:
    ///   resq bench -m resnet50.resq --threads 2 --iterations 50
    ///   resq bench -m resnet18.resq --isa reference --json
    #[command(verbatim_doc_comment)]
    Bench(BenchArgs),
    /// Convert the shipped ResNet-8 and classify the shipped photos with the firmware engine.
    Demo {
        /// Where to write the converted model.
        #[arg(short, long, default_value = "target/resnet8.resq")]
        output: PathBuf,
    },
    /// Install firmware + model + board profile on boards: atomic A/B release, self-test on the
    /// device, automatic switch back on failure. Over SSH (host keys verified) or to a mounted
    /// root filesystem; --to repeated or --inventory flashes a fleet in parallel.
    ///
    /// Examples:
    ///   resq flash --board rpi4 --model m.resq --to ssh://pi@rpi4.local --enable-service
    ///   resq flash --board rpi4 --model m.resq --to dir:/media/me/rootfs
    ///   resq flash --bundle release.tar --inventory boards.txt --jobs 8
    ///   resq flash --status --to ssh://pi@rpi4.local
    ///   resq flash --rollback --to ssh://pi@rpi4.local
    #[command(verbatim_doc_comment)]
    Flash(deploy::FlashArgs),
    /// Write a release bundle (firmware, model, board profile, unit, manifest with SHA-256
    /// sums) to one file, for offline transport; `resq flash --bundle FILE` installs it.
    ///
    /// Example:
    ///   resq bundle --board rpi4 --model m.resq -o release.tar
    #[command(verbatim_doc_comment)]
    Bundle(deploy::BundleArgs),
    /// Checks on a live board: benchmark or accuracy of the installed release.
    Device(deploy::DeviceArgs),
    /// Print a shell completion script.
    ///
    /// Examples:
    ///   resq completions bash > ~/.local/share/bash-completion/completions/resq
    ///   resq completions zsh > ~/.zfunc/_resq
    ///   resq completions fish > ~/.config/fish/completions/resq.fish
    #[command(verbatim_doc_comment)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write man pages: resq(1) to stdout, or one page per command into --dir.
    ///
    /// Example:
    ///   resq man --dir ~/.local/share/man/man1
    #[command(verbatim_doc_comment)]
    Man {
        /// Folder for resq.1 and resq-<command>.1.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// The model a command works on: `-m/--model FILE` everywhere in `resq` and `resq-fw` (the
/// file may also come first without the flag, as older scripts wrote it).
#[derive(Args)]
struct ModelArg {
    /// The model file.
    #[arg(
        short = 'm',
        long = "model",
        value_name = "FILE",
        required_unless_present = "model_positional"
    )]
    model: Option<PathBuf>,
    #[arg(value_name = "FILE", hide = true, conflicts_with = "model")]
    model_positional: Option<PathBuf>,
}

impl ModelArg {
    fn path(&self) -> PathBuf {
        // clap makes one of the two present.
        self.model
            .clone()
            .or_else(|| self.model_positional.clone())
            .unwrap_or_default()
    }
}

#[derive(Args)]
struct InspectArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum LayoutArg {
    Nchw,
    Nhwc,
}

#[derive(Clone, Copy, ValueEnum)]
enum ResizeModeArg {
    /// Aspect ratio kept: shorter side to the size, centre crop.
    Shorter,
    /// Both sides straight to the size (aspect ratio not kept).
    Squash,
}

#[derive(Clone, Copy, ValueEnum)]
enum MethodArg {
    /// Full observed range.
    Minmax,
    /// Clip rare outliers at --percentile.
    Percentile,
    /// Minimum KL divergence between the float and int8 distributions (TensorRT-style).
    Entropy,
    /// Minimum expected squared quantization error.
    Mse,
}

#[derive(Args)]
struct ConvertArgs {
    /// The ONNX model.
    #[command(flatten)]
    model: ModelArg,
    /// Folder of calibration images (PNG / JPEG, searched recursively; 100–500 representative
    /// images). Leave out for a pre-quantized (QDQ) model to keep its own scales.
    #[arg(long)]
    calib: Option<PathBuf>,
    /// Per-channel mean in pixel units 0..255 (not 0..1): x = (pixel − mean) / std. One value or
    /// three, in the model's channel order. [default: 0]
    #[arg(long, allow_hyphen_values = true)]
    mean: Option<String>,
    /// Per-channel standard deviation in pixel units 0..255. One value or three. [default: 1]
    #[arg(long, allow_hyphen_values = true)]
    std: Option<String>,
    /// Resize each image so its shorter side is N pixels, then take the model input's centre
    /// (torchvision's Resize(N) + CenterCrop; 256 for a 224 input). Default: the input size.
    #[arg(long, value_name = "N", conflicts_with = "crop_ratio")]
    resize: Option<u32>,
    /// The centre crop, M or HxW: must be the model input size (resq crops to the input);
    /// states the recipe in full, e.g. --resize 256 --crop 224.
    #[arg(long, value_name = "M")]
    crop: Option<String>,
    /// The fraction of the resized image the crop keeps: the resize is floor(input / R), as
    /// timm's crop_pct (0.875: 256 for a 224 input). Default 1.
    #[arg(long, value_name = "R")]
    crop_ratio: Option<f64>,
    /// shorter: keep the aspect ratio, resize the shorter side and crop the centre (torchvision,
    /// timm); squash: resize both sides straight to the size, aspect not kept (Keras, TFLite).
    #[arg(long, value_enum, default_value = "shorter")]
    resize_mode: ResizeModeArg,
    /// Input layout of the ONNX model.
    #[arg(long, value_enum, default_value = "nchw")]
    layout: LayoutArg,
    /// The model expects BGR channel order (OpenCV / Caffe models).
    #[arg(long)]
    bgr: bool,
    /// Calibration method.
    #[arg(long, value_enum, default_value = "minmax")]
    method: MethodArg,
    /// Percentile for --method percentile.
    #[arg(long, default_value_t = 99.99)]
    percentile: f32,
    /// Class names, one per line.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Keep these layers' outputs at int16 (symmetric, 256× finer than int8), comma-separated
    /// layer names as `resq inspect` or `resq report` show them. resq's higher precision is
    /// int16 activations: the firmware stays integer-only. (Alias: --keep-float.)
    #[arg(long, alias = "keep-float", value_delimiter = ',')]
    keep_int16: Vec<String>,
    /// Measure every layer against tract f32 on 8 calibration images and, while some layer's
    /// SQNR is below --min-sqnr, keep the int8 layer that loses the most precision itself at
    /// int16, re-measuring after each (at most 8 layers). Prints which layers and what they
    /// gained.
    #[arg(long)]
    auto_fallback: bool,
    /// SQNR threshold in dB for --auto-fallback.
    #[arg(long, default_value_t = 30.0, requires = "auto_fallback")]
    min_sqnr: f64,
    /// Output file.
    #[arg(short, long)]
    output: PathBuf,
    /// Print one JSON object (file, bytes, layers, calibration, warnings) instead of lines.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct EvalArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Image folder (ImageFolder layout, or the root the CSV's paths are relative to).
    #[arg(long)]
    images: PathBuf,
    /// Ground truth: a CSV with a header and columns `file` and `label` (class index). Without
    /// it, class folders are matched to the model's labels by name (or are class numbers: 0/, 3/).
    #[arg(long, value_name = "CSV")]
    ground_truth: Option<PathBuf>,
    #[arg(long, hide = true)]
    labels: Option<PathBuf>,
    /// The float ONNX model to compare with (run by tract).
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Also list each image with its true and predicted class (a "per_image" list in --json).
    #[arg(long)]
    per_image: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ReportArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Images: ImageFolder (DIR/<class>/<img>), the root of --labels' paths, or a plain folder
    /// (then only int8 / f32 agreement is reported, no top-1).
    #[arg(long)]
    images: PathBuf,
    /// The float ONNX model the file was converted from (run by tract).
    #[arg(long)]
    reference: PathBuf,
    /// Ground truth: a CSV with a header and columns `file` and `label` (class index).
    #[arg(long, value_name = "CSV")]
    ground_truth: Option<PathBuf>,
    #[arg(long, hide = true)]
    labels: Option<PathBuf>,
    /// Images run layer by layer for the per-layer statistics (evenly spaced over the set).
    #[arg(long, default_value_t = 8)]
    max_images: usize,
    /// Images for top-1 / agreement (evenly spaced); 0 for all.
    #[arg(long, default_value_t = 100)]
    eval_images: usize,
    /// Print the numbers as one JSON object (layers worst first).
    #[arg(long)]
    json: bool,
    /// HTML page to write.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Threads (the calling one included); 0 for one per core.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Timed inferences.
    #[arg(long, default_value_t = 20, alias = "iters")]
    iterations: usize,
    /// Untimed inferences first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Kernels: reference, generic, avx2, avx512vnni, neon, dotprod or i8mm (default: RESQ_ISA,
    /// else the best this CPU runs).
    #[arg(long)]
    isa: Option<String>,
    /// Also time each layer (median) and report convolution throughput in GMAC/s.
    #[arg(long)]
    layers: bool,
    /// Print one JSON object (model, iterations, warmup, threads, kernel, isa, inference_ms
    /// {median, mean, min, max, p90}, …: the keys `resq-fw bench` prints).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SynthArgs {
    /// resnet18, resnet34, resnet50, resnet101 or resnet152.
    #[arg(long)]
    arch: Arch,
    /// Input height and width.
    #[arg(long, default_value_t = 224)]
    size: u32,
    /// Number of classes.
    #[arg(long, default_value_t = 1000)]
    classes: u32,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output ONNX file.
    #[arg(short, long)]
    output: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands that only print end quietly when their reader goes (`resq inspect -m m | head`);
    // flash and device keep going, their output written with `say!`, so a closed pipe never
    // leaves a board half-installed.
    if !matches!(cli.command, Command::Flash(_) | Command::Device(_)) {
        resq_io::die_quietly_on_closed_pipe();
    }
    let done = |r: Result<()>| r.map(|()| ExitCode::SUCCESS);
    resq_io::finish(match cli.command {
        Command::Convert(a) => done(cmd_convert(a)),
        Command::Inspect(a) => done(cmd_inspect(a)),
        Command::Eval(a) => done(cmd_eval(a)),
        Command::Synth(a) => done(cmd_synth(a)),
        Command::Bench(a) => cmd_bench(a),
        Command::Report(a) => done(cmd_report(a)),
        Command::Demo { output } => done(cmd_demo(&output)),
        Command::Flash(a) => deploy::run_flash(a),
        Command::Bundle(a) => deploy::run_bundle(a),
        Command::Device(a) => deploy::run_device(a),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "resq", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => done(cmd_man(dir.as_deref())),
    })
}

/// resq(1) to stdout, or resq.1 and resq-<command>.1 into `dir`.
fn cmd_man(dir: Option<&Path>) -> Result<()> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let Some(dir) = dir else {
        clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut pages = vec![("resq.1".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands() {
        // clap names are `&'static str`; a handful of page names for the life of the process.
        let name: &'static str = Box::leak(format!("resq-{}", sub.get_name()).into_boxed_str());
        pages.push((format!("{name}.1"), sub.clone().name(name)));
    }
    for (file, page) in pages {
        let mut text = vec![];
        clap_mangen::Man::new(page).render(&mut text)?;
        write_atomic(&dir.join(&file), &text)?;
    }
    println!(
        "wrote {} man pages to {}",
        cmd.get_subcommands().count() + 1,
        dir.display()
    );
    Ok(())
}

fn triple(flag: &str, s: &str) -> Result<[f32; 3]> {
    let v: Vec<f32> = s
        .split(',')
        .map(|x| x.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            bad_input(format!(
                "--{flag} `{s}`: expected numbers like 123.7,116.3,103.5"
            ))
        })?;
    if let Some(x) = v.iter().find(|x| !x.is_finite()) {
        return Err(bad_input(format!(
            "--{flag} `{s}`: {x} is not a finite number; give pixel units 0..255 like 123.7,116.3,103.5"
        )));
    }
    match v.as_slice() {
        [a] => Ok([*a; 3]),
        [a, b, c] => Ok([*a, *b, *c]),
        _ => Err(bad_input(format!(
            "--{flag} `{s}`: give one value or three (R,G,B)"
        ))),
    }
}

/// `--crop M` or `--crop HxW` as `[height, width]`.
fn crop_size(s: &str) -> Result<[u32; 2]> {
    let bad =
        || anyhow!("--crop `{s}`: expected the model input size, M or HxW (e.g. 224 or 224x224)");
    let parts: Vec<u32> = s
        .split(['x', 'X', '×'])
        .map(|p| p.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    match parts.as_slice() {
        [m] => Ok([*m, *m]),
        [h, w] => Ok([*h, *w]),
        _ => Err(bad()),
    }
}

fn cmd_convert(a: ConvertArgs) -> Result<()> {
    let model = a.model.path();
    let opts = ConvertOptions {
        model: model.clone(),
        calib: a.calib,
        mean: triple("mean", a.mean.as_deref().unwrap_or("0"))?,
        std: triple("std", a.std.as_deref().unwrap_or("1"))?,
        mean_std_given: a.mean.is_some() || a.std.is_some(),
        resize: ResizeOptions {
            resize: a.resize,
            crop_ratio: a.crop_ratio,
            crop: a.crop.as_deref().map(crop_size).transpose()?,
            mode: match a.resize_mode {
                ResizeModeArg::Shorter => ResizeMode::Shorter,
                ResizeModeArg::Squash => ResizeMode::Squash,
            },
        },
        layout: match a.layout {
            LayoutArg::Nchw => Layout::Nchw,
            LayoutArg::Nhwc => Layout::Nhwc,
        },
        bgr: a.bgr,
        method: match a.method {
            MethodArg::Minmax => Method::MinMax,
            MethodArg::Percentile => {
                if !(50.0..=100.0).contains(&a.percentile) {
                    return Err(bad_input(format!(
                        "--percentile {} must be between 50 and 100 (e.g. 99.99)",
                        a.percentile
                    )));
                }
                Method::Percentile(a.percentile)
            }
            MethodArg::Entropy => Method::Entropy,
            MethodArg::Mse => Method::Mse,
        },
        labels: a.labels.clone(),
        keep_int16: a.keep_int16,
        auto_fallback: a.auto_fallback.then_some(a.min_sqnr),
        warn_below_images: resq_host::convert::MIN_CALIB_IMAGES,
    };
    let c = convert_with_progress(&opts, &progress::Bars::new(!a.json)).bad_input()?;
    for w in &c.warnings {
        eprintln!("warning: {w}");
    }
    write_atomic(&a.output, &c.bytes)?;
    let labels_hint = a.labels.is_none().then(|| {
        format!(
            "no class names in {}: results show as `class N`; pass --labels classes.txt (one \
             name per line, in the model's output order)",
            a.output.display()
        )
    });
    if a.json {
        let v = serde_json::json!({
            "model": model.display().to_string(),
            "file": a.output.display().to_string(),
            "bytes": c.bytes.len(),
            "layers": c.layers,
            "calibration_images": c.calib_images,
            "preprocess": c.preprocess.to_string(),
            "int16_layers": c.int16_layers,
            "auto_fallback": c.fallback.iter().map(|s| serde_json::json!({
                "layer": s.layer,
                "sqnr_before_db": s.sqnr_before,
                "sqnr_after_db": s.sqnr_after,
                "worst_after_db": s.worst_after,
            })).collect::<Vec<_>>(),
            "warnings": c.warnings,
            "hint": labels_hint,
        });
        println!("{v}");
        return Ok(());
    }
    if a.auto_fallback {
        if c.fallback.is_empty() {
            println!(
                "auto-fallback: every layer is at or above {} dB SQNR against tract f32; all int8",
                a.min_sqnr
            );
        }
        for s in &c.fallback {
            println!(
                "auto-fallback: kept `{}` at int16: its SQNR {:.1} dB -> {:.1} dB (lowest layer now {:.1} dB)",
                s.layer, s.sqnr_before, s.sqnr_after, s.worst_after
            );
        }
    }
    if !c.int16_layers.is_empty() {
        println!("int16 outputs: {}", c.int16_layers.join(", "));
    }
    println!("preprocess: {}", c.preprocess);
    println!(
        "wrote {} ({} bytes, {} layers, {})",
        a.output.display(),
        c.bytes.len(),
        c.layers,
        if c.calib_images > 0 {
            format!("calibrated on {} images", c.calib_images)
        } else {
            "kept the model's own QDQ quantization".to_string()
        }
    );
    if let Some(hint) = labels_hint {
        println!("hint: {hint}");
    }
    Ok(())
}

fn cmd_inspect(a: InspectArgs) -> Result<()> {
    let path = a.model.path();
    let file = path.as_path();
    let bytes = resq_io::read_model(file)?;
    let m = Model::parse(bytes.as_bytes())
        .map_err(|e| bad_input(format!("{}: {e}", file.display())))?;
    let h = m.header;
    let meta = &m.meta;
    if a.json {
        println!("{}", inspect_json(file, &m));
        return Ok(());
    }
    println!(
        "{}: resq format v{}, {} bytes",
        file.display(),
        h.version,
        h.file_len
    );
    println!(
        "  metadata {} bytes, data {} bytes at offset {}, crc32 {:#010x}",
        h.meta_len, h.data_len, h.data_offset, h.crc32
    );
    println!(
        "  model `{}`: {} layers, {} tensors, {} weight/bias bytes",
        meta.name,
        meta.layers.len(),
        meta.tensors.len(),
        m.weight_bytes()
    );
    let i = m.input();
    println!(
        "  input  `{}` {:?} NHWC, {:?}, source layout {:?}, mean {:?}, std {:?}, scale {}, zero point {}",
        i.name, i.shape, meta.input.channels, meta.input.layout, meta.input.mean, meta.input.std, i.scale, i.zero_point
    );
    println!("  preprocess: {}", preprocess_of_model(&m));
    let o = m.output();
    println!(
        "  output `{}` {} classes, scale {}, zero point {}{}",
        o.name,
        m.classes(),
        o.scale,
        o.zero_point,
        if meta.output.softmax {
            ", then softmax"
        } else {
            ""
        }
    );
    let labels: Vec<&str> = m.labels().collect();
    if !labels.is_empty() {
        println!(
            "  labels: {}{}",
            labels
                .iter()
                .take(10)
                .copied()
                .collect::<Vec<_>>()
                .join(", "),
            if labels.len() > 10 { ", …" } else { "" }
        );
    }
    let p = &meta.provenance;
    println!(
        "  provenance: {} (sha256 {}), {}",
        p.source_name,
        hex(&p.source_sha256),
        p.tool
    );
    println!(
        "  calibration: {}{} on {} images (digest {})",
        p.method,
        if p.method == "percentile" {
            format!(" {}", p.method_param)
        } else {
            String::new()
        },
        p.calib_images,
        hex(&p.calib_digest)
    );
    println!("  layers:");
    for (idx, l) in meta.layers.iter().enumerate() {
        let out = m.tensor(l.op.output());
        let detail = layer_detail(&m, l);
        println!(
            "   {idx:3} {:9} {:40} -> {:?} {} scale {:.5} zp {:4}  {detail}",
            l.op.kind(),
            l.name,
            &out.shape[1..],
            if m.is_int16(l.op.output()) {
                "int16"
            } else {
                "int8 "
            },
            out.scale,
            out.zero_point
        );
    }
    Ok(())
}

/// One layer's geometry and quantization in a few words (`k3x3 s1 g1 shift 38 clamp …`).
fn layer_detail(m: &Model, l: &resq_format::Layer) -> String {
    {
        let detail = match l.op {
            Op::Conv(c) => format!(
                "k{}x{} s{} g{} shift {} clamp {:?}{}",
                c.kernel[0],
                c.kernel[1],
                c.stride[0],
                c.groups,
                c.requant.shift,
                c.clamp,
                if c.residual.is_some() {
                    " +residual"
                } else {
                    ""
                }
            ),
            Op::MaxPool(p) => format!("k{}x{} s{}", p.kernel[0], p.kernel[1], p.stride[0]),
            Op::AvgPool(p) => format!(
                "k{}x{} s{}",
                p.window.kernel[0], p.window.kernel[1], p.window.stride[0]
            ),
            Op::Add(a) => format!("shift {} clamp {:?}", a.shift, a.clamp),
            Op::Pad(p) => format!("pads {:?}", p.pads),
            Op::Subsample(s) => format!("start {:?} step {:?}", s.start, s.step),
        };
        let clamp16 = m
            .int16_clamp(l.op.output())
            .map_or(String::new(), |c| format!(" int16 clamp {c:?}"));
        format!("{detail}{clamp16}")
    }
}

/// `resq inspect --json`: the same facts as the text, as one object.
fn inspect_json(file: &Path, m: &Model) -> serde_json::Value {
    let (h, meta) = (m.header, &m.meta);
    let tensor = |t: &resq_format::TensorDesc| {
        serde_json::json!({
            "name": t.name,
            "shape_nhwc": t.shape,
            "scale": t.scale,
            "zero_point": t.zero_point,
        })
    };
    let p = &meta.provenance;
    serde_json::json!({
        "file": file.display().to_string(),
        "format_version": h.version,
        "bytes": h.file_len,
        "metadata_bytes": h.meta_len,
        "data_bytes": h.data_len,
        "crc32": h.crc32,
        "name": meta.name,
        "layers": meta.layers.iter().enumerate().map(|(i, l)| {
            let out = m.tensor(l.op.output());
            serde_json::json!({
                "index": i,
                "kind": l.op.kind(),
                "name": l.name,
                "output_shape_hwc": &out.shape[1..],
                "dtype": if m.is_int16(l.op.output()) { "int16" } else { "int8" },
                "scale": out.scale,
                "zero_point": out.zero_point,
                "detail": layer_detail(m, l),
            })
        }).collect::<Vec<_>>(),
        "tensors": meta.tensors.len(),
        "weight_bytes": m.weight_bytes(),
        "input": tensor(m.input()),
        "preprocess": preprocess_of_model(m).to_string(),
        "output": tensor(m.output()),
        "classes": m.classes(),
        "softmax": meta.output.softmax,
        "labels": m.labels().collect::<Vec<_>>(),
        "provenance": {
            "source": p.source_name,
            "source_sha256": hex(&p.source_sha256),
            "tool": p.tool,
            "method": p.method,
            "method_param": p.method_param,
            "calibration_images": p.calib_images,
            "calibration_digest": hex(&p.calib_digest),
        },
    })
}

/// `--labels` names classes (`resq convert`); a ground-truth CSV has its own flag.
fn refuse_labels_for_truth(labels: Option<&Path>) -> Result<()> {
    match labels {
        Some(p) => Err(bad_input(format!(
            "--labels {} names classes (`resq convert --labels`); give the ground-truth CSV \
             (columns file,label) as --ground-truth {}",
            p.display(),
            p.display()
        ))),
        None => Ok(()),
    }
}

fn cmd_eval(a: EvalArgs) -> Result<()> {
    refuse_labels_for_truth(a.labels.as_deref())?;
    let file = a.model.path();
    let bytes = resq_io::read_model(&file)?;
    let mut engine = Engine::from_bytes(bytes.as_bytes())
        .map_err(|e| bad_input(format!("{}: {e}", file.display())))?;
    let labels: Vec<String> = engine.model().labels().map(str::to_string).collect();
    let names: Vec<&str> = labels.iter().map(String::as_str).collect();
    let dataset = labelled_dataset_for(&a.images, a.ground_truth.as_deref(), &names).bad_input()?;
    if let Some(note) = &dataset.note {
        eprintln!("note: {note}");
    }
    let samples = dataset.samples;
    let reference = match &a.reference {
        Some(p) => Some(Reference::load_for(p, engine.model(), &file).bad_input()?),
        None => None,
    };
    let r = evaluate(&mut engine, &samples, reference.as_ref()).bad_input()?;
    let name = |c: usize| {
        names
            .get(c)
            .map_or_else(|| c.to_string(), |n| n.to_string())
    };
    if a.json {
        let mut v = serde_json::json!({
            "images": r.images,
            "top1_int8": r.top1_int8,
            "top1_f32": r.top1_f32,
            "agreement": r.agreement.map(|x| x as f64 / r.images as f64),
            "cosine": r.cosine,
        });
        if a.per_image {
            v["per_image"] = samples
                .iter()
                .zip(&r.predictions)
                .map(|(s, &p)| {
                    serde_json::json!({
                        "image": s.path.display().to_string(),
                        "label": s.label,
                        "class": p,
                        "predicted": name(p),
                    })
                })
                .collect();
        }
        println!("{v}");
    } else {
        if a.per_image {
            for (s, &p) in samples.iter().zip(&r.predictions) {
                println!(
                    "{}  {} -> {}{}",
                    s.path.display(),
                    name(s.label),
                    name(p),
                    if p == s.label { "" } else { "  (wrong)" }
                );
            }
        }
        let pct = |x: usize| 100.0 * x as f64 / r.images.max(1) as f64;
        println!("images      {}", r.images);
        println!("top-1 int8  {} ({:.1} %)", r.top1_int8, pct(r.top1_int8));
        if let (Some(f), Some(ag), Some(cos)) = (r.top1_f32, r.agreement, r.cosine) {
            println!("top-1 f32   {} ({:.1} %)", f, pct(f));
            println!("agreement   {} ({:.1} %)", ag, pct(ag));
            println!("cosine      {cos:.4}");
        }
    }
    Ok(())
}

fn cmd_report(a: ReportArgs) -> Result<()> {
    refuse_labels_for_truth(a.labels.as_deref())?;
    if a.output.is_none() && !a.json {
        return Err(bad_input(
            "resq report: pass -o report.html to write the page, or --json to print the numbers",
        ));
    }
    let report = resq_host::report::build_report_with_progress(
        &resq_host::report::ReportOptions {
            file: a.model.path(),
            reference: a.reference,
            images: a.images,
            labels: a.ground_truth,
            max_images: a.max_images,
            eval_images: a.eval_images,
        },
        &progress::Bars::new(!a.json),
    )
    .bad_input()?;
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    if let Some(out) = &a.output {
        let html = report.to_html()?;
        write_atomic(out, html.as_bytes())?;
        if !a.json {
            let worst = report.worst_first().first().map_or(String::new(), |w| {
                format!(
                    "; worst: #{} {} at {:.1} dB SQNR",
                    w.index, w.name, w.output.sqnr_db
                )
            });
            println!(
                "wrote {} ({} bytes, {} layers{worst})",
                out.display(),
                html.len(),
                report.layers.len()
            );
        }
    }
    if a.json {
        println!("{}", report.to_json());
    }
    Ok(())
}

fn cmd_bench(a: BenchArgs) -> Result<ExitCode> {
    use resq_engine::{EngineOptions, Isa};
    let file = a.model.path();
    let isa = a.isa.as_deref().map(Isa::choose).transpose().bad_input()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = if a.threads == 0 { cores } else { a.threads };
    if threads > cores {
        eprintln!(
            "warning: --threads {threads} on {cores} core(s): threads beyond the cores wait for \
             each other at every layer, expect it several times slower than --threads {cores}"
        );
    }
    let options = EngineOptions { threads, isa };
    // Read straight into aligned memory: one copy of the file, never two.
    let mut bytes = resq_io::read_model(&file)?;
    let file_bytes = bytes.as_bytes().len();
    // Weights are packed in place: the engine keeps no second copy of them.
    let mut engine = Engine::from_bytes_in_place(bytes.as_bytes_mut(), options)
        .map_err(|e| bad_input(format!("{}: {e}", file.display())))?;
    let self_test = engine.self_test();
    if !self_test {
        eprintln!(
            "error: {}: the self-test failed on the {} kernels (a damaged file, or kernels on \
             this CPU that disagree with the converter's; `--isa reference` tells which)",
            file.display(),
            engine.isa()
        );
        return Ok(ExitCode::from(exit::SELF_TEST));
    }
    let st = engine.model().meta.self_test.input;
    let input = engine.model().i8s(st).to_vec();
    let run = |engine: &mut Engine| -> Result<f64> {
        let t = std::time::Instant::now();
        engine.set_input(&input)?;
        engine.run();
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    for _ in 0..a.warmup {
        run(&mut engine)?;
    }
    let ms = (0..a.iterations.max(1))
        .map(|_| run(&mut engine))
        .collect::<Result<Vec<f64>>>()?;
    let Some(stats) = resq_io::timing::Stats::of(&ms) else {
        bail!("no timed iteration");
    };
    // Peak resident memory of the whole process (Linux), in MiB.
    let peak_mib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map(|kib| kib / 1024.0);
    let kernel = format!("{} ({})", engine.isa(), engine.kernel_name());
    let layers = if a.layers {
        let mut l = bench_layers(&mut engine, &input, ms.len())?;
        l.peak = engine.peak_macs_per_second().map(|p| p / 1e9);
        l.peak_all = engine.peak_macs_per_second_all_threads().map(|p| p / 1e9);
        l.threads = engine.threads();
        Some(l)
    } else {
        None
    };
    if a.json {
        let v = serde_json::json!({
            "model": file.display().to_string(),
            "inference_ms": stats,
            "iterations": ms.len(),
            "warmup": a.warmup,
            "threads": engine.threads(),
            "kernel": kernel,
            "isa": engine.isa().name(),
            "self_test": self_test,
            "peak_rss_mib": peak_mib,
            "file_mib": file_bytes as f64 / (1024.0 * 1024.0),
            "layers": layers.as_ref().map(|l| l.json()),
        });
        println!("{v}");
    } else {
        println!(
            "{}: {} iterations after {} warm-up",
            file.display(),
            ms.len(),
            a.warmup
        );
        println!(
            "  median {:.3} ms   mean {:.3} ms   min {:.3} ms   max {:.3} ms   p90 {:.3} ms",
            stats.median, stats.mean, stats.min, stats.max, stats.p90
        );
        println!(
            "  kernels {kernel}, {} thread(s), self-test passed",
            engine.threads()
        );
        if let Some(p) = peak_mib {
            println!(
                "  peak memory {p:.1} MiB (file {:.1} MiB)",
                file_bytes as f64 / (1024.0 * 1024.0)
            );
        }
        if let Some(l) = &layers {
            l.print();
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One layer's line of `resq bench --layers`.
struct LayerTime {
    /// Op kind and layer name, e.g. `conv layer1.0.conv1`.
    layer: String,
    /// Kernel, stride and output shape of a convolution (`3x3/1 [56, 56, 64]`); the output
    /// shape of other layers.
    shape: String,
    /// Multiply-accumulates of a convolution; 0 for other layers.
    macs: u64,
    /// Median time, ms.
    ms: f64,
}

/// Median time of each layer over `iters` runs, and multiply-accumulates of the convolutions.
struct LayerTimes {
    rows: Vec<LayerTime>,
    /// Measured peak of the kernel tier's multiply-accumulate instruction on one core, GMAC/s.
    peak: Option<f64>,
    /// The same on all threads at once, summed.
    peak_all: Option<f64>,
    threads: usize,
}

fn bench_layers(engine: &mut Engine, input: &[i8], iters: usize) -> Result<LayerTimes> {
    let n = engine.model().meta.layers.len();
    let mut times = vec![Vec::with_capacity(iters); n];
    for _ in 0..iters {
        engine.set_input(input)?;
        for (i, t) in times.iter_mut().enumerate() {
            let start = std::time::Instant::now();
            engine.run_layer(i);
            t.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let m = engine.model();
    let rows = times
        .into_iter()
        .enumerate()
        .map(|(i, mut t)| {
            t.sort_by(f64::total_cmp);
            let layer = &m.meta.layers[i];
            let macs = match layer.op {
                Op::Conv(c) => {
                    let out = m.tensor(c.output).shape;
                    let cin = m.tensor(c.input).shape[3] / c.groups as u32;
                    out.iter().map(|&d| d as u64).product::<u64>()
                        * (c.kernel[0] as u64 * c.kernel[1] as u64 * cin as u64)
                }
                _ => 0,
            };
            let shape = match layer.op {
                Op::Conv(c) => format!(
                    "{}x{}/{} {:?}",
                    c.kernel[0],
                    c.kernel[1],
                    c.stride[0],
                    &m.tensor(c.output).shape[1..]
                ),
                op => format!("{:?}", &m.tensor(op.output()).shape[1..]),
            };
            LayerTime {
                layer: format!("{} {}", layer.op.kind(), layer.name),
                shape,
                macs,
                ms: t[t.len() / 2],
            }
        })
        .collect();
    Ok(LayerTimes {
        rows,
        peak: None,
        peak_all: None,
        threads: 1,
    })
}

impl LayerTimes {
    fn conv_totals(&self) -> (u64, f64) {
        self.rows
            .iter()
            .filter(|r| r.macs > 0)
            .fold((0, 0.0), |(m, t), r| (m + r.macs, t + r.ms))
    }

    fn print(&self) {
        println!(
            "  layer                                      shape                       ms   GMAC/s"
        );
        for LayerTime {
            layer,
            shape,
            macs,
            ms,
        } in &self.rows
        {
            let gmacs = if *macs > 0 {
                format!("{:8.1}", *macs as f64 / ms / 1e6)
            } else {
                String::new()
            };
            println!("  {layer:42.42} {shape:24.24} {ms:7.3} {gmacs}");
        }
        let (macs, ms) = self.conv_totals();
        let total: f64 = self.rows.iter().map(|r| r.ms).sum();
        println!(
            "  convolutions: {:.2} GMAC in {ms:.2} ms = {:.1} GMAC/s ({:.0} % of the layer-by-layer total {total:.2} ms)",
            macs as f64 / 1e9,
            macs as f64 / ms / 1e6,
            100.0 * ms / total
        );
        if let (Some(peak), Some(all)) = (self.peak, self.peak_all) {
            println!(
                "  peak of the kernels' multiply-accumulate instruction here: {peak:.1} GMAC/s on one core, \
                 {all:.1} GMAC/s on {} thread(s) at once; convolutions reach {:.0} % of the latter",
                self.threads,
                100.0 * macs as f64 / ms / 1e6 / all
            );
        }
    }

    fn json(&self) -> serde_json::Value {
        let (macs, ms) = self.conv_totals();
        serde_json::json!({
            "conv_gmac": macs as f64 / 1e9,
            "conv_ms": ms,
            "conv_gmac_per_s": macs as f64 / ms / 1e6,
            "peak_gmac_per_s": self.peak,
            "peak_all_threads_gmac_per_s": self.peak_all,
            "per_layer": self.rows.iter().map(|r| serde_json::json!({
                "layer": r.layer, "shape": r.shape, "macs": r.macs, "ms": r.ms,
            })).collect::<Vec<_>>(),
        })
    }
}

fn cmd_synth(a: SynthArgs) -> Result<()> {
    let bytes = synth_resnet(&SynthSpec {
        arch: a.arch,
        size: a.size,
        classes: a.classes,
        seed: a.seed,
    })?;
    write_atomic(&a.output, &bytes)?;
    println!("wrote {} ({} bytes)", a.output.display(), bytes.len());
    Ok(())
}

fn cmd_demo(output: &Path) -> Result<()> {
    let models = resq_host::demo::models_dir();
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    println!(
        "converting {} …",
        models.join("resnet8/model_float.onnx").display()
    );
    let results = resq_host::demo::run_demo(&models, output, &progress::Bars::new(true))?;
    println!(
        "wrote {}; classifying the photos in {} with the int8 engine:",
        output.display(),
        models.join("photos").display()
    );
    for r in results {
        let name = r
            .image
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!(
            "  {name:24} {:12} {:5.1} %  {:6.3} ms",
            r.label,
            100.0 * r.confidence,
            r.latency_ms
        );
    }
    Ok(())
}
