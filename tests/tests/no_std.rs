//! The firmware core (format, kernels, engine) builds for a microcontroller target, so it stays
//! `no_std` (+ alloc for the engine). Needs `rustup target add thumbv7em-none-eabihf`.

use std::process::Command;

#[test]
fn firmware_core_builds_for_thumbv7em() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&root)
        // A target dir of its own: the outer `cargo test` holds the main one's lock.
        .env("CARGO_TARGET_DIR", root.join("target/no-std-check"))
        .args([
            "build",
            "--target",
            "thumbv7em-none-eabihf",
            "-p",
            "resq-format",
            "-p",
            "resq-kernels",
            "-p",
            "resq-engine",
        ])
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "no_std build for thumbv7em-none-eabihf failed (is the target installed? `rustup target add thumbv7em-none-eabihf`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
