//! Activation memory planning from tensor lifetimes.

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use resq_format::Model;

/// Tensor offsets in one arena.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArenaPlan {
    /// Arena size in bytes.
    pub size: usize,
    /// Byte range of each tensor (empty for tensors no layer touches).
    pub regions: Vec<Range<usize>>,
}

/// Offsets are aligned so SIMD kernels may use aligned loads (and int16 tensors are 2-aligned).
const ALIGN: usize = 64;

/// Greedy first-fit by lifetime: a tensor lives from the step that writes it (the input from
/// step 0) to the last step that reads it (the output to the end). Tensors are placed largest
/// first at the lowest offset not used by any tensor whose lifetime overlaps.
pub fn plan_arena(model: &Model) -> ArenaPlan {
    let meta = &model.meta;
    let steps = meta.layers.len();
    let n = meta.tensors.len();
    // (first step, last step), inclusive; None for tensors never used.
    let mut life: Vec<Option<(usize, usize)>> = vec![None; n];
    let touch = |life: &mut Vec<Option<(usize, usize)>>, t: u16, step: usize| {
        let e = &mut life[t as usize];
        *e = Some(match *e {
            None => (step, step),
            Some((a, b)) => (a.min(step), b.max(step)),
        });
    };
    touch(&mut life, meta.input.tensor, 0);
    for (step, layer) in meta.layers.iter().enumerate() {
        touch(&mut life, layer.op.output(), step);
        for t in layer.op.inputs().into_iter().flatten() {
            touch(&mut life, t, step);
        }
    }
    touch(&mut life, meta.output.tensor, steps);

    let mut order: Vec<usize> = (0..n).filter(|&t| life[t].is_some()).collect();
    order.sort_by_key(|&t| (core::cmp::Reverse(model.tensor_bytes(t as u16)), t));
    let mut regions = vec![0..0; n];
    let mut placed: Vec<usize> = Vec::with_capacity(n);
    let mut size = 0;
    for t in order {
        let (a0, a1) = life[t].unwrap_or((0, 0));
        let len = model.tensor_bytes(t as u16);
        // Ranges of already placed tensors alive at the same time, by offset.
        let mut busy: Vec<Range<usize>> = placed
            .iter()
            .filter(|&&u| life[u].is_some_and(|(b0, b1)| b0 <= a1 && a0 <= b1))
            .map(|&u| regions[u].clone())
            .collect();
        busy.sort_by_key(|r| r.start);
        let mut offset = 0;
        for r in &busy {
            if offset + len <= r.start {
                break;
            }
            offset = offset.max(r.end.div_ceil(ALIGN) * ALIGN);
        }
        regions[t] = offset..offset + len;
        size = size.max(offset + len);
        placed.push(t);
    }
    ArenaPlan { size, regions }
}
