//! `resq flash` and `resq device` over SSH against real, throw-away `sshd`s on 127.0.0.1
//! (the "device" is a temporary folder used as the path prefix).

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// One sshd, a device folder, and the flags to reach it.
struct Board {
    sshd: Sshd,
    dev: tempfile::TempDir,
    flags: Vec<String>,
    _keys: tempfile::TempDir,
}

impl Board {
    fn new() -> Board {
        let sshd = Sshd::start();
        let keys = tempfile::tempdir().unwrap();
        let known = known_hosts(keys.path(), &[&sshd]);
        Board {
            flags: ssh_flags(&known),
            sshd,
            dev: tempfile::tempdir().unwrap(),
            _keys: keys,
        }
    }

    fn uri(&self) -> String {
        self.sshd.uri(self.dev.path())
    }

    fn prefix(&self) -> &Path {
        self.dev.path()
    }

    fn args<'a>(&'a self, first: &[&'a str]) -> Vec<&'a str> {
        let mut v: Vec<&str> = first.to_vec();
        v.extend(self.flags.iter().map(String::as_str));
        v
    }

    fn flash(&self, bundle: &Path) -> std::process::Output {
        let uri = self.uri();
        resq(&self.args(&["flash", "--bundle", s(bundle), "--to", &uri]))
    }
}

#[test]
fn flash_status_and_rollback_over_ssh() {
    let b = Board::new();
    let uri = b.uri();
    let (ida, idb) = (bundle_id(&bundle_a()), bundle_id(&bundle_b()));
    // First flash from --board / --model / --firmware, as a user would.
    let t = Instant::now();
    let o = resq(&b.args(&[
        "flash",
        "--board",
        "x86_64-host",
        "--model",
        s(&model()),
        "--firmware",
        s(&firmware()),
        "--to",
        &uri,
    ]));
    let took = t.elapsed();
    assert!(o.status.success(), "{}", both(&o));
    let text = out(&o);
    assert!(text.contains(&format!("flashed {uri}: release")), "{text}");
    assert!(text.contains("self-test  self-test passed"), "{text}");
    assert!(text.contains("sent "), "{text}");
    println!("first flash over ssh to localhost: {took:?} in all\n{text}");
    let first = check_whole(b.prefix(), "first flash").unwrap();

    let o = b.flash(&bundle_b());
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(check_whole(b.prefix(), "second flash"), Some(idb.clone()));
    assert!(
        out(&o).contains(&format!("previous   {first}")),
        "{}",
        out(&o)
    );

    let o = resq(&b.args(&["flash", "--status", "--to", &uri]));
    assert!(o.status.success(), "{}", both(&o));
    let st = out(&o);
    assert!(
        st.contains(&format!("current    {idb}")) && st.contains("files verified"),
        "{st}"
    );
    assert!(
        st.contains(&format!("previous   {first}")) && st.contains("arch       x86_64"),
        "{st}"
    );

    let o = resq(&b.args(&["flash", "--rollback", "--to", &uri]));
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        out(&o).contains(&format!(
            "current is now {first} (was {idb}), self-test passed"
        )),
        "{}",
        out(&o)
    );
    assert_eq!(check_whole(b.prefix(), "rollback"), Some(first.clone()));
    // The same content as bundle A, so flashing A finds it current.
    assert_eq!(first.rsplit('-').next(), ida.rsplit('-').next());
    let o = b.flash(&bundle_a());
    assert!(out(&o).contains("already current"), "{}", both(&o));
}

#[test]
fn a_failing_selftest_over_ssh_switches_back_automatically() {
    let b = Board::new();
    let ida = bundle_id(&bundle_a());
    assert!(b.flash(&bundle_a()).status.success());
    let o = b.flash(&bundle_bad());
    assert!(!o.status.success());
    let e = err(&o);
    assert!(
        e.contains("the self-test failed") && e.contains("self-test FAILED"),
        "{e}"
    );
    assert!(
        e.contains(&format!("switched back to release {ida}")),
        "{e}"
    );
    assert_eq!(check_whole(b.prefix(), "after the failed flash"), Some(ida));
    assert!(!b.prefix().join("opt/resq/previous").exists());
    assert_eq!(
        fs::read_dir(b.prefix().join("opt/resq/releases"))
            .unwrap()
            .count(),
        1,
        "the bad release is deleted"
    );
    assert!(garbage(b.prefix()).is_empty(), "{:?}", garbage(b.prefix()));
}

