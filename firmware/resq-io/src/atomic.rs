//! Files written whole or not at all: a crash, a full disk or a kill never leaves half a
//! model, bundle or unit file where the file goes.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// How many temporary names are tried before giving up (each is taken only by a file that
/// already exists).
const TEMP_NAMES: u32 = 1000;

/// Writes `bytes` to `path` atomically: into a new temporary file in the same folder
/// (`.NAME.PID.N.tmp`, created with `create_new`, so an existing file of that name is never
/// truncated or shared), synced to disk, then renamed over `path`. On any error the
/// temporary file is removed and `path` is as it was.
///
/// The error is the I/O error itself, its kind kept (a full disk, a read-only file system):
/// callers say which file it was about.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let (tmp, mut file) = create_temp(dir, path)?;
    let result = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            drop(file);
            std::fs::rename(&tmp, path)
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A new, empty file beside `target`, by a name nothing else holds.
fn create_temp(dir: &Path, target: &Path) -> io::Result<(PathBuf, File)> {
    let name = target
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    for i in 0..TEMP_NAMES {
        let p = dir.join(format!(".{name}.{}.{i}.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&p) {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "no free temporary file name in {}: {TEMP_NAMES} `.{name}.{}.*.tmp` files exist",
            dir.display(),
            std::process::id()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_replaces_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.resq");
        write_atomic(&p, b"first").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        write_atomic(&p, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second, longer");
        write_atomic(&p, b"").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"");
        assert_eq!(files(dir.path()), ["model.resq"]);
    }

    #[test]
    fn a_file_holding_the_temporary_name_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.tar");
        // Another writer's temporary files (same pid: a thread of this process).
        let pid = std::process::id();
        let taken: Vec<PathBuf> = (0..3)
            .map(|i| dir.path().join(format!(".out.tar.{pid}.{i}.tmp")))
            .collect();
        for t in &taken {
            std::fs::write(t, b"someone else's").unwrap();
        }
        write_atomic(&p, b"mine").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"mine");
        for t in &taken {
            assert_eq!(std::fs::read(t).unwrap(), b"someone else's");
        }
        assert_eq!(files(dir.path()).len(), 4);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_partial_one() {
        let dir = tempfile::tempdir().unwrap();
        // The rename fails: the target is a folder (with a file in it).
        let p = dir.path().join("unit.service");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("keep"), b"x").unwrap();
        let e = write_atomic(&p, &[7u8; 100_000]).unwrap_err();
        assert_ne!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
        assert!(p.is_dir());
        assert_eq!(files(dir.path()), ["unit.service"]);
        assert_eq!(files(&p), ["keep"]);
        // The folder does not exist: nothing is created, the error kind is kept.
        let e = write_atomic(&dir.path().join("no/such/file"), b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(files(dir.path()), ["unit.service"]);
    }
}
