//! The resize recipe from `resq convert`'s flags to the file and back, the mean / std warnings,
//! ImageFolder classes matched to the model's labels, and the reference input-size check.
//!
//! Run in release mode (`cargo test --release -p resq-host --test preprocess`).

use std::path::{Path, PathBuf};

use resq_engine::{AlignedBytes, Engine};
use resq_format::{ChannelOrder, Layout, Model, Resize, ResizeMode};
use resq_host::convert::{convert, ConvertOptions, Converted, ResizeOptions};
use resq_host::eval::{check_reference_input, preprocess_of, Reference};
use resq_host::images::{describe_resize, labelled_dataset, labelled_dataset_for, Preprocess};
use resq_host::import::load;
use resq_host::synth::{synth_resnet, Arch, SynthSpec};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

fn photos() -> PathBuf {
    models().join("photos")
}

fn opts(resize: Option<u32>, crop_ratio: Option<f64>, mode: ResizeMode) -> ResizeOptions {
    ResizeOptions {
        resize,
        crop_ratio,
        crop: None,
        mode,
    }
}

// ---------------------------------------------------------------------------------------------
// Flags → recipe.

#[test]
fn the_default_recipe_is_the_shorter_side_to_the_input() {
    let r = ResizeOptions::default().recipe(224, 224).unwrap();
    assert_eq!(r, Resize::shorter_side(224, 224));
    let r = ResizeOptions::default().recipe(32, 48).unwrap();
    assert_eq!(r.size, [48, 32], "[width, height]");
}

#[test]
fn resize_and_crop_ratio_give_the_torchvision_and_timm_sizes() {
    use ResizeMode::*;
    let r = opts(Some(256), None, Shorter).recipe(224, 224).unwrap();
    assert_eq!(
        r,
        Resize {
            mode: Shorter,
            size: [256, 256]
        }
    );
    // timm: floor(224 / crop_pct).
    for (ratio, size) in [(0.875, 256), (0.95, 235), (0.9, 248), (1.0, 224)] {
        let r = opts(None, Some(ratio), Shorter).recipe(224, 224).unwrap();
        assert_eq!(r.size, [size, size], "crop ratio {ratio}");
    }
    let r = opts(None, None, Squash).recipe(224, 224).unwrap();
    assert_eq!(
        r,
        Resize {
            mode: Squash,
            size: [224, 224]
        }
    );
    let r = opts(Some(256), None, Squash).recipe(224, 224).unwrap();
    assert_eq!(
        r,
        Resize {
            mode: Squash,
            size: [256, 256]
        }
    );
    // A non-square input (64 high, 96 wide): --resize sets the shorter side of an input-shaped
    // box; --crop-ratio scales both sides.
    let r = opts(Some(80), None, Shorter).recipe(64, 96).unwrap();
    assert_eq!(r.size, [120, 80]);
    let r = opts(None, Some(0.8), Shorter).recipe(64, 96).unwrap();
    assert_eq!(r.size, [120, 80]);
}

#[test]
fn crop_must_be_the_model_input() {
    let mut o = opts(Some(256), None, ResizeMode::Shorter);
    o.crop = Some([224, 224]);
    assert!(o.recipe(224, 224).is_ok());
    o.crop = Some([200, 200]);
    let e = o.recipe(224, 224).unwrap_err().to_string();
    assert!(
        e.contains("--crop 200") && e.contains("224×224") && e.contains("--crop 224"),
        "{e}"
    );
    o.crop = Some([64, 96]);
    assert!(o.recipe(64, 96).is_ok());
    let e = o.recipe(96, 64).unwrap_err().to_string();
    assert!(
        e.contains("--crop 64x96") && e.contains("--crop 96x64"),
        "{e}"
    );
}

