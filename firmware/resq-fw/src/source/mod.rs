//! Frame sources behind one trait, chosen by URI:
//!
//! | URI | source |
//! |---|---|
//! | `v4l2:/dev/videoN[?width=W&height=H&format=YUYV\|MJPG\|NV12\|GREY\|…]` | a V4L2 camera (USB UVC webcams), mmap streaming |
//! | `gst:PIPELINE` | a GStreamer pipeline ending in an appsink (CSI cameras via `libcamerasrc` / `nvarguscamerasrc`, RTSP, tests) |
//! | `dir:PATH[?loop=true&fps=N]` | the PNG / JPEG images of a folder, once or looped |
//! | `file:PATH` | a video file, through GStreamer |

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::frame::FrameBuf;

pub mod dir;
#[cfg(feature = "gstreamer")]
pub mod gst;
pub mod v4l2;

/// What a read gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// `frame` holds a new frame.
    Frame,
    /// Nothing yet (the caller checks for a stop request and reads again).
    Timeout,
    /// The source ended (end of a video or of a folder read once).
    End,
}

/// Why a source failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceError {
    /// The source is gone or not there yet (unplugged camera, missing folder, pipeline error):
    /// the service retries with back-off.
    Lost(String),
    /// One frame was unusable; the source goes on.
    BadFrame(String),
    /// The URI or the device cannot work as given; retrying will not help.
    Fatal(String),
    /// The device, folder or file does not exist. When the source has never opened, the
    /// command line names something that is not there: the run ends at start-up, saying what
    /// to pass instead. Once it has opened, it went away (an unplugged camera, an unmounted
    /// card): the service waits for it like [`SourceError::Lost`].
    Missing(String),
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceError::Lost(m)
            | SourceError::BadFrame(m)
            | SourceError::Fatal(m)
            | SourceError::Missing(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for SourceError {}

/// A source of frames: a camera, a pipeline, a folder — or, in tests, a mock camera.
pub trait FrameSource: Send {
    /// What it is, for logs (device, negotiated format and size).
    fn describe(&self) -> String;

    /// Whether frames arrive at the source's own pace (a camera): then stale frames are
    /// dropped for the newest. A source that is not live waits for inference instead, so
    /// every frame is classified (a folder read without `fps`).
    fn live(&self) -> bool;

    /// How long without a frame means the source is lost (`None`: never).
    fn stall_after(&self) -> Option<Duration> {
        None
    }

    /// Fills `frame` with the next frame. Blocks for at most a few hundred milliseconds.
    fn read(&mut self, frame: &mut FrameBuf) -> Result<Read, SourceError>;
}

/// A parsed `--camera` URI.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceSpec {
    /// `v4l2:`
    V4l2(v4l2::V4l2Spec),
    /// `gst:`
    Gst(String),
    /// `dir:`
    Dir(dir::DirSpec),
    /// `file:`
    File(PathBuf),
}

/// The URI forms, for error messages.
pub const URI_FORMS: &str = "v4l2:/dev/videoN[?width=W&height=H&format=YUYV|MJPG|NV12|GREY], \
                             gst:PIPELINE, dir:PATH[?loop=true&fps=N] or file:PATH";

impl FromStr for SourceSpec {
    type Err = SourceError;

    fn from_str(uri: &str) -> Result<Self, SourceError> {
        let fatal = |m: String| SourceError::Fatal(m);
        let (scheme, rest) = uri.split_once(':').ok_or_else(|| {
            let hint = if uri.starts_with("/dev/video") {
                format!(" (did you mean v4l2:{uri}?)")
            } else {
                String::new()
            };
            fatal(format!(
                "camera URI `{uri}` has no scheme{hint}; use {URI_FORMS}"
            ))
        })?;
        match scheme {
            "v4l2" => Ok(SourceSpec::V4l2(v4l2::V4l2Spec::parse(rest)?)),
            "gst" => {
                if rest.trim().is_empty() {
                    return Err(fatal(
                        "camera URI `gst:` needs a pipeline, e.g. `gst:videotestsrc ! videoconvert`".into(),
                    ));
                }
                Ok(SourceSpec::Gst(rest.trim().to_string()))
            }
            "dir" => Ok(SourceSpec::Dir(dir::DirSpec::parse(rest)?)),
            "file" => {
                if rest.is_empty() {
                    return Err(fatal(
                        "camera URI `file:` needs a path, e.g. `file:clip.mp4`".into(),
                    ));
                }
                Ok(SourceSpec::File(PathBuf::from(rest)))
            }
            other => Err(fatal(format!(
                "camera URI `{uri}`: unknown scheme `{other}:`; use {URI_FORMS}"
            ))),
        }
    }
}

