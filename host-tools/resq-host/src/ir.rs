//! resq's float intermediate representation: the ResNet after import and fusion, before
//! quantization. Activations are NHWC; each tensor remembers the tract outlet where the float
//! model computes the same values, so calibration and evaluation can observe it.

use tract_onnx::prelude::OutletId;

/// A float activation tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// ONNX value name (of the last fused node).
    pub name: String,
    /// `[h, w, c]`.
    pub shape: [usize; 3],
    /// Where tract computes this tensor (in the source layout, NCHW or flat).
    pub outlet: OutletId,
    /// `(scale, zero point)` given by a pre-quantized (QDQ) model; such a tensor is a
    /// quantization boundary, so nothing is fused across it.
    pub qparams: Option<(f32, i8)>,
}

impl Tensor {
    /// Element count.
    pub fn elems(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Activation fused into a producer, in real units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// None.
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `clamp(x, lo, hi)` (ReLU6 is `Clip(0, 6)`).
    Clip(f32, f32),
}

impl Activation {
    /// This activation followed by `max(x, lo)` / `min(x, hi)`.
    pub fn then_clip(self, lo: f32, hi: f32) -> Activation {
        let (a, b) = match self {
            Activation::Identity => (f32::NEG_INFINITY, f32::INFINITY),
            Activation::Relu => (0.0, f32::INFINITY),
            Activation::Clip(a, b) => (a, b),
        };
        let (a, b) = (a.max(lo), b.min(hi));
        if a == 0.0 && b == f32::INFINITY {
            Activation::Relu
        } else {
            Activation::Clip(a, b)
        }
    }
}

/// A float convolution (also fully connected and per-channel affine).
#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    /// Input tensor.
    pub input: usize,
    /// Output tensor.
    pub output: usize,
    /// `[kh, kw]`.
    pub kernel: [usize; 2],
    /// `[sh, sw]`.
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pad: [usize; 4],
    /// Groups.
    pub groups: usize,
    /// Weights `[cout][kh][kw][cin / groups]`.
    pub weights: Vec<f32>,
    /// Bias per output channel.
    pub bias: Vec<f32>,
    /// The integer grid of a pre-quantized (QDQ / QOperator) model's weights: the step of each
    /// output channel, so that `weights / step` are the model's own integers.
    pub weight_step: Option<Vec<f32>>,
    /// Residual tensor added before the activation.
    pub residual: Option<usize>,
    /// Activation after bias (and residual).
    pub act: Activation,
}

impl Conv {
    /// Output channels.
    pub fn cout(&self) -> usize {
        self.bias.len()
    }

    /// Length of one output channel's filter.
    pub fn filter_len(&self) -> usize {
        self.weights.len() / self.cout().max(1)
    }
}

/// A float layer.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Convolution with fused bias, residual and activation.
    Conv(Conv),
    /// Max pooling.
    MaxPool {
        /// Input.
        input: usize,
        /// Output.
        output: usize,
        /// Window.
        kernel: [usize; 2],
        /// Stride.
        stride: [usize; 2],
        /// `[top, left, bottom, right]`.
        pad: [usize; 4],
    },
    /// Average pooling (global pooling is a window over the whole map).
    AvgPool {
        /// Input.
        input: usize,
        /// Output.
        output: usize,
        /// Window.
        kernel: [usize; 2],
        /// Stride.
        stride: [usize; 2],
        /// `[top, left, bottom, right]`.
        pad: [usize; 4],
        /// Whether padded cells count in the divisor.
        count_include_pad: bool,
    },
    /// Residual add of two tensors, then an activation.
    Add {
        /// First operand.
        a: usize,
        /// Second operand.
        b: usize,
        /// Output.
        output: usize,
        /// Activation.
        act: Activation,
    },
    /// Zero padding `[top, bottom, left, right, c_before, c_after]`.
    Pad {
        /// Input.
        input: usize,
        /// Output.
        output: usize,
        /// Pads.
        pads: [usize; 6],
    },
    /// Strided subsampling.
    Subsample {
        /// Input.
        input: usize,
        /// Output.
        output: usize,
        /// `[h, w]` start.
        start: [usize; 2],
        /// `[h, w]` step.
        step: [usize; 2],
    },
}

impl Op {
    /// The tensor written.
    pub fn output(&self) -> usize {
        match self {
            Op::Conv(c) => c.output,
            Op::MaxPool { output, .. }
            | Op::AvgPool { output, .. }
            | Op::Add { output, .. }
            | Op::Pad { output, .. }
            | Op::Subsample { output, .. } => *output,
        }
    }

    /// The activation applied to the output (identity for ops without one).
    pub fn activation(&self) -> Activation {
        match self {
            Op::Conv(c) => c.act,
            Op::Add { act, .. } => *act,
            _ => Activation::Identity,
        }
    }
}

/// A named layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// ONNX node name (the last node fused into it).
    pub name: String,
    /// What it computes.
    pub op: Op,
}

/// The imported float graph.
#[derive(Clone, Debug)]
pub struct Graph {
    /// Model name.
    pub name: String,
    /// Tensors.
    pub tensors: Vec<Tensor>,
    /// Layers in execution order.
    pub layers: Vec<Layer>,
    /// Input tensor.
    pub input: usize,
    /// Output tensor (logits).
    pub output: usize,
    /// Whether a softmax follows the output.
    pub softmax: bool,
}
