//! `resq flash` / `resq bundle` to `dir:` targets (a root filesystem mounted on this
//! machine), as a user runs them: install, self-test, rollback, service, interruptions.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn flash_dir(bundle: &Path, prefix: &Path) -> std::process::Output {
    resq(&[
        "flash",
        "--bundle",
        s(bundle),
        "--to",
        &format!("dir:{}", prefix.display()),
    ])
}

fn current(prefix: &Path) -> Option<String> {
    check_whole(prefix, "current")
}

#[test]
fn flash_to_a_mounted_rootfs_installs_a_release_whose_firmware_passes_its_selftest() {
    // The acceptance check: the real, unstripped firmware, as the README shows it.
    let dir = tempfile::tempdir().unwrap();
    let to = format!("dir:{}", dir.path().display());
    let fw = firmware_unstripped();
    let o = resq(&[
        "flash",
        "--board",
        "x86_64-host",
        "--model",
        s(&model()),
        "--to",
        &to,
        "--firmware",
        s(&fw),
    ]);
    assert!(o.status.success(), "{}", both(&o));
    let text = out(&o);
    assert!(text.contains("self-test  self-test passed"), "{text}");
    assert!(
        text.contains("resq-fw ") && text.contains("model.resq "),
        "sizes in the summary: {text}"
    );
    let cur = dir.path().join("opt/resq/current");
    let o = Command::new(cur.join("resq-fw"))
        .args(["selftest", "--model"])
        .arg(cur.join("model.resq"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", both(&o));
    // A relative link, so the card is right when it boots with the card as `/`.
    let link = fs::read_link(&cur).unwrap();
    assert!(
        link.is_relative() && link.starts_with("releases"),
        "{}",
        link.display()
    );
    let id = check_whole(dir.path(), "after flash").unwrap();
    assert!(text.contains(&id), "{text}");
    // The board can check its release with standard tools.
    let o = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&cur)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", both(&o));
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(cur.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["id"], id.as_str());
    assert_eq!(m["board"]["name"], "x86_64-host");
    assert_eq!(m["versions"]["firmware"], "0.1.0", "{m}");
    assert_eq!(m["model"]["classes"], 10);
    assert!(garbage(dir.path()).is_empty(), "{:?}", garbage(dir.path()));
}

#[test]
fn a_second_flash_keeps_the_previous_release_and_rollback_switches_back() {
    let dir = tempfile::tempdir().unwrap();
    let to = format!("dir:{}", dir.path().display());
    let (a, b) = (bundle_a(), bundle_b());
    let (ida, idb) = (bundle_id(&a), bundle_id(&b));
    assert_ne!(ida, idb);
    assert!(flash_dir(&a, dir.path()).status.success());
    let o = flash_dir(&b, dir.path());
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        out(&o).contains(&format!("previous   {ida}")),
        "{}",
        out(&o)
    );
    assert_eq!(current(dir.path()), Some(idb.clone()));

    let o = resq(&["flash", "--status", "--to", &to]);
    assert!(o.status.success(), "{}", both(&o));
    let st = out(&o);
    assert!(
        st.contains(&format!("current    {idb}")) && st.contains("files verified"),
        "{st}"
    );
    assert!(st.contains(&format!("previous   {ida}")), "{st}");

    let o = resq(&["flash", "--rollback", "--to", &to]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        out(&o).contains(&format!(
            "current is now {ida} (was {idb}), self-test passed"
        )),
        "{}",
        out(&o)
    );
    assert_eq!(current(dir.path()), Some(ida.clone()));
    let prev = fs::read_link(dir.path().join("opt/resq/previous")).unwrap();
    assert_eq!(prev, Path::new("releases").join(&idb));

    // B is still on the card: flashing it again switches to it without sending anything.
    let o = flash_dir(&b, dir.path());
    assert!(o.status.success(), "{}", both(&o));
    assert!(out(&o).contains("was on the device"), "{}", out(&o));
    assert_eq!(current(dir.path()), Some(idb.clone()));
    // The same content bundled anew (another id) is recognised too.
    let o = resq(&[
        "flash",
        "--board",
        "x86_64-host",
        "--model",
        s(&model()),
        "--firmware",
        s(&firmware()),
        "--to",
        &to,
    ]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        out(&o).contains(&format!("release {ida} (was on the device")),
        "{}",
        out(&o)
    );
    assert_eq!(current(dir.path()), Some(ida.clone()));
    let o = flash_dir(&b, dir.path());
    assert!(out(&o).contains("was on the device"), "{}", out(&o));
    // The same again: nothing changes.
    let o = flash_dir(&b, dir.path());
    assert!(out(&o).contains("already current"), "{}", out(&o));

    // Two rollbacks in a row go back and forth; with no previous one there is a clear error.
    let fresh = tempfile::tempdir().unwrap();
    assert!(flash_dir(&a, fresh.path()).status.success());
    let o = resq(&[
        "flash",
        "--rollback",
        "--to",
        &format!("dir:{}", fresh.path().display()),
    ]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("no previous release to roll back to"),
        "{}",
        err(&o)
    );
    let empty = tempfile::tempdir().unwrap();
    let o = resq(&[
        "flash",
        "--status",
        "--to",
        &format!("dir:{}", empty.path().display()),
    ]);
    assert!(out(&o).contains("current    none"), "{}", both(&o));
}

