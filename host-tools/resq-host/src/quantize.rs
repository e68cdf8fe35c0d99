//! Float graph + calibrated ranges → int8 `.resq` file.
//!
//! Weights: symmetric int8 per output channel (zero point 0, range ±127). Activations:
//! asymmetric int8 per tensor. Biases: i32 at scale `s_in · s_w[c]`, with the input zero point
//! folded in. Every rescale is an i32 multiplier and a right shift (see `resq_kernels::round_shift`).

use anyhow::{bail, ensure, Context, Result};
use resq_format::write::{write_file, Blocks, DataSection};
use resq_format::{self as fmt, InputSpec, Metadata, OutputSpec, Provenance, SelfTest};

use crate::images::Preprocess;
use crate::ir::{Activation, Graph, Op};

/// Quantization of one tensor: real = scale · (q − zero_point).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    /// Step.
    pub scale: f32,
    /// Quantized zero (0 for int16).
    pub zero_point: i8,
    /// Stored as symmetric int16 instead of int8 (a layer kept at higher precision).
    pub int16: bool,
}

impl QParams {
    /// Symmetric int16 parameters covering `[lo, hi]`: zero point 0, step `max(|lo|, |hi|) / 32767`,
    /// 256× finer than int8 over the same range.
    pub fn int16_from_range(lo: f32, hi: f32) -> QParams {
        let m = lo.abs().max(hi.abs()).max(1e-8);
        QParams {
            scale: m / 32767.0,
            zero_point: 0,
            int16: true,
        }
    }

    /// The real range an int8 tensor represents (the range kept when it becomes int16).
    pub fn real_range(&self) -> (f32, f32) {
        let zp = self.zero_point as f32;
        (self.scale * (-128.0 - zp), self.scale * (127.0 - zp))
    }

    /// Nearest int16 value of `x`, saturated.
    pub fn quantize16(&self, x: f32) -> i16 {
        (x / self.scale).round().clamp(-32768.0, 32767.0) as i16
    }

    /// Asymmetric int8 parameters covering `[lo, hi]` (widened to include 0, so zero padding
    /// and ReLU are exact).
    pub fn from_range(lo: f32, hi: f32) -> QParams {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let span = (hi - lo).max(1e-8);
        let scale = span / 255.0;
        let zero_point = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i8;
        QParams {
            scale,
            zero_point,
            int16: false,
        }
    }

    /// Nearest int8 value of `x`, saturated.
    pub fn quantize(&self, x: f32) -> i8 {
        (x / self.scale + self.zero_point as f32)
            .round()
            .clamp(-128.0, 127.0) as i8
    }
}

/// Multipliers and a shared shift such that `mults[i] / 2^shift ≈ reals[i]`, the largest
/// multiplier in [2³⁰, 2³¹) for the best precision.
pub fn fixed_point(reals: &[f64]) -> Result<(Vec<i32>, u8)> {
    let max = reals.iter().copied().fold(0.0f64, f64::max);
    ensure!(
        reals.iter().all(|r| r.is_finite() && *r >= 0.0),
        "non-finite or negative rescale factor {reals:?}"
    );
    if max == 0.0 {
        return Ok((vec![0; reals.len()], 31));
    }
    let mut shift = (30 - max.log2().floor() as i32).min(62);
    ensure!(
        shift >= 1,
        "rescale factor {max} is too large for int8 requantization"
    );
    loop {
        let mults: Vec<i64> = reals
            .iter()
            .map(|r| (r * 2f64.powi(shift)).round() as i64)
            .collect();
        if mults.iter().all(|&m| m <= i32::MAX as i64) {
            return Ok((mults.into_iter().map(|m| m as i32).collect(), shift as u8));
        }
        shift -= 1;
    }
}

/// The int16 clamp of an activation (the same rule as [`clamp_for`], at int16 resolution).
fn clamp16_for(act: Activation, q: QParams) -> [i16; 2] {
    match act {
        Activation::Identity => [i16::MIN, i16::MAX],
        Activation::Relu => [0, i16::MAX],
        Activation::Clip(lo, hi) => {
            let lo = if lo.is_finite() {
                q.quantize16(lo)
            } else {
                i16::MIN
            };
            let hi = if hi.is_finite() {
                q.quantize16(hi)
            } else {
                i16::MAX
            };
            [lo, hi.max(lo)]
        }
    }
}

