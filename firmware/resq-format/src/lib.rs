//! The `.resq` model file: one int8 ResNet, ready to run in place.
//!
//! A file is a fixed 64-byte [`Header`], a [postcard]-encoded [`Metadata`] block (graph, tensor
//! descriptors, quantization, preprocessing, labels, provenance, self-test) and an aligned raw
//! data section holding int8 weights and little-endian i32 biases and multipliers. The firmware
//! borrows the data section in place: [`Model::parse`] validates every index, shape, offset,
//! length and numeric limit up front, so kernels never see an out-of-range value and a hostile
//! file gives a typed [`FormatError`], never a panic.
//!
//! The byte layout and the versioning rule are specified in `SPEC.md` beside this crate.
#![no_std]
#![warn(missing_docs)]
// `FormatError` carries the layer name inline (no allocator on the board), so it is large; it is
// returned at most once per load, never on a hot path.
#![allow(clippy::result_large_err)]

#[cfg(feature = "alloc")]
extern crate alloc;

mod error;
mod header;
mod lut;
mod meta;
mod model;
#[cfg(feature = "alloc")]
pub mod write;

pub use error::FormatError;
pub use header::{reseal_header_crc, Header, FORMAT_VERSION, HEADER_LEN, MAGIC};
pub use lut::{lut_quantize, lut_value};
pub use meta::*;
pub use model::Model;

/// Alignment, in bytes, of the data section within the file (and of the buffer a file is loaded into).
pub const DATA_ALIGN: usize = 64;
/// Most activation tensors a graph may have.
pub const MAX_TENSORS: usize = 512;
/// Most layers a graph may have (ResNet-152 needs about 160 after fusion).
pub const MAX_LAYERS: usize = 512;
/// Largest height, width or channel count of any tensor.
pub const MAX_DIM: u32 = 1 << 16;
/// Largest element count of one activation tensor (64 Mi).
pub const MAX_TENSOR_ELEMS: u64 = 1 << 26;
/// Largest kernel height or width.
pub const MAX_KERNEL: u16 = 64;
/// Largest stride.
pub const MAX_STRIDE: u16 = 16;
/// Largest dot-product length of one convolution output (kh · kw · cin/groups).
///
/// With |x − zp| ≤ 255 and |w| ≤ 127 this keeps the i32 accumulator from overflowing:
/// 255 · 127 · 65536 + |bias| < 2³¹ (the loader checks the bias bound too).
pub const MAX_DOT_LEN: u32 = 65536;
/// Largest pooling window area (global pooling of a 64×64 map).
pub const MAX_POOL_AREA: u32 = 4096;
/// Largest width or height of a frame, and of the image a frame is resized to before the crop
/// ([`Resize::size`]).
pub const MAX_IMAGE_DIM: u32 = 65535;
