//! AVX-512 VNNI: `vpdpbusd` (u8 × s8 → i32, four products per lane) on 512-bit vectors.
//!
//! `qs8_qc8w_igemm_6x64c4__avx512vnni`: 6 output pixels × 64 output channels (four zmm of 16 i32
//! lanes), 24 accumulators. Per k-group of 4: four (masked) weight loads, one 32-bit broadcast
//! of each row's 4 activations, 24 `vpdpbusd`. Activations come prepared as `x ^ 0x80`
//! (x + 128 as u8) and the packed bias carries `−128 · Σw`, so the integer result is the
//! reference's. The epilogue is vectorised in i64: `vpmuldq` on even and odd lanes, the
//! residual term, a rounding add and `vpsraq`, the clamp in i64, then narrowing to bytes.

use core::arch::x86_64::*;

use crate::gemm::{AFormat, GemmTile, GemmUkernel};

/// See the module docs.
#[allow(non_upper_case_globals)]
pub(crate) static QS8_IGEMM_6X64C4__AVX512VNNI: GemmUkernel = GemmUkernel {
    name: "qs8_qc8w_igemm_6x64c4__avx512vnni",
    mr: 6,
    nr: 64,
    kr: 4,
    a_format: AFormat::U8Xor,
    func: entry,
};

unsafe fn entry(t: &GemmTile<'_>, out: &mut [i8]) {
    // SAFETY: the descriptor's contract (the tile fits its slices, the CPU has AVX-512
    // F/BW/VL/VNNI) is exactly what `dispatch` and `tile` require.
    unsafe { dispatch(t, out) }
}

/// Picks the monomorphised tile for `(mr, ceil(nb / 16))`.
///
/// # Safety
/// `t` fits its slices for this kernel ([`GemmTile::fits`]) and the CPU has AVX-512 F/BW/VL/VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dispatch(t: &GemmTile<'_>, out: &mut [i8]) {
    macro_rules! tiles {
        ($($mr:literal)*) => {
            match (t.mr, t.nb.div_ceil(16)) {
                $(
                    ($mr, 1) => tile::<$mr, 1>(t, out),
                    ($mr, 2) => tile::<$mr, 2>(t, out),
                    ($mr, 3) => tile::<$mr, 3>(t, out),
                    ($mr, 4) => tile::<$mr, 4>(t, out),
                )*
                _ => unreachable!("mr ≤ 6 and nb ≤ 64 are checked by GemmTile::fits"),
            }
        };
    }
    // SAFETY: forwarded from this function's contract.
    unsafe { tiles!(1 2 3 4 5 6) }
}

/// Lane mask of channels `16j..16j+16` that are below `nb`.
#[inline(always)]
fn lanes(nb: usize, j: usize) -> __mmask16 {
    let n = nb.saturating_sub(16 * j).min(16);
    if n == 16 {
        0xffff
    } else {
        (1u16 << n) - 1
    }
}

