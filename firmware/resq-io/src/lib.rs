//! The edge of the process, shared by `resq` (host) and `resq-fw` (board): every file a person
//! hands to either tool is read here with a stated size limit checked before memory is set
//! aside, both tools end with the same exit codes, and output to a closed pipe ends quietly.
//!
//! Limits are generous for real ResNets (a float ResNet-152 is 240 MB, its `.resq` 60 MB; a
//! camera frame is a few MB) and small enough that `/dev/zero`, a sparse 3 GB file or a header
//! that claims 10 GB are refused in milliseconds with the limit in the message.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use resq_engine::AlignedBytes;
use resq_format::{Header, HEADER_LEN};

mod atomic;
pub mod image_file;
pub mod timing;

pub use atomic::write_atomic;
pub use image_file::{read_image, MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE};

/// Largest `.resq` file either tool reads (a full-size ResNet-152 is about 60 MB).
pub const MAX_MODEL_BYTES: u64 = 1 << 30;
/// Largest ONNX file `resq` reads (protobuf itself stops at 2 GiB).
pub const MAX_ONNX_BYTES: u64 = 2 << 30;
/// Largest encoded image file (PNG / JPEG) read for calibration, evaluation or classification.
pub const MAX_IMAGE_FILE_BYTES: u64 = 256 << 20;
/// Largest text file (label lists, ground-truth CSVs, board profiles, inventories).
pub const MAX_TEXT_BYTES: u64 = 64 << 20;

/// Exit statuses, the same for `resq` and `resq-fw` (documented in the README).
pub mod exit {
    /// The command did what was asked.
    pub const OK: u8 = 0;
    /// Something failed while running: a camera, a device, a disk, the network.
    pub const FAILURE: u8 = 1;
    /// The command line is wrong (clap's own status for usage errors).
    pub const USAGE: u8 = 2;
    /// An input was refused: a model, ONNX, image, CSV, profile or bundle that cannot be used.
    pub const BAD_INPUT: u8 = 3;
    /// A model's self-test vector gave a different answer on this machine.
    pub const SELF_TEST: u8 = 4;
    /// Some boards of a fleet were flashed and some were not.
    pub const PARTIAL: u8 = 5;
}

/// Marks an error as "this input cannot be used" (exit status [`exit::BAD_INPUT`]). Attach it
/// with [`bad_input`]; it shows nothing of its own in the message.
#[derive(Debug)]
pub struct BadInput;

impl fmt::Display for BadInput {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

impl std::error::Error for BadInput {}

/// An error about an input the person gave (exit status [`exit::BAD_INPUT`]).
pub fn bad_input(message: impl fmt::Display) -> anyhow::Error {
    anyhow::Error::new(InputError(message.to_string()))
}

/// The error [`bad_input`] makes: a message, classified as bad input.
#[derive(Debug)]
pub struct InputError(pub String);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

/// Extension for results: `.bad_input()` classifies any error as bad input, keeping its text.
pub trait ResultExt<T> {
    /// The same result, its error classified as bad input.
    fn bad_input(self) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> ResultExt<T> for Result<T, E> {
    fn bad_input(self) -> anyhow::Result<T> {
        self.map_err(|e| {
            let e: anyhow::Error = e.into();
            if is_bad_input(&e) {
                e
            } else {
                bad_input(format!("{e:#}"))
            }
        })
    }
}

/// Whether any error in the chain was classified as bad input.
pub fn is_bad_input(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| c.is::<InputError>() || c.is::<BadInput>() || c.is::<resq_format::FormatError>())
}

/// Whether the error is a write to a pipe whose reader has gone (`resq inspect m | head`).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The status a command's result ends the process with, printing the error (if any) the one
/// way both tools print it. A closed output pipe ends quietly, as it does for `cat`.
pub fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("error: {}", shorten(&format!("{e:#}"), MAX_MESSAGE_CHARS));
            ExitCode::from(if is_bad_input(&e) {
                exit::BAD_INPUT
            } else {
                exit::FAILURE
            })
        }
    }
}

/// Longest error message printed: a library's description of a malformed graph can run to
/// hundreds of kilobytes (tract's symbolic shapes), which buries the line that matters.
pub const MAX_MESSAGE_CHARS: usize = 4000;

/// `text` cut to at most `max` characters (plus a note saying how much was left out).
pub fn shorten(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let head: String = text.chars().take(max).collect();
    format!("{head} … ({} more characters left out)", count - max)
}

