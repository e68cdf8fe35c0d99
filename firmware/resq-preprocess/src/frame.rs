//! A borrowed camera frame: pixel format, size, planes and strides.

use crate::color::{luma, yuv_to_rgb, YuvRange};
use crate::error::PreprocessError;
use crate::ChannelOrder;

/// Largest frame (and model input) width or height.
pub const MAX_FRAME_DIM: usize = resq_format::MAX_IMAGE_DIM as usize;

/// Pixel formats a frame may arrive in. Names follow V4L2 (GStreamer name in brackets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PixelFormat {
    /// Packed 8-bit R, G, B (`RGB`).
    Rgb24,
    /// Packed 8-bit B, G, R (`BGR`).
    Bgr24,
    /// Packed R, G, B, then one ignored byte (`RGBx`, `RGBA`).
    Rgbx32,
    /// Packed B, G, R, then one ignored byte (`BGRx`, `BGRA`).
    Bgrx32,
    /// One 8-bit grey (luma) byte per pixel (`GRAY8`).
    Grey8,
    /// Packed 4:2:2, bytes Y0 U Y1 V per pixel pair (`YUY2`).
    Yuyv,
    /// Packed 4:2:2, bytes U Y0 V Y1 per pixel pair (`UYVY`).
    Uyvy,
    /// 4:2:0, a Y plane then one interleaved U V plane at half size (`NV12`).
    Nv12,
    /// 4:2:0, a Y plane then one interleaved V U plane at half size (`NV21`).
    Nv21,
    /// 4:2:0, planes Y, U, V, chroma at half size (`I420`, V4L2 `YU12`).
    I420,
}

impl PixelFormat {
    /// Short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Rgb24 => "RGB24",
            PixelFormat::Bgr24 => "BGR24",
            PixelFormat::Rgbx32 => "RGBX32",
            PixelFormat::Bgrx32 => "BGRX32",
            PixelFormat::Grey8 => "GREY",
            PixelFormat::Yuyv => "YUYV",
            PixelFormat::Uyvy => "UYVY",
            PixelFormat::Nv12 => "NV12",
            PixelFormat::Nv21 => "NV21",
            PixelFormat::I420 => "I420",
        }
    }

    /// Number of planes.
    pub fn planes(self) -> usize {
        match self {
            PixelFormat::Nv12 | PixelFormat::Nv21 => 2,
            PixelFormat::I420 => 3,
            _ => 1,
        }
    }

    /// Bytes of one row of plane `plane` for a frame `width` pixels wide.
    pub fn row_bytes(self, plane: usize, width: usize) -> usize {
        let half = width.div_ceil(2);
        match (self, plane) {
            (PixelFormat::Rgb24 | PixelFormat::Bgr24, _) => 3 * width,
            (PixelFormat::Rgbx32 | PixelFormat::Bgrx32, _) => 4 * width,
            (PixelFormat::Grey8, _) => width,
            (PixelFormat::Yuyv | PixelFormat::Uyvy, _) => 4 * half,
            (PixelFormat::Nv12 | PixelFormat::Nv21 | PixelFormat::I420, 0) => width,
            (PixelFormat::Nv12 | PixelFormat::Nv21, _) => 2 * half,
            (PixelFormat::I420, _) => half,
        }
    }

    /// Rows of plane `plane` for a frame `height` pixels high.
    pub fn rows(self, plane: usize, height: usize) -> usize {
        match (self, plane) {
            (PixelFormat::Nv12 | PixelFormat::Nv21 | PixelFormat::I420, 1 | 2) => {
                height.div_ceil(2)
            }
            _ => height,
        }
    }

    /// Stride of plane `plane` when plane 0 has stride `stride0` (the V4L2 single-planar rule:
    /// NV12's chroma rows are as long as luma rows, I420's half as long; never shorter than
    /// the plane's pixels, for odd widths).
    pub fn plane_stride(self, plane: usize, width: usize, stride0: usize) -> usize {
        match (self, plane) {
            // Plane 0's stride is the caller's: a short one is an error, reported by `validate`.
            (_, 0) => stride0,
            (PixelFormat::I420, _) => stride0.div_ceil(2).max(self.row_bytes(plane, width)),
            _ => stride0.max(self.row_bytes(plane, width)),
        }
    }

    /// Bytes of a frame whose plane 0 has stride `stride0`, planes stored one after another.
    pub fn frame_bytes(self, width: usize, height: usize, stride0: usize) -> usize {
        (0..self.planes())
            .map(|p| self.plane_stride(p, width, stride0) * self.rows(p, height))
            .sum()
    }
}

/// A frame borrowed from a camera buffer (or an image): format, size, planes and row strides.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Pixel format.
    pub format: PixelFormat,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Plane bytes; unused planes are empty.
    pub planes: [&'a [u8]; 3],
    /// Bytes from one row to the next, per plane.
    pub strides: [usize; 3],
    /// Range of YUV values (ignored for RGB and grey formats).
    pub range: YuvRange,
}

