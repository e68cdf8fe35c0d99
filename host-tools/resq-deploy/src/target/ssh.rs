//! SSH targets, through the system OpenSSH client.
//!
//! Host keys are always verified (`StrictHostKeyChecking=yes`, from the user's known_hosts or
//! `--known-hosts FILE`), authentication is by key only (`BatchMode=yes`: no password or
//! passphrase prompt). One master connection is opened per device and every later command
//! runs over it (`ControlMaster`); the master's remote command waits on our pipe, so it ends
//! with this process even when that is killed.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{link_id, Device, Release, SelfTest, State, Switched};
use crate::board::Board;
use crate::bundle::{BundleFile, Manifest};
use crate::error::{Error, ErrorKind, Result};
use crate::uri::SshTarget;

const SCRIPT: &str = include_str!("scripts/device.sh");
const CHUNK: usize = 256 * 1024;

/// How to reach SSH targets.
#[derive(Clone, Debug, Default)]
pub struct SshOptions {
    /// Private key (`ssh -i`); else ssh's defaults and agent.
    pub identity: Option<PathBuf>,
    /// known_hosts file to verify host keys against; else the user's.
    pub known_hosts: Option<PathBuf>,
    /// ssh_config file (`ssh -F`); else the user's.
    pub config: Option<PathBuf>,
    /// Seconds to wait for a TCP connection (default 10).
    pub connect_timeout: Option<u32>,
}

/// A connected SSH device.
pub(crate) struct Ssh {
    target: SshTarget,
    opts: SshOptions,
    dir: PathBuf,
    master: Option<Child>,
    master_stdin: Option<std::process::ChildStdin>,
    root: String,
}

