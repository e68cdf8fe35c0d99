//! Depthwise convolution (`groups == cin == cout`): one dot product of `kh · kw` per channel,
//! vectorised across channels.
//!
//! A GEMM per group would have one output channel per panel, so depthwise gets its own kernel:
//! the input is prepared as plain int8 with padding (the GEMM path's [`Prep`]), weights are
//! packed once as `[tap][channel]` (same size as the file's `[channel][tap]`, so they can be
//! packed in place), and for each output pixel the accumulators of a block of channels sweep
//! the taps. The loop is written once, portably, and compiled per ISA with
//! `#[target_feature]` (the compiler vectorises the i8 × i8 → i32 multiply-adds).

use core::ops::Range;

use crate::gemm::{AFormat, Prep};
#[cfg(target_arch = "x86_64")]
use crate::Isa;
use crate::{Epilogue, Geometry, Kernels};

/// Channels per accumulator block (fits the register file as i32 on AVX-512).
const BLOCK: usize = 64;

/// A depthwise convolution decided at load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DwPlan {
    geo: Geometry,
    /// The input preparation (int8, padded).
    pub prep: Prep,
}

impl DwPlan {
    /// Whether a convolution is depthwise with multiplier 1.
    pub fn applies(geo: &Geometry, groups: usize) -> bool {
        groups > 1 && groups == geo.input[2] && groups == geo.output[2]
    }

    /// Plans a depthwise convolution (see [`DwPlan::applies`]).
    pub fn new(geo: &Geometry) -> DwPlan {
        DwPlan {
            geo: *geo,
            prep: Prep::padded(geo, AFormat::I8),
        }
    }

    /// Bytes of packed weights.
    pub fn packed_len(&self) -> usize {
        self.geo.output[2] * self.geo.kernel[0] * self.geo.kernel[1]
    }

    /// Packs `[c][kh][kw][1]` weights as `[kh · kw][c]`.
    pub fn pack(&self, weights: &[i8], out: &mut [i8]) {
        let c = self.geo.output[2];
        let taps = self.geo.kernel[0] * self.geo.kernel[1];
        assert!(weights.len() == c * taps && out.len() == c * taps);
        for (ch, w) in weights.chunks_exact(taps).enumerate() {
            for (t, &v) in w.iter().enumerate() {
                out[t * c + ch] = v;
            }
        }
    }

    /// Output channels.
    pub fn channels(&self) -> usize {
        self.geo.output[2]
    }

    /// Output rows (pixels).
    pub fn rows(&self) -> usize {
        self.geo.output[0] * self.geo.output[1]
    }

    /// Computes output pixels `rows` into `out` (holding output indices `out_base..`), from
    /// the prepared input `a`, with the file's bias (int8 needs no compensation), using the
    /// loop compiled for `kernels`' tier.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        kernels: &Kernels,
        a: &[u8],
        packed: &[i8],
        ep: &Epilogue<'_>,
        out: &mut [i8],
        out_base: usize,
        rows: Range<usize>,
    ) {
        assert!(a.len() >= self.prep.len() - 64 && packed.len() == self.packed_len());
        match kernels.isa() {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => {
                // SAFETY: `Kernels` exists only for supported tiers: the CPU has AVX-512 F/BW.
                // The body is safe code.
                unsafe { x86::avx512(self, a, packed, ep, out, out_base, rows) }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: `Kernels` exists only for supported tiers: the CPU has AVX2. The body
                // is safe code.
                unsafe { x86::avx2(self, a, packed, ep, out, out_base, rows) }
            }
            _ => body(self, a, packed, ep, out, out_base, rows),
        }
    }
}

#[inline(always)]
fn body(
    plan: &DwPlan,
    a: &[u8],
    packed: &[i8],
    ep: &Epilogue<'_>,
    out: &mut [i8],
    out_base: usize,
    rows: Range<usize>,
) {
    let [_, ow, c] = plan.geo.output;
    let [kh, kw] = plan.geo.kernel;
    let [sh, sw] = plan.geo.stride;
    let pw = plan.prep.columns();
    for m in rows {
        let (oy, ox) = (m / ow, m % ow);
        let base = (oy * sh * pw + ox * sw) * c;
        let mut c0 = 0;
        while c0 < c {
            let n = BLOCK.min(c - c0);
            let mut acc = [0i32; BLOCK];
            let acc = &mut acc[..n];
            acc.copy_from_slice(&ep.bias[c0..c0 + n]);
            for ky in 0..kh {
                for kx in 0..kw {
                    let x = &a[base + (ky * pw + kx) * c + c0..][..n];
                    let w = &packed[(ky * kw + kx) * c + c0..][..n];
                    for ((acc, &x), &w) in acc.iter_mut().zip(x).zip(w) {
                        *acc = acc.wrapping_add(x as i8 as i32 * w as i32);
                    }
                }
            }
            for (j, &acc) in acc.iter().enumerate() {
                let index = m * c + c0 + j;
                out[index - out_base] = ep.apply(acc, c0 + j, index);
            }
            c0 += n;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;

    #[target_feature(enable = "avx2")]
    pub(super) fn avx2(
        plan: &DwPlan,
        a: &[u8],
        packed: &[i8],
        ep: &Epilogue<'_>,
        out: &mut [i8],
        out_base: usize,
        rows: Range<usize>,
    ) {
        body(plan, a, packed, ep, out, out_base, rows)
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn avx512(
        plan: &DwPlan,
        a: &[u8],
        packed: &[i8],
        ep: &Epilogue<'_>,
        out: &mut [i8],
        out_base: usize,
        rows: Range<usize>,
    ) {
        body(plan, a, packed, ep, out, out_base, rows)
    }
}
