//! Whole models give the same int8 output bytes on every kernel tier and thread count.
//!
//! Real conversions (ResNet-8 from `../shared/assets`, synthetic ResNet-18 / ResNet-50 with
//! their 7×7 stem, max pool, strided and 1×1 projection shortcuts and 1000-class classifier,
//! CIFAR ResNets with zero-padding shortcuts and pre-activation) and random graphs run on each
//! tier this CPU supports (others are skipped with a message) with 1, 2 and 3 threads, packed
//! into the engine or in place in the file, and must match the reference tier bit for bit.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{aligned, build_dag, random_dag, Rng};
use proptest::prelude::*;
use resq_engine::{AlignedBytes, Engine, EngineError, EngineOptions, Isa, IsaError};
use resq_format::Model;
use resq_host::convert::{convert, ConvertOptions};
use resq_host::synth::{synth_cifar_resnet, synth_resnet, Arch, CifarSpec, Shortcut, SynthSpec};

fn assets() -> PathBuf {
    std::env::var_os("RESQ_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/assets"))
}

/// Every fast tier this machine runs, then thread counts; the reference is the oracle.
fn configs() -> Vec<EngineOptions> {
    let mut out = Vec::new();
    for isa in Isa::ALL {
        if !isa.supported() {
            eprintln!("skipping {isa}: not supported by this CPU or build");
            continue;
        }
        for threads in [1, 2, 3] {
            out.push(EngineOptions {
                threads,
                isa: Some(isa),
            });
        }
    }
    out
}

fn reference() -> EngineOptions {
    EngineOptions {
        threads: 1,
        isa: Some(Isa::Reference),
    }
}

/// Outputs for each input, with the engine packed normally or in place.
fn outputs(
    file: &[u8],
    options: EngineOptions,
    in_place: bool,
    inputs: &[Vec<i8>],
) -> Vec<Vec<i8>> {
    let mut bytes = aligned(file);
    let mut engine = if in_place {
        Engine::from_bytes_in_place(bytes.as_bytes_mut(), options).expect("load in place")
    } else {
        let model = Model::parse(bytes.as_bytes()).expect("valid");
        Engine::with_options(model, options).expect("supported options")
    };
    assert_eq!(engine.isa(), options.isa.unwrap());
    let st = engine.model().meta.self_test;
    if st.expected.len > 0 && engine.model().i8s(st.expected).iter().any(|&v| v != 0) {
        assert!(engine.self_test(), "{options:?}: self-test");
    }
    inputs
        .iter()
        .map(|x| {
            engine.set_input(x).unwrap();
            engine.run();
            engine.output().to_vec()
        })
        .collect()
}

/// Self-test input plus random ones.
fn inputs(file: &[u8], seed: u64) -> Vec<Vec<i8>> {
    let bytes = aligned(file);
    let model = Model::parse(bytes.as_bytes()).unwrap();
    let st = model.i8s(model.meta.self_test.input).to_vec();
    let mut rng = Rng::new(seed);
    let mut v = vec![st.clone()];
    for _ in 0..2 {
        v.push(rng.i8s(st.len(), -128, 127));
    }
    v
}

fn check_every_config(name: &str, file: &[u8]) {
    let inputs = inputs(file, 5);
    let want = outputs(file, reference(), false, &inputs);
    for options in configs() {
        for in_place in [false, true] {
            let got = outputs(file, options, in_place, &inputs);
            assert!(
                got == want,
                "{name}: {} with {} thread(s){} differs from the reference",
                options.isa.unwrap(),
                options.threads,
                if in_place { ", packed in place" } else { "" }
            );
        }
    }
}

fn convert_onnx(onnx: &[u8], imagenet: bool) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, onnx).unwrap();
    convert_path(&path, imagenet)
}

fn convert_path(path: &Path, imagenet: bool) -> Vec<u8> {
    let (mean, std) = if imagenet {
        ([123.7, 116.3, 103.5], [58.4, 57.1, 57.4])
    } else {
        ([0.0; 3], [255.0; 3])
    };
    let options = ConvertOptions {
        calib: Some(assets().join("photos")),
        mean,
        std,
        ..ConvertOptions::new(path.to_path_buf())
    };
    convert(&options).expect("convert").bytes
}

#[test]
fn resnet8_gives_identical_bytes_on_every_isa_and_thread_count() {
    let file = convert_path(
        &assets().join("resnet8-mlperf-tiny/model_float.onnx"),
        false,
    );
    check_every_config("resnet8", &file);
}