/// Removes the socket folders of resq processes that were killed (Linux: by their pid).
fn remove_stale(base: &std::path::Path) {
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    for e in std::fs::read_dir(base).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("resq-ssh-")
            .and_then(|r| r.split('-').next());
        if let Some(pid) = pid.filter(|p| p.parse::<u32>().is_ok()) {
            if !std::path::Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Quotes a word for a POSIX shell.
pub(crate) fn shq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Ssh {
    /// Opens the master connection (authenticating and verifying the host key once).
    pub(crate) fn connect(target: &SshTarget, opts: &SshOptions) -> Result<Ssh> {
        for (flag, p) in [
            ("--identity", &opts.identity),
            ("--known-hosts", &opts.known_hosts),
            ("--ssh-config", &opts.config),
        ] {
            if let Some(p) = p {
                if !p.exists() {
                    return Err(Error::new(
                        ErrorKind::BadInput,
                        format!("{flag} {}: no such file", p.display()),
                    ));
                }
            }
        }
        static N: AtomicU64 = AtomicU64::new(0);
        // Short: a ControlPath must fit a Unix socket name (about 100 bytes).
        let base = if std::env::temp_dir().as_os_str().len() < 60 {
            std::env::temp_dir()
        } else {
            PathBuf::from("/tmp")
        };
        remove_stale(&base);
        let dir = base.join(format!(
            "resq-ssh-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| crate::error::io_error("cannot create", &dir, &e))?;
        let mut ssh = Ssh {
            target: target.clone(),
            opts: opts.clone(),
            dir,
            master: None,
            master_stdin: None,
            root: format!("{}/opt/resq", target.prefix),
        };
        ssh.start_master()?;
        Ok(ssh)
    }

    fn destination(&self) -> String {
        self.target.host.clone()
    }

    fn base(&self) -> Command {
        let mut c = Command::new("ssh");
        if let Some(f) = &self.opts.config {
            c.arg("-F").arg(f);
        }
        c.args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "UpdateHostKeys=no",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "ServerAliveCountMax=4",
        ]);
        c.arg("-o").arg(format!(
            "ConnectTimeout={}",
            self.opts.connect_timeout.unwrap_or(10)
        ));
        if let Some(k) = &self.opts.known_hosts {
            c.arg("-o")
                .arg(format!("UserKnownHostsFile={}", k.display()));
            c.args(["-o", "GlobalKnownHostsFile=/dev/null"]);
        }
        if let Some(i) = &self.opts.identity {
            c.arg("-i").arg(i).args(["-o", "IdentitiesOnly=yes"]);
        }
        if let Some(p) = self.target.port {
            c.arg("-p").arg(p.to_string());
        }
        if let Some(u) = &self.target.user {
            c.arg("-l").arg(u);
        }
        c.arg("-o")
            .arg(format!("ControlPath={}", self.dir.join("cm").display()));
        c
    }

    fn start_master(&mut self) -> Result<()> {
        let log = self.dir.join("master.log");
        let log_file = std::fs::File::create(&log)
            .map_err(|e| crate::error::io_error("cannot create", &log, &e))?;
        let mut c = self.base();
        c.args([
            "-M",
            "-o",
            "ControlMaster=yes",
            "-o",
            "ControlPersist=no",
            "--",
        ])
        .arg(self.destination())
        // Waits for EOF on the pipe from this process: the connection ends with it.
        .arg("echo resq-ready $(uname -m); exec cat >/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file));
        let mut child = c.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::new(
                    ErrorKind::Connect,
                    "the OpenSSH client `ssh` is not installed on this machine",
                )
                .help("install it (Debian/Ubuntu: apt-get install openssh-client)")
            } else {
                Error::new(ErrorKind::Connect, format!("cannot run ssh: {e}"))
            }
        })?;
        let stdout = child.stdout.take();
        let mut ready = String::new();
        if let Some(out) = stdout {
            let _ = BufReader::new(out).read_line(&mut ready);
        }
        if !ready.starts_with("resq-ready") {
            let _ = child.kill();
            let _ = child.wait();
            let err = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(self.classify(&err));
        }
        self.master_stdin = child.stdin.take();
        self.master = Some(child);
        Ok(())
    }

    /// Turns ssh's own error output into an error that says what to change.
    fn classify(&self, stderr: &str) -> Error {
        let t = &self.target;
        let at = match t.port {
            Some(p) => format!("{}:{p}", t.host),
            None => t.host.clone(),
        };
        let user = t.user.clone().unwrap_or_else(|| "your user".into());
        let known = self
            .opts
            .known_hosts
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "~/.ssh/known_hosts".into());
        let keyscan_host = match t.port {
            Some(p) => format!("-p {p} {}", t.host),
            None => t.host.clone(),
        };
        let last = stderr
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.starts_with('@'))
            .unwrap_or("ssh failed without a message")
            .to_string();
        let has = |s: &str| stderr.contains(s);
        if has("Connection refused") {
            Error::new(
                ErrorKind::Connect,
                format!("cannot connect to {at}: connection refused"),
            )
            .help("is the board on and sshd running? check the host and port in --to")
        } else if has("Could not resolve hostname") || has("Name or service not known") {
            Error::new(
                ErrorKind::Connect,
                format!("cannot connect to {at}: unknown host name"),
            )
            .help("check the host in --to, or use the board's IP address")
        } else if has("timed out") || has("No route to host") || has("Network is unreachable") {
            Error::new(
                ErrorKind::Connect,
                format!("cannot connect to {at}: {last}"),
            )
            .help("is the board on and on this network? check the host in --to")
        } else if has("REMOTE HOST IDENTIFICATION HAS CHANGED")
            || has("Host key for") && has("has changed")
        {
            Error::new(
                ErrorKind::HostKey,
                format!("the host key of {at} differs from the one in {known}: refusing to connect (someone may be intercepting, or the board was reinstalled)"),
            )
            .help(format!(
                "if the board was reinstalled, check its new key on the board (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then replace the old line in {known} (ssh-keygen -R '[{}]:{}'), or pass --known-hosts FILE",
                t.host,
                t.port.unwrap_or(22)
            ))
        } else if has("host key is known") || has("Host key verification failed") {
            Error::new(
                ErrorKind::HostKey,
                format!("the host key of {at} is not in {known}: resq never accepts an unknown key"),
            )
            .help(format!(
                "add the board's key after checking its fingerprint against the board's (ssh-keyscan {keyscan_host} | ssh-keygen -lf -), or pass --known-hosts FILE"
            ))
        } else if has("Load key")
            || has("invalid format")
            || has("UNPROTECTED PRIVATE KEY")
            || has("bad permissions")
        {
            let key = self
                .opts
                .identity
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            Error::new(ErrorKind::Auth, format!("cannot use the key --identity {key}: {last}"))
                .help("pass a private key file readable only by you (chmod 600), without a passphrase or loaded into ssh-agent")
        } else if has("Permission denied") || has("Too many authentication failures") {
            Error::new(ErrorKind::Auth, format!("{at} refused key authentication as {user}"))
                .help(format!(
                    "pass --identity KEY whose public half is in ~{}/.ssh/authorized_keys on the board (ssh-copy-id -i KEY.pub {}{})",
                    t.user.clone().unwrap_or_default(),
                    t.user.as_ref().map(|u| format!("{u}@")).unwrap_or_default(),
                    t.host
                ))
        } else {
            Error::new(ErrorKind::Connect, format!("ssh to {at} failed: {last}"))
        }
    }

    /// Runs a command line on the device, feeding it `data` on stdin (`sent` follows the
    /// bytes written; `damage` flips the byte at that offset, for the corruption test);
    /// returns (exit code, stdout, stderr). Exit code 255 is ssh's own failure.
    fn run_with(
        &self,
        cmd: &str,
        data: &[u8],
        damage: Option<usize>,
        sent: &mut dyn FnMut(u64),
    ) -> Result<(i32, String, String)> {
        let mut child = self
            .base()
            .args(["-o", "ControlMaster=no", "--"])
            .arg(self.destination())
            .arg(cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::new(ErrorKind::Connect, format!("cannot run ssh: {e}")))?;
        let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
        let mut stdin = child.stdin.take();
        let (out, err) = std::thread::scope(|s| {
            // Readers on their own threads: the device may talk while we still send.
            let o = s.spawn(|| {
                let mut v = String::new();
                if let Some(r) = stdout.as_mut() {
                    let _ = r.read_to_string(&mut v);
                }
                v
            });
            let e = s.spawn(|| {
                let mut v = String::new();
                if let Some(r) = stderr.as_mut() {
                    let _ = r.read_to_string(&mut v);
                }
                v
            });
            if let Some(w) = stdin.as_mut() {
                let mut done = 0usize;
                for chunk in data.chunks(CHUNK) {
                    let r = match damage.filter(|&d| d >= done && d < done + chunk.len()) {
                        Some(d) => {
                            let mut c = chunk.to_vec();
                            c[d - done] ^= 0x40;
                            w.write_all(&c)
                        }
                        None => w.write_all(chunk),
                    };
                    if r.is_err() {
                        break; // the device stopped reading; its output says why
                    }
                    done += chunk.len();
                    sent(done as u64);
                    if data.len() > CHUNK {
                        crate::fault::point("upload");
                    }
                }
            }
            drop(stdin.take());
            (o.join().unwrap_or_default(), e.join().unwrap_or_default())
        });
        let status = child
            .wait()
            .map_err(|e| Error::new(ErrorKind::Connect, format!("ssh: {e}")))?;
        Ok((status.code().unwrap_or(-1), out, err))
    }

    fn run(&self, cmd: &str, stdin: &[u8]) -> Result<(i32, String, String)> {
        let r = self.run_with(cmd, stdin, None, &mut |_| {})?;
        if r.0 == 255 {
            return Err(self.classify(&r.2));
        }
        Ok(r)
    }

    /// Runs a command of scripts/device.sh (the script goes on the command line, so stdin
    /// is free for `data`); returns its stdout.
    fn script_with(
        &self,
        cmd: &str,
        args: &[String],
        data: &[u8],
        damage: Option<usize>,
        sent: &mut dyn FnMut(u64),
    ) -> Result<String> {
        let kill = crate::fault::remote_spec();
        let text = format!("RESQ_KILL={}\n{SCRIPT}", shq(&kill));
        let mut line = format!("sh -c {} resq {} {}", shq(&text), shq(cmd), shq(&self.root));
        for a in args {
            line.push(' ');
            line.push_str(&shq(a));
        }
        let (code, out, err) = self.run_with(&line, data, damage, sent)?;
        crate::fault::remote_passed(&out, &kill);
        if let Some(e) = out.lines().find_map(|l| l.strip_prefix("resq-error ")) {
            return Err(remote_error(e, &self.root));
        }
        if code == 255 {
            return Err(self.classify(&err));
        }
        if code != 0 || !out.lines().any(|l| l == "resq-done") {
            return Err(Error::new(
                ErrorKind::Device,
                format!(
                    "the device script `{cmd}` failed (exit {code}): {}",
                    err.trim()
                ),
            )
            .help("the device needs a POSIX sh with coreutils or busybox"));
        }
        Ok(out)
    }

    fn script(&self, cmd: &str, args: &[String]) -> Result<String> {
        self.script_with(cmd, args, b"", None, &mut |_| {})
    }

    /// Runs `resq-fw ARGS --model current/model.resq --board current/board.toml` on the
    /// device; returns its exit code and output.
    pub(crate) fn firmware(&self, args: &str) -> Result<(i32, String)> {
        let cur = format!("{}/current", self.root);
        let cmd = format!(
            "{} {args} --model {} --board {} 2>&1",
            shq(&format!("{cur}/resq-fw")),
            shq(&format!("{cur}/model.resq")),
            shq(&format!("{cur}/board.toml"))
        );
        let (code, out, _) = self.run(&cmd, b"")?;
        Ok((code, out))
    }

    /// Runs a shell command on the device.
    pub(crate) fn shell(&self, cmd: &str, stdin: &[u8]) -> Result<(i32, String, String)> {
        self.run(cmd, stdin)
    }

    /// Runs a shell command on the device, streaming `data` to it with progress.
    pub(crate) fn shell_with(
        &self,
        cmd: &str,
        data: &[u8],
        sent: &mut dyn FnMut(u64),
    ) -> Result<(i32, String, String)> {
        let r = self.run_with(cmd, data, None, sent)?;
        if r.0 == 255 {
            return Err(self.classify(&r.2));
        }
        Ok(r)
    }

    /// `<prefix>/opt/resq` on the device.
    pub(crate) fn root_path(&self) -> &str {
        &self.root
    }
}

