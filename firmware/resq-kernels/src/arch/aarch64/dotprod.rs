//! Dot product (Cortex-A55/A76/A78): `sdot` (s8 × s8 → i32, four products per lane).
//!
//! `qs8_qc8w_igemm_4x16c4__neondot`: 4 output pixels × 16 output channels (four q registers of
//! 4 i32 lanes per row), 16 accumulators. A k-group's packed weights `[16][4]` are exactly four
//! q registers of `sdot`'s first operand (channels `4v..4v + 4`, 4 bytes each). Each row loads
//! 16 activations at a time, i.e. four k-groups, and `sdot … .4b[l]` takes k-group `l` by lane
//! index; per k-group that is 4 weight loads and 16 `sdot`, plus one activation load per row
//! every four k-groups. A tap's last `k_groups % 4` groups load each row's 4 bytes alone (no
//! read past what `GemmTile::fits` checked). Registers: 16 accumulators + 4 activations +
//! 4 weights = 24 of 32.
//!
//! `vdotq_laneq_s32` is unstable on this toolchain, so `sdot` is written with `asm!` inside a
//! `#[target_feature(enable = "neon,dotprod")]` function. Tails: `mr` and `⌈nb / 4⌉` are const
//! generics; the last weight vector of a panel whose `nb` is not a multiple of 4 is loaded one
//! 4-byte channel at a time (the bytes past `nb` may be past the panel's end), and only `nb`
//! bytes per row are stored. Activations: `AFormat::I8`; packed bias = bias.

use core::arch::aarch64::*;
use core::arch::asm;

use super::epilogue::store_rows;
use crate::gemm::{AFormat, GemmTile, GemmUkernel};

/// See the module docs.
#[allow(non_upper_case_globals)]
pub(crate) static QS8_IGEMM_4X16C4__NEONDOT: GemmUkernel = GemmUkernel {
    name: "qs8_qc8w_igemm_4x16c4__neondot",
    mr: 4,
    nr: 16,
    kr: 4,
    a_format: AFormat::I8,
    func: entry,
};

unsafe fn entry(t: &GemmTile<'_>, out: &mut [i8]) {
    // SAFETY: the descriptor's contract (the tile fits its slices, the CPU has the dot
    // product extension) is exactly what `dispatch` requires.
    unsafe { dispatch(t, out) }
}

/// Picks the monomorphised tile for `(mr, ⌈nb / 4⌉)`.
///
/// # Safety
/// `t` fits its slices for this kernel ([`GemmTile::fits`]) and the CPU has `dotprod`.
#[target_feature(enable = "neon,dotprod")]
unsafe fn dispatch(t: &GemmTile<'_>, out: &mut [i8]) {
    macro_rules! tiles {
        ($($mr:literal)*) => {
            match (t.mr, t.nb.div_ceil(4), t.nb % 4 == 0) {
                $(
                    ($mr, 1, true) => tile::<$mr, 1, true>(t, out),
                    ($mr, 2, true) => tile::<$mr, 2, true>(t, out),
                    ($mr, 3, true) => tile::<$mr, 3, true>(t, out),
                    ($mr, 4, true) => tile::<$mr, 4, true>(t, out),
                    ($mr, 1, false) => tile::<$mr, 1, false>(t, out),
                    ($mr, 2, false) => tile::<$mr, 2, false>(t, out),
                    ($mr, 3, false) => tile::<$mr, 3, false>(t, out),
                    ($mr, 4, false) => tile::<$mr, 4, false>(t, out),
                )*
                _ => unreachable!("mr ≤ 4 and nb ≤ 16 are checked by GemmTile::fits"),
            }
        };
    }
    // SAFETY: forwarded from this function's contract.
    unsafe { tiles!(1 2 3 4) }
}

