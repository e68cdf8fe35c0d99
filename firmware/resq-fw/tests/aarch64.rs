//! The aarch64 build, tested under qemu-user: the firmware crates' own tests run for
//! `aarch64-unknown-linux-gnu` (qemu `-cpu cortex-a72`, a Raspberry Pi 4), and the aarch64
//! `resq-fw` (glibc and static musl builds) classifies the shipped photos with output identical
//! to this x86 binary's, timings aside.
//!
//! The aarch64 build leaves out GStreamer (no arm64 GStreamer libraries on the build machine):
//! V4L2 and folder sources only. Needs `gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
//! libclang-dev` (apt) and `rustup target add aarch64-unknown-linux-gnu aarch64-unknown-linux-musl`;
//! .ci/run installs them.
#![cfg(target_arch = "x86_64")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::{photos, resnet8};

const GNU: &str = "aarch64-unknown-linux-gnu";
const MUSL: &str = "aarch64-unknown-linux-musl";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The inner cargo, with a target dir of its own (the outer `cargo test` holds the main one's lock).
fn cargo(args: &[&str]) {
    let ws = workspace();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let t = Instant::now();
    let out = Command::new(cargo)
        .current_dir(&ws)
        .env("CARGO_TARGET_DIR", ws.join("target/aarch64-check"))
        .args(args)
        .output()
        .expect("run cargo");
    let tail = |b: &[u8]| {
        let s = String::from_utf8_lossy(b);
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    };
    assert!(
        out.status.success(),
        "`cargo {}` failed. It needs `apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libclang-dev` \
         and `rustup target add {GNU} {MUSL}` (.ci/run does both):\n{}\n{}",
        args.join(" "),
        tail(&out.stdout),
        tail(&out.stderr)
    );
    let summary: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("test result:"))
        .map(str::to_string)
        .collect();
    eprintln!(
        "cargo {}: {:.0} s{}",
        args.join(" "),
        t.elapsed().as_secs_f64(),
        if summary.is_empty() {
            String::new()
        } else {
            format!(", {} test binaries ok", summary.len())
        }
    );
}

fn binary(target: &str) -> PathBuf {
    workspace()
        .join("target/aarch64-check")
        .join(target)
        .join("release/resq-fw")
}

/// Runs `resq-fw args` on the aarch64 binary under qemu with `cpu`; stdout, stderr.
fn qemu(target: &str, cpu: &str, args: &[String]) -> (Vec<u8>, String) {
    let mut cmd = Command::new("qemu-aarch64");
    if target == GNU {
        cmd.args(["-L", "/usr/aarch64-linux-gnu"]);
    }
    let t = Instant::now();
    let out = cmd
        .args(["-cpu", cpu])
        .arg(binary(target))
        .args(args)
        .output()
        .expect("run qemu-aarch64");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{target} resq-fw {args:?} under qemu -cpu {cpu} failed:\n{err}"
    );
    eprintln!(
        "qemu -cpu {cpu} {target} resq-fw {}: {:.2} s",
        args[0],
        t.elapsed().as_secs_f64()
    );
    (out.stdout, err)
}

/// `resq-fw classify` output without its timings, which differ from machine to machine: the
/// JSON key `latency_ms`, the human `N ms` column (and the padding around it).
fn without_latency(out: &[u8], json: bool) -> String {
    let lines = String::from_utf8_lossy(out).into_owned();
    lines
        .lines()
        .map(|l| {
            if json {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("latency_ms");
                v.to_string()
            } else {
                let mut words: Vec<&str> = l.split_whitespace().collect();
                let ms = words.iter().position(|w| *w == "ms").unwrap();
                words[ms - 1] = "…";
                words.join(" ")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn aarch64_build_passes_its_tests_under_qemu_and_classifies_like_x86() {
    // 1. The firmware crates' tests, built for aarch64 and run under qemu (the runner in
    //    .cargo/config.toml). Host-only tests (this one, the CLI and host comparisons) compile
    //    to nothing there.
    cargo(&[
        "test",
        "--release",
        "--target",
        GNU,
        "-p",
        "resq-format",
        "-p",
        "resq-kernels",
        "-p",
        "resq-engine",
        "-p",
        "resq-preprocess",
        "-p",
        "resq-fw",
        "--no-default-features",
    ]);
    // 2. The binaries a board gets: glibc, and static musl for old-glibc boards (Jetson Nano).
    cargo(&[
        "build",
        "--release",
        "--target",
        GNU,
        "-p",
        "resq-fw",
        "--no-default-features",
    ]);
    cargo(&[
        "build",
        "--release",
        "--target",
        MUSL,
        "-p",
        "resq-fw",
        "--no-default-features",
    ]);

    // 3. The same photos through both architectures: identical lines, human and JSON, but for
    //    the time each image took.
    let model = resnet8().0.display().to_string();
    let images: Vec<String> = photos().iter().map(|p| p.display().to_string()).collect();
    for json in [false, true] {
        let mut args = vec!["classify".to_string(), "--model".into(), model.clone()];
        if json {
            args.push("--json".into());
        }
        args.extend(images.iter().cloned());
        let x86 = Command::new(env!("CARGO_BIN_EXE_resq-fw"))
            .args(&args)
            .output()
            .unwrap();
        assert!(x86.status.success());
        assert_eq!(
            String::from_utf8_lossy(&x86.stdout).lines().count(),
            images.len()
        );
        let x86 = without_latency(&x86.stdout, json);
        let (gnu, _) = qemu(GNU, "cortex-a72", &args);
        let gnu = without_latency(&gnu, json);
        assert!(
            gnu == x86,
            "aarch64 (glibc) output differs from x86:\n{gnu}\n---\n{x86}"
        );
        let (musl, _) = qemu(MUSL, "cortex-a57", &args);
        let musl = without_latency(&musl, json);
        assert!(
            musl == x86,
            "aarch64 (musl) output differs from x86:\n{musl}\n---\n{x86}"
        );
    }

    // 4. The folder source and the self-test on the "board".
    let (out, _) = qemu(
        GNU,
        "cortex-a72",
        &[
            "run".into(),
            "--model".into(),
            model.clone(),
            "--board".into(),
            "rpi4".into(),
            "--no-gpio".into(),
            "--camera".into(),
            format!("dir:{}", common::models().join("photos").display()),
        ],
    );
    let out = String::from_utf8_lossy(&out).into_owned();
    assert!(
        out.lines()
            .any(|l| l.starts_with("chelsea.png") && l.split_whitespace().nth(1) == Some("cat")),
        "{out}"
    );

    // 5. The CPU check reads the real (emulated) CPU: a Cortex-A53 lacks what the rpi5 profile
    //    promises; a Cortex-A72 has all rpi4 needs.
    let selftest = |board: &str| {
        vec![
            "selftest".to_string(),
            "--model".into(),
            model.clone(),
            "--board".into(),
            board.into(),
        ]
    };
    let (_, err) = qemu(GNU, "cortex-a53", &selftest("rpi5"));
    assert!(
        err.contains("promises the CPU feature `dotprod`, but this CPU lacks it"),
        "{err}"
    );
    let (out, err) = qemu(GNU, "cortex-a72", &selftest("rpi4"));
    assert!(err.is_empty(), "{err}");
    assert!(String::from_utf8_lossy(&out).starts_with("self-test passed"));
}
