//! Runs one layer: one match on its op, where each arm picks the kernels (the tier's fast int8
//! kernels, the int8 reference, or the mixed int8 / int16 ones) and builds their arguments
//! from the model.

use core::ops::Range;

use resq_format::{Conv, Model, Op, Pool};
use resq_kernels::mixed::{
    self, MixedBias, MixedEpilogue, MixedOperand, MixedResidual, MixedWeights, Values, ValuesMut,
};
use resq_kernels::{pool, reference, Geometry, Kernels};

use crate::exec::{ConvExec, Par, Split, Weights};

/// Which kernels a layer runs on.
pub(crate) enum Path<'e> {
    /// int8 tensors and weights on the reference kernels (the reference tier).
    Reference,
    /// int8 tensors and weights on the tier's fast kernels.
    Fast(Fast<'e>),
    /// A layer touching an int16 tensor or with int16 weights, on `resq_kernels::mixed`.
    Mixed,
}

/// What the fast kernels run with, borrowed from the engine.
pub(crate) struct Fast<'e> {
    pub(crate) kernels: &'e Kernels,
    /// The layer's plan (convolutions only).
    pub(crate) conv: Option<&'e ConvExec>,
    /// Weights packed at load ([`Weights::Owned`] ranges).
    pub(crate) packed: &'e [i8],
    /// Packed biases ([`ConvExec::bias_range`]).
    pub(crate) biases: &'e [i32],
    /// Room for the prepared input.
    pub(crate) scratch: &'e mut [u8],
}

/// Runs layer `layer` of `model` on `path`: reads `x` (and `r`, the second input: a residual
/// or the other addend; empty if none), writes `out`.
pub(crate) fn run_layer(
    par: &Par<'_>,
    model: &Model,
    layer: usize,
    path: Path<'_>,
    x: &[i8],
    r: &[i8],
    out: &mut [i8],
) {
    match model.meta.layers[layer].op {
        Op::Conv(c) => conv(par, model, layer, &c, path, x, r, out),
        Op::MaxPool(p) => {
            let geo = pool_geometry(model, &p);
            let [oh, ow, c] = geo.output;
            match path {
                Path::Fast(_) => par.rows(out, oh * ow, c, &|rows, out| {
                    pool::max_pool(&geo, x, out, rows)
                }),
                Path::Reference => reference::max_pool(&geo, x, out),
                Path::Mixed => mixed::max_pool(
                    &geo,
                    values(model, p.input, x),
                    values_mut(model, p.output, out),
                ),
            }
        }
        Op::AvgPool(a) => {
            let p = a.window;
            let geo = pool_geometry(model, &p);
            let [oh, ow, c] = geo.output;
            let mults = model.i32s(a.mults);
            let x_zp = model.tensor(p.input).zero_point;
            let y_zp = model.tensor(p.output).zero_point;
            let include_pad = a.count_include_pad;
            match path {
                Path::Fast(_) => par.rows(out, oh * ow, c, &|rows, out| {
                    pool::avg_pool(&geo, include_pad, x, x_zp, mults, a.shift, y_zp, out, rows)
                }),
                Path::Reference => {
                    reference::avg_pool(&geo, include_pad, x, x_zp, mults, a.shift, y_zp, out)
                }
                Path::Mixed => mixed::avg_pool(
                    &geo,
                    include_pad,
                    values(model, p.input, x),
                    zp(model, p.input),
                    mults,
                    a.shift,
                    zp(model, p.output),
                    values_mut(model, p.output, out),
                ),
            }
        }
        Op::Add(a) => match path {
            Path::Mixed => {
                let operand = |t, v, mult| MixedOperand {
                    values: values(model, t, v),
                    zero_point: zp(model, t),
                    mult,
                };
                mixed::add(
                    operand(a.a, x, a.mult_a),
                    operand(a.b, r, a.mult_b),
                    a.shift,
                    zp(model, a.output),
                    clamp_of(model, a.output, a.clamp),
                    values_mut(model, a.output, out),
                )
            }
            Path::Fast(_) | Path::Reference => {
                let operand = |t, values, mult| reference::AddOperand {
                    values,
                    zero_point: model.tensor(t).zero_point,
                    mult,
                };
                reference::add(
                    operand(a.a, x, a.mult_a),
                    operand(a.b, r, a.mult_b),
                    a.shift,
                    model.tensor(a.output).zero_point,
                    a.clamp,
                    out,
                )
            }
        },
        // Copies, on every path: an int16 tensor is an int8 one with twice the channels and
        // zero point 0 (the format makes input and output the same type), so the byte kernels
        // serve.
        Op::Pad(p) => {
            let xt = model.tensor(p.input);
            let w = elem_bytes(model, p.input);
            let [h, wd, c] = hwc(xt.shape);
            let mut pads = p.pads.map(|v| v as usize);
            pads[4] *= w;
            pads[5] *= w;
            reference::pad([h, wd, c * w], pads, xt.zero_point, x, out);
        }
        Op::Subsample(s) => {
            let (xt, yt) = (model.tensor(s.input), model.tensor(s.output));
            let w = elem_bytes(model, s.input);
            let [h, wd, c] = hwc(xt.shape);
            let [oh, ow, _] = hwc(yt.shape);
            reference::subsample(
                [h, wd, c * w],
                [oh, ow],
                s.start.map(usize::from),
                s.step.map(usize::from),
                x,
                out,
            );
        }
    }
}

