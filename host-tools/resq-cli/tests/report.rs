//! `resq report` as a user runs it.

use std::path::Path;
use std::process::{Command, Output};

fn resq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_resq"))
        .args(args)
        .output()
        .expect("run resq")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// ResNet-8 converted by the CLI, calibrated on 20 ic01 images.
fn resnet8(dir: &Path) -> std::path::PathBuf {
    let calib = resq_e2e::ic01_subset(20);
    let model = resq_e2e::resnet8("model_float.onnx");
    let out = dir.join("r8.resq");
    let o = resq(&[
        "convert",
        s(&model),
        "--calib",
        s(calib.path()),
        "-o",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

#[test]
fn report_writes_the_page_and_prints_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = resnet8(dir.path());
    let (png, csv) = resq_e2e::ic01();
    let model = resq_e2e::resnet8("model_float.onnx");
    let page = dir.path().join("report.html");
    let o = resq(&[
        "report",
        s(&file),
        "--images",
        s(&png),
        "--ground-truth",
        s(&csv),
        "--reference",
        s(&model),
        "--max-images",
        "3",
        "--eval-images",
        "50",
        "-o",
        s(&page),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(v["layers"].as_array().unwrap().len(), 11);
    assert_eq!(v["stats_images"], 3);
    assert_eq!(v["summary"]["images"], 50);
    let html = std::fs::read_to_string(&page).expect("page written");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<section class=\"layer\"").count(), 11);
}

#[test]
fn report_errors_name_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let file = resnet8(dir.path());
    let (png, _) = resq_e2e::ic01();
    let model = resq_e2e::resnet8("model_float.onnx");
    let base = ["report", s(&file), "--reference", s(&model)];

    let o = resq(&[&base[..], &["--images", s(&png)]].concat());
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("-o report.html") && stderr(&o).contains("--json"),
        "{}",
        stderr(&o)
    );

    let missing = dir.path().join("no-such-folder");
    let o = resq(&[&base[..], &["--images", s(&missing), "--json"]].concat());
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no-such-folder"), "{}", stderr(&o));

    let o = resq(
        &[
            &base[..],
            &["--images", s(&png), "--json", "--max-images", "0"],
        ]
        .concat(),
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--max-images"), "{}", stderr(&o));

    let o = resq(&[
        "report",
        s(&model),
        "--reference",
        s(&model),
        "--images",
        s(&png),
        "--json",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("model_float.onnx"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}
