//! `v4l2:/dev/videoN[?width=W&height=H&format=F]`: a V4L2 capture device (USB UVC webcams and
//! other cameras with a plain V4L2 driver) through the `v4l` crate: format and size
//! negotiation, mmap streaming, one copy per frame into a recycled buffer.

use std::time::Duration;

use resq_preprocess::PixelFormat;
use v4l::buffer::Type;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::{Device, Format, FourCC};

use super::{option_value, query, FrameSource, Read, SourceError};
use crate::frame::{check_size, Encoding, FrameBuf};

/// Pixel formats read from V4L2, by FourCC, in order of preference when none is asked for:
/// uncompressed first (no decode), then MJPEG.
pub const FORMATS: &[(&str, Encoding)] = &[
    ("YUYV", Encoding::Raw(PixelFormat::Yuyv)),
    ("NV12", Encoding::Raw(PixelFormat::Nv12)),
    ("MJPG", Encoding::Jpeg),
    ("UYVY", Encoding::Raw(PixelFormat::Uyvy)),
    ("NV21", Encoding::Raw(PixelFormat::Nv21)),
    ("YU12", Encoding::Raw(PixelFormat::I420)),
    ("RGB3", Encoding::Raw(PixelFormat::Rgb24)),
    ("BGR3", Encoding::Raw(PixelFormat::Bgr24)),
    ("GREY", Encoding::Raw(PixelFormat::Grey8)),
    ("JPEG", Encoding::Jpeg),
];

/// The encoding of a FourCC, if resq-fw reads it.
pub fn encoding_of(fourcc: &str) -> Option<Encoding> {
    FORMATS.iter().find(|(f, _)| *f == fourcc).map(|&(_, e)| e)
}

/// A parsed `v4l2:` URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V4l2Spec {
    /// Device node.
    pub path: String,
    /// Requested width (default 640).
    pub width: Option<u32>,
    /// Requested height (default 480).
    pub height: Option<u32>,
    /// Requested FourCC (default: the first of [`FORMATS`] the camera offers).
    pub format: Option<String>,
}

