//! A bundle: everything one release puts on a board, with a manifest of SHA-256 sums.
//!
//! ```text
//! resq-fw        the firmware binary for the board's target
//! model.resq     the int8 model (validated before bundling)
//! board.toml     the board profile
//! resq.service   the systemd unit, running /opt/resq/current/resq-fw
//! SHA256SUMS     `sha256sum -c` format, for checks on the board by hand
//! manifest.json  id, versions, board, model, and the size + SHA-256 of every file above
//! ```
//!
//! The release id is the UTC time of bundling and the start of the content hash (the SHA-256
//! of the file list), e.g. `20250301T101500Z-3f2a9c01b7de`: sortable by age, and equal content
//! is recognised on the device whatever its age.

use std::io::Read;
use std::path::Path;

use resq_io::hex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::board::{elf_machine, host_triple, machine_name, Board};
use crate::error::{io_error, Error, ErrorKind, Result};

/// Largest `resq-fw` binary bundled (a few MB stripped, about 30 MB with debug info).
pub const MAX_FIRMWARE_BYTES: u64 = 256 << 20;
/// Largest bundle file read: the largest model and firmware, plus the small files.
pub const MAX_BUNDLE_BYTES: u64 = resq_io::MAX_MODEL_BYTES + MAX_FIRMWARE_BYTES + (16 << 20);

/// Version of the manifest layout.
pub const MANIFEST_FORMAT: u32 = 1;

/// The payload files, in upload order; `SHA256SUMS` and `manifest.json` follow them.
pub const PAYLOAD: [&str; 4] = ["resq-fw", "model.resq", "board.toml", "resq.service"];

/// The manifest of a release (`manifest.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// Release id: `<UTC time>-<content hash prefix>`.
    pub id: String,
    /// When the bundle was made (UTC, RFC 3339).
    pub created: String,
    /// SHA-256 of the file list (names, sizes, sums), hex.
    pub content_sha256: String,
    /// Board profile name and target triple.
    pub board: BoardInfo,
    /// Versions of the parts.
    pub versions: Versions,
    /// The model inside.
    pub model: ModelInfo,
    /// Every payload file.
    pub files: Vec<FileEntry>,
}

/// Board of a release.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoardInfo {
    /// Profile name.
    pub name: String,
    /// Target triple.
    pub target: String,
}

/// Versions of the parts of a release.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    /// The `resq` host tool that made the bundle.
    pub resq: String,
    /// `resq-fw --version` when it could run on the bundling machine (same architecture).
    pub firmware: Option<String>,
    /// `.resq` format version of the model file.
    pub model_format: u16,
}

/// The model of a release.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Model name in the file.
    pub name: String,
    /// Number of classes.
    pub classes: usize,
    /// Source ONNX file name and SHA-256, from the file's provenance.
    pub source: String,
    /// SHA-256 of the source ONNX.
    pub source_sha256: String,
}

/// One file of a release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name inside the release folder.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
    /// Unix mode bits.
    pub mode: u32,
}

/// A file in a bundle, held in memory (what was hashed is exactly what is sent).
#[derive(Clone, Debug)]
pub struct BundleFile {
    /// File name.
    pub name: String,
    /// Contents.
    pub data: Vec<u8>,
    /// Unix mode bits.
    pub mode: u32,
    /// SHA-256, hex.
    pub sha256: String,
}

/// A release ready to install: payload, `SHA256SUMS` and `manifest.json`.
#[derive(Clone, Debug)]
pub struct Bundle {
    /// The manifest.
    pub manifest: Manifest,
    /// All files in upload order, `manifest.json` last.
    pub files: Vec<BundleFile>,
}

/// A bundle file as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TarFile {
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// What to bundle.
#[derive(Clone, Debug)]
pub struct BundleSpec<'a> {
    /// Board profile.
    pub board: &'a Board,
    /// The `.resq` model file.
    pub model: &'a Path,
    /// The `resq-fw` binary built for the board.
    pub firmware: &'a Path,
}

/// SHA-256 of `data` in lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

impl BundleFile {
    fn new(name: &str, data: Vec<u8>, mode: u32) -> BundleFile {
        BundleFile {
            name: name.to_string(),
            sha256: sha256_hex(&data),
            data,
            mode,
        }
    }
}

