//! Synthetic ResNets: structure, determinism and that tract can run them.
//!
//! Run in release mode (`cargo test --release -p resq-host --test synth`):
//! the generators produce tens of millions of weights.

use std::collections::HashSet;

use prost::Message;
use resq_host::synth::{synth_cifar_resnet, synth_resnet, Arch, CifarSpec, Shortcut, SynthSpec};
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

fn resnet(arch: Arch, size: u32, classes: u32, seed: u64) -> Vec<u8> {
    synth_resnet(&SynthSpec {
        arch,
        size,
        classes,
        seed,
    })
    .unwrap()
}

fn cifar(depth: u32, shortcut: Shortcut, preact: bool) -> CifarSpec {
    CifarSpec {
        depth,
        shortcut,
        preact,
        classes: 10,
        seed: 7,
    }
}

fn decode(bytes: &[u8]) -> ModelProto {
    ModelProto::decode(bytes).expect("valid ModelProto")
}

fn count_ops(model: &ModelProto, op_type: &str) -> usize {
    model
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .filter(|n| n.op_type == op_type)
        .count()
}

/// Deterministic, image-like input in roughly [-2, 2].
fn input(size: usize) -> Tensor {
    let data: Vec<f32> = (0..3 * size * size)
        .map(|i| {
            let i = i as f32;
            (i * 0.37).sin() + (i * 0.011).cos()
        })
        .collect();
    Tensor::from_shape(&[1, 3, size, size], &data).unwrap()
}

/// Loads `bytes` with tract, optimises, runs on [`input`] and returns the
/// logits after checking their shape.
fn run(bytes: &[u8], size: usize, classes: usize) -> TractResult<Vec<f32>> {
    let model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])?
        .into_optimized()?
        .into_runnable()?;
    let out = model.run(tvec!(input(size).into()))?;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].shape(), &[1, classes]);
    Ok(out[0].try_as_plain_ram()?.as_slice::<f32>()?.to_vec())
}