#[test]
fn a_file_damaged_in_transfer_over_ssh_is_never_activated() {
    let b = Board::new();
    let ida = bundle_id(&bundle_a());
    assert!(b.flash(&bundle_a()).status.success());
    let uri = b.uri();
    for file in ["resq-fw", "model.resq"] {
        let o = resq_env(
            &b.args(&["flash", "--bundle", s(&bundle_b()), "--to", &uri]),
            &[("RESQ_FLASH_CORRUPT", file)],
        );
        assert!(!o.status.success());
        let e = err(&o);
        assert!(
            e.contains(&format!("{file} arrived damaged")) && e.contains("nothing was activated"),
            "{e}"
        );
        assert_eq!(check_whole(b.prefix(), file), Some(ida.clone()));
    }
    assert!(b.flash(&bundle_b()).status.success());
    assert!(garbage(b.prefix()).is_empty(), "{:?}", garbage(b.prefix()));
}

#[test]
fn a_fleet_is_flashed_in_parallel_and_one_dead_board_does_not_stop_the_others() {
    let boards: Vec<Sshd> = (0..3).map(|_| Sshd::start()).collect();
    let keys = tempfile::tempdir().unwrap();
    let known = known_hosts(keys.path(), &boards.iter().collect::<Vec<_>>());
    let devs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // A closed port: a board that is off.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("ssh://{}@127.0.0.1:{dead_port}/tmp/nowhere", login());
    let mut lines: Vec<String> = boards
        .iter()
        .zip(&devs)
        .map(|(b, d)| b.uri(d.path()))
        .collect();
    lines.insert(1, dead.clone());
    let inv = keys.path().join("fleet.txt");
    fs::write(&inv, format!("# the lab\n{}\n", lines.join("\n"))).unwrap();
    let flags = ssh_flags(&known);
    let bundle = bundle_a();
    let mut args = vec![
        "flash",
        "--bundle",
        s(&bundle),
        "--inventory",
        s(&inv),
        "--jobs",
        "2",
    ];
    args.extend(flags.iter().map(String::as_str));
    let t = Instant::now();
    let o = resq(&args);
    println!(
        "fleet of 4 (one dead) with 2 connections: {:?}",
        t.elapsed()
    );
    assert!(
        !o.status.success(),
        "one board failed, so the command fails"
    );
    let text = out(&o);
    let ida = bundle_id(&bundle_a());
    for (l, d) in lines.iter().zip([&devs[0], &devs[0], &devs[1], &devs[2]]) {
        let line = text
            .lines()
            .find(|x| x.contains(l.as_str()))
            .unwrap_or_else(|| panic!("no line for {l}: {text}"));
        if *l == dead {
            assert!(
                line.starts_with("FAILED") && line.contains("connection refused"),
                "{line}"
            );
        } else {
            assert!(
                line.starts_with("ok") && line.contains(&ida) && line.contains("self-test passed"),
                "{line}"
            );
            assert_eq!(check_whole(d.path(), l), Some(ida.clone()));
        }
    }
    assert!(text.contains("3 of 4 devices flashed, 1 failed"), "{text}");
    // --to repeated works too, e.g. for the status of the live ones.
    let mut args = vec!["flash", "--status"];
    for l in lines.iter().filter(|l| **l != dead) {
        args.extend(["--to", l.as_str()]);
    }
    args.extend(flags.iter().map(String::as_str));
    let o = resq(&args);
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(
        out(&o).matches(&format!("current    {ida}")).count(),
        3,
        "{}",
        out(&o)
    );
}

