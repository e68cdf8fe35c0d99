//! The metadata block: graph, tensors, quantization, preprocessing, labels, provenance.
//!
//! Encoded with postcard. Strings borrow from the file; bulk arrays (weights, biases,
//! multipliers, lookup tables, self-test vectors) live in the raw data section and are named
//! here by [`DataRef`], because postcard would varint-encode them and they could not be
//! borrowed in place.

use serde::{Deserialize, Serialize};

/// A byte range in the data section. i32 ranges are 4-byte aligned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataRef {
    /// Offset from the start of the data section.
    pub offset: u32,
    /// Length in bytes.
    pub len: u32,
}

/// Everything about the model except the bulk data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metadata<'a> {
    /// Model name (the ONNX file's stem by default).
    pub name: &'a str,
    /// The input tensor and how camera pixels become its int8 values.
    pub input: InputSpec,
    /// The output tensor.
    pub output: OutputSpec,
    /// Activation tensors, NHWC with N = 1.
    #[serde(borrow)]
    pub tensors: heapless::Vec<TensorDesc<'a>, { crate::MAX_TENSORS }>,
    /// Layers in execution order; each writes one tensor.
    #[serde(borrow)]
    pub layers: heapless::Vec<Layer<'a>, { crate::MAX_LAYERS }>,
    /// Class names, one per line; empty when the model came without labels.
    pub labels: &'a str,
    /// Where the file came from.
    #[serde(borrow)]
    pub provenance: Provenance<'a>,
    /// One input and the int8 output this file must produce for it.
    pub self_test: SelfTest,
}

/// Memory layout of the source model's input (the engine itself is always NHWC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// `[N, C, H, W]`, PyTorch / ONNX default.
    Nchw,
    /// `[N, H, W, C]`, TensorFlow / Keras.
    Nhwc,
}

/// Channel order the model expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelOrder {
    /// Red, green, blue.
    Rgb,
    /// Blue, green, red (OpenCV / Caffe-trained models).
    Bgr,
    /// One grey channel (luma).
    Grey,
}

/// How an image of any size becomes the model's input, with `x = (pixel − mean) / std`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Index of the input tensor.
    pub tensor: u16,
    /// Layout of the source model's input.
    pub layout: Layout,
    /// Channel order of the source model's input.
    pub channels: ChannelOrder,
    /// Per-channel mean, in pixel units 0..255, in the model's channel order.
    pub mean: [f32; 3],
    /// Per-channel standard deviation, in pixel units.
    pub std: [f32; 3],
    /// Lookup table `[channel][pixel value]` → quantized input value: the whole
    /// normalisation + quantization as 256 · C int8 bytes, so preprocessing is integer-only.
    pub lut: DataRef,
}

/// The model's result tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputSpec {
    /// Index of the output tensor (int8 logits, shape `[1, 1, 1, classes]`).
    pub tensor: u16,
    /// Whether the source model ends in a softmax (applied in f32 to the dequantized logits).
    pub softmax: bool,
}

/// An activation tensor: shape and per-tensor asymmetric quantization, real = scale · (q − zero_point).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorDesc<'a> {
    /// Name of the ONNX value it stands for.
    pub name: &'a str,
    /// `[N, H, W, C]`, N = 1.
    pub shape: [u32; 4],
    /// Quantization step.
    pub scale: f32,
    /// Quantized value of real zero.
    pub zero_point: i8,
}

impl TensorDesc<'_> {
    /// Number of elements.
    pub fn elems(&self) -> usize {
        self.shape.iter().map(|&d| d as usize).product()
    }
}

/// Format version 2: the activation tensors kept at int16 (`resq convert --keep-int16` /
/// `--auto-fallback`). Encoded with postcard right after [`Metadata`], inside `meta_len`;
/// version 1 files have no such block (every tensor int8).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Precision {
    /// The int16 tensors, in any order, each at most once.
    pub int16: heapless::Vec<Int16Tensor, { crate::MAX_TENSORS }>,
    /// Convolution layers (by index) whose weights are int16 (symmetric per channel, −32767..
    /// =32767, 2 bytes each) and whose biases are i64 (8 bytes each, 16-aligned).
    pub int16_weights: heapless::Vec<u16, { crate::MAX_LAYERS }>,
}

/// An activation tensor stored as int16: symmetric (its [`TensorDesc::zero_point`] is 0),
/// `real = scale · q`, `q` in −32768..=32767.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Int16Tensor {
    /// Tensor index.
    pub tensor: u16,
    /// Clamp `[min, max]` of the layer that writes it (replaces that layer's int8 `clamp`,
    /// which must be the full `[−128, 127]`).
    pub clamp: [i16; 2],
}

