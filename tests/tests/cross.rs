//! Every build and run that is not this machine's plain native one, in one place; the cross
//! builds share one folder (`target/cross`), the native engine run reuses the main build:
//!
//! - the firmware core (format, kernels, engine) builds for a Cortex-M (`thumbv7em-none-eabihf`),
//!   so it stays `no_std` (+ alloc for the engine);
//! - converted models (ResNet-8, synthetic ResNet-18 / ResNet-50 with their 7×7 stem, max pool,
//!   strided and 1×1 projection shortcuts and 1000 classes, CIFAR ResNets with zero-padding
//!   shortcuts and pre-activation) give the same int8 bytes on every kernel tier, thread count
//!   and packing, natively and under qemu: the host converts them here, and the engine's own
//!   test (`firmware/resq-engine/tests/isa.rs`, `RESQ_ENGINE_MODELS`) runs them, so the engine
//!   never depends on the converter (tract is not cross-compiled);
//! - the aarch64 build under `qemu-aarch64`: one build of the firmware crates' tests, whose
//!   executables then run directly under qemu — all of them on `cortex-a72` (NEON only: a
//!   Raspberry Pi 4), the kernel property tests on `cortex-a76` (+ dot product) and `max`
//!   (+ i8mm) with every tier of each CPU required (`RESQ_REQUIRE_TIERS`: the inner tests fail
//!   when one is missing, nothing here reads their output), the whole models on `max` (all three
//!   aarch64 tiers) — while the board binaries build beside them; then the aarch64 `resq-fw`
//!   (glibc and static musl) classifies the shipped photos with output identical to the x86
//!   binary's, timings aside.
//!
//! Needs `rustup target add thumbv7em-none-eabihf aarch64-unknown-linux-gnu
//! aarch64-unknown-linux-musl` and `apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross
//! qemu-user libclang-dev` (`./test` installs them); without them the tests fail and say so. The
//! aarch64 build leaves out GStreamer (no arm64 GStreamer libraries on the build machine): V4L2
//! and folder sources only.
#![cfg(target_arch = "x86_64")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use resq_host::convert::{convert, ConvertOptions};
use resq_host::synth::{synth_cifar_resnet, synth_resnet, Arch, CifarSpec, Shortcut, SynthSpec};

const GNU: &str = "aarch64-unknown-linux-gnu";
const MUSL: &str = "aarch64-unknown-linux-musl";
const FIRMWARE: [&str; 5] = [
    "resq-format",
    "resq-kernels",
    "resq-engine",
    "resq-preprocess",
    "resq-fw",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// The main target folder (CARGO_TARGET_TMPDIR is `<target>/tmp`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf()
}

/// The cross builds' folder, apart from the main one (another target, other features).
fn cross_dir() -> PathBuf {
    target_dir().join("cross")
}

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Fails, naming what to install, unless the Rust targets and tools are here.
fn require(targets: &[&str], aarch64_tools: bool) {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut missing: Vec<String> = targets
        .iter()
        .filter(|t| !installed.lines().any(|l| l == **t))
        .map(|t| format!("rustup target add {t}"))
        .collect();
    if aarch64_tools {
        for (ok, what) in [
            (
                have("aarch64-linux-gnu-gcc", "--version"),
                "apt-get install gcc-aarch64-linux-gnu",
            ),
            (
                Path::new("/usr/aarch64-linux-gnu/lib").exists(),
                "apt-get install libc6-dev-arm64-cross",
            ),
            (
                have("qemu-aarch64", "--version"),
                "apt-get install qemu-user",
            ),
        ] {
            if !ok {
                missing.push(what.into());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "this test needs: {} (./test installs them)",
        missing.join("; ")
    );
}

/// The last lines of a long output.
fn tail(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Runs the inner cargo in [`cross_dir`] with `env`, asserts it succeeded; its stdout.
fn cargo(args: &[&str], env: &[(&str, String)]) -> String {
    cargo_in(&cross_dir(), args, env)
}

/// Runs cargo with the build folder `target`, asserts it succeeded; its stdout.
fn cargo_in(target: &Path, args: &[&str], env: &[(&str, String)]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let t = Instant::now();
    let out = Command::new(cargo)
        .current_dir(workspace())
        .env("CARGO_TARGET_DIR", target)
        // The tiers under test are chosen by the tests themselves, never by the environment.
        .env_remove("RESQ_ISA")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "`cargo {}` failed:\n{}\n{}",
        args.join(" "),
        tail(&out.stdout),
        tail(&out.stderr)
    );
    eprintln!(
        "cargo {}: {:.0} s",
        args.join(" "),
        t.elapsed().as_secs_f64()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `-p` for each package.
fn packages<'a>(names: &[&'a str]) -> Vec<&'a str> {
    names.iter().flat_map(|p| ["-p", p]).collect()
}

/// A test executable of the aarch64 build.
struct TestExe {
    /// Its package's folder, where cargo would run it.
    package: PathBuf,
    /// The test target's name (`isa`, or the crate's for unit tests).
    name: String,
    path: PathBuf,
}

/// Builds the aarch64 (glibc) tests of `packages` without running them: their executables.
fn build_aarch64_tests(packages: &[&str]) -> Vec<TestExe> {
    let mut args = vec![
        "test",
        "--release",
        "--no-run",
        "--target",
        GNU,
        "--no-default-features",
        "--message-format=json-render-diagnostics",
    ];
    args.extend(self::packages(packages));
    let stdout = cargo(&args, &[]);
    let tests: Vec<TestExe> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["profile"]["test"] == true)
        .filter_map(|m| {
            Some(TestExe {
                package: Path::new(m["manifest_path"].as_str()?).parent()?.into(),
                name: m["target"]["name"].as_str()?.into(),
                path: m["executable"].as_str()?.into(),
            })
        })
        .collect();
    assert!(!tests.is_empty(), "no test executables in:\n{stdout}");
    tests
}

