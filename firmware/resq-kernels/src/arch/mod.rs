//! Per-architecture micro-kernels and CPU feature detection.
//!
//! Each ISA lives in one file (`x86_64/avx2.rs`, `x86_64/avx512vnni.rs`,
//! `aarch64/neon.rs`, `aarch64/dotprod.rs`, `aarch64/i8mm.rs`) and exports `static`
//! [`GemmUkernel`](crate::gemm::GemmUkernel) descriptors. [`gemm_ukernel`] is the one table
//! mapping a tier to its kernel; [`crate::Kernels::new`] only hands a kernel out after the
//! feature check here, which is what makes calling it sound.

use crate::gemm::GemmUkernel;
use crate::Isa;

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;

#[cfg(target_arch = "aarch64")]
pub(crate) mod aarch64;

/// The GEMM micro-kernel of a tier, if this build has one (the CPU is not checked here).
pub(crate) fn gemm_ukernel(isa: Isa) -> Option<&'static GemmUkernel> {
    match isa {
        Isa::Reference => None,
        Isa::Generic => Some(&crate::gemm::QS8_IGEMM_4X16C4__SCALAR),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Some(&x86_64::avx2::QS8_IGEMM_6X8C4__AVX2),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => Some(&x86_64::avx512vnni::QS8_IGEMM_6X64C4__AVX512VNNI),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon | Isa::Dotprod | Isa::I8mm => aarch64::gemm_ukernel(isa),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// AVX2 (with the OS saving the ymm state).
pub(crate) fn x86_avx2() -> bool {
    #[cfg(all(target_arch = "x86_64", any(unix, windows)))]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(all(target_arch = "x86_64", not(any(unix, windows))))]
    {
        cfg!(target_feature = "avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// AVX-512 F, BW, VL and VNNI (with the OS saving the zmm state).
pub(crate) fn x86_avx512vnni() -> bool {
    #[cfg(all(target_arch = "x86_64", any(unix, windows)))]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(all(target_arch = "x86_64", not(any(unix, windows))))]
    {
        cfg!(all(
            target_feature = "avx512f",
            target_feature = "avx512bw",
            target_feature = "avx512vl",
            target_feature = "avx512vnni"
        ))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether an aarch64 tier has kernels in this build and the CPU runs them.
pub(crate) fn arm_kernels(isa: Isa) -> bool {
    #[cfg(target_arch = "aarch64")]
    {
        aarch64::cpu_has(isa) && aarch64::gemm_ukernel(isa).is_some()
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        let _ = isa;
        false
    }
}