fn assert_sane_logits(logits: &[f32], what: &str) {
    assert!(
        logits.iter().all(|v| v.is_finite()),
        "{what}: non-finite logits {logits:?}"
    );
    let n = logits.len() as f32;
    let mean = logits.iter().sum::<f32>() / n;
    let std = (logits.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
    assert!(
        std > 1e-3,
        "{what}: logits are (almost) constant {logits:?}"
    );
}

const CIFAR_VARIANTS: [(u32, Shortcut, bool); 8] = [
    (8, Shortcut::ZeroPad, false),
    (8, Shortcut::ZeroPad, true),
    (8, Shortcut::Projection, false),
    (8, Shortcut::Projection, true),
    (14, Shortcut::ZeroPad, false),
    (14, Shortcut::ZeroPad, true),
    (14, Shortcut::Projection, false),
    (14, Shortcut::Projection, true),
];

#[test]
fn resnet18_runs_in_tract() {
    let logits = run(&resnet(Arch::ResNet18, 64, 10, 1), 64, 10).unwrap();
    assert_sane_logits(&logits, "resnet18");
}

#[test]
fn cifar_variants_run_in_tract() {
    for (depth, shortcut, preact) in CIFAR_VARIANTS {
        let spec = cifar(depth, shortcut, preact);
        let logits = run(&synth_cifar_resnet(&spec).unwrap(), 32, 10)
            .unwrap_or_else(|e| panic!("{spec:?}: {e:?}"));
        assert_sane_logits(&logits, &format!("{spec:?}"));
    }
}

#[test]
fn resnet50_activations_stay_bounded() {
    let logits = run(&resnet(Arch::ResNet50, 64, 10, 3), 64, 10).unwrap();
    assert_sane_logits(&logits, "resnet50");
    let max = logits.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(max < 1e4 && max > 1e-3, "resnet50 logits max |x| = {max}");
}

#[test]
fn conv_and_bn_counts() {
    let r18 = decode(&resnet(Arch::ResNet18, 64, 10, 0));
    assert_eq!(count_ops(&r18, "Conv"), 20);
    assert_eq!(count_ops(&r18, "BatchNormalization"), 20);
    let r50 = decode(&resnet(Arch::ResNet50, 64, 10, 0));
    assert_eq!(count_ops(&r50, "Conv"), 53);
    assert_eq!(count_ops(&r50, "BatchNormalization"), 53);
    let r152 = decode(&resnet(Arch::ResNet152, 64, 10, 0));
    assert_eq!(count_ops(&r152, "Conv"), 155);
    assert_eq!(count_ops(&r152, "BatchNormalization"), 155);
}

#[test]
fn cifar_structure() {
    // depth 14 = 3 stages x 2 blocks; stages 2 and 3 change shape.
    let m = decode(&synth_cifar_resnet(&cifar(14, Shortcut::ZeroPad, false)).unwrap());
    assert_eq!(count_ops(&m, "Conv"), 13);
    assert_eq!(count_ops(&m, "BatchNormalization"), 13);
    assert_eq!(count_ops(&m, "Slice"), 2);
    assert_eq!(count_ops(&m, "Pad"), 2);
    assert_eq!(count_ops(&m, "Relu"), 1 + 6 * 2);

    let m = decode(&synth_cifar_resnet(&cifar(14, Shortcut::Projection, true)).unwrap());
    assert_eq!(count_ops(&m, "Conv"), 13 + 2);
    // Two per block, two projections, one final.
    assert_eq!(count_ops(&m, "BatchNormalization"), 6 * 2 + 2 + 1);
    assert_eq!(count_ops(&m, "Relu"), 6 * 2 + 1);
    assert_eq!(count_ops(&m, "Slice"), 0);
}

#[test]
fn graph_interface_and_naming() {
    let m = decode(&resnet(Arch::ResNet18, 64, 10, 0));
    assert_eq!(m.ir_version, 8);
    assert_eq!(m.producer_name, "resq synth");
    assert_eq!(m.opset_import.len(), 1);
    assert_eq!(m.opset_import[0].version, 13);
    let g = m.graph.as_ref().unwrap();
    assert_eq!(g.input.len(), 1);
    assert_eq!(g.input[0].name, "input");
    assert_eq!(g.output.len(), 1);
    assert_eq!(g.output[0].name, "logits");

    let names: Vec<&str> = g.node.iter().map(|n| n.name.as_str()).collect();
    for expected in [
        "/conv1/Conv",
        "/bn1/BatchNormalization",
        "/relu/Relu",
        "/maxpool/MaxPool",
        "/layer1/layer1.0/conv1/Conv",
        "/layer1/layer1.0/bn1/BatchNormalization",
        "/layer1/layer1.0/relu/Relu",
        "/layer1/layer1.0/Add",
        "/layer1/layer1.0/relu_1/Relu",
        "/layer2/layer2.0/downsample/downsample.0/Conv",
        "/layer2/layer2.0/downsample/downsample.1/BatchNormalization",
        "/avgpool/GlobalAveragePool",
        "/Flatten",
        "/fc/Gemm",
    ] {
        assert!(names.contains(&expected), "missing node {expected}");
    }
    assert_eq!(g.node.last().unwrap().output, ["logits"]);
    assert!(g
        .initializer
        .iter()
        .any(|t| t.name == "layer1.0.conv1.weight" && t.dims == [64, 64, 3, 3]));
    assert!(g
        .initializer
        .iter()
        .any(|t| t.name == "fc.weight" && t.dims == [10, 512]));
}

#[test]
fn names_are_unique_and_inputs_defined() {
    let mut models = vec![decode(&resnet(Arch::ResNet50, 64, 10, 0))];
    for (depth, shortcut, preact) in CIFAR_VARIANTS {
        models.push(decode(
            &synth_cifar_resnet(&cifar(depth, shortcut, preact)).unwrap(),
        ));
    }
    for m in &models {
        let g = m.graph.as_ref().unwrap();
        let mut nodes = HashSet::new();
        let mut defined: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            defined.len(),
            g.initializer.len(),
            "{}: duplicate initializer",
            g.name
        );
        defined.insert("input");
        for n in &g.node {
            assert!(
                nodes.insert(n.name.as_str()),
                "{}: duplicate node {}",
                g.name,
                n.name
            );
            // Topological order, every input produced before use.
            for i in &n.input {
                assert!(
                    defined.contains(i.as_str()),
                    "{}: {} reads undefined {i}",
                    g.name,
                    n.name
                );
            }
            for o in &n.output {
                assert!(
                    defined.insert(o.as_str()),
                    "{}: duplicate tensor {o}",
                    g.name
                );
            }
        }
    }
}