#[test]
fn unknown_and_changed_host_keys_are_refused() {
    let b = Board::new();
    let keys = tempfile::tempdir().unwrap();
    // No entry for the board.
    let empty = keys.path().join("empty_known_hosts");
    fs::write(&empty, "").unwrap();
    let uri = b.uri();
    let cfg = ssh_config();
    let key = user_key();
    let bundle = bundle_a();
    let base = [
        "flash",
        "--bundle",
        s(&bundle),
        "--to",
        &uri,
        "--identity",
        s(&key),
        "--ssh-config",
        s(&cfg),
    ];
    let mut a = base.to_vec();
    a.extend(["--known-hosts", s(&empty)]);
    let o = resq(&a);
    assert!(!o.status.success());
    let e = err(&o);
    assert!(
        e.contains("is not in")
            && e.contains("never accepts an unknown key")
            && e.contains("--known-hosts"),
        "{e}"
    );
    assert!(
        fs::read(&empty).unwrap().is_empty(),
        "nothing was added to known_hosts"
    );
    // Another host's key for this address: a man in the middle, as far as ssh can tell.
    let other = Sshd::start();
    let wrong = keys.path().join("wrong_known_hosts");
    fs::write(
        &wrong,
        other
            .known_hosts_line()
            .replace(&other.port.to_string(), &b.sshd.port.to_string())
            + "\n",
    )
    .unwrap();
    let mut a = base.to_vec();
    a.extend(["--known-hosts", s(&wrong)]);
    let o = resq(&a);
    assert!(!o.status.success());
    let e = err(&o);
    assert!(
        e.contains("differs from the one in") && e.contains("refusing to connect"),
        "{e}"
    );
    assert!(!b.prefix().join("opt").exists(), "nothing was installed");
}

#[test]
fn a_closed_port_or_a_wrong_key_is_a_clear_error() {
    let b = Board::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let uri = format!("ssh://{}@127.0.0.1:{port}/tmp/x", login());
    let o = resq(&b.args(&["flash", "--bundle", s(&bundle_a()), "--to", &uri]));
    assert!(!o.status.success());
    let e = err(&o);
    assert!(
        e.contains(&format!(
            "cannot connect to 127.0.0.1:{port}: connection refused"
        )) && e.contains("check the host and port in --to"),
        "{e}"
    );
    // A key the board does not know.
    let keys = tempfile::tempdir().unwrap();
    let stranger = keys.path().join("stranger");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(st.success());
    let known = known_hosts(keys.path(), &[&b.sshd]);
    let uri = b.uri();
    let o = resq(&[
        "flash",
        "--bundle",
        s(&bundle_a()),
        "--to",
        &uri,
        "--identity",
        s(&stranger),
        "--known-hosts",
        s(&known),
        "--ssh-config",
        s(&ssh_config()),
    ]);
    assert!(!o.status.success());
    let e = err(&o);
    assert!(
        e.contains("refused key authentication") && e.contains("--identity KEY"),
        "{e}"
    );
    // A missing key file.
    let o = resq(&[
        "flash",
        "--bundle",
        s(&bundle_a()),
        "--to",
        &uri,
        "--identity",
        "/nonexistent/key",
    ]);
    assert!(
        err(&o).contains("--identity /nonexistent/key: no such file"),
        "{}",
        err(&o)
    );
    // A board of another architecture than the profile's.
    let o = resq(&b.args(&[
        "flash",
        "--board",
        "rpi4",
        "--model",
        s(&model()),
        "--firmware",
        s(&fake_aarch64(keys.path())),
        "--to",
        &uri,
    ]));
    assert!(!o.status.success());
    assert!(
        err(&o).contains("the device is x86_64 (uname -m), but board `rpi4` is for aarch64"),
        "{}",
        err(&o)
    );
    assert!(!b.prefix().join("opt").exists(), "nothing was installed");
}

/// A file that looks like an aarch64 program (only its ELF header is read before sending).
fn fake_aarch64(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("fake-aarch64-resq-fw");
    let mut elf = vec![0u8; 256];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[18..20].copy_from_slice(&183u16.to_le_bytes());
    fs::write(&p, elf).unwrap();
    p
}

#[test]
fn a_full_disk_or_missing_permission_on_the_board_is_a_clear_error() {
    let b = Board::new();
    let uri = b.uri();
    let small = b.prefix().join("small");
    fs::create_dir(&small).unwrap();
    {
        let _m = common::Tmpfs::mount(&small, "size=1m");
        let to = format!("{uri}/small");
        let o = resq(&b.args(&["flash", "--bundle", s(&bundle_a()), "--to", &to]));
        assert!(!o.status.success());
        let e = err(&o);
        assert!(
            e.contains("MiB free") && e.contains("nothing was changed"),
            "{e}"
        );
    }
    // A prefix where a file stands in the way of opt/resq: the board user cannot create it.
    fs::write(b.prefix().join("opt"), "not a folder").unwrap();
    let o = b.flash(&bundle_a());
    assert!(!o.status.success());
    let e = err(&o);
    assert!(
        e.contains("cannot create") && e.contains("log in as a user that may write"),
        "{e}"
    );
}

