//! Instruction-set tiers and run-time detection.
//!
//! An [`Isa`] names one family of kernels. The engine picks one **once, at load**: the best the
//! CPU reports ([`Isa::detect`]), or the one named by `RESQ_ISA` / `--isa` for A/B tests
//! ([`Isa::from_env`]). Every tier computes the same bytes as [`Isa::Reference`].
//!
//! Detection needs an operating system (`std`); on bare-metal targets (`target_os = "none"`)
//! only what the compiler was told to assume (`-C target-feature`) counts.

use core::fmt;

/// A family of kernels for one instruction set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// The portable reference kernels (`reference`): the definition of the arithmetic.
    Reference,
    /// The portable GEMM driver with a plain-Rust micro-kernel: exercises the packing, the
    /// padding and the tiling on every target (tests, qemu); never chosen automatically.
    Generic,
    /// x86-64 AVX2: `vpmaddwd` on sign-extended int16 (development hosts, CI).
    Avx2,
    /// x86-64 AVX-512 F/BW/VL + VNNI: `vpdpbusd` (Ice Lake, Sapphire Rapids, Zen 4 and later).
    Avx512Vnni,
    /// aarch64 Advanced SIMD baseline: `smlal` / `sadalp` (Cortex-A53/A57/A72).
    Neon,
    /// aarch64 dot product: `sdot` (Cortex-A55/A76/A78).
    Dotprod,
    /// aarch64 int8 matrix multiply: `smmla` (Cortex-A710, Neoverse-V1 and later).
    I8mm,
}

impl Isa {
    /// Every tier, in the order of [`Isa::name`]s accepted by `RESQ_ISA`.
    pub const ALL: [Isa; 7] = [
        Isa::Reference,
        Isa::Generic,
        Isa::Avx2,
        Isa::Avx512Vnni,
        Isa::Neon,
        Isa::Dotprod,
        Isa::I8mm,
    ];

    /// Automatic choice order, best first.
    const PREFERENCE: [Isa; 5] = [
        Isa::Avx512Vnni,
        Isa::Avx2,
        Isa::I8mm,
        Isa::Dotprod,
        Isa::Neon,
    ];

    /// The name used by `RESQ_ISA`, `--isa` and reports.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Reference => "reference",
            Isa::Generic => "generic",
            Isa::Avx2 => "avx2",
            Isa::Avx512Vnni => "avx512vnni",
            Isa::Neon => "neon",
            Isa::Dotprod => "dotprod",
            Isa::I8mm => "i8mm",
        }
    }

    /// Parses a name from [`Isa::name`] (ASCII case-insensitive).
    pub fn parse(name: &str) -> Option<Isa> {
        Isa::ALL
            .into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether this build has kernels for the tier **and** the CPU can run them.
    pub fn supported(self) -> bool {
        match self {
            Isa::Reference | Isa::Generic => true,
            Isa::Avx2 => crate::arch::x86_avx2(),
            Isa::Avx512Vnni => crate::arch::x86_avx512vnni(),
            // aarch64 kernels slot in here: see `crate::arch` and the crate README.
            Isa::Neon | Isa::Dotprod | Isa::I8mm => crate::arch::arm_kernels(self),
        }
    }

    /// The best supported tier (the reference when nothing faster is).
    pub fn detect() -> Isa {
        Isa::PREFERENCE
            .into_iter()
            .find(|i| i.supported())
            .unwrap_or(Isa::Reference)
    }

    /// The tier named by the `RESQ_ISA` environment variable: `Ok(None)` when it is unset,
    /// an error when it names no tier or one this CPU / build cannot run.
    #[cfg(any(unix, windows))]
    pub fn from_env() -> Result<Option<Isa>, IsaError> {
        match std::env::var("RESQ_ISA") {
            Ok(v) if !v.trim().is_empty() => Isa::choose(&v).map(Some),
            _ => Ok(None),
        }
    }

    /// Parses `name` and checks the tier is supported.
    pub fn choose(name: &str) -> Result<Isa, IsaError> {
        let isa = Isa::parse(name).ok_or(IsaError::Unknown)?;
        if isa.supported() {
            Ok(isa)
        } else {
            Err(IsaError::Unsupported(isa))
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a requested tier cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsaError {
    /// The name is none of [`Isa::name`]'s.
    Unknown,
    /// This CPU (or this build) cannot run the tier.
    Unsupported(Isa),
}

impl fmt::Display for IsaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IsaError::Unknown => f.write_str(
                "unknown kernel ISA: use reference, generic, avx2, avx512vnni, neon, dotprod or i8mm",
            ),
            IsaError::Unsupported(isa) => write!(
                f,
                "this CPU or build cannot run the {isa} kernels (supported here: {})",
                SupportedList
            ),
        }
    }
}

impl core::error::Error for IsaError {}

struct SupportedList;

impl fmt::Display for SupportedList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for isa in Isa::ALL.into_iter().filter(|i| i.supported()) {
            if !first {
                f.write_str(", ")?;
            }
            f.write_str(isa.name())?;
            first = false;
        }
        Ok(())
    }
}