#[test]
fn bad_recipes_name_the_flag_and_the_input() {
    use ResizeMode::Shorter;
    let err = |o: ResizeOptions| o.recipe(224, 224).unwrap_err().to_string();
    let e = err(opts(Some(200), None, Shorter));
    assert!(
        e.contains("--resize 200") && e.contains("smaller") && e.contains("224×224"),
        "{e}"
    );
    let e = err(opts(Some(0), None, Shorter));
    assert!(e.contains("--resize 0"), "{e}");
    let e = err(opts(Some(70_000), None, Shorter));
    assert!(e.contains("--resize 70000") && e.contains("65535"), "{e}");
    for bad in [0.0, -0.5, 1.5, f64::NAN] {
        let e = err(opts(None, Some(bad), Shorter));
        assert!(
            e.contains("--crop-ratio") && e.contains("at most 1"),
            "{bad}: {e}"
        );
    }
    let e = err(opts(None, Some(0.001), Shorter));
    assert!(e.contains("65535"), "{e}");
    let e = err(opts(Some(256), Some(0.875), Shorter));
    assert!(e.contains("--resize and --crop-ratio"), "{e}");
}

#[test]
fn recipes_read_as_words() {
    use ResizeMode::*;
    let say = |mode, size: [u32; 2], w, h| describe_resize(Resize { mode, size }, w, h);
    assert_eq!(
        say(Shorter, [256, 256], 224, 224),
        "resize shorter side to 256, centre crop 224×224"
    );
    assert_eq!(
        say(Shorter, [32, 32], 32, 32),
        "resize shorter side to 32, centre crop 32×32"
    );
    assert_eq!(
        say(Squash, [224, 224], 224, 224),
        "squash to 224×224 (aspect ratio not kept), no crop"
    );
    assert_eq!(
        say(Squash, [256, 240], 224, 224),
        "squash to 256×240 (aspect ratio not kept), centre crop 224×224"
    );
    assert_eq!(
        say(Shorter, [120, 80], 96, 64),
        "resize to cover 120×80 (aspect ratio kept), centre crop 96×64"
    );
    let pre = Preprocess {
        height: 224,
        width: 224,
        resize: Resize {
            mode: Shorter,
            size: [256, 256],
        },
        channels: ChannelOrder::Rgb,
        layout: Layout::Nchw,
        mean: [123.675, 116.28, 103.53],
        std: [58.395, 57.12, 57.375],
    };
    assert_eq!(
        pre.to_string(),
        "resize shorter side to 256, centre crop 224×224, RGB, mean 123.675,116.28,103.53, \
         std 58.395,57.12,57.375 (pixel units 0..255)"
    );
}

// ---------------------------------------------------------------------------------------------
// Through `convert` into the file, and back.

