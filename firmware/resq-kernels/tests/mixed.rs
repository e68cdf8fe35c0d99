//! The mixed-precision kernels (`resq_kernels::mixed`, layers touching int16 tensors):
//!
//! * with every tensor int8 they are bit-identical to the int8 reference (so the two
//!   definitions of resq's arithmetic cannot drift apart), over random shapes, strides, pads,
//!   groups, zero points, multipliers, shifts, clamps and residuals;
//! * with int16 tensors they match an oracle written from SPEC.md in i128 (the unfolded bias
//!   over the unpadded input), including values at ±32767 / −32768 and windows long enough
//!   that an i32 accumulator would overflow.

use proptest::prelude::*;
use resq_kernels::mixed::{
    self, MixedBias, MixedEpilogue, MixedOperand, MixedResidual, MixedWeights, Values, ValuesMut,
};
use resq_kernels::reference::{self, AddOperand};
use resq_kernels::{Epilogue, Geometry, ResidualOperand};

fn geometry(h: usize, w: usize, cin: usize, cout: usize, k: usize, s: usize, p: usize) -> Geometry {
    let oh = (h + 2 * p - k) / s + 1;
    let ow = (w + 2 * p - k) / s + 1;
    Geometry {
        input: [h, w, cin],
        output: [oh, ow, cout],
        kernel: [k, k],
        stride: [s, s],
        pad: [p, p],
    }
}

fn lcg(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        x >> 33
    }
}

fn i8s(n: usize, next: &mut impl FnMut() -> u64) -> Vec<i8> {
    (0..n).map(|_| next() as u8 as i8).collect()
}