#[test]
fn enable_service_without_systemd_says_so_and_keeps_the_release() {
    let b = Board::new();
    let uri = b.uri();
    let unit_dir = tempfile::tempdir().unwrap();
    // A profile whose unit and [install] links go to a temporary folder, so the test never
    // touches /etc, /usr/local/bin or /var/lib.
    let text = resq_deploy::board::BUILTIN
        .iter()
        .find(|(n, _)| *n == "x86_64-host")
        .unwrap()
        .1;
    let profile = unit_dir.path().join("board.toml");
    let unit = unit_dir.path().join("resq-fw.service");
    let bin = unit_dir.path().join("bin/resq-fw");
    let model_link = unit_dir.path().join("lib/model.resq");
    fs::write(
        &profile,
        text.replace("/etc/systemd/system/resq-fw.service", s(&unit))
            .replace("/usr/local/bin/resq-fw", s(&bin))
            .replace("/var/lib/resq/model.resq", s(&model_link)),
    )
    .unwrap();
    let o = resq(&b.args(&[
        "flash",
        "--board",
        s(&profile),
        "--model",
        s(&model()),
        "--firmware",
        s(&firmware()),
        "--to",
        &uri,
        "--enable-service",
    ]));
    let id = check_whole(b.prefix(), "service");
    assert!(id.is_some(), "the release is installed and current");
    if o.status.success() {
        // A machine that runs systemd and has the user: the unit must be there, running the
        // profile's binary, a link to the current release.
        assert!(unit.is_file());
        let cur = format!("{}/opt/resq/current", s(b.prefix()));
        assert_eq!(
            fs::read_link(&bin).unwrap(),
            Path::new(&format!("{cur}/resq-fw"))
        );
        assert_eq!(
            fs::read_link(&model_link).unwrap(),
            Path::new(&format!("{cur}/model.resq"))
        );
        let text = fs::read_to_string(&unit).unwrap();
        assert!(
            text.contains(&format!(
                "ExecStart={} run --model {} --board {cur}/board.toml --json",
                s(&bin),
                s(&model_link)
            )),
            "{text}"
        );
        return;
    }
    let e = err(&o);
    assert!(e.contains("the release is installed and current"), "{e}");
    assert!(e.contains("systemctl") || e.contains("service user"), "{e}");
    assert!(
        !unit.exists()
            || fs::read_to_string(&unit)
                .unwrap()
                .contains(&format!("ExecStart={} run", s(&bin))),
        "no half-written unit"
    );
}

