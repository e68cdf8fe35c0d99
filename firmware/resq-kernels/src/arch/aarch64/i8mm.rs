//! int8 matrix multiply (Cortex-A710, Neoverse-V1 and later): `smmla` (2 × 8 by 8 × 2 → 2 × 2,
//! s8 × s8 → i32).
//!
//! `qs8_qc8w_igemm_8x8c8__neoni8mm`: 8 output pixels × 8 output channels, 8 values of `k` per step.
//! The packing `[k_group][nb][8]` puts channels `2q` and `2q + 1` of a k-group in 16
//! contiguous bytes, which is exactly `smmla`'s second operand; the first is two rows' 8 bytes
//! side by side (two 64-bit loads joined by `ins`). Accumulator `(p, q)` holds
//! `[row 2p · ch 2q, row 2p · ch 2q+1, row 2p+1 · ch 2q, row 2p+1 · ch 2q+1]`; the epilogue
//! un-interleaves two of them with `zip1`/`zip2` on 64-bit lanes into one row's 4 channels.
//! Per k-group: 8 activation loads (d registers), 4 weight loads (q registers), 16 `smmla`
//! (8 × 8 × 8 = 512 MACs). Registers: 16 accumulators + 4 activations + 4 weights = 24 of 32.
//!
//! `smmla` is written with `asm!` inside a `#[target_feature(enable = "neon,i8mm")]` function (the
//! feature name is stable; the `vmmlaq_s32` intrinsic is not). Tails: `⌈mr / 2⌉` row pairs and
//! `⌈nb / 2⌉` channel pairs are const generics; an odd last row is paired with zeros (its
//! results are dropped), and an odd last channel's 8 weight bytes are loaded alone with the
//! other half zeroed (the 8 bytes after them may be past the panel's end). Activations:
//! `AFormat::I8`; packed bias = bias.

use core::arch::aarch64::*;
use core::arch::asm;

use super::epilogue::store_rows;
use crate::gemm::{AFormat, GemmTile, GemmUkernel};

/// See the module docs.
#[allow(non_upper_case_globals)]
pub(crate) static QS8_IGEMM_8X8C8__NEONI8MM: GemmUkernel = GemmUkernel {
    name: "qs8_qc8w_igemm_8x8c8__neoni8mm",
    mr: 8,
    nr: 8,
    kr: 8,
    a_format: AFormat::I8,
    func: entry,
};

unsafe fn entry(t: &GemmTile<'_>, out: &mut [i8]) {
    // SAFETY: the descriptor's contract (the tile fits its slices, the CPU has i8mm) is
    // exactly what `dispatch` requires.
    unsafe { dispatch(t, out) }
}

/// Picks the monomorphised tile for `(mr, nb)`.
///
/// # Safety
/// `t` fits its slices for this kernel ([`GemmTile::fits`]) and the CPU has `i8mm`.
#[target_feature(enable = "neon,i8mm")]
unsafe fn dispatch(t: &GemmTile<'_>, out: &mut [i8]) {
    macro_rules! tiles {
        ($($mr:literal)*) => {
            match (t.mr, t.nb) {
                $(
                    ($mr, 1) => tile::<$mr, 1, true>(t, out),
                    ($mr, 2) => tile::<$mr, 1, false>(t, out),
                    ($mr, 3) => tile::<$mr, 2, true>(t, out),
                    ($mr, 4) => tile::<$mr, 2, false>(t, out),
                    ($mr, 5) => tile::<$mr, 3, true>(t, out),
                    ($mr, 6) => tile::<$mr, 3, false>(t, out),
                    ($mr, 7) => tile::<$mr, 4, true>(t, out),
                    ($mr, 8) => tile::<$mr, 4, false>(t, out),
                )*
                _ => unreachable!("mr ≤ 8 and nb ≤ 8 are checked by GemmTile::fits"),
            }
        };
    }
    // SAFETY: forwarded from this function's contract.
    unsafe { tiles!(1 2 3 4 5 6 7 8) }
}

