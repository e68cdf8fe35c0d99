//! The standard ResNet depths (from `resq synth`) and the CIFAR ResNet shortcut / pre-activation
//! variants convert, pass their self-test, and agree with tract f32 on real images.

use resq_e2e::{ic01_subset, photo_folder};
use resq_engine::{AlignedBytes, Engine};
use resq_format::Layout;
use resq_host::convert::{convert, ConvertOptions};
use resq_host::eval::{evaluate, EvalReport, Reference};
use resq_host::images::labelled_dataset;
use resq_host::synth::{synth_cifar_resnet, synth_resnet, Arch, CifarSpec, Shortcut, SynthSpec};

/// Converts `onnx` (calibrated on `calib`, ImageNet mean/std) and compares with tract on `images`.
fn convert_and_compare(
    onnx: &[u8],
    calib: &std::path::Path,
    images: &std::path::Path,
    imagenet: bool,
) -> (EvalReport, usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, onnx).unwrap();
    let (mean, std) = if imagenet {
        ([123.7, 116.3, 103.5], [58.4, 57.1, 57.4])
    } else {
        ([0.0; 3], [255.0; 3])
    };
    let opts = ConvertOptions {
        calib: Some(calib.to_path_buf()),
        mean,
        std,
        ..ConvertOptions::new(path.clone())
    };
    let c = convert(&opts).expect("convert");
    let bytes = AlignedBytes::new(&c.bytes);
    let mut engine = Engine::from_bytes(bytes.as_bytes()).expect("load");
    assert!(engine.self_test(), "self-test");
    let samples = labelled_dataset(images, None).expect("images");
    let reference = Reference::load(&path, Layout::Nchw).unwrap();
    (
        evaluate(&mut engine, &samples, Some(&reference)).expect("eval"),
        c.layers,
    )
}

fn check_imagenet_arch(arch: Arch) {
    let onnx = synth_resnet(&SynthSpec {
        arch,
        size: 224,
        classes: 1000,
        seed: 7,
    })
    .unwrap();
    let photos = photo_folder();
    let (r, layers) = convert_and_compare(&onnx, &photos.path().join("0"), photos.path(), true);
    eprintln!("{arch:?}: {layers} layers, {r:?}");
    assert!(
        r.cosine.unwrap() >= 0.98,
        "{arch:?}: cosine {:?} < 0.98",
        r.cosine
    );
}

#[test]
fn resnet18_224_agrees_with_tract_on_photos() {
    check_imagenet_arch(Arch::ResNet18);
}

#[test]
fn resnet50_224_agrees_with_tract_on_photos() {
    check_imagenet_arch(Arch::ResNet50);
}

fn check_cifar(shortcut: Shortcut, preact: bool) {
    let onnx = synth_cifar_resnet(&CifarSpec {
        depth: 14,
        shortcut,
        preact,
        classes: 10,
        seed: 3,
    })
    .unwrap();
    let calib = ic01_subset(30);
    // Evaluate on the calibration images as an ImageFolder of one class: agreement with f32 is what counts.
    let images = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(calib.path(), images.path().join("0")).unwrap();
    let (r, layers) = convert_and_compare(&onnx, calib.path(), images.path(), false);
    eprintln!("{shortcut:?} preact={preact}: {layers} layers, {r:?}");
    assert!(r.cosine.unwrap() >= 0.98, "cosine {:?}", r.cosine);
    assert!(
        r.agreement.unwrap() * 10 >= r.images * 8,
        "agreement {:?} of {}",
        r.agreement,
        r.images
    );
}

#[test]
fn cifar_resnet_with_zero_padding_shortcuts() {
    check_cifar(Shortcut::ZeroPad, false);
}

#[test]
fn cifar_resnet_with_projection_shortcuts() {
    check_cifar(Shortcut::Projection, false);
}

#[test]
fn preactivation_resnet_v2_with_zero_padding_shortcuts() {
    check_cifar(Shortcut::ZeroPad, true);
}

#[test]
fn preactivation_resnet_v2_with_projection_shortcuts() {
    check_cifar(Shortcut::Projection, true);
}