#[test]
fn old_releases_are_pruned_but_current_and_previous_stay() {
    let dir = tempfile::tempdir().unwrap();
    let board = board_v2();
    let mut ids = vec![];
    // Four different releases: four profile texts.
    for i in 0..4 {
        let text = fs::read_to_string(&board)
            .unwrap()
            .replace("v2: ", &format!("v{}: ", i + 3));
        let p = dir.path().join(format!("board{i}.toml"));
        fs::write(&p, text).unwrap();
        let b = bundle(&format!("prune{i}.tar"), s(&p), &model());
        ids.push(bundle_id(&b));
        let root = dir.path().join("root");
        fs::create_dir_all(&root).unwrap();
        let o = resq(&[
            "flash",
            "--bundle",
            s(&b),
            "--to",
            &format!("dir:{}", root.display()),
            "--keep",
            "2",
        ]);
        assert!(o.status.success(), "{}", both(&o));
    }
    let root = dir.path().join("root/opt/resq/releases");
    let mut left: Vec<String> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    let mut want = vec![ids[2].clone(), ids[3].clone()];
    want.sort();
    assert_eq!(left, want);
}

#[test]
fn enable_service_on_a_rootfs_installs_the_unit_resq_fw_prints_and_links_it_for_boot() {
    let dir = tempfile::tempdir().unwrap();
    let o = resq(&[
        "flash",
        "--bundle",
        s(&bundle_a()),
        "--to",
        &format!("dir:{}", dir.path().display()),
        "--enable-service",
    ]);
    assert!(o.status.success(), "{}", both(&o));
    let unit = fs::read_to_string(dir.path().join("etc/systemd/system/resq-fw.service")).unwrap();
    // One layout: exactly what `resq-fw unit` prints for the board, whose [install] paths
    // (the binary and the model) are links to the current release.
    for args in [
        vec!["unit", "--board", "x86_64-host"],
        vec![
            "unit",
            "--board",
            "x86_64-host",
            "--model",
            "/var/lib/resq/model.resq",
        ],
    ] {
        let o = Command::new(firmware_unstripped())
            .args(&args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", both(&o));
        assert_eq!(unit, out(&o), "resq-fw {args:?}");
    }
    for (link, to) in [
        ("usr/local/bin/resq-fw", "/opt/resq/current/resq-fw"),
        ("var/lib/resq/model.resq", "/opt/resq/current/model.resq"),
    ] {
        assert_eq!(
            fs::read_link(dir.path().join(link)).unwrap(),
            Path::new(to),
            "{link}"
        );
    }
    let wants = dir
        .path()
        .join("etc/systemd/system/multi-user.target.wants/resq-fw.service");
    assert_eq!(
        fs::read_link(wants).unwrap(),
        Path::new("/etc/systemd/system/resq-fw.service")
    );
    let text = out(&o);
    assert!(
        text.contains("enabled resq-fw.service in the root filesystem"),
        "{text}"
    );
    // No /etc/passwd with the service user on this "card": the user is told.
    assert!(text.contains("the service user `resq` is not in"), "{text}");
    // A profile file (not built into resq-fw): the unit names its installed copy.
    let o = resq(&[
        "flash",
        "--bundle",
        s(&bundle_b()),
        "--to",
        &format!("dir:{}", dir.path().display()),
        "--enable-service",
    ]);
    assert!(o.status.success(), "{}", both(&o));
    let unit = fs::read_to_string(dir.path().join("etc/systemd/system/resq-fw.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/resq-fw run --model /var/lib/resq/model.resq --board /opt/resq/current/board.toml --json"),
        "{unit}"
    );
}

/// `resq` run as a person runs an installed one: from `cwd`, with this environment only.
fn resq_at(exe: &Path, args: &[&str], cwd: &Path, path: &str) -> std::process::Output {
    Command::new(exe)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", path)
        .env("HOME", cwd)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// A copy of the firmware with `tag` appended (still a working program), to tell copies apart.
fn tagged_firmware(to: &Path, tag: &str) -> String {
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    let mut bytes = fs::read(firmware()).unwrap();
    bytes.extend_from_slice(tag.as_bytes());
    fs::write(to, &bytes).unwrap();
    fs::set_permissions(to, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    resq_deploy::bundle::sha256_hex(&bytes)
}

fn installed_firmware_sha(prefix: &Path) -> String {
    resq_deploy::bundle::sha256_hex(&fs::read(prefix.join("opt/resq/current/resq-fw")).unwrap())
}

#[test]
fn flash_finds_resq_fw_beside_resq_then_on_path_and_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model();
    // An installed pair: bin/resq and bin/resq-fw, run from a folder with no build output.
    let bin = d.join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy(env!("CARGO_BIN_EXE_resq"), bin.join("resq")).unwrap();
    let beside = tagged_firmware(&bin.join("resq-fw"), "beside");
    let on_path = tagged_firmware(&d.join("path/resq-fw"), "on PATH");
    let path = format!("{}:/usr/bin:/bin", d.join("path").display());
    let flash = |exe: &Path, board: &str, root: &str| {
        let root = d.join(root);
        fs::create_dir_all(&root).unwrap();
        let to = format!("dir:{}", root.display());
        let o = resq_at(
            exe,
            &["flash", "--board", board, "--model", s(&m), "--to", &to],
            d,
            &path,
        );
        (o, root)
    };
    let (o, root) = flash(&bin.join("resq"), "x86_64-host", "a");
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(installed_firmware_sha(&root), beside, "the one beside resq");
    assert!(
        out(&o).contains(&format!("using {}", bin.join("resq-fw").display())),
        "{}",
        out(&o)
    );
    // A resq alone: the one on PATH.
    let alone = d.join("alone");
    fs::create_dir_all(&alone).unwrap();
    fs::copy(env!("CARGO_BIN_EXE_resq"), alone.join("resq")).unwrap();
    let (o, root) = flash(&alone.join("resq"), "x86_64-host", "b");
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(installed_firmware_sha(&root), on_path, "the one on PATH");
    // For another architecture both are passed over, and the message lists every place (a
    // RISC-V board, whose firmware nobody builds here).
    let text = resq_deploy::board::BUILTIN
        .iter()
        .find(|(n, _)| *n == "rpi4")
        .unwrap()
        .1;
    let riscv = d.join("riscv.toml");
    fs::write(
        &riscv,
        text.replace("aarch64-unknown-linux-gnu", "riscv64gc-unknown-linux-gnu"),
    )
    .unwrap();
    let (o, root) = flash(&bin.join("resq"), s(&riscv), "c");
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let e = err(&o);
    for want in [
        format!("{} (a x86-64 program)", bin.join("resq-fw").display()),
        format!("{} (a x86-64 program)", d.join("path/resq-fw").display()),
        "/usr/bin/resq-fw".to_string(),
        "target/riscv64gc-unknown-linux-gnu/release/resq-fw".to_string(),
        "--target riscv64gc-unknown-linux-gnu".to_string(),
    ] {
        assert!(e.contains(&want), "{want}: {e}");
    }
    assert!(!root.join("opt").exists());
}

#[test]
fn a_flash_whose_output_is_no_longer_read_still_installs_and_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_resq"))
        .args(["flash", "--bundle", s(&bundle_a()), "--to"])
        .arg(format!("dir:{}", dir.path().display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before anything is printed (`resq flash … | head -0`).
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{:?} {}", o.status, err(&o));
    assert!(!err(&o).contains("panicked"), "{}", err(&o));
    assert_eq!(current(dir.path()), Some(bundle_id(&bundle_a())));
}

#[test]
fn a_model_that_never_ends_is_refused_after_its_header() {
    // `/dev/zero` as the model: refused at its first 64 bytes, with the memory of the process
    // capped so that reading it whole would fail instead of taking the machine's memory.
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let o = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -v 4000000; exec "$@""#)
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_resq"))
        .args(["flash", "--board", "x86_64-host", "--model", "/dev/zero"])
        .arg("--firmware")
        .arg(firmware())
        .arg("--to")
        .arg(format!("dir:{}", dir.path().display()))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", both(&o));
    let e = err(&o);
    assert!(
        e.contains(
            "--model /dev/zero: not a valid .resq file: not a .resq model file (bad magic bytes)"
        ),
        "{e}"
    );
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(!dir.path().join("opt").exists());
    // A firmware that never ends either: refused at the stated limit.
    let o = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -v 4000000; exec "$@""#)
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_resq"))
        .args(["bundle", "--board", "x86_64-host", "--model"])
        .arg(model())
        .args(["--firmware", "/dev/zero", "-o"])
        .arg(dir.path().join("b.tar"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", both(&o));
    assert!(
        err(&o).contains("firmware /dev/zero: more than 268435456 bytes (the limit)"),
        "{}",
        err(&o)
    );
}

#[test]
fn a_random_file_as_bundle_is_refused_in_words_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("random.bin");
    let mut rng = Rng(0x5eed_1234_abcd_9876);
    let bytes: Vec<u8> = (0..3 << 20).map(|_| rng.next() as u8).collect();
    fs::write(&p, &bytes).unwrap();
    // And one that passes for a tar at first sight (`ustar` at byte 257): the tar reader's
    // own message quotes the garbage name of its first header.
    let tar = dir.path().join("damaged.tar");
    let mut t = bytes.clone();
    t[257..265].copy_from_slice(b"ustar\x0000");
    fs::write(&tar, &t).unwrap();
    for (file, want) in [
        (
            &p,
            "not a resq bundle: expected a tar file written by `resq bundle`",
        ),
        (
            &tar,
            "not a resq bundle (a tar file written by `resq bundle`)",
        ),
    ] {
        let o = resq(&[
            "flash",
            "--bundle",
            s(file),
            "--to",
            &format!("dir:{}", dir.path().display()),
        ]);
        assert_eq!(o.status.code(), Some(3), "{}", both(&o));
        let e = String::from_utf8(o.stderr.clone()).expect("the message is text");
        assert!(e.contains(&format!("--bundle {}", file.display())), "{e}");
        assert!(e.contains(want), "{e}");
        assert!(
            e.chars()
                .all(|c| c == '\n' || (' '..='~').contains(&c) || c == '…'),
            "raw bytes in the message: {e:?}"
        );
        assert!(e.len() < 1000, "{e}");
    }
    assert!(!dir.path().join("opt").exists());
}

#[test]
fn a_fleet_where_some_boards_fail_exits_5_and_where_all_fail_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    fs::create_dir_all(&good).unwrap();
    let good_to = format!("dir:{}", good.display());
    let b = bundle_a();
    let id = bundle_id(&b);
    let o = resq(&[
        "flash",
        "--bundle",
        s(&b),
        "--to",
        &good_to,
        "--to",
        "dir:/nonexistent/card",
    ]);
    assert_eq!(o.status.code(), Some(5), "{}", both(&o));
    assert!(
        out(&o).contains("1 of 2 devices flashed, 1 failed"),
        "{}",
        out(&o)
    );
    assert!(err(&o).contains("1 of 2 devices failed"), "{}", err(&o));
    // The same as JSON, one object per board and line.
    let o = resq(&[
        "flash",
        "--bundle",
        s(&b),
        "--to",
        &good_to,
        "--to",
        "dir:/nonexistent/card",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(5), "{}", both(&o));
    let lines: Vec<serde_json::Value> = out(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2, "{}", out(&o));
    assert_eq!(lines[0]["target"], good_to.as_str());
    assert_eq!(lines[0]["status"], "unchanged");
    assert_eq!(lines[0]["release"], id.as_str());
    assert_eq!(lines[0]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(lines[0]["error"], serde_json::Value::Null);
    assert_eq!(lines[1]["target"], "dir:/nonexistent/card");
    assert_eq!(lines[1]["status"], "failed");
    assert_eq!(lines[1]["release"], serde_json::Value::Null);
    assert!(
        lines[1]["error"]
            .as_str()
            .unwrap()
            .contains("dir:/nonexistent/card is not a folder"),
        "{}",
        lines[1]
    );
    // Every board failed: status 1.
    let o = resq(&[
        "flash",
        "--bundle",
        s(&b),
        "--to",
        "dir:/nonexistent/a",
        "--to",
        "dir:/nonexistent/b",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    // --status as JSON, per board.
    let o = resq(&[
        "flash",
        "--status",
        "--json",
        "--to",
        &good_to,
        "--to",
        "dir:/nonexistent/c",
    ]);
    assert_eq!(o.status.code(), Some(5), "{}", both(&o));
    let lines: Vec<serde_json::Value> = out(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["status"], "ok");
    assert_eq!(lines[0]["release"], id.as_str());
    assert_eq!(lines[0]["verified"], true);
    assert_eq!(lines[0]["board"], "x86_64-host");
    assert_eq!(lines[1]["status"], "failed");
}

#[test]
fn bundle_json_names_the_file_its_size_and_sum() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("r.tar");
    let o = resq(&[
        "bundle",
        "--board",
        "x86_64-host",
        "--model",
        s(&model()),
        "--firmware",
        s(&firmware()),
        "-o",
        s(&f),
        "--json",
    ]);
    assert!(o.status.success(), "{}", both(&o));
    let v: serde_json::Value = serde_json::from_str(out(&o).trim()).expect("one JSON object");
    let bytes = fs::read(&f).unwrap();
    assert_eq!(v["file"], s(&f));
    assert_eq!(v["bytes"], bytes.len() as u64);
    assert_eq!(
        v["sha256"],
        resq_deploy::bundle::sha256_hex(&bytes).as_str()
    );
    assert_eq!(v["release"], bundle_id(&f).as_str());
    assert_eq!(v["board"], "x86_64-host");
    assert_eq!(v["model"]["classes"], 10);
    assert_eq!(v["files"].as_array().unwrap().len(), 4);
}

#[test]
fn a_failing_selftest_switches_back_and_deletes_the_bad_release() {
    let dir = tempfile::tempdir().unwrap();
    let ida = bundle_id(&bundle_a());
    // On an empty card: nothing was current, nothing is current afterwards.
    let o = flash_dir(&bundle_bad(), dir.path());
    assert!(!o.status.success());
    let e = err(&o);
    assert!(
        e.contains("the self-test failed") && e.contains("self-test FAILED"),
        "{e}"
    );
    assert!(e.contains("no release was installed before"), "{e}");
    assert_eq!(current(dir.path()), None);
    assert!(flash_dir(&bundle_a(), dir.path()).status.success());
    let o = flash_dir(&bundle_bad(), dir.path());
    assert!(!o.status.success());
    assert!(
        err(&o).contains(&format!("switched back to release {ida}")),
        "{}",
        err(&o)
    );
    assert_eq!(current(dir.path()), Some(ida));
    assert!(!dir.path().join("opt/resq/previous").exists());
    let releases = fs::read_dir(dir.path().join("opt/resq/releases"))
        .unwrap()
        .count();
    assert_eq!(releases, 1, "the failed release is deleted");
}

#[test]
fn a_file_damaged_in_transfer_is_caught_by_its_hash_and_never_activated() {
    let dir = tempfile::tempdir().unwrap();
    let ida = bundle_id(&bundle_a());
    assert!(flash_dir(&bundle_a(), dir.path()).status.success());
    for file in ["model.resq", "resq-fw", "manifest.json"] {
        let o = resq_env(
            &[
                "flash",
                "--bundle",
                s(&bundle_b()),
                "--to",
                &format!("dir:{}", dir.path().display()),
            ],
            &[("RESQ_FLASH_CORRUPT", file)],
        );
        assert!(!o.status.success(), "{file}");
        let e = err(&o);
        assert!(
            e.contains(&format!("{file} arrived damaged")) && e.contains("nothing was activated"),
            "{e}"
        );
        assert_eq!(current(dir.path()), Some(ida.clone()), "{file}");
    }
    // The next flash cleans up and succeeds.
    assert!(flash_dir(&bundle_b(), dir.path()).status.success());
    assert!(garbage(dir.path()).is_empty(), "{:?}", garbage(dir.path()));
    // A damaged bundle file is refused before anything is sent.
    let mut tar = fs::read(bundle_a()).unwrap();
    let at = tar.len() / 2;
    tar[at] ^= 1;
    let bad = dir.path().join("damaged.tar");
    fs::write(&bad, tar).unwrap();
    let o = flash_dir(&bad, dir.path());
    assert!(!o.status.success());
    assert!(
        err(&o).contains("does not match the manifest"),
        "{}",
        err(&o)
    );
}

#[test]
fn a_flash_killed_at_any_step_leaves_the_old_or_the_new_release_whole() {
    let dir = tempfile::tempdir().unwrap();
    let flash = |card: &str, bundle: &Path, kill: &str| {
        let to = format!("dir:{}", dir.path().join(card).display());
        run_and_kill(
            &["flash", "--bundle", s(bundle), "--to", &to],
            &[("RESQ_FLASH_KILL_AT", kill)],
            None,
        )
    };
    let n = kill_sweep(&KillSweep {
        base: dir.path(),
        flash: &flash,
        expected: &[
            "prepare:1",
            "upload:1",
            "uploaded:6",
            "seal-manifest:1",
            "activate-previous-link:1",
            "activate-current:1",
            "activated:1",
        ],
        point_prefix: "",
        stopped: "fault injection: stopping at",
    });
    println!(
        "killed a dir: flash at {} points ({} listed, {} on the switch-back path)",
        n.tried, n.listed, n.back
    );
}

#[test]
fn sigkill_at_random_moments_never_leaves_current_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (bundle_a(), bundle_b());
    let ids = [bundle_id(&a), bundle_id(&b)];
    assert!(flash_dir(&a, dir.path()).status.success());
    // How long one flash takes here, to spread the kills over it (not asserted).
    let t = Instant::now();
    assert!(flash_dir(&b, dir.path()).status.success());
    let span = t.elapsed().as_micros().max(1000) as u64;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut completed = 0;
    let runs = 30;
    for i in 0..runs {
        let next = if current(dir.path()).as_deref() == Some(ids[0].as_str()) {
            &b
        } else {
            &a
        };
        let after = Duration::from_micros(rng.next() % span);
        let (code, _) = run_and_kill(
            &[
                "flash",
                "--bundle",
                s(next),
                "--to",
                &format!("dir:{}", dir.path().display()),
            ],
            &[],
            Some(after),
        );
        if code == Some(0) {
            completed += 1;
        }
        let now = current(dir.path());
        assert!(
            now.as_ref().is_some_and(|c| ids.contains(c)),
            "run {i} killed after {after:?}: current {now:?}"
        );
    }
    println!("{runs} flashes SIGKILLed at random moments, {completed} finished first");
    let next = if current(dir.path()).as_deref() == Some(ids[0].as_str()) {
        &b
    } else {
        &a
    };
    assert!(flash_dir(next, dir.path()).status.success());
    assert!(garbage(dir.path()).is_empty(), "{:?}", garbage(dir.path()));
}

#[test]
fn bundle_writes_one_tar_for_offline_transport() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("release.tar");
    let o = resq(&[
        "bundle",
        "--board",
        "x86_64-host",
        "--model",
        s(&model()),
        "--firmware",
        s(&firmware()),
        "-o",
        s(&out_file),
    ]);
    assert!(o.status.success(), "{}", both(&o));
    let text = out(&o);
    assert!(
        text.contains("flash it with: resq flash --bundle"),
        "{text}"
    );
    let size = fs::metadata(&out_file).unwrap().len();
    println!("bundle with a stripped resq-fw: {size} bytes");
    let o = Command::new("tar")
        .arg("-xf")
        .arg(&out_file)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success());
    let id = bundle_id(&out_file);
    let unpacked = dir.path().join(&id);
    for f in [
        "resq-fw",
        "model.resq",
        "board.toml",
        "resq.service",
        "SHA256SUMS",
        "manifest.json",
    ] {
        assert!(unpacked.join(f).is_file(), "{f}");
    }
    check_release(&unpacked, "unpacked bundle");
    let o = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&unpacked)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", both(&o));
}

#[test]
fn bad_inputs_are_clear_errors_that_name_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let to = format!("dir:{}", dir.path().display());
    let m = model();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--board".into(),
                "rpi4".into(),
                "--model".into(),
                s(&m).into(),
                "--to".into(),
                to.clone(),
                "--firmware".into(),
                s(&firmware()).into(),
            ],
            "is a x86-64 program, but board `rpi4` runs aarch64-unknown-linux-gnu",
        ),
        (
            vec![
                "--board".into(),
                "rpi3".into(),
                "--model".into(),
                s(&m).into(),
                "--to".into(),
                to.clone(),
            ],
            "use one of",
        ),
        (
            vec![
                "--board".into(),
                "x86_64-host".into(),
                "--model".into(),
                s(&firmware()).into(),
                "--to".into(),
                to.clone(),
                "--firmware".into(),
                s(&firmware()).into(),
            ],
            "not a valid .resq file",
        ),
        (
            vec![
                "--board".into(),
                "x86_64-host".into(),
                "--model".into(),
                s(&m).into(),
                "--to".into(),
                "/mnt/rootfs".into(),
                "--firmware".into(),
                s(&firmware()).into(),
            ],
            "write --to ssh://user@host",
        ),
        (
            vec![
                "--board".into(),
                "x86_64-host".into(),
                "--model".into(),
                s(&m).into(),
                "--to".into(),
                "dir:/nonexistent/rootfs".into(),
                "--firmware".into(),
                s(&firmware()).into(),
            ],
            "mount the board's root filesystem",
        ),
        (
            vec![
                "--board".into(),
                "x86_64-host".into(),
                "--model".into(),
                s(&m).into(),
                "--firmware".into(),
                s(&firmware()).into(),
            ],
            "say where with --to",
        ),
        (
            vec![
                "--board".into(),
                "x86_64-host".into(),
                "--model".into(),
                s(&m).into(),
                "--to".into(),
                to.clone(),
                "--firmware".into(),
                "/nonexistent/resq-fw".into(),
            ],
            "cargo build --release -p resq-fw",
        ),
    ];
    for (args, want) in cases {
        let mut a = vec!["flash".to_string()];
        a.extend(args);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let o = resq(&a);
        assert!(!o.status.success(), "{a:?}");
        let e = err(&o);
        assert!(e.contains(want), "{a:?}: {e}");
        assert!(!e.contains("panicked"), "{e}");
    }
    // A board whose firmware is not built: the exact cargo command.
    let text = resq_deploy::board::BUILTIN
        .iter()
        .find(|(n, _)| *n == "rpi4")
        .unwrap()
        .1;
    let p = dir.path().join("riscv.toml");
    fs::write(
        &p,
        text.replace("aarch64-unknown-linux-gnu", "riscv64gc-unknown-linux-gnu"),
    )
    .unwrap();
    let o = resq(&["flash", "--board", s(&p), "--model", s(&m), "--to", &to]);
    let e = err(&o);
    assert!(e.contains("cargo build --release -p resq-fw --no-default-features --target riscv64gc-unknown-linux-gnu"), "{e}");
    assert!(e.contains("--firmware PATH"), "{e}");
    assert!(!dir.path().join("opt").exists(), "nothing was written");
}

#[test]
fn a_full_or_read_only_card_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    fs::create_dir(&small).unwrap();
    let _m = Tmpfs::mount(&small, "size=1m");
    let o = flash_dir(&bundle_a(), &small);
    assert!(!o.status.success());
    let e = err(&o);
    assert!(
        e.contains("MiB free") && e.contains("nothing was changed"),
        "{e}"
    );
    assert_eq!(current(&small), None);
    assert!(garbage(&small).is_empty(), "{:?}", garbage(&small));

    let ro = dir.path().join("ro");
    fs::create_dir(&ro).unwrap();
    let _r = Tmpfs::mount(&ro, "size=64m,ro");
    let o = flash_dir(&bundle_a(), &ro);
    assert!(!o.status.success());
    let e = err(&o);
    assert!(
        e.contains("Read-only file system") && e.contains("remount it read-write"),
        "{e}"
    );
}
