//! The arena planner: tensors that must coexist never share bytes, and tensors that never
//! coexist do share them.

mod common;

use std::collections::BTreeSet;
use std::ops::Range;

use common::{aligned, build_dag, parse, random_dag, same_conv, LayerSpec, Net, Rng};
use proptest::prelude::*;
use resq_engine::{plan_arena, ArenaPlan};
use resq_format::ChannelOrder;

/// Offsets are documented as 64-byte aligned (for SIMD loads).
const ALIGN: usize = 64;

fn plan(net: &Net) -> ArenaPlan {
    let bytes = aligned(&net.file());
    let model = parse(&bytes);
    plan_arena(&model)
}

/// The tensors whose contents must be intact while step `i` runs: its inputs and output, and
/// every tensor already produced (or the graph input) that a later step reads or that is the
/// graph output. `i == layers.len()` is the state after the run: only the output.
fn needed_at(net: &Net, i: usize) -> BTreeSet<u16> {
    let produced_before =
        |t: u16| t == net.input || net.layers[..i].iter().any(|l| l.output() == t);
    let read_from =
        |t: u16, from: usize| net.layers[from..].iter().any(|l| l.inputs().contains(&t));
    let mut needed: BTreeSet<u16> = (0..net.tensors.len() as u16)
        .filter(|&t| produced_before(t) && (read_from(t, i) || t == net.output))
        .collect();
    if let Some(layer) = net.layers.get(i) {
        needed.insert(layer.output());
        needed.extend(layer.inputs());
    } else {
        needed.insert(net.output);
    }
    needed
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// Every invariant of a plan, as a list of violations (empty when the plan is sound).
fn violations(net: &Net, plan: &ArenaPlan) -> Vec<String> {
    let mut bad = Vec::new();
    let used: BTreeSet<u16> = (0..=net.layers.len())
        .flat_map(|i| needed_at(net, i))
        .collect();
    for &t in &used {
        let r = &plan.regions[t as usize];
        let elems = net.tensors[t as usize].elems();
        if r.len() != elems {
            bad.push(format!(
                "tensor {t}: region {r:?} holds {} bytes, not {elems}",
                r.len()
            ));
        }
        if r.end > plan.size {
            bad.push(format!(
                "tensor {t}: region {r:?} ends past the arena ({})",
                plan.size
            ));
        }
        if !r.start.is_multiple_of(ALIGN) {
            bad.push(format!(
                "tensor {t}: region {r:?} is not {ALIGN}-byte aligned"
            ));
        }
    }
    for i in 0..=net.layers.len() {
        let needed: Vec<u16> = needed_at(net, i).into_iter().collect();
        for (k, &a) in needed.iter().enumerate() {
            for &b in &needed[k + 1..] {
                let (ra, rb) = (&plan.regions[a as usize], &plan.regions[b as usize]);
                if overlaps(ra, rb) {
                    bad.push(format!(
                        "step {i}: tensors {a} {ra:?} and {b} {rb:?} overlap"
                    ));
                }
            }
        }
    }
    // Never worse than giving every tensor its own (aligned) slot.
    let separate: usize = used
        .iter()
        .map(|&t| net.tensors[t as usize].elems().div_ceil(ALIGN) * ALIGN)
        .sum();
    if plan.size > separate {
        bad.push(format!(
            "arena {} > {separate}, the sum of all (aligned) tensors",
            plan.size
        ));
    }
    bad
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn coexisting_tensors_never_share_bytes((hw, steps, seed) in random_dag()) {
        let net = build_dag(hw, &steps, seed);
        let plan = plan(&net);
        let bad = violations(&net, &plan);
        prop_assert!(bad.is_empty(), "{:#?}\nplan {:?}", bad, plan);
    }
}

/// A chain of `n` 1×1 convolutions on `[8, 8, 3]`, then an 8×8 convolution to `[1, 1, 192]`:
/// `n + 2` tensors of 192 bytes each.
fn equal_size_chain(n: usize) -> Net {
    let mut rng = Rng::new(7);
    let mut net = Net::new(ChannelOrder::Rgb, [8, 8], 0.02, 0);
    let mut t = net.input;
    for _ in 0..n {
        t = same_conv(&mut net, &mut rng, t, 1, 3, None);
    }
    let out = net.tensor([1, 1, 192], 0.1, 0);
    net.layer(LayerSpec::Conv(common::ConvLayer {
        input: t,
        output: out,
        kernel: [8, 8],
        stride: [1, 1],
        pad: [0; 4],
        groups: 1,
        weights: rng.i8s(192 * 8 * 8 * 3, -127, 127),
        bias: vec![0; 192],
        mults: vec![1 << 10; 192],
        shift: 20,
        clamp: [i8::MIN, i8::MAX],
        residual: None,
    }));
    net
}

#[test]
fn ten_layer_chain_of_equal_tensors_needs_two_slots_not_ten() {
    let net = equal_size_chain(9);
    assert_eq!(net.layers.len(), 10);
    assert!(net.tensors.iter().all(|t| t.elems() == 192));
    let plan = plan(&net);
    assert_eq!(violations(&net, &plan), Vec::<String>::new());

    // The ten layer outputs alternate between two slots; the input may take a third.
    let outputs: BTreeSet<usize> = net
        .layers
        .iter()
        .map(|l| plan.regions[l.output() as usize].start)
        .collect();
    assert_eq!(outputs.len(), 2, "layer outputs use slots {outputs:?}");
    assert!(
        plan.size <= 3 * 192,
        "arena {} bytes for 192-byte tensors",
        plan.size
    );
}

#[test]
fn tensor_read_again_later_keeps_its_bytes_until_then() {
    // x → a → b → c, then add(c, x): x must survive the whole chain.
    let mut rng = Rng::new(3);
    let mut net = Net::new(ChannelOrder::Rgb, [2, 2], 0.02, 0);
    let x = net.input;
    let a = same_conv(&mut net, &mut rng, x, 1, 3, None);
    let b = same_conv(&mut net, &mut rng, a, 1, 3, None);
    let c = same_conv(&mut net, &mut rng, b, 1, 3, Some(x));
    common::global_avg_pool(&mut net, c);
    let plan = plan(&net);
    assert_eq!(violations(&net, &plan), Vec::<String>::new());
    for t in [a, b, c] {
        assert!(
            !overlaps(&plan.regions[x as usize], &plan.regions[t as usize]),
            "input {:?} shares bytes with tensor {t} {:?}",
            plan.regions[x as usize],
            plan.regions[t as usize]
        );
    }
}