/// Format version 3: how a frame of any size is resized before the centre crop to the model
/// input. Encoded with postcard right after [`Precision`], inside `meta_len`; version 1 and 2
/// files have no such block and read as [`Resize::shorter_side`] of the input (the only recipe
/// they knew).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resize {
    /// How the frame is scaled to `size`.
    pub mode: ResizeMode,
    /// `[width, height]` the frame is resized to before the model input's centre crop; each
    /// at least the input's and at most [`crate::MAX_IMAGE_DIM`].
    pub size: [u32; 2],
}

/// How a frame is scaled to [`Resize::size`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResizeMode {
    /// Aspect ratio kept, scaled so the frame just covers `size`: for a square `size` the
    /// shorter side becomes `size` (torchvision's `Resize(int)`); the longer side overhangs
    /// and the crop cuts it.
    Shorter,
    /// Each side scaled straight to `size`, aspect ratio not kept (Keras / TFLite).
    Squash,
}

impl Resize {
    /// Shorter side (aspect kept) to the `width`×`height` input itself, then the centre: the
    /// recipe of version 1 and 2 files and the default of `resq convert`.
    pub fn shorter_side(width: u32, height: u32) -> Resize {
        Resize {
            mode: ResizeMode::Shorter,
            size: [width, height],
        }
    }
}

impl ResizeMode {
    /// Postcard tag of the mode (its variant index).
    pub fn tag(self) -> u32 {
        match self {
            ResizeMode::Shorter => 0,
            ResizeMode::Squash => 1,
        }
    }

    /// The mode of a postcard tag, `None` for a tag this reader does not know.
    pub fn from_tag(tag: u32) -> Option<ResizeMode> {
        match tag {
            0 => Some(ResizeMode::Shorter),
            1 => Some(ResizeMode::Squash),
            _ => None,
        }
    }

    /// Lower-case name, as `resq convert --resize-mode` takes it.
    pub fn name(self) -> &'static str {
        match self {
            ResizeMode::Shorter => "shorter",
            ResizeMode::Squash => "squash",
        }
    }
}

/// Provenance: enough to tell which model, which calibration and which tool made a file.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provenance<'a> {
    /// File name of the source model.
    pub source_name: &'a str,
    /// SHA-256 of the source model file.
    pub source_sha256: [u8; 32],
    /// SHA-256 over the calibration set (sorted file names and contents).
    pub calib_digest: [u8; 32],
    /// Number of calibration images.
    pub calib_images: u32,
    /// Calibration method, e.g. `minmax` or `percentile`.
    pub method: &'a str,
    /// The method's parameter (the percentile for `percentile`, else 0).
    pub method_param: f32,
    /// Tool and version, e.g. `resq 0.1.0`.
    pub tool: &'a str,
}

/// A self-test vector: int8 input and the exact int8 output expected for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfTest {
    /// Input tensor bytes (i8).
    pub input: DataRef,
    /// Expected output tensor bytes (i8).
    pub expected: DataRef,
}

/// One layer of the int8 graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer<'a> {
    /// Name of the ONNX node it came from (the last one, when nodes were fused).
    pub name: &'a str,
    /// What it computes.
    pub op: Op,
}

/// The operations of an int8 ResNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Convolution (also fully-connected layers and per-channel affine ops) with fused bias,
    /// requantization, optional residual add and clamp.
    Conv(Conv),
    /// Max pooling; output quantization equals the input's.
    MaxPool(Pool),
    /// Average pooling (also global average pooling) with requantization.
    AvgPool(AvgPool),
    /// Residual add of two tensors with requantization and clamp.
    Add(Add),
    /// Zero padding in H, W and C (real zero, i.e. the zero point); quantization unchanged.
    Pad(Pad),
    /// Strided subsampling in H and W; quantization unchanged.
    Subsample(Subsample),
}

/// Integer requantization: `out = zp_out + round_half_up(acc · mult[c] / 2^shift)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requant {
    /// Right shift, 1..=62, shared by the layer's channels.
    pub shift: u8,
    /// Per-output-channel i32 multipliers (≥ 0).
    pub mults: DataRef,
}

/// The residual operand fused into a convolution's epilogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Residual {
    /// Tensor added to the convolution's output (same shape as the output).
    pub tensor: u16,
    /// Multiplier of `(r − zp_r)` at the layer's shift.
    pub mult: i32,
}

