//! Runs a validated `.resq` int8 graph.
//!
//! All activation memory is planned when the engine is built: one arena, with each tensor at
//! an offset chosen from tensor lifetimes so tensors that are never live together share
//! bytes. [`Engine::run`] then allocates nothing.
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

mod plan;

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

pub use plan::{plan_arena, ArenaPlan};
use resq_format::{ChannelOrder, FormatError, Model, Op};
use resq_kernels::{reference, Epilogue, Geometry, ResidualOperand};

/// A file image held in 8-byte aligned memory, so the model's i32 data can be borrowed in place.
#[derive(Clone, Debug, Default)]
pub struct AlignedBytes {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBytes {
    /// Copies `bytes` into aligned storage.
    pub fn new(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        let dst: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
        dst[..bytes.len()].copy_from_slice(bytes);
        AlignedBytes {
            words,
            len: bytes.len(),
        }
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &bytemuck::cast_slice::<u64, u8>(&self.words)[..self.len]
    }
}

/// Why an engine could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// The model file was refused.
    Format(FormatError),
    /// An input buffer has the wrong length.
    InputLength {
        /// Expected bytes.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
}

impl core::fmt::Display for EngineError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EngineError::Format(e) => e.fmt(f),
            EngineError::InputLength { expected, actual } => write!(
                f,
                "input has {actual} bytes, the model expects {expected} (height · width · channels of its input)"
            ),
        }
    }
}

impl core::error::Error for EngineError {}

impl From<FormatError> for EngineError {
    fn from(e: FormatError) -> Self {
        EngineError::Format(e)
    }
}

/// One model, its arena, and nothing else: `run` reads the input region and writes the output region.
pub struct Engine<'m> {
    model: Model<'m>,
    arena: Vec<i8>,
    regions: Vec<Range<usize>>,
}

impl<'m> Engine<'m> {
    /// Plans memory for a validated model.
    pub fn new(model: Model<'m>) -> Self {
        let plan = plan_arena(&model);
        Engine {
            arena: vec![0; plan.size],
            regions: plan.regions,
            model,
        }
    }

    /// Parses, validates and plans a model file in one step.
    pub fn from_bytes(file: &'m [u8]) -> Result<Self, EngineError> {
        Ok(Self::new(Model::parse(file)?))
    }

