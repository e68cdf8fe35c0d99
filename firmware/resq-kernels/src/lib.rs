//! int8 kernels for resq.
//!
//! [`reference`](mod@reference) holds the portable reference kernels: plain loops in pure
//! integer arithmetic that define, bit for bit, what every faster kernel must compute.
//! Activations are NHWC with batch 1; weights are `[cout][kh][kw][cin / groups]`.
//!
//! The fast kernels reproduce them exactly, one family per operation, each checked against its
//! reference by the property tests in `tests/isa.rs`:
//!
//! | family | reference | fast path |
//! |---|---|---|
//! | convolution, 1×1 / k×k / strided / grouped, fully-connected | [`reference::conv2d`] | [`gemm`]: packed weights, padded prepared input, per-ISA micro-kernels ([`GemmUkernel`]) with the epilogue fused |
//! | depthwise convolution | [`reference::conv2d`] | [`dwconv`] |
//! | max / average pooling | [`reference::max_pool`], [`reference::avg_pool`] | [`pool`] |
//!
//! The tier ([`Isa`]) is chosen once at load ([`Isa::detect`], `RESQ_ISA`), and [`Kernels`]
//! is the proof that the CPU runs it. How to add an ISA: see the crate README.
//!
//! Callers (the engine) validate every shape at model load, so reference kernels only
//! `debug_assert!` their slice lengths; the micro-kernels check every tile's bounds
//! ([`gemm::GemmTile::fits`]) before their `unsafe` loads.
#![no_std]
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(any(unix, windows))]
extern crate std;

use core::ops::Range;

mod arch;
pub mod dwconv;
pub mod gemm;
mod isa;
pub mod mixed;
pub mod pool;
pub mod reference;

pub use gemm::{AFormat, GemmPlan, GemmTile, GemmUkernel};
pub use isa::{Isa, IsaError};

/// The kernels of one supported tier: holding one proves the CPU can run them.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    isa: Isa,
    gemm: &'static GemmUkernel,
}

impl Kernels {
    /// The kernels of `isa`, or `None` for [`Isa::Reference`] (which runs
    /// [`reference`](mod@reference) directly) and for tiers this CPU or build cannot run.
    pub fn new(isa: Isa) -> Option<Kernels> {
        if !isa.supported() {
            return None;
        }
        arch::gemm_ukernel(isa).map(|gemm| Kernels { isa, gemm })
    }

    /// The tier.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The convolution micro-kernel.
    pub fn gemm(&self) -> &'static GemmUkernel {
        self.gemm
    }

    /// This tier's int8 peak on one core, in multiply-accumulates per second, measured by
    /// running its multiply-accumulate instruction alone for about `iters` loop trips
    /// (`None` for tiers without a measurement).
    #[cfg(any(unix, windows))]
    pub fn peak_macs_per_second(&self, iters: usize) -> Option<f64> {
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => Some(arch::x86_64::avx512vnni::peak_macs_per_second(iters)),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Some(arch::x86_64::avx2::peak_macs_per_second(iters)),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon | Isa::Dotprod | Isa::I8mm => {
                arch::aarch64::peak_macs_per_second(self.isa, iters)
            }
            _ => None,
        }
    }
}

/// Rounding right shift: `round_half_up(v / 2^shift)` (ties go towards +∞), `shift` in 1..=62.
///
/// This is the only rounding in resq's integer pipeline. One 64-bit product and one rounding
/// (rather than gemmlowp's doubling-high-multiply followed by a second rounding shift) keeps the
/// result within ½ LSB of the exact value and maps onto NEON `vmull_s32` + `vrshlq_s64` and
/// x86 `vpmuldq` + a rounding add.
#[inline(always)]
pub fn round_shift(v: i64, shift: u8) -> i64 {
    (v + (1i64 << (shift - 1))) >> shift
}

/// `clamp(zero_point + round_shift(acc, shift), lo, hi)` as int8.
#[inline(always)]
pub fn finish(acc: i64, shift: u8, zero_point: i8, clamp: [i8; 2]) -> i8 {
    (round_shift(acc, shift) + zero_point as i64).clamp(clamp[0] as i64, clamp[1] as i64) as i8
}

