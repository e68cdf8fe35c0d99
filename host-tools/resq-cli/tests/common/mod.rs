//! What the flash tests share: the `resq` and `resq-fw` binaries, test models and bundles,
//! an independent check of what is installed, and throw-away `sshd`s on 127.0.0.1.

#![allow(dead_code)]

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use resq_deploy::bundle::sha256_hex;

pub fn resq(args: &[&str]) -> Output {
    resq_env(args, &[])
}

pub fn resq_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_resq"));
    c.args(args).stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run resq")
}

pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn both(o: &Output) -> String {
    format!("{}{}", out(o), err(o))
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Files shared by the tests of one run, under cargo's temp dir for tests; those of earlier
/// runs whose process is gone are removed.
fn shared() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        for e in fs::read_dir(base).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = n
                .strip_prefix("resq-flash-")
                .and_then(|r| r.rsplit('-').next())
            {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        let exe = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let dir = base.join(format!(
            "resq-flash-{}-{}",
            exe.split('-').next().unwrap_or("t"),
            std::process::id()
        ));
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    })
}

/// `target/release/resq-fw` beside this test binary, built if missing (the README's test
/// command builds it anyway).
pub fn firmware_unstripped() -> PathBuf {
    static FW: OnceLock<PathBuf> = OnceLock::new();
    FW.get_or_init(|| {
        let exe = std::env::current_exe().expect("test exe");
        let release = exe.parent().and_then(Path::parent).expect("target/release");
        let fw = release.join("resq-fw");
        if !fw.is_file() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let st = Command::new(cargo)
                .args(["build", "--release", "-p", "resq-fw"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo");
            assert!(st.success(), "cargo build --release -p resq-fw failed");
        }
        assert!(fw.is_file(), "no {}", fw.display());
        fw
    })
    .clone()
}

/// A copy of resq-fw without debug info (a tenth of the size: quicker transfers, fewer
/// transfer kill points); the unstripped one where `strip` is missing.
pub fn firmware() -> PathBuf {
    static FW: OnceLock<PathBuf> = OnceLock::new();
    FW.get_or_init(|| {
        let src = firmware_unstripped();
        let dst = shared().join("resq-fw");
        fs::copy(&src, &dst).expect("copy resq-fw");
        let stripped = Command::new("strip")
            .arg(&dst)
            .status()
            .is_ok_and(|s| s.success());
        if !stripped {
            fs::copy(&src, &dst).expect("copy resq-fw");
        }
        dst
    })
    .clone()
}

/// ResNet-8 converted from the shipped ONNX with the shipped calibration images.
pub fn model() -> PathBuf {
    static M: OnceLock<PathBuf> = OnceLock::new();
    M.get_or_init(|| {
        let p = shared().join("resnet8.resq");
        resq_host::demo::run_demo(
            &resq_host::demo::models_dir(),
            &p,
            &resq_host::progress::NoProgress,
        )
        .expect("convert ResNet-8");
        p
    })
    .clone()
}

/// The same model with a wrong self-test vector; the file still validates (CRC fixed).
pub fn bad_model() -> PathBuf {
    static M: OnceLock<PathBuf> = OnceLock::new();
    M.get_or_init(|| {
        let mut bytes = fs::read(model()).expect("model");
        let aligned = resq_engine::AlignedBytes::new(&bytes);
        let m = resq_format::Model::parse(aligned.as_bytes()).expect("parse");
        let r = m.meta.self_test.expected;
        let wrong: Vec<u8> = m.i8s(r).iter().map(|&v| (v as u8) ^ 0x55).collect();
        resq_format::write::patch_data(&mut bytes, r, &wrong);
        let p = shared().join("bad-selftest.resq");
        fs::write(&p, &bytes).expect("write");
        let aligned = resq_engine::AlignedBytes::new(&bytes);
        resq_format::Model::parse(aligned.as_bytes()).expect("the patched file still validates");
        p
    })
    .clone()
}

/// A copy of the x86_64-host profile with another description: a second, different release
/// with the same firmware and model.
pub fn board_v2() -> PathBuf {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        let text = resq_deploy::board::BUILTIN
            .iter()
            .find(|(n, _)| *n == "x86_64-host")
            .expect("x86_64-host")
            .1;
        let p = shared().join("x86_64-host-v2.toml");
        fs::write(&p, text.replace("description = \"", "description = \"v2: ")).expect("write");
        p
    })
    .clone()
}

