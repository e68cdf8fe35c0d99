//! Board profiles (`boards/*.toml`): target triple, CPU features the kernels may use, cores,
//! default camera, GPIO lines, install paths. The shipped profiles are built in; `--board FILE`
//! reads another.

use std::path::Path;

use anyhow::{bail, Context, Result};
use resq_io::ResultExt;
use serde::Deserialize;

/// The shipped profiles, by name.
pub const BUILTIN: &[(&str, &str)] = &[
    ("rpi4", include_str!("../../../boards/rpi4.toml")),
    ("rpi5", include_str!("../../../boards/rpi5.toml")),
    (
        "jetson-nano",
        include_str!("../../../boards/jetson-nano.toml"),
    ),
    (
        "jetson-orin-nano",
        include_str!("../../../boards/jetson-orin-nano.toml"),
    ),
    (
        "generic-aarch64",
        include_str!("../../../boards/generic-aarch64.toml"),
    ),
    (
        "x86_64-host",
        include_str!("../../../boards/x86_64-host.toml"),
    ),
];

/// The systemd unit template (`boards/resq-fw.service`).
pub const UNIT_TEMPLATE: &str = include_str!("../../../boards/resq-fw.service");

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

/// Install paths.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InstallProfile {
    /// The `resq-fw` binary.
    pub bin: String,
    /// The model file the service runs.
    pub model: String,
    /// The systemd unit.
    pub unit: String,
    /// The unprivileged user the service runs as.
    pub user: String,
}

impl Profile {
    /// Parses a profile; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Profile> {
        let p: Profile = toml::from_str(text).with_context(|| {
            format!("board profile {origin} is not valid (see boards/README.md for the fields)")
        })?;
        for f in &p.features {
            if !known_features(arch_of(&p.target)).contains(&f.as_str()) {
                bail!(
                    "board profile {origin}: CPU feature `{f}` is unknown for {}; known: {}",
                    p.target,
                    known_features(arch_of(&p.target)).join(", ")
                );
            }
        }
        if p.cores == 0 || p.threads == 0 {
            bail!("board profile {origin}: `cores` and `threads` must be at least 1");
        }
        Ok(p)
    }

    /// A built-in profile by name, or a profile file by path (read with a size limit). Every
    /// error is bad input (exit status [`resq_io::exit::BAD_INPUT`]).
    pub fn load(name_or_file: &str) -> Result<Profile> {
        Profile::load_unclassified(name_or_file).bad_input()
    }

    fn load_unclassified(name_or_file: &str) -> Result<Profile> {
        if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_file) {
            return Profile::parse(text, &format!("`{name_or_file}` (built in)"));
        }
        let path = Path::new(name_or_file);
        if path.exists() {
            let text = resq_io::read_text(path, "board profile")?;
            return Profile::parse(&text, &path.display().to_string());
        }
        bail!(
            "no board `{name_or_file}`: use one of {} or the path of a profile file",
            BUILTIN
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    /// The profile for the machine this runs on, when none is named.
    pub fn default_for_host() -> Profile {
        let name = if cfg!(target_arch = "aarch64") {
            "generic-aarch64"
        } else {
            "x86_64-host"
        };
        // The built-in profiles are checked by the tests, so this cannot fail.
        Profile::load(name).unwrap_or_else(|e| unreachable!("built-in profile {name}: {e:#}"))
    }

    /// Warnings about this machine against the profile: another architecture, or a CPU feature
    /// the profile promises that this CPU lacks.
    pub fn check_cpu(&self) -> Vec<String> {
        let arch = arch_of(&self.target);
        if arch != std::env::consts::ARCH {
            return vec![format!(
                "board profile `{}` is for {arch} but this machine is {}; its CPU features are not checked",
                self.name,
                std::env::consts::ARCH
            )];
        }
        self.features
            .iter()
            .filter(|f| !has_feature(f))
            .map(|f| {
                format!(
                    "board profile `{}` ({}) promises the CPU feature `{f}`, but this CPU lacks it: \
                     kernels that need it stay off, so expect lower speed (is this the right --board?)",
                    self.name, self.cpu
                )
            })
            .collect()
    }

    /// The systemd unit for this board, running `model` (default: the profile's install path).
    pub fn unit(&self, model: Option<&str>) -> String {
        UNIT_TEMPLATE
            .replace("@NAME@", &self.name)
            .replace("@DESCRIPTION@", &self.description)
            .replace("@BIN@", &self.install.bin)
            .replace("@MODEL@", model.unwrap_or(&self.install.model))
            .replace("@USER@", &self.install.user)
    }
}

fn arch_of(target: &str) -> &str {
    target.split('-').next().unwrap_or(target)
}

fn known_features(arch: &str) -> &'static [&'static str] {
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

/// Whether the running CPU has `feature` (names as in [`known_features`] for this architecture).
pub fn has_feature(feature: &str) -> bool {
    #[cfg(target_arch = "aarch64")]
    {
        use std::arch::is_aarch64_feature_detected as has;
        match feature {
            "neon" => has!("neon"),
            "dotprod" => has!("dotprod"),
            "i8mm" => has!("i8mm"),
            "fp16" => has!("fp16"),
            "bf16" => has!("bf16"),
            "sve" => has!("sve"),
            "sve2" => has!("sve2"),
            "crc" => has!("crc"),
            "aes" => has!("aes"),
            "sha2" => has!("sha2"),
            _ => false,
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        match feature {
            "sse2" => has!("sse2"),
            "ssse3" => has!("ssse3"),
            "sse4.1" => has!("sse4.1"),
            "sse4.2" => has!("sse4.2"),
            "popcnt" => has!("popcnt"),
            "avx" => has!("avx"),
            "avx2" => has!("avx2"),
            "fma" => has!("fma"),
            "f16c" => has!("f16c"),
            "avx512f" => has!("avx512f"),
            "avx512bw" => has!("avx512bw"),
            "avx512vnni" => has!("avx512vnni"),
            "avxvnni" => has!("avxvnni"),
            _ => false,
        }
    }
    #[cfg(not(any(target_arch = "aarch64", target_arch = "x86_64")))]
    {
        let _ = feature;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_profile_parses_and_is_named_after_itself() {
        for (name, text) in BUILTIN {
            let p = Profile::parse(text, name).unwrap();
            assert_eq!(&p.name, name);
            assert!(p.threads <= p.cores, "{name}: more threads than cores");
        }
    }

    #[test]
    fn unknown_fields_and_features_are_refused_by_name() {
        let rpi4 = BUILTIN[0].1;
        let e = Profile::parse(&rpi4.replace("cores =", "corez ="), "x.toml").unwrap_err();
        assert!(format!("{e:#}").contains("corez"), "{e:#}");
        let e = Profile::parse(&rpi4.replace("\"neon\"", "\"neom\""), "x.toml").unwrap_err();
        assert!(
            format!("{e:#}").contains("CPU feature `neom` is unknown"),
            "{e:#}"
        );
        let e = Profile::load("rpi3").unwrap_err();
        assert!(format!("{e:#}").contains("use one of rpi4, rpi5"), "{e:#}");
    }

    #[test]
    fn a_profile_for_another_architecture_warns_once() {
        let other = if cfg!(target_arch = "aarch64") {
            "x86_64-host"
        } else {
            "rpi4"
        };
        let w = Profile::load(other).unwrap().check_cpu();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("its CPU features are not checked"), "{w:?}");
    }

    #[test]
    fn the_host_profile_fits_the_host() {
        let p = Profile::default_for_host();
        assert_eq!(arch_of(&p.target), std::env::consts::ARCH);
    }
}