/// `acc += a · bᵀ` for `a`, `b` two 2 × 8 matrices (rows in the 64-bit halves) and `acc` the
/// 2 × 2 result, row-major.
#[target_feature(enable = "neon,i8mm")]
#[inline]
fn smmla(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: a register-only instruction of the `i8mm` extension, which this function's
    // target feature (checked by the caller's `Kernels`) guarantees.
    unsafe {
        asm!(
            "smmla {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// One `MR × nb` tile with `NP = ⌈nb / 2⌉` channel pairs, `ODD` when `nb` is odd (const, so
/// the main loop has no branches: a run-time check there made LLVM spill the accumulators).
///
/// # Safety
/// As [`dispatch`], with `t.mr == MR`, `⌈t.nb / 2⌉ == NP` and `ODD == (t.nb % 2 == 1)`.
#[target_feature(enable = "neon,i8mm")]
#[inline]
unsafe fn tile<const MR: usize, const NP: usize, const ODD: bool>(
    t: &GemmTile<'_>,
    out: &mut [i8],
) {
    // Row pairs: ⌈MR / 2⌉ ≤ 4 (arrays are sized 4 and only the first RP entries used, as
    // const generic arithmetic is not available in array lengths).
    let rp = MR.div_ceil(2);
    let mut acc = [[vdupq_n_s32(0); NP]; 4];
    let a = t.a.as_ptr() as *const i8;
    let mut w = t.w.as_ptr();
    let w_step = 8 * t.nb;
    let zero8 = vdup_n_s8(0);
    for ty in 0..t.taps[0] {
        for tx in 0..t.taps[1] {
            let off = (ty * t.tap_stride[0]).wrapping_add(tx * t.tap_stride[1]);
            // Row i's tap. `fits` checked rows[i] + off + 8 · k_groups ≤ a.len() for every tap
            // when k_groups > 0 (so the loads below are in bounds); wrapping arithmetic keeps
            // even an unused pointer (k_groups == 0) free of UB.
            let ap: [*const i8; MR] =
                core::array::from_fn(|i| a.wrapping_add(t.rows[i].wrapping_add(off)));
            let mut k = 0;
            while k < 8 * t.k_groups {
                // Rows 2p and 2p + 1 side by side (zeros for a missing odd last row).
                let x: [int8x16_t; 4] = core::array::from_fn(|p| {
                    if p >= rp {
                        return vdupq_n_s8(0);
                    }
                    // SAFETY: 8 bytes of row 2p's current k-group, in bounds (see `ap`).
                    let r0 = unsafe { vld1_s8(ap[2 * p].add(k)) };
                    let r1 = if 2 * p + 1 < MR {
                        // SAFETY: as above, row 2p + 1 < MR.
                        unsafe { vld1_s8(ap[2 * p + 1].add(k)) }
                    } else {
                        zero8
                    };
                    vcombine_s8(r0, r1)
                });
                // Channels 2q and 2q + 1 (zeros for a missing odd last channel).
                let wv: [int8x16_t; NP] = core::array::from_fn(|q| {
                    if ODD && q + 1 == NP {
                        // SAFETY: channel 2q = nb − 1: its 8 bytes end the k-group's nb · 8.
                        vcombine_s8(unsafe { vld1_s8(w.add(16 * q)) }, zero8)
                    } else {
                        // SAFETY: channels 2q, 2q + 1 < nb: 16 bytes inside the k-group
                        // (`fits` checked taps · k_groups · nb · 8 ≤ w.len()).
                        unsafe { vld1q_s8(w.add(16 * q)) }
                    }
                });
                #[allow(clippy::needless_range_loop)]
                for p in 0..rp {
                    for q in 0..NP {
                        acc[p][q] = smmla(acc[p][q], x[p], wv[q]);
                    }
                }
                // SAFETY: at most one past the panel's end.
                w = unsafe { w.add(w_step) };
                k += 8;
            }
        }
    }

    // Un-interleave: row 2p's channels 4v..4v + 4 are the low halves of accumulators
    // (p, 2v) and (p, 2v + 1), row 2p + 1's the high halves.
    let zero = vdupq_n_s64(0);
    let mut rows = [[vdupq_n_s32(0); 2]; MR];
    for p in 0..rp {
        for v in 0..NP.div_ceil(2) {
            let c0 = vreinterpretq_s64_s32(acc[p][2 * v]);
            let c1 = if 2 * v + 1 < NP {
                vreinterpretq_s64_s32(acc[p][2 * v + 1])
            } else {
                zero
            };
            rows[2 * p][v] = vreinterpretq_s32_s64(vzip1q_s64(c0, c1));
            if 2 * p + 1 < MR {
                rows[2 * p + 1][v] = vreinterpretq_s32_s64(vzip2q_s64(c0, c1));
            }
        }
    }
    // SAFETY: forwarded: `t` fits, t.mr == MR, t.nb ≤ 2 · NP ≤ 8.
    unsafe { store_rows::<MR, 2>(t, &rows, out) }
}

/// Multiply-accumulates per second of `smmla` alone (16 independent accumulators, 32 MACs
/// each, no memory): this tier's int8 peak on one core.
#[cfg(any(unix, windows))]
pub(crate) fn peak_macs_per_second(iters: usize) -> f64 {
    // SAFETY: callers reach this only through `Kernels` of this tier (CPU checked).
    unsafe { peak(iters) }
}

#[cfg(any(unix, windows))]
#[target_feature(enable = "neon,i8mm")]
fn peak(iters: usize) -> f64 {
    let a = vdupq_n_s8(core::hint::black_box(3));
    let b = vdupq_n_s8(core::hint::black_box(5));
    let mut acc = [vdupq_n_s32(0); 16];
    super::best_of_trials(iters, 16 * 32, || {
        for acc in acc.iter_mut() {
            *acc = smmla(*acc, a, b);
        }
    })
}
