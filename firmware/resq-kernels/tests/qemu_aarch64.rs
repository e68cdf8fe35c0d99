//! The kernel property tests (`tests/isa.rs`) and the engine's whole-model test
//! (`firmware/resq-engine/tests/isa.rs`) cross-compiled for aarch64 and run under
//! `qemu-aarch64` on three CPUs, so every aarch64 tier is checked against the reference in CI:
//! `cortex-a72` (NEON only: Raspberry Pi 4), `cortex-a76` (+ dot product) and `max`
//! (+ i8mm). qemu is faithful: an instruction the modelled CPU lacks dies with SIGILL, and
//! run-time detection sees only what the model reports. The test fails when a CPU's tier is
//! skipped, is not what `Isa::detect()` picks, or does not name its kernel
//! (`aarch64_tiers_have_their_kernels`, which runs under qemu).
//!
//! Cost: the engine's dev-dependencies (tract) are cross-compiled once, in the target dir
//! firmware/resq-fw/tests/aarch64.rs uses too (≈ 11 min on two cores when it is cold); then
//! about 30 s of kernel tests per CPU and 2–2.5 min for the engine on `max`, which runs all
//! three aarch64 tiers. The engine test reads `../shared/assets` (or `RESQ_ASSETS`).
//!
//! Needs `rustup target add aarch64-unknown-linux-gnu` and the Debian packages
//! `gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user` (`.ci/run` installs them); without
//! them the test says what is missing and passes, so a bare `cargo test` still works.

use std::path::Path;
use std::process::Command;

const TARGET: &str = "aarch64-unknown-linux-gnu";

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What each emulated CPU must run: every tier it supports (none skipped), its best tier as
/// `Isa::detect()`, and the kernel of each aarch64 tier, by name suffix.
const CPUS: [(&str, &[&str], &str); 3] = [
    ("cortex-a72", &["generic", "neon"], "neon"),
    ("cortex-a76", &["generic", "neon", "dotprod"], "dotprod"),
    ("max", &["generic", "neon", "dotprod", "i8mm"], "i8mm"),
];

/// The ISA suffix of each aarch64 tier's micro-kernel name.
const KERNEL_SUFFIX: [(&str, &str); 3] = [
    ("neon", "__neon_mull"),
    ("dotprod", "__neondot"),
    ("i8mm", "__neoni8mm"),
];

/// Runs `cargo test --release --target aarch64 -p <package> <tests>` under `qemu -cpu <cpu>`,
/// asserts it passed and returns its stderr.
fn run_under_qemu(root: &Path, cpu: &str, package: &str, tests: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let start = std::time::Instant::now();
    let out = Command::new(&cargo)
        .current_dir(root)
        // Not the main target dir (the outer `cargo test` holds its lock); the one
        // firmware/resq-fw/tests/aarch64.rs cross-builds the engine's tests in, so tract is
        // cross-compiled once.
        .env("CARGO_TARGET_DIR", root.join("target/aarch64-check"))
        .env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
            "aarch64-linux-gnu-gcc",
        )
        .env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER",
            format!("qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu {cpu}"),
        )
        // The tiers under test are chosen by the tests themselves, never by the environment.
        .env_remove("RESQ_ISA")
        .args(["test", "--release", "--target", TARGET, "-p", package])
        .args(tests.iter().flat_map(|t| ["--test", t]))
        .args(["--", "--nocapture", "--test-threads", "1"])
        .output()
        .expect("run cargo");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{package} {tests:?} failed under qemu -cpu {cpu}:\n{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    eprintln!(
        "qemu -cpu {cpu}: {package} {tests:?} passed in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    stderr
}

/// The tiers a test run did not skip (each test prints `skipping <tier>: not supported …`).
fn tiers_run(stderr: &str) -> Vec<&'static str> {
    ["generic", "neon", "dotprod", "i8mm"]
        .into_iter()
        .filter(|t| !stderr.contains(&format!("skipping {t}: not supported")))
        .collect()
}