/// A synthetic ResNet-18 with a `size`² input, written into `dir`.
fn synth(dir: &Path, size: u32) -> PathBuf {
    let path = dir.join(format!("r18-{size}.onnx"));
    let bytes = synth_resnet(&SynthSpec {
        arch: Arch::ResNet18,
        size,
        classes: 10,
        seed: 1,
    })
    .unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

fn convert_with(onnx: &Path, edit: impl FnOnce(&mut ConvertOptions)) -> anyhow::Result<Converted> {
    let mut o = ConvertOptions {
        calib: Some(photos()),
        mean: [123.675, 116.28, 103.53],
        std: [58.395, 57.12, 57.375],
        mean_std_given: true,
        // The six photos: these tests are about other warnings.
        warn_below_images: 0,
        ..ConvertOptions::new(onnx)
    };
    edit(&mut o);
    convert(&o)
}

#[test]
fn the_recipe_is_stored_and_used_by_eval_and_calibration() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = synth(dir.path(), 64);
    let c = convert_with(&onnx, |o| {
        o.resize = ResizeOptions {
            resize: Some(80),
            crop: Some([64, 64]),
            ..ResizeOptions::default()
        }
    })
    .unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let want = Resize {
        mode: ResizeMode::Shorter,
        size: [80, 80],
    };
    assert_eq!(c.preprocess.resize, want);
    let bytes = AlignedBytes::new(&c.bytes);
    let engine = Engine::from_bytes(bytes.as_bytes()).unwrap();
    assert_eq!(engine.model().header.version, resq_format::FORMAT_VERSION);
    assert_eq!(engine.model().resize, want);
    let pre = preprocess_of(&engine);
    assert_eq!(pre, c.preprocess);

    // The self-test input is the first calibration image preprocessed by the recipe: the
    // resize reaches calibration.
    let first = resq_host::images::list_images(&photos()).unwrap()[0].clone();
    let px = pre.load_pixels(&first).unwrap();
    let lut = engine.model().i8s(engine.model().meta.input.lut);
    let want_input: Vec<i8> = px
        .iter()
        .enumerate()
        .map(|(i, &p)| lut[(i % 3) * 256 + p as usize])
        .collect();
    let st = engine.model().i8s(engine.model().meta.self_test.input);
    assert_eq!(st, &want_input[..]);
    let default = Preprocess {
        resize: Resize::shorter_side(64, 64),
        ..pre
    };
    assert_ne!(
        default.load_pixels(&first).unwrap(),
        px,
        "the recipe changes the pixels"
    );

    // Squash is stored as such.
    let c = convert_with(&onnx, |o| o.resize.mode = ResizeMode::Squash).unwrap();
    let bytes = AlignedBytes::new(&c.bytes);
    let model = Model::parse(bytes.as_bytes()).unwrap();
    assert_eq!(
        model.resize,
        Resize {
            mode: ResizeMode::Squash,
            size: [64, 64]
        }
    );

    // A bad recipe names the model file and the flag.
    let e = convert_with(&onnx, |o| o.resize.resize = Some(50)).unwrap_err();
    let e = format!("{e:#}");
    assert!(
        e.contains("r18-64.onnx") && e.contains("--resize 50") && e.contains("64×64"),
        "{e}"
    );
}

#[test]
fn mean_and_std_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = synth(dir.path(), 32);
    // Defaults, not given: raw pixels.
    let c = convert_with(&onnx, |o| {
        o.mean = [0.0; 3];
        o.std = [1.0; 3];
        o.mean_std_given = false;
    })
    .unwrap();
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    let w = &c.warnings[0];
    assert!(
        w.contains("raw 0..255 pixels") && w.contains("--mean 0 --std 1"),
        "{w}"
    );
    // The same values given explicitly: intended, no warning.
    let c = convert_with(&onnx, |o| {
        o.mean = [0.0; 3];
        o.std = [1.0; 3];
    })
    .unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // torchvision's 0..1 values.
    let c = convert_with(&onnx, |o| {
        o.mean = [0.485, 0.456, 0.406];
        o.std = [0.229, 0.224, 0.225];
    })
    .unwrap();
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].contains(
            "resq's mean/std are in pixel units 0..255; for torchvision use \
             --mean 123.675,116.28,103.53 --std 58.395,57.12,57.375"
        ),
        "{}",
        c.warnings[0]
    );
    // Pixel units: nothing to say.
    let c = convert_with(&onnx, |_| {}).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

// ---------------------------------------------------------------------------------------------
// ImageFolder classes.

const CIFAR: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// An ImageFolder with one copy of a photo in each of `folders`.
fn image_folder(folders: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in folders {
        std::fs::create_dir_all(dir.path().join(f)).unwrap();
        std::fs::copy(
            photos().join("chelsea.png"),
            dir.path().join(f).join("chelsea.png"),
        )
        .unwrap();
    }
    dir
}

fn classes(dir: &Path, labels: &[&str]) -> Vec<usize> {
    labelled_dataset_for(dir, None, labels)
        .unwrap()
        .samples
        .iter()
        .map(|s| s.label)
        .collect()
}