/// The test `name` of `package`.
fn test_exe<'a>(tests: &'a [TestExe], package: &str, name: &str) -> &'a TestExe {
    tests
        .iter()
        .find(|t| t.name == name && t.package.ends_with(package))
        .unwrap_or_else(|| panic!("no aarch64 test {package} {name}"))
}

/// Runs one aarch64 test executable under `qemu -cpu cpu`, from its package's folder as cargo
/// would, with `RESQ_REQUIRE_TIERS=tiers`.
fn run_under_qemu(test: &TestExe, cpu: &str, tiers: &str, args: &[&str], env: &[(&str, String)]) {
    let t = Instant::now();
    let out = Command::new("qemu-aarch64")
        .args(["-L", "/usr/aarch64-linux-gnu", "-cpu", cpu])
        .arg(&test.path)
        .args(args)
        .current_dir(&test.package)
        .env_remove("RESQ_ISA")
        .env("RESQ_REQUIRE_TIERS", tiers)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run qemu-aarch64");
    assert!(
        out.status.success(),
        "{} {} under qemu -cpu {cpu} failed:\n{}\n{}",
        test.package.display(),
        test.name,
        tail(&out.stdout),
        tail(&out.stderr)
    );
    eprintln!(
        "qemu -cpu {cpu} {} {}: {:.0} s",
        test.package.file_name().unwrap().to_string_lossy(),
        test.name,
        t.elapsed().as_secs_f64()
    );
}

/// The converted models the engine's whole-model test runs, written once per test binary.
fn converted_models() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let write = |name: &str, bytes: Vec<u8>| {
            std::fs::write(dir.path().join(format!("{name}.resq")), bytes).unwrap()
        };
        write(
            "resnet8",
            convert_path(
                &resq_e2e::resnet8("model_float.onnx"),
                Normalisation::UnitRange,
            ),
        );
        for (arch, size) in [(Arch::ResNet18, 64), (Arch::ResNet50, 32)] {
            let onnx = synth_resnet(&SynthSpec {
                arch,
                size,
                classes: 1000,
                seed: 11,
            })
            .unwrap();
            write(
                &format!("{arch:?}-{size}"),
                convert_onnx(&onnx, Normalisation::ImageNet),
            );
        }
        for preact in [false, true] {
            let onnx = synth_cifar_resnet(&CifarSpec {
                depth: 8,
                shortcut: Shortcut::ZeroPad,
                preact,
                classes: 10,
                seed: 4,
            })
            .unwrap();
            write(
                &format!("cifar8-zeropad-preact-{preact}"),
                convert_onnx(&onnx, Normalisation::UnitRange),
            );
        }
        // The in-place packing test's model (its name is how the engine's test finds it).
        let onnx = synth_cifar_resnet(&CifarSpec {
            depth: 8,
            shortcut: Shortcut::Projection,
            preact: false,
            classes: 10,
            seed: 9,
        })
        .unwrap();
        write(
            "in-place-cifar8-projection",
            convert_onnx(&onnx, Normalisation::UnitRange),
        );
        dir
    })
    .path()
}

#[derive(Clone, Copy)]
enum Normalisation {
    /// Pixels / 255.
    UnitRange,
    /// ImageNet mean and standard deviation.
    ImageNet,
}

fn convert_onnx(onnx: &[u8], norm: Normalisation) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, onnx).unwrap();
    convert_path(&path, norm)
}

fn convert_path(path: &Path, norm: Normalisation) -> Vec<u8> {
    let (mean, std) = match norm {
        Normalisation::ImageNet => ([123.7, 116.3, 103.5], [58.4, 57.1, 57.4]),
        Normalisation::UnitRange => ([0.0; 3], [255.0; 3]),
    };
    let options = ConvertOptions {
        calib: Some(resq_e2e::assets().join("photos")),
        mean,
        std,
        warn_below_images: 0,
        ..ConvertOptions::new(path.to_path_buf())
    };
    convert(&options).expect("convert").bytes
}