/// Convolution. See `SPEC.md` for the exact arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conv {
    /// Input tensor.
    pub input: u16,
    /// Output tensor.
    pub output: u16,
    /// Kernel `[height, width]`.
    pub kernel: [u16; 2],
    /// Stride `[height, width]`.
    pub stride: [u16; 2],
    /// Zero padding `[top, left, bottom, right]`.
    pub pad: [u16; 4],
    /// Groups: 1 for a plain convolution, C for depthwise.
    pub groups: u16,
    /// i8 weights, `[cout][kh][kw][cin / groups]`, symmetric (zero point 0).
    pub weights: DataRef,
    /// i32 bias per output channel with the input zero point folded in:
    /// `bias[c] = round(b[c] / (s_in · s_w[c])) − zp_in · Σ w[c]`.
    pub bias: DataRef,
    /// Requantization to the output tensor.
    pub requant: Requant,
    /// Residual add fused into the epilogue.
    pub residual: Option<Residual>,
    /// Output clamp `[min, max]` (a fused ReLU / ReLU6 raises the min / lowers the max).
    pub clamp: [i8; 2],
}

/// Max pooling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// Input tensor.
    pub input: u16,
    /// Output tensor.
    pub output: u16,
    /// Window `[height, width]`.
    pub kernel: [u16; 2],
    /// Stride `[height, width]`.
    pub stride: [u16; 2],
    /// Padding `[top, left, bottom, right]`; padded cells never win.
    pub pad: [u16; 4],
}

/// Average pooling: `out = zp_out + round_half_up(Σ (x − zp_in) · mults[n − 1] / 2^shift)`
/// where n is the number of cells counted in the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvgPool {
    /// Window, stride and padding.
    pub window: Pool,
    /// Whether padded cells count in n (ONNX `count_include_pad`).
    pub count_include_pad: bool,
    /// Right shift, 1..=62.
    pub shift: u8,
    /// i32 multiplier for each count n = 1..=kh·kw.
    pub mults: DataRef,
}

/// Elementwise add: `out = clamp(zp_out + round_half_up(((a − zp_a)·mult_a + (b − zp_b)·mult_b) / 2^shift))`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Add {
    /// First operand.
    pub a: u16,
    /// Second operand (same shape).
    pub b: u16,
    /// Output tensor.
    pub output: u16,
    /// Multiplier of `a`.
    pub mult_a: i32,
    /// Multiplier of `b`.
    pub mult_b: i32,
    /// Right shift, 1..=62.
    pub shift: u8,
    /// Output clamp `[min, max]`.
    pub clamp: [i8; 2],
}

/// Zero padding (with the input's zero point, i.e. real 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pad {
    /// Input tensor.
    pub input: u16,
    /// Output tensor.
    pub output: u16,
    /// `[top, bottom, left, right, channels before, channels after]`.
    pub pads: [u16; 6],
}

/// Strided subsampling: `out[h][w] = in[start_h + h·step_h][start_w + w·step_w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subsample {
    /// Input tensor.
    pub input: u16,
    /// Output tensor.
    pub output: u16,
    /// First row and column taken.
    pub start: [u16; 2],
    /// Steps in rows and columns.
    pub step: [u16; 2],
}

impl Op {
    /// Tensor this op writes.
    pub fn output(&self) -> u16 {
        match self {
            Op::Conv(c) => c.output,
            Op::MaxPool(p) => p.output,
            Op::AvgPool(p) => p.window.output,
            Op::Add(a) => a.output,
            Op::Pad(p) => p.output,
            Op::Subsample(s) => s.output,
        }
    }

    /// Tensors this op reads (unused slots are `None`).
    pub fn inputs(&self) -> [Option<u16>; 2] {
        match self {
            Op::Conv(c) => [Some(c.input), c.residual.map(|r| r.tensor)],
            Op::MaxPool(p) => [Some(p.input), None],
            Op::AvgPool(p) => [Some(p.window.input), None],
            Op::Add(a) => [Some(a.a), Some(a.b)],
            Op::Pad(p) => [Some(p.input), None],
            Op::Subsample(s) => [Some(s.input), None],
        }
    }

    /// Short name of the op kind, for reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv(c) if c.residual.is_some() => "conv+add",
            Op::Conv(_) => "conv",
            Op::MaxPool(_) => "maxpool",
            Op::AvgPool(_) => "avgpool",
            Op::Add(_) => "add",
            Op::Pad(_) => "pad",
            Op::Subsample(_) => "subsample",
        }
    }
}
