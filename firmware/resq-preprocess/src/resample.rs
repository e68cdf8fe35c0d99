//! Resize + centre crop with precomputed integer weights, fused with colour conversion and the
//! model's lookup table.

use alloc::vec;
use alloc::vec::Vec;

use crate::error::PreprocessError;
use crate::frame::{Frame, MAX_FRAME_DIM};
use crate::{channel_count, ChannelOrder, Resize, ResizeMode};

/// Where a frame's pixels land in the model input: the frame is resized to `resized` (by the
/// model file's [`Resize`] recipe) and the `output`-sized window at `crop` is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Source `[width, height]`.
    pub source: [usize; 2],
    /// Resized `[width, height]`, each ≥ the output's.
    pub resized: [usize; 2],
    /// Top-left corner `[x, y]` of the kept window in the resized image.
    pub crop: [usize; 2],
    /// Output (model input) `[width, height]`.
    pub output: [usize; 2],
}

impl Geometry {
    /// Resize-shorter-side-then-centre-crop to the output itself, as torchvision's
    /// `Resize(size)` + `CenterCrop(size)`: [`Geometry::new`] with
    /// [`Resize::shorter_side`] of the output (the recipe of version 1 and 2 files).
    pub fn fit(
        src_w: usize,
        src_h: usize,
        out_w: usize,
        out_h: usize,
    ) -> Result<Geometry, PreprocessError> {
        Geometry::new(
            [src_w, src_h],
            Resize::shorter_side(out_w as u32, out_h as u32),
            [out_w, out_h],
        )
    }

    /// The geometry of `resize` followed by the centre crop to `output` (`[width, height]`).
    ///
    /// - [`ResizeMode::Shorter`]: aspect ratio kept, scale `max(size_w / src_w, size_h /
    ///   src_h)` — for a square `size` the shorter side becomes `size` — the other side
    ///   rounded half up (torchvision's `Resize(int)`).
    /// - [`ResizeMode::Squash`]: each side straight to `size` (Keras, TFLite).
    ///
    /// Then the `output` window is centred (rounding down), as `CenterCrop`.
    pub fn new(
        source: [usize; 2],
        resize: Resize,
        output: [usize; 2],
    ) -> Result<Geometry, PreprocessError> {
        let bad = |[w, h]: [usize; 2]| w == 0 || h == 0 || w > MAX_FRAME_DIM || h > MAX_FRAME_DIM;
        if bad(source) {
            return Err(PreprocessError::BadSize {
                what: "frame",
                width: source[0],
                height: source[1],
            });
        }
        if bad(output) {
            return Err(PreprocessError::BadSize {
                what: "model input",
                width: output[0],
                height: output[1],
            });
        }
        let size = resize.size.map(|d| d as usize);
        if bad(size) || size[0] < output[0] || size[1] < output[1] {
            return Err(PreprocessError::BadResize { size, output });
        }
        let [sw, sh] = source.map(|d| d as u64);
        let [bw, bh] = size;
        let resized = match resize.mode {
            ResizeMode::Squash => size,
            ResizeMode::Shorter => {
                // round(a · b / c), half up, in integers.
                let scaled = |a: u64, b: usize, c: u64| ((2 * a * b as u64 + c) / (2 * c)) as usize;
                if bw as u64 * sh >= bh as u64 * sw {
                    // The width is the limiting side.
                    [bw, scaled(sh, bw, sw).max(bh)]
                } else {
                    [scaled(sw, bh, sh).max(bw), bh]
                }
            }
        };
        Ok(Geometry {
            source,
            resized,
            crop: [(resized[0] - output[0]) / 2, (resized[1] - output[1]) / 2],
            output,
        })
    }
}

/// Q16 weights of one axis: for each output index, the first source index and its taps.
#[derive(Clone, Debug)]
struct Axis {
    /// First source index of each output index.
    first: Vec<u32>,
    /// `offsets[o]..offsets[o + 1]` indexes `weights` for output index `o`.
    offsets: Vec<u32>,
    /// Q16 weights; each output index's weights sum to exactly 65536.
    weights: Vec<u32>,
}

const ONE: u64 = 1 << 16;

