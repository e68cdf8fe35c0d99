//! The kernel property tests (`tests/isa.rs`) cross-compiled for aarch64 and run under
//! `qemu-aarch64` on three CPUs, so every aarch64 tier is checked against the reference in CI:
//! `cortex-a72` (NEON only: Raspberry Pi 4), `cortex-a76` (+ dot product) and `max`
//! (+ i8mm). qemu is faithful: an instruction the modelled CPU lacks dies with SIGILL, and
//! run-time detection sees only what the model reports.
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

#[test]
fn kernel_tests_pass_under_qemu_on_cortex_a72_a76_and_max() {
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
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for cpu in ["cortex-a72", "cortex-a76", "max"] {
        let out = Command::new(&cargo)
            .current_dir(&root)
            // A target dir of its own: the outer `cargo test` holds the main one's lock.
            .env("CARGO_TARGET_DIR", root.join("target/qemu-check"))
            .env(
                "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
                "aarch64-linux-gnu-gcc",
            )
            .env(
                "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER",
                format!("qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu {cpu}"),
            )
            .args([
                "test",
                "--release",
                "--target",
                TARGET,
                "-p",
                "resq-kernels",
                "--test",
                "isa",
            ])
            .args(["--", "--nocapture", "--test-threads", "1"])
            .output()
            .expect("run cargo");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "aarch64 kernel tests failed under qemu -cpu {cpu}:\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        let tiers = ["generic", "neon", "dotprod", "i8mm"];
        let ran: Vec<&str> = tiers
            .into_iter()
            .filter(|t| !stderr.contains(&format!("skipping {t}: not supported")))
            .collect();
        eprintln!("qemu -cpu {cpu}: passed; tiers checked against the reference: {ran:?}");
    }
}
