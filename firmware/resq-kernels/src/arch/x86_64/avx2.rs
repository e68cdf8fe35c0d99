//! AVX2: `vpmaddwd` (i16 × i16 → i32, pairs summed) on 256-bit vectors.
//!
//! `qs8_qc8w_igemm_6x8c4__avx2`: 6 output pixels × 8 output channels. `vpmaddubsw` (u8 × s8) would
//! saturate its i16 pair sums, so activations come prepared as int16 and each k-group's
//! 8 × 4 weight bytes are sign-extended in two halves of 4 channels; a row's 4 activations are
//! broadcast as one 64-bit value. Lane pairs hold the two halves of a channel's 4-product sum
//! and one `vphaddd` at the end folds them. No encoding offset, so the bias is the file's.

use core::arch::x86_64::*;

use crate::gemm::{AFormat, GemmTile, GemmUkernel};

/// See the module docs.
#[allow(non_upper_case_globals)]
pub(crate) static QS8_IGEMM_6X8C4__AVX2: GemmUkernel = GemmUkernel {
    name: "qs8_qc8w_igemm_6x8c4__avx2",
    mr: 6,
    nr: 8,
    kr: 4,
    a_format: AFormat::I16,
    func: entry,
};

unsafe fn entry(t: &GemmTile<'_>, out: &mut [i8]) {
    // SAFETY: the descriptor's contract (the tile fits its slices, the CPU has AVX2) is
    // exactly what `dispatch` requires.
    unsafe { dispatch(t, out) }
}

/// # Safety
/// `t` fits its slices for this kernel ([`GemmTile::fits`]) and the CPU has AVX2.
#[target_feature(enable = "avx2")]
unsafe fn dispatch(t: &GemmTile<'_>, out: &mut [i8]) {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        match t.mr {
            1 => tile::<1>(t, out),
            2 => tile::<2>(t, out),
            3 => tile::<3>(t, out),
            4 => tile::<4>(t, out),
            5 => tile::<5>(t, out),
            6 => tile::<6>(t, out),
            _ => unreachable!("mr ≤ 6 is checked by GemmTile::fits"),
        }
    }
}