/// `resq bundle` of (board, model) into `name`, built once.
pub fn bundle(name: &str, board: &str, model: &Path) -> PathBuf {
    let p = shared().join(name);
    if !p.is_file() {
        let tmp = shared().join(format!("{name}.building.{:?}", std::thread::current().id()));
        let o = resq(&[
            "bundle",
            "--board",
            board,
            "--model",
            s(model),
            "--firmware",
            s(&firmware()),
            "-o",
            s(&tmp),
        ]);
        assert!(o.status.success(), "{}", both(&o));
        fs::rename(&tmp, &p).expect("rename");
    }
    p
}

/// Release A (x86_64-host + ResNet-8), B (another profile text), BAD (failing self-test).
pub fn bundle_a() -> PathBuf {
    bundle("a.tar", "x86_64-host", &model())
}
pub fn bundle_b() -> PathBuf {
    let b = board_v2();
    bundle("b.tar", s(&b), &model())
}
pub fn bundle_bad() -> PathBuf {
    bundle("bad.tar", "x86_64-host", &bad_model())
}

/// The release id inside a bundle file.
pub fn bundle_id(p: &Path) -> String {
    let o = Command::new("tar").arg("-tf").arg(p).output().expect("tar");
    out(&o)
        .lines()
        .next()
        .and_then(|l| l.split('/').next())
        .expect("id")
        .to_string()
}

/// The release `current` points at, checked independently of resq-deploy: a relative link
/// `releases/<id>` to a release whose manifest lists files that all exist with their SHA-256
/// and size; `previous` likewise. Panics with `context` otherwise.
pub fn check_whole(prefix: &Path, context: &str) -> Option<String> {
    let root = prefix.join("opt/resq");
    let read = |name: &str| -> Option<String> {
        let link = root.join(name);
        match fs::read_link(&link) {
            Ok(t) => {
                let t = t.to_str().expect("utf-8").to_string();
                let id = t
                    .strip_prefix("releases/")
                    .unwrap_or_else(|| panic!("{context}: {name} -> {t} is not releases/<id>"));
                check_release(
                    &root.join("releases").join(id),
                    &format!("{context}: {name}"),
                );
                Some(id.to_string())
            }
            Err(_) => {
                assert!(!link.exists(), "{context}: {name} is not a link");
                None
            }
        }
    };
    let _ = read("previous");
    read("current")
}

pub fn check_release(dir: &Path, context: &str) {
    let m: serde_json::Value = serde_json::from_slice(
        &fs::read(dir.join("manifest.json"))
            .unwrap_or_else(|e| panic!("{context}: {} has no manifest: {e}", dir.display())),
    )
    .unwrap_or_else(|e| panic!("{context}: bad manifest in {}: {e}", dir.display()));
    let files = m["files"].as_array().expect("files");
    assert_eq!(files.len(), 4, "{context}");
    for f in files {
        let name = f["name"].as_str().expect("name");
        let data = fs::read(dir.join(name))
            .unwrap_or_else(|e| panic!("{context}: {name} missing in {}: {e}", dir.display()));
        assert_eq!(
            data.len() as u64,
            f["size"].as_u64().expect("size"),
            "{context}: {name} size"
        );
        assert_eq!(
            sha256_hex(&data),
            f["sha256"].as_str().expect("sha"),
            "{context}: {name} hash in {}",
            dir.display()
        );
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(dir.join("resq-fw"))
        .expect("resq-fw")
        .permissions()
        .mode();
    assert!(mode & 0o111 != 0, "{context}: resq-fw is not executable");
}

/// Leftovers of interrupted flashes: dot folders and `.part` files, incomplete releases,
/// `*.tmp` links.
pub fn garbage(prefix: &Path) -> Vec<String> {
    let root = prefix.join("opt/resq");
    let mut g = vec![];
    for e in fs::read_dir(root.join("releases"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with('.') || !e.path().join("manifest.json").is_file() {
            g.push(format!("releases/{n}"));
        } else {
            for f in fs::read_dir(e.path()).into_iter().flatten().flatten() {
                let f = f.file_name().to_string_lossy().into_owned();
                if f.starts_with('.') {
                    g.push(format!("releases/{n}/{f}"));
                }
            }
        }
    }
    for t in ["current.tmp", "previous.tmp"] {
        if root.join(t).symlink_metadata().is_ok() {
            g.push(t.to_string());
        }
    }
    g
}

/// `cp -a`: a card (or device folder) in a known state, links and modes kept.
pub fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(st.success());
}

/// A small deterministic random source (xorshift) for kill times.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Kill points a flash passes (`RESQ_FLASH_KILL_AT=list`), in order.
pub fn kill_points(o: &Output) -> Vec<String> {
    err(o)
        .lines()
        .filter_map(|l| l.strip_prefix("resq-kill-point "))
        .map(str::to_string)
        .collect()
}

/// Picks the points to try: every one except most transfer chunks (first, one in the
/// middle and the last of those are kept).
pub fn select_points(points: &[String]) -> Vec<String> {
    let uploads: Vec<&String> = points.iter().filter(|p| p.starts_with("upload:")).collect();
    let keep: Vec<&String> = match uploads.len() {
        0 => vec![],
        n => vec![uploads[0], uploads[n / 2], uploads[n - 1]],
    };
    points
        .iter()
        .filter(|p| !p.starts_with("upload:") || keep.contains(p))
        .cloned()
        .collect()
}

/// A flash of `(device folder name, bundle, kill point)`: exit code and output.
pub type FlashAt<'a> = dyn Fn(&str, &Path, &str) -> (Option<i32>, String) + Sync + 'a;

/// One kind of target for [`kill_sweep`].
pub struct KillSweep<'a> {
    /// The folder holding the device folders (path prefixes) the sweep uses: `template`,
    /// `list`, `card0`, `card1`, …
    pub base: &'a Path,
    /// `resq flash --bundle BUNDLE` to the device folder `base/NAME`, run by [`run_and_kill`]
    /// with `RESQ_FLASH_KILL_AT=KILL` (empty: no kill): `(NAME, BUNDLE, KILL)` → its exit
    /// code and output.
    pub flash: &'a FlashAt<'a>,
    /// Points a flash of a new release must pass.
    pub expected: &'a [&'a str],
    /// What this target's point names start with (`remote-` for the device script's).
    pub point_prefix: &'a str,
    /// What resq prints when it stopped at the point asked for.
    pub stopped: &'a str,
}

