//! ONNX importer: `resq_host::import::load` (tract parse, QOperator → QDQ rewrite, float16
//! widening, weight steps, typing) and `import` (tract graph → resq IR) on mutated small
//! models. Any input must give `Ok` or an error, never a panic.
//!
//! `load` takes a path, so each input is written to a file in a private, otherwise empty folder
//! under /dev/shm (external-data references resolve against that folder).
//!
//! The body is `resq_fuzz::onnx_import::run`, shared with the regression tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| resq_fuzz::onnx_import::run(data));
