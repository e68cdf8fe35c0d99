//! `gst:PIPELINE` and `file:PATH`: frames from a GStreamer pipeline through an appsink — how
//! Raspberry Pi CSI cameras (`libcamerasrc`), Jetson CSI cameras (`nvarguscamerasrc`), RTSP
//! streams and video files reach resq-fw.
//!
//! Unless the pipeline has its own appsink, one is appended that keeps only the newest buffer
//! (`max-buffers=1 drop=true`) and plays at the stream's pace (`sync=true`); its caps offer
//! every raw format the fused preprocessing reads, and JPEG, so a capable source needs no
//! conversion.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use resq_preprocess::{PixelFormat, YuvRange};

use super::{FrameSource, Read, SourceError};
use crate::frame::{check_size, FrameBuf};

/// Caps of the appended appsink: raw formats in order of preference, then JPEG.
pub const SINK_CAPS: &str = "video/x-raw,format=(string){YUY2,NV12,I420,UYVY,NV21,RGB,BGR,RGBx,BGRx,RGBA,BGRA,GRAY8}; image/jpeg";

fn init() -> Result<(), SourceError> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| gst::init().map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| SourceError::Fatal(format!("GStreamer does not start: {e}")))
}

/// A playing pipeline and its appsink.
pub struct GstSource {
    description: String,
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    counter: u64,
    caps: String,
}

impl GstSource {
    /// Parses and starts `description`. A pipeline that does not parse (syntax, unknown element)
    /// is `Fatal`; one that fails to start (missing device, unreachable stream) is `Lost`.
    pub fn open(description: &str) -> Result<GstSource, SourceError> {
        init()?;
        let has_sink = description
            .split('!')
            .any(|e| e.trim_start().starts_with("appsink"));
        let full = if has_sink {
            description.to_string()
        } else {
            format!(
                "{description} ! appsink name=resq_sink caps=\"{SINK_CAPS}\" max-buffers=1 drop=true sync=true"
            )
        };
        let element = gst::parse::launch(&full).map_err(|e| {
            SourceError::Fatal(format!(
                "GStreamer pipeline `{description}` does not parse: {e} (check the element names with gst-inspect-1.0)"
            ))
        })?;
        let pipeline = element.downcast::<gst::Pipeline>().map_err(|_| {
            SourceError::Fatal(format!("GStreamer description `{description}` is not a pipeline; link a source to at least one element"))
        })?;
        let sink = pipeline
            .iterate_elements()
            .into_iter()
            .flatten()
            .find_map(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| {
                SourceError::Fatal(format!("GStreamer pipeline `{description}` has no appsink"))
            })?;
        let source = GstSource {
            description: description.to_string(),
            pipeline,
            sink,
            counter: 0,
            caps: String::new(),
        };
        if source.pipeline.set_state(gst::State::Playing).is_err() {
            let why = source
                .bus_error()
                .unwrap_or_else(|| "it refused to start".into());
            return Err(SourceError::Lost(format!(
                "GStreamer pipeline `{description}`: {why}"
            )));
        }
        Ok(source)
    }

    /// A video file, decoded by whatever decoders GStreamer has (`decodebin`).
    pub fn open_file(path: &Path) -> Result<GstSource, SourceError> {
        if path.is_dir() {
            return Err(SourceError::Fatal(format!(
                "{} is a folder, not a video file; pass --camera dir:{} for its images",
                path.display(),
                path.display()
            )));
        }
        if !path.is_file() {
            return Err(SourceError::Missing(format!(
                "video file {} does not exist; pass --camera file:PATH of a video file \
                 (or gst:PIPELINE, v4l2:/dev/videoN, dir:FOLDER)",
                path.display()
            )));
        }
        let location = path
            .display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('"', "\\\"");
        GstSource::open(&format!(
            "filesrc location=\"{location}\" ! decodebin ! videoconvert"
        ))
    }

