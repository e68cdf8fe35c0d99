//! x86-64 micro-kernels: AVX2 and AVX-512 VNNI.

pub(crate) mod avx2;
pub(crate) mod avx512vnni;
