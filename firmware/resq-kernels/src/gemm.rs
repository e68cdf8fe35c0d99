//! Convolution as GEMM: packed weights, a prepared (padded, re-encoded) input read in place
//! through per-row offsets, and register-tile micro-kernels with a fused epilogue.
//!
//! For one convolution with output pixels `m` (NHWC rows), output channels `n` and the window
//! `k = (ky, kx, ci)`:
//!
//! ```text
//!   out[m][n] = epilogue(bias[n] + Σ_k A[m][k] · W[n][k])
//! ```
//!
//! * **W** is packed once (at load) by [`GemmPlan::pack`] into panels of `nr` output channels,
//!   `[panel][tap][k-group][nb][kr]`: for each tap and group of `kr` consecutive `k`, the `kr`
//!   weights of each of the panel's `nb ≤ nr` channels, contiguous. The last panel of a group
//!   is simply narrower, so for `kw · cin % kr == 0` the packed weights are exactly as large as
//!   the file's `[cout][kh][kw][cin/g]` (and can be packed in place).
//! * **A** is never materialised as im2col. [`Prep`] copies the input once per layer into a
//!   padded buffer in the micro-kernel's encoding ([`AFormat`]: `x ^ 0x80` for `vpdpbusd`,
//!   int16 for `vpmaddwd`, plain int8 otherwise); padded cells hold the (encoded) input zero
//!   point, exactly as the reference reads them. A tile row (one output pixel) is then one
//!   offset into that buffer: tap `(ty, tx)` adds `ty · tap_stride[0] + tx · tap_stride[1]`.
//!   With one group, a tap is a whole kernel *row* (`kw · cin` contiguous values), so a 3×3
//!   convolution is 3 runs of `3 · cin`, a 1×1 convolution a plain GEMM, and a strided 1×1
//!   convolution is subsampled by the preparation so it is a plain GEMM too.
//! * The **epilogue** (bias, i64 requantization with one rounding, residual add, clamp) runs on
//!   the accumulator registers and writes each output byte once.
//!
//! i32 accumulation wraps but is exact: the loader bounds `|bias| + 255 · 127 · K < 2³¹`, so
//! the true sum fits and any order (and any wrapping intermediate) gives the same bits.

use core::ops::Range;

use crate::{Epilogue, Geometry, ResidualOperand};

/// Most rows (output pixels) a micro-kernel tile may have.
pub const MAX_MR: usize = 8;

/// Bytes of zero slack after a prepared buffer, so a `kr`-wide read past the last value of a
/// tap (multiplied by zero padding weights) stays in bounds.
const SLACK: usize = 64;

/// How a micro-kernel wants its activations encoded in the prepared buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AFormat {
    /// int8 as is (`sdot`, `smmla`, `smlal`, the scalar kernel).
    I8,
    /// `x ^ 0x80`, i.e. `x + 128` as u8, for the u8 × s8 `vpdpbusd`; the packed bias carries
    /// `− 128 · Σw[n]` to compensate.
    U8Xor,
    /// Sign-extended little-endian int16, for `vpmaddwd`.
    I16,
}

impl AFormat {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            AFormat::I16 => 2,
            _ => 1,
        }
    }

    /// The constant added to every activation by the encoding (its `Σw` multiple leaves the bias).
    pub fn offset(self) -> i32 {
        match self {
            AFormat::U8Xor => 128,
            _ => 0,
        }
    }

    fn encode(self, src: &[i8], dst: &mut [u8]) {
        match self {
            AFormat::I8 => {
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = s as u8;
                }
            }
            AFormat::U8Xor => {
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = s as u8 ^ 0x80;
                }
            }
            AFormat::I16 => {
                for (d, &s) in dst.chunks_exact_mut(2).zip(src) {
                    d.copy_from_slice(&(s as i16).to_le_bytes());
                }
            }
        }
    }

    fn fill(self, value: i8, dst: &mut [u8]) {
        match self {
            AFormat::I8 => dst.fill(value as u8),
            AFormat::U8Xor => dst.fill(value as u8 ^ 0x80),
            AFormat::I16 => {
                let [a, b] = (value as i16).to_le_bytes();
                for d in dst.chunks_exact_mut(2) {
                    d[0] = a;
                    d[1] = b;
                }
            }
        }
    }
}