#[test]
fn class_folders_are_matched_to_the_labels_by_name() {
    // Only three of ten classes: sorted order would say 0, 1, 2.
    let d = image_folder(&["cat", "dog", "ship"]);
    assert_eq!(classes(d.path(), &CIFAR), [3, 5, 8]);
    let ds = labelled_dataset_for(d.path(), None, &CIFAR).unwrap();
    assert_eq!(ds.note, None);
    // Case-insensitively, after an exact match.
    let d = image_folder(&["Cat", "TRUCK"]);
    assert_eq!(classes(d.path(), &CIFAR), [3, 9]);
    let d = image_folder(&["Cat", "cat"]);
    assert_eq!(classes(d.path(), &["Cat", "cat"]), [0, 1]);
    // Numbered folders are that class.
    let d = image_folder(&["0", "3", "9"]);
    assert_eq!(classes(d.path(), &CIFAR), [0, 3, 9]);
    // ... unless a label has that name.
    let d = image_folder(&["1"]);
    assert_eq!(classes(d.path(), &["0", "2", "1"]), [2]);
}

#[test]
fn a_folder_matching_no_label_is_an_error_listing_the_labels() {
    let d = image_folder(&["cat", "unicorn"]);
    let e = labelled_dataset_for(d.path(), None, &CIFAR)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unicorn") && e.contains("matches none of the model's labels"),
        "{e}"
    );
    assert!(e.contains(&CIFAR.join(", ")), "{e}");
    let d = image_folder(&["10"]);
    let e = labelled_dataset_for(d.path(), None, &CIFAR)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("class number 10") && e.contains("10 classes"),
        "{e}"
    );
    // A long label list is cut.
    let many: Vec<String> = (0..1000).map(|i| format!("class_{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let d = image_folder(&["x"]);
    let e = labelled_dataset_for(d.path(), None, &many)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("class_49, …") && e.contains("1000 in all") && !e.contains("class_50"),
        "{e}"
    );
}

#[test]
fn without_labels_numbered_folders_are_classes_and_others_sorted_with_a_note() {
    let d = image_folder(&["0", "3"]);
    let ds = labelled_dataset_for(d.path(), None, &[]).unwrap();
    assert_eq!(
        ds.samples.iter().map(|s| s.label).collect::<Vec<_>>(),
        [0, 3]
    );
    assert_eq!(ds.note, None);
    let d = image_folder(&["dog", "cat"]);
    let ds = labelled_dataset_for(d.path(), None, &[]).unwrap();
    assert_eq!(
        ds.samples.iter().map(|s| s.label).collect::<Vec<_>>(),
        [0, 1]
    );
    let note = ds.note.unwrap();
    assert!(
        note.contains("no class labels") && note.contains("cat = 0, dog = 1"),
        "{note}"
    );
    assert!(note.contains("--labels"), "{note}");
    // The label-less entry point agrees.
    assert_eq!(labelled_dataset(d.path(), None).unwrap(), ds.samples);
}

// ---------------------------------------------------------------------------------------------
// The reference's input size.

#[test]
fn a_reference_with_another_input_size_is_refused_with_both_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let small = synth(dir.path(), 32);
    let big = synth(dir.path(), 64);
    let c = convert_with(&small, |_| {}).unwrap();
    let file = dir.path().join("small.resq");
    std::fs::write(&file, &c.bytes).unwrap();
    let bytes = AlignedBytes::new(&c.bytes);
    let model = Model::parse(bytes.as_bytes()).unwrap();
    assert!(Reference::load_for(&small, &model, &file).is_ok());
    let e = Reference::load_for(&big, &model, &file)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("64×64×3") && e.contains("32×32×3"), "{e}");
    assert!(
        e.contains("r18-64.onnx") && e.contains("small.resq") && e.contains("r18-32.onnx"),
        "{e}"
    );
    let source = load(&big, Layout::Nchw).unwrap();
    let e2 = check_reference_input(&model, &file, &big, &source)
        .unwrap_err()
        .to_string();
    assert_eq!(e, e2, "one check");
}
