//! What the tests share: a tiny real `.resq` model that names the dominant colour of a frame,
//! a mock camera and a mock GPIO pin behind the same traits as the real ones.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use embedded_hal::digital::{ErrorKind, ErrorType, OutputPin};
use resq_engine::{AlignedBytes, Engine};
use resq_format::write::{patch_data, TinyModel};
use resq_format::{AvgPool, ChannelOrder, Layout, Op, Pool};
use resq_fw::frame::FrameBuf;
use resq_fw::model::ModelFile;
use resq_fw::source::{FrameSource, Read, SourceError};
use resq_preprocess::PixelFormat;

/// Labels of [`colour_model`].
pub const COLOURS: [&str; 3] = ["red", "green", "blue"];

/// A real `.resq` file: an 8×8 RGB input, global average pooling, softmax over the three
/// channel means ×4 — so a frame's label is its dominant colour. Small enough for qemu.
pub fn colour_model() -> Vec<u8> {
    colour_model_with(true)
}

/// [`colour_model`], ending in a softmax or not (then its outputs are logits).
pub fn colour_model_with(softmax: bool) -> Vec<u8> {
    let n = 8u32;
    let mut m = TinyModel::new("colours", "resq-fw tests");
    let image = m.tensor("image", [n, n, 3], 1.0 / 128.0, 0);
    let colour = m.tensor("colour", [1, 1, 3], 1.0 / 32.0, 0);
    // pixel p → q = p − 128 at scale 1/128: x = (p − 128) / 128.
    let lut: Vec<i8> = (0..3)
        .flat_map(|_| (0..256).map(|p| (p - 128) as i8))
        .collect();
    m.input(image, Layout::Nhwc, ChannelOrder::Rgb, &lut)
        .normalisation([128.0; 3], [128.0; 3])
        .output(colour, softmax)
        .labels("red\ngreen\nblue");
    let p = m.provenance_mut();
    p.source_name = "colours (test)";
    p.method = "none";
    // Output scale 1/32 and 4 × the mean: mult(n) = 2¹⁶ · 4 · (1/128) / ((1/32) · n) = 2¹⁶ / n.
    let mults: Vec<i32> = (1..=n * n)
        .map(|c| ((65536.0 / c as f64).round()) as i32)
        .collect();
    let mults = m.data().push_i32(&mults);
    let window = Pool {
        input: image,
        output: colour,
        kernel: [n as u16; 2],
        stride: [n as u16; 2],
        pad: [0; 4],
    };
    m.layer(
        "mean",
        Op::AvgPool(AvgPool {
            window,
            count_include_pad: false,
            shift: 16,
            mults,
        }),
    );
    let red: Vec<i8> = (0..n * n).flat_map(|_| [127i8, -128, -128]).collect();
    let st_out = m.self_test(&red, &[0, 0, 0]).expected;
    let mut file = m.write().expect("write");
    // The expected self-test output is whatever the engine computes for it.
    let expected = {
        let bytes = AlignedBytes::new(&file);
        let mut e = Engine::from_bytes(bytes.as_bytes()).expect("tiny model parses");
        e.set_input(&red).unwrap();
        e.run();
        e.output().iter().map(|&q| q as u8).collect::<Vec<u8>>()
    };
    patch_data(&mut file, st_out, &expected);
    file
}

/// [`colour_model`] written to a temporary file and loaded.
pub fn colour_model_file() -> (tempfile::TempDir, ModelFile) {
    colour_model_file_with(true)
}

/// [`colour_model_with`] written to a temporary file and loaded.
pub fn colour_model_file_with(softmax: bool) -> (tempfile::TempDir, ModelFile) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("colours.resq");
    std::fs::write(&path, colour_model_with(softmax)).unwrap();
    let m = ModelFile::load(&path).unwrap();
    (dir, m)
}

/// A `w`×`h` YUYV frame of one colour (BT.601 limited range).
pub fn yuyv_frame(rgb: [u8; 3], w: usize, h: usize, seq: u64) -> FrameBuf {
    let (r, g, b) = (rgb[0] as f64, rgb[1] as f64, rgb[2] as f64);
    let y = (16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0).round() as u8;
    let u = (128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0).round() as u8;
    let v = (128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0).round() as u8;
    let data: Vec<u8> = (0..w * h / 2).flat_map(|_| [y, u, y, v]).collect();
    let mut f = FrameBuf::default();
    f.set_contiguous(PixelFormat::Yuyv, w, h, 0, &data).unwrap();
    f.stamp(seq);
    f
}

/// What the mock camera does next.
#[derive(Clone, Debug)]
pub enum Step {
    /// Deliver a frame of this colour.
    Frame([u8; 3]),
    /// Deliver bytes that are not a JPEG, announced as MJPEG.
    BrokenJpeg,
    /// The camera disappears.
    Lose,
    /// The driver panics.
    Panic,
    /// Nothing to read this time.
    Idle,
    /// The stream ends.
    End,
}