/// Makes a write to a closed pipe end the process quietly, the way `cat`, `grep` and `ls` end
/// (killed by SIGPIPE, status 141 in a shell), instead of a panic in `println!`. For commands
/// that only print; commands that change a device keep SIGPIPE ignored and treat the write
/// error as "nobody is reading" (see [`say`]).
pub fn die_quietly_on_closed_pipe() {
    // SAFETY: `signal` with SIG_DFL installs no handler code; it only restores the default
    // disposition, which Rust's runtime changed to SIG_IGN at start-up. It is called from the
    // main thread before any other thread exists, so nothing races on the disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Writes a line to stdout, ignoring a closed pipe: progress of a command that must finish
/// its work (a flash) whether or not anyone still reads its output.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stdout().lock(), $($arg)*);
    }};
}

/// Runs `f`, turning a panic inside it into an error message. For third-party code that
/// panics on hostile input where it should return an error (zune-jpeg's IDCT, tract's shape
/// inference: see fuzz/README.md): resq reports a bad input instead of ending with status 101.
/// The panic's own message is not printed (it goes into the returned text); panics anywhere
/// else print as usual.
pub fn contain_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    use std::cell::Cell;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    thread_local! {
        static CONTAINING: Cell<bool> = const { Cell::new(false) };
    }
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CONTAINING.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = CONTAINING.with(|c| c.replace(true));
    // The closure's state is dropped or abandoned with the error: nothing observes it broken.
    let result = catch_unwind(AssertUnwindSafe(f));
    CONTAINING.with(|c| c.set(was));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string())
    })
}

/// Reads a whole file of at most `limit` bytes, refusing a larger one (or an endless device
/// such as `/dev/zero`) before reading more than `limit + 1` bytes. `what` names the file's
/// role in messages ("ONNX model", "ground-truth CSV").
pub fn read_limited(path: &Path, limit: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    let file = open(path, what)?;
    let hint = file
        .metadata()
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    if let Some(len) = hint.filter(|&l| l > limit) {
        return Err(too_big(path, what, len, limit));
    }
    let mut bytes = Vec::with_capacity(hint.unwrap_or(0).min(limit) as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad_input(format!("cannot read {what} {}: {e}", path.display())))?;
    if bytes.len() as u64 > limit {
        return Err(bad_input(format!(
            "{what} {}: more than {} bytes (the limit); is it the right file? \
             (a device such as /dev/zero has no end)",
            path.display(),
            limit
        )));
    }
    Ok(bytes)
}

