//! Installable like a Rust tool: `cargo install` of `resq` and `resq-fw` into an empty
//! prefix, then the README's first steps from another folder. The installed `resq` needs no
//! checkout or build folder: it finds `resq-fw` beside itself.
//!
//! The nested `cargo install` builds into the workspace's own target folder (`--offline
//! --locked`), so it reuses what the outer `cargo test --release` built instead of compiling
//! tract again; cargo releases that folder's lock once the test binaries are built, so the
//! nested build does not wait on the outer one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The target folder of the outer build (CARGO_TARGET_TMPDIR is `<target>/tmp`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `cargo install --path <package> --root <prefix>` into the shared target folder.
fn cargo_install(package: &str, prefix: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let t = Instant::now();
    let mut c = Command::new(cargo);
    c.arg("install")
        .arg("--path")
        .arg(workspace().join(package))
        .arg("--root")
        .arg(prefix)
        .arg("--target-dir")
        .arg(target_dir())
        .args(["--offline", "--locked", "--no-track"])
        .current_dir(workspace())
        .stdin(Stdio::null());
    // What the outer cargo set for this test process describes this test, not the nested
    // build (configuration such as CARGO_HOME or CARGO_PROFILE_* is kept).
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        let own = k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_BIN_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
            ]
            .contains(&k.as_str());
        if own {
            c.env_remove(&k);
        }
    }
    let o = c.output().expect("run cargo install");
    assert!(o.status.success(), "cargo install {package}: {}", text(&o));
    println!(
        "cargo install --path {package}: {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

/// The installed `resq`, run as a person runs it: from `cwd`, with a plain PATH that holds
/// neither the prefix nor a build folder.
fn resq(prefix: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new(prefix.join("bin/resq"))
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run the installed resq")
}

#[test]
fn installed_resq_runs_the_demo_and_flashes_with_the_resq_fw_beside_it() {
    let prefix = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    cargo_install("host-tools/resq-cli", prefix.path());
    cargo_install("firmware/resq-fw", prefix.path());
    for bin in ["resq", "resq-fw"] {
        assert!(prefix.path().join("bin").join(bin).is_file(), "{bin}");
    }

    let o = resq(prefix.path(), work.path(), &["demo", "-o", "out.resq"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("chelsea.png"), "{}", text(&o));
    assert!(work.path().join("out.resq").is_file());

    let rootfs = work.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    let to = format!("dir:{}", rootfs.display());
    let o = resq(
        prefix.path(),
        work.path(),
        &[
            "flash",
            "--board",
            "x86_64-host",
            "--model",
            "out.resq",
            "--to",
            &to,
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    let beside = prefix.path().join("bin/resq-fw");
    assert!(
        out.contains(&format!("using {}", beside.display())),
        "{out}"
    );
    assert!(out.contains("self-test passed"), "{out}");
    let installed = std::fs::read(rootfs.join("opt/resq/current/resq-fw")).unwrap();
    assert_eq!(installed, std::fs::read(&beside).unwrap());
}
