//! The command-line contract of `resq` as a person (or a hostile input) meets it: exit
//! statuses, a closed pipe, endless and oversized files, damaged calibration images, flags
//! that look like numbers, and `--json` on every command that reports.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

fn resq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_resq"))
        .args(args)
        .output()
        .expect("run resq")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The shipped ResNet-8 converted once for all tests here.
fn model() -> &'static Path {
    static MODEL: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = MODEL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("resnet8.resq");
        let o = resq(&["demo", "-o", s(&out)]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        (dir, out)
    });
    path
}

const BAD_INPUT: i32 = 3;
const SELF_TEST: i32 = 4;

/// Runs `args` with stdout a pipe whose reader has already gone (as `| head` after its lines,
/// but deterministic: the very first write meets the closed pipe).
fn with_closed_pipe(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_resq"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap(), err)
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // Before: `failed printing to stdout: Broken pipe`, a panic, exit 101.
    let m = s(model());
    for args in [
        vec!["inspect", "-m", m],
        vec!["inspect", "-m", m, "--json"],
        vec!["completions", "bash"],
    ] {
        let (status, err) = with_closed_pipe(&args);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            status.success() || status.signal() == Some(libc_sigpipe()),
            "{args:?}: {status:?} {err}"
        );
    }
    let (png, csv) = resq_e2e::ic01();
    let onnx = resq_e2e::resnet8("model_float.onnx");
    let (status, err) = with_closed_pipe(&[
        "report",
        "-m",
        m,
        "--images",
        s(&png),
        "--ground-truth",
        s(&csv),
        "--reference",
        s(&onnx),
        "--max-images",
        "1",
        "--eval-images",
        "4",
        "--json",
    ]);
    assert!(!err.contains("panicked"), "{err}");
    assert!(status.success() || status.signal() == Some(libc_sigpipe()));
}

fn libc_sigpipe() -> i32 {
    13
}

#[test]
fn endless_and_oversized_files_are_refused_without_reading_them() {
    // Before: /dev/zero was read until memory ran out; a sparse 3 GB file took 43 s and 6.3 GB.
    let dir = tempfile::tempdir().unwrap();
    let sparse = dir.path().join("sparse.resq");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    let (png, _) = resq_e2e::ic01();
    for file in [Path::new("/dev/zero"), sparse.as_path()] {
        for args in [
            vec!["inspect", "-m", s(file)],
            vec!["eval", "-m", s(file), "--images", s(&png)],
            vec!["bench", "-m", s(file)],
        ] {
            let o = resq(&args);
            assert_eq!(o.status.code(), Some(BAD_INPUT), "{args:?}");
            assert!(
                text(&o.stderr).contains("bad magic"),
                "{args:?}: {}",
                text(&o.stderr)
            );
        }
    }
    // An ONNX "file" that is a device, and one larger than protobuf can hold.
    let o = resq(&[
        "convert",
        "-m",
        "/dev/zero",
        "-o",
        s(&dir.path().join("x.resq")),
    ]);
    assert_eq!(o.status.code(), Some(BAD_INPUT));
    assert!(
        text(&o.stderr).contains("not a regular file"),
        "{}",
        text(&o.stderr)
    );
    let o = resq(&[
        "convert",
        "-m",
        s(&sparse),
        "-o",
        s(&dir.path().join("x.resq")),
    ]);
    assert!(
        text(&o.stderr).contains("over resq's 2048 MiB limit"),
        "{}",
        text(&o.stderr)
    );
    assert!(!dir.path().join("x.resq").exists());
}

