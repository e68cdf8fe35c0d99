//! Errors written for the person at the keyboard: what went wrong, on which device or file,
//! and (`help`) the flag or command that fixes it.

use std::fmt;

/// What kind of failure, for callers that react differently (tests, the fleet summary).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A `--to` URI or inventory line that cannot be parsed.
    BadUri,
    /// A bad input on the host: board profile, model, firmware, bundle, flag.
    BadInput,
    /// The firmware binary for the board was not found or not built.
    MissingFirmware,
    /// The device could not be reached (refused, unreachable, name unknown, timed out).
    Connect,
    /// The device's host key is unknown or differs from the known one.
    HostKey,
    /// Key authentication was refused or the key could not be used.
    Auth,
    /// The device user may not write where the release goes.
    Permission,
    /// Not enough free space on the device for the release.
    DiskFull,
    /// A file arrived damaged (its SHA-256 differs); nothing was activated.
    Corrupt,
    /// The installed firmware failed its self-test (and was switched back).
    SelfTest,
    /// The device lacks a tool the install needs, or is in a state resq does not touch.
    Device,
    /// Nothing installed / nothing to roll back to.
    NoRelease,
    /// A file or transfer error on the host or the device.
    Io,
}

/// An error with the device or file it concerns and a hint that fixes it.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    help: Option<String>,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            help: None,
        }
    }

    /// Adds what to change.
    pub fn help(mut self, help: impl Into<String>) -> Error {
        self.help = Some(help.into());
        self
    }

    /// Prefixes the message with the device (or file) it concerns.
    pub fn on(mut self, what: &str) -> Error {
        if !self.message.starts_with(what) {
            self.message = format!("{what}: {}", self.message);
        }
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the help.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The hint, if any.
    pub fn help_text(&self) -> Option<&str> {
        self.help.as_deref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.help {
            write!(f, "\n  help: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// An I/O error on a host path, mapped to a kind (full disk, permission) with a hint.
pub(crate) fn io_error(what: &str, path: &std::path::Path, e: &std::io::Error) -> Error {
    use std::io::ErrorKind as K;
    let p = path.display();
    match e.kind() {
        K::StorageFull => Error::new(ErrorKind::DiskFull, format!("{what} {p}: the disk is full"))
            .help("free space on that file system (or use a bigger card); nothing was activated"),
        K::PermissionDenied | K::ReadOnlyFilesystem => Error::new(
            ErrorKind::Permission,
            format!("{what} {p}: {e}"),
        )
        .help("run resq as a user that may write there (e.g. with sudo for a mounted card), or remount it read-write"),
        _ => Error::new(ErrorKind::Io, format!("{what} {p}: {e}")),
    }
}

/// Output of a device (a self-test, a benchmark) indented under a message.
pub(crate) fn indent(s: &str) -> String {
    s.trim_end()
        .lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
