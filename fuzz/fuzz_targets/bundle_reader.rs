//! Bundle / manifest reader: `Bundle::read_tar` on a `resq bundle` tar file (tar entries,
//! `manifest.json`, SHA-256 and content-hash checks), then what `resq flash` reads from an
//! accepted bundle (its board profile, release id, files). An input starting with `{` is
//! instead read as a bare `manifest.json`, as `resq flash` reads one back from a device
//! (`serde_json::from_str::<Manifest>`). Any input must give `Ok` or an error, never a panic.
//!
//! `read_tar` takes a path, so each input is written to a file under /dev/shm.
//!
//! The body is `resq_fuzz::bundle_reader::run`, shared with the regression tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| resq_fuzz::bundle_reader::run(data));
