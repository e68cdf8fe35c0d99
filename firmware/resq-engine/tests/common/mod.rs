//! Building small `.resq` models in tests, and evaluating them layer by layer with the
//! reference kernels on separately allocated buffers (no arena, no aliasing).
#![allow(dead_code)]

use proptest::prelude::*;
use resq_engine::AlignedBytes;
use resq_format::write::{DataSection, TinyModel};
use resq_format::{
    Add, AvgPool, ChannelOrder, Conv, Layout, Model, Op, Pad, Pool, Requant, Residual, Subsample,
};
use resq_kernels::reference::{self, AddOperand};
use resq_kernels::{Epilogue, Geometry, ResidualOperand};

/// An activation tensor: `[h, w, c]` and its quantization.
#[derive(Clone, Copy, Debug)]
pub struct TensorSpec {
    pub shape: [usize; 3],
    pub scale: f32,
    pub zero_point: i8,
}

impl TensorSpec {
    pub fn elems(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A convolution with its arrays owned by the test.
#[derive(Clone, Debug)]
pub struct ConvLayer {
    pub input: u16,
    pub output: u16,
    pub kernel: [u16; 2],
    pub stride: [u16; 2],
    /// `[top, left, bottom, right]`.
    pub pad: [u16; 4],
    pub groups: u16,
    pub weights: Vec<i8>,
    /// Folded bias.
    pub bias: Vec<i32>,
    pub mults: Vec<i32>,
    pub shift: u8,
    pub clamp: [i8; 2],
    /// Residual tensor and its multiplier.
    pub residual: Option<(u16, i32)>,
}

/// Average pooling with its multipliers owned by the test.
#[derive(Clone, Debug)]
pub struct AvgPoolLayer {
    pub window: Pool,
    pub count_include_pad: bool,
    pub mults: Vec<i32>,
    pub shift: u8,
}

/// One layer as the test describes it.
#[derive(Clone, Debug)]
pub enum LayerSpec {
    Conv(ConvLayer),
    MaxPool(Pool),
    AvgPool(AvgPoolLayer),
    Add(Add),
    Pad(Pad),
    Subsample(Subsample),
}

impl LayerSpec {
    pub fn output(&self) -> u16 {
        match self {
            LayerSpec::Conv(c) => c.output,
            LayerSpec::MaxPool(p) => p.output,
            LayerSpec::AvgPool(a) => a.window.output,
            LayerSpec::Add(a) => a.output,
            LayerSpec::Pad(p) => p.output,
            LayerSpec::Subsample(s) => s.output,
        }
    }

    /// Tensors read, without duplicates removed.
    pub fn inputs(&self) -> Vec<u16> {
        match self {
            LayerSpec::Conv(c) => [Some(c.input), c.residual.map(|r| r.0)]
                .into_iter()
                .flatten()
                .collect(),
            LayerSpec::MaxPool(p) => vec![p.input],
            LayerSpec::AvgPool(a) => vec![a.window.input],
            LayerSpec::Add(a) => vec![a.a, a.b],
            LayerSpec::Pad(p) => vec![p.input],
            LayerSpec::Subsample(s) => vec![s.input],
        }
    }

    /// The metadata op, with this layer's arrays appended to `data`.
    fn op(&self, data: &mut DataSection) -> Op {
        match self {
            LayerSpec::Conv(c) => Op::Conv(Conv {
                input: c.input,
                output: c.output,
                kernel: c.kernel,
                stride: c.stride,
                pad: c.pad,
                groups: c.groups,
                weights: data.push_i8(&c.weights),
                bias: data.push_i32(&c.bias),
                requant: Requant {
                    shift: c.shift,
                    mults: data.push_i32(&c.mults),
                },
                residual: c.residual.map(|(tensor, mult)| Residual { tensor, mult }),
                clamp: c.clamp,
            }),
            LayerSpec::MaxPool(p) => Op::MaxPool(*p),
            LayerSpec::AvgPool(a) => Op::AvgPool(AvgPool {
                window: a.window,
                count_include_pad: a.count_include_pad,
                shift: a.shift,
                mults: data.push_i32(&a.mults),
            }),
            LayerSpec::Add(a) => Op::Add(*a),
            LayerSpec::Pad(p) => Op::Pad(*p),
            LayerSpec::Subsample(s) => Op::Subsample(*s),
        }
    }
}

/// A whole model as the test describes it.
#[derive(Clone, Debug)]
pub struct Net {
    pub tensors: Vec<TensorSpec>,
    pub layers: Vec<LayerSpec>,
    pub input: u16,
    pub output: u16,
    pub channels: ChannelOrder,
    /// `[channel][pixel]`.
    pub lut: Vec<i8>,
    pub softmax: bool,
}

impl Net {
    /// A net with only its input tensor (index 0), `[h, w, 3]` or `[h, w, 1]` for grey, and a
    /// LUT that differs per channel.
    pub fn new(channels: ChannelOrder, hw: [usize; 2], scale: f32, zero_point: i8) -> Self {
        let c = if channels == ChannelOrder::Grey { 1 } else { 3 };
        Net {
            tensors: vec![TensorSpec {
                shape: [hw[0], hw[1], c],
                scale,
                zero_point,
            }],
            layers: Vec::new(),
            input: 0,
            output: 0,
            channels,
            lut: (0..c * 256).map(|i| test_lut(i / 256, i % 256)).collect(),
            softmax: false,
        }
    }

    /// Adds a tensor, returning its index.
    pub fn tensor(&mut self, shape: [usize; 3], scale: f32, zero_point: i8) -> u16 {
        self.tensors.push(TensorSpec {
            shape,
            scale,
            zero_point,
        });
        (self.tensors.len() - 1) as u16
    }

    /// Appends a layer; the last layer's output becomes the graph output.
    pub fn layer(&mut self, layer: LayerSpec) {
        self.output = layer.output();
        self.layers.push(layer);
    }

    pub fn input_len(&self) -> usize {
        self.tensors[self.input as usize].elems()
    }

    pub fn output_len(&self) -> usize {
        self.tensors[self.output as usize].elems()
    }

    /// The file image with an all-zero self-test.
    pub fn file(&self) -> Vec<u8> {
        self.file_with_self_test(&vec![0; self.input_len()], &vec![0; self.output_len()])
    }

    /// The file image with the given self-test input and expected output.
    pub fn file_with_self_test(&self, input: &[i8], expected: &[i8]) -> Vec<u8> {
        let tensor_names: Vec<String> = (0..self.tensors.len()).map(|i| format!("t{i}")).collect();
        let layer_names: Vec<String> = (0..self.layers.len())
            .map(|i| format!("layer{i}"))
            .collect();
        let mut m = TinyModel::new("test", "resq-engine tests");
        for (t, name) in self.tensors.iter().zip(&tensor_names) {
            m.tensor(name, t.shape.map(|d| d as u32), t.scale, t.zero_point);
        }
        m.input(self.input, Layout::Nhwc, self.channels, &self.lut)
            .output(self.output, self.softmax);
        for (l, name) in self.layers.iter().zip(&layer_names) {
            let op = l.op(m.data());
            m.layer(name, op);
        }
        m.self_test(input, expected);
        m.write().expect("metadata encodes")
    }

    /// Every tensor after running the net on `input` with the reference kernels, each in its
    /// own buffer (tensors no layer writes stay empty).
    pub fn evaluate(&self, input: &[i8]) -> Vec<Vec<i8>> {
        let mut values: Vec<Vec<i8>> = vec![Vec::new(); self.tensors.len()];
        values[self.input as usize] = input.to_vec();
        for layer in &self.layers {
            let out_t = self.tensors[layer.output() as usize];
            let mut out = vec![0x55; out_t.elems()];
            self.evaluate_layer(layer, &values, &mut out);
            values[layer.output() as usize] = out;
        }
        values
    }

    fn evaluate_layer(&self, layer: &LayerSpec, values: &[Vec<i8>], out: &mut [i8]) {
        let t = |i: u16| self.tensors[i as usize];
        let v = |i: u16| values[i as usize].as_slice();
        match layer {
            LayerSpec::Conv(c) => {
                let geo = geometry(t(c.input), t(c.output), c.kernel, c.stride, c.pad);
                let ep = Epilogue {
                    bias: &c.bias,
                    mults: &c.mults,
                    shift: c.shift,
                    zero_point: t(c.output).zero_point,
                    clamp: c.clamp,
                    residual: c.residual.map(|(r, mult)| ResidualOperand {
                        values: v(r),
                        zero_point: t(r).zero_point,
                        mult,
                    }),
                };
                let (zp, groups) = (t(c.input).zero_point, c.groups as usize);
                reference::conv2d(&geo, groups, v(c.input), zp, &c.weights, &ep, out);
            }
            LayerSpec::MaxPool(p) => {
                let geo = geometry(t(p.input), t(p.output), p.kernel, p.stride, p.pad);
                reference::max_pool(&geo, v(p.input), out);
            }
            LayerSpec::AvgPool(a) => {
                let p = a.window;
                let geo = geometry(t(p.input), t(p.output), p.kernel, p.stride, p.pad);
                reference::avg_pool(
                    &geo,
                    a.count_include_pad,
                    v(p.input),
                    t(p.input).zero_point,
                    &a.mults,
                    a.shift,
                    t(p.output).zero_point,
                    out,
                );
            }
            LayerSpec::Add(a) => {
                let operand = |i: u16, mult| AddOperand {
                    values: v(i),
                    zero_point: t(i).zero_point,
                    mult,
                };
                let zp = t(a.output).zero_point;
                let (x, y) = (operand(a.a, a.mult_a), operand(a.b, a.mult_b));
                reference::add(x, y, a.shift, zp, a.clamp, out);
            }
            LayerSpec::Pad(p) => {
                let x = t(p.input);
                let pads = p.pads.map(usize::from);
                reference::pad(x.shape, pads, x.zero_point, v(p.input), out);
            }
            LayerSpec::Subsample(s) => {
                let [oh, ow, _] = t(s.output).shape;
                let (start, step) = (s.start.map(usize::from), s.step.map(usize::from));
                reference::subsample(t(s.input).shape, [oh, ow], start, step, v(s.input), out);
            }
        }
    }
}

/// A LUT entry that differs between channels, so a channel mix-up shows.
pub fn test_lut(channel: usize, pixel: usize) -> i8 {
    ((pixel * (2 * channel + 1) + 85 * channel) % 256) as u8 as i8
}

pub fn geometry(
    input: TensorSpec,
    output: TensorSpec,
    kernel: [u16; 2],
    stride: [u16; 2],
    pad: [u16; 4],
) -> Geometry {
    Geometry {
        input: input.shape,
        output: output.shape,
        kernel: kernel.map(usize::from),
        stride: stride.map(usize::from),
        pad: [pad[0] as usize, pad[1] as usize],
    }
}

/// Copies a file image into aligned memory, as the firmware loads it.
pub fn aligned(file: &[u8]) -> AlignedBytes {
    AlignedBytes::new(file)
}

/// Parses a file image held in aligned memory.
pub fn parse(bytes: &AlignedBytes) -> Model<'_> {
    Model::parse(bytes.as_bytes()).expect("test model validates")
}

/// Deterministic pseudo-random numbers (xorshift64*) for weights, from a proptest seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }

