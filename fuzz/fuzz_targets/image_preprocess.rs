//! Image decoders + preprocessing: the bytes of an image file (or a camera frame) through the
//! code each tool runs on it, into a model input of up to 64×64 with a fuzzed resize recipe.
//! Any input must give `Ok` or an error, never a panic.
//!
//! Input: a 12-byte recipe header, then the payload.
//!
//! | byte | meaning |
//! | --- | --- |
//! | 0 | bits 0–1 path: 0, 1 = `resq_io::image_file::decode_image` then `Resampler` (what `resq` and `resq-fw` do with image files); 2 = an MJPEG camera frame through `resq_fw::classify::Preparer`; 3 = a raw camera frame (`FrameBuf::set_contiguous`, format byte 7) through `Preparer` and `Resampler`. bit 2: squash (else shorter side). bits 3–4: channel order (RGB, BGR, grey, RGB). bit 5: full-range YUV. bit 6: resize size taken as is (else input + size % 256, always valid). bit 7: padded stride for raw frames |
//! | 1, 2 | model input width, height: 1 + byte % 64 |
//! | 3–4, 5–6 | resize size width, height (u16 LE) |
//! | 7 | raw pixel format (index % 10) |
//! | 8–9, 10–11 | raw frame / announced JPEG width, height (u16 LE) |
//!
//! The body is `resq_fuzz::image_preprocess::run`, shared with the regression tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| resq_fuzz::image_preprocess::run(data));