/// The int8 clamp field of a layer: its activation's, or the full range when it writes an
/// int16 tensor (whose clamp goes in the file's int16 block).
fn int8_clamp(act: Activation, q: QParams) -> [i8; 2] {
    if q.int16 {
        [i8::MIN, i8::MAX]
    } else {
        clamp_for(act, q)
    }
}

fn clamp_for(act: Activation, q: QParams) -> [i8; 2] {
    match act {
        Activation::Identity => [i8::MIN, i8::MAX],
        Activation::Relu => [q.zero_point, i8::MAX],
        Activation::Clip(lo, hi) => {
            let lo = if lo.is_finite() {
                q.quantize(lo)
            } else {
                i8::MIN
            };
            let hi = if hi.is_finite() {
                q.quantize(hi)
            } else {
                i8::MAX
            };
            [lo, hi.max(lo)]
        }
    }
}

/// Everything besides the graph that goes into a file.
#[derive(Clone, Debug)]
pub struct FileInfo {
    /// Preprocessing.
    pub preprocess: Preprocess,
    /// Class names (may be empty).
    pub labels: Vec<String>,
    /// Source model file name.
    pub source_name: String,
    /// Its SHA-256.
    pub source_sha256: [u8; 32],
    /// Calibration set digest.
    pub calib_digest: [u8; 32],
    /// Number of calibration images.
    pub calib_images: u32,
    /// Method name.
    pub method: String,
    /// Method parameter.
    pub method_param: f32,
    /// Self-test input pixels `[h][w][c]` (the first calibration image).
    pub self_test_pixels: Vec<u8>,
    /// Tensors kept at int16 (outputs of layers kept at higher precision).
    pub int16: Vec<usize>,
}

/// Real-valued range of the model input implied by the preprocessing.
pub fn input_range(p: &Preprocess) -> (f32, f32) {
    let c = p.channel_count();
    let lo = (0..c)
        .map(|i| (0.0 - p.mean[i]) / p.std[i])
        .fold(f32::INFINITY, f32::min);
    let hi = (0..c)
        .map(|i| (255.0 - p.mean[i]) / p.std[i])
        .fold(f32::NEG_INFINITY, f32::max);
    // A negative std flips the range.
    (lo.min(hi), hi.max(lo))
}