    pub fn i8s(&mut self, len: usize, lo: i8, hi: i8) -> Vec<i8> {
        (0..len)
            .map(|_| self.range(lo as i64, hi as i64) as i8)
            .collect()
    }

    pub fn i32s(&mut self, len: usize, lo: i32, hi: i32) -> Vec<i32> {
        (0..len)
            .map(|_| self.range(lo as i64, hi as i64) as i32)
            .collect()
    }
}

/// A convolution from `input` to a new tensor with `cout` channels, `kernel × kernel` with
/// "same" padding (odd kernels keep the spatial size), random weights and requantization
/// that keeps most outputs in range.
pub fn same_conv(
    net: &mut Net,
    rng: &mut Rng,
    input: u16,
    kernel: u16,
    cout: usize,
    residual: Option<u16>,
) -> u16 {
    let x = net.tensors[input as usize];
    let [h, w, cin] = x.shape;
    let output = net.tensor([h, w, cout], 0.05, rng.range(-20, 20) as i8);
    let p = (kernel - 1) / 2;
    let dot = kernel as usize * kernel as usize * cin;
    net.layer(LayerSpec::Conv(ConvLayer {
        input,
        output,
        kernel: [kernel; 2],
        stride: [1, 1],
        pad: [p; 4],
        groups: 1,
        weights: rng.i8s(cout * dot, -127, 127),
        bias: rng.i32s(cout, -5000, 5000),
        mults: rng.i32s(cout, 1 << 8, 1 << 12),
        shift: 20,
        clamp: if rng.range(0, 1) == 0 {
            [i8::MIN, i8::MAX]
        } else {
            [net.tensors[output as usize].zero_point, i8::MAX]
        },
        residual: residual.map(|r| (r, rng.range(1 << 18, 1 << 20) as i32)),
    }));
    output
}