impl SourceSpec {
    /// Opens the source.
    pub fn open(&self) -> Result<Box<dyn FrameSource>, SourceError> {
        match self {
            SourceSpec::V4l2(spec) => Ok(Box::new(v4l2::V4l2Source::open(spec)?)),
            SourceSpec::Dir(spec) => Ok(Box::new(dir::DirSource::open(spec)?)),
            #[cfg(feature = "gstreamer")]
            SourceSpec::Gst(pipeline) => Ok(Box::new(gst::GstSource::open(pipeline)?)),
            #[cfg(feature = "gstreamer")]
            SourceSpec::File(path) => Ok(Box::new(gst::GstSource::open_file(path)?)),
            #[cfg(not(feature = "gstreamer"))]
            SourceSpec::Gst(_) | SourceSpec::File(_) => Err(SourceError::Fatal(
                "this resq-fw was built without GStreamer (cargo feature `gstreamer`), which gst: \
                 and file: sources need; use v4l2: or dir:, or build resq-fw with default features \
                 on a machine with the GStreamer development libraries"
                    .into(),
            )),
        }
    }

    /// Whether each image is a different scene (a folder of photos): then scores are not
    /// smoothed across frames unless asked.
    pub fn is_stills(&self) -> bool {
        matches!(self, SourceSpec::Dir(_))
    }
}

/// `key=value` options of a URI.
pub(crate) type Options<'a> = Vec<(&'a str, &'a str)>;

/// Splits `path?key=value&…` into the path and its options, refusing keys not in `known`.
pub(crate) fn query<'a>(
    uri_kind: &str,
    rest: &'a str,
    known: &[&str],
) -> Result<(&'a str, Options<'a>), SourceError> {
    let (path, q) = rest.split_once('?').unwrap_or((rest, ""));
    let mut opts = vec![];
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if !known.contains(&k) {
            return Err(SourceError::Fatal(format!(
                "{uri_kind}: URI option `{k}` is unknown; known options: {}",
                known.join(", ")
            )));
        }
        opts.push((k, v));
    }
    Ok((path, opts))
}

/// Parses one URI option value, naming it in the error.
pub(crate) fn option_value<T: FromStr>(
    uri_kind: &str,
    key: &str,
    value: &str,
    what: &str,
) -> Result<T, SourceError> {
    value
        .parse()
        .map_err(|_| SourceError::Fatal(format!("{uri_kind}: `{key}={value}` is not {what}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_and_bad_ones_say_what_to_write() {
        let s: SourceSpec = "v4l2:/dev/video2?width=320&height=240&format=MJPG"
            .parse()
            .unwrap();
        let SourceSpec::V4l2(v) = s else { panic!() };
        assert_eq!(
            (v.path.as_str(), v.width, v.height),
            ("/dev/video2", Some(320), Some(240))
        );
        let s: SourceSpec = "dir:photos?loop=true&fps=2.5".parse().unwrap();
        assert_eq!(
            s,
            SourceSpec::Dir(dir::DirSpec {
                path: "photos".into(),
                looped: true,
                fps: Some(2.5)
            })
        );
        assert!(
            matches!("gst:videotestsrc ! videoconvert".parse(), Ok(SourceSpec::Gst(p)) if p == "videotestsrc ! videoconvert")
        );

        let err = |uri: &str| uri.parse::<SourceSpec>().unwrap_err().to_string();
        assert!(err("/dev/video0").contains("did you mean v4l2:/dev/video0?"));
        assert!(err("http://x").contains("unknown scheme `http:`"));
        assert!(err("v4l2:/dev/video0?fmt=YUYV")
            .contains("option `fmt` is unknown; known options: width, height, format"));
        assert!(
            err("v4l2:/dev/video0?format=H264").contains("format `H264` is not one resq-fw reads")
        );
        assert!(
            err("v4l2:/dev/video0?width=wide").contains("`width=wide` is not a number of pixels")
        );
        assert!(err("dir:x?fps=0").contains("`fps=0` is not a frame rate above 0"));
        assert!(err("gst:").contains("needs a pipeline"));
    }
}