/// The environment of the engine's whole-model test.
fn models_env() -> (&'static str, String) {
    (
        "RESQ_ENGINE_MODELS",
        converted_models().display().to_string(),
    )
}

/// Inner cargo runs share one folder; one at a time keeps the lock waits out of the timings.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn firmware_core_builds_for_thumbv7em() {
    require(&["thumbv7em-none-eabihf"], false);
    let _one = one_at_a_time();
    let mut args = vec!["build", "--release", "--target", "thumbv7em-none-eabihf"];
    args.extend(packages(&["resq-format", "resq-kernels", "resq-engine"]));
    cargo(&args, &[]);
}

#[test]
fn converted_models_give_identical_bytes_on_every_x86_tier() {
    let env = [models_env()];
    // The main build folder with the outer build's own package selection: the engine's test
    // is already built there (cargo releases the folder once the test binaries are built).
    cargo_in(
        &target_dir(),
        &[
            "test",
            "--release",
            "--workspace",
            "--test",
            "isa",
            "--",
            "--include-ignored",
            "converted_models",
            "in_place",
        ],
        &env,
    );
}

#[test]
fn aarch64_build_passes_its_tests_under_qemu_and_classifies_like_x86() {
    require(&[GNU, MUSL], true);
    let models = models_env();
    // One build of the firmware crates' tests; each CPU then runs the executables it needs.
    let tests = {
        let _one = one_at_a_time();
        build_aarch64_tests(&FIRMWARE)
    };
    std::thread::scope(|scope| {
        // The binaries a board gets build while the tests run: glibc, and static musl for
        // old-glibc boards (Jetson Nano). (The doc examples need `std`: none for aarch64.)
        let builds = scope.spawn(|| {
            let _one = one_at_a_time();
            for target in [GNU, MUSL] {
                cargo(
                    &[
                        "build",
                        "--release",
                        "--target",
                        target,
                        "-p",
                        "resq-fw",
                        "--no-default-features",
                    ],
                    &[],
                );
            }
        });

        // 1. Every firmware test on a Raspberry Pi 4's CPU (NEON only). Host-only tests (the
        //    CLI and host comparisons) compile to nothing there; the whole models run on
        //    `max` below, whose tiers include this CPU's.
        for test in &tests {
            run_under_qemu(test, "cortex-a72", "generic,neon", &[], &[]);
        }
        // 2. Each newer CPU runs every kernel tier it has against the reference; `max` has
        //    all three aarch64 tiers, so the whole models run there once more.
        let kernels = test_exe(&tests, "resq-kernels", "isa");
        run_under_qemu(kernels, "cortex-a76", "generic,neon,dotprod", &[], &[]);
        let every = "generic,neon,dotprod,i8mm";
        run_under_qemu(kernels, "max", every, &[], &[]);
        let engine = test_exe(&tests, "resq-engine", "isa");
        run_under_qemu(engine, "max", every, &["--include-ignored"], &[models]);

        builds
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    });
    classifies_like_x86();
}

/// The x86 `resq-fw` of the outer build (built here if this test runs alone).
fn x86_resq_fw() -> PathBuf {
    let bin = target_dir().join("release/resq-fw");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .current_dir(workspace())
            .args(["build", "--release", "-p", "resq-fw", "--target-dir"])
            .arg(target_dir())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cargo build --release -p resq-fw failed");
    }
    bin
}

fn aarch64_resq_fw(target: &str) -> PathBuf {
    cross_dir().join(target).join("release/resq-fw")
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
        .arg(aarch64_resq_fw(target))
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

/// The same photos through both architectures: identical lines, human and JSON, but for the
/// time each image took; then the folder source and the CPU check on the "board".
fn classifies_like_x86() {
    let model = tempfile::tempdir().unwrap();
    let model = model.path().join("resnet8.resq");
    resq_host::demo::run_demo(
        &resq_e2e::models(),
        &model,
        &resq_host::progress::NoProgress,
    )
    .expect("convert models/resnet8");
    let model = model.display().to_string();
    let images: Vec<String> = resq_e2e::photos()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    for json in [false, true] {
        let mut args = vec!["classify".to_string(), "--model".into(), model.clone()];
        if json {
            args.push("--json".into());
        }
        args.extend(images.iter().cloned());
        let x86 = Command::new(x86_resq_fw()).args(&args).output().unwrap();
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

    // The folder source and the self-test on the "board".
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
            format!("dir:{}", resq_e2e::models().join("photos").display()),
        ],
    );
    let out = String::from_utf8_lossy(&out).into_owned();
    assert!(
        out.lines()
            .any(|l| l.starts_with("chelsea.png") && l.split_whitespace().nth(1) == Some("cat")),
        "{out}"
    );

    // The CPU check reads the real (emulated) CPU: a Cortex-A53 lacks what the rpi5 profile
    // promises; a Cortex-A72 has all rpi4 needs.
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