impl Axis {
    /// Triangle-filter weights for resizing `n` source pixels to `m`, for resized indices
    /// `crop..crop + out`.
    ///
    /// With pixel centres at `i + ½`, output `o` sits at `(o + ½)·n/m` in the source; the
    /// filter's half-width is `max(n/m, 1)` source pixels. Scaled by `2m`, the weight of source
    /// pixel `i` is the integer `max(0, D − |(2i + 1)·m − (2o + 1)·n|)` with `D = 2·max(n, m)`:
    /// exact, no float anywhere.
    fn new(n: usize, m: usize, crop: usize, out: usize) -> Axis {
        let (n64, m64) = (n as i64, m as i64);
        let d = 2 * n64.max(m64);
        let mut axis = Axis {
            first: Vec::with_capacity(out),
            offsets: Vec::with_capacity(out + 1),
            weights: Vec::new(),
        };
        axis.offsets.push(0);
        let mut raw: Vec<u64> = Vec::new();
        for o in crop..crop + out {
            let c = (2 * o as i64 + 1) * n64;
            // Taps with positive weight: c − D < (2i + 1)·m < c + D.
            let lo = (c - d - m64).div_euclid(2 * m64) + 1;
            let hi = (c + d - m64 + 2 * m64 - 1).div_euclid(2 * m64);
            let (lo, hi) = (lo.clamp(0, n64 - 1), hi.clamp(1, n64));
            raw.clear();
            raw.extend(
                (lo..hi.max(lo + 1)).map(|i| (d - ((2 * i + 1) * m64 - c).abs()).max(0) as u64),
            );
            let total: u64 = raw.iter().sum();
            if total == 0 {
                // Unreachable for valid sizes (a centre always has a pixel within reach);
                // kept so a bug shows as a nearest-pixel sample, never a division by zero.
                raw.iter_mut().for_each(|w| *w = 0);
                raw[0] = 1;
            }
            let total: u64 = raw.iter().sum();
            let start = axis.weights.len();
            axis.weights
                .extend(raw.iter().map(|&w| (w * ONE / total) as u32));
            // Give the rounding remainder to the largest tap so the weights sum to exactly 1.
            let sum: u64 = axis.weights[start..].iter().map(|&w| w as u64).sum();
            let big = (0..raw.len()).fold(0, |b, i| if raw[i] > raw[b] { i } else { b });
            axis.weights[start + big] += (ONE - sum) as u32;
            axis.first.push(lo as u32);
            axis.offsets.push(axis.weights.len() as u32);
        }
        axis
    }

    fn taps(&self, o: usize) -> (usize, &[u32]) {
        let (a, b) = (self.offsets[o] as usize, self.offsets[o + 1] as usize);
        (self.first[o] as usize, &self.weights[a..b])
    }

    /// Source indices read, `[start, end)`.
    fn span(&self) -> (usize, usize) {
        let out = self.first.len();
        let start = self.first.first().map_or(0, |&f| f as usize);
        let end = (0..out)
            .map(|o| {
                let (f, w) = self.taps(o);
                f + w.len()
            })
            .max()
            .unwrap_or(start);
        (start, end)
    }

    /// Most taps of any output index.
    fn max_taps(&self) -> usize {
        self.offsets
            .windows(2)
            .map(|w| (w[1] - w[0]) as usize)
            .max()
            .unwrap_or(1)
    }
}

/// A planned resize + crop from one frame size to one model input size, with its scratch
/// memory. Plan once per frame size, then [`Resampler::quantize`] each frame: nothing is
/// allocated per frame.
#[derive(Clone, Debug)]
pub struct Resampler {
    geometry: Geometry,
    x: Axis,
    y: Axis,
    /// Source columns read.
    x_span: (usize, usize),
    /// Horizontally filtered rows, `ring_rows` × out_w × 3, Q16 (row r in slot r % ring_rows).
    ring: Vec<u32>,
    ring_rows: usize,
    /// One source row converted to the model's channels.
    row: Vec<u8>,
    /// Vertical accumulators, out_w × 3.
    acc: Vec<u64>,
}

impl Resampler {
    /// Plans the resize of `src_w`×`src_h` frames to a `out_w`×`out_h` model input
    /// ([`Geometry::fit`]: shorter side to the input, centre crop).
    pub fn new(
        src_w: usize,
        src_h: usize,
        out_w: usize,
        out_h: usize,
    ) -> Result<Resampler, PreprocessError> {
        Ok(Resampler::plan(Geometry::fit(src_w, src_h, out_w, out_h)?))
    }

    /// Plans the resize of `src_w`×`src_h` frames by the model file's `resize` recipe, then
    /// the centre crop to the `out_w`×`out_h` input ([`Geometry::new`]).
    pub fn with_resize(
        src_w: usize,
        src_h: usize,
        resize: Resize,
        out_w: usize,
        out_h: usize,
    ) -> Result<Resampler, PreprocessError> {
        Ok(Resampler::plan(Geometry::new(
            [src_w, src_h],
            resize,
            [out_w, out_h],
        )?))
    }

    fn plan(g: Geometry) -> Resampler {
        let [src_w, src_h] = g.source;
        let [out_w, out_h] = g.output;
        let x = Axis::new(src_w, g.resized[0], g.crop[0], out_w);
        let y = Axis::new(src_h, g.resized[1], g.crop[1], out_h);
        let x_span = x.span();
        let ring_rows = y.max_taps();
        Resampler {
            geometry: g,
            ring: vec![0; ring_rows * out_w * 3],
            ring_rows,
            row: vec![0; (x_span.1 - x_span.0) * 3],
            acc: vec![0; out_w * 3],
            x,
            y,
            x_span,
        }
    }

    /// The planned geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Model-input pixels, `[h][w][c]` in `order` (the host's preprocessing).
    pub fn pixels(
        &mut self,
        frame: &Frame,
        order: ChannelOrder,
        out: &mut [u8],
    ) -> Result<(), PreprocessError> {
        self.run(frame, order, out, |_, p| p)
    }

