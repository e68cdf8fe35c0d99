//! Pooling with the channel loop innermost (vectorisable), bit-exact with
//! [`reference::max_pool`](crate::reference::max_pool) and
//! [`reference::avg_pool`](crate::reference::avg_pool).
//!
//! Both take a range of output pixels so the engine can split them across threads.

use core::ops::Range;

use crate::{finish, Geometry};

/// Channels per accumulator block.
const BLOCK: usize = 64;

/// Max pooling of output pixels `rows` into `out` (holding output indices from
/// `rows.start · c`); padded cells never win.
pub fn max_pool(geo: &Geometry, input: &[i8], out: &mut [i8], rows: Range<usize>) {
    let [_, iw, c] = geo.input;
    let ow = geo.output[1];
    let base = rows.start * c;
    for m in rows {
        let (y, x) = (m / ow, m % ow);
        let o = &mut out[m * c - base..][..c];
        o.fill(i8::MIN);
        for (sy, sx) in geo.window(y, x) {
            for (o, &v) in o.iter_mut().zip(&input[(sy * iw + sx) * c..][..c]) {
                *o = (*o).max(v);
            }
        }
    }
}

/// Average pooling of output pixels `rows` into `out` (holding output indices from
/// `rows.start · c`): `zp_out + round_shift(Σ (x − zp_in) · mults[n − 1], shift)`.
///
/// The window sum is taken in i32 (the format bounds the window to 4096 cells, so
/// `|Σ x| ≤ 128 · 4096`), then `Σ (x − zp_in) = Σ x − cells · zp_in` in i64.
#[allow(clippy::too_many_arguments)]
pub fn avg_pool(
    geo: &Geometry,
    count_include_pad: bool,
    input: &[i8],
    input_zp: i8,
    mults: &[i32],
    shift: u8,
    output_zp: i8,
    out: &mut [i8],
    rows: Range<usize>,
) {
    let [_, iw, c] = geo.input;
    let ow = geo.output[1];
    let area = geo.kernel[0] * geo.kernel[1];
    let base = rows.start * c;
    for m in rows {
        let (y, x) = (m / ow, m % ow);
        let mut c0 = 0;
        while c0 < c {
            let n = BLOCK.min(c - c0);
            let mut acc = [0i32; BLOCK];
            let acc = &mut acc[..n];
            let mut cells = 0usize;
            for (sy, sx) in geo.window(y, x) {
                cells += 1;
                let px = &input[(sy * iw + sx) * c + c0..][..n];
                for (a, &v) in acc.iter_mut().zip(px) {
                    *a += v as i32;
                }
            }
            let count = if count_include_pad {
                area
            } else {
                cells.max(1)
            };
            let mult = mults[count - 1] as i64;
            let offset = cells as i64 * input_zp as i64;
            for (o, &a) in out[m * c + c0 - base..][..n].iter_mut().zip(acc.iter()) {
                *o = finish(
                    (a as i64 - offset) * mult,
                    shift,
                    output_zp,
                    [i8::MIN, i8::MAX],
                );
            }
            c0 += n;
        }
    }
}