impl V4l2Spec {
    pub(crate) fn parse(rest: &str) -> Result<V4l2Spec, SourceError> {
        let (path, opts) = query("v4l2:", rest, &["width", "height", "format"])?;
        if !path.starts_with('/') {
            return Err(SourceError::Fatal(format!(
                "v4l2: `{path}` is not a device path; write e.g. v4l2:/dev/video0"
            )));
        }
        let mut spec = V4l2Spec {
            path: path.to_string(),
            width: None,
            height: None,
            format: None,
        };
        for (k, v) in opts {
            match k {
                "width" | "height" => {
                    let n: u32 = option_value("v4l2:", k, v, "a number of pixels")?;
                    if n == 0 || n > resq_io::MAX_IMAGE_SIDE {
                        return Err(SourceError::Fatal(format!(
                            "v4l2: `{k}={v}` is out of range: use 1..={} pixels",
                            resq_io::MAX_IMAGE_SIDE
                        )));
                    }
                    if k == "width" {
                        spec.width = Some(n);
                    } else {
                        spec.height = Some(n);
                    }
                }
                _ => {
                    let f = v.to_ascii_uppercase();
                    if encoding_of(&f).is_none() {
                        return Err(SourceError::Fatal(format!(
                            "v4l2: format `{v}` is not one resq-fw reads; use one of {}",
                            FORMATS
                                .iter()
                                .map(|(f, _)| *f)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    }
                    spec.format = Some(f);
                }
            }
        }
        Ok(spec)
    }
}

/// A streaming V4L2 camera.
pub struct V4l2Source {
    path: String,
    card: String,
    encoding: Encoding,
    fourcc: String,
    width: usize,
    height: usize,
    stride: usize,
    // Declared before the device: the stream's buffers are unmapped before the device closes.
    stream: v4l::io::mmap::Stream<'static>,
    _device: Device,
}

fn fourcc_str(f: FourCC) -> String {
    f.str()
        .map(str::to_string)
        .unwrap_or_else(|_| format!("{:?}", f.repr))
}

impl V4l2Source {
    /// Opens and configures the device. A device node that does not exist is `Missing` (a
    /// wrong path at start-up; an unplugged camera once it has streamed), one that exists but
    /// does not open is `Lost` (busy, or not yet accessible); a device that cannot deliver a
    /// usable format is `Fatal`.
    pub fn open(spec: &V4l2Spec) -> Result<V4l2Source, SourceError> {
        let path = &spec.path;
        let lost =
            |what: &str, e: std::io::Error| SourceError::Lost(format!("{path}: {what}: {e}"));
        let device = Device::with_path(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                SourceError::Missing(format!(
                    "camera {path} does not exist; pass --camera v4l2:/dev/videoN of a connected \
                     camera ({}; `v4l2-ctl --list-devices` names them)",
                    video_nodes()
                ))
            } else {
                SourceError::Lost(format!("cannot open camera {path}: {e} (is it plugged in, and is the user in the `video` group?)"))
            }
        })?;
        let caps = device
            .query_caps()
            .map_err(|e| {
                if e.raw_os_error() == Some(ENOTTY) {
                    SourceError::Fatal(format!(
                        "{path} is not a V4L2 device (it refuses VIDIOC_QUERYCAP); pick a /dev/videoN (`v4l2-ctl --list-devices`)"
                    ))
                } else {
                    lost("cannot query capabilities", e)
                }
            })?;
        use v4l::capability::Flags;
        if !caps.capabilities.contains(Flags::VIDEO_CAPTURE)
            || !caps.capabilities.contains(Flags::STREAMING)
        {
            return Err(SourceError::Fatal(format!(
                "{path} ({}) is not a streaming video capture device; pick another /dev/videoN (`v4l2-ctl --list-devices`)",
                caps.card
            )));
        }
        let offered: Vec<String> = device
            .enum_formats()
            .map_err(|e| lost("cannot list formats", e))?
            .iter()
            .map(|d| fourcc_str(d.fourcc))
            .collect();
        let fourcc = match &spec.format {
            Some(f) if offered.contains(f) => f.clone(),
            Some(f) => {
                return Err(SourceError::Fatal(format!(
                    "{path} ({}) does not offer {f}; it offers {}: pick one with ?format=",
                    caps.card,
                    offered.join(", ")
                )))
            }
            None => FORMATS
                .iter()
                .map(|(f, _)| f.to_string())
                .find(|f| offered.contains(f))
                .ok_or_else(|| {
                    SourceError::Fatal(format!(
                        "{path} ({}) offers {} but resq-fw reads {}",
                        caps.card,
                        offered.join(", "),
                        FORMATS
                            .iter()
                            .map(|(f, _)| *f)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?,
        };
        let want = Format::new(
            spec.width.unwrap_or(640),
            spec.height.unwrap_or(480),
            FourCC::new(&fourcc_bytes(&fourcc)),
        );
        // The driver picks the nearest size it supports; the frames say what it chose.
        let got = device
            .set_format(&want)
            .map_err(|e| lost("cannot set the format", e))?;
        let got_fourcc = fourcc_str(got.fourcc);
        let encoding = encoding_of(&got_fourcc).ok_or_else(|| {
            SourceError::Fatal(format!("{path} switched to {got_fourcc}, which resq-fw does not read; ask for another ?format="))
        })?;
        // The driver's word sizes the frame buffers: a size over the limits is refused first.
        check_size(got.width as usize, got.height as usize).map_err(|why| {
            SourceError::Fatal(format!(
                "{path} ({}) announces {}×{} frames: {why}; ask for a smaller ?width=&height=",
                caps.card, got.width, got.height
            ))
        })?;
        let mut stream = v4l::io::mmap::Stream::with_buffers(&device, Type::VideoCapture, 4)
            .map_err(|e| lost("cannot map capture buffers", e))?;
        // Bounded waits, so a stop request or a silent camera is noticed.
        stream.set_timeout(Duration::from_millis(200));
        Ok(V4l2Source {
            path: path.clone(),
            card: caps.card,
            encoding,
            fourcc: got_fourcc,
            width: got.width as usize,
            height: got.height as usize,
            stride: got.stride as usize,
            stream,
            _device: device,
        })
    }
}

/// "Inappropriate ioctl for device": the node is not a V4L2 device.
const ENOTTY: i32 = 25;

/// The `/dev/video*` nodes of this machine, for messages.
fn video_nodes() -> String {
    let mut nodes: Vec<String> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("video"))
        .map(|n| format!("/dev/{n}"))
        .collect();
    nodes.sort();
    if nodes.is_empty() {
        "this machine has no /dev/video* device".into()
    } else {
        format!("this machine has {}", nodes.join(", "))
    }
}

fn fourcc_bytes(s: &str) -> [u8; 4] {
    let mut b = [b' '; 4];
    for (d, c) in b.iter_mut().zip(s.bytes()) {
        *d = c;
    }
    b
}

impl FrameSource for V4l2Source {
    fn describe(&self) -> String {
        format!(
            "V4L2 camera {} ({}), {}×{} {}",
            self.path, self.card, self.width, self.height, self.fourcc
        )
    }

    fn live(&self) -> bool {
        true
    }

    fn stall_after(&self) -> Option<Duration> {
        Some(Duration::from_secs(5))
    }

    fn read(&mut self, frame: &mut FrameBuf) -> Result<Read, SourceError> {
        let (buf, meta) = match self.stream.next() {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Ok(Read::Timeout),
            Err(e) => return Err(SourceError::Lost(format!("camera {}: {e}", self.path))),
        };
        let used = match meta.bytesused as usize {
            0 => buf.len(),
            n => n.min(buf.len()),
        };
        if meta.flags.contains(v4l::buffer::Flags::ERROR) {
            return Err(SourceError::BadFrame(format!(
                "camera {} flagged frame {} as corrupted",
                self.path, meta.sequence
            )));
        }
        let data = &buf[..used];
        match self.encoding {
            Encoding::Jpeg => frame.set_jpeg(self.width, self.height, data),
            Encoding::Raw(format) => frame
                .set_contiguous(format, self.width, self.height, self.stride, data)
                .map_err(|e| SourceError::BadFrame(format!("camera {}: {e}", self.path)))?,
        }
        frame.name = None;
        frame.stamp(meta.sequence as u64);
        Ok(Read::Frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fourcc_maps_to_a_format_the_preprocessing_reads() {
        for (fourcc, enc) in FORMATS {
            assert_eq!(encoding_of(fourcc), Some(*enc));
            assert_eq!(fourcc_str(FourCC::new(&fourcc_bytes(fourcc))), *fourcc);
        }
        assert_eq!(encoding_of("H264"), None);
        assert_eq!(encoding_of("YUYV"), Some(Encoding::Raw(PixelFormat::Yuyv)));
        assert_eq!(encoding_of("MJPG"), Some(Encoding::Jpeg));
    }

    #[test]
    fn a_node_that_is_not_a_camera_is_refused_not_retried() {
        let spec = V4l2Spec::parse("/dev/null").unwrap();
        match V4l2Source::open(&spec) {
            Err(SourceError::Fatal(m)) => {
                assert!(m.contains("/dev/null is not a V4L2 device"), "{m}")
            }
            // qemu-user does not forward V4L2 ioctls (ENOSYS): nothing to learn under emulation.
            Err(SourceError::Lost(m)) if m.contains("os error 38") => {
                eprintln!("VIDIOC_QUERYCAP unsupported here (qemu-user?): {m}")
            }
            Err(e) => panic!("{e:?}"),
            Ok(_) => panic!("/dev/null opened as a camera"),
        }
        let spec = V4l2Spec::parse("/dev/video-resq-missing").unwrap();
        assert!(
            matches!(V4l2Source::open(&spec), Err(SourceError::Missing(m))
                if m.contains("camera /dev/video-resq-missing does not exist; pass --camera v4l2:/dev/videoN")),
        );
        let e = V4l2Spec::parse("/dev/video0?width=100000").unwrap_err();
        assert!(
            e.to_string().contains("`width=100000` is out of range"),
            "{e}"
        );
    }
}
