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

/// stderr without the warning about calibrating on few images (the six shipped photos).
fn other_warnings(o: &Output) -> String {
    stderr(o)
        .lines()
        .filter(|l| !l.contains("warning: calibrating on"))
        .collect::<Vec<_>>()
        .join("\n")
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
        "format v3",
        // No recipe given: the default, stored and shown.
        "preprocess: resize shorter side to 32, centre crop 32×32, RGB, mean 0,0,0, std 1,1,1",
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
        "--ground-truth",
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
    // ImageFolder named by the model's labels: chelsea is in `cat` (class 3).
    let images = dir.path().join("images");
    for class in ["airplane", "automobile", "bird", "cat"] {
        std::fs::create_dir_all(images.join(class)).unwrap();
    }
    std::fs::copy(
        resq_e2e::models().join("photos/chelsea.png"),
        images.join("cat/chelsea.png"),
    )
    .unwrap();
    let o = resq(&["eval", s(&out), "--images", s(&images), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["images"], 1);
    assert_eq!(v["top1_int8"], 1, "chelsea is class 3, cat");
}

/// An ImageFolder with chelsea (a cat) in `cat_folder` and the shipped photo of a ship's
/// neighbour classes left empty.
fn folder_with_chelsea(root: &Path, folders: &[&str], cat_folder: &str) -> std::path::PathBuf {
    let images = root.join("images");
    for f in folders {
        std::fs::create_dir_all(images.join(f)).unwrap();
    }
    std::fs::copy(
        resq_e2e::models().join("photos/chelsea.png"),
        images.join(cat_folder).join("chelsea.png"),
    )
    .unwrap();
    images
}

#[test]
fn eval_matches_class_folders_to_the_models_labels_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r8.resq");
    assert!(resq(&["demo", "-o", s(&out)]).status.success());
    // Three of ten classes, one spelled in capitals: sorted order would call `Cat` class 0.
    let images = folder_with_chelsea(dir.path(), &["Cat", "dog", "ship"], "Cat");
    let o = resq(&[
        "eval",
        s(&out),
        "--images",
        s(&images),
        "--json",
        "--per-image",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("note:"), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["top1_int8"], 1, "{v}");
    let row = &v["per_image"][0];
    assert_eq!(row["label"], 3, "{v}");
    assert_eq!(row["class"], 3, "{v}");
    assert_eq!(row["predicted"], "cat", "{v}");
    assert!(
        row["image"].as_str().unwrap().ends_with("chelsea.png"),
        "{v}"
    );
    // The text form: one line per image.
    let o = resq(&["eval", s(&out), "--images", s(&images), "--per-image"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("chelsea.png  cat -> cat"),
        "{}",
        stdout(&o)
    );

    // Numbered folders are that class.
    let dir = tempfile::tempdir().unwrap();
    let images = folder_with_chelsea(dir.path(), &["3", "5"], "3");
    let o = resq(&["eval", s(&out), "--images", s(&images), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["top1_int8"], 1, "{v}");

    // A folder that is no label: refused, with the labels.
    let dir = tempfile::tempdir().unwrap();
    let images = folder_with_chelsea(dir.path(), &["cat", "kitten"], "kitten");
    let o = resq(&["eval", s(&out), "--images", s(&images)]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("`kitten` matches none of the model's labels"),
        "{e}"
    );
    assert!(
        e.contains("airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck"),
        "{e}"
    );
}

#[test]
fn eval_without_labels_in_the_model_numbers_folders_in_sorted_order_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r8.resq");
    let o = resq(&[
        "convert",
        s(&resq_e2e::resnet8("model_float.onnx")),
        "--calib",
        s(&resq_e2e::models().join("photos")),
        "--mean",
        "0",
        "--std",
        "1",
        "-o",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let images = folder_with_chelsea(dir.path(), &["a", "b"], "b");
    let o = resq(&["eval", s(&out), "--images", s(&images), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("note:") && e.contains("no class labels") && e.contains("a = 0, b = 1"),
        "{e}"
    );
}

#[test]
fn eval_and_report_refuse_a_reference_with_another_input_size() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r8.resq");
    assert!(resq(&["demo", "-o", s(&out)]).status.success());
    let onnx = dir.path().join("r18-64.onnx");
    let o = resq(&[
        "synth",
        "--arch",
        "resnet18",
        "--size",
        "64",
        "--classes",
        "10",
        "-o",
        s(&onnx),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let images = folder_with_chelsea(dir.path(), &["cat"], "cat");
    let o = resq(&[
        "eval",
        s(&out),
        "--images",
        s(&images),
        "--reference",
        s(&onnx),
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("takes 64×64×3 inputs") && e.contains("converted for 32×32×3"),
        "{e}"
    );
    assert!(
        e.contains("model_float.onnx"),
        "names the file's source: {e}"
    );
    let o = resq(&[
        "report",
        s(&out),
        "--images",
        s(&images),
        "--reference",
        s(&onnx),
        "--json",
    ]);
    assert!(!o.status.success());
    let e2 = stderr(&o);
    assert!(
        e2.contains("takes 64×64×3 inputs") && e2.contains("converted for 32×32×3"),
        "{e2}"
    );
}

/// A synthetic ResNet-18 with a 64² input.
fn synth64(dir: &Path) -> std::path::PathBuf {
    let onnx = dir.join("r18.onnx");
    let o = resq(&[
        "synth",
        "--arch",
        "resnet18",
        "--size",
        "64",
        "--classes",
        "10",
        "--seed",
        "1",
        "-o",
        s(&onnx),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    onnx
}

const TORCHVISION: [&str; 4] = [
    "--mean",
    "123.675,116.28,103.53",
    "--std",
    "58.395,57.12,57.375",
];

#[test]
fn convert_stores_the_resize_recipe_and_inspect_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = synth64(dir.path());
    let photos = resq_e2e::models().join("photos");
    let out = dir.path().join("m.resq");
    for (flags, want) in [
        (
            &["--resize", "73", "--crop", "64"][..],
            "resize shorter side to 73, centre crop 64×64",
        ),
        // floor(64 / 0.875) = 73, as timm.
        (
            &["--crop-ratio", "0.875"][..],
            "resize shorter side to 73, centre crop 64×64",
        ),
        (
            &["--resize-mode", "squash"][..],
            "squash to 64×64 (aspect ratio not kept), no crop",
        ),
        (
            &[
                "--resize-mode",
                "squash",
                "--resize",
                "80",
                "--crop",
                "64x64",
            ][..],
            "squash to 80×80 (aspect ratio not kept), centre crop 64×64",
        ),
    ] {
        let mut args = vec!["convert", s(&onnx), "--calib", s(&photos), "-o", s(&out)];
        args.extend(TORCHVISION);
        args.extend(flags);
        let o = resq(&args);
        assert!(o.status.success(), "{flags:?}: {}", stderr(&o));
        let line =
            format!("preprocess: {want}, RGB, mean 123.675,116.28,103.53, std 58.395,57.12,57.375");
        assert!(stdout(&o).contains(&line), "{flags:?}: {}", stdout(&o));
        assert!(other_warnings(&o).is_empty(), "no warnings: {}", stderr(&o));
        let o = resq(&["inspect", s(&out)]);
        assert!(
            stdout(&o).contains(&format!("  {line}")),
            "{flags:?}: {}",
            stdout(&o)
        );
    }
}

#[test]
fn bad_resize_flags_name_the_flag_and_the_input_size() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = synth64(dir.path());
    let photos = resq_e2e::models().join("photos");
    let out = dir.path().join("m.resq");
    for (flags, want) in [
        (
            &["--crop", "60"][..],
            &["--crop 60", "64×64", "--crop 64"][..],
        ),
        (&["--crop", "sixty"][..], &["--crop `sixty`", "224x224"][..]),
        (
            &["--resize", "32"][..],
            &["--resize 32", "smaller than the model input 64×64"][..],
        ),
        (&["--resize", "0"][..], &["--resize 0"][..]),
        (
            &["--crop-ratio", "1.2"][..],
            &["--crop-ratio 1.2", "at most 1"][..],
        ),
        (
            &["--resize", "80", "--crop-ratio", "0.8"][..],
            &["--resize", "--crop-ratio"][..],
        ),
        (
            &["--resize-mode", "stretch"][..],
            &["stretch", "shorter", "squash"][..],
        ),
    ] {
        let mut args = vec!["convert", s(&onnx), "--calib", s(&photos), "-o", s(&out)];
        args.extend(TORCHVISION);
        args.extend(flags);
        let o = resq(&args);
        assert!(!o.status.success(), "{flags:?} was accepted");
        for w in want {
            assert!(
                stderr(&o).contains(w),
                "{flags:?}: no `{w}` in {}",
                stderr(&o)
            );
        }
        assert!(!out.exists(), "{flags:?}: nothing written");
    }
}

#[test]
fn convert_warns_about_mean_and_std_in_the_wrong_units_or_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = synth64(dir.path());
    let photos = resq_e2e::models().join("photos");
    let out = dir.path().join("m.resq");
    let convert = |extra: &[&str]| {
        let mut args = vec!["convert", s(&onnx), "--calib", s(&photos), "-o", s(&out)];
        args.extend(extra);
        let o = resq(&args);
        assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
        other_warnings(&o)
    };
    let e = convert(&[]);
    assert!(
        e.contains("warning: no --mean / --std given") && e.contains("raw 0..255 pixels"),
        "{e}"
    );
    assert!(e.contains("--mean 0 --std 1 to silence"), "{e}");
    let e = convert(&["--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225"]);
    assert!(
        e.contains(
            "resq's mean/std are in pixel units 0..255; for torchvision use \
             --mean 123.675,116.28,103.53 --std 58.395,57.12,57.375"
        ),
        "{e}"
    );
    assert!(convert(&["--mean", "0", "--std", "1"]).is_empty());
    assert!(convert(&TORCHVISION).is_empty());
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