/// What [`kill_sweep`] did.
pub struct SweepCounts {
    /// Flashes killed and checked.
    pub tried: usize,
    /// Points a flash of a new release passes.
    pub listed: usize,
    /// Points on the switch-back path of a failing self-test.
    pub back: usize,
}

/// The kill-point sweep: from a device where release A is current, a flash of B (and of BAD,
/// whose self-test fails, for the switch-back path) is killed at each point it passes (see
/// [`select_points`]); after each kill `current` is A or the new release, whole, and the
/// next flash of B cleans up whatever the kill left and succeeds. Each kill has its own copy
/// of the starting device, so the kills run on a worker per core.
pub fn kill_sweep(t: &KillSweep) -> SweepCounts {
    let (a, b, bad) = (bundle_a(), bundle_b(), bundle_bad());
    let (ida, idb, idbad) = (bundle_id(&a), bundle_id(&b), bundle_id(&bad));
    // The starting device: A current.
    let template = t.base.join("template");
    fs::create_dir_all(&template).expect("create the template device");
    let (code, text) = (t.flash)("template", &a, "");
    assert_eq!(code, Some(0), "{text}");
    let list = |bundle: &Path| {
        let card = t.base.join("list");
        let _ = fs::remove_dir_all(&card);
        copy_tree(&template, &card);
        let (_, text) = (t.flash)("list", bundle, "list");
        text.lines()
            .filter_map(|l| l.strip_prefix("resq-kill-point "))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let points = list(&b);
    for p in t.expected {
        assert!(points.contains(&p.to_string()), "{p} in {points:?}");
    }
    // The switch-back path: points of a flash whose self-test fails.
    let (restore, remove) = (
        format!("{}restore", t.point_prefix),
        format!("{}remove", t.point_prefix),
    );
    let back: Vec<String> = list(&bad)
        .into_iter()
        .filter(|p| p.starts_with(&restore) || p.starts_with(&remove))
        .collect();
    assert!(
        back.iter()
            .any(|p| p.starts_with(&format!("{restore}-current"))),
        "{back:?}"
    );
    // Each kill gets its own card, so the cards are independent: a worker per core.
    let jobs: Vec<(&Path, &String, String)> = select_points(&points)
        .into_iter()
        .map(|p| (b.as_path(), &idb, p))
        .chain(back.iter().map(|p| (bad.as_path(), &idbad, p.clone())))
        .collect();
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((bundle, new_id, p)) = jobs.get(i) else {
                    break;
                };
                let name = format!("card{i}");
                let card = t.base.join(&name);
                copy_tree(&template, &card);
                let (_, text) = (t.flash)(&name, bundle, p);
                assert!(text.contains(t.stopped), "{p}: not reached: {text}");
                let now = check_whole(&card, p);
                assert!(
                    now.as_ref() == Some(&ida) || now.as_ref() == Some(*new_id),
                    "{p}: current {now:?}"
                );
                // The next flash cleans up whatever the kill left and succeeds.
                let (code, text) = (t.flash)(&name, &b, "");
                assert_eq!(code, Some(0), "{p}: {text}");
                assert_eq!(check_whole(&card, p).as_ref(), Some(&idb), "{p}");
                assert!(garbage(&card).is_empty(), "{p}: {:?}", garbage(&card));
                fs::remove_dir_all(&card).unwrap();
            });
        }
    });
    let tried = jobs.len();
    SweepCounts {
        tried,
        listed: points.len(),
        back: back.len(),
    }
}