/// A register-tile micro-kernel: `mr` output pixels × `nr` output channels, reducing `kr`
/// values of `k` per step, with the epilogue fused.
///
/// Named `qs8_qc8w_igemm_{mr}x{nr}c{kr}__{isa}` (XNNPACK's convention: datatype, per-channel
/// weights, op, tile, arch).
/// Descriptors are `static`s inside this crate; [`crate::Kernels::new`] hands one out only
/// after checking the CPU runs it, which is what makes [`GemmUkernel::run`] safe.
#[derive(Debug)]
pub struct GemmUkernel {
    /// `qs8_qc8w_igemm_{mr}x{nr}c{kr}__{isa}`.
    pub name: &'static str,
    /// Rows (output pixels) per tile, ≤ [`MAX_MR`].
    pub mr: usize,
    /// Output channels per tile (and per packed panel).
    pub nr: usize,
    /// Values of `k` per step (the packing's innermost group).
    pub kr: usize,
    /// Activation encoding it reads.
    pub a_format: AFormat,
    /// The kernel. Contract: `tile` passed [`GemmTile::fits`] for this kernel and `out`, and
    /// the CPU has the kernel's features.
    pub(crate) func: unsafe fn(&GemmTile<'_>, &mut [i8]),
}

impl GemmUkernel {
    /// Runs one tile. Panics when the tile does not fit its buffers.
    #[inline]
    pub fn run(&self, tile: &GemmTile<'_>, out: &mut [i8]) {
        assert!(
            tile.fits(self, out.len()),
            "{}: tile out of bounds",
            self.name
        );
        // SAFETY: `fits` checked every offset the kernel reads or writes against the slices'
        // lengths, and `self` came from `Kernels::new`, which checked the CPU's features
        // (descriptors are crate-private statics).
        unsafe { (self.func)(tile, out) }
    }
}

/// One micro-kernel call: up to `mr` rows × `nb` channels of one packed panel.
///
/// Row `i` reads, for tap `(ty, tx)` and k-group `g`, the `kr` elements of `a` (in the
/// kernel's [`AFormat`]) at element offset
/// `rows[i] + ty · tap_stride[0] + tx · tap_stride[1] + g · kr`, and writes channel `j` to
/// `out[out_offset + i · out_stride + j]` (the residual is read at the same index).
#[derive(Clone, Copy, Debug)]
pub struct GemmTile<'a> {
    /// Prepared activations (bytes; elements of the kernel's [`AFormat`]).
    pub a: &'a [u8],
    /// Element offset of each row's first tap.
    pub rows: [usize; MAX_MR],
    /// Rows in this tile (1..=`mr`).
    pub mr: usize,
    /// Taps `[rows, columns]`.
    pub taps: [usize; 2],
    /// Element offset between taps `[rows, columns]`.
    pub tap_stride: [usize; 2],
    /// `kr`-groups per tap.
    pub k_groups: usize,
    /// The packed panel: `[tap][k-group][nb][kr]`.
    pub w: &'a [i8],
    /// Channels in the panel (1..=`nr`).
    pub nb: usize,
    /// Packed (encoding-compensated) bias of the panel's channels.
    pub bias: &'a [i32],
    /// Multipliers of the panel's channels.
    pub mults: &'a [i32],
    /// Requantization shift, 1..=62.
    pub shift: u8,
    /// Output zero point.
    pub zero_point: i8,
    /// Output clamp.
    pub clamp: [i8; 2],
    /// Residual operand, indexed like `out`.
    pub residual: Option<ResidualOperand<'a>>,
    /// Index in `out` of row 0, channel 0.
    pub out_offset: usize,
    /// Index distance between rows in `out`.
    pub out_stride: usize,
}

