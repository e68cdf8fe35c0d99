//! Minimised findings of the fuzz targets (`fuzz/`, see fuzz/README.md), one named test each,
//! fed through the code path the fuzzer found them on. Each test states what a fixed tool does
//! with its input, so it fails until the bug is fixed and guards the fix afterwards.
//!
//! The inputs live in `fuzz/regressions/<target>/`. The fuzz crate's `tests/regressions.rs`
//! replays them through the fuzz targets' own bodies (on demand, with the fuzz crate); the
//! tests here call the public function each finding reached. resq-fw is built with overflow
//! checks in release too (the workspace's `[profile.release.package.resq-fw]`), so its
//! arithmetic findings fail here as they did under the fuzzer.

use std::path::{Path, PathBuf};

use resq_engine::{AlignedBytes, Engine, EngineOptions, Isa};
use resq_format::Model;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn regression(target: &str, name: &str) -> Vec<u8> {
    let path = root().join("fuzz/regressions").join(target).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The output bytes of `engine` for a fixed pixel pattern.
fn output(engine: &mut Engine) -> Vec<i8> {
    let len = engine.input_mut().len();
    let pixels: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
    engine.set_input_pixels(&pixels).expect("input length");
    engine.run();
    engine.output().to_vec()
}

/// fuzz/regressions/resq_model/in-place-packing-bias-aliases-next-weights.resq: the committed
/// seed keras_resnet50v2_squash.resq with one bit of the metadata changed (byte 7628, 0xB0 →
/// 0xB4; CRC re-sealed), so layer 51's bias `DataRef` moves from offset 22560 to 23072, inside
/// layer 53's weights (23104..23360 overlaps 23072..23200). `Model::parse` accepts the overlap;
/// `Engine::from_bytes` reads the original bytes, while `Engine::from_bytes_in_place`
/// (firmware/resq-engine/src/lib.rs:239, `resq bench` and low-RAM boards) packs layer 53's
/// weights over them first, so layer 51 reads packed weight bytes as its bias and the two
/// engines give different outputs for the same file and input (no panic, silently wrong
/// scores). A fixed loader refuses overlapping data references, or in-place packing leaves
/// shared bytes alone.
#[test]
fn resq_in_place_packing_with_a_bias_aliasing_other_weights() {
    in_place_agrees_or_refused("in-place-packing-bias-aliases-next-weights.resq");
}

/// fuzz/regressions/resq_model/in-place-packing-overlap-refused-after-packing.resq (85 kB, a
/// mutated resnet8_demo.resq, CRC re-sealed): layer 3's weights (6192..6704) overlap layer 4's
/// (6448..11056). `Model::parse` accepted it, `Engine::from_bytes` ran it, but
/// `Engine::from_bytes_in_place` (firmware/resq-engine/src/lib.rs:239) packed one layer's
/// weights over the other's bytes and its re-parse then refused the file it had just accepted
/// ("OutOfRange … multiplier -582942696, ≥ 0" on layer 3): the same overlap as above, another
/// symptom. A fixed loader refuses the file up front, or both engines load it and agree.
#[test]
fn resq_in_place_packing_over_overlapping_weights() {
    in_place_agrees_or_refused("in-place-packing-overlap-refused-after-packing.resq");
}

/// `fuzz/regressions/resq_model/NAME` is refused by `Model::parse`, or the copying and the
/// in-place engine both load it and compute the same output bytes.
fn in_place_agrees_or_refused(name: &'static str) {
    // A debug build of `Model::parse` takes 1.5–1.9 MB of stack (a `Model` is 64 kB by value):
    // too close to a test thread's 2 MiB with two engines built here.
    let t = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || in_place_agrees_or_refused_on(name))
        .expect("spawn");
    if let Err(e) = t.join() {
        std::panic::resume_unwind(e);
    }
}

fn in_place_agrees_or_refused_on(name: &str) {
    let bytes = regression("resq_model", name);
    let file = AlignedBytes::new(&bytes);
    let model = match Model::parse(file.as_bytes()) {
        Err(e) => {
            // Refused: the clean error a fixed loader may give.
            assert!(!e.to_string().is_empty());
            return;
        }
        Ok(m) => m,
    };
    let options = EngineOptions {
        threads: 1,
        isa: Some(Isa::Generic),
    };
    let mut copied = Engine::with_options(model, options).expect("engine");
    let want = output(&mut copied);
    let mut buf = AlignedBytes::new(&bytes);
    let mut in_place = Engine::from_bytes_in_place(buf.as_bytes_mut(), options)
        .unwrap_or_else(|e| panic!("{name}: parsed, but does not load in place: {e}"));
    assert_eq!(
        output(&mut in_place),
        want,
        "the in-place engine computes other scores than the copying one for the same file"
    );
}