/// Global average pooling of `input` into a new `[1, 1, c]` tensor.
pub fn global_avg_pool(net: &mut Net, input: u16) -> u16 {
    let [h, w, c] = net.tensors[input as usize].shape;
    let output = net.tensor([1, 1, c], 0.05, 3);
    net.layer(LayerSpec::AvgPool(AvgPoolLayer {
        window: Pool {
            input,
            output,
            kernel: [h as u16, w as u16],
            stride: [1, 1],
            pad: [0; 4],
        },
        count_include_pad: false,
        mults: (1..=(h * w) as i32).map(|n| (1 << 20) / n).collect(),
        shift: 20,
    }));
    output
}

/// One step of a random graph. Indices pick among the tensors that exist so far.
#[derive(Clone, Debug)]
pub enum Step {
    /// A convolution of any earlier tensor to a new tensor with `channels` channels.
    Conv {
        from: usize,
        kernel: u16,
        channels: usize,
    },
    /// Add of an earlier tensor and another (possibly the same) one with its shape.
    Add { a: usize, b: usize },
    /// A convolution with a fused residual of any earlier tensor (a skip connection).
    ConvResidual { from: usize, residual: usize },
}

pub fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (any::<usize>(), prop_oneof![Just(1u16), Just(3)], 1..=24usize)
            .prop_map(|(from, kernel, channels)| Step::Conv { from, kernel, channels }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Step::Add { a, b }),
        1 => (any::<usize>(), any::<usize>())
            .prop_map(|(from, residual)| Step::ConvResidual { from, residual }),
    ]
}

