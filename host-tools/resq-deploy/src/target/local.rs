//! `dir:` targets: a board's root filesystem mounted on this machine. The same protocol as
//! scripts/device.sh, in Rust: `File::sync_all` for files and folders, `rename(2)` for links.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{link_id, Device, Release, SelfTest, State, Switched};
use crate::board::{host_triple, Board};
use crate::bundle::{sha256_hex, BundleFile, Manifest};
use crate::error::{io_error, Error, ErrorKind, Result};
use crate::fault::{corrupt, point};

const CHUNK: usize = 256 * 1024;

/// A mounted root filesystem.
pub(crate) struct Local {
    prefix: PathBuf,
    root: PathBuf,
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("cannot sync", dir, &e))
}

impl Local {
    pub(crate) fn open(prefix: &Path) -> Result<Local> {
        if !prefix.is_dir() {
            return Err(Error::new(
                ErrorKind::BadUri,
                format!("dir:{} is not a folder", prefix.display()),
            )
            .help("mount the board's root filesystem (the SD card's root partition or an image) there first, or fix the path in --to dir:PATH"));
        }
        Ok(Local {
            prefix: prefix.to_path_buf(),
            root: prefix.join("opt/resq"),
        })
    }

    fn release(&self, id: &str) -> PathBuf {
        self.root.join("releases").join(id)
    }

    fn is_complete(&self, id: &str) -> bool {
        self.release(id).join("manifest.json").is_file()
    }

    fn read_link(&self, name: &str) -> Result<Option<String>> {
        let p = self.root.join(name);
        match fs::read_link(&p) {
            Ok(t) => {
                let t = t.to_string_lossy().into_owned();
                link_id(&t).map(Some).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Device,
                        format!("{} is not a link to a release folder ({t})", p.display()),
                    )
                    .help(format!(
                        "resq only replaces links it made: move {} away first",
                        p.display()
                    ))
                })
            }
            Err(_) if p.exists() => Err(Error::new(
                ErrorKind::Device,
                format!("{} is not a symbolic link", p.display()),
            )
            .help(format!(
                "resq only replaces links it made: move {} away first",
                p.display()
            ))),
            Err(_) => Ok(None),
        }
    }

    /// Points `name` at `releases/<id>` (or removes it) with one rename.
    fn set_link(&self, name: &str, id: Option<&str>, label: &str) -> Result<()> {
        let link = self.root.join(name);
        let Some(id) = id else {
            match fs::remove_file(&link) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("cannot remove", &link, &e)),
            }
            point(label);
            return Ok(());
        };
        let tmp = self.root.join(format!("{name}.tmp"));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(format!("releases/{id}"), &tmp)
            .map_err(|e| io_error("cannot create the link", &tmp, &e))?;
        point(&format!("{label}-link"));
        fs::rename(&tmp, &link).map_err(|e| io_error("cannot replace", &link, &e))?;
        point(label);
        Ok(())
    }

    fn remove_dir(&self, dir: &Path, name: &str) -> Result<()> {
        // Renamed first, so a half-deleted release never looks complete.
        let trash = self.root.join("releases").join(format!(".trash-{name}"));
        fs::rename(dir, &trash).map_err(|e| io_error("cannot remove", dir, &e))?;
        point("remove-rename");
        fs::remove_dir_all(&trash).map_err(|e| io_error("cannot remove", &trash, &e))?;
        point("remove");
        Ok(())
    }

    fn check(&self, dir: &Path, file: &BundleFile, name: &str) -> Result<()> {
        let p = dir.join(name);
        let data = fs::read(&p).map_err(|e| io_error("cannot read", &p, &e))?;
        let got = sha256_hex(&data);
        if got != file.sha256 {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "{} arrived damaged in {}: SHA-256 {got}, expected {}; nothing was activated",
                    file.name,
                    dir.display(),
                    file.sha256
                ),
            )
            .help("flash again; if it happens again, check the card or disk"));
        }
        Ok(())
    }
}

/// Free bytes on the file system holding `path` (`df`; `None` if it cannot tell).
fn free_bytes(path: &Path) -> Option<u64> {
    let mut p = path.to_path_buf();
    while !p.is_dir() {
        p = p.parent()?.to_path_buf();
    }
    let out = std::process::Command::new("df")
        .arg("-Pk")
        .arg(&p)
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    let kb: u64 = s.lines().last()?.split_whitespace().nth(3)?.parse().ok()?;
    Some(kb * 1024)
}

