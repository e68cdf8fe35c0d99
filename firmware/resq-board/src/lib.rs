//! Board profiles (`boards/*.toml`), once for both tools: the schema, the shipped profiles
//! (every `boards/*.toml`, built in by build.rs), and the systemd unit
//! (`boards/resq-fw.service`, filled in from a profile).
//!
//! - [`Profile`]: the whole profile, as `resq-fw` runs it: unknown fields, unknown CPU
//!   features and zero cores are refused ([`Profile::parse`]).
//! - [`Summary`]: what a host needs to deploy a profile (name, description, target,
//!   `[install]`); the other fields are not looked at, because the profile ships whole and the
//!   board's own `resq-fw` checks it ([`Summary::parse`]).
//! - [`BUILTIN`], [`builtin`], [`names`]: the shipped profiles; [`UNIT_TEMPLATE`].
//!
//! What only one side needs stays there: CPU feature detection and `--board FILE` reads in
//! `resq-fw`, install paths and firmware search in `resq-deploy`.

#![warn(missing_docs)]

use std::fmt;

use serde::Deserialize;

include!(concat!(env!("OUT_DIR"), "/builtin.rs"));

/// A shipped profile's text by name.
pub fn builtin(name: &str) -> Option<&'static str> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// The shipped profiles' names, in listing order.
pub fn names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}

/// A board profile.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Profile name (`--board NAME`).
    pub name: String,
    /// The board, in words.
    pub description: String,
    /// Rust target triple to build for.
    pub target: String,
    /// CPU core (`-C target-cpu`, qemu `-cpu`).
    pub cpu: String,
    /// CPU features the kernels may use on this board; `resq-fw` warns when the running CPU
    /// lacks one.
    pub features: Vec<String>,
    /// CPU cores.
    pub cores: usize,
    /// Default inference worker threads.
    #[serde(default = "one")]
    pub threads: usize,
    /// Default smoothing window for cameras, frames.
    #[serde(default = "one")]
    pub smooth: usize,
    /// Camera defaults.
    pub camera: CameraProfile,
    /// GPIO lines (none by default).
    #[serde(default)]
    pub gpio: GpioProfile,
    /// Where things go on the board.
    pub install: InstallProfile,
}

fn one() -> usize {
    1
}

/// Camera defaults.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CameraProfile {
    /// Default `--camera` URI.
    pub uri: String,
    /// Other URIs known to work on this board (e.g. the CSI camera through GStreamer).
    #[serde(default)]
    pub alternatives: Vec<String>,
}

/// GPIO lines.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GpioProfile {
    /// GPIO character device, e.g. `/dev/gpiochip0`.
    pub chip: Option<String>,
    /// Line of the status LED (lit while frames flow).
    pub status_led: Option<u32>,
    /// Lines that go high while a class leads.
    #[serde(default)]
    pub watch: Vec<WatchProfile>,
}

/// One watched class.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WatchProfile {
    /// Class label, as in the model's labels.
    pub label: String,
    /// GPIO line.
    pub line: u32,
    /// Score at or above which the line goes high.
    #[serde(default = "half")]
    pub threshold: f32,
}

fn half() -> f32 {
    0.5
}

/// Install paths (`[install]`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InstallProfile {
    /// The `resq-fw` binary the unit runs.
    pub bin: String,
    /// The model file the unit runs.
    pub model: String,
    /// The systemd unit.
    pub unit: String,
    /// The unprivileged user the service runs as.
    pub user: String,
}

/// The parts of a profile that deployment reads; other fields are not looked at.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Summary {
    /// Profile name.
    pub name: String,
    /// The board, in words.
    #[serde(default)]
    pub description: String,
    /// Rust target triple of its firmware.
    pub target: String,
    /// Install paths.
    pub install: InstallProfile,
}

