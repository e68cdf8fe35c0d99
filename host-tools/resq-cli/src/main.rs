//! `resq`: convert ONNX ResNets to int8 `.resq` files, inspect and evaluate them.
//!
//! A thin shell over `resq-host`: each subcommand parses its flags and calls one function.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use resq_engine::{AlignedBytes, Engine};
use resq_format::{Layout, Model, Op};
use resq_host::calibrate::Method;
use resq_host::convert::{convert, write_atomic, ConvertOptions};
use resq_host::eval::{evaluate, Reference};
use resq_host::images::labelled_dataset;
use resq_host::synth::{synth_resnet, Arch, SynthSpec};

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
    ///   resq convert resnet18.onnx --calib photos/ --mean 123.7,116.3,103.5 --std 58.4,57.1,57.4 -o resnet18.resq
    ///   resq convert model_int8_qdq.onnx -o model.resq        (pre-quantized QDQ: keeps its scales)
    Convert(ConvertArgs),
    /// Show a .resq file: header, layers, sizes, quantization, provenance.
    ///
    /// Example:
    ///   resq inspect resnet18.resq
    Inspect {
        /// The model file.
        file: PathBuf,
    },
    /// Measure int8 top-1 on a labelled image set, optionally against tract's f32 answers.
    ///
    /// Examples:
    ///   resq eval model.resq --images val/                          (ImageFolder: val/<class>/<img>)
    ///   resq eval model.resq --images imgs/ --labels labels.csv --reference model.onnx --json
    Eval(EvalArgs),
    /// Write a torchvision-layout ResNet with seeded random weights as ONNX (for tests and benchmarks).
    ///
    /// Example:
    ///   resq synth --arch resnet50 --size 224 --classes 1000 --seed 1 -o resnet50.onnx
    Synth(SynthArgs),
    /// Convert the shipped ResNet-8 and classify the shipped photos with the firmware engine.
    Demo {
        /// Where to write the converted model.
        #[arg(short, long, default_value = "target/resnet8.resq")]
        output: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LayoutArg {
    Nchw,
    Nhwc,
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
    model: PathBuf,
    /// Folder of calibration images (PNG / JPEG, searched recursively; 100–500 representative
    /// images). Leave out for a pre-quantized (QDQ) model to keep its own scales.
    #[arg(long)]
    calib: Option<PathBuf>,
    /// Per-channel mean in pixel units 0..255: x = (pixel − mean) / std. One value or R,G,B.
    #[arg(long, default_value = "0,0,0")]
    mean: String,
    /// Per-channel standard deviation in pixel units. One value or R,G,B.
    #[arg(long, default_value = "1,1,1")]
    std: String,
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
    /// Output file.
    #[arg(short, long)]
    output: PathBuf,
}

#[derive(Args)]
struct EvalArgs {
    /// The .resq model.
    file: PathBuf,
    /// Image folder (ImageFolder layout, or the root the CSV's paths are relative to).
    #[arg(long)]
    images: PathBuf,
    /// CSV with a header and columns `file` and `label` (class index).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// The float ONNX model to compare with (run by tract).
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Print one JSON object.
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
    let result = match cli.command {
        Command::Convert(a) => cmd_convert(a),
        Command::Inspect { file } => cmd_inspect(&file),
        Command::Eval(a) => cmd_eval(a),
        Command::Synth(a) => cmd_synth(a),
        Command::Demo { output } => cmd_demo(&output),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn triple(flag: &str, s: &str) -> Result<[f32; 3]> {
    let v: Vec<f32> = s
        .split(',')
        .map(|x| x.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow!("--{flag} `{s}`: expected numbers like 123.7,116.3,103.5"))?;
    match v.as_slice() {
        [a] => Ok([*a; 3]),
        [a, b, c] => Ok([*a, *b, *c]),
        _ => bail!("--{flag} `{s}`: give one value or three (R,G,B)"),
    }
}

fn cmd_convert(a: ConvertArgs) -> Result<()> {
    let opts = ConvertOptions {
        model: a.model,
        calib: a.calib,
        mean: triple("mean", &a.mean)?,
        std: triple("std", &a.std)?,
        layout: match a.layout {
            LayoutArg::Nchw => Layout::Nchw,
            LayoutArg::Nhwc => Layout::Nhwc,
        },
        bgr: a.bgr,
        method: match a.method {
            MethodArg::Minmax => Method::MinMax,
            MethodArg::Percentile => {
                if !(50.0..=100.0).contains(&a.percentile) {
                    bail!(
                        "--percentile {} must be between 50 and 100 (e.g. 99.99)",
                        a.percentile
                    );
                }
                Method::Percentile(a.percentile)
            }
            MethodArg::Entropy => Method::Entropy,
            MethodArg::Mse => Method::Mse,
        },
        labels: a.labels,
        progress: true,
    };
    let c = convert(&opts)?;
    write_atomic(&a.output, &c.bytes)?;
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
    Ok(())
}

fn load(file: &Path) -> Result<AlignedBytes> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok(AlignedBytes::new(&bytes))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn cmd_inspect(file: &Path) -> Result<()> {
    let bytes = load(file)?;
    let m = Model::parse(bytes.as_bytes()).map_err(|e| anyhow!("{}: {e}", file.display()))?;
    let h = m.header;
    let meta = &m.meta;
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
        println!(
            "   {idx:3} {:9} {:40} -> {:?} scale {:.5} zp {:4}  {detail}",
            l.op.kind(),
            l.name,
            &out.shape[1..],
            out.scale,
            out.zero_point
        );
    }
    Ok(())
}

fn cmd_eval(a: EvalArgs) -> Result<()> {
    let bytes = load(&a.file)?;
    let mut engine =
        Engine::from_bytes(bytes.as_bytes()).map_err(|e| anyhow!("{}: {e}", a.file.display()))?;
    let samples = labelled_dataset(&a.images, a.labels.as_deref())?;
    let reference = match &a.reference {
        Some(p) => Some(Reference::load(p, engine.model().meta.input.layout)?),
        None => None,
    };
    let r = evaluate(&mut engine, &samples, reference.as_ref())?;
    if a.json {
        let v = serde_json::json!({
            "images": r.images,
            "top1_int8": r.top1_int8,
            "top1_f32": r.top1_f32,
            "agreement": r.agreement.map(|x| x as f64 / r.images as f64),
            "cosine": r.cosine,
        });
        println!("{v}");
    } else {
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
    let results = resq_host::demo::run_demo(&models, output, true)?;
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