/// fuzz/regressions/image_preprocess/fw-set-contiguous-one-plane-rgb24-1x1: a 1×1 RGB24 raw
/// frame. `FrameBuf::set_contiguous` (firmware/resq-fw/src/frame.rs:106,
/// `plane.as_ptr() as usize - base`) subtracts the frame's address from every plane's, the
/// unused planes' `&[]` too: "attempt to subtract with overflow" with overflow checks (debug and
/// test builds) for every one-plane format and the unused plane of NV12 / NV21.
#[test]
fn fw_set_contiguous_one_plane_frame_does_not_overflow() {
    // The fuzz input's frame: RGB24, 1×1 (its recipe header says so; the pixel is its payload).
    assert!(!regression("image_preprocess", "fw-set-contiguous-one-plane-rgb24-1x1").is_empty());
    let mut buf = resq_fw::frame::FrameBuf::default();
    for (format, w, h, bytes) in [
        (resq_preprocess::PixelFormat::Rgb24, 1, 1, 3),
        (resq_preprocess::PixelFormat::Grey8, 1, 1, 1),
        (resq_preprocess::PixelFormat::Nv12, 2, 2, 6),
        (resq_preprocess::PixelFormat::Nv21, 2, 2, 6),
    ] {
        buf.set_contiguous(format, w, h, 0, &vec![10; bytes])
            .unwrap_or_else(|e| panic!("a {w}×{h} {format:?} frame is valid: {e}"));
    }
}

/// fuzz/regressions/bundle_reader/manifest-id-path-traversal.tar: a valid bundle whose
/// manifest `id` (covered by no hash) is `../../../../../../../../tmp/resq-escape`.
/// `Bundle::read_tar` (host-tools/resq-deploy/src/bundle.rs) accepts it, and
/// `resq flash --bundle FILE --to dir:ROOT` then writes the release's files to
/// /tmp/resq-escape, outside ROOT (local.rs joins the id into `releases/<id>`).
#[test]
fn bundle_with_path_traversal_id_is_refused() {
    let path = root().join("fuzz/regressions/bundle_reader/manifest-id-path-traversal.tar");
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

/// fuzz/regressions/image_preprocess/zune-jpeg-avx2-idct-unwrap.jpg: a 242-byte JPEG on which
/// zune-jpeg 0.5.15 (the `image` crate's JPEG decoder) panics in its AVX2 IDCT
/// (`zune-jpeg-0.5.15/src/idct/avx2.rs:247`, `Option::unwrap()` on `None`): `resq convert
/// --calib DIR` with this file in DIR exits 101 with a panic, as does `resq eval`, through
/// `resq_io::image_file::decode_image` (firmware/resq-io/src/image_file.rs:52). resq-fw's MJPEG
/// frames reach the same panic (`fw` test of the fuzz crate). A fixed loader reports a bad image.
#[test]
fn zune_jpeg_idct_panic_is_an_image_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.jpg");
    std::fs::write(
        &path,
        regression("image_preprocess", "zune-jpeg-avx2-idct-unwrap.jpg"),
    )
    .expect("write");
    let pre = resq_host::images::Preprocess {
        height: 32,
        width: 32,
        resize: resq_format::Resize::shorter_side(32, 32),
        channels: resq_format::ChannelOrder::Rgb,
        layout: resq_format::Layout::Nchw,
        mean: [0.0; 3],
        std: [1.0; 3],
    };
    let loaded = std::panic::catch_unwind(|| pre.load_pixels(&path));
    assert!(
        matches!(loaded, Ok(Err(_))),
        "load_pixels panicked or accepted the file instead of returning an error"
    );
}

/// The resq-fw side of the same JPEG: an MJPEG camera frame through `classify::decode_jpeg`.
#[test]
fn zune_jpeg_idct_panic_in_an_mjpeg_frame_is_a_frame_error() {
    let jpeg = regression("image_preprocess", "zune-jpeg-avx2-idct-unwrap.jpg");
    let mut out = vec![];
    let frame = std::panic::catch_unwind(move || {
        resq_fw::classify::decode_jpeg(&jpeg, &mut out).map(|_| ())
    });
    assert!(
        matches!(frame, Ok(Err(_))),
        "resq-fw's MJPEG decode panicked or accepted the frame instead of returning an error"
    );
}

