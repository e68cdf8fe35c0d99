//! Shared helpers: a tiny but complete model built in code, aligned parsing, header surgery.
//!
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use resq_format::write::{DataSection, TinyModel};
use resq_format::*;

// ---------------------------------------------------------------------------------------------
// Tensor and layer indices of the tiny model.
// ---------------------------------------------------------------------------------------------

/// `[1, 4, 4, 3]`, the graph input.
pub const T_INPUT: u16 = 0;
/// `[1, 4, 4, 8]`, written by the 3×3 conv.
pub const T_CONV1: u16 = 1;
/// `[1, 2, 2, 8]`, written by the max pool.
pub const T_POOL: u16 = 2;
/// `[1, 1, 1, 8]`, written by the average pool.
pub const T_GAP: u16 = 3;
/// `[1, 1, 1, 5]`, the logits, written by the fully-connected 1×1 conv.
pub const T_LOGITS: u16 = 4;

pub const L_CONV1: usize = 0;
pub const L_MAXPOOL: usize = 1;
pub const L_AVGPOOL: usize = 2;
pub const L_FC: usize = 3;

/// Layer names, deliberately different from every tensor name so error messages can be
/// checked for naming the *layer*.
pub const LAYER_NAMES: [&str; 4] = [
    "/conv1/Conv",
    "/pool1/MaxPool",
    "/gap/AveragePool",
    "/fc/Gemm",
];

pub const LABELS: &str = "a\nb\nc\nd\ne";
pub const SOURCE_SHA256: [u8; 32] = [0xA5; 32];
pub const CALIB_DIGEST: [u8; 32] = [0x3C; 32];

// ---------------------------------------------------------------------------------------------
// The bulk data of the tiny model.
// ---------------------------------------------------------------------------------------------

/// Deterministic int8 values in -127..=127 (valid symmetric weights).
pub fn pattern(n: usize, seed: i32) -> Vec<i8> {
    (0..n as i32)
        .map(|i| ((i * 37 + seed).rem_euclid(255) - 127) as i8)
        .collect()
}

/// Every array pushed into the tiny model's data section, in push order.
#[derive(Clone, Debug)]
pub struct TinyData {
    /// 3 × 256 input lookup table.
    pub lut: Vec<i8>,
    /// 8 × 3 × 3 × 3 conv weights.
    pub conv1_weights: Vec<i8>,
    pub conv1_bias: Vec<i32>,
    pub conv1_mults: Vec<i32>,
    /// Average-pool multipliers for cell counts 1..=4.
    pub avg_mults: Vec<i32>,
    /// 5 × 1 × 1 × 8 fully-connected weights.
    pub fc_weights: Vec<i8>,
    pub fc_bias: Vec<i32>,
    pub fc_mults: Vec<i32>,
    /// 4 × 4 × 3 = 48 bytes.
    pub self_test_input: Vec<i8>,
    /// 5 bytes.
    pub self_test_expected: Vec<i8>,
}

