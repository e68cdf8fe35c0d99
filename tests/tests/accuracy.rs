//! Accuracy of converted ResNet-8 files on the 200 real CIFAR-10 ic01 images, against tract's f32
//! answers on the same preprocessed inputs.

use resq_e2e::{ic01, ic01_subset, resnet8};
use resq_engine::{AlignedBytes, Engine};
use resq_format::Layout;
use resq_host::calibrate::Method;
use resq_host::convert::{convert, ConvertOptions};
use resq_host::eval::{evaluate, EvalReport, Reference};
use resq_host::images::labelled_dataset;

fn options(model: &str, calib: &std::path::Path, method: Method) -> ConvertOptions {
    ConvertOptions {
        calib: Some(calib.to_path_buf()),
        method,
        ..ConvertOptions::new(resnet8(model))
    }
}

fn convert_and_eval(model: &str, method: Method) -> EvalReport {
    let calib = ic01_subset(100);
    let converted = convert(&options(model, calib.path(), method)).expect("convert");
    let bytes = AlignedBytes::new(&converted.bytes);
    let mut engine = Engine::from_bytes(bytes.as_bytes()).expect("load");
    assert!(engine.self_test(), "the file's self-test vector must pass");
    let (png, csv) = ic01();
    let samples = labelled_dataset(&png, Some(&csv)).expect("dataset");
    assert_eq!(samples.len(), 200);
    let reference = Reference::load(&resnet8(model), Layout::Nchw).expect("reference");
    let r = evaluate(&mut engine, &samples, Some(&reference)).expect("eval");
    eprintln!("{model} {method:?}: {r:?}");
    r
}

fn assert_targets(r: &EvalReport) {
    // The official TFLite int8 model scores 170/200; tract f32 171/200.
    assert_eq!(r.top1_f32, Some(171), "tract f32 top-1 on ic01");
    assert!(r.top1_int8 >= 170, "int8 top-1 {} < 170/200", r.top1_int8);
    assert!(
        r.agreement.unwrap() >= 194,
        "agreement {:?} < 97 %",
        r.agreement
    );
    assert!(r.cosine.unwrap() >= 0.99, "cosine {:?} < 0.99", r.cosine);
}

#[test]
fn resnet8_with_batchnorm_meets_int8_targets() {
    assert_targets(&convert_and_eval("model_float.onnx", Method::MinMax));
}

#[test]
fn resnet8_bn_folded_meets_int8_targets() {
    assert_targets(&convert_and_eval(
        "model_float_bnfolded.onnx",
        Method::MinMax,
    ));
}

#[test]
fn resnet8_percentile_calibration_meets_int8_targets() {
    assert_targets(&convert_and_eval(
        "model_float.onnx",
        Method::Percentile(99.99),
    ));
}

#[test]
fn conversion_is_deterministic() {
    let calib = ic01_subset(20);
    let a = convert(&options(
        "model_float.onnx",
        calib.path(),
        Method::Percentile(99.9),
    ))
    .unwrap();
    let b = convert(&options(
        "model_float.onnx",
        calib.path(),
        Method::Percentile(99.9),
    ))
    .unwrap();
    assert!(a.bytes == b.bytes, "same inputs must give the same bytes");
}

#[test]
fn file_is_within_five_percent_of_its_payload() {
    let calib = ic01_subset(10);
    let mut opts = options("model_float.onnx", calib.path(), Method::MinMax);
    opts.labels = Some(resq_e2e::models().join("resnet8/labels.txt"));
    let c = convert(&opts).unwrap();
    let bytes = AlignedBytes::new(&c.bytes);
    let m = resq_format::Model::parse(bytes.as_bytes()).unwrap();
    let mut payload = m.meta.labels.len() as u64;
    payload += (m.meta.self_test.input.len + m.meta.self_test.expected.len) as u64;
    for l in &m.meta.layers {
        if let resq_format::Op::Conv(c) = l.op {
            payload += (c.weights.len + c.bias.len) as u64;
        }
    }
    let size = c.bytes.len() as u64;
    eprintln!(
        "file {size} bytes, payload {payload} bytes, overhead {:.2} %",
        100.0 * (size as f64 / payload as f64 - 1.0)
    );
    assert!(
        size as f64 <= 1.05 * payload as f64,
        "{size} > 1.05 × {payload}"
    );
}

#[test]
fn resnet8_entropy_calibration_meets_int8_targets() {
    assert_targets(&convert_and_eval("model_float.onnx", Method::Entropy));
}

#[test]
fn resnet8_mse_calibration_meets_int8_targets() {
    assert_targets(&convert_and_eval("model_float.onnx", Method::Mse));
}

#[test]
fn the_method_and_its_parameter_are_recorded() {
    let calib = ic01_subset(10);
    for (method, name, param) in [
        (Method::MinMax, "minmax", 0.0),
        (Method::Percentile(99.9), "percentile", 99.9),
        (Method::Entropy, "entropy", 0.0),
        (Method::Mse, "mse", 0.0),
    ] {
        let c = convert(&options("model_float.onnx", calib.path(), method)).unwrap();
        let bytes = AlignedBytes::new(&c.bytes);
        let m = resq_format::Model::parse(bytes.as_bytes()).unwrap();
        let p = m.meta.provenance;
        assert_eq!(
            (p.method, p.method_param, p.calib_images),
            (name, param, 10)
        );
        assert_ne!(p.calib_digest, [0; 32]);
    }
}
