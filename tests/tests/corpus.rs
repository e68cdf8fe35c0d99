//! The conformance corpus (`tests/corpus`, made by `tests/corpus/generate.py`): ONNX ResNets
//! written by real exporters (torch.onnx, timm, tf2onnx, onnxruntime's quantizer, onnxsim,
//! onnxslim, onnxconverter-common), pathological weights and broken files.
//!
//! Every model is converted and run on the 200 ic01 images; its logits are compared with
//! onnxruntime's f32 logits and with onnxruntime's own int8 (`tests/corpus/expected`).
//! - float models: resq's SQNR must be at least onnxruntime int8's SQNR − 1 dB;
//! - pre-quantized models (converted without calibration): resq's top-1 agrees with onnxruntime
//!   running the same file on ≥ 99 % of the images and its top-1 hits are within 1 of it;
//! - error models: conversion fails and the error names the bad initializer.
//!
//! All models are checked; the failures are listed together at the end. A markdown table is
//! written to `target/corpus-table.md`. `RESQ_CORPUS_ONLY=substr` limits the run to the models
//! whose name contains `substr`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use resq_e2e::{ic01, ic01_subset, photo_folder};
use resq_engine::{AlignedBytes, Engine};
use resq_format::Layout;
use resq_host::convert::{convert, ConvertOptions};
use resq_host::eval::{argmax, int8_logits, preprocess_of};
use serde_json::Value;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// One manifest entry (the fields the harness uses).
struct Entry {
    name: String,
    file: PathBuf,
    exporter: String,
    opset: i64,
    ops: Vec<String>,
    layout: Layout,
    bgr: bool,
    mean: [f32; 3],
    std: [f32; 3],
    classes: usize,
    kind: String,
    expect_error: Option<String>,
    f32_logits: Option<PathBuf>,
    ort_int8_logits: Option<PathBuf>,
    ort_top1_f32: Option<usize>,
    ort_top1_int8: Option<usize>,
}

fn triple(v: &Value) -> [f32; 3] {
    let a = v.as_array().expect("array of 3");
    [0, 1, 2].map(|i| a[i].as_f64().expect("number") as f32)
}

fn load_manifest(path: &Path) -> Vec<Entry> {
    let root = path.parent().unwrap();
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let items: Vec<Value> = serde_json::from_str(&text).expect("manifest.json");
    let only = std::env::var("RESQ_CORPUS_ONLY").ok();
    items
        .iter()
        .filter(|v| {
            only.as_deref()
                .is_none_or(|s| v["name"].as_str().unwrap_or("").contains(s))
        })
        .map(|v| {
            let exp = &v["expected"];
            let file_of = |k: &str| exp[k].as_str().map(|f| root.join(f));
            let count = |k: &str| exp[k].as_u64().map(|n| n as usize);
            Entry {
                name: v["name"].as_str().expect("name").to_string(),
                file: root.join(v["file"].as_str().expect("file")),
                exporter: v["exporter"].as_str().unwrap_or("").to_string(),
                opset: v["opset"].as_i64().unwrap_or(0),
                ops: v["ops"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|o| o.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                layout: match v["layout"].as_str() {
                    Some("nhwc") => Layout::Nhwc,
                    _ => Layout::Nchw,
                },
                bgr: v["bgr"].as_bool().unwrap_or(false),
                mean: triple(&v["mean"]),
                std: triple(&v["std"]),
                classes: v["classes"].as_u64().unwrap_or(10) as usize,
                kind: v["kind"].as_str().unwrap_or("float").to_string(),
                expect_error: v["expect_error"].as_str().map(str::to_string),
                f32_logits: file_of("f32_logits"),
                ort_int8_logits: file_of("ort_int8_logits"),
                ort_top1_f32: count("ort_top1_f32"),
                ort_top1_int8: count("ort_top1_int8"),
            }
        })
        .collect()
}

fn options(e: &Entry, calib: Option<&Path>) -> ConvertOptions {
    ConvertOptions {
        calib: calib.map(Path::to_path_buf),
        mean: e.mean,
        std: e.std,
        layout: e.layout,
        bgr: e.bgr,
        ..ConvertOptions::new(e.file.clone())
    }
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// 10·log10(Σref² / Σ(ref − x)²) over all values, in dB.
fn sqnr(reference: &[f32], x: &[f32]) -> f64 {
    assert_eq!(reference.len(), x.len());
    let (mut s, mut n) = (0.0f64, 0.0f64);
    for (&r, &v) in reference.iter().zip(x) {
        s += (r as f64).powi(2);
        n += (r as f64 - v as f64).powi(2);
    }
    if n == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (s / n).log10()
}

fn argmaxes(logits: &[f32], classes: usize) -> Vec<usize> {
    logits.chunks_exact(classes).map(argmax).collect()
}

/// The ic01 images (path, label) in labels.csv order: the order of the reference outputs.
fn images() -> Vec<(PathBuf, usize)> {
    let (png, csv) = ic01();
    let text = std::fs::read_to_string(&csv).expect("ic01 labels.csv (is ../shared/assets there?)");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (png.join(f[1]), f[2].parse().expect("label"))
        })
        .collect()
}