#[test]
fn device_bench_and_eval_print_the_boards_figures() {
    let b = Board::new();
    let uri = b.uri();
    let o = resq(&b.args(&["device", "bench", "--to", &uri, "--iterations", "3"]));
    assert!(!o.status.success());
    assert!(err(&o).contains("nothing is installed"), "{}", err(&o));
    assert!(b.flash(&bundle_a()).status.success());
    let o = resq(&b.args(&["device", "bench", "--to", &uri, "--iterations", "5"]));
    assert!(o.status.success(), "{}", both(&o));
    let text = out(&o);
    assert!(
        text.contains("inference") && text.contains("frames/s on the board"),
        "{text}"
    );
    println!("{text}");
    let o = resq(&b.args(&[
        "device",
        "bench",
        "--to",
        &uri,
        "--iterations",
        "2",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(out(&o).trim()).unwrap();
    assert!(
        v["bench"]["inference_ms"]["median"].as_f64().unwrap() > 0.0,
        "{v}"
    );

    let evals = || -> Vec<String> {
        fs::read_dir("/tmp")
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("resq-eval."))
            .collect()
    };
    let before = evals();
    // Accuracy on the board against the host's int8 engine, on the CIFAR-10 ic01 images.
    let (png, csv) = resq_e2e::ic01();
    let o = resq(&b.args(&[
        "device",
        "eval",
        "--to",
        &uri,
        "--images",
        s(&png),
        "--ground-truth",
        s(&csv),
        "--json",
    ]));
    assert!(o.status.success(), "{}", both(&o));
    let board: serde_json::Value = serde_json::from_str(out(&o).trim()).unwrap();
    assert_eq!(board["images"], 200);
    assert_eq!(board["classified"], 200, "{board}");
    let o = resq(&[
        "eval",
        s(&model()),
        "--images",
        s(&png),
        "--ground-truth",
        s(&csv),
        "--json",
    ]);
    assert!(o.status.success(), "{}", both(&o));
    let host: serde_json::Value = serde_json::from_str(out(&o).trim()).unwrap();
    println!(
        "top-1 on the board {} / 200, on the host {} / 200",
        board["top1"], host["top1_int8"]
    );
    assert_eq!(
        board["top1"], host["top1_int8"],
        "the board and the host run the same integer model"
    );
    let o = resq(&b.args(&[
        "device",
        "eval",
        "--to",
        &uri,
        "--images",
        s(&png),
        "--labels",
        s(&csv),
    ]));
    assert!(out(&o).contains("top-1 int8"), "{}", both(&o));
    // The temporary folder on the board is gone.
    assert_eq!(evals(), before);
    // A mounted card is not a running board.
    let o = resq(&["device", "bench", "--to", "dir:/mnt"]);
    assert!(
        err(&o).contains("runs on the board: pass --to ssh://"),
        "{}",
        err(&o)
    );
}

#[test]
fn an_ssh_flash_killed_at_any_step_leaves_the_old_or_the_new_release_whole() {
    let b = Board::new();
    let uri = b.uri();
    let flash = |card: &str, bundle: &Path, kill: &str| {
        let to = format!("{uri}/{card}");
        run_and_kill(
            &b.args(&["flash", "--bundle", s(bundle), "--to", &to]),
            &[("RESQ_FLASH_KILL_AT", kill)],
            None,
        )
    };
    let n = kill_sweep(&KillSweep {
        base: b.prefix(),
        flash: &flash,
        expected: &[
            "remote-prepare:1",
            "upload:1",
            "remote-received:1",
            "remote-seal-verified:6",
            "remote-seal-manifest:1",
            "remote-activate-previous:1",
            "remote-switched:1",
        ],
        point_prefix: "remote-",
        stopped: "fault injection",
    });
    println!(
        "killed an ssh flash at {} points ({} listed, {} on the switch-back path)",
        n.tried, n.listed, n.back
    );
}

#[test]
fn an_ssh_flash_sigkilled_at_random_moments_never_leaves_current_incomplete() {
    let b = Board::new();
    let (a, bb) = (bundle_a(), bundle_b());
    let ids = [bundle_id(&a), bundle_id(&bb)];
    assert!(b.flash(&a).status.success());
    let t = Instant::now();
    assert!(b.flash(&bb).status.success());
    let span = t.elapsed().as_micros() as u64;
    let uri = b.uri();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let runs = 12;
    let mut completed = 0;
    for i in 0..runs {
        let cur = check_whole(b.prefix(), "before");
        let next = if cur.as_deref() == Some(ids[0].as_str()) {
            &bb
        } else {
            &a
        };
        let after = Duration::from_micros(rng.next() % span.max(1));
        let mut args = vec!["flash", "--bundle", s(next), "--to", &uri];
        args.extend(b.flags.iter().map(String::as_str));
        let (code, _) = run_and_kill(&args, &[], Some(after));
        if code == Some(0) {
            completed += 1;
        }
        // A device script that was running when the host died finishes or stops on its own;
        // at every moment current is whole.
        for _ in 0..3 {
            let now = check_whole(b.prefix(), &format!("run {i} killed after {after:?}"));
            assert!(
                now.as_ref().is_some_and(|c| ids.contains(c)),
                "run {i}: current {now:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    println!("{runs} ssh flashes SIGKILLed at random moments, {completed} finished first");
    let cur = check_whole(b.prefix(), "end");
    let next = if cur.as_deref() == Some(ids[0].as_str()) {
        &bb
    } else {
        &a
    };
    let o = b.flash(next);
    assert!(o.status.success(), "{}", both(&o));
    assert!(garbage(b.prefix()).is_empty(), "{:?}", garbage(b.prefix()));
}
