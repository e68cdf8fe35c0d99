//! Layers kept at int16 (`resq convert --keep-int16` / `--auto-fallback`) on ResNet-8 and the
//! real ic01 images: the file says which tensors are int16, every kernel tier and thread count
//! gives the same bytes, the kept layers gain precision against tract f32, accuracy holds, and
//! the choices that cannot work are refused with the layer named.

use resq_e2e::{ic01, ic01_subset, resnet8};
use resq_engine::{AlignedBytes, Engine, EngineOptions, Isa};
use resq_format::{Layout, Model};
use resq_host::convert::{convert, ConvertOptions, Converted};
use resq_host::eval::{evaluate, preprocess_of, Reference};
use resq_host::images::{labelled_dataset, list_images};
use resq_host::report::layer_stats;

fn options(calib: Option<&std::path::Path>, model: &str) -> ConvertOptions {
    ConvertOptions {
        calib: calib.map(|c| c.to_path_buf()),
        ..ConvertOptions::new(resnet8(model))
    }
}

fn keep(calib: &std::path::Path, layers: &[&str]) -> Converted {
    let mut o = options(Some(calib), "model_float.onnx");
    o.keep_int16 = layers.iter().map(|s| s.to_string()).collect();
    convert(&o).expect("convert")
}

/// SQNR (dB) of each layer's output against tract f32, by layer name.
fn sqnr(file: &[u8], images: &[std::path::PathBuf]) -> Vec<(String, f64, bool)> {
    layer_stats(file, &resnet8("model_float.onnx"), images)
        .expect("layer stats")
        .into_iter()
        .map(|l| (l.name, l.output.sqnr_db, l.int16))
        .collect()
}

const ALL_BUT_LOGITS: [&str; 10] = [
    "activation.low",
    "activation_1.low",
    "activation_2.low",
    "conv2d_5",
    "activation_3.low",
    "activation_4.low",
    "conv2d_8",
    "activation_5.low",
    "activation_6.low",
    "average_pooling2d",
];

#[test]
fn kept_layers_are_int16_exact_across_isas_and_more_precise() {
    let calib = ic01_subset(100);
    let int8 = keep(calib.path(), &[]);
    let one = keep(calib.path(), &["activation.low"]);
    let all = keep(calib.path(), &ALL_BUT_LOGITS);
    assert_eq!(one.int16_layers, ["activation.low"]);
    assert_eq!(all.int16_layers.len(), ALL_BUT_LOGITS.len());
    assert!(int8.int16_layers.is_empty());

    // The file records it, and the engine honours it on every tier and thread count.
    let bytes = AlignedBytes::new(&all.bytes);
    let model = Model::parse(bytes.as_bytes()).expect("parse");
    let conv = model
        .meta
        .layers
        .iter()
        .find(|l| l.name == "activation_6.low")
        .unwrap();
    assert!(model.is_int16(conv.op.output()));
    assert_eq!(model.tensor(conv.op.output()).zero_point, 0);
    // Kept convolutions have int16 weights too; the classifier (not kept) stays int8.
    let last = model.meta.layers.len() - 1;
    assert!((0..last).all(|l| {
        !matches!(model.meta.layers[l].op, resq_format::Op::Conv(_)) || model.has_int16_weights(l)
    }));
    assert!(!model.has_int16_weights(last));
    let images: Vec<_> = list_images(calib.path())
        .unwrap()
        .into_iter()
        .take(6)
        .collect();
    let mut want: Option<Vec<Vec<i8>>> = None;
    for isa in Isa::ALL.into_iter().filter(|i| i.supported()) {
        for threads in [1, 2] {
            let mut engine = Engine::with_options(
                model.clone(),
                EngineOptions {
                    threads,
                    isa: Some(isa),
                },
            )
            .unwrap();
            assert!(engine.self_test(), "{isa} × {threads}: self-test");
            let pre = preprocess_of(&engine);
            let outs: Vec<Vec<i8>> = images
                .iter()
                .map(|p| {
                    engine
                        .set_input_pixels(&pre.load_pixels(p).unwrap())
                        .unwrap();
                    engine.run();
                    engine.output().to_vec()
                })
                .collect();
            match &want {
                None => want = Some(outs),
                Some(w) => assert_eq!(&outs, w, "{isa} × {threads} threads"),
            }
        }
    }

    // Precision against tract f32 on 8 calibration images: a kept layer is never worse.
    let probe: Vec<_> = list_images(calib.path())
        .unwrap()
        .into_iter()
        .step_by(12)
        .collect();
    let base = sqnr(&int8.bytes, &probe);
    for (file, name) in [(&one, "one"), (&all, "all")] {
        for ((n, a, _), (_, b, int16)) in base.iter().zip(sqnr(&file.bytes, &probe)) {
            if int16 {
                assert!(
                    b >= a - 0.05,
                    "{name}: `{n}` int16 {b:.2} dB < int8 {a:.2} dB"
                );
            }
        }
    }
    // The stem reads exact pixels, so kept at int16 (weights and output) it is nearly exact,
    // and every later layer, the logits included, inherits less error.
    let one_sqnr = sqnr(&one.bytes, &probe);
    eprintln!("int8 {base:?}\nstem int16 {one_sqnr:?}");
    assert!(
        one_sqnr[0].1 > base[0].1 + 20.0,
        "stem at int16 {:.2} dB vs int8 {:.2} dB",
        one_sqnr[0].1,
        base[0].1
    );
    let logits = base.len() - 1;
    assert!(
        one_sqnr[logits].1 > base[logits].1 + 1.0,
        "logits {:.2} dB vs {:.2} dB",
        one_sqnr[logits].1,
        base[logits].1
    );

    // Accuracy on the 200 labelled images holds.
    let (png, csv) = ic01();
    let samples = labelled_dataset(&png, Some(&csv)).unwrap();
    let reference = Reference::load(&resnet8("model_float.onnx"), Layout::Nchw).unwrap();
    for (file, name) in [(&one, "one"), (&all, "all")] {
        let b = AlignedBytes::new(&file.bytes);
        let mut engine = Engine::from_bytes(b.as_bytes()).unwrap();
        let r = evaluate(&mut engine, &samples, Some(&reference)).unwrap();
        eprintln!("{name}: {r:?}");
        assert!(r.top1_int8 >= 170, "{name}: top-1 {}", r.top1_int8);
        assert!(
            r.agreement.unwrap() >= 192,
            "{name}: agreement {:?}",
            r.agreement
        );
    }
}