/// A convolution on `path`.
#[allow(clippy::too_many_arguments)]
fn conv(
    par: &Par<'_>,
    model: &Model,
    layer: usize,
    c: &Conv,
    path: Path<'_>,
    x: &[i8],
    r: &[i8],
    out: &mut [i8],
) {
    let ep = epilogue(model, layer, c, r);
    let (xt, yt) = (model.tensor(c.input), model.tensor(c.output));
    let geo = geometry(xt.shape, yt.shape, c.kernel, c.stride, c.pad);
    let groups = c.groups as usize;
    // An int8 layer's epilogue always narrows; were one not to, the mixed kernels compute
    // any types exactly.
    let int8 = match path {
        Path::Mixed => None,
        _ => ep.as_int8(),
    };
    match (path, int8) {
        (
            Path::Fast(Fast {
                kernels,
                conv: Some(exec),
                packed,
                biases,
                scratch,
            }),
            Some(ep),
        ) => {
            let weights = match exec.weights() {
                Weights::Owned(range) => &packed[range.clone()],
                Weights::InFile => model.i8s(c.weights),
            };
            // The packed biases have the kernels' input encoding folded in.
            let ep = resq_kernels::Epilogue {
                bias: &biases[exec.bias_range()],
                ..ep
            };
            exec.run(par, kernels, x, xt.zero_point, weights, &ep, scratch, out);
        }
        (_, Some(ep)) => reference::conv2d(
            &geo,
            groups,
            x,
            xt.zero_point,
            model.i8s(c.weights),
            &ep,
            out,
        ),
        (_, None) => {
            let input = values(model, c.input, x);
            let input_zp = zp(model, c.input);
            let weights = if model.has_int16_weights(layer) {
                MixedWeights::I16(model.i16s(c.weights))
            } else {
                MixedWeights::I8(model.i8s(c.weights))
            };
            // These layers run on plain loops: split their output rows across the threads
            // whatever their size.
            let [oh, ow, oc] = geo.output;
            let run = |rows: Range<usize>, out: ValuesMut| {
                mixed::conv2d_rows(&geo, groups, input, input_zp, weights, &ep, rows, out)
            };
            let unit = ow * oc;
            let split = Split {
                align: 1,
                parallel: true,
            };
            match values_mut(model, c.output, out) {
                ValuesMut::I8(o) => par.split(o, oh, split, &|u| u * unit, &|rows, o| {
                    run(rows, ValuesMut::I8(o))
                }),
                ValuesMut::I16(o) => par.split(o, oh, split, &|u| u * unit, &|rows, o| {
                    run(rows, ValuesMut::I16(o))
                }),
            }
        }
    }
}