#[test]
fn deterministic_and_seed_dependent() {
    let a = resnet(Arch::ResNet18, 64, 10, 5);
    assert_eq!(a, resnet(Arch::ResNet18, 64, 10, 5));
    let b = resnet(Arch::ResNet18, 64, 10, 6);
    assert_eq!(a.len(), b.len());
    assert_ne!(a, b);
    // Every parameter differs, not just some.
    let (ga, gb) = (decode(&a).graph.unwrap(), decode(&b).graph.unwrap());
    for (ta, tb) in ga.initializer.iter().zip(&gb.initializer) {
        assert_eq!(ta.name, tb.name);
        assert_ne!(
            ta.raw_data, tb.raw_data,
            "{} does not depend on the seed",
            ta.name
        );
    }

    let spec = cifar(8, Shortcut::ZeroPad, true);
    assert_eq!(
        synth_cifar_resnet(&spec).unwrap(),
        synth_cifar_resnet(&spec).unwrap()
    );
    let other = CifarSpec { seed: 8, ..spec };
    assert_ne!(
        synth_cifar_resnet(&spec).unwrap(),
        synth_cifar_resnet(&other).unwrap()
    );
}

#[test]
fn spec_validation() {
    for size in [0, 16, 33, 100] {
        let err = synth_resnet(&SynthSpec {
            arch: Arch::ResNet18,
            size,
            classes: 10,
            seed: 0,
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("multiple of 32"), "{err}");
    }
    assert!(synth_resnet(&SynthSpec {
        arch: Arch::ResNet18,
        size: 32,
        classes: 0,
        seed: 0
    })
    .is_err());
    for depth in [0, 2, 7, 9, 13] {
        let err = synth_cifar_resnet(&CifarSpec {
            depth,
            ..cifar(8, Shortcut::ZeroPad, false)
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("6n+2"), "{err}");
    }
    assert!(synth_cifar_resnet(&CifarSpec {
        classes: 0,
        ..cifar(8, Shortcut::ZeroPad, false)
    })
    .is_err());
}

#[test]
fn arch_from_str() {
    for arch in Arch::ALL {
        assert_eq!(arch.to_string().parse::<Arch>(), Ok(arch));
    }
    assert_eq!("ResNet50".parse::<Arch>(), Ok(Arch::ResNet50));
    let err = "resnet19".parse::<Arch>().unwrap_err().to_string();
    assert!(
        err.contains("resnet19") && err.contains("resnet18") && err.contains("resnet152"),
        "{err}"
    );
}

/// Pins down how tract lowers the opset-13 zero-pad shortcut, which the
/// importer has to understand: `into_typed` keeps one `StridedSlice` (fed by
/// Const begin/end/axes/steps) and a `Pad` whose zero value is folded into
/// the op; decluttering turns the slice into one `Downsample` per strided
/// axis. Run with `--nocapture` to see the full op lists.
#[test]
fn zero_pad_shortcut_lowering_in_tract() {
    fn ops(model: &TypedModel) -> Vec<(String, String)> {
        model
            .nodes()
            .iter()
            .map(|n| (n.name.clone(), n.op().name().to_string()))
            .collect()
    }
    fn shortcut_ops(ops: &[(String, String)]) -> Vec<&str> {
        ops.iter()
            .filter(|(name, _)| name.contains("/shortcut/"))
            .map(|(_, op)| op.as_str())
            .collect()
    }
    fn print(title: &str, ops: &[(String, String)]) {
        println!("{title}:");
        for (name, op) in ops {
            println!("  {name} [{op}]");
        }
    }

    let bytes = synth_cifar_resnet(&cifar(8, Shortcut::ZeroPad, false)).unwrap();
    let typed = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .unwrap()
        .into_typed()
        .unwrap();
    let typed_ops = ops(&typed);
    print("typed", &typed_ops);
    // Two shape-changing blocks (layer2.0, layer3.0).
    assert_eq!(
        shortcut_ops(&typed_ops),
        ["StridedSlice", "Pad", "StridedSlice", "Pad"]
    );

    let decluttered = ops(&typed.into_decluttered().unwrap());
    print("decluttered", &decluttered);
    assert_eq!(
        shortcut_ops(&decluttered),
        [
            "Downsample",
            "Downsample",
            "Pad",
            "Downsample",
            "Downsample",
            "Pad"
        ]
    );
}