impl GemmTile<'_> {
    /// Whether every read and write of kernel `k` on this tile stays inside the slices.
    pub fn fits(&self, k: &GemmUkernel, out_len: usize) -> bool {
        let check = || -> Option<bool> {
            let mut ok = (1..=k.mr.min(MAX_MR)).contains(&self.mr)
                && (1..=k.nr).contains(&self.nb)
                && (1..=62).contains(&self.shift)
                && self.bias.len() >= self.nb
                && self.mults.len() >= self.nb;
            let steps = self.taps[0]
                .checked_mul(self.taps[1])?
                .checked_mul(self.k_groups)?;
            ok &= steps.checked_mul(self.nb)?.checked_mul(k.kr)? <= self.w.len();
            if steps > 0 {
                let span = (self.taps[0] - 1)
                    .checked_mul(self.tap_stride[0])?
                    .checked_add((self.taps[1] - 1).checked_mul(self.tap_stride[1])?)?
                    .checked_add(self.k_groups.checked_mul(k.kr)?)?;
                let elems = self.a.len() / k.a_format.size();
                for &r in &self.rows[..self.mr.min(MAX_MR)] {
                    ok &= r.checked_add(span)? <= elems;
                }
            }
            let end = (self.mr.max(1) - 1)
                .checked_mul(self.out_stride)?
                .checked_add(self.out_offset)?
                .checked_add(self.nb)?;
            ok &= end <= out_len;
            if let Some(r) = &self.residual {
                ok &= end <= r.values.len();
            }
            Some(ok)
        };
        check().unwrap_or(false)
    }

    /// The tile's epilogue for channel `j` of the panel, output index `index` (scalar tails).
    #[inline(always)]
    pub fn apply(&self, acc: i32, j: usize, index: usize) -> i8 {
        Epilogue {
            bias: self.bias,
            mults: self.mults,
            shift: self.shift,
            zero_point: self.zero_point,
            clamp: self.clamp,
            residual: self.residual,
        }
        .apply(acc, j, index)
    }
}

/// How one layer's input is copied into the prepared buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prep {
    /// Encoding of the prepared values.
    pub format: AFormat,
    input: [usize; 3],
    groups: usize,
    cin_g: usize,
    /// Channels per group in the prepared buffer (padded to `kr` when there are groups).
    cin_gp: usize,
    /// `[top, left]` padding before the input (prepared coordinates = input + pad).
    pad: [usize; 2],
    /// Subsampling step `[h, w]` (1×1 convolutions without padding), else `None`.
    sample: Option<[usize; 2]>,
    /// Prepared rows, columns and elements per pixel.
    ph: usize,
    pw: usize,
    ps: usize,
    /// The micro-kernel's `kr` (reads are whole groups of `kr`).
    kr: usize,
}

impl Prep {
    /// A padded copy of the whole window area of a one-group layer: prepared pixel
    /// `(y, x)` is input pixel `(y − pad_top, x − pad_left)`, or the zero point outside it.
    pub fn padded(geo: &Geometry, format: AFormat) -> Prep {
        let [oh, ow, _] = geo.output;
        let ic = geo.input[2];
        Prep {
            format,
            input: geo.input,
            groups: 1,
            cin_g: ic,
            cin_gp: ic,
            pad: geo.pad,
            sample: None,
            ph: (oh - 1) * geo.stride[0] + geo.kernel[0],
            pw: (ow - 1) * geo.stride[1] + geo.kernel[1],
            ps: ic,
            kr: 1,
        }
    }

    /// Prepared columns (pixels per prepared row).
    pub fn columns(&self) -> usize {
        self.pw
    }

    /// Prepared rows (the unit of work when preparing in parallel).
    pub fn rows(&self) -> usize {
        self.ph
    }

    /// Bytes of one prepared row.
    pub fn row_bytes(&self) -> usize {
        self.pw * self.ps * self.format.size()
    }

    /// Bytes of the prepared buffer, slack included.
    pub fn len(&self) -> usize {
        self.ph * self.row_bytes() + SLACK
    }

    /// Whether the prepared buffer would be a byte copy of the input with no read past its
    /// end (then the input itself is read and [`Prep::run`] need not be called).
    pub fn is_identity(&self) -> bool {
        self.format == AFormat::I8
            && self.sample == Some([1, 1])
            && self.cin_gp == self.cin_g
            && self.cin_g.is_multiple_of(self.kr)
    }