#[test]
fn synthetic_resnet18_and_resnet50_give_identical_bytes_everywhere() {
    for (arch, size) in [(Arch::ResNet18, 64), (Arch::ResNet50, 32)] {
        let onnx = synth_resnet(&SynthSpec {
            arch,
            size,
            classes: 1000,
            seed: 11,
        })
        .unwrap();
        check_every_config(&format!("{arch:?} {size}²"), &convert_onnx(&onnx, true));
    }
}

#[test]
fn cifar_resnets_with_pad_shortcuts_and_preactivation_give_identical_bytes_everywhere() {
    for preact in [false, true] {
        let onnx = synth_cifar_resnet(&CifarSpec {
            depth: 8,
            shortcut: Shortcut::ZeroPad,
            preact,
            classes: 10,
            seed: 4,
        })
        .unwrap();
        check_every_config(
            &format!("cifar preact={preact}"),
            &convert_onnx(&onnx, false),
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_graphs_give_identical_bytes_everywhere((hw, steps, seed) in random_dag()) {
        let net = build_dag(hw, &steps, seed);
        let file = net.file();
        let inputs = inputs(&file, seed);
        let want = outputs(&file, reference(), false, &inputs);
        for options in configs() {
            let got = outputs(&file, options, options.threads == 2, &inputs);
            prop_assert_eq!(&got, &want, "{:?}", options);
        }
    }
}

#[test]
fn packing_in_place_rewrites_the_weights_and_reseals_the_file() {
    static FILE: OnceLock<Vec<u8>> = OnceLock::new();
    let file = FILE.get_or_init(|| {
        let onnx = synth_cifar_resnet(&CifarSpec {
            depth: 8,
            shortcut: Shortcut::Projection,
            preact: false,
            classes: 10,
            seed: 9,
        })
        .unwrap();
        convert_onnx(&onnx, false)
    });
    let Some(isa) = [Isa::Avx512Vnni, Isa::Avx2, Isa::Generic]
        .into_iter()
        .find(|i| i.supported())
    else {
        return;
    };
    let options = EngineOptions {
        threads: 1,
        isa: Some(isa),
    };
    let mut bytes = AlignedBytes::new(file);
    let engine = Engine::from_bytes_in_place(bytes.as_bytes_mut(), options).unwrap();
    // Nothing is packed twice: the engine's own packed bytes are the layers that cannot be
    // packed in place (none here but odd-sized ones), plus biases and scratch.
    let owned = engine.packed_bytes();
    drop(engine);
    assert_ne!(bytes.as_bytes(), &file[..], "weights were rewritten");
    // The re-sealed file still parses, with every header field but the CRC unchanged.
    assert!(Model::parse(bytes.as_bytes()).is_ok());
    assert_eq!(bytes.as_bytes()[..56], file[..56]);
    let packed_normally =
        Engine::with_options(Model::parse(aligned(file).as_bytes()).unwrap(), options)
            .unwrap()
            .packed_bytes();
    assert!(owned < packed_normally, "{owned} ≥ {packed_normally}");

    // The reference tier packs nothing, in place or not.
    let mut bytes = AlignedBytes::new(file);
    let engine = Engine::from_bytes_in_place(bytes.as_bytes_mut(), reference()).unwrap();
    drop(engine);
    assert_eq!(bytes.as_bytes(), &file[..]);
}

#[test]
fn an_unsupported_isa_is_refused_and_the_default_is_the_detected_one() {
    let net = build_dag(2, &[], 1);
    let file = aligned(&net.file());
    for isa in Isa::ALL.into_iter().filter(|i| !i.supported()) {
        let model = Model::parse(file.as_bytes()).unwrap();
        let r = Engine::with_options(
            model,
            EngineOptions {
                threads: 1,
                isa: Some(isa),
            },
        );
        assert_eq!(
            r.err(),
            Some(EngineError::Isa(IsaError::Unsupported(isa))),
            "{isa}"
        );
    }
    let engine = Engine::from_bytes(file.as_bytes()).unwrap();
    if std::env::var_os("RESQ_ISA").is_none() {
        assert_eq!(engine.isa(), Isa::detect());
    }
    assert_eq!(engine.threads(), 1);
    let model = Model::parse(file.as_bytes()).unwrap();
    let engine = Engine::with_options(
        model,
        EngineOptions {
            threads: 3,
            isa: None,
        },
    )
    .unwrap();
    assert_eq!(engine.threads(), 3);
}
