//! The engine against the reference kernels run on separately allocated buffers.

mod common;

use common::{
    aligned, build_dag, random_dag, test_lut, AvgPoolLayer, ConvLayer, LayerSpec, Net, Rng,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use resq_engine::{AlignedBytes, Engine, EngineError};
use resq_format::write::patch_data;
use resq_format::{Add, ChannelOrder, DataRef, Model, Pad, Pool, Subsample};
use resq_kernels::reference;
use resq_kernels::{Epilogue, Geometry, ResidualOperand};

// ---------------------------------------------------------------------------------------------
// A residual block, with a hand-written oracle.

fn epilogue<'a>(c: &'a ConvLayer, zp: i8, residual: Option<ResidualOperand<'a>>) -> Epilogue<'a> {
    Epilogue {
        bias: &c.bias,
        mults: &c.mults,
        shift: c.shift,
        zero_point: zp,
        clamp: c.clamp,
        residual,
    }
}

/// `x → conv1 (3×3, pad 1, ReLU) → y → conv2 (3×3, pad 1) + x → z → global average → out`.
#[derive(Clone, Debug)]
struct ResidualBlock {
    hw: [usize; 2],
    mid: usize,
    zps: [i8; 4],
    conv1: ConvLayer,
    conv2: ConvLayer,
    input: Vec<i8>,
}

fn residual_block() -> impl Strategy<Value = ResidualBlock> {
    (
        [1..=6usize, 1..=6usize],
        1..=9usize,
        any::<[i8; 4]>(),
        any::<u64>(),
    )
        .prop_map(|(hw, mid, zps, seed)| {
            let mut rng = Rng::new(seed);
            let mut conv = |input, output, cin: usize, cout: usize, clamp, residual| ConvLayer {
                input,
                output,
                kernel: [3, 3],
                stride: [1, 1],
                pad: [1, 1, 1, 1],
                groups: 1,
                weights: rng.i8s(cout * 9 * cin, -127, 127),
                bias: rng.i32s(cout, -20_000, 20_000),
                mults: rng.i32s(cout, 1 << 6, 1 << 12),
                shift: 20,
                clamp,
                residual,
            };
            let conv1 = conv(0, 1, 3, mid, [zps[1], i8::MAX], None);
            let conv2 = conv(1, 2, mid, 3, [i8::MIN, i8::MAX], Some((0, 1 << 19)));
            let input = rng.i8s(hw[0] * hw[1] * 3, i8::MIN, i8::MAX);
            ResidualBlock {
                hw,
                mid,
                zps,
                conv1,
                conv2,
                input,
            }
        })
}

impl ResidualBlock {
    fn area(&self) -> usize {
        self.hw[0] * self.hw[1]
    }

    fn pool_mults(&self) -> Vec<i32> {
        (1..=self.area() as i32).map(|n| (1 << 24) / n).collect()
    }

    fn net(&self) -> Net {
        let [h, w] = self.hw;
        let mut net = Net::new(ChannelOrder::Rgb, self.hw, 0.02, self.zps[0]);
        net.tensor([h, w, self.mid], 0.03, self.zps[1]);
        net.tensor([h, w, 3], 0.04, self.zps[2]);
        net.tensor([1, 1, 3], 0.05, self.zps[3]);
        net.layer(LayerSpec::Conv(self.conv1.clone()));
        net.layer(LayerSpec::Conv(self.conv2.clone()));
        net.layer(LayerSpec::AvgPool(AvgPoolLayer {
            window: Pool {
                input: 2,
                output: 3,
                kernel: [h as u16, w as u16],
                stride: [1, 1],
                pad: [0; 4],
            },
            count_include_pad: false,
            mults: self.pool_mults(),
            shift: 24,
        }));
        net
    }

    /// `[y, z, out]`, each computed directly with the reference kernels.
    fn oracle(&self) -> [Vec<i8>; 3] {
        let [h, w] = self.hw;
        let geo = |cin, cout| Geometry {
            input: [h, w, cin],
            output: [h, w, cout],
            kernel: [3, 3],
            stride: [1, 1],
            pad: [1, 1],
        };
        let (c1, c2) = (&self.conv1, &self.conv2);
        let mut y = vec![0; h * w * self.mid];
        let ep1 = epilogue(c1, self.zps[1], None);
        reference::conv2d(
            &geo(3, self.mid),
            1,
            &self.input,
            self.zps[0],
            &c1.weights,
            &ep1,
            &mut y,
        );
        let mut z = vec![0; h * w * 3];
        let skip = ResidualOperand {
            values: &self.input,
            zero_point: self.zps[0],
            mult: 1 << 19,
        };
        let ep2 = epilogue(c2, self.zps[2], Some(skip));
        reference::conv2d(
            &geo(self.mid, 3),
            1,
            &y,
            self.zps[1],
            &c2.weights,
            &ep2,
            &mut z,
        );
        let mut out = vec![0; 3];
        let pool = Geometry {
            input: [h, w, 3],
            output: [1, 1, 3],
            kernel: [h, w],
            stride: [1, 1],
            pad: [0, 0],
        };
        let mults = self.pool_mults();
        reference::avg_pool(
            &pool,
            false,
            &z,
            self.zps[2],
            &mults,
            24,
            self.zps[3],
            &mut out,
        );
        [y, z, out]
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn residual_block_equals_reference_kernels_on_separate_buffers(block in residual_block()) {
        let bytes = aligned(&block.net().file());
        let mut engine = Engine::from_bytes(bytes.as_bytes()).expect("valid model");
        let want = block.oracle();
        engine.set_input(&block.input).expect("input length");
        // Layer by layer: each output right after it is written.
        for (i, want) in want.iter().enumerate() {
            engine.run_layer(i);
            prop_assert_eq!(engine.tensor(i as u16 + 1).as_i8(), Some(want.as_slice()), "layer {}", i);
        }
        // And a whole run from scratch.
        engine.set_input(&block.input).expect("input length");
        engine.run();
        prop_assert_eq!(engine.output(), want[2].as_slice());
    }

    /// Random DAGs with skip connections: the planned arena gives the same results as one
    /// buffer per tensor (so no tensor is overwritten while it is still needed).
    #[test]
    fn random_dag_equals_separate_buffer_evaluation((hw, steps, seed) in random_dag()) {
        let net = build_dag(hw, &steps, seed);
        let input = Rng::new(seed ^ 0xabcd).i8s(net.input_len(), i8::MIN, i8::MAX);
        let want = net.evaluate(&input);
        let bytes = aligned(&net.file());
        let mut engine = Engine::from_bytes(bytes.as_bytes()).expect("valid model");
        engine.set_input(&input).expect("input length");
        for (i, layer) in net.layers.iter().enumerate() {
            engine.run_layer(i);
            let t = layer.output();
            prop_assert_eq!(engine.tensor(t).as_i8(), Some(want[t as usize].as_slice()), "layer {}", i);
        }
        prop_assert_eq!(engine.output(), want[net.output as usize].as_slice());
    }
}

/// Every op kind through the engine, against the same layers on separate buffers:
/// pad (spatial and channels) → max pool (padded, stride 2) → subsample → add of two
/// branches → depthwise conv → average pool with `count_include_pad`.
fn all_ops_net() -> Net {
    let mut rng = Rng::new(99);
    let mut net = Net::new(ChannelOrder::Bgr, [7, 6], 0.02, 5);
    let padded = net.tensor([8, 9, 5], 0.02, 5);
    net.layer(LayerSpec::Pad(Pad {
        input: 0,
        output: padded,
        pads: [1, 0, 2, 1, 1, 1],
    }));
    let pooled = net.tensor([4, 5, 5], 0.02, 5);
    net.layer(LayerSpec::MaxPool(Pool {
        input: padded,
        output: pooled,
        kernel: [3, 3],
        stride: [2, 2],
        pad: [1, 1, 0, 1],
    }));
    let sub = net.tensor([2, 2, 5], 0.02, 5);
    net.layer(LayerSpec::Subsample(Subsample {
        input: pooled,
        output: sub,
        start: [1, 0],
        step: [2, 3],
    }));
    let sub2 = net.tensor([2, 2, 5], 0.02, 5);
    net.layer(LayerSpec::Subsample(Subsample {
        input: pooled,
        output: sub2,
        start: [0, 1],
        step: [2, 2],
    }));
    let sum = net.tensor([2, 2, 5], 0.03, -4);
    net.layer(LayerSpec::Add(Add {
        a: sub,
        b: sub2,
        output: sum,
        mult_a: 700_000,
        mult_b: 350_000,
        shift: 20,
        clamp: [-4, 127],
    }));
    let dw = net.tensor([2, 2, 10], 0.05, 2);
    net.layer(LayerSpec::Conv(ConvLayer {
        input: sum,
        output: dw,
        kernel: [3, 2],
        stride: [1, 1],
        pad: [1, 0, 1, 1],
        groups: 5,
        weights: rng.i8s(10 * 3 * 2, -127, 127),
        bias: rng.i32s(10, -3000, 3000),
        mults: rng.i32s(10, 1 << 10, 1 << 14),
        shift: 20,
        clamp: [i8::MIN, i8::MAX],
        residual: None,
    }));
    let out = net.tensor([1, 1, 10], 0.05, 0);
    net.layer(LayerSpec::AvgPool(AvgPoolLayer {
        window: Pool {
            input: dw,
            output: out,
            kernel: [2, 2],
            stride: [2, 2],
            pad: [1, 1, 0, 0],
        },
        count_include_pad: true,
        mults: (1..=4).map(|n| (1 << 20) / n).collect(),
        shift: 20,
    }));
    net
}

#[test]
fn every_op_kind_equals_reference_kernels_on_separate_buffers() {
    let net = all_ops_net();
    let bytes = aligned(&net.file());
    let mut engine = Engine::from_bytes(bytes.as_bytes()).expect("valid model");
    for seed in 1..=20 {
        let input = Rng::new(seed).i8s(net.input_len(), i8::MIN, i8::MAX);
        let want = net.evaluate(&input);
        engine.set_input(&input).expect("input length");
        for (i, layer) in net.layers.iter().enumerate() {
            engine.run_layer(i);
            let t = layer.output();
            assert_eq!(
                engine.tensor(t).as_i8(),
                Some(want[t as usize].as_slice()),
                "seed {seed}, layer {i}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Self-test.

/// Loads a file image and runs its self-test (in its own stack frame: a `Model` holds its
/// metadata lists inline, tens of kilobytes).
fn self_test_of(file: &[u8]) -> bool {
    let bytes = aligned(file);
    let mut engine = Engine::from_bytes(bytes.as_bytes()).expect("valid model");
    let first = engine.self_test();
    // Running it again (arena already dirty) gives the same answer.
    assert_eq!(engine.self_test(), first);
    first
}

fn self_test_expected_ref(file: &[u8]) -> DataRef {
    let bytes = aligned(file);
    let model = Model::parse(bytes.as_bytes()).expect("valid model");
    model.meta.self_test.expected
}

#[test]
fn self_test_passes_with_the_right_expected_output_and_fails_with_a_wrong_one() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let block = residual_block()
        .new_tree(&mut runner)
        .expect("strategy")
        .current();
    let expected = block.oracle()[2].clone();
    let mut file = block.net().file_with_self_test(&block.input, &expected);
    assert!(self_test_of(&file));
    let expected_ref = self_test_expected_ref(&file);
    for i in 0..expected.len() {
        let mut wrong = expected.clone();
        wrong[i] = wrong[i].wrapping_add(1);
        patch_data(&mut file, expected_ref, &as_bytes(&wrong));
        assert!(!self_test_of(&file), "output {i} off by one still passes");
    }
}

fn as_bytes(v: &[i8]) -> Vec<u8> {
    v.iter().map(|&x| x as u8).collect()
}

// ---------------------------------------------------------------------------------------------
// Inputs.

/// A 1×1 convolution from the input to `classes` logits.
fn classifier(channels: ChannelOrder, hw: [usize; 2], classes: usize, seed: u64) -> Net {
    let mut rng = Rng::new(seed);
    let mut net = Net::new(channels, hw, 0.02, -3);
    let c = net.tensors[0].shape[2];
    let out = net.tensor([1, 1, classes], 0.1, 4);
    net.layer(LayerSpec::Conv(ConvLayer {
        input: 0,
        output: out,
        kernel: [hw[0] as u16, hw[1] as u16],
        stride: [1, 1],
        pad: [0; 4],
        groups: 1,
        weights: rng.i8s(classes * hw[0] * hw[1] * c, -127, 127),
        bias: rng.i32s(classes, -2000, 2000),
        mults: rng.i32s(classes, 1 << 10, 1 << 14),
        shift: 22,
        clamp: [i8::MIN, i8::MAX],
        residual: None,
    }));
    net
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn set_input_pixels_applies_the_lut_of_each_channel(
        grey in any::<bool>(),
        hw in [1..=5usize, 1..=5usize],
        seed in any::<u64>(),
    ) {
        let channels = if grey { ChannelOrder::Grey } else { ChannelOrder::Rgb };
        let net = classifier(channels, hw, 4, seed);
        let c = net.tensors[0].shape[2];
        let pixels: Vec<u8> = Rng::new(seed).i8s(net.input_len(), i8::MIN, i8::MAX)
            .into_iter()
            .map(|p| p as u8)
            .collect();
        let bytes = aligned(&net.file());
        let mut engine = Engine::from_bytes(bytes.as_bytes()).expect("valid model");
        prop_assert_eq!(engine.is_grey(), grey);
        engine.set_input_pixels(&pixels).expect("input length");
        let want: Vec<i8> = pixels
            .iter()
            .enumerate()
            .map(|(i, &p)| test_lut(i % c, p as usize))
            .collect();
        prop_assert_eq!(engine.input_mut().to_vec(), want);
    }

    #[test]
    fn scores_of_a_softmax_model_sum_to_one_and_keep_the_order(
        input in proptest::collection::vec(any::<i8>(), 3),
        seed in any::<u64>(),
    ) {
        let mut net = classifier(ChannelOrder::Rgb, [1, 1], 10, seed);
        net.softmax = true;
        let bytes = aligned(&net.file());
        let mut engine = Engine::from_bytes(bytes.as_bytes()).expect("valid model");
        engine.set_input(&input).expect("input length");
        engine.run();
        let mut scores = [0f32; 10];
        engine.scores(&mut scores);
        let logits = engine.output();
        let sum: f32 = scores.iter().sum();
        prop_assert!((sum - 1.0).abs() < 1e-5, "sum {}", sum);
        prop_assert!(scores.iter().all(|&s| (0.0..=1.0).contains(&s)));
        for i in 0..10 {
            for j in 0..10 {
                // Logit steps are 0.1 apart, so order is strict in the probabilities too.
                prop_assert_eq!(logits[i].cmp(&logits[j]), scores[i].total_cmp(&scores[j]));
            }
        }
        let argmax = |v: &[f32]| (0..v.len()).fold(0, |m, i| if v[i] > v[m] { i } else { m });
        let logits_f: Vec<f32> = logits.iter().map(|&q| q as f32).collect();
        prop_assert_eq!(argmax(&scores), argmax(&logits_f));
    }
}

#[test]
fn scores_without_softmax_are_dequantized_logits() {
    let net = classifier(ChannelOrder::Rgb, [2, 2], 6, 5);
    let bytes = aligned(&net.file());
    let mut engine = Engine::from_bytes(bytes.as_bytes()).expect("valid model");
    engine
        .set_input(&[9, -9, 100, -100, 0, 1, 2, 3, 4, 5, 6, 7])
        .expect("input length");
    engine.run();
    let mut scores = [0f32; 6];
    engine.scores(&mut scores);
    for (s, &q) in scores.iter().zip(engine.output()) {
        assert_eq!(*s, 0.1 * (q as f32 - 4.0));
    }
}

#[test]
fn wrong_input_lengths_are_refused() {
    let net = classifier(ChannelOrder::Rgb, [2, 3], 4, 1);
    let bytes = aligned(&net.file());
    let mut engine = Engine::from_bytes(bytes.as_bytes()).expect("valid model");
    for actual in [0, 17, 19, 36] {
        assert_eq!(
            engine.set_input(&vec![0; actual]),
            Err(EngineError::InputLength {
                expected: 18,
                actual
            })
        );
        assert_eq!(
            engine.set_input_pixels(&vec![0; actual]),
            Err(EngineError::InputLength {
                expected: 18,
                actual
            })
        );
    }
    assert_eq!(engine.set_input(&[0; 18]), Ok(()));
}

#[test]
fn a_corrupted_file_is_a_format_error() {
    let net = classifier(ChannelOrder::Rgb, [1, 1], 4, 1);
    let mut file = net.file();
    let last = file.len() - 1;
    file[last] ^= 1;
    let bytes = aligned(&file);
    assert!(matches!(
        Engine::from_bytes(bytes.as_bytes()),
        Err(EngineError::Format(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// AlignedBytes.

proptest! {
    #[test]
    fn aligned_bytes_round_trip_any_length(bytes in proptest::collection::vec(any::<u8>(), 0..=100)) {
        let a = AlignedBytes::new(&bytes);
        prop_assert_eq!(a.as_bytes(), bytes.as_slice());
        prop_assert_eq!(a.as_bytes().as_ptr() as usize % 8, 0);
        let copy = a.clone();
        prop_assert_eq!(copy.as_bytes(), bytes.as_slice());
    }
}

#[test]
fn aligned_bytes_default_is_empty() {
    assert!(AlignedBytes::default().as_bytes().is_empty());
    assert!(AlignedBytes::new(&[]).as_bytes().is_empty());
}