/// The steps of the protocol, each ending at a kill point for the interruption tests.
impl Local {
    fn prepare(&mut self, id: &str, keep: &[String], need: u64) -> Result<()> {
        let releases = self.root.join("releases");
        fs::create_dir_all(&releases).map_err(|e| io_error("cannot create", &releases, &e))?;
        for tmp in ["current.tmp", "previous.tmp"] {
            let _ = fs::remove_file(self.root.join(tmp));
        }
        // What an interrupted flash left: dot folders and incomplete releases.
        for e in fs::read_dir(&releases)
            .map_err(|e| io_error("cannot read", &releases, &e))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if name.starts_with('.') {
                if path.is_dir() {
                    fs::remove_dir_all(&path).map_err(|e| io_error("cannot remove", &path, &e))?;
                } else {
                    let _ = fs::remove_file(&path);
                }
            } else if path.is_dir() && !self.is_complete(&name) && !keep.contains(&name) {
                self.remove_dir(&path, &name)?;
            }
            point("prepare-clean");
        }
        if let Some(free) = free_bytes(&releases) {
            if free < need {
                return Err(Error::new(
                    ErrorKind::DiskFull,
                    format!(
                        "only {} MiB free for {}, the release needs {} MiB",
                        free >> 20,
                        self.root.display(),
                        (need >> 20) + 1
                    ),
                )
                .help("free space on that file system or use a bigger card; nothing was changed"));
            }
        }
        if self.is_complete(id) {
            return Err(Error::new(
                ErrorKind::Device,
                format!("{} is already installed", self.release(id).display()),
            ));
        }
        let dir = self.release(id);
        fs::create_dir(&dir).map_err(|e| io_error("cannot create", &dir, &e))?;
        sync_dir(&releases)?;
        point("prepare");
        Ok(())
    }

    fn upload(&mut self, id: &str, file: &BundleFile, sent: &mut dyn FnMut(u64)) -> Result<()> {
        let path = self.release(id).join(format!(".{}.part", file.name));
        let mut f = File::create(&path).map_err(|e| io_error("cannot create", &path, &e))?;
        let damage = corrupt(&file.name);
        let mut done = 0usize;
        for chunk in file.data.chunks(CHUNK) {
            let r = if damage && done == 0 {
                let mut c = chunk.to_vec();
                let mid = c.len() / 2;
                c[mid] ^= 0x40;
                f.write_all(&c)
            } else {
                f.write_all(chunk)
            };
            r.map_err(|e| io_error("cannot write", &path, &e))?;
            done += chunk.len();
            sent(done as u64);
            point("upload");
        }
        f.set_permissions(fs::Permissions::from_mode(file.mode))
            .map_err(|e| io_error("cannot chmod", &path, &e))?;
        f.sync_all()
            .map_err(|e| io_error("cannot write", &path, &e))?;
        point("uploaded");
        Ok(())
    }

    fn seal(&mut self, id: &str, files: &[BundleFile]) -> Result<()> {
        let dir = self.release(id);
        for f in files {
            self.check(&dir, f, &format!(".{}.part", f.name))?;
            point("seal-verified");
        }
        for f in files.iter().filter(|f| f.name != "manifest.json") {
            let from = dir.join(format!(".{}.part", f.name));
            fs::rename(&from, dir.join(&f.name))
                .map_err(|e| io_error("cannot rename", &from, &e))?;
            point("seal-rename");
        }
        sync_dir(&dir)?;
        point("seal-sync");
        let from = dir.join(".manifest.json.part");
        fs::rename(&from, dir.join("manifest.json"))
            .map_err(|e| io_error("cannot rename", &from, &e))?;
        sync_dir(&dir)?;
        point("seal-manifest");
        Ok(())
    }

    fn activate(&mut self, id: &str) -> Result<()> {
        if !self.is_complete(id) {
            return Err(Error::new(
                ErrorKind::Device,
                format!(
                    "{} is not complete, so it is not activated",
                    self.release(id).display()
                ),
            ));
        }
        let old = self.read_link("current")?;
        if let Some(old) = old.as_deref().filter(|o| *o != id) {
            self.set_link("previous", Some(old), "activate-previous")?;
        }
        self.set_link("current", Some(id), "activate-current")?;
        sync_dir(&self.root)?;
        point("activate-sync");
        Ok(())
    }
}