/// fuzz/regressions/onnx_import/tract-conv-empty-strides.onnx (642 bytes; the fuzzer's input,
/// a mutated Keras ResNet-50 v2, is `…/tract-conv-empty-strides` with its layout byte): a Conv
/// whose `strides` attribute is present but empty. **tract panics**
/// (`tract-core-0.23.9/src/ops/cnn/padding.rs:77`, "index out of bounds: the len is 0 but the
/// index is 0", from tract-hir's Conv `output_shape`) inside `into_typed()`, called by
/// `resq_host::import::load` (host-tools/resq-host/src/import.rs:101); `resq convert` on the file
/// exits 101 with that panic. A bug in tract that resq can contain (check Conv attributes
/// before typing, or catch the unwind around tract): a fixed importer reports a bad model.
#[test]
fn onnx_conv_with_empty_strides_is_an_import_error() {
    onnx_import_refuses("tract-conv-empty-strides.onnx");
}

/// fuzz/regressions/onnx_import/tract-pad-huge-pads.onnx (254 bytes; found as a Keras
/// ResNet-50 v2 whose `pad_const__2317` became `[i64::MAX, …]`): a constant-mode Pad whose
/// pads are near `i64::MAX`. **tract panics** (`tract-core-0.23.9/src/model/fact.rs:21`,
/// "assertion failed: self.dims.iter().all(|d| … d >= 0 …)": the padded dimension wrapped
/// negative) while wiring `Pad18` in `into_typed()`, from `resq_host::import::load`
/// (host-tools/resq-host/src/import.rs:101). A fixed importer reports a bad model.
#[test]
fn onnx_pad_with_huge_pads_is_an_import_error() {
    onnx_import_refuses("tract-pad-huge-pads.onnx");
}

/// fuzz/regressions/onnx_import/tract-squeeze-axis-out-of-range.onnx (170 bytes; found as a
/// Keras ResNet-50 v2 whose `const_axes__2813` became `[4, 3]`): Squeeze with axis 4 of a
/// rank-4 tensor. **tract panics** (`tract-hir-0.23.9/src/ops/array/squeeze.rs:20`, smallvec
/// "assertion failed: index < len") during shape inference in `into_typed()`, from
/// `resq_host::import::load` (host-tools/resq-host/src/import.rs:101). A fixed importer
/// reports a bad model.
#[test]
fn onnx_squeeze_axis_out_of_range_is_an_import_error() {
    onnx_import_refuses("tract-squeeze-axis-out-of-range.onnx");
}

/// `import::load` on `fuzz/regressions/onnx_import/NAME` returns an error, without panicking.
fn onnx_import_refuses(name: &str) {
    let path = root().join("fuzz/regressions/onnx_import").join(name);
    let loaded = std::panic::catch_unwind(|| {
        resq_host::import::load(&path, resq_format::Layout::Nchw).map(|_| ())
    });
    assert!(
        matches!(loaded, Ok(Err(_))),
        "import::load panicked on {name} (inside tract) or accepted it, instead of returning an error"
    );
}

/// fuzz/regressions/onnx_import/tract-slow-symbolic-dims: a mutated Keras ResNet-50 v2
/// (186 kB; first byte 1 = the fuzz target's NHWC flag, then the ONNX file) whose Conv attribute
/// names are damaged (`str:des`, `pafs`) and whose batch is symbolic. tract's symbolic
/// dimension expressions (`TDim`) grew until `into_typed()` spent ~50 s and ~500 MB
/// (release build, this machine) in `tract_data::dim::tree::TDim::maybe_eval_to_i64`, only to
/// fail with "Could not find matching reshape grouping" and 350 kB of shape expressions. The
/// importer's own shape pass (host-tools/resq-host/src/shape_check.rs) now refuses it before
/// tract types the graph, naming the residual Add whose operands cannot meet.
#[test]
fn onnx_symbolic_dimension_blowup_is_refused() {
    let bytes = regression("onnx_import", "tract-slow-symbolic-dims");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, &bytes[1..]).expect("write");
    let loaded = std::panic::catch_unwind(|| {
        resq_host::import::load(&path, resq_format::Layout::Nhwc).map(|_| ())
    });
    let msg = match loaded {
        Ok(Err(e)) => format!("{e:#}"),
        Ok(Ok(())) => panic!("accepted"),
        Err(_) => panic!("panicked"),
    };
    assert!(
        msg.contains("(Add)") && msg.contains("do not broadcast"),
        "{msg}"
    );
}
