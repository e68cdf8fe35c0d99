//! Board profiles as deployment sees them: name, target triple, install paths, and the
//! profile's text, shipped whole in the bundle as `board.toml` and checked by `resq-fw
//! selftest --board` on the device. The schema, the shipped profiles and the unit template are
//! the `resq-board` crate's, the same `resq-fw` uses.

use std::path::{Path, PathBuf};

pub use resq_board::{InstallProfile, BUILTIN, UNIT_TEMPLATE};

use crate::error::{io_error, Error, ErrorKind, Result};

/// A board profile, as far as deployment is concerned.
#[derive(Clone, Debug)]
pub struct Board {
    /// Profile name.
    pub name: String,
    /// The board, in words.
    pub description: String,
    /// Rust target triple of its firmware.
    pub target: String,
    /// `[install]`: where the unit runs `resq-fw` from (`bin`) and on which model (`model`),
    /// both of which `resq flash --enable-service` links to the current release; the unit's
    /// path (`unit`) and the user the service runs as (`user`).
    pub install: InstallProfile,
    /// The profile file's text, shipped as `board.toml`.
    pub text: String,
}

impl Board {
    /// Parses a profile; `origin` names it in errors. Only what deployment reads is looked
    /// at ([`resq_board::Summary`]): the board's `resq-fw` checks the rest.
    pub fn parse(text: &str, origin: &str) -> Result<Board> {
        let s = resq_board::Summary::parse(text, origin).map_err(|e| {
            let why = match &e {
                resq_board::Error::Syntax { source, .. } => source.to_string(),
                other => other.to_string(),
            };
            Error::new(
                ErrorKind::BadInput,
                format!("board profile {origin} is not valid: {why}"),
            )
            .help("see boards/README.md for the fields, or pass --board with a shipped name")
        })?;
        Ok(Board {
            name: s.name,
            description: s.description,
            target: s.target,
            install: s.install,
            text: text.to_string(),
        })
    }

    /// A shipped profile by name, or a profile file by path.
    pub fn load(name_or_file: &str) -> Result<Board> {
        if let Some(text) = resq_board::builtin(name_or_file) {
            return Board::parse(text, &format!("`{name_or_file}` (built in)"));
        }
        let path = Path::new(name_or_file);
        if path.is_file() {
            let text = std::fs::read_to_string(path)
                .map_err(|e| io_error("cannot read board profile", path, &e))?;
            return Board::parse(&text, &path.display().to_string());
        }
        Err(Error::new(
            ErrorKind::BadInput,
            format!("--board {name_or_file}: no such board profile"),
        )
        .help(format!(
            "use one of {} or the path of a profile file",
            resq_board::names().join(", ")
        )))
    }

    /// The CPU architecture of the target triple (`aarch64`, `x86_64`, `armv7`, …).
    pub fn arch(&self) -> &str {
        resq_board::arch_of(&self.target)
    }

    /// The unit's file name (`resq-fw.service`).
    pub fn unit_name(&self) -> &str {
        self.install
            .unit
            .rsplit('/')
            .next()
            .unwrap_or("resq-fw.service")
    }

    /// Whether this is a shipped profile, unchanged: `resq-fw` on the board knows it by name.
    pub fn is_builtin(&self) -> bool {
        resq_board::builtin(&self.name) == Some(self.text.as_str())
    }

    /// The systemd unit for a release installed under `root` (the board's own view of
    /// `<prefix>/opt/resq`). It is exactly what `resq-fw unit --board NAME` prints: it runs
    /// the profile's `[install] bin` on its `[install] model`, which `resq flash
    /// --enable-service` makes links to `root/current/resq-fw` and `root/current/model.resq`,
    /// so a switch of `current` plus a restart changes what runs. Two differences, both where
    /// that output cannot work: a profile that is not built in (a file) is named by its
    /// installed copy, `--board root/current/board.toml` (the board's `resq-fw` does not
    /// know its name), and a release under a home folder gets `ProtectHome=read-only`
    /// (`ProtectHome=yes` would hide it from the service).
    pub fn unit(&self, root: &str) -> String {
        let mut unit = resq_board::unit(&self.name, &self.description, &self.install, None);
        if !self.is_builtin() {
            unit = unit
                .lines()
                .map(|l| {
                    let l = if l.starts_with("ExecStart=") {
                        l.replace(
                            &format!("--board {} ", self.name),
                            &format!("--board {root}/current/board.toml "),
                        )
                    } else {
                        l.to_string()
                    };
                    l + "\n"
                })
                .collect();
        }
        if root.starts_with("/home/") || root.starts_with("/root/") {
            unit = unit.replace("ProtectHome=yes", "ProtectHome=read-only");
        }
        unit
    }

    /// The links `resq flash --enable-service` makes (link path, what it points at) for a
    /// release installed under `root`: the profile's `[install] bin` and `model`.
    pub fn install_links(&self, root: &str) -> [(String, String); 2] {
        [
            (self.install.bin.clone(), format!("{root}/current/resq-fw")),
            (
                self.install.model.clone(),
                format!("{root}/current/model.resq"),
            ),
        ]
    }