impl TinyData {
    pub fn new() -> Self {
        TinyData {
            lut: (0..3 * 256i32)
                .map(|i| (i % 256 - 128 + i / 256).clamp(-128, 127) as i8)
                .collect(),
            conv1_weights: pattern(8 * 3 * 3 * 3, 1),
            conv1_bias: vec![-4000, -300, -20, -1, 0, 1, 20, 30_000],
            conv1_mults: (0..8).map(|c| 1_000_000_000 + c * 12_345).collect(),
            avg_mults: (1..=4).map(|n| (1 << 20) / n).collect(),
            fc_weights: pattern(5 * 8, 2),
            fc_bias: vec![-7, 700, 0, 70_000, -70_000],
            fc_mults: vec![1 << 29, 1 << 28, 1 << 27, 1 << 26, 1 << 25],
            self_test_input: pattern(48, 3),
            self_test_expected: vec![-5, 0, 17, 99, -128],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The model.
// ---------------------------------------------------------------------------------------------

/// The tiny model in a [`TinyModel`] builder, before writing:
///
/// ```text
/// input [1,4,4,3] --conv 3×3 pad 1, ReLU clamp--> [1,4,4,8] --maxpool 2×2/2--> [1,2,2,8]
///   --avgpool 2×2--> [1,1,1,8] --conv 1×1 (fully connected)--> logits [1,1,1,5]
/// ```
pub fn tiny_builder() -> TinyModel<'static> {
    let d = TinyData::new();
    let conv1_zp = -100;
    let mut m = TinyModel::new("tiny", "resq-format tests");
    m.tensor("input", [4, 4, 3], 0.018, -3);
    m.tensor("conv1_out", [4, 4, 8], 0.05, conv1_zp);
    m.tensor("pool1_out", [2, 2, 8], 0.05, conv1_zp);
    m.tensor("gap_out", [1, 1, 8], 0.03, -90);
    m.tensor("logits", [1, 1, 5], 0.1, 0);
    m.input(T_INPUT, Layout::Nchw, ChannelOrder::Rgb, &d.lut)
        .normalisation([123.675, 116.28, 103.53], [58.395, 57.12, 57.375])
        .output(T_LOGITS, true)
        .labels(LABELS);
    let p = m.provenance_mut();
    p.source_name = "tiny.onnx";
    p.source_sha256 = SOURCE_SHA256;
    p.calib_digest = CALIB_DIGEST;
    p.calib_images = 16;

    let data = m.data();
    let conv1_weights = data.push_i8(&d.conv1_weights);
    let conv1_bias = data.push_i32(&d.conv1_bias);
    let conv1_mults = data.push_i32(&d.conv1_mults);
    let avg_mults = data.push_i32(&d.avg_mults);
    let fc_weights = data.push_i8(&d.fc_weights);
    let fc_bias = data.push_i32(&d.fc_bias);
    let fc_mults = data.push_i32(&d.fc_mults);
    m.layer(
        LAYER_NAMES[L_CONV1],
        Op::Conv(Conv {
            input: T_INPUT,
            output: T_CONV1,
            kernel: [3, 3],
            stride: [1, 1],
            pad: [1, 1, 1, 1],
            groups: 1,
            weights: conv1_weights,
            bias: conv1_bias,
            requant: Requant {
                shift: 38,
                mults: conv1_mults,
            },
            residual: None,
            // A fused ReLU: the minimum is the output zero point.
            clamp: [conv1_zp, 127],
        }),
    );
    m.layer(
        LAYER_NAMES[L_MAXPOOL],
        Op::MaxPool(Pool {
            input: T_CONV1,
            output: T_POOL,
            kernel: [2, 2],
            stride: [2, 2],
            pad: [0; 4],
        }),
    );
    m.layer(
        LAYER_NAMES[L_AVGPOOL],
        Op::AvgPool(AvgPool {
            window: Pool {
                input: T_POOL,
                output: T_GAP,
                kernel: [2, 2],
                stride: [1, 1],
                pad: [0; 4],
            },
            count_include_pad: false,
            shift: 20,
            mults: avg_mults,
        }),
    );
    m.layer(
        LAYER_NAMES[L_FC],
        Op::Conv(Conv {
            input: T_GAP,
            output: T_LOGITS,
            kernel: [1, 1],
            stride: [1, 1],
            pad: [0; 4],
            groups: 1,
            weights: fc_weights,
            bias: fc_bias,
            requant: Requant {
                shift: 31,
                mults: fc_mults,
            },
            residual: None,
            clamp: [-128, 127],
        }),
    );
    m.self_test(&d.self_test_input, &d.self_test_expected);
    m
}

/// The tiny model's metadata and data section, before writing (see [`tiny_builder`]).
pub fn tiny_parts() -> (Metadata<'static>, DataSection) {
    tiny_builder().into_parts()
}

/// The tiny model after `edit` has changed its metadata and/or data section, written with
/// `write_file` (so the header and CRC are valid and the check under test is the one that fires).
pub fn build(edit: impl FnOnce(&mut Metadata<'static>, &mut DataSection)) -> Vec<u8> {
    let mut m = tiny_builder();
    let (meta, data) = m.parts_mut();
    edit(meta, data);
    m.write().expect("write_file")
}

/// As [`build`], with an int16 block.
pub fn build_with_int16(
    int16: &[Int16Tensor],
    edit: impl FnOnce(&mut Metadata<'static>, &mut DataSection),
) -> Vec<u8> {
    let mut precision = Precision::default();
    for t in int16 {
        precision.int16.push(*t).expect("capacity");
    }
    let mut m = tiny_builder();
    m.precision(precision);
    let (meta, data) = m.parts_mut();
    edit(meta, data);
    m.write().expect("write_file")
}

/// The unmodified tiny model with `resize` as its resize block.
pub fn build_with_resize(resize: Resize) -> Vec<u8> {
    tiny_builder().resize(resize).write().expect("write_file")
}

/// The unmodified tiny model.
pub fn tiny_model() -> Vec<u8> {
    build(|_, _| {})
}

/// Layer `layer`'s convolution (panics if it is another op).
pub fn conv<'m>(meta: &'m mut Metadata<'static>, layer: usize) -> &'m mut Conv {
    match &mut meta.layers[layer].op {
        Op::Conv(c) => c,
        op => panic!("layer {layer} is a {}, not a conv", op.kind()),
    }
}

/// Layer `layer`'s average pooling (panics if it is another op).
pub fn avgpool<'m>(meta: &'m mut Metadata<'static>, layer: usize) -> &'m mut AvgPool {
    match &mut meta.layers[layer].op {
        Op::AvgPool(p) => p,
        op => panic!("layer {layer} is a {}, not an avgpool", op.kind()),
    }
}

/// Layer `layer`'s max pooling (panics if it is another op).
pub fn maxpool<'m>(meta: &'m mut Metadata<'static>, layer: usize) -> &'m mut Pool {
    match &mut meta.layers[layer].op {
        Op::MaxPool(p) => p,
        op => panic!("layer {layer} is a {}, not a maxpool", op.kind()),
    }
}

// ---------------------------------------------------------------------------------------------
// Aligned parsing.
// ---------------------------------------------------------------------------------------------

/// A copy of `bytes` in 8-byte aligned memory (`Model::parse` needs 4-byte alignment).
/// The last word is zero-padded; view it with [`view`].
pub fn aligned(bytes: &[u8]) -> Vec<u64> {
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
    words
}

/// The first `len` bytes of an [`aligned`] buffer.
pub fn view(words: &[u64], len: usize) -> &[u8] {
    &bytemuck::cast_slice::<u64, u8>(words)[..len]
}

/// Parses `file` from aligned memory, keeping only the verdict (boxed: `FormatError` is large).
pub fn parse(file: &[u8]) -> Result<(), Box<FormatError>> {
    let words = aligned(file);
    Model::parse(view(&words, file.len()))
        .map(|_| ())
        .map_err(Box::new)
}

/// Parses `file`, which must be refused, and returns why.
#[track_caller]
pub fn parse_err(file: &[u8]) -> FormatError {
    match parse(file) {
        Ok(()) => panic!("the file was accepted"),
        Err(e) => *e,
    }
}

// ---------------------------------------------------------------------------------------------
// Header surgery.
// ---------------------------------------------------------------------------------------------

/// Byte offsets of the header fields (SPEC.md).
pub mod field {
    pub const VERSION: usize = 8;
    pub const HEADER_LEN: usize = 10;
    pub const FLAGS: usize = 12;
    pub const FILE_LEN: usize = 16;
    pub const META_OFFSET: usize = 24;
    pub const META_LEN: usize = 32;
    pub const DATA_OFFSET: usize = 40;
    pub const DATA_LEN: usize = 48;
    pub const CRC32: usize = 56;
    pub const RESERVED: usize = 60;
}

pub fn get_u64(file: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(file[at..at + 8].try_into().unwrap())
}

pub fn set_u16(file: &mut [u8], at: usize, v: u16) {
    file[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

pub fn set_u32(file: &mut [u8], at: usize, v: u32) {
    file[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn set_u64(file: &mut [u8], at: usize, v: u64) {
    file[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// CRC-32 (ISO-HDLC, as zlib / PNG) of the bytes after the header, computed independently of
/// the crate.
pub fn body_crc(file: &[u8]) -> u32 {
    crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&file[HEADER_LEN..])
}

/// Rewrites the header's CRC after the body was edited by hand.
pub fn recrc(file: &mut [u8]) {
    let crc = body_crc(file);
    set_u32(file, field::CRC32, crc);
}

/// Assembles a file from hand-made metadata bytes and a data section, laid out as SPEC.md
/// says (metadata at 64, zero padding, data on the next multiple of 64), with a valid header.
pub fn assemble(meta_bytes: &[u8], data: &[u8]) -> Vec<u8> {
    let data_offset = (HEADER_LEN + meta_bytes.len()).div_ceil(DATA_ALIGN) * DATA_ALIGN;
    let mut file = vec![0u8; data_offset];
    file[HEADER_LEN..HEADER_LEN + meta_bytes.len()].copy_from_slice(meta_bytes);
    file.extend_from_slice(data);
    let header = Header {
        version: FORMAT_VERSION,
        file_len: file.len() as u64,
        meta_offset: HEADER_LEN as u64,
        meta_len: meta_bytes.len() as u64,
        data_offset: data_offset as u64,
        data_len: data.len() as u64,
        crc32: body_crc(&file),
    };
    file[..HEADER_LEN].copy_from_slice(&header.to_bytes());
    file
}

/// The data section of a complete file image.
pub fn data_section(file: &[u8]) -> &[u8] {
    &file[get_u64(file, field::DATA_OFFSET) as usize..]
}
