//! How each convolution runs on the fast kernels, and how work is split across threads.

use core::ops::Range;

use alloc::vec::Vec;
use resq_format::{Conv, Model};
use resq_kernels::dwconv::DwPlan;
use resq_kernels::gemm::GemmPlan;
use resq_kernels::{Epilogue, Kernels};

use crate::dispatch::geometry;

/// Where a layer's packed weights are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Weights {
    /// In the engine's own buffer.
    Owned(Range<usize>),
    /// In the model file's weight range (packed there in place).
    InFile,
}

#[derive(Clone, Debug)]
enum Kind {
    Gemm(GemmPlan),
    Depthwise(DwPlan),
}

/// One convolution on the fast kernels.
#[derive(Clone, Debug)]
pub(crate) struct ConvExec {
    kind: Kind,
    weights: Weights,
    bias: Range<usize>,
    /// Multiply-accumulates per inference (decides whether threads are worth waking).
    macs: usize,
}

/// Below this many multiply-accumulates a layer runs on the calling thread alone.
const PARALLEL_MACS: usize = 1 << 20;
/// Below this many prepared bytes the preparation runs on the calling thread alone.
const PARALLEL_BYTES: usize = 1 << 16;
/// Guided-scheduling share of every split (see [`Par::split`]): each piece is
/// `1 / (threads · SHARE)` of the work left. 2 gives about `2 · threads · ln(tiles)` pieces:
/// few enough that each piece's pass over the packed weights (from L2, or L3 for the largest
/// layers) stays cheap, and small enough at the end that the threads finish together.
#[cfg_attr(not(any(unix, windows)), allow(dead_code))]
const SHARE: usize = 2;

impl ConvExec {
    pub(crate) fn plan(model: &Model, c: &Conv, kernels: &Kernels) -> ConvExec {
        let (xt, yt) = (model.tensor(c.input), model.tensor(c.output));
        let geo = geometry(xt.shape, yt.shape, c.kernel, c.stride, c.pad);
        let groups = c.groups as usize;
        let macs = geo.output.iter().product::<usize>()
            * geo.kernel[0]
            * geo.kernel[1]
            * (geo.input[2] / groups);
        let kind = if DwPlan::applies(&geo, groups) {
            Kind::Depthwise(DwPlan::new(&geo))
        } else {
            Kind::Gemm(GemmPlan::new(&geo, groups, kernels.gemm()))
        };
        ConvExec {
            kind,
            weights: Weights::InFile,
            bias: 0..0,
            macs,
        }
    }

    /// Bytes of packed weights (`None` if the layer reads the file's layout as is).
    pub(crate) fn packed_len(&self) -> Option<usize> {
        Some(match &self.kind {
            Kind::Gemm(p) => p.packed_len(),
            Kind::Depthwise(p) => p.packed_len(),
        })
    }

    /// Packs the file's weights into `out`.
    pub(crate) fn pack(&self, weights: &[i8], out: &mut [i8]) {
        match &self.kind {
            Kind::Gemm(p) => p.pack(weights, out),
            Kind::Depthwise(p) => p.pack(weights, out),
        }
    }

    pub(crate) fn set_weights(&mut self, w: Weights) {
        self.weights = w;
    }

    pub(crate) fn weights(&self) -> &Weights {
        &self.weights
    }

    /// Output channels (entries of packed bias).
    pub(crate) fn bias_len(&self) -> usize {
        self.cout()
    }

    fn cout(&self) -> usize {
        match &self.kind {
            Kind::Gemm(p) => p.channels(),
            Kind::Depthwise(p) => p.channels(),
        }
    }

    /// Appends the packed bias (from the packed weights `packed`) to `biases`.
    pub(crate) fn pack_bias(&mut self, packed: &[i8], bias: &[i32], biases: &mut Vec<i32>) {
        let start = biases.len();
        let n = self.cout();
        biases.resize(start + n, 0);
        match &self.kind {
            Kind::Gemm(p) => {
                let offset = p.prep.format.offset();
                p.pack_bias(packed, bias, offset, &mut biases[start..]);
            }
            Kind::Depthwise(_) => biases[start..].copy_from_slice(bias),
        }
        self.bias = start..start + n;
    }

    pub(crate) fn bias_range(&self) -> Range<usize> {
        self.bias.clone()
    }

    /// Scratch bytes for the prepared input.
    pub(crate) fn scratch_len(&self) -> usize {
        match &self.kind {
            Kind::Gemm(p) if p.prep.is_identity() => 0,
            Kind::Gemm(p) => p.prep.len(),
            Kind::Depthwise(p) => p.prep.len(),
        }
    }