    /// Where `cargo build --release -p resq-fw --target <triple>` puts the firmware, under
    /// `target_dir`; for the triple of the machine running resq also `target/release`.
    pub fn firmware_candidates(&self, target_dir: &Path) -> Vec<PathBuf> {
        let mut v = vec![];
        if self.target == host_triple() {
            v.push(target_dir.join("release/resq-fw"));
        }
        v.push(target_dir.join(&self.target).join("release/resq-fw"));
        v
    }

    /// The command that builds the firmware for this board.
    pub fn build_command(&self) -> String {
        if self.target == host_triple() {
            "cargo build --release -p resq-fw".to_string()
        } else {
            format!(
                "rustup target add {t} && cargo build --release -p resq-fw --no-default-features --target {t}",
                t = self.target
            )
        }
    }
}

/// The target triple of the machine running this code (Linux / macOS hosts).
pub fn host_triple() -> String {
    let arch = std::env::consts::ARCH;
    match std::env::consts::OS {
        "linux" if cfg!(target_env = "musl") => format!("{arch}-unknown-linux-musl"),
        "linux" => format!("{arch}-unknown-linux-gnu"),
        "macos" => format!("{arch}-apple-darwin"),
        os => format!("{arch}-unknown-{os}"),
    }
}

/// The ELF `e_machine` number of a target architecture, when known.
pub(crate) fn elf_machine(arch: &str) -> Option<u16> {
    Some(match arch {
        "x86_64" => 62,
        "aarch64" => 183,
        a if a.starts_with("arm") || a.starts_with("thumb") => 40,
        "riscv64gc" | "riscv64" => 243,
        "i686" | "i586" => 3,
        _ => return None,
    })
}

/// A readable name for an ELF `e_machine` number.
pub(crate) fn machine_name(m: u16) -> String {
    match m {
        62 => "x86-64".into(),
        183 => "aarch64".into(),
        40 => "32-bit ARM".into(),
        243 => "RISC-V".into(),
        3 => "x86 (32-bit)".into(),
        m => format!("ELF machine {m}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_profile_loads_with_install_paths() {
        assert!(BUILTIN.iter().any(|(n, _)| *n == "rpi4"));
        assert!(BUILTIN.iter().any(|(n, _)| *n == "x86_64-host"));
        for (name, _) in BUILTIN {
            let b = Board::load(name).unwrap();
            assert_eq!(&b.name, name);
            assert!(b.install.unit.ends_with(".service"), "{name}");
            assert!(elf_machine(b.arch()).is_some(), "{name}: {}", b.target);
        }
    }

    #[test]
    fn unknown_board_lists_the_shipped_ones() {
        let e = Board::load("rpi3").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadInput);
        let s = e.to_string();
        assert!(s.contains("--board rpi3") && s.contains("rpi4"), "{s}");
    }

    #[test]
    fn unit_is_the_firmware_template_filled_from_the_profile() {
        let b = Board::load("rpi4").unwrap();
        let u = b.unit("/opt/resq");
        assert!(
            u.contains("ExecStart=/usr/local/bin/resq-fw run --model /var/lib/resq/model.resq --board rpi4 --json"),
            "{u}"
        );
        assert!(
            !["@NAME@", "@BIN@", "@MODEL@", "@USER@"]
                .iter()
                .any(|p| u.contains(p)),
            "{u}"
        );
        assert!(
            u.contains("User=resq")
                && u.contains("Description=resq offline image classifier (rpi4)"),
            "{u}"
        );
        assert_eq!(
            b.install_links("/opt/resq")[0],
            (
                "/usr/local/bin/resq-fw".to_string(),
                "/opt/resq/current/resq-fw".to_string()
            )
        );
        let home = b.unit("/home/pi/opt/resq");
        assert!(home.contains("ProtectHome=read-only"), "{home}");
        // A profile file the board's resq-fw does not know by name: its installed copy.
        let custom = Board::parse(&b.text.replace("\"rpi4\"", "\"my-pi\""), "x").unwrap();
        assert!(!custom.is_builtin());
        let u = custom.unit("/opt/resq");
        assert!(
            u.contains(
                "--model /var/lib/resq/model.resq --board /opt/resq/current/board.toml --json"
            ),
            "{u}"
        );
        assert!(u.contains("resq-fw unit --board my-pi"), "{u}");
    }

    #[test]
    fn cross_targets_name_the_cross_build() {
        let b = Board::load("rpi4").unwrap();
        let c = b.firmware_candidates(Path::new("target"));
        assert_eq!(
            c.last().unwrap(),
            Path::new("target/aarch64-unknown-linux-gnu/release/resq-fw")
        );
        assert!(b
            .build_command()
            .contains("--target aarch64-unknown-linux-gnu"));
    }
}
