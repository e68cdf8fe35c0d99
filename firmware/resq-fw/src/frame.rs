//! Owned frames: what a source fills and inference reads, recycled so a long run allocates
//! nothing per frame.

use std::ops::Range;
use std::time::{Instant, SystemTime};

use resq_preprocess::{Frame, PixelFormat, PreprocessError, YuvRange};

/// Refuses a frame size over the limits both tools apply to images
/// ([`resq_io::MAX_IMAGE_SIDE`] per side, [`resq_io::MAX_IMAGE_PIXELS`] in all), before any
/// buffer is sized for it: what a camera driver, a GStreamer caps event or a JPEG header
/// announces is checked here first. The error says the size and the limit.
pub fn check_size(width: usize, height: usize) -> Result<(), String> {
    let side = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    resq_io::image_file::check_size(side(width), side(height))
}

/// How a frame's bytes are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Raw pixels in a format the fused preprocessing reads directly.
    Raw(PixelFormat),
    /// A JPEG image (MJPEG cameras; decoded before preprocessing).
    Jpeg,
}

impl Encoding {
    /// Short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Raw(f) => f.name(),
            Encoding::Jpeg => "MJPEG",
        }
    }
}

/// One frame and where it came from. Buffers are reused: [`FrameBuf::data`] keeps its capacity.
#[derive(Clone, Debug)]
pub struct FrameBuf {
    /// Encoding of `data`.
    pub encoding: Encoding,
    /// Width in pixels (for JPEG, as announced by the source; the decoder has the last word).
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Byte ranges of the planes in `data` (raw formats).
    pub planes: [Range<usize>; 3],
    /// Row strides of the planes.
    pub strides: [usize; 3],
    /// YUV range of raw YUV frames.
    pub range: YuvRange,
    /// The bytes.
    pub data: Vec<u8>,
    /// Sequence number from the source (camera frame counter, image index); gaps are frames
    /// the source or the hand-off dropped.
    pub seq: u64,
    /// When the frame was captured (monotonic, for latency).
    pub captured: Instant,
    /// When the frame was captured (wall clock, for reports).
    pub wall: SystemTime,
    /// Image file name, for frames read from a folder.
    pub name: Option<String>,
}

impl Default for FrameBuf {
    fn default() -> Self {
        FrameBuf {
            encoding: Encoding::Raw(PixelFormat::Rgb24),
            width: 0,
            height: 0,
            planes: [0..0, 0..0, 0..0],
            strides: [0; 3],
            range: YuvRange::Limited,
            data: Vec::new(),
            seq: 0,
            captured: Instant::now(),
            wall: SystemTime::now(),
            name: None,
        }
    }
}

impl FrameBuf {
    /// Stamps the frame as captured now.
    pub fn stamp(&mut self, seq: u64) {
        self.seq = seq;
        self.captured = Instant::now();
        self.wall = SystemTime::now();
    }

    /// Fills this buffer with a raw frame stored contiguously in `bytes` (V4L2 single-planar
    /// layout, plane 0 rows `stride0` bytes apart; 0 = tightly packed).
    pub fn set_contiguous(
        &mut self,
        format: PixelFormat,
        width: usize,
        height: usize,
        stride0: usize,
        bytes: &[u8],
    ) -> Result<(), PreprocessError> {
        // Validate on the borrowed bytes first so a bad frame leaves no half-written buffer.
        let f = Frame::contiguous(format, width, height, stride0, bytes)?;
        let base = bytes.as_ptr() as usize;
        let mut planes = [0..0, 0..0, 0..0];
        for (p, plane) in f.planes.iter().enumerate() {
            // An unused plane is `&[]`, whose address is anywhere: only used planes are offsets.
            planes[p] = if plane.is_empty() {
                0..0
            } else {
                let start = plane.as_ptr() as usize - base;
                start..start + plane.len()
            };
        }
        self.strides = f.strides;
        self.planes = planes;
        self.encoding = Encoding::Raw(format);
        self.width = width;
        self.height = height;
        self.data.clear();
        self.data.extend_from_slice(bytes);
        Ok(())
    }

    /// Fills this buffer with a raw frame given plane by plane (`(bytes, stride)`), as GStreamer
    /// maps them.
    pub fn set_planes(
        &mut self,
        format: PixelFormat,
        width: usize,
        height: usize,
        planes: &[(&[u8], usize)],
    ) -> Result<(), PreprocessError> {
        self.data.clear();
        self.planes = [0..0, 0..0, 0..0];
        self.strides = [0; 3];
        for (p, &(bytes, stride)) in planes.iter().enumerate().take(3) {
            let start = self.data.len();
            self.data.extend_from_slice(bytes);
            self.planes[p] = start..self.data.len();
            self.strides[p] = stride;
        }
        self.encoding = Encoding::Raw(format);
        self.width = width;
        self.height = height;
        match self.raw() {
            Some(Err(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Fills this buffer with a JPEG image.
    pub fn set_jpeg(&mut self, width: usize, height: usize, bytes: &[u8]) {
        self.encoding = Encoding::Jpeg;
        self.width = width;
        self.height = height;
        self.planes = [0..bytes.len(), 0..0, 0..0];
        self.strides = [0; 3];
        self.data.clear();
        self.data.extend_from_slice(bytes);
    }

    /// The raw frame as the preprocessing reads it (`None` for JPEG). Checked.
    pub fn raw(&self) -> Option<Result<Frame<'_>, PreprocessError>> {
        let Encoding::Raw(format) = self.encoding else {
            return None;
        };
        let plane = |p: usize| self.data.get(self.planes[p].clone()).unwrap_or(&[]);
        let frame = Frame {
            format,
            width: self.width,
            height: self.height,
            planes: [plane(0), plane(1), plane(2)],
            strides: self.strides,
            range: self.range,
        };
        Some(frame.validate().map(|_| frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_sizes_over_the_image_limits_are_refused() {
        assert!(check_size(640, 480).is_ok());
        assert!(check_size(resq_io::MAX_IMAGE_SIDE as usize, 4096).is_ok());
        let e = check_size(100_000, 100_000).unwrap_err();
        assert!(
            e.contains("100000×100000") && e.contains("16384 per side"),
            "{e}"
        );
        assert!(check_size(usize::MAX, 1).is_err());
        assert!(check_size(0, 480).is_err());
    }
}