#[test]
fn auto_fallback_keeps_the_layers_that_lose_most_and_says_which() {
    let calib = ic01_subset(100);
    let mut o = options(Some(calib.path()), "model_float.onnx");
    o.auto_fallback = Some(30.0);
    let c = convert(&o).expect("convert");
    // ResNet-8's layers sit at 25–34 dB in int8: some are below 30, so something is kept,
    // and the lowest layer ends above the threshold (or the step limit was reached).
    assert!(!c.fallback.is_empty(), "nothing kept");
    let last = c.fallback.last().unwrap();
    assert!(
        last.worst_after >= 30.0 || c.fallback.len() == resq_host::convert::FALLBACK_MAX_LAYERS,
        "{last:?}"
    );
    assert!(c.fallback.len() <= resq_host::convert::FALLBACK_MAX_LAYERS);
    for step in &c.fallback {
        assert!(c.int16_layers.contains(&step.layer), "{step:?}");
        assert!(step.sqnr_after >= step.sqnr_before - 0.05, "{step:?}");
    }
    let worst: Vec<f64> = c.fallback.iter().map(|s| s.worst_after).collect();
    eprintln!("{:?}", c.fallback);
    assert!(worst.windows(2).all(|w| w[1] >= w[0] - 0.05), "{worst:?}");
    let b = AlignedBytes::new(&c.bytes);
    assert!(Engine::from_bytes(b.as_bytes()).unwrap().self_test());

    // A threshold every layer already meets keeps nothing.
    o.auto_fallback = Some(0.0);
    let c = convert(&o).expect("convert");
    assert!(c.fallback.is_empty() && c.int16_layers.is_empty());
}

#[test]
fn impossible_choices_are_refused_naming_the_layer() {
    let calib = ic01_subset(10);
    let err = |layers: &[&str]| {
        let mut o = options(Some(calib.path()), "model_float.onnx");
        o.keep_int16 = layers.iter().map(|s| s.to_string()).collect();
        format!("{:#}", convert(&o).expect_err("must be refused"))
    };
    let e = err(&["nope"]);
    assert!(
        e.contains("no layer `nope`") && e.contains("activation_6.low"),
        "{e}"
    );
    let e = err(&["dense"]);
    assert!(e.contains("`dense`") && e.contains("output"), "{e}");

    // --auto-fallback measures on the calibration images: a QDQ model without --calib has none.
    let mut o = options(None, "model_int8_qdq.onnx");
    o.auto_fallback = Some(30.0);
    let e = format!("{:#}", convert(&o).expect_err("must be refused"));
    assert!(e.contains("--calib"), "{e}");
}