/// Symmetric int8 weights, −127..=127.
fn weights(n: usize, next: &mut impl FnMut() -> u64) -> Vec<i8> {
    (0..n)
        .map(|_| ((next() % 255) as i32 - 127) as i8)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn all_int8_conv_matches_the_reference(
        h in 1usize..7, w in 1usize..7, cin_g in 1usize..6, cout_g in 1usize..6, groups in 1usize..3,
        k in 1usize..4, s in 1usize..3, p in 0usize..2, seed in any::<u64>(),
        xzp in any::<i8>(), yzp in any::<i8>(), shift in 20u8..40, residual in any::<bool>(),
        lo in any::<i8>(), hi in any::<i8>(),
    ) {
        prop_assume!(h + 2 * p >= k && w + 2 * p >= k);
        let (cin, cout) = (cin_g * groups, cout_g * groups);
        let geo = geometry(h, w, cin, cout, k, s, p);
        let mut next = lcg(seed);
        let x = i8s(h * w * cin, &mut next);
        let wt = weights(cout * k * k * cin_g, &mut next);
        let bias: Vec<i32> = (0..cout).map(|_| (next() % 200_000) as i32 - 100_000).collect();
        let mults: Vec<i32> = (0..cout).map(|_| (next() % (1 << 31)) as i32).collect();
        let n = geo.output.iter().product::<usize>();
        let r = i8s(n, &mut next);
        let (rzp, rmult) = (next() as u8 as i8, (next() % (1 << 31)) as i32);
        let clamp = [lo.min(hi), lo.max(hi)];

        let mut want = vec![0x55i8; n];
        let ep = Epilogue {
            bias: &bias, mults: &mults, shift, zero_point: yzp, clamp,
            residual: residual.then_some(ResidualOperand { values: &r, zero_point: rzp, mult: rmult }),
        };
        reference::conv2d(&geo, groups, &x, xzp, &wt, &ep, &mut want);

        let mut got = vec![0x55i8; n];
        let mep = MixedEpilogue {
            bias: MixedBias::I32(&bias), mults: &mults, shift, zero_point: yzp as i32, clamp: clamp.map(i32::from),
            residual: residual.then_some(MixedResidual { values: Values::I8(&r), zero_point: rzp as i32, mult: rmult }),
        };
        mixed::conv2d(&geo, groups, Values::I8(&x), xzp as i32, MixedWeights::I8(&wt), &mep, ValuesMut::I8(&mut got));
        prop_assert_eq!(&got, &want);

        // The engine's int8 layers narrow the mixed epilogue it builds: the same bytes.
        let narrowed = mep.as_int8().expect("an all-int8 epilogue narrows");
        let mut again = vec![0x55i8; n];
        reference::conv2d(&geo, groups, &x, xzp, &wt, &narrowed, &mut again);
        prop_assert_eq!(again, want);
    }

    #[test]
    fn all_int8_pools_and_add_match_the_reference(
        h in 1usize..7, w in 1usize..7, c in 1usize..5, k in 1usize..4, s in 1usize..3,
        include_pad in any::<bool>(), seed in any::<u64>(), xzp in any::<i8>(), yzp in any::<i8>(),
        shift in 20u8..40, lo in any::<i8>(), hi in any::<i8>(),
    ) {
        let p = (k - 1).min(1);
        prop_assume!(h + 2 * p >= k && w + 2 * p >= k);
        let geo = geometry(h, w, c, c, k, s, p);
        let mut next = lcg(seed);
        let x = i8s(h * w * c, &mut next);
        let n = geo.output.iter().product::<usize>();
        let mults: Vec<i32> = (0..k * k).map(|_| (next() % (1 << 31)) as i32).collect();

        let (mut want, mut got) = (vec![0x55i8; n], vec![0x55i8; n]);
        reference::max_pool(&geo, &x, &mut want);
        mixed::max_pool(&geo, Values::I8(&x), ValuesMut::I8(&mut got));
        prop_assert_eq!(&got, &want);

        reference::avg_pool(&geo, include_pad, &x, xzp, &mults, shift, yzp, &mut want);
        mixed::avg_pool(&geo, include_pad, Values::I8(&x), xzp as i32, &mults, shift, yzp as i32, ValuesMut::I8(&mut got));
        prop_assert_eq!(&got, &want);

        let b = i8s(x.len(), &mut next);
        let (ma, mb, bzp) = ((next() % (1 << 31)) as i32, (next() % (1 << 31)) as i32, next() as u8 as i8);
        let clamp = [lo.min(hi), lo.max(hi)];
        let (mut want, mut got) = (vec![0x55i8; x.len()], vec![0x55i8; x.len()]);
        reference::add(
            AddOperand { values: &x, zero_point: xzp, mult: ma },
            AddOperand { values: &b, zero_point: bzp, mult: mb },
            shift, yzp, clamp, &mut want,
        );
        mixed::add(
            MixedOperand { values: Values::I8(&x), zero_point: xzp as i32, mult: ma },
            MixedOperand { values: Values::I8(&b), zero_point: bzp as i32, mult: mb },
            shift, yzp as i32, clamp.map(i32::from), ValuesMut::I8(&mut got),
        );
        prop_assert_eq!(got, want);
    }

    #[test]
    fn int16_conv_matches_the_i128_oracle(
        h in 1usize..6, w in 1usize..6, cin in 1usize..6, cout in 1usize..5, k in 1usize..4,
        s in 1usize..3, p in 0usize..2, seed in any::<u64>(), in16 in any::<bool>(), out16 in any::<bool>(),
        w16 in any::<bool>(), xzp in any::<i8>(), shift in 8u8..50, residual in any::<bool>(),
    ) {
        prop_assume!(h + 2 * p >= k && w + 2 * p >= k);
        let geo = geometry(h, w, cin, cout, k, s, p);
        let mut next = lcg(seed);
        // int16 tensors are symmetric; extremes included.
        let x16: Vec<i16> = (0..h * w * cin)
            .map(|i| match i % 7 { 0 => i16::MAX, 1 => i16::MIN, _ => next() as u16 as i16 })
            .collect();
        let x8 = i8s(h * w * cin, &mut next);
        let xzp = if in16 { 0 } else { xzp as i32 };
        let wt = weights(cout * k * k * cin, &mut next);
        let wt16: Vec<i16> = (0..wt.len())
            .map(|i| if i % 5 == 0 { -32767 } else { ((next() % 65535) as i32 - 32767) as i16 })
            .collect();
        let bias: Vec<i32> = (0..cout).map(|_| next() as u32 as i32).collect();
        let bias64: Vec<i64> = (0..cout).map(|_| (next() as i64) << 20).collect();
        let mults: Vec<i32> = (0..cout).map(|_| (next() % (1 << 31)) as i32).collect();
        let n = geo.output.iter().product::<usize>();
        let r16: Vec<i16> = (0..n).map(|_| next() as u16 as i16).collect();
        let rmult = (next() % (1 << 31)) as i32;
        let clamp = if out16 { [0, i16::MAX as i32] } else { [-100, 100] };
        let ep = MixedEpilogue {
            bias: if w16 { MixedBias::I64(&bias64) } else { MixedBias::I32(&bias) },
            mults: &mults, shift, zero_point: 0, clamp,
            residual: residual.then_some(MixedResidual { values: Values::I16(&r16), zero_point: 0, mult: rmult }),
        };
        let input = if in16 { Values::I16(&x16) } else { Values::I8(&x8) };
        let x_at = |i: usize| if in16 { x16[i] as i128 } else { x8[i] as i128 };
        let (mut o8, mut o16) = (vec![0x55i8; n], vec![0x5555i16; n]);
        let out = if out16 { ValuesMut::I16(&mut o16) } else { ValuesMut::I8(&mut o8) };
        let weights = if w16 { MixedWeights::I16(&wt16) } else { MixedWeights::I8(&wt) };
        mixed::conv2d(&geo, 1, input, xzp, weights, &ep, out);
        let w_at = |i: usize| if w16 { wt16[i] as i128 } else { wt[i] as i128 };

        let [oh, ow, _] = geo.output;
        let (range_lo, range_hi) = if out16 { (-32768i128, 32767i128) } else { (-128, 127) };
        for y in 0..oh {
            for xx in 0..ow {
                for c in 0..cout {
                    // Unfolded: bias + Σ (x − zp)·w over real cells only, then + zp·Σw back in
                    // (the folded bias convention: bias already holds −zp·Σw).
                    let mut acc = if w16 { bias64[c] as i128 } else { bias[c] as i128 };
                    for ky in 0..k {
                        for kx in 0..k {
                            let iy = (y * s + ky) as isize - p as isize;
                            let ix = (xx * s + kx) as isize - p as isize;
                            for ci in 0..cin {
                                let wv = w_at(((c * k + ky) * k + kx) * cin + ci);
                                let v = if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                                    x_at((iy as usize * w + ix as usize) * cin + ci)
                                } else {
                                    xzp as i128
                                };
                                acc += v * wv;
                            }
                        }
                    }
                    let idx = (y * ow + xx) * cout + c;
                    let mut v = acc * mults[c] as i128;
                    if residual {
                        v += r16[idx] as i128 * rmult as i128;
                    }
                    let q = (v + (1i128 << (shift - 1))).div_euclid(1i128 << shift);
                    let q = q.clamp(clamp[0].max(range_lo as i32) as i128, clamp[1].min(range_hi as i32) as i128);
                    let got = if out16 { o16[idx] as i128 } else { o8[idx] as i128 };
                    prop_assert_eq!(got, q, "at {:?}", (y, xx, c));
                }
            }
        }
    }
}