impl<'a> Frame<'a> {
    /// A frame stored in one buffer, planes one after another, plane 0 rows `stride0` bytes
    /// apart (V4L2's single-planar layout; `stride0 = 0` means tightly packed). Checked.
    pub fn contiguous(
        format: PixelFormat,
        width: usize,
        height: usize,
        stride0: usize,
        data: &'a [u8],
    ) -> Result<Self, PreprocessError> {
        let stride0 = if stride0 == 0 {
            format.row_bytes(0, width)
        } else {
            stride0
        };
        let mut planes: [&'a [u8]; 3] = [&[]; 3];
        let mut strides = [0; 3];
        let mut rest = data;
        for p in 0..format.planes() {
            let stride = format.plane_stride(p, width, stride0);
            let bytes = stride * format.rows(p, height);
            // The last plane may end right after its last row's pixels (no trailing padding).
            let take = if p + 1 == format.planes() {
                bytes.min(rest.len())
            } else {
                bytes
            };
            if rest.len() < take {
                return Err(PreprocessError::ShortPlane {
                    format,
                    width,
                    height,
                    plane: p,
                    len: rest.len(),
                    needed: format.frame_bytes(width, height, stride0),
                });
            }
            let (plane, tail) = rest.split_at(take);
            planes[p] = plane;
            strides[p] = stride;
            rest = tail;
        }
        let frame = Frame {
            format,
            width,
            height,
            planes,
            strides,
            range: YuvRange::Limited,
        };
        frame.validate()?;
        Ok(frame)
    }

    /// The same frame with YUV values read in `range`.
    pub fn with_range(mut self, range: YuvRange) -> Self {
        self.range = range;
        self
    }

    /// Checks size, strides and plane lengths, so reading any pixel stays in bounds.
    pub fn validate(&self) -> Result<(), PreprocessError> {
        let (w, h) = (self.width, self.height);
        if w == 0 || h == 0 || w > MAX_FRAME_DIM || h > MAX_FRAME_DIM {
            return Err(PreprocessError::BadSize {
                what: "frame",
                width: w,
                height: h,
            });
        }
        for p in 0..self.format.planes() {
            let row = self.format.row_bytes(p, w);
            let stride = self.strides[p];
            if stride < row {
                return Err(PreprocessError::Stride {
                    format: self.format,
                    plane: p,
                    stride,
                    needed: row,
                });
            }
            let needed = stride * (self.format.rows(p, h) - 1) + row;
            if self.planes[p].len() < needed {
                return Err(PreprocessError::ShortPlane {
                    format: self.format,
                    width: w,
                    height: h,
                    plane: p,
                    len: self.planes[p].len(),
                    needed,
                });
            }
        }
        Ok(())
    }

    /// The RGB value of pixel `(x, y)` (for tests and one-off reads; the resampler converts
    /// whole rows).
    pub fn rgb(&self, x: usize, y: usize) -> [u8; 3] {
        let mut px = [0u8; 3];
        self.convert_row(y, x, x + 1, ChannelOrder::Rgb, &mut px);
        px
    }

    /// Converts pixels `x0..x1` of row `y` to `order`, writing `channels` bytes per pixel into
    /// `out`. The frame must be valid and the range inside it.
    pub(crate) fn convert_row(
        &self,
        y: usize,
        x0: usize,
        x1: usize,
        order: ChannelOrder,
        out: &mut [u8],
    ) {
        let p0 = &self.planes[0][y * self.strides[0]..];
        let range = self.range;
        match self.format {
            PixelFormat::Rgb24 => emit(x0, x1, order, out, |x| {
                [p0[3 * x], p0[3 * x + 1], p0[3 * x + 2]]
            }),
            PixelFormat::Bgr24 => emit(x0, x1, order, out, |x| {
                [p0[3 * x + 2], p0[3 * x + 1], p0[3 * x]]
            }),
            PixelFormat::Rgbx32 => emit(x0, x1, order, out, |x| {
                [p0[4 * x], p0[4 * x + 1], p0[4 * x + 2]]
            }),
            PixelFormat::Bgrx32 => emit(x0, x1, order, out, |x| {
                [p0[4 * x + 2], p0[4 * x + 1], p0[4 * x]]
            }),
            PixelFormat::Grey8 => emit(x0, x1, order, out, |x| [p0[x]; 3]),
            PixelFormat::Yuyv => emit(x0, x1, order, out, |x| {
                let pair = 4 * (x / 2);
                yuv_to_rgb(p0[2 * x], p0[pair + 1], p0[pair + 3], range)
            }),
            PixelFormat::Uyvy => emit(x0, x1, order, out, |x| {
                let pair = 4 * (x / 2);
                yuv_to_rgb(p0[2 * x + 1], p0[pair], p0[pair + 2], range)
            }),
            PixelFormat::Nv12 | PixelFormat::Nv21 => {
                let uv = &self.planes[1][(y / 2) * self.strides[1]..];
                let (iu, iv) = if self.format == PixelFormat::Nv12 {
                    (0, 1)
                } else {
                    (1, 0)
                };
                emit(x0, x1, order, out, |x| {
                    let c = 2 * (x / 2);
                    yuv_to_rgb(p0[x], uv[c + iu], uv[c + iv], range)
                })
            }
            PixelFormat::I420 => {
                let u = &self.planes[1][(y / 2) * self.strides[1]..];
                let v = &self.planes[2][(y / 2) * self.strides[2]..];
                emit(x0, x1, order, out, |x| {
                    yuv_to_rgb(p0[x], u[x / 2], v[x / 2], range)
                })
            }
        }
    }
}

/// Writes pixels `x0..x1` fetched as RGB into `out` in the model's channel order. Generic over
/// the fetch so each pixel format gets its own inlined loop.
#[inline(always)]
fn emit(x0: usize, x1: usize, order: ChannelOrder, out: &mut [u8], rgb: impl Fn(usize) -> [u8; 3]) {
    match order {
        ChannelOrder::Rgb => {
            for (o, x) in out.chunks_exact_mut(3).zip(x0..x1) {
                o.copy_from_slice(&rgb(x));
            }
        }
        ChannelOrder::Bgr => {
            for (o, x) in out.chunks_exact_mut(3).zip(x0..x1) {
                let [r, g, b] = rgb(x);
                o.copy_from_slice(&[b, g, r]);
            }
        }
        ChannelOrder::Grey => {
            for (o, x) in out.iter_mut().zip(x0..x1) {
                *o = luma(rgb(x));
            }
        }
    }
}