    /// The model.
    pub fn model(&self) -> &Model<'m> {
        &self.model
    }

    /// Bytes of activation memory (the arena).
    pub fn arena_bytes(&self) -> usize {
        self.arena.len()
    }

    /// The input tensor, NHWC int8, to be filled before [`Engine::run`].
    pub fn input_mut(&mut self) -> &mut [i8] {
        let r = self.regions[self.model.meta.input.tensor as usize].clone();
        &mut self.arena[r]
    }

    /// Fills the input from 8-bit pixels, `[h][w][c]` in the model's channel order, through
    /// the file's lookup table (normalisation and quantization in one integer step).
    pub fn set_input_pixels(&mut self, pixels: &[u8]) -> Result<(), EngineError> {
        let lut = self.model.i8s(self.model.meta.input.lut);
        let channels = self.model.input().shape[3] as usize;
        let input = self.input_mut();
        if pixels.len() != input.len() {
            return Err(EngineError::InputLength {
                expected: input.len(),
                actual: pixels.len(),
            });
        }
        for (i, (q, &p)) in input.iter_mut().zip(pixels).enumerate() {
            *q = lut[(i % channels) * 256 + p as usize];
        }
        Ok(())
    }

    /// Copies an already-quantized input.
    pub fn set_input(&mut self, input: &[i8]) -> Result<(), EngineError> {
        let dst = self.input_mut();
        if input.len() != dst.len() {
            return Err(EngineError::InputLength {
                expected: dst.len(),
                actual: input.len(),
            });
        }
        dst.copy_from_slice(input);
        Ok(())
    }

    /// The output tensor (int8 logits) after [`Engine::run`].
    pub fn output(&self) -> &[i8] {
        &self.arena[self.regions[self.model.meta.output.tensor as usize].clone()]
    }

    /// Any tensor's current contents (valid only while that tensor is live; for debugging and reports).
    pub fn tensor(&self, index: u16) -> &[i8] {
        &self.arena[self.regions[index as usize].clone()]
    }

    /// Dequantized outputs: logits, or probabilities when the source model ends in a softmax.
    pub fn scores(&self, out: &mut [f32]) {
        let t = self.model.output();
        for (o, &q) in out.iter_mut().zip(self.output()) {
            *o = t.scale * (q as f32 - t.zero_point as f32);
        }
        if self.model.meta.output.softmax {
            softmax(out);
        }
    }

    /// Runs the self-test vector stored in the file; `true` when the output matches bit for bit.
    pub fn self_test(&mut self) -> bool {
        let st = self.model.meta.self_test;
        let input = self.model.i8s(st.input);
        let expected = self.model.i8s(st.expected);
        if self.set_input(input).is_err() {
            return false;
        }
        self.run();
        self.output() == expected
    }

    /// Whether the model takes one grey channel.
    pub fn is_grey(&self) -> bool {
        self.model.meta.input.channels == ChannelOrder::Grey
    }

    /// Runs every layer once.
    pub fn run(&mut self) {
        for i in 0..self.model.meta.layers.len() {
            self.run_layer(i);
        }
    }

    /// Runs layer `i` alone (the caller runs layers in order).
    pub fn run_layer(&mut self, i: usize) {
        let op = self.model.meta.layers[i].op;
        let model = &self.model;
        let out_range = self.regions[op.output() as usize].clone();
        let [in0, in1] = op
            .inputs()
            .map(|t| t.map(|t| self.regions[t as usize].clone()));
        let (output, inputs) = split_arena(&mut self.arena, out_range, [in0, in1]);
        let [x, r] = inputs;
        let x = x.unwrap_or(&[]);
        match op {
            Op::Conv(c) => {
                let xt = model.tensor(c.input);
                let yt = model.tensor(c.output);
                let residual = c.residual.map(|res| ResidualOperand {
                    values: r.unwrap_or(&[]),
                    zero_point: model.tensor(res.tensor).zero_point,
                    mult: res.mult,
                });
                let ep = Epilogue {
                    bias: model.i32s(c.bias),
                    mults: model.i32s(c.requant.mults),
                    shift: c.requant.shift,
                    zero_point: yt.zero_point,
                    clamp: c.clamp,
                    residual,
                };
                let geo = geometry(xt.shape, yt.shape, c.kernel, c.stride, c.pad);
                reference::conv2d(
                    &geo,
                    c.groups as usize,
                    x,
                    xt.zero_point,
                    model.i8s(c.weights),
                    &ep,
                    output,
                );
            }
            Op::MaxPool(p) => {
                let geo = geometry(
                    model.tensor(p.input).shape,
                    model.tensor(p.output).shape,
                    p.kernel,
                    p.stride,
                    p.pad,
                );
                reference::max_pool(&geo, x, output);
            }
            Op::AvgPool(a) => {
                let p = a.window;
                let (xt, yt) = (model.tensor(p.input), model.tensor(p.output));
                let geo = geometry(xt.shape, yt.shape, p.kernel, p.stride, p.pad);
                reference::avg_pool(
                    &geo,
                    a.count_include_pad,
                    x,
                    xt.zero_point,
                    model.i32s(a.mults),
                    a.shift,
                    yt.zero_point,
                    output,
                );
            }
            Op::Add(a) => {
                fn operand<'a>(
                    model: &Model,
                    t: u16,
                    values: &'a [i8],
                    mult: i32,
                ) -> reference::AddOperand<'a> {
                    reference::AddOperand {
                        values,
                        zero_point: model.tensor(t).zero_point,
                        mult,
                    }
                }
                reference::add(
                    operand(model, a.a, x, a.mult_a),
                    operand(model, a.b, r.unwrap_or(&[]), a.mult_b),
                    a.shift,
                    model.tensor(a.output).zero_point,
                    a.clamp,
                    output,
                );
            }
            Op::Pad(p) => {
                let xt = model.tensor(p.input);
                reference::pad(
                    hwc(xt.shape),
                    p.pads.map(|v| v as usize),
                    xt.zero_point,
                    x,
                    output,
                );
            }
            Op::Subsample(s) => {
                let (xt, yt) = (model.tensor(s.input), model.tensor(s.output));
                let [oh, ow, _] = hwc(yt.shape);
                reference::subsample(
                    hwc(xt.shape),
                    [oh, ow],
                    s.start.map(usize::from),
                    s.step.map(usize::from),
                    x,
                    output,
                );
            }
        }
    }
}

fn hwc(shape: [u32; 4]) -> [usize; 3] {
    [shape[1] as usize, shape[2] as usize, shape[3] as usize]
}

fn geometry(
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
fn split_arena(
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

/// In-place softmax.
pub fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = libm::expf(*x - max);
        sum += *x;
    }
    for x in v.iter_mut() {
        *x /= sum;
    }
}