/// The files as one tar stream of `.NAME.part` entries, and where each file's data starts.
fn tar_stream(files: &[BundleFile]) -> Result<(Vec<u8>, Vec<usize>)> {
    let mut b = tar::Builder::new(Vec::new());
    let mut starts = vec![];
    for f in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(f.data.len() as u64);
        h.set_mode(0o600);
        h.set_cksum();
        // A ustar header is one 512-byte block for names this short.
        starts.push(b.get_ref().len() + 512);
        b.append_data(&mut h, format!(".{}.part", f.name), f.data.as_slice())
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot pack the release: {e}")))?;
    }
    let bytes = b
        .into_inner()
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot pack the release: {e}")))?;
    Ok((bytes, starts))
}

impl Drop for Ssh {
    fn drop(&mut self) {
        // EOF on the master's stdin ends its remote command, and with it the connection.
        drop(self.master_stdin.take());
        if let Some(mut m) = self.master.take() {
            let _ = m.kill();
            let _ = m.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn remote_error(line: &str, root: &str) -> Error {
    let (kind, msg) = line.split_once(' ').unwrap_or((line, ""));
    match kind {
        "permission" => Error::new(ErrorKind::Permission, msg.to_string()).help(format!(
            "log in as a user that may write {root} (e.g. ssh://root@…), or give a prefix that user owns (ssh://pi@host/home/pi)"
        )),
        "disk-full" => Error::new(ErrorKind::DiskFull, msg.to_string())
            .help("free space on the board (old logs, other files) or use a bigger card; nothing was changed"),
        "corrupt" => Error::new(ErrorKind::Corrupt, format!("{msg}; nothing was activated"))
            .help("flash again; if it happens again, check the network and the board's storage"),
        "service" => Error::new(ErrorKind::Device, msg.to_string())
            .help("the release is installed and current; flash without --enable-service and start resq-fw your own way"),
        "service-user" => Error::new(ErrorKind::Device, msg.to_string()).help(
            "create it on the board (useradd --system --no-create-home resq && usermod -aG video,gpio resq), or set [install] user in the board profile; the release is installed and current",
        ),
        "tool" | "incomplete" | "exists" => Error::new(ErrorKind::Device, msg.to_string()),
        _ => Error::new(ErrorKind::Io, msg.to_string()),
    }
}

/// Parses the `state` output of scripts/device.sh.
pub(crate) fn parse_state(out: &str, root: &str) -> Result<State> {
    let mut st = State::default();
    for line in out.lines() {
        let mut w = line.splitn(3, ' ');
        match (w.next(), w.next(), w.next()) {
            (Some("resq-link"), Some(which), Some(target)) => {
                let id = link_id(target).ok_or_else(|| {
                    let what = if target == "!not-a-link" {
                        "is not a symbolic link".to_string()
                    } else {
                        format!("is not a link to a release folder ({target})")
                    };
                    Error::new(ErrorKind::Device, format!("{root}/{which} {what}")).help(format!(
                        "resq only replaces links it made: move {root}/{which} away first"
                    ))
                })?;
                if which == "current" {
                    st.current = Some(id);
                } else {
                    st.previous = Some(id);
                }
            }
            (Some("resq-release"), Some(c), Some(id)) if !id.starts_with('.') => {
                st.releases.push(Release {
                    id: id.to_string(),
                    complete: c == "complete",
                });
            }
            (Some("resq-free"), Some(kb), _) => {
                st.free_bytes = kb.parse::<u64>().ok().map(|k| k * 1024)
            }
            (Some("resq-arch"), Some(a), _) => st.arch = Some(a.to_string()),
            (Some("resq-manifest"), Some(which), Some(json)) => {
                let m: Option<Manifest> = serde_json::from_str(json).ok();
                if which == "current" {
                    st.current_manifest = m;
                } else {
                    st.previous_manifest = m;
                }
            }
            (Some("resq-verified"), Some(v), _) => st.current_verified = Some(v == "ok"),
            _ => {}
        }
    }
    st.releases.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(st)
}

/// The `resq-selftest CODE` and `resq-out LINE` lines of scripts/device.sh.
pub(crate) fn parse_selftest(out: &str) -> Option<SelfTest> {
    let code: i32 = out
        .lines()
        .find_map(|l| l.strip_prefix("resq-selftest "))?
        .trim()
        .parse()
        .ok()?;
    let mut output: String = out
        .lines()
        .filter_map(|l| l.strip_prefix("resq-out "))
        .map(|l| format!("{l}\n"))
        .collect();
    if code == 126 || output.contains("Exec format error") {
        output.push_str("(the device cannot execute this resq-fw: built for another --board?)\n");
    } else if code == 127 {
        output
            .push_str("(resq-fw was not found, or a library it needs is missing on the device)\n");
    }
    Some(SelfTest {
        passed: code == 0,
        output,
    })
}

fn file_args(files: &[BundleFile]) -> Vec<String> {
    files
        .iter()
        .flat_map(|f| [f.name.clone(), f.sha256.clone(), format!("{:o}", f.mode)])
        .collect()
}

impl Device for Ssh {
    fn root(&self) -> String {
        self.root.clone()
    }

    fn state(&mut self, verify: bool) -> Result<State> {
        let args = if verify {
            vec!["verify".to_string()]
        } else {
            vec![]
        };
        let out = self.script("state", &args)?;
        parse_state(&out, &self.root)
    }

    fn stage(
        &mut self,
        id: &str,
        keep: &[String],
        files: &[BundleFile],
        sent: &mut dyn FnMut(u64),
    ) -> Result<()> {
        let need: u64 = files.iter().map(|f| f.data.len() as u64).sum::<u64>() + 64 * 1024;
        let mut args = vec![
            id.to_string(),
            need.div_ceil(1024).to_string(),
            keep.len().to_string(),
        ];
        args.extend(keep.iter().cloned());
        args.extend(file_args(files));
        let (tar, starts) = tar_stream(files)?;
        let damage = files
            .iter()
            .zip(&starts)
            .find(|(f, _)| crate::fault::corrupt(&f.name))
            .map(|(f, s)| s + f.data.len() / 2);
        let total = files.iter().map(|f| f.data.len() as u64).sum::<u64>();
        self.script_with("stage", &args, &tar, damage, &mut |n| sent(n.min(total)))?;
        Ok(())
    }

    fn verify(&mut self, id: &str, files: &[BundleFile]) -> Result<()> {
        let mut args = vec![id.to_string()];
        args.extend(file_args(files));
        self.script("verify", &args)?;
        Ok(())
    }

    fn switch(
        &mut self,
        id: &str,
        current: Option<&str>,
        previous: Option<&str>,
        drop: bool,
        board: &Board,
    ) -> Result<Switched> {
        let a = |x: Option<&str>| x.unwrap_or("-").to_string();
        let out = self.script(
            "switch",
            &[
                id.to_string(),
                a(current),
                a(previous),
                if drop { "1" } else { "0" }.to_string(),
                board.install.unit.clone(),
            ],
        )?;
        Ok(Switched {
            selftest: parse_selftest(&out),
            restored: out.lines().any(|l| l == "resq-restored"),
            service: service_line(&out),
            warnings: warnings(&out),
        })
    }

    fn restore(&mut self, current: Option<&str>, previous: Option<&str>) -> Result<()> {
        let a = |x: Option<&str>| x.unwrap_or("-").to_string();
        self.script("restore", &[a(current), a(previous)])?;
        Ok(())
    }

    fn remove(&mut self, ids: &[String]) -> Result<()> {
        self.script("remove", ids)?;
        Ok(())
    }

    fn selftest(&mut self) -> Result<Option<SelfTest>> {
        let out = self.script("selftest", &[])?;
        Ok(parse_selftest(&out))
    }

    fn enable_service(&mut self, board: &Board) -> Result<(Option<String>, Vec<String>)> {
        let unit = board.unit(&self.root);
        let out = self.script_with(
            "service",
            &[
                board.install.unit.clone(),
                board.install.user.clone(),
                board.install.bin.clone(),
                board.install.model.clone(),
            ],
            unit.as_bytes(),
            None,
            &mut |_| {},
        )?;
        Ok((service_line(&out), warnings(&out)))
    }

    fn restart_service(&mut self, board: &Board) -> Result<(Option<String>, Vec<String>)> {
        let out = self.script("restart", std::slice::from_ref(&board.install.unit))?;
        Ok((service_line(&out), warnings(&out)))
    }
}

fn service_line(out: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.strip_prefix("resq-service "))
        .map(str::to_string)
}

fn warnings(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.strip_prefix("resq-warning "))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(shq("a b"), "'a b'");
        assert_eq!(shq("it's"), r"'it'\''s'");
    }