/// A window of 65536 int16 × int8 products at the extremes: 2³⁸ in magnitude, far past i32.
#[test]
fn int16_conv_accumulates_past_i32() {
    let cin = 4096;
    let geo = geometry(4, 4, cin, 1, 4, 1, 0);
    let x = vec![i16::MIN; 16 * cin];
    let w = vec![-127i8; 16 * cin];
    let ep = MixedEpilogue {
        bias: MixedBias::I32(&[0]),
        mults: &[1 << 30],
        shift: 62,
        zero_point: 0,
        clamp: [i16::MIN as i32, i16::MAX as i32],
        residual: None,
    };
    let mut out = [0i16; 1];
    mixed::conv2d(
        &geo,
        1,
        Values::I16(&x),
        0,
        MixedWeights::I8(&w),
        &ep,
        ValuesMut::I16(&mut out),
    );
    // acc = 65536 · 32768 · 127 ≈ 2^38; the output is round(acc · 2^30 / 2^62) = acc / 2^32.
    let acc: i128 = 65536 * 32768 * 127;
    let want = ((acc << 30) + (1i128 << 61)) >> 62;
    assert_eq!(out[0] as i128, want);
    assert!(acc > i32::MAX as i128);

    // int16 weights: 65536 products of 2³⁰, i.e. 2⁴⁶.
    let w16 = vec![i16::MIN; 16 * cin];
    mixed::conv2d(
        &geo,
        1,
        Values::I16(&x),
        0,
        MixedWeights::I16(&w16),
        &ep,
        ValuesMut::I16(&mut out),
    );
    let acc: i128 = 65536 * 32768 * 32768;
    let want = (((acc << 30) + (1i128 << 61)) >> 62).min(i16::MAX as i128);
    assert_eq!(out[0] as i128, want);
}