impl Bundle {
    /// Reads and checks the model and firmware and builds the bundle; the release id uses the
    /// current UTC time.
    pub fn build(spec: &BundleSpec<'_>) -> Result<Bundle> {
        Bundle::build_at(spec, std::time::SystemTime::now())
    }

    /// [`Bundle::build`] at a given time (for reproducible ids in tests).
    pub fn build_at(spec: &BundleSpec<'_>, now: std::time::SystemTime) -> Result<Bundle> {
        let board = spec.board;
        // Header first, then exactly the length it states (at most resq_io::MAX_MODEL_BYTES):
        // `/dev/zero` or a photo is refused after 64 bytes.
        let model = resq_io::read_model(spec.model)
            .map_err(|e| input_error("--model", spec.model, &e))
            .map_err(|e| {
                e.help("pass the file written by `resq convert` (check it with `resq inspect`)")
            })?;
        let model = model.as_bytes().to_vec();
        let info = model_info(&model).map_err(|e| {
            Error::new(
                ErrorKind::BadInput,
                format!(
                    "--model {}: not a valid .resq file: {e}",
                    spec.model.display()
                ),
            )
            .help("pass the file written by `resq convert` (check it with `resq inspect`)")
        })?;
        let firmware = resq_io::read_limited(spec.firmware, MAX_FIRMWARE_BYTES, "firmware")
            .map_err(|e| input_error("--firmware", spec.firmware, &e))?;
        check_firmware(&firmware, spec.firmware, board)?;
        let fw_version = firmware_version(spec.firmware, &firmware);
        let unit = board.unit("/opt/resq");
        let payload = vec![
            BundleFile::new("resq-fw", firmware, 0o755),
            BundleFile::new("model.resq", model, 0o644),
            BundleFile::new("board.toml", board.text.clone().into_bytes(), 0o644),
            BundleFile::new("resq.service", unit.into_bytes(), 0o644),
        ];
        let files: Vec<FileEntry> = payload
            .iter()
            .map(|f| FileEntry {
                name: f.name.clone(),
                size: f.data.len() as u64,
                sha256: f.sha256.clone(),
                mode: f.mode,
            })
            .collect();
        let content = content_hash(&board.name, &files);
        let (stamp, created) = utc(now);
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            id: format!("{stamp}-{}", &content[..12]),
            created,
            content_sha256: content,
            board: BoardInfo {
                name: board.name.clone(),
                target: board.target.clone(),
            },
            versions: Versions {
                resq: env!("CARGO_PKG_VERSION").to_string(),
                firmware: fw_version,
                model_format: info.1,
            },
            model: info.0,
            files,
        };
        Ok(Bundle::assemble(manifest, payload))
    }

    fn assemble(manifest: Manifest, mut payload: Vec<BundleFile>) -> Bundle {
        let sums: String = payload
            .iter()
            .map(|f| format!("{}  {}\n", f.sha256, f.name))
            .collect();
        payload.push(BundleFile::new("SHA256SUMS", sums.into_bytes(), 0o644));
        let mut json = serde_json::to_string(&manifest).unwrap_or_default();
        json.push('\n');
        payload.push(BundleFile::new("manifest.json", json.into_bytes(), 0o644));
        Bundle {
            manifest,
            files: payload,
        }
    }

    /// The release id.
    pub fn id(&self) -> &str {
        &self.manifest.id
    }

    /// Bytes of all files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.data.len() as u64).sum()
    }

    /// A file by name.
    pub fn file(&self, name: &str) -> Option<&BundleFile> {
        self.files.iter().find(|f| f.name == name)
    }

    /// Writes the bundle as a plain tar archive (`tar -xf` unpacks it on any board); its
    /// size and SHA-256.
    pub fn write_tar(&self, out: &Path) -> Result<TarFile> {
        let mut builder = tar::Builder::new(Vec::new());
        let mtime = epoch_secs(&self.manifest.created);
        for f in &self.files {
            let mut h = tar::Header::new_ustar();
            h.set_size(f.data.len() as u64);
            h.set_mode(f.mode);
            h.set_mtime(mtime);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            let path = format!("{}/{}", self.manifest.id, f.name);
            builder
                .append_data(&mut h, &path, f.data.as_slice())
                .map_err(|e| io_error("cannot write bundle", out, &e))?;
        }
        let bytes = builder
            .into_inner()
            .map_err(|e| io_error("cannot write bundle", out, &e))?;
        resq_io::write_atomic(out, &bytes).map_err(|e| io_error("cannot write", out, &e))?;
        Ok(TarFile {
            bytes: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
        })
    }

    /// Reads a bundle written by [`Bundle::write_tar`], checking every file against the
    /// manifest. Reads at most [`MAX_BUNDLE_BYTES`]; each file's size is checked against its
    /// own limit before it is read, and a file that is not a tar is refused after its first
    /// 512 bytes.
    pub fn read_tar(path: &Path) -> Result<Bundle> {
        let bad = |why: String| {
            Error::new(
                ErrorKind::BadInput,
                format!("--bundle {}: {why}", path.display()),
            )
            .help("pass a file written by `resq bundle … -o FILE` (write it again if it was damaged in transport)")
        };
        if path.is_dir() {
            return Err(bad("is a folder; pass the bundle file".into()));
        }
        let mut file =
            std::fs::File::open(path).map_err(|e| io_error("--bundle: cannot read", path, &e))?;
        if let Some(len) = file
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .filter(|&l| l > MAX_BUNDLE_BYTES)
        {
            return Err(bad(format!(
                "{len} bytes, over the {} MiB limit for a bundle; is it the right file?",
                MAX_BUNDLE_BYTES >> 20
            )));
        }
        let mut head = [0u8; 512];
        let got = resq_io::read_up_to(&mut file, &mut head)
            .map_err(|e| io_error("--bundle: cannot read", path, &e))?;
        if got < 512 || &head[257..262] != b"ustar" {
            return Err(bad(format!(
                "not a resq bundle: expected a tar file written by `resq bundle` \
                 (`ustar` at byte 257, the release folder name first); it {}",
                if got == 0 {
                    "is empty".to_string()
                } else {
                    format!("starts with {}", quote_bytes(&head[..got.min(32)]))
                }
            )));
        }
        let stream = std::io::Cursor::new(head)
            .chain(file)
            .take(MAX_BUNDLE_BYTES);
        let mut archive = tar::Archive::new(stream);
        let mut found: Vec<(String, Vec<u8>)> = vec![];
        let not_tar = |e: std::io::Error| {
            bad(format!(
                "not a resq bundle (a tar file written by `resq bundle`): {}",
                quote_text(&e.to_string())
            ))
        };
        let entries = archive.entries().map_err(not_tar)?;
        for entry in entries {
            let mut entry = entry.map_err(not_tar)?;
            let name = entry
                .path()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_default();
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let limit = match name.as_str() {
                "model.resq" => resq_io::MAX_MODEL_BYTES,
                "resq-fw" => MAX_FIRMWARE_BYTES,
                _ => resq_io::MAX_TEXT_BYTES,
            };
            let size = entry.header().size().unwrap_or(u64::MAX);
            if size > limit || found.len() >= 64 {
                return Err(bad(format!(
                    "its entry {} is {size} bytes (limit {} MiB) or one of too many files; not a resq bundle",
                    quote_text(&name),
                    limit >> 20
                )));
            }
            let mut data = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut data).map_err(|e| {
                bad(format!(
                    "cannot read {}: {}",
                    quote_text(&name),
                    quote_text(&e.to_string())
                ))
            })?;
            found.push((name, data));
        }
        let take = |name: &str, found: &mut Vec<(String, Vec<u8>)>| {
            let i = found.iter().position(|(n, _)| n == name);
            i.map(|i| found.swap_remove(i).1)
                .ok_or_else(|| bad(format!("has no {name}: not a resq bundle")))
        };
        let manifest_bytes = take("manifest.json", &mut found)?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes).map_err(|e| {
            bad(format!(
                "manifest.json is not valid: {}",
                quote_text(&e.to_string())
            ))
        })?;
        if manifest.format > MANIFEST_FORMAT {
            return Err(bad(format!(
                "manifest format {} is newer than this resq understands ({MANIFEST_FORMAT})",
                manifest.format
            )));
        }
        let mut payload = vec![];
        // The id names the release folder on the device (`releases/<id>`) and no hash covers
        // it: a name with a path in it would install outside the root.
        if !is_release_id(&manifest.id) {
            return Err(bad(format!(
                "manifest.json's release id {} is not a release name (letters, digits, `-`, \
                 `_`, `.`, at most 128, not starting with `.`): a damaged or altered bundle",
                quote_text(&manifest.id)
            )));
        }
        for entry in &manifest.files {
            let data = take(&entry.name, &mut found)?;
            let f = BundleFile::new(&entry.name, data, entry.mode);
            if f.sha256 != entry.sha256 || f.data.len() as u64 != entry.size {
                return Err(bad(format!(
                    "{} does not match the manifest (sha256 {}, expected {})",
                    entry.name, f.sha256, entry.sha256
                )));
            }
            payload.push(f);
        }
        let names: Vec<&str> = payload.iter().map(|f| f.name.as_str()).collect();
        if names != PAYLOAD {
            return Err(bad(quote_text(&format!("unexpected file list {names:?}"))));
        }
        if content_hash(&manifest.board.name, &manifest.files) != manifest.content_sha256 {
            return Err(bad(
                "the manifest's content hash does not match its files".into()
            ));
        }
        Ok(Bundle::assemble(manifest, payload))
    }
}