/// Quantizes `graph` with activation `ranges` (one `(lo, hi)` per tensor) into a complete file.
pub fn quantize(graph: &Graph, ranges: &[(f32, f32)], info: &FileInfo) -> Result<Vec<u8>> {
    let n = graph.tensors.len();
    ensure!(
        ranges.len() == n,
        "internal: {} ranges for {} tensors",
        ranges.len(),
        n
    );
    ensure!(
        n <= fmt::MAX_TENSORS,
        "the graph has {n} tensors; resq supports at most {}",
        fmt::MAX_TENSORS
    );
    ensure!(
        graph.layers.len() <= fmt::MAX_LAYERS,
        "the graph has {} layers; resq supports at most {}",
        graph.layers.len(),
        fmt::MAX_LAYERS
    );

    // Tensor quantization: calibrated, except ops that must keep their input's parameters.
    // A pre-quantized (QDQ) model's own parameters win over calibrated ranges.
    let mut q: Vec<QParams> = graph
        .tensors
        .iter()
        .zip(ranges)
        .map(|(t, &(lo, hi))| match t.qparams {
            Some((scale, zero_point)) => QParams {
                scale,
                zero_point,
                int16: false,
            },
            None => QParams::from_range(lo, hi),
        })
        .collect();
    for &t in &info.int16 {
        ensure!(
            t != graph.output && t != graph.input,
            "tensor `{}` is the model's input or output, which stay int8; keep an earlier layer at int16",
            graph.tensors[t].name
        );
        // A QDQ model's own int8 range is kept, at int16 resolution.
        let (lo, hi) = match graph.tensors[t].qparams {
            Some(_) => q[t].real_range(),
            None => ranges[t],
        };
        q[t] = QParams::int16_from_range(lo, hi);
    }
    if graph.tensors[graph.input].qparams.is_none() {
        let (lo, hi) = input_range(&info.preprocess);
        q[graph.input] = QParams::from_range(lo, hi);
    }
    for layer in &graph.layers {
        match &layer.op {
            Op::MaxPool { input, output, .. }
            | Op::Pad { input, output, .. }
            | Op::Subsample { input, output, .. } => {
                if graph.tensors[*output]
                    .qparams
                    .is_some_and(|(s, z)| (s, z) != (q[*input].scale, q[*input].zero_point))
                {
                    bail!(
                        "layer `{}` changes quantization from its input's; resq keeps max pooling, padding and slicing \
                         at their input's scale and zero point",
                        layer.name
                    );
                }
                q[*output] = q[*input];
                ensure!(
                    !(q[*output].int16 && *output == graph.output),
                    "layer `{}` copies an int16 tensor into the model's output, which stays int8; \
                     keep a different layer at int16",
                    layer.name
                );
            }
            _ => {}
        }
    }

    let mut data = DataSection::new();
    let p = &info.preprocess;
    let channels = p.channel_count();
    let qin = q[graph.input];
    let lut: Vec<i8> = (0..channels)
        .flat_map(|c| (0..256).map(move |px| (c, px)))
        .map(|(c, px)| qin.quantize((px as f32 - p.mean[c]) / p.std[c]))
        .collect();
    let lut_ref = data.push_i8(&lut);

    // A convolution kept at int16 also gets int16 weights (and i64 biases).
    let wide_weights: Vec<bool> = graph
        .layers
        .iter()
        .map(|l| match &l.op {
            Op::Conv(c) => info.int16.contains(&c.output) || own_grid_needs_int16(c),
            _ => false,
        })
        .collect();
    let mut layers = heapless::Vec::new();
    for (layer, &wide) in graph.layers.iter().zip(&wide_weights) {
        let op = quantize_op(&layer.op, &q, wide, &mut data)
            .with_context(|| format!("quantizing layer `{}`", layer.name))?;
        layers
            .push(fmt::Layer {
                name: &layer.name,
                op,
            })
            .ok()
            .context("too many layers")?;
    }
    let mut precision = fmt::Precision::default();
    for (i, _) in wide_weights.iter().enumerate().filter(|(_, &w)| w) {
        precision
            .int16_weights
            .push(i as u16)
            .ok()
            .context("too many int16-weight layers")?;
    }
    for layer in &graph.layers {
        let out = layer.op.output();
        if q[out].int16 {
            precision
                .int16
                .push(fmt::Int16Tensor {
                    tensor: out as u16,
                    clamp: clamp16_for(layer.op.activation(), q[out]),
                })
                .ok()
                .context("too many int16 tensors")?;
        }
    }
    let mut tensors = heapless::Vec::new();
    for (t, qp) in graph.tensors.iter().zip(&q) {
        let [h, w, c] = t.shape;
        tensors
            .push(fmt::TensorDesc {
                name: &t.name,
                shape: [1, h as u32, w as u32, c as u32],
                scale: qp.scale,
                zero_point: qp.zero_point,
            })
            .ok()
            .context("too many tensors")?;
    }

    // Self-test: the first calibration image through the LUT; its expected output is filled in
    // below by running the engine on the finished file.
    let mut self_test_input = vec![0i8; info.self_test_pixels.len()];
    fmt::lut_quantize(&lut, channels, &info.self_test_pixels, &mut self_test_input);
    ensure!(
        self_test_input.len() == graph.tensors[graph.input].elems(),
        "internal: self-test input has {} values, the input tensor {}",
        self_test_input.len(),
        graph.tensors[graph.input].elems()
    );
    let st_in = data.push_i8(&self_test_input);
    let st_out = data.push_i8(&vec![0; graph.tensors[graph.output].elems()]);

    let labels = info.labels.join("\n");
    let meta = Metadata {
        name: &graph.name,
        input: InputSpec {
            tensor: graph.input as u16,
            layout: p.layout,
            channels: p.channels,
            mean: p.mean,
            std: p.std,
            lut: lut_ref,
        },
        output: OutputSpec {
            tensor: graph.output as u16,
            softmax: graph.softmax,
        },
        tensors,
        layers,
        labels: &labels,
        provenance: Provenance {
            source_name: &info.source_name,
            source_sha256: info.source_sha256,
            calib_digest: info.calib_digest,
            calib_images: info.calib_images,
            method: &info.method,
            method_param: info.method_param,
            tool: concat!("resq ", env!("CARGO_PKG_VERSION")),
        },
        self_test: SelfTest {
            input: st_in,
            expected: st_out,
        },
    };
    let blocks = Blocks {
        precision,
        resize: Some(p.resize),
    };
    let mut file = write_file(&meta, &blocks, &data).context("encoding the metadata")?;

    let expected = {
        let aligned = resq_engine::AlignedBytes::new(&file);
        let mut engine = resq_engine::Engine::from_bytes(aligned.as_bytes()).map_err(|e| {
            anyhow::anyhow!("internal: the file just written does not validate: {e}")
        })?;
        engine
            .set_input(&self_test_input)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        engine.run();
        engine.output().to_vec()
    };
    resq_format::write::patch_data(&mut file, st_out, bytemuck_i8(&expected));
    Ok(file)
}