/// One `MR × 8` tile.
///
/// # Safety
/// As [`dispatch`], with `t.mr == MR`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn tile<const MR: usize>(t: &GemmTile<'_>, out: &mut [i8]) {
    let nb = t.nb;
    let lane_ids = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(nb as i32), lane_ids);
    let mut acc_lo = [_mm256_setzero_si256(); MR];
    let mut acc_hi = [_mm256_setzero_si256(); MR];

    let a = t.a.as_ptr();
    let mut w = t.w.as_ptr();
    let w_step = nb * 4;
    for ty in 0..t.taps[0] {
        for tx in 0..t.taps[1] {
            let off = ty * t.tap_stride[0] + tx * t.tap_stride[1];
            // SAFETY: `fits` checked rows[i] + off + 4 · k_groups ≤ a.len() / 2 (int16 elements).
            let ap: [*const u8; MR] =
                core::array::from_fn(|i| unsafe { a.add(2 * (t.rows[i] + off)) });
            let mut k = 0;
            while k < 8 * t.k_groups {
                // SAFETY: channel c's 4 bytes are loaded only for c < nb, inside this k-group's
                // nb · 4 bytes (`fits` checked taps · k_groups · nb · 4 ≤ w.len()).
                let wv = unsafe { _mm256_maskload_epi32(w as *const i32, mask) };
                let w_lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(wv));
                let w_hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(wv));
                for i in 0..MR {
                    // SAFETY: 4 int16 of row i's current k-group, in bounds (see `ap`).
                    let x = unsafe { (ap[i].add(k) as *const i64).read_unaligned() };
                    let x = _mm256_set1_epi64x(x);
                    acc_lo[i] = _mm256_add_epi32(acc_lo[i], _mm256_madd_epi16(x, w_lo));
                    acc_hi[i] = _mm256_add_epi32(acc_hi[i], _mm256_madd_epi16(x, w_hi));
                }
                // SAFETY: at most one past the panel's end.
                w = unsafe { w.add(w_step) };
                k += 8;
            }
        }
    }

    // SAFETY: lanes ≥ nb are masked off; bias.len() and mults.len() ≥ nb.
    let (bias, mult) = unsafe {
        (
            _mm256_maskload_epi32(t.bias.as_ptr(), mask),
            _mm256_maskload_epi32(t.mults.as_ptr(), mask),
        )
    };
    let mult_odd = _mm256_srli_epi64::<32>(mult);
    let shift = _mm_cvtsi32_si128(t.shift as i32);
    let round = _mm256_set1_epi64x(1i64 << (t.shift - 1));
    let sign = _mm256_set1_epi64x(i64::MIN);
    // (v ^ 2⁶³) >> s (logical) − 2^(63−s) is the arithmetic shift AVX2 lacks.
    let unbias = _mm256_set1_epi64x(1i64 << (63 - t.shift));
    let zp = t.zero_point as i64;
    let lo = _mm256_set1_epi64x(t.clamp[0] as i64 - zp);
    let hi = _mm256_set1_epi64x(t.clamp[1] as i64 - zp);
    let zpv = _mm256_set1_epi32(zp as i32);
    let residual = t.residual.map(|r| {
        (
            r.values,
            _mm256_set1_epi32(r.zero_point as i32),
            _mm256_set1_epi64x(r.mult as i64),
        )
    });
    for i in 0..MR {
        let row = t.out_offset + i * t.out_stride;
        // Lanes [c0 c0' c1 c1' …]: fold the pairs, then put the 64-bit quarters in order.
        let v = _mm256_hadd_epi32(acc_lo[i], acc_hi[i]);
        let v = _mm256_add_epi32(_mm256_permute4x64_epi64::<0b11_01_10_00>(v), bias);
        let mut even = _mm256_mul_epi32(v, mult);
        let mut odd = _mm256_mul_epi32(_mm256_srli_epi64::<32>(v), mult_odd);
        if let Some((values, rzp, rm)) = residual {
            let mut r8 = [0u8; 8];
            for (d, &s) in r8.iter_mut().zip(&values[row..row + nb]) {
                *d = s as u8;
            }
            let r = _mm256_cvtepi8_epi32(_mm_cvtsi64_si128(i64::from_le_bytes(r8)));
            let r = _mm256_sub_epi32(r, rzp);
            even = _mm256_add_epi64(even, _mm256_mul_epi32(r, rm));
            odd = _mm256_add_epi64(odd, _mm256_mul_epi32(_mm256_srli_epi64::<32>(r), rm));
        }
        let finish = |v: __m256i| {
            let v = _mm256_xor_si256(_mm256_add_epi64(v, round), sign);
            let v = _mm256_sub_epi64(_mm256_srl_epi64(v, shift), unbias);
            let v = _mm256_blendv_epi8(v, lo, _mm256_cmpgt_epi64(lo, v));
            _mm256_blendv_epi8(v, hi, _mm256_cmpgt_epi64(v, hi))
        };
        let (even, odd) = (finish(even), finish(odd));
        let y = _mm256_blend_epi32::<0b1010_1010>(even, _mm256_slli_epi64::<32>(odd));
        let y = _mm256_add_epi32(y, zpv);
        let y16 = _mm_packs_epi32(_mm256_castsi256_si128(y), _mm256_extracti128_si256::<1>(y));
        let y8 = _mm_cvtsi128_si64(_mm_packs_epi16(y16, y16)).to_le_bytes();
        for (d, &s) in out[row..row + nb].iter_mut().zip(&y8) {
            *d = s as i8;
        }
    }
}

/// Multiply-accumulates per second of `vpmaddwd` + `vpaddd` alone (12 independent ymm
/// chains, no memory): this tier's int8 peak on one core.
#[cfg(any(unix, windows))]
pub(crate) fn peak_macs_per_second(iters: usize) -> f64 {
    // SAFETY: callers reach this only through `Kernels` of this tier (CPU checked).
    unsafe { peak(iters) }
}

#[cfg(any(unix, windows))]
#[target_feature(enable = "avx2")]
unsafe fn peak(iters: usize) -> f64 {
    let b = _mm256_set1_epi32(core::hint::black_box(0x0003_0004));
    let mut acc: [__m256i; 12] =
        core::array::from_fn(|i| _mm256_set1_epi32(core::hint::black_box(i as i32)));
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = std::time::Instant::now();
        for _ in 0..iters / 5 {
            // Each chain multiplies its own accumulator: nothing to hoist, share or fold.
            for acc in acc.iter_mut() {
                *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(*acc, b));
            }
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    core::hint::black_box(acc);
    (iters / 5 * 12 * 16) as f64 / best
}