    #[test]
    fn state_output_parses_and_refuses_foreign_links() {
        let out = "resq-link current releases/B\nresq-link previous releases/A\nresq-release complete A\n\
                   resq-release incomplete C\nresq-release complete B\nresq-release incomplete .trash-X\n\
                   resq-free 2048\nresq-arch aarch64\nresq-done\n";
        let st = parse_state(out, "/opt/resq").unwrap();
        assert_eq!(st.current.as_deref(), Some("B"));
        assert_eq!(st.previous.as_deref(), Some("A"));
        assert_eq!(st.releases.len(), 3);
        assert_eq!(st.releases[0].id, "A");
        assert_eq!(st.free_bytes, Some(2 << 20));
        assert_eq!(st.arch.as_deref(), Some("aarch64"));
        let e = parse_state("resq-link current /usr/local/resq\n", "/opt/resq").unwrap_err();
        assert!(e.to_string().contains("move /opt/resq/current away"), "{e}");
        assert_eq!(link_id("releases/x"), Some("x".into()));
        assert_eq!(link_id("../releases/x"), None);
    }

    #[test]
    fn remote_errors_keep_their_kind() {
        assert_eq!(
            remote_error("disk-full only 1 MiB free", "/r").kind(),
            ErrorKind::DiskFull
        );
        assert_eq!(
            remote_error("permission cannot create", "/r").kind(),
            ErrorKind::Permission
        );
        assert_eq!(
            remote_error("corrupt model.resq arrived damaged", "/r").kind(),
            ErrorKind::Corrupt
        );
    }
}