/// Why a profile was refused. `{}` is one line naming the profile; `{:#}` adds what the TOML
/// reader said (also [`source`](std::error::Error::source)).
#[derive(Debug)]
pub enum Error {
    /// Not TOML, or not the schema: a missing, unknown or mistyped field ([`source`] says
    /// which, where).
    ///
    /// [`source`]: std::error::Error::source
    Syntax {
        /// The profile, in words (a file path, or a built-in name).
        origin: String,
        /// What the TOML reader said.
        source: toml::de::Error,
    },
    /// The schema fits, a value does not: an unknown CPU feature, zero cores or threads.
    Invalid {
        /// The profile, in words.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Syntax { origin, source } => {
                write!(
                    f,
                    "board profile {origin} is not valid (see boards/README.md for the fields)"
                )?;
                // `{:#}` adds the reader's words, as anyhow's `{:#}` does for a chain.
                if f.alternate() {
                    write!(f, ": {source}")?;
                }
                Ok(())
            }
            Error::Invalid { origin, message } => write!(f, "board profile {origin}: {message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Syntax { source, .. } => Some(source),
            Error::Invalid { .. } => None,
        }
    }
}

impl Profile {
    /// Parses and checks a profile; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Profile, Error> {
        let p: Profile = toml::from_str(text).map_err(|source| Error::Syntax {
            origin: origin.to_string(),
            source,
        })?;
        let invalid = |message: String| Error::Invalid {
            origin: origin.to_string(),
            message,
        };
        let known = known_features(p.arch());
        if let Some(f) = p.features.iter().find(|f| !known.contains(&f.as_str())) {
            return Err(invalid(format!(
                "CPU feature `{f}` is unknown for {}; known: {}",
                p.target,
                known.join(", ")
            )));
        }
        if p.cores == 0 || p.threads == 0 {
            return Err(invalid(
                "`cores` and `threads` must be at least 1".to_string(),
            ));
        }
        Ok(p)
    }

    /// The CPU architecture of the target triple (`aarch64`, `x86_64`, …).
    pub fn arch(&self) -> &str {
        arch_of(&self.target)
    }

    /// The systemd unit for this board (what `resq-fw unit` prints), running `model`
    /// (default: the profile's `[install] model`).
    pub fn unit(&self, model: Option<&str>) -> String {
        unit(&self.name, &self.description, &self.install, model)
    }
}

impl Summary {
    /// Parses the fields deployment reads; `origin` names the profile in errors (always
    /// [`Error::Syntax`]).
    pub fn parse(text: &str, origin: &str) -> Result<Summary, Error> {
        toml::from_str(text).map_err(|source| Error::Syntax {
            origin: origin.to_string(),
            source,
        })
    }

    /// The CPU architecture of the target triple (`aarch64`, `x86_64`, `armv7`, …).
    pub fn arch(&self) -> &str {
        arch_of(&self.target)
    }

    /// The same unit as [`Profile::unit`] prints for this profile.
    pub fn unit(&self, model: Option<&str>) -> String {
        unit(&self.name, &self.description, &self.install, model)
    }
}

/// The systemd unit of a profile: [`UNIT_TEMPLATE`] filled in from its name, description and
/// `[install]` paths, running `model` (default: `[install] model`).
pub fn unit(
    name: &str,
    description: &str,
    install: &InstallProfile,
    model: Option<&str>,
) -> String {
    UNIT_TEMPLATE
        .replace("@NAME@", name)
        .replace("@DESCRIPTION@", description)
        .replace("@BIN@", &install.bin)
        .replace("@MODEL@", model.unwrap_or(&install.model))
        .replace("@USER@", &install.user)
}

/// The CPU architecture of a target triple: its first part.
pub fn arch_of(target: &str) -> &str {
    target.split('-').next().unwrap_or(target)
}