    /// The model's int8 input: pixels in `order` through `lut` (`[channel][pixel]`, 256
    /// entries per channel — the `.resq` file's input table, which holds the normalisation and
    /// quantization).
    pub fn quantize(
        &mut self,
        frame: &Frame,
        order: ChannelOrder,
        lut: &[i8],
        out: &mut [i8],
    ) -> Result<(), PreprocessError> {
        let c = channel_count(order);
        if lut.len() < 256 * c {
            return Err(PreprocessError::LutLength {
                expected: 256 * c,
                actual: lut.len(),
            });
        }
        self.run(frame, order, out, |ch, p| {
            resq_format::lut_value(lut, ch, p)
        })
    }

    /// Resizes `frame` into `out` (`[h][w][c]`), mapping each channel value through `map`.
    pub fn run<T>(
        &mut self,
        frame: &Frame,
        order: ChannelOrder,
        out: &mut [T],
        map: impl Fn(usize, u8) -> T,
    ) -> Result<(), PreprocessError> {
        frame.validate()?;
        let g = self.geometry;
        if [frame.width, frame.height] != g.source {
            return Err(PreprocessError::FrameSize {
                planned: g.source,
                actual: [frame.width, frame.height],
            });
        }
        let c = channel_count(order);
        let [ow, oh] = g.output;
        if out.len() != ow * oh * c {
            return Err(PreprocessError::OutputLength {
                expected: ow * oh * c,
                actual: out.len(),
            });
        }
        let (xs, xe) = self.x_span;
        let row_len = ow * c;
        // Rows [0, done) of the source have been filtered into the ring (the newest ring_rows).
        let mut done = 0usize;
        for (oy, out_row) in out.chunks_exact_mut(row_len).enumerate() {
            let (y0, wy) = self.y.taps(oy);
            done = done.max(y0);
            while done < y0 + wy.len() {
                let slot = done % self.ring_rows;
                let row = &mut self.row[..(xe - xs) * c];
                frame.convert_row(done, xs, xe, order, row);
                horizontal(
                    &self.x,
                    row,
                    xs,
                    c,
                    &mut self.ring[slot * row_len..(slot + 1) * row_len],
                );
                done += 1;
            }
            let acc = &mut self.acc[..row_len];
            acc.fill(0);
            for (t, &q) in wy.iter().enumerate() {
                let slot = (y0 + t) % self.ring_rows;
                let ring = &self.ring[slot * row_len..(slot + 1) * row_len];
                for (a, &h) in acc.iter_mut().zip(ring) {
                    *a += q as u64 * h as u64;
                }
            }
            for (i, (o, &a)) in out_row.iter_mut().zip(acc.iter()).enumerate() {
                // Both axes sum to 2¹⁶, so a ≤ 255·2³²: one rounding, half up.
                *o = map(i % c, ((a + (1 << 31)) >> 32) as u8);
            }
        }
        Ok(())
    }
}

/// Filters one converted source row (`c` bytes per pixel, starting at source column `xs`)
/// along x into `out` (out_w × c, Q16).
fn horizontal(x: &Axis, row: &[u8], xs: usize, c: usize, out: &mut [u32]) {
    match c {
        3 => {
            for (ox, o) in out.chunks_exact_mut(3).enumerate() {
                let (first, w) = x.taps(ox);
                let px = &row[(first - xs) * 3..];
                let mut a = [0u32; 3];
                for (q, p) in w.iter().zip(px.chunks_exact(3)) {
                    a[0] += q * p[0] as u32;
                    a[1] += q * p[1] as u32;
                    a[2] += q * p[2] as u32;
                }
                o.copy_from_slice(&a);
            }
        }
        _ => {
            for (ox, o) in out.iter_mut().enumerate() {
                let (first, w) = x.taps(ox);
                let px = &row[first - xs..];
                *o = w.iter().zip(px).map(|(q, &p)| q * p as u32).sum();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_taps_stay_in_the_source() {
        for &(n, m, out) in &[
            (640, 43, 32),
            (480, 32, 32),
            (32, 32, 32),
            (7, 224, 224),
            (1, 5, 5),
            (5000, 1, 1),
            (3, 2, 2),
        ] {
            let crop = (m - out) / 2;
            let a = Axis::new(n, m, crop, out);
            for o in 0..out {
                let (first, w) = a.taps(o);
                assert!(first + w.len() <= n, "{n}->{m} o={o}: taps past the source");
                assert_eq!(
                    w.iter().map(|&q| q as u64).sum::<u64>(),
                    ONE,
                    "{n}->{m} o={o}"
                );
            }
        }
    }

    #[test]
    fn same_size_is_one_tap_per_pixel() {
        let a = Axis::new(32, 32, 0, 32);
        for o in 0..32 {
            assert_eq!(a.taps(o), (o, &[65536u32][..]));
        }
    }
}
