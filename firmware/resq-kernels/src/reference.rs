//! Reference kernels: the definition of resq's int8 arithmetic.

use crate::{finish, Epilogue, Geometry};

/// Grouped 2-D convolution, NHWC, with fused epilogue.
///
/// `acc[c] = bias[c] + Σ x · w` over the window, where padded cells read the input zero point
/// (real zero), so the bias' folded `−zp · Σw` term cancels exactly at the borders.
pub fn conv2d(
    geo: &Geometry,
    groups: usize,
    input: &[i8],
    input_zp: i8,
    weights: &[i8],
    ep: &Epilogue,
    output: &mut [i8],
) {
    let [ih, iw, ic] = geo.input;
    let [oh, ow, oc] = geo.output;
    let [kh, kw] = geo.kernel;
    let cin_g = ic / groups;
    let cout_g = oc / groups;
    debug_assert_eq!(input.len(), ih * iw * ic);
    debug_assert_eq!(output.len(), oh * ow * oc);
    debug_assert_eq!(weights.len(), oc * kh * kw * cin_g);
    for y in 0..oh {
        for x in 0..ow {
            let out_base = (y * ow + x) * oc;
            for c in 0..oc {
                let g = c / cout_g;
                let mut acc = ep.bias[c];
                for ky in 0..kh {
                    let src_y = geo.source(0, y, ky);
                    for kx in 0..kw {
                        let w = &weights[((c * kh + ky) * kw + kx) * cin_g..][..cin_g];
                        acc += match (src_y, geo.source(1, x, kx)) {
                            (Some(sy), Some(sx)) => {
                                let px = &input[(sy * iw + sx) * ic + g * cin_g..][..cin_g];
                                dot(px, w)
                            }
                            _ => input_zp as i32 * w.iter().map(|&v| v as i32).sum::<i32>(),
                        };
                    }
                }
                output[out_base + c] = ep.apply(acc, c, out_base + c);
            }
        }
    }
}

/// Σ a·b in i32.
#[inline(always)]
pub fn dot(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &w)| x as i32 * w as i32).sum()
}

/// Max pooling; padded cells never win. The output keeps the input's quantization.
pub fn max_pool(geo: &Geometry, input: &[i8], output: &mut [i8]) {
    let [_, iw, c] = geo.input;
    let [oh, ow, _] = geo.output;
    for y in 0..oh {
        for x in 0..ow {
            let out = &mut output[(y * ow + x) * c..][..c];
            out.fill(i8::MIN);
            for (sy, sx) in geo.window(y, x) {
                let px = &input[(sy * iw + sx) * c..][..c];
                for (o, &v) in out.iter_mut().zip(px) {
                    *o = (*o).max(v);
                }
            }
        }
    }
}

/// Average pooling with requantization.
///
/// `out = zp_out + round_half_up(Σ (x − zp_in) · mults[n − 1] / 2^shift)`, n the number of
/// cells counted (all window cells with `count_include_pad`, else only those inside the input;
/// padded cells add zero either way).
#[allow(clippy::too_many_arguments)]
pub fn avg_pool(
    geo: &Geometry,
    count_include_pad: bool,
    input: &[i8],
    input_zp: i8,
    mults: &[i32],
    shift: u8,
    output_zp: i8,
    output: &mut [i8],
) {
    let [_, iw, c] = geo.input;
    let [oh, ow, _] = geo.output;
    let area = geo.kernel[0] * geo.kernel[1];
    for y in 0..oh {
        for x in 0..ow {
            let window = geo.window(y, x);
            for ch in 0..c {
                let mut sum = 0i64;
                let mut n = 0usize;
                for (sy, sx) in window.clone() {
                    sum += input[(sy * iw + sx) * c + ch] as i64 - input_zp as i64;
                    n += 1;
                }
                let n = if count_include_pad { area } else { n.max(1) };
                output[(y * ow + x) * c + ch] = finish(
                    sum * mults[n - 1] as i64,
                    shift,
                    output_zp,
                    [i8::MIN, i8::MAX],
                );
            }
        }
    }
}

/// One operand of [`add`]: values, zero point and multiplier.
#[derive(Clone, Copy, Debug)]
pub struct AddOperand<'a> {
    /// Values.
    pub values: &'a [i8],
    /// Zero point.
    pub zero_point: i8,
    /// Multiplier at the shared shift.
    pub mult: i32,
}

/// Elementwise add with requantization:
/// `out = clamp(zp + round_half_up(((a − za)·ma + (b − zb)·mb) / 2^shift))`.
pub fn add(
    a: AddOperand,
    b: AddOperand,
    shift: u8,
    zero_point: i8,
    clamp: [i8; 2],
    output: &mut [i8],
) {
    for ((o, &x), &y) in output.iter_mut().zip(a.values).zip(b.values) {
        let v = (x as i64 - a.zero_point as i64) * a.mult as i64
            + (y as i64 - b.zero_point as i64) * b.mult as i64;
        *o = finish(v, shift, zero_point, clamp);
    }
}

/// Pads H, W and C with `zero_point`. `pads` = `[top, bottom, left, right, c_before, c_after]`.
pub fn pad(
    input_shape: [usize; 3],
    pads: [usize; 6],
    zero_point: i8,
    input: &[i8],
    output: &mut [i8],
) {
    let [ih, iw, ic] = input_shape;
    let [top, _, left, right, cb, ca] = pads;
    let ow = left + iw + right;
    let oc = cb + ic + ca;
    output.fill(zero_point);
    for y in 0..ih {
        for x in 0..iw {
            let src = &input[(y * iw + x) * ic..][..ic];
            output[((y + top) * ow + x + left) * oc + cb..][..ic].copy_from_slice(src);
        }
    }
}

/// Strided subsampling: `out[y][x] = in[start_h + y·step_h][start_w + x·step_w]`.
pub fn subsample(
    input_shape: [usize; 3],
    output_hw: [usize; 2],
    start: [usize; 2],
    step: [usize; 2],
    input: &[i8],
    output: &mut [i8],
) {
    let [_, iw, c] = input_shape;
    let [oh, ow] = output_hw;
    for y in 0..oh {
        for x in 0..ow {
            let (sy, sx) = (start[0] + y * step[0], start[1] + x * step[1]);
            output[(y * ow + x) * c..][..c].copy_from_slice(&input[(sy * iw + sx) * c..][..c]);
        }
    }
}