#[test]
fn exit_statuses_tell_usage_bad_input_and_self_test_apart() {
    assert_eq!(resq(&["inspect"]).status.code(), Some(2), "usage");
    assert_eq!(resq(&["frobnicate"]).status.code(), Some(2), "usage");
    let o = resq(&["inspect", "-m", "/nonexistent/m.resq"]);
    assert_eq!(o.status.code(), Some(BAD_INPUT));
    assert!(text(&o.stderr).contains("cannot open model /nonexistent/m.resq: no such file"));

    // A file whose stored self-test answer no longer matches what it computes.
    let mut bytes = std::fs::read(model()).unwrap();
    let expected = {
        let aligned = resq_engine::AlignedBytes::new(&bytes);
        let expected = resq_format::Model::parse(aligned.as_bytes())
            .unwrap()
            .meta
            .self_test
            .expected;
        expected
    };
    let data_offset = u64::from_le_bytes(bytes[40..48].try_into().unwrap()) as usize;
    let flipped = [bytes[data_offset + expected.offset as usize] ^ 0x40];
    resq_format::write::patch_data(
        &mut bytes,
        resq_format::DataRef {
            offset: expected.offset,
            len: 1,
        },
        &flipped,
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.resq");
    std::fs::write(&bad, &bytes).unwrap();
    let o = resq(&["bench", "-m", s(&bad), "--iterations", "1"]);
    assert_eq!(o.status.code(), Some(SELF_TEST), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("self-test failed"));
}

#[test]
fn the_model_is_named_with_dash_m_everywhere_and_positionally_as_before() {
    let m = s(model());
    let a = resq(&["inspect", "-m", m]);
    let b = resq(&["inspect", "--model", m]);
    let c = resq(&["inspect", m]);
    assert!(a.status.success() && b.status.success() && c.status.success());
    assert_eq!(a.stdout, c.stdout);
    assert_eq!(b.stdout, c.stdout);
}

#[test]
fn labels_name_classes_and_the_ground_truth_has_its_own_flag() {
    let (png, csv) = resq_e2e::ic01();
    let o = resq(&[
        "eval",
        "-m",
        s(model()),
        "--images",
        s(&png),
        "--labels",
        s(&csv),
    ]);
    assert_eq!(o.status.code(), Some(BAD_INPUT));
    assert!(
        text(&o.stderr).contains("--ground-truth"),
        "{}",
        text(&o.stderr)
    );

    // A CSV with quoted headers and fields, as spreadsheets and pandas write it.
    // Before: `the header has no 'file' column (found: "file", "label")`.
    let dir = tempfile::tempdir().unwrap();
    let quoted = dir.path().join("truth.csv");
    let plain = std::fs::read_to_string(&csv).unwrap();
    let mut lines = plain.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(|c| format!("\"{}\"", c.trim()))
        .collect();
    let mut out = vec![header.join(",")];
    out.extend(lines.take(20).map(|l| {
        l.split(',')
            .map(|c| format!("\"{}\"", c.trim()))
            .collect::<Vec<_>>()
            .join(",")
    }));
    std::fs::write(&quoted, out.join("\n")).unwrap();
    let o = resq(&[
        "eval",
        "-m",
        s(model()),
        "--images",
        s(&png),
        "--ground-truth",
        s(&quoted),
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["images"], 20);
}

#[test]
fn numbers_that_look_like_flags_are_values_and_nan_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = resq_e2e::resnet8("model_float.onnx");
    let photos = resq_e2e::models().join("photos");
    let out = dir.path().join("m.resq");
    // Before: `--mean -5000` was read as an unknown flag.
    let o = resq(&[
        "convert",
        "-m",
        s(&onnx),
        "--calib",
        s(&photos),
        "--mean",
        "-5000",
        "--std",
        "255",
        "-o",
        s(&out),
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // Before: `--mean NaN` was blamed on a layer's rescale factor.
    let o = resq(&[
        "convert",
        "-m",
        s(&onnx),
        "--calib",
        s(&photos),
        "--mean",
        "NaN",
        "-o",
        s(&dir.path().join("nan.resq")),
    ]);
    assert_eq!(o.status.code(), Some(BAD_INPUT));
    assert!(
        text(&o.stderr).contains("--mean `NaN`") && text(&o.stderr).contains("not a finite number"),
        "{}",
        text(&o.stderr)
    );
    assert!(!dir.path().join("nan.resq").exists());
}

/// A calibration folder with `n` copies of a photo, each under its own name.
fn calib_folder(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let photo = resq_e2e::models().join("photos/rocket.jpg");
    for i in 0..n {
        std::fs::copy(&photo, dir.path().join(format!("img{i:03}.jpg"))).unwrap();
    }
    dir
}

fn convert_json(calib: &Path, out: &Path) -> Output {
    resq(&[
        "convert",
        "-m",
        s(&resq_e2e::resnet8("model_float.onnx")),
        "--calib",
        s(calib),
        "--std",
        "255",
        "-o",
        s(out),
        "--json",
    ])
}

#[test]
fn calibration_follows_each_file_once_and_warns_when_there_are_few() {
    // Before: a symlink loop counted one image 41 times, and one image calibrated silently.
    let calib = calib_folder(1);
    std::os::unix::fs::symlink(calib.path(), calib.path().join("loop")).unwrap();
    let out = calib.path().join("m.resq");
    let o = convert_json(calib.path(), &out);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["calibration_images"], 1, "{v}");
    assert!(
        text(&o.stderr).contains("calibrating on 1 image(s)"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn damaged_calibration_images_are_left_out_and_counted() {
    // Before: a truncated JPEG was decoded silently (grey rows) and calibrated on.
    let calib = calib_folder(3);
    let whole = std::fs::read(calib.path().join("img000.jpg")).unwrap();
    std::fs::write(calib.path().join("img001.jpg"), &whole[..whole.len() / 2]).unwrap();
    let out = calib.path().join("m.resq");
    let o = convert_json(calib.path(), &out);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["calibration_images"], 2, "{v}");
    let err = text(&o.stderr);
    assert!(
        err.contains("left out 1 damaged")
            && err.contains("img001.jpg")
            && err.contains("truncated"),
        "{err}"
    );
    // Nothing usable at all is an error, and no file is written.
    let broken = tempfile::tempdir().unwrap();
    std::fs::write(broken.path().join("a.jpg"), &whole[..whole.len() / 3]).unwrap();
    let out = broken.path().join("m.resq");
    let o = convert_json(broken.path(), &out);
    assert_eq!(o.status.code(), Some(BAD_INPUT));
    assert!(text(&o.stderr).contains("no usable calibration image"));
    assert!(!out.exists());
}

#[test]
fn thread_counts_beyond_the_cores_warn_and_zero_means_one_per_core() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let many = (cores * 4).to_string();
    let o = resq(&[
        "bench",
        "-m",
        s(model()),
        "--threads",
        &many,
        "--iterations",
        "1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains(&format!("--threads {many} on {cores} core(s)")));
    let o = resq(&[
        "bench",
        "-m",
        s(model()),
        "--threads",
        "0",
        "--iterations",
        "1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["threads"], cores);
    // The bench keys shared with `resq-fw bench`.
    for key in ["median", "mean", "min", "max", "p90"] {
        assert!(v["inference_ms"][key].is_number(), "{key}: {v}");
    }
    assert_eq!(v["iterations"], 1);
}

#[test]
fn json_everywhere_something_is_reported() {
    let o = resq(&["inspect", "-m", s(model()), "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["classes"], 10);
    assert_eq!(v["labels"][3], "cat");
    assert!(v["layers"].as_array().unwrap().len() > 5);

    // A model converted without class names says how to add them.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.resq");
    let o = resq(&[
        "convert",
        "-m",
        s(&resq_e2e::resnet8("model_float.onnx")),
        "--calib",
        s(&resq_e2e::models().join("photos")),
        "--std",
        "255",
        "-o",
        s(&out),
    ]);
    assert!(o.status.success());
    assert!(
        text(&o.stdout).contains("hint: no class names"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn completions_and_man_pages() {
    for shell in ["bash", "zsh", "fish"] {
        let o = resq(&["completions", shell]);
        assert!(o.status.success());
        assert!(text(&o.stdout).contains("convert"), "{shell}");
    }
    let o = resq(&["man"]);
    assert!(o.status.success());
    assert!(
        text(&o.stdout).contains(".TH resq 1"),
        "{}",
        text(&o.stdout)
    );
    let dir = tempfile::tempdir().unwrap();
    let o = resq(&["man", "--dir", s(dir.path())]);
    assert!(o.status.success());
    assert!(dir.path().join("resq-convert.1").is_file());
}