/// At most this many characters of a quoted byte string or message from a file.
const QUOTE_MAX: usize = 120;

/// Bytes from a file as a message shows them: printable ASCII as is, the rest escaped
/// (`\x8f`), in quotes, at most [`QUOTE_MAX`] characters.
pub fn quote_bytes(b: &[u8]) -> String {
    let s: String = b.escape_ascii().to_string();
    format!("\"{}\"", truncate(&s))
}

/// Text that may come from a file (a name in a tar header, a parser's message): control
/// characters and non-ASCII escaped, at most [`QUOTE_MAX`] characters.
pub fn quote_text(s: &str) -> String {
    let escaped: String = s
        .chars()
        .flat_map(|c| {
            let keep = c.is_ascii_graphic() || c == ' ';
            let e: Vec<char> = if keep {
                vec![c]
            } else {
                c.escape_default().collect()
            };
            e
        })
        .collect();
    truncate(&escaped)
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// An error of `resq_io` about the file given with `flag`, as a bad input.
fn input_error(flag: &str, path: &Path, e: &anyhow::Error) -> Error {
    let msg = format!("{e:#}");
    let p = path.display();
    let msg = match msg.strip_prefix(&format!("{p}: ")) {
        // The file's contents were refused.
        Some(why) if flag == "--model" => format!("{flag} {p}: not a valid .resq file: {why}"),
        Some(why) => format!("{flag} {p}: {why}"),
        // It could not be read, or is too big: the message names it.
        None => format!("{flag}: {msg}"),
    };
    Error::new(ErrorKind::BadInput, msg)
}

/// The content hash: board and every file's name, size and sum (not the time).
pub fn content_hash(board: &str, files: &[FileEntry]) -> String {
    let mut h = Sha256::new();
    h.update(format!("board {board}\n"));
    for f in files {
        h.update(format!("{} {} {} {:o}\n", f.name, f.size, f.sha256, f.mode));
    }
    hex(&h.finalize())
}

/// The content-hash part of a release id (after the last `-`).
pub fn id_content(id: &str) -> &str {
    id.rsplit('-').next().unwrap_or(id)
}

/// Name and format version of a model file, validating it completely.
fn model_info(bytes: &[u8]) -> std::result::Result<(ModelInfo, u16), String> {
    // The reader borrows i32 data in place, so it needs 4-byte alignment.
    let mut words = vec![0u32; bytes.len().div_ceil(4)];
    bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
    let aligned = &bytemuck::cast_slice::<u32, u8>(&words)[..bytes.len()];
    let m = resq_format::Model::parse(aligned).map_err(|e| e.to_string())?;
    if m.meta.self_test.expected.len == 0 {
        return Err("it has no self-test vector (convert it again with this resq)".into());
    }
    let p = &m.meta.provenance;
    Ok((
        ModelInfo {
            name: m.meta.name.to_string(),
            classes: m.classes(),
            source: p.source_name.to_string(),
            source_sha256: hex(&p.source_sha256),
        },
        m.header.version,
    ))
}

/// Refuses a firmware file that is not an ELF program for the board's architecture.
fn check_firmware(bytes: &[u8], path: &Path, board: &Board) -> Result<()> {
    let p = path.display();
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        return Err(Error::new(
            ErrorKind::BadInput,
            format!("--firmware {p} is not a Linux program (ELF)"),
        )
        .help(format!(
            "pass the resq-fw binary built with `{}`",
            board.build_command()
        )));
    }
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    match elf_machine(board.arch()) {
        Some(want) if want != machine => Err(Error::new(
            ErrorKind::BadInput,
            format!(
                "--firmware {p} is a {} program, but board `{}` runs {}",
                machine_name(machine),
                board.name,
                board.target
            ),
        )
        .help(format!(
            "build it for the board with `{}` and pass target/{}/release/resq-fw, or pick the right --board",
            board.build_command(),
            board.target
        ))),
        _ => Ok(()),
    }
}