/// The requantization epilogue of convolution `c` (layer `layer`) as the model stores it,
/// with `r` the residual's bytes: bias, multipliers and shift, the output's zero point and
/// clamp (its int16 block's for an int16 output), the fused residual. In the mixed kernels'
/// wide types; an int8 layer's narrows to the int8 kernels' ([`MixedEpilogue::as_int8`]).
fn epilogue<'a>(model: &Model<'a>, layer: usize, c: &Conv, r: &'a [i8]) -> MixedEpilogue<'a> {
    MixedEpilogue {
        bias: if model.has_int16_weights(layer) {
            MixedBias::I64(model.i64s(c.bias))
        } else {
            MixedBias::I32(model.i32s(c.bias))
        },
        mults: model.i32s(c.requant.mults),
        shift: c.requant.shift,
        zero_point: zp(model, c.output),
        clamp: clamp_of(model, c.output, c.clamp),
        residual: c.residual.map(|res| MixedResidual {
            values: values(model, res.tensor, r),
            zero_point: zp(model, res.tensor),
            mult: res.mult,
        }),
    }
}

/// Whether layer `i` (`op`) reads or writes an int16 tensor or has int16 weights.
pub(crate) fn is_mixed(model: &Model, i: usize, op: &Op) -> bool {
    model.has_int16_weights(i)
        || model.is_int16(op.output())
        || op.inputs().into_iter().flatten().any(|t| model.is_int16(t))
}

/// Tensor `index`'s bytes as its element type. Int16 regions start at 64-byte arena offsets
/// of an i16-backed arena and hold 2 bytes per value, so the cast cannot fail.
pub(crate) fn values<'a>(model: &Model, index: u16, bytes: &'a [i8]) -> Values<'a> {
    if model.is_int16(index) {
        Values::I16(bytemuck::try_cast_slice(bytes).unwrap_or(&[]))
    } else {
        Values::I8(bytes)
    }
}

fn values_mut<'a>(model: &Model, index: u16, bytes: &'a mut [i8]) -> ValuesMut<'a> {
    if model.is_int16(index) {
        ValuesMut::I16(bytemuck::try_cast_slice_mut(bytes).unwrap_or(&mut []))
    } else {
        ValuesMut::I8(bytes)
    }
}

/// Bytes per value of tensor `t`.
fn elem_bytes(model: &Model, t: u16) -> usize {
    if model.is_int16(t) {
        2
    } else {
        1
    }
}

/// Zero point of a tensor as the mixed kernels take it (int16 tensors have 0).
fn zp(model: &Model, t: u16) -> i32 {
    model.tensor(t).zero_point as i32
}

/// The clamp of the layer writing `output`: the int16 block's, or its own int8 clamp.
fn clamp_of(model: &Model, output: u16, clamp: [i8; 2]) -> [i32; 2] {
    match model.int16_clamp(output) {
        Some(c) => c.map(i32::from),
        None => clamp.map(i32::from),
    }
}

/// The geometry of a pooling window between its input and output tensors.
fn pool_geometry(model: &Model, p: &Pool) -> Geometry {
    geometry(
        model.tensor(p.input).shape,
        model.tensor(p.output).shape,
        p.kernel,
        p.stride,
        p.pad,
    )
}

fn hwc(shape: [u32; 4]) -> [usize; 3] {
    [shape[1] as usize, shape[2] as usize, shape[3] as usize]
}

/// The geometry of a window (convolution or pooling) from the model's shapes and parameters.
pub(crate) fn geometry(
    input: [u32; 4],
    output: [u32; 4],
    kernel: [u16; 2],
    stride: [u16; 2],
    pad: [u16; 4],
) -> Geometry {
    Geometry {
        input: hwc(input),
        output: hwc(output),
        kernel: kernel.map(usize::from),
        stride: stride.map(usize::from),
        pad: [pad[0] as usize, pad[1] as usize],
    }
}

/// Borrows the output region mutably and the input regions immutably from one arena.
/// The planner never overlaps an output with a tensor live at the same step.
pub(crate) fn split_arena(
    arena: &mut [i8],
    out: Range<usize>,
    inputs: [Option<Range<usize>>; 2],
) -> (&mut [i8], [Option<&[i8]>; 2]) {
    let (before, rest) = arena.split_at_mut(out.start);
    let (output, after) = rest.split_at_mut(out.end - out.start);
    let (before, after) = (&*before, &*after);
    let pick = |r: Option<Range<usize>>| {
        r.map(|r| {
            if r.end <= out.start {
                &before[r]
            } else {
                // The planner guarantees r.start >= out.end here.
                &after[r.start.saturating_sub(out.end)..r.end.saturating_sub(out.end)]
            }
        })
    };
    let [a, b] = inputs;
    (output, [pick(a), pick(b)])
}
