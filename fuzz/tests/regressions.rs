//! Replays the fuzz targets' committed inputs through the very code the targets run
//! (`resq_fuzz::<target>::run`): every seed must run clean, and each minimised finding in
//! `regressions/<target>/` has a named test stating what a fixed tool does with it. A finding's
//! test fails until its bug is fixed; then it guards the fix.
//!
//! `cargo test --manifest-path fuzz/Cargo.toml --features fw` (add `onnx` for the importer's
//! seeds; that builds tract). Debug builds: overflow checks are on everywhere here.

use std::path::PathBuf;

fn dir(parts: &[&str]) -> PathBuf {
    parts
        .iter()
        .fold(PathBuf::from(env!("CARGO_MANIFEST_DIR")), |p, s| p.join(s))
}

fn read(parts: &[&str]) -> Vec<u8> {
    let p = dir(parts);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs `f` on a thread with a 64 MiB stack, as the fuzzer's main thread has plenty: a debug
/// build of `Model::parse` alone takes 1.5–1.9 MB of stack (a `Model` is 64 kB by value), over
/// a test thread's 2 MiB once the harness' frames are added.
fn big_stack(f: impl FnOnce() + Send + 'static) {
    let t = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(f)
        .expect("spawn");
    if let Err(e) = t.join() {
        std::panic::resume_unwind(e);
    }
}

fn replay_seeds(target: &'static str, run: fn(&[u8]), skip: fn(&str) -> bool) {
    big_stack(move || {
        let seeds = dir(&["seeds", target]);
        let mut n = 0;
        for entry in std::fs::read_dir(&seeds).expect("seeds folder") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if skip(name) {
                continue;
            }
            let data = std::fs::read(&path).expect("seed");
            eprintln!("{}", path.display());
            run(&data);
            n += 1;
        }
        assert!(n > 0, "no seeds in {}", seeds.display());
    });
}

fn none(_: &str) -> bool {
    false
}

#[test]
fn seeds_resq_model() {
    replay_seeds("resq_model", resq_fuzz::resq_model::run, none);
}

#[cfg(feature = "fw")]
#[test]
fn seeds_image_preprocess() {
    replay_seeds("image_preprocess", resq_fuzz::image_preprocess::run, none);
}

#[cfg(feature = "onnx")]
#[test]
fn seeds_onnx_import() {
    replay_seeds("onnx_import", resq_fuzz::onnx_import::run, none);
}

#[test]
fn seeds_bundle_reader() {
    replay_seeds("bundle_reader", resq_fuzz::bundle_reader::run, none);
}

