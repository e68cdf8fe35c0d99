//! The `resq` command line as a user runs it.

use std::path::Path;
use std::process::{Command, Output};

fn resq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_resq"))
        .args(args)
        .output()
        .expect("run resq")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn demo_calls_chelsea_a_cat() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("resnet8.resq");
    let o = resq(&["demo", "-o", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let line = text
        .lines()
        .find(|l| l.contains("chelsea.png"))
        .expect("chelsea line");
    assert!(line.contains(" cat "), "{line}");
    assert!(
        line.contains('%') && line.contains("ms"),
        "label, confidence and latency: {line}"
    );
    assert!(out.is_file());
}

#[test]
fn convert_inspect_eval_as_a_user_would() {
    let dir = tempfile::tempdir().unwrap();
    let calib = resq_e2e::ic01_subset(40);
    let model = resq_e2e::resnet8("model_float.onnx");
    let out = dir.path().join("r8.resq");
    let labels = resq_e2e::models().join("resnet8/labels.txt");
    let o = resq(&[
        "convert",
        s(&model),
        "--calib",
        s(calib.path()),
        "--mean",
        "0,0,0",
        "--std",
        "1,1,1",
        "--method",
        "percentile",
        "--labels",
        s(&labels),
        "-o",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("calibrated on 40 images"),
        "{}",
        stdout(&o)
    );

    let o = resq(&["inspect", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for want in [
        "format v2",
        "11 layers",
        "conv+add",
        "percentile 99.99 on 40 images",
        "model_float.onnx",
        "airplane, automobile",
    ] {
        assert!(text.contains(want), "inspect lacks `{want}`:\n{text}");
    }

    let (png, csv) = resq_e2e::ic01();
    let o = resq(&[
        "eval",
        s(&out),
        "--images",
        s(&png),
        "--labels",
        s(&csv),
        "--reference",
        s(&model),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("one JSON object");
    assert_eq!(v["images"], 200);
    assert_eq!(v["top1_f32"], 171);
    assert!(v["top1_int8"].as_u64().unwrap() >= 170, "{v}");
    assert!(v["agreement"].as_f64().unwrap() >= 0.97, "{v}");
    assert!(v["cosine"].as_f64().unwrap() >= 0.99, "{v}");
}

#[test]
fn eval_reads_an_image_folder_without_a_csv() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r8.resq");
    assert!(resq(&["demo", "-o", s(&out)]).status.success());
    // ImageFolder: class 3 ("cat") holds chelsea.
    let images = dir.path().join("images");
    for class in 0..4 {
        std::fs::create_dir_all(images.join(format!("c{class}"))).unwrap();
    }
    std::fs::copy(
        resq_e2e::models().join("photos/chelsea.png"),
        images.join("c3/chelsea.png"),
    )
    .unwrap();
    let o = resq(&["eval", s(&out), "--images", s(&images), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["images"], 1);
    assert_eq!(v["top1_int8"], 1, "chelsea is class 3, cat");
}

#[test]
fn bad_flags_say_what_to_change_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.resq");
    let model = resq_e2e::resnet8("model_float.onnx");
    let photos = resq_e2e::models().join("photos");
    let o = resq(&[
        "convert",
        s(&model),
        "--calib",
        s(&photos),
        "--mean",
        "1,2",
        "-o",
        s(&out),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--mean"), "{}", stderr(&o));
    assert!(!out.exists(), "no output file on error");

    let o = resq(&[
        "convert",
        s(&model),
        "--calib",
        s(dir.path()),
        "-o",
        s(&out),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no PNG or JPEG images"),
        "{}",
        stderr(&o)
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "no temporary or partial files left"
    );

    let labels = dir.path().join("labels.txt");
    std::fs::write(&labels, "one\ntwo\n").unwrap();
    let o = resq(&[
        "convert",
        s(&model),
        "--calib",
        s(&photos),
        "--labels",
        s(&labels),
        "-o",
        s(&out),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("2 labels but the model has 10 classes"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_damaged_file_is_refused_by_inspect_and_eval() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r8.resq");
    assert!(resq(&["demo", "-o", s(&out)]).status.success());
    let mut bytes = std::fs::read(&out).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0xff;
    std::fs::write(&out, &bytes).unwrap();
    let o = resq(&["inspect", s(&out)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("checksum mismatch"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("r8.resq"),
        "names the file: {}",
        stderr(&o)
    );
    let o = resq(&["eval", s(&out), "--images", s(dir.path())]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("checksum mismatch"), "{}", stderr(&o));
}

#[test]
fn synth_writes_an_onnx_that_converts() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("r18.onnx");
    let o = resq(&[
        "synth",
        "--arch",
        "resnet18",
        "--size",
        "64",
        "--classes",
        "10",
        "--seed",
        "3",
        "-o",
        s(&onnx),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.path().join("r18.resq");
    let photos = resq_e2e::models().join("photos");
    let o = resq(&[
        "convert",
        s(&onnx),
        "--calib",
        s(&photos),
        "--mean",
        "123.7,116.3,103.5",
        "--std",
        "58.4,57.1,57.4",
        "-o",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = resq(&["synth", "--arch", "resnet19", "-o", s(&onnx)]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("resnet18"),
        "lists the valid names: {}",
        stderr(&o)
    );
}

#[test]
fn keep_float_alias_keeps_a_layer_at_int16_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let calib = resq_e2e::ic01_subset(20);
    let model = resq_e2e::resnet8("model_float.onnx");
    let out = dir.path().join("r8.resq");
    let o = resq(&[
        "convert",
        s(&model),
        "--calib",
        s(calib.path()),
        "--keep-float",
        "activation.low",
        "-o",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("int16 outputs: activation.low"),
        "{}",
        stdout(&o)
    );
    let o = resq(&["inspect", s(&out)]);
    let text = stdout(&o);
    let stem = text
        .lines()
        .find(|l| l.contains("activation.low"))
        .expect("stem line");
    assert!(
        stem.contains("int16") && stem.contains("int16 clamp [0, 32767]"),
        "{stem}"
    );

    // A name that is not a layer: refused, the layers listed, nothing written.
    let bad = dir.path().join("bad.resq");
    let o = resq(&[
        "convert",
        s(&model),
        "--calib",
        s(calib.path()),
        "--keep-int16",
        "nope",
        "-o",
        s(&bad),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no layer `nope`") && stderr(&o).contains("activation_6.low"));
    assert!(!bad.exists());
}
