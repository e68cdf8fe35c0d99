//! aarch64 micro-kernels (Cortex-A), one file per tier, all reading plain int8 activations
//! (`AFormat::I8`, so the packed bias is the file's):
//!
//! | tier | kernel | instruction |
//! |---|---|---|
//! | neon | [`neon::QS8_IGEMM_2X8C16__NEON_MULL`] (2 × 8, kr 16) | `smull`/`smull2` + `sadalp` |
//! | dotprod | [`dotprod::QS8_IGEMM_4X16C4__NEONDOT`] (4 × 16, kr 4) | `sdot` by lane (`asm!`) |
//! | i8mm | [`i8mm::QS8_IGEMM_8X8C8__NEONI8MM`] (8 × 8, kr 8) | `smmla` (`asm!`) |
//!
//! They share the vectorised epilogue in `epilogue.rs`. The property tests in `tests/isa.rs`
//! and the engine's whole-model test pick them up from [`crate::Isa::ALL`]; run them under
//! qemu with `-cpu cortex-a72` (neon), `-cpu cortex-a76` (dotprod) and `-cpu max` (i8mm), as
//! the workspace's `tests/tests/cross.rs` does.

use crate::gemm::GemmUkernel;
use crate::Isa;

mod dotprod;
mod epilogue;
mod i8mm;
mod neon;

/// The kernel of an aarch64 tier (the CPU is not checked here: see [`cpu_has`]).
pub(crate) fn gemm_ukernel(isa: Isa) -> Option<&'static GemmUkernel> {
    match isa {
        Isa::Neon => Some(&neon::QS8_IGEMM_2X8C16__NEON_MULL),
        Isa::Dotprod => Some(&dotprod::QS8_IGEMM_4X16C4__NEONDOT),
        Isa::I8mm => Some(&i8mm::QS8_IGEMM_8X8C8__NEONI8MM),
        _ => None,
    }
}

/// This tier's int8 peak on one core in multiply-accumulates per second: its kernel's
/// multiply-accumulate instructions alone on independent accumulators, about `iters` trips.
///
/// Callers hold a [`crate::Kernels`] of `isa` (the CPU runs it).
#[cfg(any(unix, windows))]
pub(crate) fn peak_macs_per_second(isa: Isa, iters: usize) -> Option<f64> {
    match isa {
        Isa::Neon => Some(neon::peak_macs_per_second(iters)),
        Isa::Dotprod => Some(dotprod::peak_macs_per_second(iters)),
        Isa::I8mm => Some(i8mm::peak_macs_per_second(iters)),
        _ => None,
    }
}

/// The best time of 5 trials of `iters / 5` calls of `body`, as `macs` per call per second
/// (other processes only ever slow a trial down).
#[cfg(any(unix, windows))]
fn best_of_trials(iters: usize, macs: usize, mut body: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = std::time::Instant::now();
        for _ in 0..iters / 5 {
            body();
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    (iters / 5 * macs) as f64 / best.max(1e-9)
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
