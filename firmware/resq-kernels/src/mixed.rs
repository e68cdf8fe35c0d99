//! Mixed-precision reference kernels: any tensor may be int8 or int16.
//!
//! A model may keep its most quantization-sensitive activations at int16 (`resq convert
//! --keep-int16` / `--auto-fallback`): those tensors are symmetric (zero point 0) with a
//! 256× finer step. Every layer that reads or writes one runs here, on plain loops with wide
//! arithmetic: the accumulator is i64 (an int16 input times int8 weights over a 65536-long
//! window needs 39 bits) and the requantization product i128, so nothing can overflow. With
//! every tensor int8 these functions compute exactly what [`crate::reference`] does (a
//! property test checks it), so the two definitions cannot drift apart. A kept convolution
//! also has int16 weights (per channel, symmetric) and i64 biases: `Σ x·w` then needs 47 bits.

use core::ops::Range;

use crate::{Epilogue, Geometry, ResidualOperand};

/// A tensor's values, borrowed.
#[derive(Clone, Copy, Debug)]
pub enum Values<'a> {
    /// int8 values.
    I8(&'a [i8]),
    /// int16 values.
    I16(&'a [i16]),
}

/// A tensor's values, borrowed mutably.
#[derive(Debug)]
pub enum ValuesMut<'a> {
    /// int8 values.
    I8(&'a mut [i8]),
    /// int16 values.
    I16(&'a mut [i16]),
}

impl<'a> Values<'a> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Values::I8(v) => v.len(),
            Values::I16(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values if they are int8.
    pub fn as_i8(self) -> Option<&'a [i8]> {
        match self {
            Values::I8(v) => Some(v),
            Values::I16(_) => None,
        }
    }

    /// The values if they are int16.
    pub fn as_i16(self) -> Option<&'a [i16]> {
        match self {
            Values::I8(_) => None,
            Values::I16(v) => Some(v),
        }
    }

    /// Value `i`, widened.
    #[inline(always)]
    pub fn get(&self, i: usize) -> i64 {
        match self {
            Values::I8(v) => v[i] as i64,
            Values::I16(v) => v[i] as i64,
        }
    }
}

impl ValuesMut<'_> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            ValuesMut::I8(v) => v.len(),
            ValuesMut::I16(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The representable range of the element type.
    pub fn range(&self) -> [i64; 2] {
        match self {
            ValuesMut::I8(_) => [i8::MIN as i64, i8::MAX as i64],
            ValuesMut::I16(_) => [i16::MIN as i64, i16::MAX as i64],
        }
    }

    /// Stores `v`, which the caller has clamped to [`ValuesMut::range`].
    #[inline(always)]
    fn set(&mut self, i: usize, v: i64) {
        match self {
            ValuesMut::I8(o) => o[i] = v as i8,
            ValuesMut::I16(o) => o[i] = v as i16,
        }
    }
}

/// An element type of activations or weights.
trait Elem: Copy + Into<i32> {
    /// Magnitude bits of a value (|v| ≤ 2^BITS).
    const BITS: u32;
}

impl Elem for i8 {
    const BITS: u32 = 7;
}

impl Elem for i16 {
    const BITS: u32 = 15;
}

/// `Σ a·w`, exact: summed in i32 over runs short enough that i32 cannot overflow (so the
/// loops vectorise), then in i64.
#[inline(always)]
fn dot<X: Elem, W: Elem>(a: &[X], w: &[W]) -> i64 {
    // |x·w| ≤ 2^(BX + BW); a run of 2^(30 − BX − BW) such products stays below 2³¹.
    let run = 1usize << (30 - X::BITS - W::BITS);
    if a.len() <= run {
        return a
            .iter()
            .zip(w)
            .map(|(&x, &w)| x.into() * w.into())
            .sum::<i32>() as i64;
    }
    a.chunks(run)
        .zip(w.chunks(run))
        .map(|(a, w)| {
            a.iter()
                .zip(w)
                .map(|(&x, &w)| x.into() * w.into())
                .sum::<i32>() as i64
        })
        .sum()
}