    /// Runs the layer: prepares the input into `scratch`, then computes `out`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run(
        &self,
        par: &Par<'_>,
        kernels: &Kernels,
        x: &[i8],
        zero_point: i8,
        weights: &[i8],
        ep: &Epilogue<'_>,
        scratch: &mut [u8],
        out: &mut [i8],
    ) {
        let parallel = self.macs >= PARALLEL_MACS;
        match &self.kind {
            Kind::Gemm(plan) => {
                let a: &[u8] = if plan.prep.is_identity() {
                    bytemuck::cast_slice(x)
                } else {
                    prepare(par, &plan.prep, x, zero_point, scratch);
                    &scratch[..plan.prep.len()]
                };
                let oc = out.len() / plan.rows();
                let gemm = kernels.gemm();
                if plan.rows() == 1 {
                    // A single pixel (fully-connected): split the channel panels.
                    let panels = plan.panels();
                    let start = |p: usize| {
                        if p == panels {
                            oc
                        } else {
                            plan.panel_channels(p).0
                        }
                    };
                    let split = Split { align: 1, parallel };
                    par.split(out, panels, split, &start, &|ps, chunk| {
                        plan.run(gemm, a, weights, ep, chunk, start(ps.start), 0..1, ps)
                    });
                } else {
                    // Pieces of whole row tiles.
                    let split = Split {
                        align: gemm.mr,
                        parallel,
                    };
                    par.split(out, plan.rows(), split, &|m| m * oc, &|rows, chunk| {
                        let base = rows.start * oc;
                        plan.run(gemm, a, weights, ep, chunk, base, rows, 0..plan.panels())
                    });
                }
            }
            Kind::Depthwise(plan) => {
                prepare(par, &plan.prep, x, zero_point, scratch);
                let a = &scratch[..plan.prep.len()];
                let oc = out.len() / plan.rows();
                let split = Split { align: 1, parallel };
                par.split(out, plan.rows(), split, &|m| m * oc, &|rows, chunk| {
                    let base = rows.start * oc;
                    plan.run(kernels, a, weights, ep, chunk, base, rows)
                });
            }
        }
    }
}

fn prepare(
    par: &Par<'_>,
    prep: &resq_kernels::gemm::Prep,
    x: &[i8],
    zero_point: i8,
    scratch: &mut [u8],
) {
    let rb = prep.row_bytes();
    let rows = prep.rows();
    let split = Split {
        align: 1,
        parallel: rows * rb >= PARALLEL_BYTES,
    };
    par.split(
        &mut scratch[..rows * rb],
        rows,
        split,
        &|r| r * rb,
        &|r, chunk| prep.run(x, zero_point, r, chunk),
    );
}

/// How [`Par::split`] may cut its work.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Split {
    /// Pieces are whole multiples of this many units (a micro-kernel's row tile), so only a
    /// piece's last tile can be partial.
    pub(crate) align: usize,
    /// Whether the work is worth waking the threads for; `false` runs it on the caller alone.
    pub(crate) parallel: bool,
}

/// Splits work across the engine's threads (or runs it inline).
pub(crate) struct Par<'p> {
    #[cfg(any(unix, windows))]
    pool: Option<&'p crate::pool::Pool>,
    #[cfg(not(any(unix, windows)))]
    _pool: core::marker::PhantomData<&'p ()>,
}

impl<'p> Par<'p> {
    #[cfg(any(unix, windows))]
    pub(crate) fn new(pool: Option<&'p crate::pool::Pool>) -> Self {
        Par { pool }
    }

    #[cfg(not(any(unix, windows)))]
    pub(crate) fn new() -> Self {
        Par {
            _pool: core::marker::PhantomData,
        }
    }

    /// `n` rows of `unit` elements each of `out`, split across threads one row at a time
    /// (see [`Par::split`]) when `out` is large enough.
    pub(crate) fn rows<T: Send>(
        &self,
        out: &mut [T],
        n: usize,
        unit: usize,
        f: &(dyn Fn(Range<usize>, &mut [T]) + Sync),
    ) {
        let split = Split {
            align: 1,
            parallel: out.len() >= PARALLEL_BYTES,
        };
        self.split(out, n, split, &|u| u * unit, f)
    }

    /// Calls `f(units, piece)` for contiguous pieces of units `0..n` covering `out`, where
    /// unit `u` starts at element `start(u)` (`start(n) == out.len()`). Threads take pieces
    /// as they go (guided scheduling): each piece is `1 / (threads · SHARE)` of what is left,
    /// in multiples of `split.align` units (so only a piece's last tile can be partial), which
    /// gives big pieces first and small ones at the end: the threads finish together, and a
    /// thread slowed by another process simply takes fewer pieces. Without a pool, with
    /// `split.parallel` false or with at most one tile (`n ≤ split.align`), `f(0..n, out)`
    /// runs on the caller.
    pub(crate) fn split<T: Send>(
        &self,
        out: &mut [T],
        n: usize,
        split: Split,
        start: &(dyn Fn(usize) -> usize + Sync),
        f: &(dyn Fn(Range<usize>, &mut [T]) + Sync),
    ) {
        let Split { align, parallel } = split;
        #[cfg(any(unix, windows))]
        if let Some(pool) = self.pool.filter(|_| parallel && n > align) {
            let parts = pool.threads() * SHARE;
            let align = align.max(1);
            let rest = std::sync::Mutex::new((out, 0usize));
            pool.run(&|_| loop {
                let (units, piece) = {
                    let mut guard = rest.lock().unwrap_or_else(|e| e.into_inner());
                    let (slice, next) = &mut *guard;
                    let left = n - *next;
                    if left == 0 {
                        break;
                    }
                    let size = (left.div_ceil(parts).div_ceil(align) * align).min(left);
                    let units = *next..*next + size;
                    *next += size;
                    let len = start(units.end) - start(units.start);
                    let (piece, tail) = core::mem::take(slice).split_at_mut(len);
                    *slice = tail;
                    (units, piece)
                };
                f(units, piece);
            });
            return;
        }
        let _ = (align, parallel, start);
        f(0..n, out);
    }
}