fn bytemuck_i8(v: &[i8]) -> &[u8] {
    bytemuck::cast_slice(v)
}

/// Whether a pre-quantized layer's own weight integers overflow int8 (uint8 weights with a
/// zero point, as onnxruntime's U8U8 writes them, span up to ±255): kept exactly as int16.
fn own_grid_needs_int16(c: &crate::ir::Conv) -> bool {
    let Some(steps) = &c.weight_step else {
        return false;
    };
    c.weights
        .chunks(c.filter_len())
        .zip(steps)
        .any(|(filter, &s)| s > 0.0 && filter.iter().any(|w| (w / s).abs() > 127.49))
}

/// The weight step of one output channel: `max|w| / wmax`, floored so that the channel's bias,
/// at the accumulator's scale `s_in · step`, takes at most half of `limit`.
///
/// Trained weights can leave a channel "dead", every weight ≈ 1e-34 after weight decay, beside
/// an ordinary BatchNorm bias: the plain step would put that bias at 10³⁶ accumulator units.
/// With the floor the channel's weights quantize to 0 and its bias stays exact, which is what
/// the float model computes; onnxruntime raises its weight scale for the int32 bias the same
/// way. A step below the smallest normal f32 is never used.
pub fn weight_step(max_abs: f32, wmax: f32, bias: f32, input_scale: f32, limit: f64) -> f32 {
    let plain = if max_abs > 0.0 { max_abs / wmax } else { 1.0 };
    plain.max(bias_floor(bias, input_scale, limit))
}

/// The smallest weight step at which `bias` takes at most half of the accumulator's `limit`.
fn bias_floor(bias: f32, input_scale: f32, limit: f64) -> f32 {
    ((bias.abs() as f64 / (input_scale as f64 * limit / 2.0)) as f32).max(f32::MIN_POSITIVE)
}