/// `resq-fw --version`, when the binary runs here.
fn firmware_version(path: &Path, bytes: &[u8]) -> Option<String> {
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    if elf_machine(host_triple().split('-').next().unwrap_or("")) != Some(machine) {
        return None;
    }
    let out = std::process::Command::new(path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    let v = s.split_whitespace().nth(1)?;
    out.status.success().then(|| v.to_string())
}

/// The firmware for a board: `--firmware`, else the first `resq-fw` for the board's
/// architecture found
///
/// 1. beside the running `resq` (where `cargo install` and release archives put both),
/// 2. on `PATH`,
/// 3. in a cargo build output for the board's target: `$CARGO_TARGET_DIR`, `./target`, and
///    the target folder of the checkout this `resq` was built in;
///
/// else an error listing where it looked and giving the build command.
pub fn find_firmware(board: &Board, explicit: Option<&Path>) -> Result<std::path::PathBuf> {
    if let Some(p) = explicit {
        // Anything that exists is read (with a limit): a device, a pipe, a file.
        if !p.exists() {
            return Err(Error::new(
                ErrorKind::MissingFirmware,
                format!("--firmware {}: no such file", p.display()),
            )
            .help(format!("build it with `{}`", board.build_command())));
        }
        return Ok(p.to_path_buf());
    }
    let mut candidates: Vec<std::path::PathBuf> = vec![];
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        candidates.push(dir.join("resq-fw"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(
            std::env::split_paths(&path)
                .filter(|d| !d.as_os_str().is_empty())
                .map(|d| d.join("resq-fw")),
        );
    }
    let mut dirs = vec![];
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        dirs.push(std::path::PathBuf::from(d));
    }
    dirs.push("target".into());
    // The checkout this resq was built from.
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    candidates.extend(dirs.iter().flat_map(|d| board.firmware_candidates(d)));
    let mut looked: Vec<String> = vec![];
    for p in &candidates {
        let shown = p.display().to_string();
        if looked
            .iter()
            .any(|l| l.split(' ').next() == Some(shown.as_str()))
        {
            continue;
        }
        if !p.is_file() {
            looked.push(shown);
            continue;
        }
        match firmware_machine(p) {
            Some(m) if elf_machine(board.arch()).is_some_and(|want| want != m) => {
                looked.push(format!("{shown} (a {} program)", machine_name(m)))
            }
            Some(_) => return Ok(p.clone()),
            None => looked.push(format!("{shown} (not a Linux program)")),
        }
    }
    Err(Error::new(
        ErrorKind::MissingFirmware,
        format!(
            "no resq-fw for board `{}` ({}); looked beside resq, on PATH and in cargo's build output:\n  {}",
            board.name,
            board.target,
            looked.join("\n  ")
        ),
    )
    .help(format!(
        "build it with `{}` in the resq checkout (or `cargo install --path firmware/resq-fw` for this machine), or pass --firmware PATH",
        board.build_command()
    )))
}

/// The ELF machine of a program file (`None`: not an ELF file).
fn firmware_machine(path: &Path) -> Option<u16> {
    let mut head = [0u8; 20];
    let mut f = std::fs::File::open(path).ok()?;
    let n = resq_io::read_up_to(&mut f, &mut head).ok()?;
    (n == 20 && &head[..4] == b"\x7fELF").then(|| u16::from_le_bytes([head[18], head[19]]))
}

/// (`20250301T101500Z`, `2025-03-01T10:15:00Z`) for a time.
pub fn utc(t: std::time::SystemTime) -> (String, String) {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    (
        format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z"),
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z"),
    )
}

/// Seconds since 1970 of an RFC 3339 UTC time written by [`utc`] (0 if unreadable).
fn epoch_secs(s: &str) -> u64 {
    let n = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<i64>().ok());
    let (Some(y), Some(m), Some(d), Some(hh), Some(mm), Some(ss)) =
        (n(0..4), n(5..7), n(8..10), n(11..13), n(14..16), n(17..19))
    else {
        return 0;
    };
    let days = days_from_civil(y, m, d);
    (days * 86_400 + hh * 3600 + mm * 60 + ss).max(0) as u64
}