/// A random DAG: spatial size `hw × hw`, steps, and a seed for the weights.
pub fn random_dag() -> impl Strategy<Value = (usize, Vec<Step>, u64)> {
    (
        1..=4usize,
        proptest::collection::vec(step(), 1..=14),
        any::<u64>(),
    )
}

/// Builds the net for a random DAG: every layer keeps the spatial size, and a global average
/// pool of the last tensor is the output.
pub fn build_dag(hw: usize, steps: &[Step], seed: u64) -> Net {
    let mut rng = Rng::new(seed);
    let mut net = Net::new(ChannelOrder::Rgb, [hw, hw], 0.02, -7);
    for step in steps {
        let n = net.tensors.len();
        match *step {
            Step::Conv {
                from,
                kernel,
                channels,
            } => {
                same_conv(
                    &mut net,
                    &mut rng,
                    (from % n) as u16,
                    kernel,
                    channels,
                    None,
                );
            }
            Step::Add { a, b } => {
                let a = a % n;
                let shape = net.tensors[a].shape;
                let same: Vec<usize> = (0..n).filter(|&t| net.tensors[t].shape == shape).collect();
                let b = same[b % same.len()];
                let output = net.tensor(shape, 0.05, rng.range(-20, 20) as i8);
                net.layer(LayerSpec::Add(Add {
                    a: a as u16,
                    b: b as u16,
                    output,
                    mult_a: rng.range(1 << 18, 1 << 20) as i32,
                    mult_b: rng.range(1 << 18, 1 << 20) as i32,
                    shift: 20,
                    clamp: [i8::MIN, i8::MAX],
                }));
            }
            Step::ConvResidual { from, residual } => {
                let r = (residual % n) as u16;
                let cout = net.tensors[r as usize].shape[2];
                same_conv(&mut net, &mut rng, (from % n) as u16, 1, cout, Some(r));
            }
        }
    }
    let last = net.output;
    global_avg_pool(&mut net, last);
    net
}
