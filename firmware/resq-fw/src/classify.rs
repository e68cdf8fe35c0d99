//! One frame in, class scores out: fused preprocessing into the engine's input, inference,
//! top-k.

use std::io::Cursor;

use anyhow::Result;
use image::codecs::jpeg::JpegDecoder;
use image::{ColorType, ImageDecoder};
use resq_engine::Engine;
use resq_preprocess::{
    channel_count, ChannelOrder, Frame, PixelFormat, PreprocessError, Resampler, Resize,
};

use crate::frame::{check_size, FrameBuf};
use crate::model::ModelFile;

/// Most entries a top-k list holds.
pub const MAX_TOP_K: usize = 10;

/// The best classes, highest score first: `(class, score)`.
pub type TopK = heapless::Vec<(usize, f32), MAX_TOP_K>;

/// The `k` (at most [`MAX_TOP_K`]) highest scores, highest first; ties go to the lower class.
pub fn top_k(scores: &[f32], k: usize) -> TopK {
    let mut top = TopK::new();
    let k = k.clamp(1, MAX_TOP_K);
    for (class, &s) in scores.iter().enumerate() {
        let pos = top.iter().position(|&(_, t)| s > t).unwrap_or(top.len());
        if pos < k {
            if top.len() == k {
                top.pop();
            }
            // Cannot fail: one slot was freed above when the list was full.
            let _ = top.insert(pos, (class, s));
        }
    }
    top
}

