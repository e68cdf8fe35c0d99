//! NEON baseline (Cortex-A53/A57/A72): `smull`/`smull2` (s8 × s8 → s16) + `sadalp`.
//!
//! `qs8_qc8w_igemm_2x8c16__neon_mull`: 2 output pixels × 8 output channels, 16 values of `k` per
//! step. Per k-group each row loads its 16 activations (one q register) and each channel its
//! 16 weights; every (row, channel) pair does `smull` on the low 8 bytes and `smull2` on the
//! high 8, each followed by its own `sadalp` into that pair's i32×4 accumulator. Widening after
//! every product keeps it exact for all inputs: one product is at most 128 · 128 = 2¹⁴, which
//! fits an i16, but the `smull` + `smlal` pair form could reach 2¹⁵ and wrap, so it is not used.
//! At the end the 4 lanes of each accumulator are folded by `addp` into one i32 per channel,
//! four channels per vector, and the shared vectorised epilogue writes the row.
//!
//! Tails: `mr` and `nb` are const generics (2 × 8 monomorphised tiles), so a narrow panel loads
//! only its `nb` channels' weights and a 1-row tile only its row; no masking is needed.
//! Activations: `AFormat::I8`; packed bias = bias.

use core::arch::aarch64::*;
#[cfg(any(unix, windows))]
use core::arch::asm;

use super::epilogue::store_rows;
use crate::gemm::{AFormat, GemmTile, GemmUkernel};

/// See the module docs.
#[allow(non_upper_case_globals)]
pub(crate) static QS8_IGEMM_2X8C16__NEON_MULL: GemmUkernel = GemmUkernel {
    name: "qs8_qc8w_igemm_2x8c16__neon_mull",
    mr: 2,
    nr: 8,
    kr: 16,
    a_format: AFormat::I8,
    func: entry,
};

const KR: usize = 16;

unsafe fn entry(t: &GemmTile<'_>, out: &mut [i8]) {
    // SAFETY: the descriptor's contract (the tile fits its slices; NEON is part of the
    // aarch64 baseline) is exactly what `dispatch` requires.
    unsafe { dispatch(t, out) }
}

/// Picks the monomorphised tile for `(mr, nb)`.
///
/// # Safety
/// `t` fits its slices for this kernel ([`GemmTile::fits`]).
#[target_feature(enable = "neon")]
unsafe fn dispatch(t: &GemmTile<'_>, out: &mut [i8]) {
    macro_rules! tiles {
        ($($mr:literal)*) => {
            match (t.mr, t.nb) {
                $(
                    ($mr, 1) => tile::<$mr, 1>(t, out),
                    ($mr, 2) => tile::<$mr, 2>(t, out),
                    ($mr, 3) => tile::<$mr, 3>(t, out),
                    ($mr, 4) => tile::<$mr, 4>(t, out),
                    ($mr, 5) => tile::<$mr, 5>(t, out),
                    ($mr, 6) => tile::<$mr, 6>(t, out),
                    ($mr, 7) => tile::<$mr, 7>(t, out),
                    ($mr, 8) => tile::<$mr, 8>(t, out),
                )*
                _ => unreachable!("mr ≤ 2 and nb ≤ 8 are checked by GemmTile::fits"),
            }
        };
    }
    // SAFETY: forwarded from this function's contract.
    unsafe { tiles!(1 2) }
}