    /// Whether the buffer is empty (never: every layer has at least one row).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Prepares rows `rows` into `dst` (exactly `rows.len() · row_bytes()` bytes).
    pub fn run(&self, input: &[i8], zero_point: i8, rows: Range<usize>, dst: &mut [u8]) {
        let [ih, iw, ic] = self.input;
        debug_assert_eq!(input.len(), ih * iw * ic);
        let es = self.format.size();
        let row_bytes = self.row_bytes();
        assert!(dst.len() >= rows.len() * row_bytes && rows.end <= self.ph);
        for (py, drow) in rows.zip(dst.chunks_exact_mut(row_bytes)) {
            if let Some([sh, sw]) = self.sample {
                let src_row = &input[py * sh * iw * ic..];
                if sw == 1 && self.cin_gp == self.cin_g {
                    self.format.encode(&src_row[..self.pw * ic], drow);
                } else {
                    for (px, dpx) in drow.chunks_exact_mut(self.ps * es).enumerate() {
                        self.pixel(&src_row[px * sw * ic..][..ic], zero_point, dpx);
                    }
                }
                continue;
            }
            let iy = py.checked_sub(self.pad[0]).filter(|&y| y < ih);
            let Some(iy) = iy else {
                self.format.fill(zero_point, drow);
                continue;
            };
            let src_row = &input[iy * iw * ic..][..iw * ic];
            // Columns [x0, x1) of the prepared row come from the input.
            let x0 = self.pad[1].min(self.pw);
            let x1 = (self.pad[1] + iw).min(self.pw);
            let pix = self.ps * es;
            self.format.fill(zero_point, &mut drow[..x0 * pix]);
            self.format.fill(zero_point, &mut drow[x1 * pix..]);
            let src = &src_row[(x0 - self.pad[1]) * ic..(x1 - self.pad[1]) * ic];
            if self.cin_gp == self.cin_g {
                self.format.encode(src, &mut drow[x0 * pix..x1 * pix]);
            } else {
                for (s, d) in src
                    .chunks_exact(ic)
                    .zip(drow[x0 * pix..x1 * pix].chunks_exact_mut(pix))
                {
                    self.pixel(s, zero_point, d);
                }
            }
        }
    }

    /// One pixel, group by group, padding channels to `cin_gp` with the zero point.
    fn pixel(&self, src: &[i8], zero_point: i8, dst: &mut [u8]) {
        let es = self.format.size();
        for (s, d) in src
            .chunks_exact(self.cin_g)
            .zip(dst.chunks_exact_mut(self.cin_gp * es))
        {
            let (head, tail) = d.split_at_mut(self.cin_g * es);
            self.format.encode(s, head);
            self.format.fill(zero_point, tail);
        }
    }
}

/// Everything about one convolution that the GEMM path decides at load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GemmPlan {
    geo: Geometry,
    groups: usize,
    mr: usize,
    nr: usize,
    kr: usize,
    cin_g: usize,
    cout_g: usize,
    /// The input preparation.
    pub prep: Prep,
    /// Output pixel step in prepared pixels `[h, w]`.
    step: [usize; 2],
    taps: [usize; 2],
    tap_stride: [usize; 2],
    k_groups: usize,
    /// Packed bytes per output channel.
    kpc: usize,
}