/// Why one frame could not be classified (the service logs it and goes on).
#[derive(Debug)]
pub enum FrameError {
    /// The frame's bytes do not match its announced format or size.
    Frame(PreprocessError),
    /// A JPEG frame did not decode.
    Jpeg(String),
    /// The engine refused the prepared input.
    Input(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Frame(e) => e.fmt(f),
            FrameError::Jpeg(e) => write!(f, "MJPEG frame does not decode: {e}"),
            FrameError::Input(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for FrameError {}

impl From<PreprocessError> for FrameError {
    fn from(e: PreprocessError) -> Self {
        FrameError::Frame(e)
    }
}

/// Turns frames into the model's input: plans (and keeps) a resampler per frame size and resize
/// recipe, and decodes JPEG frames into a reused buffer.
#[derive(Default)]
pub struct Preparer {
    resampler: Option<(Resize, Resampler)>,
    decoded: Vec<u8>,
    input: Vec<i8>,
}

impl Preparer {
    /// Runs `f` on the frame as the fused preprocessing reads it (a JPEG decoded first) with a
    /// resampler planned for `resize` and then the centre crop to a `w`×`h` output.
    fn with_frame(
        &mut self,
        frame: &FrameBuf,
        resize: Resize,
        w: usize,
        h: usize,
        f: impl FnOnce(&mut Resampler, &Frame) -> Result<(), PreprocessError>,
    ) -> Result<(), FrameError> {
        let Preparer {
            resampler, decoded, ..
        } = self;
        let raw = match frame.raw() {
            Some(raw) => raw?,
            None => {
                let (format, fw, fh) = decode_jpeg(&frame.data, decoded)?;
                Frame::contiguous(format, fw, fh, 0, decoded)?
            }
        };
        let planned = resampler.as_ref().is_some_and(|(planned, r)| {
            let g = r.geometry();
            *planned == resize && g.source == [raw.width, raw.height] && g.output == [w, h]
        });
        if !planned {
            let r = Resampler::with_resize(raw.width, raw.height, resize, w, h)?;
            *resampler = Some((resize, r));
        }
        match resampler.as_mut() {
            Some((_, r)) => Ok(f(r, &raw)?),
            None => unreachable!("planned above"),
        }
    }

    /// The model-input pixels (`[h][w][c]` in `order`) of a frame resized by `resize` and
    /// centre-cropped to `w`×`h`: what the host tool computes for the same image.
    pub fn pixels(
        &mut self,
        frame: &FrameBuf,
        resize: Resize,
        w: usize,
        h: usize,
        order: ChannelOrder,
        out: &mut [u8],
    ) -> Result<(), FrameError> {
        self.with_frame(frame, resize, w, h, |r, raw| r.pixels(raw, order, out))
    }

    /// The int8 input of a frame through the model's lookup table, in one pass.
    #[allow(clippy::too_many_arguments)]
    pub fn quantize(
        &mut self,
        frame: &FrameBuf,
        resize: Resize,
        w: usize,
        h: usize,
        order: ChannelOrder,
        lut: &[i8],
        out: &mut [i8],
    ) -> Result<(), FrameError> {
        self.with_frame(frame, resize, w, h, |r, raw| {
            r.quantize(raw, order, lut, out)
        })
    }

    /// Writes `frame` into `engine`'s input (resize by the file's recipe, centre crop, colour,
    /// normalisation and quantization in one pass).
    pub fn prepare(&mut self, frame: &FrameBuf, engine: &mut Engine) -> Result<(), FrameError> {
        let model = engine.model();
        let resize = model.resize;
        let shape = model.input().shape;
        let (h, w) = (shape[1] as usize, shape[2] as usize);
        let order = model.meta.input.channels;
        let lut = model.i8s(model.meta.input.lut);
        let mut input = std::mem::take(&mut self.input);
        input.resize(h * w * channel_count(order), 0);
        let result = self
            .quantize(frame, resize, w, h, order, lut, &mut input)
            .and_then(|_| {
                engine
                    .set_input(&input)
                    .map_err(|e| FrameError::Input(e.to_string()))
            });
        self.input = input;
        result
    }
}

/// Decodes a JPEG into `out` (reused), returning its pixel format and size.
pub fn decode_jpeg(
    bytes: &[u8],
    out: &mut Vec<u8>,
) -> Result<(PixelFormat, usize, usize), FrameError> {
    let bad = |e: image::ImageError| FrameError::Jpeg(e.to_string());
    let decoder = JpegDecoder::new(Cursor::new(bytes)).map_err(bad)?;
    let (w, h) = decoder.dimensions();
    // The header's size would size the buffer below: a damaged or hostile header is refused.
    check_size(w as usize, h as usize)
        .map_err(|why| FrameError::Jpeg(format!("its header says {why}")))?;
    let format = match decoder.color_type() {
        ColorType::L8 => PixelFormat::Grey8,
        ColorType::Rgb8 => PixelFormat::Rgb24,
        other => {
            return Err(FrameError::Jpeg(format!(
                "unsupported JPEG colour type {other:?}"
            )))
        }
    };
    out.resize(decoder.total_bytes() as usize, 0);
    // zune-jpeg 0.5 panics on some damaged JPEGs (fuzz/regressions/image_preprocess).
    resq_io::contain_panic(|| decoder.read_image(out))
        .map_err(|p| FrameError::Jpeg(format!("the decoder failed on the frame ({p})")))?
        .map_err(bad)?;
    Ok((format, w as usize, h as usize))
}

/// A model, its engine and its preprocessing: frames in, scores out. One per worker thread.
///
/// Scores are always probabilities: the softmax of the model's dequantized outputs, whether
/// or not the source model ended in a softmax (a `.resq` file stores the int8 graph up to the
/// softmax and flags it; the engine leaves the softmax to its caller). The dequantized outputs
/// themselves, before any softmax, are the logits.
pub struct Classifier {
    engine: Engine<'static>,
    prep: Preparer,
    logits: Vec<f32>,
    probabilities: Vec<f32>,
}

/// The model's dequantized outputs (`logits`, before any softmax) and their softmax
/// (`probabilities`), both of the model's class count.
pub fn read_scores(engine: &Engine, logits: &mut [f32], probabilities: &mut [f32]) {
    let t = engine.model().output();
    for (l, &q) in logits.iter_mut().zip(engine.output()) {
        *l = t.scale * (q as f32 - t.zero_point as f32);
    }
    probabilities.copy_from_slice(logits);
    resq_engine::softmax(probabilities);
}

impl Classifier {
    /// A classifier with its own engine over `model`.
    pub fn new(model: ModelFile) -> Result<Classifier> {
        let engine = model.engine()?;
        let classes = engine.model().classes();
        Ok(Classifier {
            engine,
            prep: Preparer::default(),
            logits: vec![0.0; classes],
            probabilities: vec![0.0; classes],
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine<'static> {
        &self.engine
    }

    /// Class probabilities of one frame (see [`Classifier::logits`] for the raw outputs).
    pub fn classify(&mut self, frame: &FrameBuf) -> Result<&[f32], FrameError> {
        self.prep.prepare(frame, &mut self.engine)?;
        Ok(self.infer())
    }

    /// The logits of the last frame classified: the model's dequantized outputs, before the
    /// softmax that makes [`Classifier::classify`]'s probabilities.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// Preprocessing alone (for benchmarks).
    pub fn prepare(&mut self, frame: &FrameBuf) -> Result<(), FrameError> {
        self.prep.prepare(frame, &mut self.engine)
    }

    /// Inference alone on the prepared input (for benchmarks): the class probabilities.
    pub fn infer(&mut self) -> &[f32] {
        self.engine.run();
        read_scores(&self.engine, &mut self.logits, &mut self.probabilities);
        &self.probabilities
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_is_sorted_and_prefers_lower_classes_on_ties() {
        let s = [0.1, 0.5, 0.2, 0.5, 0.0];
        let t: Vec<_> = top_k(&s, 3).into_iter().collect();
        assert_eq!(t, vec![(1, 0.5), (3, 0.5), (2, 0.2)]);
        assert_eq!(top_k(&s, 100).len(), 5);
        assert_eq!(top_k(&s, 0).len(), 1);
    }

    #[test]
    fn an_mjpeg_frame_claiming_a_huge_size_is_refused_before_its_buffer_is_sized() {
        let mut jpeg = vec![];
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .encode(&[90; 16 * 8 * 3], 16, 8, image::ExtendedColorType::Rgb8)
            .unwrap();
        let mut out = vec![];
        assert_eq!(
            decode_jpeg(&jpeg, &mut out).unwrap(),
            (PixelFormat::Rgb24, 16, 8)
        );
        // SOF0: FF C0, length (2), precision (1), height (2), width (2).
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        jpeg[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]); // 60000 × 60000
        let e = decode_jpeg(&jpeg, &mut out).unwrap_err().to_string();
        assert!(
            e.contains("its header says it is 60000×60000 pixels, over the limit"),
            "{e}"
        );
        assert!(
            out.capacity() < 1 << 20,
            "{} bytes set aside",
            out.capacity()
        );
    }
}