    fn bus_error(&self) -> Option<String> {
        let bus = self.pipeline.bus()?;
        while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = msg.view() {
                let from = e.src().map(|s| s.name().to_string()).unwrap_or_default();
                let debug = e.debug().map(|d| format!(" ({d})")).unwrap_or_default();
                return Some(format!("{from}: {}{debug}", e.error()));
            }
        }
        None
    }

    fn copy(&mut self, sample: &gst::Sample, frame: &mut FrameBuf) -> Result<(), SourceError> {
        let bad = |m: String| SourceError::BadFrame(format!("GStreamer frame: {m}"));
        let caps = sample.caps().ok_or_else(|| bad("no caps".into()))?;
        let buffer = sample.buffer().ok_or_else(|| bad("no buffer".into()))?;
        let s = caps.structure(0).ok_or_else(|| bad("empty caps".into()))?;
        // The caps' size sizes the copy: a size over the limits ends the run, as every frame
        // would have it.
        let dim = |k| s.get::<i32>(k).unwrap_or(0).max(0) as usize;
        if let Err(why) = check_size(dim("width").max(1), dim("height").max(1)) {
            return Err(SourceError::Fatal(format!(
                "GStreamer pipeline `{}` delivers {}×{} frames: {why}; scale them down in the \
                 pipeline (… ! videoscale ! video/x-raw,width=640,height=480)",
                self.description,
                dim("width"),
                dim("height")
            )));
        }
        if s.name() == "image/jpeg" {
            let map = buffer.map_readable().map_err(|e| bad(e.to_string()))?;
            frame.set_jpeg(dim("width"), dim("height"), &map);
            self.caps = format!("{}×{} JPEG", dim("width"), dim("height"));
        } else {
            let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| bad(e.to_string()))?;
            let format = pixel_format(info.format()).ok_or_else(|| {
                bad(format!(
                    "format {:?} is not one resq-fw reads",
                    info.format()
                ))
            })?;
            let vf = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
                .map_err(|e| bad(e.to_string()))?;
            let (w, h) = (info.width() as usize, info.height() as usize);
            let mut planes: [(&[u8], usize); 3] = [(&[], 0); 3];
            for (p, plane) in planes.iter_mut().enumerate().take(vf.n_planes() as usize) {
                let data = vf.plane_data(p as u32).map_err(|e| bad(e.to_string()))?;
                *plane = (data, vf.plane_stride()[p].max(0) as usize);
            }
            frame
                .set_planes(format, w, h, &planes[..vf.n_planes() as usize])
                .map_err(|e| bad(e.to_string()))?;
            frame.range = if info.colorimetry().range() == gst_video::VideoColorRange::Range0_255 {
                YuvRange::Full
            } else {
                YuvRange::Limited
            };
            self.caps = format!("{w}×{h} {}", info.format().to_str());
        }
        frame.name = None;
        // Sources that count frames (cameras, videotestsrc) put the count in the offset; gaps
        // in it are frames dropped before inference.
        let seq = match buffer.offset() {
            u64::MAX => self.counter, // GST_BUFFER_OFFSET_NONE
            o => o,
        };
        self.counter += 1;
        frame.stamp(seq);
        Ok(())
    }
}

/// The fused preprocessing's name for a GStreamer raw format.
pub fn pixel_format(f: gst_video::VideoFormat) -> Option<PixelFormat> {
    use gst_video::VideoFormat as V;
    Some(match f {
        V::Yuy2 => PixelFormat::Yuyv,
        V::Uyvy => PixelFormat::Uyvy,
        V::Nv12 => PixelFormat::Nv12,
        V::Nv21 => PixelFormat::Nv21,
        V::I420 => PixelFormat::I420,
        V::Rgb => PixelFormat::Rgb24,
        V::Bgr => PixelFormat::Bgr24,
        V::Rgbx | V::Rgba => PixelFormat::Rgbx32,
        V::Bgrx | V::Bgra => PixelFormat::Bgrx32,
        V::Gray8 => PixelFormat::Grey8,
        _ => return None,
    })
}

impl FrameSource for GstSource {
    fn describe(&self) -> String {
        let caps = if self.caps.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.caps)
        };
        format!("GStreamer `{}`{caps}", self.description)
    }

    fn live(&self) -> bool {
        true
    }

    fn stall_after(&self) -> Option<Duration> {
        // Generous: RTSP and CSI pipelines can take seconds to deliver their first frame.
        Some(Duration::from_secs(20))
    }

    fn read(&mut self, frame: &mut FrameBuf) -> Result<Read, SourceError> {
        match self
            .sink
            .try_pull_sample(gst::ClockTime::from_mseconds(100))
        {
            Some(sample) => {
                self.copy(&sample, frame)?;
                Ok(Read::Frame)
            }
            // An error first: a failing element also sends end-of-stream after its error.
            None => match self.bus_error() {
                Some(why) => Err(SourceError::Lost(format!(
                    "GStreamer pipeline `{}`: {why}",
                    self.description
                ))),
                None if self.sink.is_eos() => Ok(Read::End),
                None => Ok(Read::Timeout),
            },
        }
    }
}

impl Drop for GstSource {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
