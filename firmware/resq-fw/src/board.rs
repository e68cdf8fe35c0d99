//! Board profiles (`boards/*.toml`): target triple, CPU features the kernels may use, cores,
//! default camera, GPIO lines, install paths. The schema, the shipped profiles (built in) and
//! the unit template are the `resq-board` crate's, shared with `resq flash`; here is what the
//! board itself does with a profile: `--board NAME | FILE`, the host's default, and the CPU
//! check ([`ProfileExt`]).

use std::path::Path;

use anyhow::{bail, Result};
use resq_io::ResultExt;

pub use resq_board::{
    CameraProfile, GpioProfile, InstallProfile, Profile, WatchProfile, BUILTIN, UNIT_TEMPLATE,
};

/// What `resq-fw` adds to a [`Profile`]: loading by name or file, the host's default, the
/// CPU check.
pub trait ProfileExt: Sized {
    /// A built-in profile by name, or a profile file by path (read with a size limit). Every
    /// error is bad input (exit status [`resq_io::exit::BAD_INPUT`]).
    fn load(name_or_file: &str) -> Result<Self>;
    /// The profile for the machine this runs on, when none is named.
    fn default_for_host() -> Self;
    /// Warnings about this machine against the profile: another architecture, or a CPU
    /// feature the profile promises that this CPU lacks.
    fn check_cpu(&self) -> Vec<String>;
}

impl ProfileExt for Profile {
    fn load(name_or_file: &str) -> Result<Profile> {
        load_unclassified(name_or_file).bad_input()
    }

    fn default_for_host() -> Profile {
        let name = if cfg!(target_arch = "aarch64") {
            "generic-aarch64"
        } else {
            "x86_64-host"
        };
        // The built-in profiles are checked by the tests, so this cannot fail.
        Profile::load(name).unwrap_or_else(|e| unreachable!("built-in profile {name}: {e:#}"))
    }

    fn check_cpu(&self) -> Vec<String> {
        let arch = self.arch();
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
}

fn load_unclassified(name_or_file: &str) -> Result<Profile> {
    if let Some(text) = resq_board::builtin(name_or_file) {
        let origin = format!("`{name_or_file}` (built in)");
        return Ok(Profile::parse(text, &origin)?);
    }
    let path = Path::new(name_or_file);
    if path.exists() {
        let text = resq_io::read_text(path, "board profile")?;
        return Ok(Profile::parse(&text, &path.display().to_string())?);
    }
    bail!(
        "no board `{name_or_file}`: use one of {} or the path of a profile file",
        resq_board::names().join(", ")
    )
}

/// Whether the running CPU has `feature` (names as in [`resq_board::known_features`] for this
/// architecture).
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
    use resq_board::arch_of;

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