/// One `MR × NB` tile.
///
/// # Safety
/// As [`dispatch`], with `t.mr == MR` and `t.nb == NB`.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn tile<const MR: usize, const NB: usize>(t: &GemmTile<'_>, out: &mut [i8]) {
    let mut acc = [[vdupq_n_s32(0); NB]; MR];
    let a = t.a.as_ptr() as *const i8;
    let mut w = t.w.as_ptr();
    for ty in 0..t.taps[0] {
        for tx in 0..t.taps[1] {
            let off = (ty * t.tap_stride[0]).wrapping_add(tx * t.tap_stride[1]);
            // Row i's tap. `fits` checked rows[i] + off + 16 · k_groups ≤ a.len() for every tap
            // when k_groups > 0 (so the loads below are in bounds); wrapping arithmetic keeps
            // even an unused pointer (k_groups == 0) free of UB.
            let ap: [*const i8; MR] =
                core::array::from_fn(|i| a.wrapping_add(t.rows[i].wrapping_add(off)));
            let mut k = 0;
            while k < KR * t.k_groups {
                // SAFETY: 16 bytes of row i's current k-group, in bounds (see `ap`).
                let x: [int8x16_t; MR] =
                    core::array::from_fn(|i| unsafe { vld1q_s8(ap[i].add(k)) });
                #[allow(clippy::needless_range_loop)]
                for j in 0..NB {
                    // SAFETY: channel j < nb's 16 weights of this k-group, inside its nb · 16
                    // bytes (`fits` checked taps · k_groups · nb · 16 ≤ w.len()).
                    let wv = unsafe { vld1q_s8(w.add(KR * j)) };
                    for i in 0..MR {
                        let lo = vmull_s8(vget_low_s8(wv), vget_low_s8(x[i]));
                        acc[i][j] = vpadalq_s16(acc[i][j], lo);
                        let hi = vmull_high_s8(wv, x[i]);
                        acc[i][j] = vpadalq_s16(acc[i][j], hi);
                    }
                }
                // SAFETY: at most one past the panel's end.
                w = unsafe { w.add(KR * NB) };
                k += KR;
            }
        }
    }

    // Fold each accumulator's 4 lanes: channels 4v..4v + 4 of row i into one vector.
    let zero = vdupq_n_s32(0);
    let mut sums = [[zero; 2]; MR];
    #[allow(clippy::needless_range_loop)]
    for i in 0..MR {
        let get = |j: usize| if j < NB { acc[i][j] } else { zero };
        for v in 0..NB.div_ceil(4) {
            let p01 = vpaddq_s32(get(4 * v), get(4 * v + 1));
            let p23 = vpaddq_s32(get(4 * v + 2), get(4 * v + 3));
            sums[i][v] = vpaddq_s32(p01, p23);
        }
    }
    // SAFETY: forwarded: `t` fits, t.mr == MR, t.nb == NB ≤ 8.
    unsafe { store_rows::<MR, 2>(t, &sums, out) }
}

/// Multiply-accumulates per second of the inner loop's instructions alone (16 independent
/// accumulators, each `smull` + `sadalp` + `smull2` + `sadalp` = 16 MACs per trip, no memory):
/// this tier's int8 peak on one core.
#[cfg(any(unix, windows))]
pub(crate) fn peak_macs_per_second(iters: usize) -> f64 {
    // SAFETY: NEON is part of the aarch64 baseline.
    unsafe { peak(iters) }
}

#[cfg(any(unix, windows))]
#[target_feature(enable = "neon")]
fn peak(iters: usize) -> f64 {
    let a = vdupq_n_s8(core::hint::black_box(3));
    let b = vdupq_n_s8(core::hint::black_box(5));
    let mut acc = [vdupq_n_s32(0); 16];
    super::best_of_trials(iters, 16 * 16, || {
        for acc in acc.iter_mut() {
            // SAFETY: register-only NEON instructions (aarch64 baseline).
            unsafe {
                asm!(
                    "smull {t:v}.8h, {a:v}.8b, {b:v}.8b",
                    "sadalp {acc:v}.4s, {t:v}.8h",
                    "smull2 {t:v}.8h, {a:v}.16b, {b:v}.16b",
                    "sadalp {acc:v}.4s, {t:v}.8h",
                    acc = inout(vreg) *acc,
                    a = in(vreg) a,
                    b = in(vreg) b,
                    t = out(vreg) _,
                    options(pure, nomem, nostack, preserves_flags),
                );
            }
        }
    })
}