/// Shape and window of a 2-D convolution or pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Input `[h, w, c]`.
    pub input: [usize; 3],
    /// Output `[h, w, c]`.
    pub output: [usize; 3],
    /// Window `[h, w]`.
    pub kernel: [usize; 2],
    /// Stride `[h, w]`.
    pub stride: [usize; 2],
    /// Padding before `[top, left]` (the padding after follows from the output size).
    pub pad: [usize; 2],
}

impl Geometry {
    /// Input row / column for output `o`, tap `k` on axis `axis` (0 = h, 1 = w), or `None` in padding.
    #[inline(always)]
    pub fn source(&self, axis: usize, o: usize, k: usize) -> Option<usize> {
        (o * self.stride[axis] + k)
            .checked_sub(self.pad[axis])
            .filter(|&i| i < self.input[axis])
    }

    /// The input cells `(sy, sx)` of output pixel `(y, x)`'s window that lie inside the input,
    /// row by row (the taps [`Geometry::source`] maps to `Some`, in the order of nested `ky`,
    /// `kx` loops): what pooling reads. Taps in the padding are skipped.
    #[inline(always)]
    pub fn window(&self, y: usize, x: usize) -> Window {
        let (rows, cols) = (self.span(0, y), self.span(1, x));
        Window {
            sx: cols.start,
            // No columns, no cells: start exhausted.
            rows: if cols.is_empty() {
                rows.end..rows.end
            } else {
                rows
            },
            cols,
        }
    }

    /// The input indices on `axis` read by output `o`'s taps, padding excluded.
    #[inline(always)]
    fn span(&self, axis: usize, o: usize) -> Range<usize> {
        // Tap `k` reads padded position `o · stride + k`; the input is padded positions
        // `pad..pad + input`.
        let (first, pad) = (o * self.stride[axis], self.pad[axis]);
        let start = first.max(pad) - pad;
        let end = (first + self.kernel[axis])
            .min(pad + self.input[axis])
            .saturating_sub(pad);
        start..end.max(start)
    }
}

/// The in-bounds cells of one pooling window, from [`Geometry::window`]: yields `(sy, sx)`.
#[derive(Clone, Debug)]
pub struct Window {
    /// Rows left (the first is the current one).
    rows: Range<usize>,
    /// Columns of every row.
    cols: Range<usize>,
    /// Next column of the current row.
    sx: usize,
}

impl Iterator for Window {
    type Item = (usize, usize);

    #[inline(always)]
    fn next(&mut self) -> Option<(usize, usize)> {
        if self.rows.is_empty() {
            return None;
        }
        let cell = (self.rows.start, self.sx);
        self.sx += 1;
        if self.sx == self.cols.end {
            self.sx = self.cols.start;
            self.rows.start += 1;
        }
        Some(cell)
    }

    #[inline(always)]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match self.rows.len() {
            0 => 0,
            rows => rows * self.cols.len() - (self.sx - self.cols.start),
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for Window {}

/// Everything a convolution does after the dot products: bias, requantization, the fused
/// residual add and the clamp.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    /// i32 bias per output channel, input zero point already folded in.
    pub bias: &'a [i32],
    /// Multiplier per output channel.
    pub mults: &'a [i32],
    /// Shared right shift.
    pub shift: u8,
    /// Output zero point.
    pub zero_point: i8,
    /// Output clamp `[min, max]`.
    pub clamp: [i8; 2],
    /// Residual operand, same shape as the output.
    pub residual: Option<ResidualOperand<'a>>,
}

/// The tensor added in a fused residual epilogue.
#[derive(Clone, Copy, Debug)]
pub struct ResidualOperand<'a> {
    /// Values, same layout as the output.
    pub values: &'a [i8],
    /// Its zero point.
    pub zero_point: i8,
    /// Multiplier of `(r − zero_point)` at the epilogue's shift.
    pub mult: i32,
}

impl Epilogue<'_> {
    /// Output value for accumulator `acc` of channel `c` at flat output index `index`.
    #[inline(always)]
    pub fn apply(&self, acc: i32, c: usize, index: usize) -> i8 {
        let mut v = acc as i64 * self.mults[c] as i64;
        if let Some(r) = &self.residual {
            v += (r.values[index] as i64 - r.zero_point as i64) * r.mult as i64;
        }
        finish(v, self.shift, self.zero_point, self.clamp)
    }
}
