//! `dir:PATH[?loop=true&fps=N]`: the PNG / JPEG images of a folder (recursively, sorted by
//! path, as the host tool lists them), once or looped, optionally paced like a camera.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use resq_preprocess::PixelFormat;

use super::{option_value, query, FrameSource, Read, SourceError};
use crate::frame::FrameBuf;

/// A parsed `dir:` URI.
#[derive(Clone, Debug, PartialEq)]
pub struct DirSpec {
    /// The folder.
    pub path: PathBuf,
    /// Start again after the last image.
    pub looped: bool,
    /// Pace frames at this rate (then the source is live: slow inference drops frames).
    pub fps: Option<f64>,
}

impl DirSpec {
    pub(crate) fn parse(rest: &str) -> Result<DirSpec, SourceError> {
        let (path, opts) = query("dir:", rest, &["loop", "fps"])?;
        if path.is_empty() {
            return Err(SourceError::Fatal(
                "camera URI `dir:` needs a folder, e.g. `dir:models/photos`".into(),
            ));
        }
        let mut spec = DirSpec {
            path: PathBuf::from(path),
            looped: false,
            fps: None,
        };
        for (k, v) in opts {
            match k {
                "loop" => {
                    spec.looped = match v {
                        "" | "true" | "1" | "yes" => true,
                        "false" | "0" | "no" => false,
                        _ => {
                            return Err(SourceError::Fatal(format!(
                                "dir: `loop={v}` is not true or false"
                            )))
                        }
                    }
                }
                _ => {
                    let fps: f64 = option_value("dir:", k, v, "a frame rate above 0")?;
                    if !(fps > 0.0 && fps.is_finite()) {
                        return Err(SourceError::Fatal(format!(
                            "dir: `fps={v}` is not a frame rate above 0"
                        )));
                    }
                    spec.fps = Some(fps);
                }
            }
        }
        Ok(spec)
    }
}

/// The images of a folder as frames (RGB, decoded here).
pub struct DirSource {
    spec: DirSpec,
    files: Vec<PathBuf>,
    next: usize,
    seq: u64,
    due: Option<Instant>,
}

impl DirSource {
    /// Lists the folder. A folder that does not exist is `Missing` (a wrong path at start-up;
    /// once it was read, it may come back: a card mounted again, a camera that writes stills);
    /// a file instead of a folder, or a folder without images, is `Fatal`.
    pub fn open(spec: &DirSpec) -> Result<DirSource, SourceError> {
        let p = spec.path.display();
        if spec.path.is_file() {
            return Err(SourceError::Fatal(format!(
                "{p} is a file, not a folder; pass --camera dir:FOLDER of PNG / JPEG images, \
                 or classify the file with `resq-fw classify`"
            )));
        }
        let files = resq_io::image_file::list_images(&spec.path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                SourceError::Missing(format!(
                    "folder {p} does not exist; pass --camera dir:FOLDER of PNG / JPEG images"
                ))
            } else {
                SourceError::Lost(e.to_string())
            }
        })?;
        if files.is_empty() {
            return Err(SourceError::Fatal(format!(
                "no PNG or JPEG images in {}; point dir: to a folder of images",
                spec.path.display()
            )));
        }
        Ok(DirSource {
            spec: spec.clone(),
            files,
            next: 0,
            seq: 0,
            due: None,
        })
    }
}

impl FrameSource for DirSource {
    fn describe(&self) -> String {
        format!(
            "folder {} ({} images{}{})",
            self.spec.path.display(),
            self.files.len(),
            if self.spec.looped { ", looped" } else { "" },
            self.spec
                .fps
                .map(|f| format!(", {f} frames/s"))
                .unwrap_or_default()
        )
    }

    fn live(&self) -> bool {
        self.spec.fps.is_some()
    }

    fn read(&mut self, frame: &mut FrameBuf) -> Result<Read, SourceError> {
        if self.next >= self.files.len() {
            if !self.spec.looped {
                return Ok(Read::End);
            }
            // Each pass lists the folder again, so images added meanwhile are seen.
            self.files = resq_io::image_file::list_images(&self.spec.path)
                .map_err(|e| SourceError::Lost(e.to_string()))?;
            self.next = 0;
            if self.files.is_empty() {
                return Err(SourceError::Lost(format!(
                    "no images left in {}",
                    self.spec.path.display()
                )));
            }
        }
        if let (Some(fps), Some(due)) = (self.spec.fps, self.due) {
            let now = Instant::now();
            if now < due {
                // Short naps, so a stop request is seen quickly.
                std::thread::sleep((due - now).min(Duration::from_millis(50)));
                return Ok(Read::Timeout);
            }
            let period = Duration::from_secs_f64(1.0 / fps);
            // Never "catch up" with a burst after a stall.
            self.due = Some((due + period).max(now));
        } else if let Some(fps) = self.spec.fps {
            self.due = Some(Instant::now() + Duration::from_secs_f64(1.0 / fps));
        }
        let path = self.files[self.next].clone();
        self.next += 1;
        // Size limits before the pixels are allocated; damaged files (a truncated JPEG) refused.
        let img = match resq_io::read_image(&path) {
            Ok(img) => img,
            Err(e) => {
                return Err(if self.spec.path.is_dir() {
                    SourceError::BadFrame(format!("skipping {e:#}"))
                } else {
                    SourceError::Lost(format!("folder {} is gone", self.spec.path.display()))
                })
            }
        };
        let (w, h) = (img.width() as usize, img.height() as usize);
        frame
            .set_contiguous(PixelFormat::Rgb24, w, h, 0, img.as_raw())
            .map_err(|e| SourceError::BadFrame(format!("skipping {}: {e}", path.display())))?;
        frame.name = Some(
            path.strip_prefix(&self.spec.path)
                .unwrap_or(&path)
                .display()
                .to_string(),
        );
        frame.stamp(self.seq);
        self.seq += 1;
        Ok(Read::Frame)
    }
}
