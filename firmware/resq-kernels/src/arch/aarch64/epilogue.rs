//! The fused epilogue shared by the aarch64 micro-kernels, on NEON vectors of 4 channels.
//!
//! For each row: `acc + bias` (wrapping i32), `smull`/`smull2` by the channel multipliers into
//! i64, `smlal`/`smlal2` of `(r − zp_r) · mult_r` for a residual, the rounding add of
//! `2^(shift−1)`, `sshl` by `−shift` (an arithmetic right shift), the clamp in i64 against
//! `[lo − zp, hi − zp]`, then narrowing (exact: the value is within ±255), `+ zp` and the
//! store of the row's `nb` bytes. Bit for bit [`crate::Epilogue::apply`]: the i64 sum cannot
//! overflow (`|acc · mult| ≤ 2⁶²`, the residual term is below 2⁴⁰).

use core::arch::aarch64::*;

use crate::gemm::GemmTile;

/// Writes rows `0..MR` of a tile whose row `i`, channels `4v..4v + 4` are `acc[i][v]` (the
/// dot products without the bias; lanes of channels `≥ nb` are ignored).
///
/// `#[inline(always)]`, so without `#[target_feature]` (the two do not mix): it is inlined
/// into each kernel's tile, whose accumulators then stay in registers (callers pass a copy
/// made after the main loop; an out-of-line call, or reading the loop's own array, made LLVM
/// store the accumulators at every k-group).
///
/// # Safety
/// `t` fits its slices ([`GemmTile::fits`]) with `t.mr == MR` and `t.nb ≤ 4 · NV ≤ 16`, and
/// `out` is the slice `fits` was checked against.
#[inline(always)]
pub(super) unsafe fn store_rows<const MR: usize, const NV: usize>(
    t: &GemmTile<'_>,
    acc: &[[int32x4_t; NV]; MR],
    out: &mut [i8],
) {
    // SAFETY: NEON is part of the aarch64 baseline (enabled for every aarch64 target), so its
    // intrinsics are sound here; the only pointer accesses are `vld1q`/`vst1q` on local
    // arrays of 16 bytes (`[i32; 4]`, `[i8; 16]`). Slices are indexed with bounds checks
    // (`fits` checked bias/mults ≥ nb and row + nb ≤ out.len() and residual.len()).
    unsafe {
        let nb = t.nb;
        // A full panel copies constant lengths (inlined loads and stores, no `memcpy` calls).
        let full = nb == 4 * NV;
        // Bias and multipliers of the panel, zero past `nb` (bounds-checked copies: `fits`
        // checked bias.len() ≥ nb and mults.len() ≥ nb).
        let mut b = [[0i32; 4]; NV];
        let mut m = [[0i32; 4]; NV];
        if full {
            for v in 0..NV {
                b[v].copy_from_slice(&t.bias[4 * v..4 * v + 4]);
                m[v].copy_from_slice(&t.mults[4 * v..4 * v + 4]);
            }
        } else {
            for j in 0..nb {
                b[j / 4][j % 4] = t.bias[j];
                m[j / 4][j % 4] = t.mults[j];
            }
        }
        let bias: [int32x4_t; NV] = core::array::from_fn(|v| vld1q_s32(b[v].as_ptr()));
        let mult: [int32x4_t; NV] = core::array::from_fn(|v| vld1q_s32(m[v].as_ptr()));

        let round = vdupq_n_s64(1i64 << (t.shift - 1));
        let nshift = vdupq_n_s64(-(t.shift as i64));
        let zp = t.zero_point as i64;
        let lo = vdupq_n_s64(t.clamp[0] as i64 - zp);
        let hi = vdupq_n_s64(t.clamp[1] as i64 - zp);
        let zp32 = vdupq_n_s32(zp as i32);

        #[allow(clippy::needless_range_loop)]
        for i in 0..MR {
            let acc = &acc[i];
            let row = t.out_offset + i * t.out_stride;
            // The residual's `nb` bytes of this row, widened to i32 and minus its zero point.
            let res = t.residual.map(|r| {
                let mut bytes = [0i8; 16];
                // Bounds-checked: `fits` checked row + nb ≤ residual.len().
                if full {
                    bytes[..4 * NV].copy_from_slice(&r.values[row..row + 4 * NV]);
                } else {
                    bytes[..nb].copy_from_slice(&r.values[row..row + nb]);
                }
                let x = vld1q_s8(bytes.as_ptr());
                let lo16 = vmovl_s8(vget_low_s8(x));
                let hi16 = vmovl_high_s8(x);
                let rzp = vdupq_n_s32(r.zero_point as i32);
                let w: [int32x4_t; 4] = [
                    vmovl_s16(vget_low_s16(lo16)),
                    vmovl_high_s16(lo16),
                    vmovl_s16(vget_low_s16(hi16)),
                    vmovl_high_s16(hi16),
                ];
                (w.map(|w| vsubq_s32(w, rzp)), r.mult)
            });
            let mut q = [vdupq_n_s32(0); 4];
            #[allow(clippy::needless_range_loop)]
            for v in 0..NV {
                let x = vaddq_s32(acc[v], bias[v]);
                let mut p0 = vmull_s32(vget_low_s32(x), vget_low_s32(mult[v]));
                let mut p1 = vmull_high_s32(x, mult[v]);
                if let Some((r, rm)) = &res {
                    p0 = vmlal_n_s32(p0, vget_low_s32(r[v]), *rm);
                    p1 = vmlal_high_n_s32(p1, r[v], *rm);
                }
                let finish = |p: int64x2_t| {
                    let p = vshlq_s64(vaddq_s64(p, round), nshift);
                    let p = vbslq_s64(vcltq_s64(p, lo), lo, p);
                    vbslq_s64(vcgtq_s64(p, hi), hi, p)
                };
                q[v] = vaddq_s32(
                    vcombine_s32(vmovn_s64(finish(p0)), vmovn_s64(finish(p1))),
                    zp32,
                );
            }
            // Every value is in [-128, 127] now: plain narrowing is exact.
            let h01 = vcombine_s16(vmovn_s32(q[0]), vmovn_s32(q[1]));
            let h23 = vcombine_s16(vmovn_s32(q[2]), vmovn_s32(q[3]));
            let mut y = [0i8; 16];
            vst1q_s8(y.as_mut_ptr(), vcombine_s8(vmovn_s16(h01), vmovn_s16(h23)));
            // Bounds-checked: `fits` checked row + nb ≤ out.len().
            if full {
                out[row..row + 4 * NV].copy_from_slice(&y[..4 * NV]);
            } else {
                out[row..row + nb].copy_from_slice(&y[..nb]);
            }
        }
    }
}