/// One layer; `wide_weights`: int16 weights and i64 biases (a convolution kept at int16).
fn quantize_op(
    op: &Op,
    q: &[QParams],
    wide_weights: bool,
    data: &mut DataSection,
) -> Result<fmt::Op> {
    let t = |i: usize| i as u16;
    let window = |k: [usize; 2], s: [usize; 2], p: [usize; 4]| {
        (
            k.map(|v| v as u16),
            s.map(|v| v as u16),
            p.map(|v| v as u16),
        )
    };
    Ok(match op {
        Op::Conv(c) => {
            let (qi, qo) = (q[c.input], q[c.output]);
            let cout = c.cout();
            let flen = c.filter_len();
            let wmax = if wide_weights { 32767.0 } else { 127.0 };
            let mut weights: Vec<i32> = Vec::with_capacity(c.weights.len());
            let mut bias: Vec<i64> = Vec::with_capacity(cout);
            let mut reals = Vec::with_capacity(cout + 1);
            // int8 inputs share the i32 accumulator with Σ x·w; int16 inputs accumulate in
            // i64 with an i32 bias; int16 weights have an i64 bias.
            let limit = if wide_weights {
                (1u64 << 62) as f64
            } else if qi.int16 {
                i32::MAX as f64
            } else {
                (1u64 << 30) as f64
            };
            for (oc, filter) in c.weights.chunks(flen).enumerate() {
                let max = filter.iter().fold(0.0f32, |m, w| m.max(w.abs()));
                let own = c.weight_step.as_ref().map(|s| s[oc]).filter(|&s| {
                    // The model's own grid, where its integers fit and the bias fits.
                    s > 0.0
                        && max / s <= wmax + 0.49
                        && s >= bias_floor(c.bias[oc], qi.scale, limit)
                });
                let sw = own.unwrap_or_else(|| weight_step(max, wmax, c.bias[oc], qi.scale, limit));
                let qw: Vec<i32> = filter
                    .iter()
                    .map(|w| (w / sw).round().clamp(-wmax, wmax) as i32)
                    .collect();
                let acc_scale = qi.scale as f64 * sw as f64;
                let b = (c.bias[oc] as f64 / acc_scale).round();
                let folded = b - qi.zero_point as f64 * qw.iter().map(|&w| w as f64).sum::<f64>();
                ensure!(
                    folded.abs() < limit,
                    "bias of channel {oc} does not fit the accumulator ({folded})"
                );
                bias.push(folded as i64);
                reals.push(acc_scale / qo.scale as f64);
                weights.extend(qw);
            }
            if let Some(r) = c.residual {
                reals.push(q[r].scale as f64 / qo.scale as f64);
            }
            let (mut mults, shift) = fixed_point(&reals)?;
            let residual = c.residual.map(|r| fmt::Residual {
                tensor: t(r),
                mult: mults.pop().unwrap_or(0),
            });
            let (kernel, stride, pad) = window(c.kernel, c.stride, c.pad);
            fmt::Op::Conv(fmt::Conv {
                input: t(c.input),
                output: t(c.output),
                kernel,
                stride,
                pad,
                groups: c.groups as u16,
                weights: if wide_weights {
                    data.push_i16(&weights.iter().map(|&w| w as i16).collect::<Vec<_>>())
                } else {
                    data.push_i8(&weights.iter().map(|&w| w as i8).collect::<Vec<_>>())
                },
                bias: if wide_weights {
                    data.push_i64(&bias)
                } else {
                    data.push_i32(&bias.iter().map(|&b| b as i32).collect::<Vec<_>>())
                },
                requant: fmt::Requant {
                    shift,
                    mults: data.push_i32(&mults),
                },
                residual,
                clamp: int8_clamp(c.act, qo),
            })
        }
        Op::MaxPool {
            input,
            output,
            kernel,
            stride,
            pad,
        } => {
            let (kernel, stride, pad) = window(*kernel, *stride, *pad);
            fmt::Op::MaxPool(fmt::Pool {
                input: t(*input),
                output: t(*output),
                kernel,
                stride,
                pad,
            })
        }
        Op::AvgPool {
            input,
            output,
            kernel: k,
            stride,
            pad,
            count_include_pad,
        } => {
            let area = k[0] * k[1];
            let ratio = q[*input].scale as f64 / q[*output].scale as f64;
            let reals: Vec<f64> = (1..=area).map(|n| ratio / n as f64).collect();
            let (mults, shift) = fixed_point(&reals)?;
            let (kernel, stride, pad) = window(*k, *stride, *pad);
            fmt::Op::AvgPool(fmt::AvgPool {
                window: fmt::Pool {
                    input: t(*input),
                    output: t(*output),
                    kernel,
                    stride,
                    pad,
                },
                count_include_pad: *count_include_pad,
                shift,
                mults: data.push_i32(&mults),
            })
        }
        Op::Add { a, b, output, act } => {
            let so = q[*output].scale as f64;
            let (m, shift) = fixed_point(&[q[*a].scale as f64 / so, q[*b].scale as f64 / so])?;
            fmt::Op::Add(fmt::Add {
                a: t(*a),
                b: t(*b),
                output: t(*output),
                mult_a: m[0],
                mult_b: m[1],
                shift,
                clamp: int8_clamp(*act, q[*output]),
            })
        }
        Op::Pad {
            input,
            output,
            pads,
        } => fmt::Op::Pad(fmt::Pad {
            input: t(*input),
            output: t(*output),
            pads: pads.map(|v| v as u16),
        }),
        Op::Subsample {
            input,
            output,
            start,
            step,
        } => fmt::Op::Subsample(fmt::Subsample {
            input: t(*input),
            output: t(*output),
            start: start.map(|v| v as u16),
            step: step.map(|v| v as u16),
        }),
    })
}