/// Runs resq in its own process group; kills the whole group (resq and its ssh children,
/// as a host losing power would) after `after`, or when it ended by itself.
pub fn run_and_kill(
    args: &[&str],
    env: &[(&str, &str)],
    after: Option<Duration>,
) -> (Option<i32>, String) {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(env!("CARGO_BIN_EXE_resq"));
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().expect("spawn resq");
    let pid = child.id();
    if let Some(d) = after {
        let deadline = std::time::Instant::now() + d;
        while std::time::Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
    }
    let o = child.wait_with_output().expect("wait");
    // Whatever the group still runs (ssh children of an aborted resq) goes too.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
    (o.status.code(), both(&o))
}

// ---- sshd on 127.0.0.1 ----

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", ""])
        .arg("-f")
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen (package openssh-client)");
    assert!(st.success());
}

/// The user key every test sshd accepts.
pub fn user_key() -> PathBuf {
    static K: OnceLock<PathBuf> = OnceLock::new();
    K.get_or_init(|| {
        let k = shared().join("user_ed25519");
        keygen(&k);
        k
    })
    .clone()
}

/// An empty ssh_config, so the tests do not depend on the user's.
pub fn ssh_config() -> PathBuf {
    let p = shared().join("ssh_config");
    if !p.exists() {
        fs::write(&p, "").expect("write");
    }
    p
}

pub fn login() -> String {
    let o = Command::new("id").arg("-un").output().expect("id");
    out(&o).trim().to_string()
}

/// A throw-away sshd on 127.0.0.1 with its own host key; stopped on drop.
pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl Sshd {
    pub fn start() -> Sshd {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(
            sshd.is_file(),
            "these tests need /usr/sbin/sshd: apt-get install openssh-server (.ci/run does)"
        );
        // Privilege separation directory, as the package's service would create it.
        let _ = fs::create_dir_all("/run/sshd");
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        keygen(&d.join("host_ed25519"));
        let key = fs::read_to_string(user_key().with_extension("pub")).expect("user key");
        fs::write(d.join("authorized_keys"), key).expect("write");
        for attempt in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let cfg = d.join("sshd_config");
            fs::write(
                &cfg,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nAuthorizedKeysFile {d}/authorized_keys\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nStrictModes no\n\
                     UsePAM no\nPidFile {d}/sshd.pid\nPermitRootLogin prohibit-password\nMaxStartups 50\nMaxSessions 50\n",
                    d = d.display()
                ),
            )
            .expect("write");
            let log = fs::File::create(d.join(format!("sshd.{attempt}.log"))).expect("log");
            let mut child = Command::new(sshd)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start sshd");
            for _ in 0..200 {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Sshd { dir, port, child };
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let logs: String = (0..5)
            .filter_map(|i| fs::read_to_string(d.join(format!("sshd.{i}.log"))).ok())
            .collect();
        panic!("sshd did not start:\n{logs}");
    }

    /// Its known_hosts line.
    pub fn known_hosts_line(&self) -> String {
        let key = fs::read_to_string(self.dir.path().join("host_ed25519.pub")).expect("host key");
        format!("[127.0.0.1]:{} {}", self.port, key.trim())
    }

    /// `ssh://user@127.0.0.1:PORT<prefix>`.
    pub fn uri(&self, prefix: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            login(),
            self.port,
            prefix.display()
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A known_hosts file for these sshds.
pub fn known_hosts(dir: &Path, sshds: &[&Sshd]) -> PathBuf {
    let p = dir.join("known_hosts");
    let text: String = sshds.iter().map(|s| s.known_hosts_line() + "\n").collect();
    fs::write(&p, text).expect("write");
    p
}

/// The SSH flags for the tests: the throw-away user key, these known hosts, no user config.
pub fn ssh_flags(known: &Path) -> Vec<String> {
    vec![
        "--identity".into(),
        s(&user_key()).into(),
        "--known-hosts".into(),
        s(known).into(),
        "--ssh-config".into(),
        s(&ssh_config()).into(),
    ]
}

/// A tmpfs mounted at a folder (a small card, a read-only one), unmounted on drop. Mounting
/// needs root (or CAP_SYS_ADMIN): the README's test command runs as root in CI; elsewhere the
/// test fails and says so rather than passing without its case.
pub struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    pub fn mount(dir: &std::path::Path, opts: &str) -> Tmpfs {
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs ({opts}) at {}: {}this test needs root or CAP_SYS_ADMIN \
             (run the tests as root, as CI does)",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}