impl Device for Local {
    fn root(&self) -> String {
        self.root.display().to_string()
    }

    fn state(&mut self, verify: bool) -> Result<State> {
        let mut st = State {
            current: self.read_link("current")?,
            previous: self.read_link("previous")?,
            free_bytes: free_bytes(&self.root),
            ..State::default()
        };
        if let Ok(dir) = fs::read_dir(self.root.join("releases")) {
            for e in dir.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                if e.path().is_dir() && !id.starts_with('.') {
                    let complete = self.is_complete(&id);
                    st.releases.push(Release { id, complete });
                }
            }
        }
        st.releases.sort_by(|a, b| a.id.cmp(&b.id));
        let manifest = |id: &Option<String>| -> Option<Manifest> {
            let p = self.release(id.as_deref()?).join("manifest.json");
            serde_json::from_slice(&fs::read(p).ok()?).ok()
        };
        st.current_manifest = manifest(&st.current);
        st.previous_manifest = manifest(&st.previous);
        if verify {
            if let (Some(id), Some(m)) = (&st.current, &st.current_manifest) {
                let dir = self.release(id);
                st.current_verified = Some(m.files.iter().all(|f| {
                    fs::read(dir.join(&f.name)).is_ok_and(|d| sha256_hex(&d) == f.sha256)
                }));
            }
        }
        Ok(st)
    }

    fn verify(&mut self, id: &str, files: &[BundleFile]) -> Result<()> {
        let dir = self.release(id);
        for f in files {
            self.check(&dir, f, &f.name)?;
        }
        Ok(())
    }

    fn stage(
        &mut self,
        id: &str,
        keep: &[String],
        files: &[BundleFile],
        sent: &mut dyn FnMut(u64),
    ) -> Result<()> {
        let need = files.iter().map(|f| f.data.len() as u64).sum::<u64>() + 64 * 1024;
        self.prepare(id, keep, need)?;
        let mut done = 0u64;
        for f in files {
            self.upload(id, f, &mut |n| sent(done + n))?;
            done += f.data.len() as u64;
        }
        self.seal(id, files)
    }

    fn switch(
        &mut self,
        id: &str,
        current: Option<&str>,
        previous: Option<&str>,
        drop: bool,
        _board: &Board,
    ) -> Result<Switched> {
        self.activate(id)?;
        point("activated");
        let selftest = self.selftest()?;
        let mut restored = false;
        if selftest.as_ref().is_some_and(|t| !t.passed) {
            self.restore(current, previous)?;
            restored = true;
            if drop {
                self.remove(&[id.to_string()])?;
            }
        }
        // A mounted card runs no service now: nothing to restart.
        Ok(Switched {
            selftest,
            restored,
            service: None,
            warnings: vec![],
        })
    }

    fn restore(&mut self, current: Option<&str>, previous: Option<&str>) -> Result<()> {
        if let Some(c) = current.filter(|c| !self.is_complete(c)) {
            return Err(Error::new(
                ErrorKind::Device,
                format!("{} is not complete", self.release(c).display()),
            ));
        }
        self.set_link("current", current, "restore-current")?;
        self.set_link("previous", previous, "restore-previous")?;
        sync_dir(&self.root)
    }

    fn remove(&mut self, ids: &[String]) -> Result<()> {
        // Never what current or previous points at now.
        let linked = [self.read_link("current")?, self.read_link("previous")?];
        for id in ids
            .iter()
            .filter(|id| !linked.contains(&Some(id.to_string())))
        {
            let dir = self.release(id);
            if dir.is_dir() {
                self.remove_dir(&dir, id)?;
            }
        }
        sync_dir(&self.root.join("releases"))
    }

    fn selftest(&mut self) -> Result<Option<SelfTest>> {
        let cur = self.root.join("current");
        // Only a card for this machine's own target can run its firmware here.
        let manifest: Option<Manifest> = fs::read(cur.join("manifest.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if !cfg!(target_os = "linux") || manifest.is_none_or(|m| m.board.target != host_triple()) {
            return Ok(None);
        }
        let out = std::process::Command::new(cur.join("resq-fw"))
            .arg("selftest")
            .arg("--model")
            .arg(cur.join("model.resq"))
            .arg("--board")
            .arg(cur.join("board.toml"))
            .stdin(std::process::Stdio::null())
            .output();
        Ok(Some(match out {
            Ok(o) => SelfTest {
                passed: o.status.success(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
            },
            Err(e) => SelfTest {
                passed: false,
                output: format!("cannot run {}: {e}", cur.join("resq-fw").display()),
            },
        }))
    }

    fn enable_service(&mut self, board: &Board) -> Result<(Option<String>, Vec<String>)> {
        let rel = board.install.unit.trim_start_matches('/');
        let unit = self.prefix.join(rel);
        if let Some(d) = unit.parent() {
            fs::create_dir_all(d).map_err(|e| io_error("cannot create", d, &e))?;
        }
        // The profile's [install] bin and model, linked to the current release (absolute
        // links, right once the card boots), then the unit that runs them.
        let mut warnings = vec![];
        for (path, to) in board.install_links("/opt/resq") {
            let link = self.prefix.join(path.trim_start_matches('/'));
            if let Some(w) = replace_link(&link, Path::new(&to))? {
                warnings.push(w);
            }
        }
        resq_io::write_atomic(&unit, board.unit("/opt/resq").as_bytes())
            .map_err(|e| io_error("cannot write", &unit, &e))?;
        // What `systemctl enable` would make: an absolute link, right once the card boots.
        let unit_dir = Path::new(&board.install.unit)
            .parent()
            .unwrap_or(Path::new("/etc/systemd/system"));
        let wants = self
            .prefix
            .join(unit_dir.strip_prefix("/").unwrap_or(unit_dir))
            .join("multi-user.target.wants");
        fs::create_dir_all(&wants).map_err(|e| io_error("cannot create", &wants, &e))?;
        let link = wants.join(board.unit_name());
        let tmp = wants.join(format!(".{}.tmp", board.unit_name()));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&board.install.unit, &tmp)
            .map_err(|e| io_error("cannot create", &tmp, &e))?;
        fs::rename(&tmp, &link).map_err(|e| io_error("cannot create", &link, &e))?;
        sync_dir(&wants)?;
        let passwd = fs::read_to_string(self.prefix.join("etc/passwd")).unwrap_or_default();
        if !passwd
            .lines()
            .any(|l| l.split(':').next() == Some(board.install.user.as_str()))
        {
            warnings.push(format!(
                "the service user `{}` is not in {}/etc/passwd: create it on the board before it boots into the service (useradd --system --no-create-home {u} && usermod -aG video,gpio {u})",
                board.install.user,
                self.prefix.display(),
                u = board.install.user
            ));
        }
        Ok((
            Some(format!(
                "enabled {} in the root filesystem (starts at boot)",
                board.unit_name()
            )),
            warnings,
        ))
    }

    fn restart_service(&mut self, _board: &Board) -> Result<(Option<String>, Vec<String>)> {
        Ok((None, vec![]))
    }
}

/// Makes `link` a symbolic link to `to` with one rename; a file that was there is replaced
/// (and said so), a folder is refused.
fn replace_link(link: &Path, to: &Path) -> Result<Option<String>> {
    let old = fs::symlink_metadata(link).ok();
    if old.as_ref().is_some_and(|m| m.is_dir()) {
        return Err(Error::new(
            ErrorKind::Device,
            format!("{} is a folder, not the file the unit runs", link.display()),
        )
        .help("fix [install] in the board profile, or move that folder away"));
    }
    let dir = link.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, &e))?;
    let name = link
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.resq-new"));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(to, &tmp).map_err(|e| io_error("cannot create", &tmp, &e))?;
    fs::rename(&tmp, link).map_err(|e| io_error("cannot create", link, &e))?;
    sync_dir(dir)?;
    Ok(old.filter(|m| !m.file_type().is_symlink()).map(|_| {
        format!(
            "{} was a file; it is now a link to {} (the current release)",
            link.display(),
            to.display()
        )
    }))
}