impl GemmPlan {
    /// Plans a grouped convolution for micro-kernel `k`.
    pub fn new(geo: &Geometry, groups: usize, k: &GemmUkernel) -> GemmPlan {
        let [ih, iw, ic] = geo.input;
        let [oh, ow, oc] = geo.output;
        let [kh, kw] = geo.kernel;
        let [sh, sw] = geo.stride;
        let kr = k.kr;
        let (cin_g, cout_g) = (ic / groups, oc / groups);
        let cin_gp = if groups == 1 {
            ic
        } else {
            cin_g.div_ceil(kr) * kr
        };
        let ps = groups * cin_gp;
        let subsample =
            kh == 1 && kw == 1 && geo.pad == [0, 0] && (oh - 1) * sh < ih && (ow - 1) * sw < iw;
        let (sample, ph, pw, step) = if subsample {
            (Some([sh, sw]), oh, ow, [1, 1])
        } else {
            (None, (oh - 1) * sh + kh, (ow - 1) * sw + kw, [sh, sw])
        };
        let prep = Prep {
            format: k.a_format,
            input: geo.input,
            groups,
            cin_g,
            cin_gp,
            pad: geo.pad,
            sample,
            ph,
            pw,
            ps,
            kr,
        };
        let (taps, tap_stride, k_groups) = if groups == 1 {
            ([kh, 1], [pw * ps, 0], (kw * ic).div_ceil(kr))
        } else {
            ([kh, kw], [pw * ps, ps], cin_gp / kr)
        };
        GemmPlan {
            geo: *geo,
            groups,
            mr: k.mr,
            nr: k.nr,
            kr,
            cin_g,
            cout_g,
            prep,
            step,
            taps,
            tap_stride,
            k_groups,
            kpc: taps[0] * taps[1] * k_groups * kr,
        }
    }

    /// Bytes of packed weights.
    pub fn packed_len(&self) -> usize {
        self.geo.output[2] * self.kpc
    }

    /// Output channels.
    pub fn channels(&self) -> usize {
        self.geo.output[2]
    }

    /// Panels (units of `nr` output channels, per group).
    pub fn panels(&self) -> usize {
        self.groups * self.cout_g.div_ceil(self.nr)
    }

    /// Output pixels (GEMM rows).
    pub fn rows(&self) -> usize {
        self.geo.output[0] * self.geo.output[1]
    }

    /// Output channels of panel `p`: `(first channel, count)`.
    pub fn panel_channels(&self, p: usize) -> (usize, usize) {
        let per_group = self.cout_g.div_ceil(self.nr);
        let (g, q) = (p / per_group, p % per_group);
        let n0 = q * self.nr;
        (g * self.cout_g + n0, self.nr.min(self.cout_g - n0))
    }

    /// Packs `weights` (`[cout][kh][kw][cin/g]`) into `out` (`packed_len()` bytes).
    pub fn pack(&self, weights: &[i8], out: &mut [i8]) {
        let [kh, kw] = self.geo.kernel;
        let ic = self.geo.input[2];
        let (kr, kg) = (self.kr, self.k_groups);
        assert_eq!(weights.len(), self.geo.output[2] * kh * kw * self.cin_g);
        assert_eq!(out.len(), self.packed_len());
        for p in 0..self.panels() {
            let (n0, nb) = self.panel_channels(p);
            let panel = &mut out[n0 * self.kpc..][..nb * self.kpc];
            for j in 0..nb {
                let wn = &weights[(n0 + j) * kh * kw * self.cin_g..][..kh * kw * self.cin_g];
                for ty in 0..self.taps[0] {
                    for tx in 0..self.taps[1] {
                        let t = ty * self.taps[1] + tx;
                        for e in 0..kg * kr {
                            // Which (ky, kx, ci) element `e` of this tap's run is, if any.
                            let src = if self.groups == 1 {
                                (e < kw * ic).then(|| (ty * kw * ic) + e)
                            } else {
                                (e < self.cin_g).then(|| (ty * kw + tx) * self.cin_g + e)
                            };
                            let dst = ((t * kg + e / kr) * nb + j) * kr + e % kr;
                            panel[dst] = src.map_or(0, |s| wn[s]);
                        }
                    }
                }
            }
        }
    }

    /// The packed bias: `bias[n] − offset · Σw[n]` for the kernel's encoding (wrapping, which
    /// is exact because the final accumulator fits in i32).
    pub fn pack_bias(&self, packed: &[i8], bias: &[i32], offset: i32, out: &mut [i32]) {
        assert_eq!(packed.len(), self.packed_len());
        for p in 0..self.panels() {
            let (n0, nb) = self.panel_channels(p);
            let panel = &packed[n0 * self.kpc..][..nb * self.kpc];
            for j in 0..nb {
                let sum: i32 = panel
                    .chunks_exact(self.kr)
                    .skip(j)
                    .step_by(nb)
                    .flatten()
                    .map(|&w| w as i32)
                    .sum();
                out[n0 + j] = bias[n0 + j].wrapping_sub(offset.wrapping_mul(sum));
            }
        }
    }