/// `acc += w · a.4b[L]` lane-wise: `acc[c] += Σ_{b<4} w[4c + b] · a[4L + b]`.
#[target_feature(enable = "neon,dotprod")]
#[inline]
fn sdot<const L: usize>(acc: int32x4_t, w: int8x16_t, a: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: a register-only instruction of the `dotprod` extension, which this function's
    // target feature (checked by the caller's `Kernels`) guarantees.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {w:v}.16b, {a:v}.4b[{l}]",
            acc = inout(vreg) acc,
            w = in(vreg) w,
            a = in(vreg) a,
            l = const L,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// One `MR × 4·NV` tile; `FULL` when `nb == 4 · NV` (no partial weight vector, so the main
/// loop has no branches: a run-time check there made LLVM spill the accumulators).
///
/// # Safety
/// As [`dispatch`], with `t.mr == MR`, `⌈t.nb / 4⌉ == NV` and `FULL == (t.nb % 4 == 0)`.
#[target_feature(enable = "neon,dotprod")]
#[inline]
unsafe fn tile<const MR: usize, const NV: usize, const FULL: bool>(
    t: &GemmTile<'_>,
    out: &mut [i8],
) {
    let nb = t.nb;
    // Channels in the last weight vector (1..=4); unless FULL it is loaded channel by channel.
    let last = nb - 4 * (NV - 1);
    let mut acc = [[vdupq_n_s32(0); NV]; MR];
    let a = t.a.as_ptr() as *const i8;
    let mut w = t.w.as_ptr();
    let w_step = 4 * nb;

    // The weights of the k-group at `w`: vector v holds channels 4v..4v + 4.
    //
    // SAFETY (for callers): `w` points at a k-group's nb · 4 bytes inside the panel.
    let load_w = |w: *const i8| -> [int8x16_t; NV] {
        core::array::from_fn(|v| {
            if FULL || v + 1 < NV {
                // SAFETY: channels 4v..4v + 4 are all < nb: 16 bytes inside the k-group.
                unsafe { vld1q_s8(w.add(16 * v)) }
            } else {
                let p = w.wrapping_add(16 * v) as *const i32;
                // SAFETY (the three reads): channel 4v + c < nb (c < last) is 4 bytes inside
                // the k-group, read unaligned.
                let read = |c: usize| unsafe { p.add(c).read_unaligned() };
                let lanes = [
                    read(0),
                    if last > 1 { read(1) } else { 0 },
                    if last > 2 { read(2) } else { 0 },
                    0,
                ];
                // SAFETY: `lanes` is 16 readable bytes.
                let x = unsafe { vld1q_s32(lanes.as_ptr()) };
                vreinterpretq_s8_s32(x)
            }
        })
    };

    for ty in 0..t.taps[0] {
        for tx in 0..t.taps[1] {
            let off = (ty * t.tap_stride[0]).wrapping_add(tx * t.tap_stride[1]);
            // Row i's tap. `fits` checked rows[i] + off + 4 · k_groups ≤ a.len() for every tap
            // when k_groups > 0 (so the loads below are in bounds); wrapping arithmetic keeps
            // even an unused pointer (k_groups == 0) free of UB.
            let ap: [*const i8; MR] =
                core::array::from_fn(|i| a.wrapping_add(t.rows[i].wrapping_add(off)));
            let mut g = 0;
            // Four k-groups at a time: one 16-byte activation load per row.
            while g + 4 <= t.k_groups {
                // SAFETY: bytes 4g..4g + 16 ≤ 4 · k_groups of row i's tap (see `ap`).
                let x: [int8x16_t; MR] =
                    core::array::from_fn(|i| unsafe { vld1q_s8(ap[i].add(4 * g)) });
                macro_rules! group {
                    ($l:literal) => {
                        let wv = load_w(w);
                        #[allow(clippy::needless_range_loop)]
                        for i in 0..MR {
                            for v in 0..NV {
                                acc[i][v] = sdot::<$l>(acc[i][v], wv[v], x[i]);
                            }
                        }
                        // SAFETY: at most one past the panel's end (`fits` checked
                        // taps · k_groups · nb · 4 ≤ w.len()).
                        w = unsafe { w.add(w_step) };
                    };
                }
                group!(0);
                group!(1);
                group!(2);
                group!(3);
                g += 4;
            }
            // The tap's last k_groups % 4 groups: 4 bytes per row.
            while g < t.k_groups {
                let x: [int8x16_t; MR] = core::array::from_fn(|i| {
                    // SAFETY: bytes 4g..4g + 4 ≤ 4 · k_groups of row i's tap (see `ap`),
                    // read unaligned.
                    let v = unsafe { (ap[i].add(4 * g) as *const i32).read_unaligned() };
                    vreinterpretq_s8_s32(vdupq_n_s32(v))
                });
                let wv = load_w(w);
                #[allow(clippy::needless_range_loop)]
                for i in 0..MR {
                    for v in 0..NV {
                        acc[i][v] = sdot::<0>(acc[i][v], wv[v], x[i]);
                    }
                }
                // SAFETY: as in `group!`.
                w = unsafe { w.add(w_step) };
                g += 1;
            }
        }
    }
    // A fresh array for the epilogue: reading `acc` itself there made LLVM keep it in memory
    // and store all 16 accumulators at every k-group.
    let mut rows = [[vdupq_n_s32(0); NV]; MR];
    #[allow(clippy::needless_range_loop)]
    for i in 0..MR {
        for v in 0..NV {
            rows[i][v] = acc[i][v];
        }
    }
    // SAFETY: forwarded: `t` fits, t.mr == MR, t.nb ≤ 4 · NV ≤ 16.
    unsafe { store_rows::<MR, NV>(t, &rows, out) }
}

/// Multiply-accumulates per second of `sdot` alone (16 independent accumulators, 16 MACs
/// each, no memory): this tier's int8 peak on one core.
#[cfg(any(unix, windows))]
pub(crate) fn peak_macs_per_second(iters: usize) -> f64 {
    // SAFETY: callers reach this only through `Kernels` of this tier (CPU checked).
    unsafe { peak(iters) }
}

#[cfg(any(unix, windows))]
#[target_feature(enable = "neon,dotprod")]
fn peak(iters: usize) -> f64 {
    let a = vdupq_n_s8(core::hint::black_box(3));
    let b = vdupq_n_s8(core::hint::black_box(5));
    let mut acc = [vdupq_n_s32(0); 16];
    super::best_of_trials(iters, 16 * 16, || {
        for acc in acc.iter_mut() {
            *acc = sdot::<0>(*acc, a, b);
        }
    })
}