#[test]
fn kernel_and_engine_tests_pass_under_qemu_on_cortex_a72_a76_and_max() {
    if cfg!(target_arch = "aarch64") {
        eprintln!("native aarch64: tests/isa.rs already ran on this CPU");
        return;
    }
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(TARGET))
        .unwrap_or(false);
    let missing: Vec<&str> = [
        (installed, "rustup target add aarch64-unknown-linux-gnu"),
        (
            have("aarch64-linux-gnu-gcc", "--version"),
            "gcc-aarch64-linux-gnu",
        ),
        (have("qemu-aarch64", "--version"), "qemu-user"),
        (
            Path::new("/usr/aarch64-linux-gnu/lib").exists(),
            "libc6-dev-arm64-cross",
        ),
    ]
    .into_iter()
    .filter_map(|(ok, what)| (!ok).then_some(what))
    .collect();
    if !missing.is_empty() {
        eprintln!("skipping the aarch64 kernel tests under qemu: missing {missing:?}");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (cpu, expected, best) in CPUS {
        // The kernel property tests, plus `aarch64_tiers_have_their_kernels` below (which runs
        // only on aarch64 and names each tier's kernel).
        let stderr = run_under_qemu(&root, cpu, "resq-kernels", &["isa", "qemu_aarch64"]);
        let ran = tiers_run(&stderr);
        assert_eq!(
            ran, expected,
            "qemu -cpu {cpu}: tiers checked against the reference"
        );
        assert!(
            stderr.contains(&format!("detected: {best}\n")),
            "qemu -cpu {cpu}: Isa::detect() is not {best}:\n{stderr}"
        );
        let mut kernels = Vec::new();
        for (tier, suffix) in KERNEL_SUFFIX {
            let line = stderr
                .lines()
                .find_map(|l| l.strip_prefix(&format!("aarch64 kernel {tier}: ")))
                .map(|rest| rest.split_whitespace().next().unwrap_or(""));
            if expected.contains(&tier) {
                let name = line.unwrap_or_else(|| {
                    panic!("qemu -cpu {cpu}: no {tier} kernel reported:\n{stderr}")
                });
                assert!(
                    name.starts_with("qs8_igemm_") && name.ends_with(suffix),
                    "qemu -cpu {cpu}: {tier} kernel {name}"
                );
                kernels.push(name);
            } else {
                assert!(
                    line.is_none(),
                    "qemu -cpu {cpu}: {tier} should be unsupported"
                );
            }
        }
        eprintln!(
            "qemu -cpu {cpu}: tiers checked against the reference: {ran:?}, kernels {kernels:?}"
        );

        // Whole models on every tier and thread count, against the reference tier. `max` runs
        // all three aarch64 tiers, so once is enough (firmware/resq-fw/tests/aarch64.rs also
        // runs this test on cortex-a72).
        if cpu == "max" {
            let stderr = run_under_qemu(&root, cpu, "resq-engine", &["isa"]);
            assert_eq!(
                tiers_run(&stderr),
                expected,
                "qemu -cpu {cpu}: tiers of the engine's whole-model test"
            );
        }
    }
}

/// On aarch64 (under qemu, or natively): each tier the CPU reports has its kernel, and the
/// tiers it does not report are refused. Prints `aarch64 kernel <tier>: <name>` for the
/// wrapper above.
#[cfg(target_arch = "aarch64")]
#[test]
fn aarch64_tiers_have_their_kernels() {
    use resq_kernels::{Isa, Kernels};
    let cpu = [
        (Isa::Neon, true),
        (
            Isa::Dotprod,
            std::arch::is_aarch64_feature_detected!("dotprod"),
        ),
        (Isa::I8mm, std::arch::is_aarch64_feature_detected!("i8mm")),
    ];
    for (isa, has) in cpu {
        match Kernels::new(isa) {
            Some(k) => {
                assert!(has, "{isa} kernels handed out on a CPU without the feature");
                let g = k.gemm();
                eprintln!(
                    "aarch64 kernel {isa}: {} ({} x {}, kr {}, {:?})",
                    g.name, g.mr, g.nr, g.kr, g.a_format
                );
            }
            None => assert!(!has, "{isa}: the CPU has it but this build has no kernel"),
        }
    }
    let best = cpu.iter().rev().find(|(_, has)| *has).unwrap().0;
    assert_eq!(Isa::detect(), best);
}