#[derive(Default)]
struct Row {
    resq_sqnr: Option<f64>,
    ort_sqnr: Option<f64>,
    resq_top1: Option<usize>,
    agreement: Option<usize>,
    status: String,
}

/// Converts and runs one entry; returns its figures and the reasons it fails (if any).
fn check(e: &Entry, calib: &Path, imgs: &[(PathBuf, usize)]) -> (Row, Vec<String>) {
    let mut row = Row::default();
    let mut why = Vec::new();
    let calib = match e.kind.as_str() {
        "prequantized" => None,
        _ => Some(calib),
    };
    let converted = convert(&options(e, calib));
    if e.kind == "error" {
        let want = e.expect_error.as_deref().unwrap_or("");
        match converted {
            Ok(_) => why.push(format!("converted, but must fail naming `{want}`")),
            Err(err) => {
                let msg = format!("{err:#}");
                if !msg.contains(want) {
                    why.push(format!("error does not name `{want}`: {msg}"));
                }
            }
        }
        row.status = if why.is_empty() {
            "fails as expected"
        } else {
            "FAIL"
        }
        .into();
        return (row, why);
    }
    let converted = match converted {
        Ok(c) => c,
        Err(err) => {
            let msg = format!("{err:#}");
            let short: String = msg.chars().take(400).collect();
            why.push(format!("convert failed: {short}"));
            row.status = "convert failed".into();
            return (row, why);
        }
    };
    let bytes = AlignedBytes::new(&converted.bytes);
    let mut engine = match Engine::from_bytes(bytes.as_bytes()) {
        Ok(engine) => engine,
        Err(err) => {
            why.push(format!("engine refuses the file: {err:?}"));
            row.status = "load failed".into();
            return (row, why);
        }
    };
    if !engine.self_test() {
        why.push("self-test failed".into());
    }
    if engine.model().classes() != e.classes {
        why.push(format!(
            "{} classes, manifest says {}",
            engine.model().classes(),
            e.classes
        ));
        row.status = "FAIL".into();
        return (row, why);
    }
    let pre = preprocess_of(&engine);
    let mut logits = Vec::with_capacity(imgs.len() * e.classes);
    for (path, _) in imgs {
        let pixels = pre.load_pixels(path).expect("image");
        engine.set_input_pixels(&pixels).expect("input");
        engine.run();
        logits.extend(int8_logits(&engine));
    }
    let labels: Vec<usize> = imgs.iter().map(|(_, l)| *l).collect();
    let ours = argmaxes(&logits, e.classes);
    let top1 = ours.iter().zip(&labels).filter(|(a, b)| a == b).count();
    row.resq_top1 = Some(top1);
    let f32_ref = e.f32_logits.as_deref().map(read_f32);
    let ort_int8 = e.ort_int8_logits.as_deref().map(read_f32);
    if let Some(r) = &f32_ref {
        row.resq_sqnr = Some(sqnr(r, &logits));
        if let Some(q) = &ort_int8 {
            row.ort_sqnr = Some(sqnr(r, q));
        }
    }
    if let Some(q) = &ort_int8 {
        let theirs = argmaxes(q, e.classes);
        row.agreement = Some(ours.iter().zip(&theirs).filter(|(a, b)| a == b).count());
    }
    match e.kind.as_str() {
        "float" => {
            if let (Some(ours), Some(theirs)) = (row.resq_sqnr, row.ort_sqnr) {
                if ours.is_nan() || ours < theirs - 1.0 {
                    why.push(format!(
                        "SQNR {ours:.2} dB < onnxruntime int8 {theirs:.2} dB − 1 dB"
                    ));
                }
            }
        }
        "prequantized" => {
            let n = imgs.len();
            if let Some(a) = row.agreement {
                if a * 100 < n * 99 {
                    why.push(format!(
                        "top-1 agreement with onnxruntime on this file {a}/{n} < 99 %"
                    ));
                }
            }
            if let Some(t) = e.ort_top1_int8 {
                if (top1 as i64 - t as i64).abs() > 1 {
                    why.push(format!("top-1 {top1} vs onnxruntime int8 {t}"));
                }
            }
        }
        other => why.push(format!("unknown kind `{other}`")),
    }
    row.status = if why.is_empty() { "ok" } else { "FAIL" }.into();
    (row, why)
}