/// Convolution weights: int8, or int16 for a layer kept at higher precision.
#[derive(Clone, Copy, Debug)]
pub enum MixedWeights<'a> {
    /// int8 weights.
    I8(&'a [i8]),
    /// int16 weights.
    I16(&'a [i16]),
}

/// Convolution biases: i32, or i64 beside int16 weights.
#[derive(Clone, Copy, Debug)]
pub enum MixedBias<'a> {
    /// i32 biases.
    I32(&'a [i32]),
    /// i64 biases.
    I64(&'a [i64]),
}

impl MixedBias<'_> {
    #[inline(always)]
    fn get(&self, c: usize) -> i64 {
        match self {
            MixedBias::I32(b) => b[c] as i64,
            MixedBias::I64(b) => b[c],
        }
    }
}

/// `(v + 2^(s−1)) >> s` in i128: [`crate::round_shift`] without an overflow bound.
#[inline(always)]
pub fn round_shift_wide(v: i128, shift: u8) -> i128 {
    (v + (1i128 << (shift - 1))) >> shift
}

/// The residual operand of a mixed convolution epilogue.
#[derive(Clone, Copy, Debug)]
pub struct MixedResidual<'a> {
    /// Values, same layout as the output.
    pub values: Values<'a>,
    /// Zero point (0 for int16).
    pub zero_point: i32,
    /// Multiplier of `(r − zero_point)` at the epilogue's shift.
    pub mult: i32,
}

/// The epilogue of a mixed convolution: as [`crate::Epilogue`] with wide types.
#[derive(Clone, Copy, Debug)]
pub struct MixedEpilogue<'a> {
    /// Bias per output channel, input zero point folded in.
    pub bias: MixedBias<'a>,
    /// Multiplier per output channel.
    pub mults: &'a [i32],
    /// Shared right shift, 1..=62.
    pub shift: u8,
    /// Output zero point (0 for int16).
    pub zero_point: i32,
    /// Output clamp `[min, max]` in the output's type.
    pub clamp: [i32; 2],
    /// Residual operand.
    pub residual: Option<MixedResidual<'a>>,
}

impl<'a> MixedEpilogue<'a> {
    /// The same epilogue as the int8 kernels take it, when every part fits their types: i32
    /// biases, an int8 zero point and clamp, an int8 residual (`None` otherwise). On an int8
    /// output both compute the same bytes (the property tests check it).
    pub fn as_int8(&self) -> Option<Epilogue<'a>> {
        let MixedBias::I32(bias) = self.bias else {
            return None;
        };
        let residual = match self.residual {
            None => None,
            Some(r) => Some(ResidualOperand {
                values: r.values.as_i8()?,
                zero_point: i8::try_from(r.zero_point).ok()?,
                mult: r.mult,
            }),
        };
        Some(Epilogue {
            bias,
            mults: self.mults,
            shift: self.shift,
            zero_point: i8::try_from(self.zero_point).ok()?,
            clamp: [
                i8::try_from(self.clamp[0]).ok()?,
                i8::try_from(self.clamp[1]).ok()?,
            ],
            residual,
        })
    }

    /// `clamp(zp + round_shift(acc·mult[c] + (r − zp_r)·mult_r, shift))`.
    #[inline(always)]
    fn apply(&self, acc: i64, c: usize, index: usize, range: [i64; 2]) -> i64 {
        let mut v = acc as i128 * self.mults[c] as i128;
        if let Some(r) = &self.residual {
            v += (r.values.get(index) - r.zero_point as i64) as i128 * r.mult as i128;
        }
        let y = round_shift_wide(v, self.shift) + self.zero_point as i128;
        let lo = (self.clamp[0] as i64).max(range[0]) as i128;
        let hi = (self.clamp[1] as i64).min(range[1]) as i128;
        y.clamp(lo, hi.max(lo)) as i64
    }
}

