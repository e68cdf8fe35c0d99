//! Fused preprocessing: a camera frame in its native pixel format becomes the model's input in
//! one pass — centre crop, resize, colour conversion, and (through the model file's lookup
//! table) normalisation and quantization — with no intermediate image.
//!
//! The host tool computes its pixels with the same code ([`Resampler::pixels`] on an RGB
//! image), so what the board feeds the model is exactly what calibration and `resq eval` saw.
//!
//! # The arithmetic, once
//!
//! - **Geometry** ([`Geometry::new`]): the frame is resized by the model file's [`Resize`]
//!   recipe — shorter side to a size (aspect ratio kept, sizes rounded half up, torchvision's
//!   `Resize`) or both sides straight to a size (squash, Keras / TFLite) — and the model
//!   input's centre is taken (`CenterCrop`). Version 1 and 2 files resize the shorter side to
//!   the input itself ([`Geometry::fit`]).
//! - **Resize**: a separable triangle filter whose support widens with the downscale factor, so
//!   a downscale averages every source pixel (area-correct, like `image`'s `Triangle` filter and
//!   PIL's bilinear) and an upscale is bilinear. Weights are computed in exact integers, then
//!   normalised to Q16 so each output sums to exactly 1; one rounding (half up) at the end.
//!   Integer-only, so every ISA gives the same bytes.
//! - **Colour**: YUV is BT.601, limited range by default (what UVC webcams and GStreamer's
//!   `YUY2` / `NV12` at SD sizes carry), full range on request ([`YuvRange`]); chroma is taken
//!   from the nearest (co-sited) sample. Grey models get ITU-R 601 luma of the RGB value, as
//!   PIL's `convert("L")` (torchvision's `Grayscale`). See [`yuv_to_rgb`] and [`luma`].
//! - Each source pixel is converted once, in the row it is read; the horizontal pass keeps a
//!   few filtered rows (fixed-point, `u32`) in a ring, the vertical pass combines them.
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

mod color;
mod error;
mod frame;
mod resample;

pub use color::{luma, yuv_to_rgb, YuvRange};
pub use error::PreprocessError;
pub use frame::{Frame, PixelFormat, MAX_FRAME_DIM};
pub use resample::{Geometry, Resampler};
pub use resq_format::{ChannelOrder, Resize, ResizeMode};

/// Number of input channels of a channel order (grey is one).
pub fn channel_count(order: ChannelOrder) -> usize {
    match order {
        ChannelOrder::Grey => 1,
        ChannelOrder::Rgb | ChannelOrder::Bgr => 3,
    }
}