/// Every committed bundle seed is a bundle `read_tar` accepts (so the fuzzer starts past the
/// SHA-256 and content-hash checks).
#[test]
fn bundle_seeds_are_accepted() {
    for name in ["bundle_small_fw.tar", "bundle_small_fw_model.tar"] {
        let path = dir(&["seeds", "bundle_reader", name]);
        resq_deploy::Bundle::read_tar(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

// ---- Findings ----------------------------------------------------------------------------

/// `FrameBuf::set_contiguous` (firmware/resq-fw/src/frame.rs, `plane.as_ptr() as usize -
/// base`) computes every plane's offset by subtracting pointers, including the unused planes,
/// which are `&[]` with a dangling address below the frame's: "attempt to subtract with
/// overflow" in any build with overflow checks, for every one-plane frame (RGB24, BGR24,
/// RGBX32, BGRX32, GREY, YUYV, UYVY) and the second and third plane of NV12 / NV21. Release
/// builds wrap and then ignore the value (`plane.is_empty()`), so only debug and test builds
/// panic. Input: a 1×1 RGB24 raw frame.
#[cfg(feature = "fw")]
#[test]
fn fw_set_contiguous_one_plane_frame_does_not_overflow() {
    let data = read(&[
        "regressions",
        "image_preprocess",
        "fw-set-contiguous-one-plane-rgb24-1x1",
    ]);
    resq_fuzz::image_preprocess::run(&data);
    // The same call, spelled out: a valid one-pixel RGB frame is accepted.
    let mut buf = resq_fw::frame::FrameBuf::default();
    buf.set_contiguous(resq_preprocess::PixelFormat::Rgb24, 1, 1, 0, &[10, 20, 30])
        .expect("a 1×1 RGB24 frame is valid");
}

/// `Bundle::read_tar` (host-tools/resq-deploy/src/bundle.rs) accepts any `id` in
/// `manifest.json` — the id is in no hash — and the installers join it into paths
/// (`releases/<id>`, local.rs `Local::release`): this bundle's id
/// `../../../../../../../../tmp/resq-escape` makes `resq flash --bundle FILE --to dir:ROOT`
/// write the release's files to /tmp/resq-escape, outside ROOT. A fixed reader refuses an id
/// that is not one plain path component (as `ssh::link_id` already does for ids read back).
#[test]
fn bundle_with_path_traversal_id_is_refused() {
    let path = dir(&[
        "regressions",
        "bundle_reader",
        "manifest-id-path-traversal.tar",
    ]);
    resq_fuzz::bundle_reader::run(&std::fs::read(&path).expect("input"));
    match resq_deploy::Bundle::read_tar(&path) {
        Ok(b) => panic!(
            "read_tar accepted a bundle whose release id {:?} leaves the releases folder",
            b.manifest.id
        ),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("id"), "the error names the id: {msg}");
        }
    }
}

/// A 242-byte JPEG (regressions/image_preprocess/zune-jpeg-avx2-idct-unwrap.jpg) makes
/// zune-jpeg 0.5.15, the `image` crate's JPEG decoder, panic in its AVX2 IDCT
/// (`zune-jpeg-0.5.15/src/idct/avx2.rs:247`, `Option::unwrap()` on `None`). Reached from
/// `resq_io::image_file::decode_image` (firmware/resq-io/src/image_file.rs:52, the
/// `reader.decode()` call: `resq convert --calib`, `resq eval`, resq-fw's folder source) and from
/// resq-fw's MJPEG frames (`classify::decode_jpeg`, firmware/resq-fw/src/classify.rs:188,
/// `decoder.read_image`). A panic in a dependency, but one resq can contain: a fixed decoder
/// returns an error for this file (e.g. `catch_unwind` around the decode, or a decoder that
/// does not panic).
#[cfg(feature = "fw")]
#[test]
fn zune_jpeg_idct_panic_is_an_image_error() {
    let jpeg = read(&[
        "regressions",
        "image_preprocess",
        "zune-jpeg-avx2-idct-unwrap.jpg",
    ]);
    let decoded = std::panic::catch_unwind(|| resq_io::image_file::decode_image(&jpeg));
    assert!(
        matches!(decoded, Ok(Err(_))),
        "decode_image panicked or accepted the file instead of returning an error"
    );
    let mut out = vec![];
    let frame = std::panic::catch_unwind(move || {
        resq_fw::classify::decode_jpeg(&jpeg, &mut out).map(|_| ())
    });
    assert!(
        matches!(frame, Ok(Err(_))),
        "resq-fw's MJPEG decode panicked or accepted the frame instead of returning an error"
    );
    // The fuzz inputs, through the target's code: the file path, the MJPEG-frame path.
    for name in [
        "zune-jpeg-avx2-idct-unwrap-image-file",
        "zune-jpeg-avx2-idct-unwrap-mjpeg-frame",
    ] {
        resq_fuzz::image_preprocess::run(&read(&["regressions", "image_preprocess", name]));
    }
}

/// regressions/onnx_import/tract-conv-empty-strides: a Conv with an empty `strides` attribute
/// panics inside tract (`tract-core-0.23.9/src/ops/cnn/padding.rs:77`, index out of bounds)
/// during `into_typed()` in `resq_host::import::load` (host-tools/resq-host/src/import.rs:101).
/// A fixed importer returns an error.
#[cfg(feature = "onnx")]
#[test]
fn onnx_conv_with_empty_strides_is_an_import_error() {
    onnx_no_panic("tract-conv-empty-strides");
}

/// regressions/onnx_import/tract-pad-huge-pads: a Pad with pads near `i64::MAX` panics inside
/// tract (`tract-core-0.23.9/src/model/fact.rs:21`, negative dimension assertion) during
/// `into_typed()` (host-tools/resq-host/src/import.rs:101).
#[cfg(feature = "onnx")]
#[test]
fn onnx_pad_with_huge_pads_is_an_import_error() {
    onnx_no_panic("tract-pad-huge-pads");
}

/// regressions/onnx_import/tract-squeeze-axis-out-of-range: Squeeze axis 4 of a rank-4 tensor
/// panics inside tract (`tract-hir-0.23.9/src/ops/array/squeeze.rs:20`, smallvec `index <
/// len`) during `into_typed()` (host-tools/resq-host/src/import.rs:101).
#[cfg(feature = "onnx")]
#[test]
fn onnx_squeeze_axis_out_of_range_is_an_import_error() {
    onnx_no_panic("tract-squeeze-axis-out-of-range");
}

#[cfg(feature = "onnx")]
fn onnx_no_panic(name: &str) {
    let data = read(&["regressions", "onnx_import", name]);
    let run = std::panic::catch_unwind(|| resq_fuzz::onnx_import::run(&data));
    assert!(
        run.is_ok(),
        "the importer panicked on {name} (inside tract)"
    );
}

/// regressions/onnx_import/tract-slow-symbolic-dims (186 kB): the fuzzer's 30 s timeout.
/// tract's symbolic dimensions blew up in `into_typed()` (~50 s, ~500 MB in a release build,
/// in `TDim::maybe_eval_to_i64`) before it failed on a Reshape. Fixed: the importer's shape pass
/// (host-tools/resq-host/src/shape_check.rs) refuses the residual Add whose operands cannot
/// meet before tract types the graph.
#[cfg(feature = "onnx")]
#[test]
fn onnx_symbolic_dimension_blowup_is_refused() {
    onnx_no_panic("tract-slow-symbolic-dims");
}

/// regressions/resq_model/in-place-packing-*.resq: data references that overlap made
/// `Engine::from_bytes_in_place` (firmware/resq-engine/src/lib.rs:239) pack weights over bytes
/// another layer reads — other output bytes than `Engine::from_bytes`
/// (`…-bias-aliases-next-weights`), or a file the re-parse refuses after `Model::parse`
/// accepted it (`…-overlap-refused-after-packing`). Through the target's code, with its
/// in-place oracle (`CHECK_IN_PLACE_OUTPUT`): refused up front, or loaded and agreeing.
#[test]
fn resq_in_place_packing_over_overlapping_data() {
    big_stack(|| {
        for name in [
            "in-place-packing-bias-aliases-next-weights.resq",
            "in-place-packing-overlap-refused-after-packing.resq",
        ] {
            resq_fuzz::resq_model::run(&read(&["regressions", "resq_model", name]));
        }
    });
}
