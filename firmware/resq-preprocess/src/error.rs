//! Why a frame could not be preprocessed.

use crate::frame::PixelFormat;

/// Why a frame could not be preprocessed. Each message names the field at fault and what a
/// valid value looks like.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PreprocessError {
    /// A width or height of zero, or above [`crate::MAX_FRAME_DIM`].
    BadSize {
        /// What the size belongs to: `"frame"` or `"model input"`.
        what: &'static str,
        /// Width given.
        width: usize,
        /// Height given.
        height: usize,
    },
    /// The resize recipe's size is zero, over [`crate::MAX_FRAME_DIM`], or smaller than the
    /// model input it is cropped to.
    BadResize {
        /// Resize `[width, height]`.
        size: [usize; 2],
        /// Model input `[width, height]`.
        output: [usize; 2],
    },
    /// A plane's row stride is shorter than one row of pixels.
    Stride {
        /// Pixel format.
        format: PixelFormat,
        /// Plane index.
        plane: usize,
        /// Stride given, bytes.
        stride: usize,
        /// Bytes one row needs.
        needed: usize,
    },
    /// A plane holds fewer bytes than its rows need.
    ShortPlane {
        /// Pixel format.
        format: PixelFormat,
        /// Frame width.
        width: usize,
        /// Frame height.
        height: usize,
        /// Plane index.
        plane: usize,
        /// Bytes given.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The frame's size differs from the one the resampler was planned for.
    FrameSize {
        /// Planned `[width, height]`.
        planned: [usize; 2],
        /// The frame's `[width, height]`.
        actual: [usize; 2],
    },
    /// The output buffer has the wrong length.
    OutputLength {
        /// Bytes expected (height · width · channels).
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// The lookup table is shorter than 256 entries per channel.
    LutLength {
        /// Entries expected.
        expected: usize,
        /// Entries given.
        actual: usize,
    },
}

impl core::fmt::Display for PreprocessError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            PreprocessError::BadSize {
                what,
                width,
                height,
            } => write!(
                f,
                "{what} size {width}×{height} is not usable: width and height must be 1..={}",
                crate::MAX_FRAME_DIM
            ),
            PreprocessError::BadResize { size, output } => write!(
                f,
                "resize to {}×{} cannot be centre-cropped to the {}×{} model input: each side must \
                 be from the input's up to {}; re-convert the model with a valid `resq convert --resize`",
                size[0],
                size[1],
                output[0],
                output[1],
                crate::MAX_FRAME_DIM
            ),
            PreprocessError::Stride {
                format,
                plane,
                stride,
                needed,
            } => write!(
                f,
                "{} frame: plane {plane} has a row stride of {stride} bytes, but one row needs at least {needed}",
                format.name()
            ),
            PreprocessError::ShortPlane {
                format,
                width,
                height,
                plane,
                len,
                needed,
            } => write!(
                f,
                "{width}×{height} {} frame: plane {plane} has {len} bytes, it needs {needed} \
                 (is the pixel format or the size wrong?)",
                format.name()
            ),
            PreprocessError::FrameSize { planned, actual } => write!(
                f,
                "frame is {}×{} but the resampler was planned for {}×{}; plan a new one for this size",
                actual[0], actual[1], planned[0], planned[1]
            ),
            PreprocessError::OutputLength { expected, actual } => write!(
                f,
                "output buffer has {actual} bytes, the model input needs {expected} (height · width · channels)"
            ),
            PreprocessError::LutLength { expected, actual } => write!(
                f,
                "lookup table has {actual} entries, it needs {expected} (256 per channel)"
            ),
        }
    }
}

impl core::error::Error for PreprocessError {}
