//! Host side of resq: import an ONNX ResNet through tract, calibrate it on real images,
//! quantize it to int8 and write a `.resq` file; evaluate files against tract's f32 answers;
//! generate standard ResNets for tests and benchmarks.
//!
//! The pipeline: [`import::load`] + [`import::import`] (ONNX → float IR with fusions) →
//! [`calibrate::calibrate`] (activation ranges) → [`quantize::quantize`] (int8 file).
//! [`convert::convert`] runs all three.
#![warn(missing_docs)]

pub mod calibrate;
pub mod convert;
pub mod demo;
pub mod eval;
pub mod images;
pub mod import;
pub mod ir;
pub mod progress;
pub mod qoperator;
pub mod quantize;
pub mod report;
mod shape_check;
pub mod synth;