#[test]
fn qdq_model_keeps_its_range_at_int16() {
    let mut o = options(None, "model_int8_qdq.onnx");
    o.keep_int16 = vec![];
    let base = convert(&o).expect("convert");
    let m = AlignedBytes::new(&base.bytes);
    let model = Model::parse(m.as_bytes()).unwrap();
    let name = model.meta.layers[1].name.to_string();
    o.keep_int16 = vec![name.clone()];
    let kept = convert(&o).expect("convert with a kept layer");
    assert_eq!(kept.int16_layers, std::slice::from_ref(&name));
    let k = AlignedBytes::new(&kept.bytes);
    let kmodel = Model::parse(k.as_bytes()).unwrap();
    let t = model.meta.layers[1].op.output();
    let (q8, q16) = (model.tensor(t), kmodel.tensor(t));
    // The same real range as the QDQ scales give, at least 128× finer (symmetric int16 spends
    // half its codes on the negative side of a ReLU output).
    let ratio = q8.scale / q16.scale;
    assert!((128.0..=258.0).contains(&ratio), "{ratio}");
    assert!(Engine::from_bytes(k.as_bytes()).unwrap().self_test());
}

/// Max pooling (ResNet-18's stem), zero padding and subsampling (CIFAR "option A" shortcuts)
/// copy int16 tensors when the layers before them are kept: every layer but the classifier
/// at int16 gives the same bytes on every tier and thread count, and no layer is less precise
/// against tract f32 than in the all-int8 file.
#[test]
fn int16_copies_through_max_pool_pad_and_subsample() {
    use resq_host::synth::{
        synth_cifar_resnet, synth_resnet, Arch, CifarSpec, Shortcut, SynthSpec,
    };
    let imagenet = synth_resnet(&SynthSpec {
        arch: Arch::ResNet18,
        size: 64,
        classes: 10,
        seed: 5,
    })
    .unwrap();
    let cifar = synth_cifar_resnet(&CifarSpec {
        depth: 8,
        shortcut: Shortcut::ZeroPad,
        preact: false,
        classes: 10,
        seed: 3,
    })
    .unwrap();
    let calib = ic01_subset(12);
    let dir = tempfile::tempdir().unwrap();
    for (name, onnx, copies) in [
        ("resnet18", imagenet, &["maxpool"][..]),
        ("cifar8", cifar, &["pad", "subsample"][..]),
    ] {
        let path = dir.path().join(format!("{name}.onnx"));
        std::fs::write(&path, onnx).unwrap();
        let base = ConvertOptions {
            calib: Some(calib.path().to_path_buf()),
            std: [255.0; 3],
            ..ConvertOptions::new(&path)
        };
        let int8 = convert(&base).unwrap();
        let b = AlignedBytes::new(&int8.bytes);
        let model = Model::parse(b.as_bytes()).unwrap();
        let last = model.meta.layers.len() - 1;
        let keep: Vec<String> = model.meta.layers[..last]
            .iter()
            .filter(|l| ["conv", "conv+add", "avgpool", "add"].contains(&l.op.kind()))
            .map(|l| l.name.to_string())
            .collect();
        let all = convert(&ConvertOptions {
            keep_int16: keep,
            ..base.clone()
        })
        .unwrap();
        let b = AlignedBytes::new(&all.bytes);
        let model = Model::parse(b.as_bytes()).unwrap();
        for kind in copies {
            assert!(
                model
                    .meta
                    .layers
                    .iter()
                    .any(|l| l.op.kind() == *kind && model.is_int16(l.op.output())),
                "{name}: no int16 {kind}"
            );
        }
        let images: Vec<_> = list_images(calib.path()).unwrap();
        let mut want: Option<Vec<Vec<i8>>> = None;
        for isa in Isa::ALL.into_iter().filter(|i| i.supported()) {
            for threads in [1, 2] {
                let options = EngineOptions {
                    threads,
                    isa: Some(isa),
                };
                let mut engine = Engine::with_options(model.clone(), options).unwrap();
                assert!(engine.self_test(), "{name} {isa} × {threads}: self-test");
                let pre = preprocess_of(&engine);
                let outs: Vec<Vec<i8>> = images
                    .iter()
                    .take(4)
                    .map(|p| {
                        engine
                            .set_input_pixels(&pre.load_pixels(p).unwrap())
                            .unwrap();
                        engine.run();
                        engine.output().to_vec()
                    })
                    .collect();
                match &want {
                    None => want = Some(outs),
                    Some(w) => assert_eq!(&outs, w, "{name}: {isa} × {threads} threads"),
                }
            }
        }
        let stats = |bytes: &[u8]| layer_stats(bytes, &path, &images[..4]).unwrap();
        for (a, b) in stats(&int8.bytes).iter().zip(stats(&all.bytes)) {
            assert!(
                b.output.sqnr_db >= a.output.sqnr_db - 0.05,
                "{name}: `{}` {:.2} dB at int16 < {:.2} dB at int8",
                a.name,
                b.output.sqnr_db,
                a.output.sqnr_db
            );
        }
    }
}
