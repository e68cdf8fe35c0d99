//! The parts of a board profile (`boards/*.toml`) that deployment needs: name, target triple,
//! install paths. The full schema is `resq-fw`'s (`firmware/resq-fw/src/board.rs`); the
//! profile file is shipped whole in the bundle and checked by `resq-fw selftest --board` on
//! the device.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};

include!(concat!(env!("OUT_DIR"), "/boards.rs"));

/// The systemd unit template (`boards/resq-fw.service`).
pub const UNIT_TEMPLATE: &str = include_str!("../../../boards/resq-fw.service");

/// A board profile, as far as deployment is concerned.
#[derive(Clone, Debug)]
pub struct Board {
    /// Profile name.
    pub name: String,
    /// The board, in words.
    pub description: String,
    /// Rust target triple of its firmware.
    pub target: String,
    /// Systemd unit path on the board.
    pub unit_path: String,
    /// The user the service runs as.
    pub user: String,
    /// The profile file's text, shipped as `board.toml`.
    pub text: String,
}

#[derive(Deserialize)]
struct Raw {
    name: String,
    #[serde(default)]
    description: String,
    target: String,
    install: RawInstall,
}

#[derive(Deserialize)]
struct RawInstall {
    unit: String,
    user: String,
}

impl Board {
    /// Parses a profile; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Board> {
        let raw: Raw = toml::from_str(text).map_err(|e| {
            Error::new(
                ErrorKind::BadInput,
                format!("board profile {origin} is not valid: {e}"),
            )
            .help("see boards/README.md for the fields, or pass --board with a shipped name")
        })?;
        Ok(Board {
            name: raw.name,
            description: raw.description,
            target: raw.target,
            unit_path: raw.install.unit,
            user: raw.install.user,
            text: text.to_string(),
        })
    }

    /// A shipped profile by name, or a profile file by path.
    pub fn load(name_or_file: &str) -> Result<Board> {
        if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_file) {
            return Board::parse(text, &format!("`{name_or_file}` (built in)"));
        }
        let path = Path::new(name_or_file);
        if path.is_file() {
            let text = std::fs::read_to_string(path)
                .map_err(|e| crate::error::io_error("cannot read board profile", path, &e))?;
            return Board::parse(&text, &path.display().to_string());
        }
        Err(Error::new(
            ErrorKind::BadInput,
            format!("--board {name_or_file}: no such board profile"),
        )
        .help(format!(
            "use one of {} or the path of a profile file",
            BUILTIN
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    /// The CPU architecture of the target triple (`aarch64`, `x86_64`, `armv7`, …).
    pub fn arch(&self) -> &str {
        self.target.split('-').next().unwrap_or(&self.target)
    }

    /// The unit's file name (`resq-fw.service`).
    pub fn unit_name(&self) -> &str {
        self.unit_path
            .rsplit('/')
            .next()
            .unwrap_or("resq-fw.service")
    }

    /// The systemd unit for a release installed under `root` (the board's own view of
    /// `<prefix>/opt/resq`): it runs `root/current/resq-fw` on `root/current/model.resq` with
    /// the installed profile, so a switch of `current` plus a restart changes what runs.
    pub fn unit(&self, root: &str) -> String {
        let cur = format!("{root}/current");
        let mut unit: String = UNIT_TEMPLATE
            .lines()
            .map(|l| {
                let l = if l.starts_with("ExecStart=") {
                    // The installed profile file, so custom profiles work too.
                    l.replace("--board @NAME@", &format!("--board {cur}/board.toml"))
                } else {
                    l.to_string()
                };
                l + "\n"
            })
            .collect();
        unit = unit
            .replace("@NAME@", &self.name)
            .replace("@DESCRIPTION@", &self.description)
            .replace("@BIN@", &format!("{cur}/resq-fw"))
            .replace("@MODEL@", &format!("{cur}/model.resq"))
            .replace("@USER@", &self.user);
        if root.starts_with("/home/") || root.starts_with("/root/") {
            // ProtectHome=yes would hide a release installed under a home directory.
            unit = unit.replace("ProtectHome=yes", "ProtectHome=read-only");
        }
        format!("# Installed by `resq flash`: runs the release that {cur} points at.\n{unit}")
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
            assert!(b.unit_path.ends_with(".service"), "{name}");
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
    fn unit_runs_the_current_release_with_the_installed_profile() {
        let b = Board::load("rpi4").unwrap();
        let u = b.unit("/opt/resq");
        assert!(
            u.contains("ExecStart=/opt/resq/current/resq-fw run --model /opt/resq/current/model.resq --board /opt/resq/current/board.toml"),
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
        let home = b.unit("/home/pi/opt/resq");
        assert!(home.contains("ProtectHome=read-only"), "{home}");
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