/// Grouped 2-D convolution, NHWC, int8 or int16 input, weights and output, with the fused
/// epilogue. Padded cells read the input zero point, as in [`crate::reference::conv2d`].
pub fn conv2d(
    geo: &Geometry,
    groups: usize,
    input: Values,
    input_zp: i32,
    weights: MixedWeights,
    ep: &MixedEpilogue,
    output: ValuesMut,
) {
    conv2d_rows(
        geo,
        groups,
        input,
        input_zp,
        weights,
        ep,
        0..geo.output[0],
        output,
    );
}

/// [`conv2d`] for output rows `rows` only; `output` holds just those rows (so threads can
/// split a layer), the residual is the whole tensor.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_rows(
    geo: &Geometry,
    groups: usize,
    input: Values,
    input_zp: i32,
    weights: MixedWeights,
    ep: &MixedEpilogue,
    rows: Range<usize>,
    mut output: ValuesMut,
) {
    use MixedWeights as W;
    let out = &mut output;
    let r = rows;
    match (input, weights) {
        (Values::I8(x), W::I8(w)) => conv2d_typed(geo, groups, x, input_zp, w, ep, r, out),
        (Values::I16(x), W::I8(w)) => conv2d_typed(geo, groups, x, input_zp, w, ep, r, out),
        (Values::I8(x), W::I16(w)) => conv2d_typed(geo, groups, x, input_zp, w, ep, r, out),
        (Values::I16(x), W::I16(w)) => conv2d_typed(geo, groups, x, input_zp, w, ep, r, out),
    }
}

/// Output channels accumulated together: each tap's geometry is worked out once per block.
const BLOCK: usize = 64;

#[allow(clippy::too_many_arguments)]
fn conv2d_typed<X: Elem, W: Elem>(
    geo: &Geometry,
    groups: usize,
    input: &[X],
    input_zp: i32,
    weights: &[W],
    ep: &MixedEpilogue,
    rows: Range<usize>,
    output: &mut ValuesMut,
) {
    let [ih, iw, ic] = geo.input;
    let [_, ow, oc] = geo.output;
    let [kh, kw] = geo.kernel;
    let cin_g = ic / groups;
    let cout_g = oc / groups;
    debug_assert_eq!(input.len(), ih * iw * ic);
    debug_assert_eq!(output.len(), rows.len() * ow * oc);
    debug_assert_eq!(weights.len(), oc * kh * kw * cin_g);
    let range = output.range();
    let first = rows.start * ow * oc;
    let mut acc = [0i64; BLOCK];
    for y in rows {
        for x in 0..ow {
            let out_base = (y * ow + x) * oc;
            for c0 in (0..oc).step_by(BLOCK) {
                let n = BLOCK.min(oc - c0);
                for (j, a) in acc[..n].iter_mut().enumerate() {
                    *a = ep.bias.get(c0 + j);
                }
                // With one group, a window row inside the input is one contiguous run of
                // kw · cin values in both the input and the weights: one dot product.
                let x0 = (x * geo.stride[1]).checked_sub(geo.pad[1]);
                let whole_rows = groups == 1 && x0.is_some_and(|x0| x0 + kw <= iw);
                for ky in 0..kh {
                    let src_y = geo.source(0, y, ky);
                    if let (true, Some(sy), Some(x0)) = (whole_rows, src_y, x0) {
                        let run = kw * ic;
                        let px = &input[(sy * iw + x0) * ic..][..run];
                        for (j, a) in acc[..n].iter_mut().enumerate() {
                            let w = &weights[((c0 + j) * kh + ky) * run..][..run];
                            *a += dot(px, w);
                        }
                        continue;
                    }
                    for kx in 0..kw {
                        let tap = ky * kw + kx;
                        let src = match (src_y, geo.source(1, x, kx)) {
                            (Some(sy), Some(sx)) => Some((sy * iw + sx) * ic),
                            _ => None,
                        };
                        for (j, a) in acc[..n].iter_mut().enumerate() {
                            let c = c0 + j;
                            let w = &weights[(c * kh * kw + tap) * cin_g..][..cin_g];
                            *a += match src {
                                Some(base) => {
                                    dot(&input[base + (c / cout_g) * cin_g..][..cin_g], w)
                                }
                                None => {
                                    input_zp as i64
                                        * w.iter().map(|&v| v.into() as i64).sum::<i64>()
                                }
                            };
                        }
                    }
                }
                for (j, &a) in acc[..n].iter().enumerate() {
                    let index = out_base + c0 + j;
                    output.set(index - first, ep.apply(a, c0 + j, index, range));
                }
            }
        }
    }
}