    /// Computes output rows `rows` (pixels) for panels `panels` with micro-kernel `k`.
    ///
    /// `a` is the prepared buffer ([`Prep::run`] over all rows, or the input itself when
    /// [`Prep::is_identity`]); `ep.bias` is the packed bias; `out` holds output indices
    /// `out_base..` (so a thread can own just its rows); `ep.residual`, if any, is the whole
    /// residual tensor.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        k: &GemmUkernel,
        a: &[u8],
        packed: &[i8],
        ep: &Epilogue<'_>,
        out: &mut [i8],
        out_base: usize,
        rows: Range<usize>,
        panels: Range<usize>,
    ) {
        assert!(k.mr == self.mr && k.nr == self.nr && k.kr == self.kr);
        assert!(k.a_format == self.prep.format);
        let [_, ow, oc] = self.geo.output;
        let residual = ep.residual.map(|r| ResidualOperand {
            values: &r.values[out_base.min(r.values.len())..],
            ..r
        });
        let row_stride = self.step[0] * self.prep.pw * self.prep.ps;
        let col_stride = self.step[1] * self.prep.ps;
        for p in panels {
            let (n0, nb) = self.panel_channels(p);
            let group_offset = (n0 / self.cout_g) * self.prep.cin_gp;
            let w = &packed[n0 * self.kpc..][..nb * self.kpc];
            let mut tile = GemmTile {
                a,
                rows: [0; MAX_MR],
                mr: 0,
                taps: self.taps,
                tap_stride: self.tap_stride,
                k_groups: self.k_groups,
                w,
                nb,
                bias: &ep.bias[n0..n0 + nb],
                mults: &ep.mults[n0..n0 + nb],
                shift: ep.shift,
                zero_point: ep.zero_point,
                clamp: ep.clamp,
                residual,
                out_offset: 0,
                out_stride: oc,
            };
            let mut m = rows.start;
            while m < rows.end {
                let mr = self.mr.min(rows.end - m);
                let (mut y, mut x) = (m / ow, m % ow);
                for r in &mut tile.rows[..mr] {
                    *r = y * row_stride + x * col_stride + group_offset;
                    x += 1;
                    if x == ow {
                        x = 0;
                        y += 1;
                    }
                }
                tile.mr = mr;
                tile.out_offset = m * oc + n0 - out_base;
                k.run(&tile, out);
                m += mr;
            }
        }
    }
}

/// The portable micro-kernel: plain Rust over the same packing, for tests of the driver on
/// every target. Safe code; the `unsafe fn` signature only matches the descriptor's.
#[allow(non_upper_case_globals)]
pub(crate) static QS8_IGEMM_4X16C4__SCALAR: GemmUkernel = GemmUkernel {
    name: "qs8_qc8w_igemm_4x16c4__scalar",
    mr: 4,
    nr: 16,
    kr: 4,
    a_format: AFormat::I8,
    func: scalar_tile,
};

unsafe fn scalar_tile(t: &GemmTile<'_>, out: &mut [i8]) {
    let kr = 4;
    for i in 0..t.mr {
        let mut acc = [0i32; 16];
        acc[..t.nb].copy_from_slice(&t.bias[..t.nb]);
        let mut w = t.w.chunks_exact(kr);
        for ty in 0..t.taps[0] {
            for tx in 0..t.taps[1] {
                let base = t.rows[i] + ty * t.tap_stride[0] + tx * t.tap_stride[1];
                for g in 0..t.k_groups {
                    let a = &t.a[base + g * kr..][..kr];
                    for acc in &mut acc[..t.nb] {
                        let wv = w.next().unwrap_or(&[0; 4]);
                        for (&x, &wv) in a.iter().zip(wv) {
                            *acc = acc.wrapping_add((x as i8 as i32) * wv as i32);
                        }
                    }
                }
            }
        }
        let row = t.out_offset + i * t.out_stride;
        for (j, &acc) in acc[..t.nb].iter().enumerate() {
            out[row + j] = t.apply(acc, j, row + j);
        }
    }
}