/// The CPU feature names a profile for `arch` may promise (none for other architectures).
pub fn known_features(arch: &str) -> &'static [&'static str] {
    match arch {
        "aarch64" => &[
            "neon", "dotprod", "i8mm", "fp16", "bf16", "sve", "sve2", "crc", "aes", "sha2",
        ],
        "x86_64" => &[
            "sse2",
            "ssse3",
            "sse4.1",
            "sse4.2",
            "popcnt",
            "avx",
            "avx2",
            "fma",
            "f16c",
            "avx512f",
            "avx512bw",
            "avx512vnni",
            "avxvnni",
        ],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn every_boards_file_is_built_in_and_named_after_itself() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../boards");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter_map(|n| n.strip_suffix(".toml").map(str::to_string))
            .collect();
        files.sort();
        let mut built: Vec<String> = names().iter().map(|n| n.to_string()).collect();
        built.sort();
        assert_eq!(built, files);
        for (name, text) in BUILTIN {
            let p = Profile::parse(text, name).unwrap();
            assert_eq!(&p.name, name);
            assert!(p.threads <= p.cores, "{name}: more threads than cores");
            let s = Summary::parse(text, name).unwrap();
            assert_eq!(
                (&s.name, &s.description, &s.target, &s.install),
                (&p.name, &p.description, &p.target, &p.install)
            );
            assert_eq!(s.unit(None), p.unit(None));
        }
        assert_eq!(
            UNIT_TEMPLATE,
            std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../boards/resq-fw.service")
            )
            .unwrap()
        );
    }

    #[test]
    fn boards_are_listed_specific_first_and_catch_alls_last() {
        let n = names();
        assert_eq!(&n[..4], ["rpi4", "rpi5", "jetson-nano", "jetson-orin-nano"]);
        assert_eq!(&n[n.len() - 2..], ["generic-aarch64", "x86_64-host"]);
        assert_eq!(builtin("rpi4"), Some(BUILTIN[0].1));
        assert_eq!(builtin("rpi3"), None);
    }

    #[test]
    fn schema_errors_name_the_field_and_the_profile() {
        let rpi4 = builtin("rpi4").unwrap();
        let e = Profile::parse(&rpi4.replace("cores =", "corez ="), "x.toml").unwrap_err();
        assert!(matches!(e, Error::Syntax { .. }));
        assert_eq!(
            e.to_string(),
            "board profile x.toml is not valid (see boards/README.md for the fields)"
        );
        assert!(e.source().unwrap().to_string().contains("corez"), "{e:?}");
        let e = Profile::parse(&rpi4.replace("\"neon\"", "\"neom\""), "x.toml").unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }));
        assert!(
            e.to_string()
                .starts_with("board profile x.toml: CPU feature `neom` is unknown for aarch64-unknown-linux-gnu; known: neon, dotprod"),
            "{e}"
        );
        let e = Profile::parse(&rpi4.replace("threads = 3", "threads = 0"), "x.toml").unwrap_err();
        assert!(e.to_string().contains("must be at least 1"), "{e}");
    }

    #[test]
    fn the_summary_reads_only_what_deployment_needs() {
        let rpi4 = builtin("rpi4").unwrap();
        // Another architecture with the old features, and a field of a newer firmware: the
        // board's resq-fw judges those, deployment only needs the target and paths.
        let text = rpi4
            .replace("aarch64-unknown-linux-gnu", "riscv64gc-unknown-linux-gnu")
            .replace("cores = 4", "cores = 4\nnpu = true");
        assert!(Profile::parse(&text, "x").is_err());
        let s = Summary::parse(&text, "x").unwrap();
        assert_eq!(s.arch(), "riscv64gc");
        assert_eq!(s.install.bin, "/usr/local/bin/resq-fw");
        let e = Summary::parse("name = \"x\"\n", "y.toml").unwrap_err();
        assert!(e.source().unwrap().to_string().contains("target"), "{e:?}");
    }

    #[test]
    fn the_unit_is_the_template_filled_from_the_profile() {
        let p = Profile::parse(builtin("rpi4").unwrap(), "rpi4").unwrap();
        let u = p.unit(None);
        assert!(
            u.contains("ExecStart=/usr/local/bin/resq-fw run --model /var/lib/resq/model.resq --board rpi4 --json"),
            "{u}"
        );
        assert!(
            !["@NAME@", "@DESCRIPTION@", "@BIN@", "@MODEL@", "@USER@"]
                .iter()
                .any(|p| u.contains(p)),
            "{u}"
        );
        assert!(p
            .unit(Some("/m.resq"))
            .contains("run --model /m.resq --board rpi4"));
    }
}