/// Max pooling; padded cells never win. Input and output have the same type and quantization.
pub fn max_pool(geo: &Geometry, input: Values, mut output: ValuesMut) {
    let [_, iw, c] = geo.input;
    let [oh, ow, _] = geo.output;
    for y in 0..oh {
        for x in 0..ow {
            let window = geo.window(y, x);
            for ch in 0..c {
                let mut best = i64::MIN;
                for (sy, sx) in window.clone() {
                    best = best.max(input.get((sy * iw + sx) * c + ch));
                }
                let range = output.range();
                output.set((y * ow + x) * c + ch, best.clamp(range[0], range[1]));
            }
        }
    }
}

/// Average pooling with requantization, as [`crate::reference::avg_pool`] with wide types.
#[allow(clippy::too_many_arguments)]
pub fn avg_pool(
    geo: &Geometry,
    count_include_pad: bool,
    input: Values,
    input_zp: i32,
    mults: &[i32],
    shift: u8,
    output_zp: i32,
    mut output: ValuesMut,
) {
    let [_, iw, c] = geo.input;
    let [oh, ow, _] = geo.output;
    let area = geo.kernel[0] * geo.kernel[1];
    let range = output.range();
    for y in 0..oh {
        for x in 0..ow {
            let window = geo.window(y, x);
            for ch in 0..c {
                let mut sum = 0i64;
                let mut n = 0usize;
                for (sy, sx) in window.clone() {
                    sum += input.get((sy * iw + sx) * c + ch) - input_zp as i64;
                    n += 1;
                }
                let n = if count_include_pad { area } else { n.max(1) };
                let v =
                    round_shift_wide(sum as i128 * mults[n - 1] as i128, shift) + output_zp as i128;
                output.set(
                    (y * ow + x) * c + ch,
                    v.clamp(range[0] as i128, range[1] as i128) as i64,
                );
            }
        }
    }
}

/// One operand of [`add`].
#[derive(Clone, Copy, Debug)]
pub struct MixedOperand<'a> {
    /// Values.
    pub values: Values<'a>,
    /// Zero point (0 for int16).
    pub zero_point: i32,
    /// Multiplier at the shared shift.
    pub mult: i32,
}

/// Elementwise add with requantization, as [`crate::reference::add`] with wide types.
pub fn add(
    a: MixedOperand,
    b: MixedOperand,
    shift: u8,
    zero_point: i32,
    clamp: [i32; 2],
    mut output: ValuesMut,
) {
    let range = output.range();
    let lo = (clamp[0] as i64).max(range[0]) as i128;
    let hi = (clamp[1] as i64).min(range[1]) as i128;
    for i in 0..output.len() {
        let v = (a.values.get(i) - a.zero_point as i64) as i128 * a.mult as i128
            + (b.values.get(i) - b.zero_point as i64) as i128 * b.mult as i128;
        let y = round_shift_wide(v, shift) + zero_point as i128;
        output.set(i, y.clamp(lo, hi.max(lo)) as i64);
    }
}