/// The `.resq` format's limits (resq-format's constants, which the firmware checks when it
/// reads a file), checked on the imported graph so a model beyond them is refused here, naming
/// the layer and the limit, before calibration allocates anything of that size.
pub fn check_limits(graph: &Graph) -> Result<()> {
    use resq_format::{
        MAX_DIM, MAX_DOT_LEN, MAX_KERNEL, MAX_POOL_AREA, MAX_STRIDE, MAX_TENSOR_ELEMS,
    };
    for t in &graph.tensors {
        let elems = t.shape.iter().map(|&d| d as u64).product::<u64>();
        ensure!(
            t.shape.iter().all(|&d| d > 0 && d as u64 <= MAX_DIM as u64) && elems <= MAX_TENSOR_ELEMS,
            "tensor `{}` has shape {:?} (H, W, C: {elems} values); resq's limit is {MAX_TENSOR_ELEMS} \
             values and {MAX_DIM} per side: export the model at a smaller input size",
            t.name,
            t.shape
        );
    }
    for l in &graph.layers {
        let window = |what: &str, kernel: [usize; 2], stride: [usize; 2], pad: [usize; 4]| {
            ensure!(
                kernel.iter().all(|&k| k <= MAX_KERNEL as usize),
                "layer `{}`: {what} kernel {}×{} is over resq's limit of {MAX_KERNEL}×{MAX_KERNEL}",
                l.name,
                kernel[0],
                kernel[1]
            );
            ensure!(
                stride.iter().all(|&s| s <= MAX_STRIDE as usize),
                "layer `{}`: {what} stride {:?} is over resq's limit of {MAX_STRIDE}",
                l.name,
                stride
            );
            ensure!(
                pad.iter().all(|&p| p <= MAX_KERNEL as usize),
                "layer `{}`: {what} padding {:?} is over resq's limit of {MAX_KERNEL}",
                l.name,
                pad
            );
            Ok(())
        };
        match &l.op {
            Op::Conv(c) => {
                window("convolution", c.kernel, c.stride, c.pad)?;
                let cin = graph.tensors[c.input].shape[2] / c.groups.max(1);
                let dot = (cin * c.kernel[0] * c.kernel[1]) as u64;
                ensure!(
                    dot <= MAX_DOT_LEN as u64,
                    "layer `{}`: each output sums {dot} products (kernel {}×{} × {cin} input \
                     channels per group), over resq's limit of {MAX_DOT_LEN}",
                    l.name,
                    c.kernel[0],
                    c.kernel[1]
                );
            }
            Op::MaxPool {
                kernel,
                stride,
                pad,
                ..
            } => window("max pool", *kernel, *stride, *pad)?,
            Op::AvgPool {
                kernel,
                stride,
                pad,
                ..
            } => {
                window("average pool", *kernel, *stride, *pad)?;
                ensure!(
                    (kernel[0] * kernel[1]) as u64 <= MAX_POOL_AREA as u64,
                    "layer `{}`: average pool over {}×{} cells, over resq's limit of {MAX_POOL_AREA} \
                     (a global pool of a map this large: export at a smaller input size)",
                    l.name,
                    kernel[0],
                    kernel[1]
                );
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_channel_keeps_its_bias_and_quantizes_its_weights_to_zero() {
        // Weight decay left every weight at ~1e-34; BatchNorm left a bias of -3.4.
        let (limit, input_scale, bias) = ((1u64 << 30) as f64, 0.02, -3.4f32);
        let step = weight_step(1e-34, 127.0, bias, input_scale, limit);
        let folded = (bias as f64 / (input_scale as f64 * step as f64)).round();
        assert!(folded.abs() <= limit / 2.0, "bias {folded} overflows");
        assert_eq!((1e-34f32 / step).round(), 0.0);
        // The plain step of a live channel is left alone.
        assert_eq!(
            weight_step(0.5, 127.0, bias, input_scale, limit),
            0.5 / 127.0
        );
        // A channel that is all zero with no bias stays finite.
        assert!(weight_step(0.0, 127.0, 0.0, input_scale, limit) > 0.0);
    }
}