// Howard Hinnant's civil calendar algorithms (proleptic Gregorian), to avoid a date crate.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whether `id` can name a release folder: one path component of safe characters.
pub fn is_release_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn utc_stamps_match_known_dates() {
        let t = UNIX_EPOCH + Duration::from_secs(1_740_824_100); // 2025-03-01 10:15:00 UTC
        assert_eq!(
            utc(t),
            ("20250301T101500Z".into(), "2025-03-01T10:15:00Z".into())
        );
        assert_eq!(utc(UNIX_EPOCH).1, "1970-01-01T00:00:00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(utc(leap).1, "2000-02-29T00:00:00Z");
        for s in [0u64, 951_782_400, 1_740_824_100, 4_102_444_799] {
            assert_eq!(epoch_secs(&utc(UNIX_EPOCH + Duration::from_secs(s)).1), s);
        }
    }

    #[test]
    fn content_hash_ignores_time_but_not_bytes() {
        let f = |sha: &str| FileEntry {
            name: "a".into(),
            size: 1,
            sha256: sha.into(),
            mode: 0o644,
        };
        assert_eq!(content_hash("b", &[f("00")]), content_hash("b", &[f("00")]));
        assert_ne!(content_hash("b", &[f("00")]), content_hash("b", &[f("01")]));
        assert_ne!(content_hash("b", &[f("00")]), content_hash("c", &[f("00")]));
        assert_eq!(id_content("20250301T101500Z-3f2a9c01b7de"), "3f2a9c01b7de");
    }

    #[test]
    fn firmware_of_another_architecture_is_refused_with_the_build_command() {
        let board = Board::load("rpi4").unwrap();
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[18..20].copy_from_slice(&62u16.to_le_bytes());
        let e = check_firmware(&elf, Path::new("target/release/resq-fw"), &board).unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("is a x86-64 program, but board `rpi4` runs aarch64"),
            "{s}"
        );
        assert!(s.contains("--target aarch64-unknown-linux-gnu"), "{s}");
        elf[18..20].copy_from_slice(&183u16.to_le_bytes());
        check_firmware(&elf, Path::new("fw"), &board).unwrap();
        let e = check_firmware(b"#!/bin/sh\necho hi\n", Path::new("fw.sh"), &board).unwrap_err();
        assert!(e.to_string().contains("not a Linux program"), "{e}");
    }

    #[test]
    fn missing_firmware_names_the_cargo_command() {
        // A target nobody builds here, so no stray build output can satisfy the search.
        let text = crate::board::BUILTIN[0].1;
        let old = Board::parse(text, "x").unwrap().target;
        let board = Board::parse(&text.replace(&old, "riscv64gc-unknown-linux-gnu"), "x").unwrap();
        let e = find_firmware(&board, None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingFirmware);
        let s = e.to_string();
        assert!(
            s.contains("cargo build --release -p resq-fw --no-default-features --target riscv64gc-unknown-linux-gnu"),
            "{s}"
        );
        assert!(s.contains("--firmware PATH"), "{s}");
    }
}