/// A scripted camera shared between the test and the source the service opens.
#[derive(Clone, Default)]
pub struct Script {
    pub steps: Arc<Mutex<VecDeque<Step>>>,
    /// Results of successive opens (`Ok` opens; `Err` fails with that error).
    pub opens: Arc<Mutex<VecDeque<Result<(), SourceError>>>>,
    pub opened: Arc<Mutex<u32>>,
    pub live: bool,
    pub size: (usize, usize),
}

impl Script {
    pub fn new(steps: impl IntoIterator<Item = Step>, live: bool) -> Script {
        Script {
            steps: Arc::new(Mutex::new(steps.into_iter().collect())),
            live,
            size: (64, 48),
            ..Default::default()
        }
    }

    /// An opener for the service: each call follows `opens`, then succeeds.
    pub fn opener(&self) -> resq_fw::service::Opener {
        let s = self.clone();
        Box::new(move || {
            *s.opened.lock().unwrap() += 1;
            if let Some(Err(e)) = s.opens.lock().unwrap().pop_front() {
                return Err(e);
            }
            Ok(Box::new(MockCamera {
                script: s.clone(),
                seq: 0,
            }) as Box<dyn FrameSource>)
        })
    }
}

/// The mock camera device: the same trait as V4L2 and GStreamer sources.
pub struct MockCamera {
    script: Script,
    seq: u64,
}

impl FrameSource for MockCamera {
    fn describe(&self) -> String {
        "mock camera".into()
    }
    fn live(&self) -> bool {
        self.script.live
    }
    fn read(&mut self, frame: &mut FrameBuf) -> Result<Read, SourceError> {
        let step = self
            .script
            .steps
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Step::End);
        let (w, h) = self.script.size;
        match step {
            Step::Frame(c) => {
                *frame = yuyv_frame(c, w, h, self.seq);
                self.seq += 1;
                Ok(Read::Frame)
            }
            Step::BrokenJpeg => {
                frame.set_jpeg(w, h, b"not a jpeg");
                frame.stamp(self.seq);
                self.seq += 1;
                Ok(Read::Frame)
            }
            Step::Lose => Err(SourceError::Lost("mock camera unplugged".into())),
            Step::Panic => panic!("mock driver bug"),
            Step::Idle => Ok(Read::Timeout),
            Step::End => Ok(Read::End),
        }
    }
}

/// A GPIO line that records what it is driven to.
#[derive(Clone, Debug)]
pub struct MockPin {
    pub name: &'static str,
    pub log: PinLog,
    /// Fail every write while set.
    pub broken: Arc<std::sync::atomic::AtomicBool>,
}

/// The error of a broken [`MockPin`].
#[derive(Debug)]
pub struct PinBroken;

impl embedded_hal::digital::Error for PinBroken {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

impl ErrorType for MockPin {
    type Error = PinBroken;
}

impl OutputPin for MockPin {
    fn set_low(&mut self) -> Result<(), PinBroken> {
        self.set(false)
    }
    fn set_high(&mut self) -> Result<(), PinBroken> {
        self.set(true)
    }
}

impl MockPin {
    fn set(&mut self, high: bool) -> Result<(), PinBroken> {
        if self.broken.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(PinBroken);
        }
        self.log.lock().unwrap().push((self.name, high));
        Ok(())
    }
}

/// What mock pins were driven to, in order: `(pin name, high)`.
pub type PinLog = Arc<Mutex<Vec<(&'static str, bool)>>>;

/// Pins sharing one log.
pub fn pins(names: &[&'static str]) -> (PinLog, Vec<MockPin>) {
    let log = Arc::new(Mutex::new(vec![]));
    let pins = names
        .iter()
        .map(|&name| MockPin {
            name,
            log: log.clone(),
            broken: Default::default(),
        })
        .collect();
    (log, pins)
}

/// The shipped ResNet-8 converted by the host tool (as `resq demo` does), once per test
/// binary, with the demo's own classification of the shipped photos.
#[cfg(target_arch = "x86_64")]
pub fn resnet8() -> &'static (std::path::PathBuf, Vec<resq_host::demo::DemoResult>) {
    static MODEL: std::sync::OnceLock<(std::path::PathBuf, Vec<resq_host::demo::DemoResult>)> =
        std::sync::OnceLock::new();
    MODEL.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_stem().unwrap().to_string_lossy().into_owned();
        let out =
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("resnet8-{name}.resq"));
        let results = resq_host::demo::run_demo(&models(), &out, &resq_host::progress::NoProgress)
            .expect("convert models/resnet8");
        (out, results)
    })
}

// Not every test binary uses both.
#[allow(unused_imports)]
pub use resq_e2e::{models, photos};