#[test]
fn int16_avg_pool_and_add_keep_resolution() {
    // Average of 3 and 4 at int16: 3.5 rounds half up to 4; an int8 output would saturate.
    let geo = geometry(1, 2, 1, 1, 1, 1, 0);
    let geo = Geometry {
        kernel: [1, 2],
        output: [1, 1, 1],
        ..geo
    };
    let x = [3000i16, 4001];
    let mut out = [0i16; 1];
    // mults[n − 1] / 2^shift = 1 / n.
    mixed::avg_pool(
        &geo,
        false,
        Values::I16(&x),
        0,
        &[1 << 20, 1 << 19],
        20,
        0,
        ValuesMut::I16(&mut out),
    );
    assert_eq!(out[0], 3501);
    let mut sum = [0i16; 2];
    mixed::add(
        MixedOperand {
            values: Values::I16(&x),
            zero_point: 0,
            mult: 1 << 10,
        },
        MixedOperand {
            values: Values::I8(&[-128, 127]),
            zero_point: 0,
            mult: 1 << 10,
        },
        10,
        0,
        [0, i16::MAX as i32],
        ValuesMut::I16(&mut sum),
    );
    assert_eq!(sum, [3000 - 128, 4001 + 127]);
}

/// Rows computed piecewise (as threads split a layer) equal the whole, residual included.
#[test]
fn conv_rows_pieces_equal_the_whole() {
    let geo = geometry(7, 5, 6, 9, 3, 1, 1);
    let mut next = lcg(7);
    let x: Vec<i16> = (0..7 * 5 * 6).map(|_| next() as u16 as i16).collect();
    let w16: Vec<i16> = (0..9 * 9 * 6).map(|_| (next() % 65535) as i16).collect();
    let bias: Vec<i64> = (0..9).map(|_| next() as i64).collect();
    let mults: Vec<i32> = (0..9).map(|_| (next() % (1 << 31)) as i32).collect();
    let n = 7 * 5 * 9;
    let r = i8s(n, &mut next);
    let ep = MixedEpilogue {
        bias: MixedBias::I64(&bias),
        mults: &mults,
        shift: 40,
        zero_point: 0,
        clamp: [i16::MIN as i32, i16::MAX as i32],
        residual: Some(MixedResidual {
            values: Values::I8(&r),
            zero_point: -3,
            mult: 1 << 28,
        }),
    };
    let w = MixedWeights::I16(&w16);
    let mut whole = vec![0i16; n];
    mixed::conv2d(
        &geo,
        1,
        Values::I16(&x),
        0,
        w,
        &ep,
        ValuesMut::I16(&mut whole),
    );
    let mut pieces = vec![0x5555i16; n];
    let (a, b) = pieces.split_at_mut(3 * 5 * 9);
    mixed::conv2d_rows(&geo, 1, Values::I16(&x), 0, w, &ep, 0..3, ValuesMut::I16(a));
    mixed::conv2d_rows(&geo, 1, Values::I16(&x), 0, w, &ep, 3..7, ValuesMut::I16(b));
    assert_eq!(pieces, whole);
    assert!(whole.iter().any(|&v| v != 0));
}

#[test]
fn wide_epilogues_do_not_narrow_to_int8() {
    let (bias32, bias64, mults, r16) = ([0i32; 2], [0i64; 2], [1i32; 2], [0i16; 2]);
    let int8 = MixedEpilogue {
        bias: MixedBias::I32(&bias32),
        mults: &mults,
        shift: 8,
        zero_point: -3,
        clamp: [-128, 127],
        residual: None,
    };
    assert!(int8.as_int8().is_some());
    let wide = [
        MixedEpilogue {
            bias: MixedBias::I64(&bias64),
            ..int8
        },
        MixedEpilogue {
            zero_point: 128,
            ..int8
        },
        MixedEpilogue {
            clamp: [-32768, 32767],
            ..int8
        },
        MixedEpilogue {
            residual: Some(MixedResidual {
                values: Values::I16(&r16),
                zero_point: 0,
                mult: 1,
            }),
            ..int8
        },
    ];
    for ep in wide {
        assert!(ep.as_int8().is_none(), "{ep:?}");
    }
}
