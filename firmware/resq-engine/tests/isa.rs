//! Whole models give the same int8 output bytes on every kernel tier and thread count.
//!
//! Random graphs, and real conversions (ResNet-8 from `../shared/assets`, synthetic ResNet-18 /
//! ResNet-50 with their 7×7 stem, max pool, strided and 1×1 projection shortcuts and 1000-class
//! classifier, CIFAR ResNets with zero-padding shortcuts and pre-activation) run on each tier
//! this CPU supports (others are skipped with a message) with 1, 2 and 3 threads, packed into
//! the engine or in place in the file, and must match the reference tier bit for bit.
//!
//! The converted models come from the folder `RESQ_ENGINE_MODELS`: the harness
//! (`tests/tests/cross.rs`) converts them on the host and runs the two tests that read them
//! (ignored otherwise) natively and under qemu, so this crate never depends on the converter.
//! `RESQ_REQUIRE_TIERS=generic,neon,…` makes a run fail unless exactly those fast tiers run.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{aligned, build_dag, random_dag, Rng};
use proptest::prelude::*;
use resq_engine::{AlignedBytes, Engine, EngineError, EngineOptions, Isa, IsaError};
use resq_format::Model;
/// Every fast tier this machine runs, then thread counts; the reference is the oracle.
fn configs() -> Vec<EngineOptions> {
    let supported: Vec<Isa> = Isa::ALL.into_iter().filter(|i| i.supported()).collect();
    if let Ok(required) = std::env::var("RESQ_REQUIRE_TIERS") {
        let fast: Vec<String> = supported
            .iter()
            .filter(|&&i| i != Isa::Reference)
            .map(|i| i.to_string())
            .collect();
        assert_eq!(
            fast.join(","),
            required,
            "RESQ_REQUIRE_TIERS: the fast tiers this CPU runs"
        );
    }
    let mut out = Vec::new();
    for isa in Isa::ALL {
        if !supported.contains(&isa) {
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

/// The converted models of `RESQ_ENGINE_MODELS` (see the top of this file), by file stem.
fn converted_models() -> Vec<(String, Vec<u8>)> {
    let dir = std::env::var_os("RESQ_ENGINE_MODELS")
        .map(PathBuf::from)
        .expect(
        "RESQ_ENGINE_MODELS: a folder of converted .resq models (tests/tests/cross.rs writes it)",
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("RESQ_ENGINE_MODELS={}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "resq"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .resq files in {}", dir.display());
    files
        .iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(p).unwrap())
        })
        .collect()
}

#[test]
#[ignore = "needs RESQ_ENGINE_MODELS; tests/tests/cross.rs converts them and runs this"]
fn converted_models_give_identical_bytes_on_every_isa_and_thread_count() {
    let mut models = converted_models();
    // The models are independent: a worker per core, largest first (an emulated run is long).
    models.sort_by_key(|(_, file)| std::cmp::Reverse(file.len()));
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers.min(models.len()) {
            scope.spawn(|| {
                while let Some((name, file)) = models.get(next.fetch_add(1, Ordering::Relaxed)) {
                    check_every_config(name, file);
                }
            });
        }
    });
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
#[ignore = "needs RESQ_ENGINE_MODELS; tests/tests/cross.rs converts them and runs this"]
fn in_place_packing_rewrites_the_weights_and_reseals_the_file() {
    // A CIFAR ResNet-8 with 1×1 projection shortcuts.
    let (_, file) = converted_models()
        .into_iter()
        .find(|(name, _)| name == "in-place-cifar8-projection")
        .expect("in-place-cifar8-projection.resq in RESQ_ENGINE_MODELS");
    let file = &file;
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
