//! aarch64 micro-kernels (Cortex-A): the slots are here, the kernels are still to be written.
//!
//! Adding a tier (see the crate README, "Adding an ISA"):
//!
//! 1. write `neon.rs` / `dotprod.rs` / `i8mm.rs` beside this file, each exporting a
//!    `pub(crate) static QS8_IGEMM_{MR}X{NR}C{KR}__{ISA}: GemmUkernel`;
//! 2. return it from [`gemm_ukernel`] below;
//! 3. the property tests in `tests/isa.rs` and the engine's whole-model test pick it up from
//!    [`crate::Isa::ALL`] with no further change; run them under qemu with
//!    `-cpu cortex-a72` (neon), `-cpu cortex-a76` (dotprod) and `-cpu max` (i8mm).

use crate::gemm::GemmUkernel;
use crate::Isa;

/// The kernel of an aarch64 tier, once written.
pub(crate) fn gemm_ukernel(isa: Isa) -> Option<&'static GemmUkernel> {
    match isa {
        // Isa::Neon => Some(&neon::QS8_IGEMM_4X16C8__NEON_MLAL),
        // Isa::Dotprod => Some(&dotprod::QS8_IGEMM_6X16C4__NEONDOT),
        // Isa::I8mm => Some(&i8mm::QS8_IGEMM_8X8C8__NEONI8MM),
        _ => None,
    }
}

/// What the CPU reports (Linux: `HWCAP_ASIMDDP`, `HWCAP2_I8MM` through std's detection).
pub(crate) fn cpu_has(isa: Isa) -> bool {
    match isa {
        Isa::Neon => true,
        #[cfg(any(unix, windows))]
        Isa::Dotprod => std::arch::is_aarch64_feature_detected!("dotprod"),
        #[cfg(any(unix, windows))]
        Isa::I8mm => std::arch::is_aarch64_feature_detected!("i8mm"),
        #[cfg(not(any(unix, windows)))]
        Isa::Dotprod => cfg!(target_feature = "dotprod"),
        #[cfg(not(any(unix, windows)))]
        Isa::I8mm => cfg!(target_feature = "i8mm"),
        _ => false,
    }
}