fn fmt_db(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.1}"))
}

fn fmt_n(v: Option<usize>) -> String {
    v.map_or("–".into(), |v| v.to_string())
}

#[test]
fn conformance_corpus() {
    let manifest = corpus_dir().join("manifest.json");
    let entries = load_manifest(&manifest);
    assert!(
        !entries.is_empty() || std::env::var("RESQ_CORPUS_ONLY").is_ok(),
        "empty corpus"
    );
    let calib = ic01_subset(100);
    let imgs = images();
    assert_eq!(imgs.len(), 200);

    let mut table = String::from(
        "| model | exporter | opset | ops | resq SQNR dB | ORT int8 SQNR dB | resq top-1 | ORT f32 top-1 | ORT int8 top-1 | agreement | status |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut failures = Vec::new();
    for e in &entries {
        let t = std::time::Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| check(e, calib.path(), &imgs)));
        let (row, why) = match result {
            Ok(r) => r,
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                let row = Row {
                    status: "panicked".into(),
                    ..Row::default()
                };
                (row, vec![format!("panicked: {msg}")])
            }
        };
        eprintln!(
            "{:<34} {:>6.1}s {}{}",
            e.name,
            t.elapsed().as_secs_f64(),
            row.status,
            if why.is_empty() {
                String::new()
            } else {
                format!(": {}", why.join("; "))
            }
        );
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            e.name,
            e.exporter,
            e.opset,
            e.ops.join(" "),
            fmt_db(row.resq_sqnr),
            fmt_db(row.ort_sqnr),
            fmt_n(row.resq_top1),
            fmt_n(e.ort_top1_f32),
            fmt_n(e.ort_top1_int8),
            row.agreement
                .map_or("–".into(), |a| format!("{a}/{}", imgs.len())),
            row.status,
        ));
        for w in why {
            failures.push(format!("{}: {w}", e.name));
        }
    }
    let out = target_dir().join("corpus-table.md");
    let _ = std::fs::create_dir_all(target_dir());
    if let Err(err) = std::fs::write(&out, &table) {
        eprintln!("cannot write {}: {err}", out.display());
    }
    eprintln!("\n{table}\n(written to {})", out.display());
    assert!(
        failures.is_empty(),
        "{} of {} corpus models fail:\n{}",
        failures
            .iter()
            .map(|f| f.split(':').next().unwrap_or(""))
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        entries.len(),
        failures.join("\n")
    );
}

/// The full-size architectures (`python generate.py --full OUTDIR`, then
/// `RESQ_CORPUS_FULL=OUTDIR cargo test --release -p resq-e2e --test corpus -- --ignored`):
/// each converts (calibrated on the CC0 photos) and passes its self-test.
#[test]
#[ignore]
fn full_size_corpus() {
    let dir = PathBuf::from(
        std::env::var_os("RESQ_CORPUS_FULL")
            .expect("set RESQ_CORPUS_FULL to generate.py --full's OUTDIR"),
    );
    let entries = load_manifest(&dir.join("manifest.json"));
    let photos = photo_folder();
    let mut failures = Vec::new();
    for e in &entries {
        let t = std::time::Instant::now();
        let calib = (e.kind != "prequantized").then_some(photos.path());
        let result = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
            let c =
                convert(&options(e, calib)).map_err(|err| format!("convert failed: {err:#}"))?;
            let bytes = AlignedBytes::new(&c.bytes);
            let mut engine =
                Engine::from_bytes(bytes.as_bytes()).map_err(|err| format!("load: {err:?}"))?;
            if !engine.self_test() {
                return Err("self-test failed".into());
            }
            if engine.model().classes() != e.classes {
                return Err(format!("{} classes", engine.model().classes()));
            }
            Ok(())
        }));
        let status = match result {
            Ok(Ok(())) => "ok".to_string(),
            Ok(Err(msg)) => msg,
            Err(_) => "panicked".to_string(),
        };
        eprintln!(
            "{:<34} {:>6.1}s {status}",
            e.name,
            t.elapsed().as_secs_f64()
        );
        if status != "ok" {
            failures.push(format!("{}: {status}", e.name));
        }
    }
    assert!(
        failures.is_empty(),
        "full-size corpus failures:\n{}",
        failures.join("\n")
    );
}