/// [`read_limited`] for text, with invalid UTF-8 refused by position.
pub fn read_text(path: &Path, what: &str) -> anyhow::Result<String> {
    let bytes = read_limited(path, MAX_TEXT_BYTES, what)?;
    String::from_utf8(bytes).map_err(|e| {
        bad_input(format!(
            "{what} {}: not UTF-8 text (byte {} is not valid); save it as UTF-8",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Reads a `.resq` file into aligned memory: first its 64-byte header (magic, version, fields),
/// then exactly the length the header states, at most [`MAX_MODEL_BYTES`]. A file that is not
/// a model is refused after 64 bytes, whatever its size.
pub fn read_model(path: &Path) -> anyhow::Result<AlignedBytes> {
    read_model_limited(path, MAX_MODEL_BYTES)
}

/// [`read_model`] with another limit (tests).
pub fn read_model_limited(path: &Path, limit: u64) -> anyhow::Result<AlignedBytes> {
    let what = "model";
    let mut file = open(path, what)?;
    let refuse = |e: resq_format::FormatError| bad_input(format!("{}: {e}", path.display()));
    let mut head = [0u8; HEADER_LEN];
    let got = read_up_to(&mut file, &mut head)
        .map_err(|e| bad_input(format!("cannot read model {}: {e}", path.display())))?;
    let header = Header::parse_prefix(&head[..got]).map_err(refuse)?;
    if header.file_len > limit {
        return Err(too_big(path, "model", header.file_len, limit));
    }
    let len = header.file_len as usize;
    let mut bytes = AlignedBytes::zeroed(len);
    bytes.as_bytes_mut()[..HEADER_LEN].copy_from_slice(&head);
    let got = HEADER_LEN
        + read_up_to(&mut file, &mut bytes.as_bytes_mut()[HEADER_LEN..])
            .map_err(|e| bad_input(format!("cannot read model {}: {e}", path.display())))?;
    if got < len {
        return Err(refuse(resq_format::FormatError::Truncated {
            expected: len as u64,
            actual: got as u64,
        }));
    }
    // One byte more tells a longer file from an exact one without reading the rest.
    let mut extra = [0u8; 1];
    if read_up_to(&mut file, &mut extra).unwrap_or(0) > 0 {
        let actual = file
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .map_or(len as u64 + 1, |m| m.len());
        return Err(refuse(resq_format::FormatError::TrailingBytes {
            expected: len as u64,
            actual,
        }));
    }
    Ok(bytes)
}

fn open(path: &Path, what: &str) -> anyhow::Result<std::fs::File> {
    if path.is_dir() {
        return Err(bad_input(format!(
            "{what} {} is a folder; pass a file",
            path.display()
        )));
    }
    std::fs::File::open(path).map_err(|e| {
        bad_input(format!(
            "cannot open {what} {}: {}",
            path.display(),
            match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_string(),
                _ => e.to_string(),
            }
        ))
    })
}

fn too_big(path: &Path, what: &str, len: u64, limit: u64) -> anyhow::Error {
    bad_input(format!(
        "{what} {} is {len} bytes, over the {} MiB limit for a {what}; is it the right file?",
        path.display(),
        limit >> 20
    ))
}

/// Reads until `buf` is full or the file ends; the number of bytes read.
pub fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// `bytes` in lower-case hexadecimal, two digits a byte (SHA-256 sums, digests).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_two_lower_case_digits_a_byte() {
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff, 0x3c]), "000fa0ff3c");
        let all: Vec<u8> = (0..=255).collect();
        let want: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&all), want);
    }

    #[test]
    fn dev_zero_is_refused_as_a_model_after_its_header() {
        let e = read_model(Path::new("/dev/zero")).unwrap_err();
        assert!(is_bad_input(&e));
        assert!(format!("{e:#}").contains("bad magic"), "{e:#}");
    }

    #[test]
    fn dev_zero_is_refused_as_text_at_the_limit() {
        let e = read_limited(Path::new("/dev/zero"), 1 << 20, "ground-truth CSV").unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("ground-truth CSV /dev/zero: more than 1048576 bytes"),
            "{msg}"
        );
    }

    #[test]
    fn a_sparse_file_over_the_limit_is_refused_by_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.onnx");
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(3 << 30).unwrap();
        let e = read_limited(&p, MAX_ONNX_BYTES, "ONNX model").unwrap_err();
        assert!(
            format!("{e:#}").contains("over the 2048 MiB limit"),
            "{e:#}"
        );
    }

    #[test]
    fn a_header_claiming_more_than_the_limit_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("huge.resq");
        let header = Header {
            version: resq_format::FORMAT_VERSION,
            file_len: 10 << 30,
            meta_offset: HEADER_LEN as u64,
            meta_len: 16,
            data_offset: 128,
            data_len: (10 << 30) - 128,
            crc32: 0,
        };
        std::fs::write(&p, header.to_bytes()).unwrap();
        let e = read_model(&p).unwrap_err();
        assert!(
            format!("{e:#}").contains("10737418240 bytes, over the 1024 MiB limit"),
            "{e:#}"
        );
        let e = read_model_limited(&p, 20 << 30).unwrap_err();
        assert!(format!("{e:#}").contains("truncated"), "{e:#}");
    }

    #[test]
    fn missing_files_and_folders_are_named() {
        let e = read_model(Path::new("/nonexistent/m.resq")).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "cannot open model /nonexistent/m.resq: no such file"
        );
        let e = read_text(Path::new("/"), "labels file").unwrap_err();
        assert!(format!("{e:#}").contains("is a folder"));
    }

    #[test]
    fn a_contained_panic_is_an_error_with_its_message() {
        assert_eq!(contain_panic(|| 7), Ok(7));
        let e = contain_panic(|| -> u8 { panic!("index {} out of range", 4) }).unwrap_err();
        assert_eq!(e, "index 4 out of range");
        let e = contain_panic(|| -> u8 { std::panic::panic_any(5u32) }).unwrap_err();
        assert_eq!(e, "a panic without a message");
    }

    #[test]
    fn long_messages_are_cut_with_a_note() {
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(
            shorten("0123456789abc", 10),
            "0123456789 … (3 more characters left out)"
        );
    }

    #[test]
    fn exit_statuses_follow_the_error_class() {
        assert_eq!(
            finish(Err(bad_input("x")),),
            ExitCode::from(exit::BAD_INPUT)
        );
        assert_eq!(
            finish(Err(anyhow::anyhow!("camera lost")),),
            ExitCode::from(exit::FAILURE)
        );
        let pipe = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert_eq!(finish(Err(pipe),), ExitCode::from(exit::OK));
    }
}