/// One `MR × 16·NV` tile.
///
/// # Safety
/// As [`dispatch`], with `t.mr == MR` and `ceil(t.nb / 16) == NV`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn tile<const MR: usize, const NV: usize>(t: &GemmTile<'_>, out: &mut [i8]) {
    let masks: [__mmask16; NV] = core::array::from_fn(|j| lanes(t.nb, j));
    let mut acc = [[_mm512_setzero_si512(); NV]; MR];
    for (j, &m) in masks.iter().enumerate() {
        // SAFETY: lane l of vector j is loaded only when 16j + l < nb ≤ bias.len() (masked
        // loads do not touch masked-off lanes), and 16j < nb keeps the pointer in bounds.
        let b = unsafe { _mm512_maskz_loadu_epi32(m, t.bias.as_ptr().add(16 * j)) };
        for row in acc.iter_mut() {
            row[j] = b;
        }
    }

    let a = t.a.as_ptr();
    let mut w = t.w.as_ptr();
    let w_step = t.nb * 4;
    for ty in 0..t.taps[0] {
        for tx in 0..t.taps[1] {
            let off = ty * t.tap_stride[0] + tx * t.tap_stride[1];
            // SAFETY: `fits` checked rows[i] + off + 4 · k_groups ≤ a.len() for every tap.
            let ap: [*const u8; MR] = core::array::from_fn(|i| unsafe { a.add(t.rows[i] + off) });
            let mut k = 0;
            while k < 4 * t.k_groups {
                // SAFETY: `fits` checked taps · k_groups · nb · 4 ≤ w.len(); this k-group's
                // nb · 4 bytes start at `w`; lanes at or beyond nb are masked off.
                let wv: [__m512i; NV] = core::array::from_fn(|j| unsafe {
                    _mm512_maskz_loadu_epi32(masks[j], w.add(64 * j) as *const i32)
                });
                #[allow(clippy::needless_range_loop)]
                for i in 0..MR {
                    // SAFETY: 4 bytes of row i's current k-group, in bounds (see `ap`).
                    let x =
                        _mm512_set1_epi32(unsafe { (ap[i].add(k) as *const i32).read_unaligned() });
                    for j in 0..NV {
                        acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], x, wv[j]);
                    }
                }
                // SAFETY: at most one past the panel's end.
                w = unsafe { w.add(w_step) };
                k += 4;
            }
        }
    }

    // Epilogue: y = clamp(zp + round_shift(acc · mult + (r − zp_r) · mult_r, shift)), the
    // products in i64 on even and odd lanes (`vpmuldq`). With shift ≥ 32 (the usual case) the
    // high halves of the rounded sums are exactly `(v + 2^(s−1)) >> 32` and fit in i32, so they
    // are blended into one vector and finished in i32; otherwise the shift and the clamp run
    // in i64 before narrowing.
    let high = t.shift >= 32;
    let shift = _mm_cvtsi32_si128(if high {
        t.shift as i32 - 32
    } else {
        t.shift as i32
    });
    let round = _mm512_set1_epi64(1i64 << (t.shift - 1));
    let zp = t.zero_point as i64;
    let lo64 = _mm512_set1_epi64(t.clamp[0] as i64 - zp);
    let hi64 = _mm512_set1_epi64(t.clamp[1] as i64 - zp);
    let lo32 = _mm512_set1_epi32(t.clamp[0] as i32);
    let hi32 = _mm512_set1_epi32(t.clamp[1] as i32);
    let zpv = _mm512_set1_epi32(zp as i32);
    // SAFETY: masked as the bias above; mults.len() ≥ nb.
    let mult: [__m512i; NV] = core::array::from_fn(|j| unsafe {
        _mm512_maskz_loadu_epi32(masks[j], t.mults.as_ptr().add(16 * j))
    });
    let mult_odd: [__m512i; NV] = core::array::from_fn(|j| _mm512_srli_epi64::<32>(mult[j]));
    let residual = t.residual.map(|r| {
        (
            r.values.as_ptr(),
            _mm512_set1_epi32(r.zero_point as i32),
            _mm512_set1_epi64(r.mult as i64),
        )
    });
    let o = out.as_mut_ptr();
    for (i, acc) in acc.iter().enumerate() {
        let row = t.out_offset + i * t.out_stride;
        for j in 0..NV {
            let v = acc[j];
            let mut even = _mm512_mul_epi32(v, mult[j]);
            let mut odd = _mm512_mul_epi32(_mm512_srli_epi64::<32>(v), mult_odd[j]);
            if let Some((rp, rzp, rm)) = residual {
                // SAFETY: `fits` checked row + nb ≤ residual.len(); lanes ≥ nb are masked off.
                let r8 = unsafe { _mm_maskz_loadu_epi8(masks[j], rp.add(row + 16 * j)) };
                let r = _mm512_sub_epi32(_mm512_cvtepi8_epi32(r8), rzp);
                even = _mm512_add_epi64(even, _mm512_mul_epi32(r, rm));
                odd = _mm512_add_epi64(odd, _mm512_mul_epi32(_mm512_srli_epi64::<32>(r), rm));
            }
            let even = _mm512_add_epi64(even, round);
            let odd = _mm512_add_epi64(odd, round);
            let y = if high {
                // |v| < 2⁶², so (v + round) >> 32 fits in i32: take the high halves.
                let h = _mm512_mask_blend_epi32(0xaaaa, _mm512_srli_epi64::<32>(even), odd);
                let y = _mm512_add_epi32(_mm512_sra_epi32(h, shift), zpv);
                _mm512_min_epi32(_mm512_max_epi32(y, lo32), hi32)
            } else {
                let finish = |v: __m512i| {
                    let v = _mm512_sra_epi64(v, shift);
                    _mm512_min_epi64(_mm512_max_epi64(v, lo64), hi64)
                };
                let (even, odd) = (finish(even), finish(odd));
                let y = _mm512_mask_blend_epi32(0xaaaa, even, _mm512_slli_epi64::<32>(odd));
                _mm512_add_epi32(y, zpv)
            };
            let y = _mm512_cvtepi32_epi8(y);
            // SAFETY: `fits` checked row + nb ≤ out.len(); bytes ≥ nb are masked off.
            unsafe { _mm_mask_storeu_epi8(o.add(row + 16 * j), masks[j], y) };
        }
    }
}

/// Multiply-accumulates per second of `vpdpbusd` alone (24 independent zmm chains, no
/// memory): the machine's int8 peak for this tier on one core.
#[cfg(any(unix, windows))]
pub(crate) fn peak_macs_per_second(iters: usize) -> f64 {
    // SAFETY: callers reach this only through `Kernels` of this tier (CPU checked).
    unsafe { peak(iters) }
}

#[cfg(any(unix, windows))]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn peak(iters: usize) -> f64 {
    let a = _mm512_set1_epi32(core::hint::black_box(0x0102_0304));
    let b = _mm512_set1_epi32(core::hint::black_box(0x0506_0708));
    let mut acc = [_mm512_setzero_si512(); 24];
    // The best of a few short trials: other processes only ever slow a trial down.
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = std::time::Instant::now();
        for _ in 0..iters / 5 {
            for acc in acc.iter_mut() {
                *acc = _mm512_dpbusd_epi32(*acc, a, b);
            }
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    core::hint::black_box(acc);
    (iters / 5 * 24 * 64) as f64 / best
}
