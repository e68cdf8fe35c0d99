//! Colour conversions, in integers so every ISA gives the same bytes.

/// How a YUV frame's values span the 8-bit range (both BT.601).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum YuvRange {
    /// "Studio swing": Y in 16..=235, U / V in 16..=240. What UVC webcams send as YUYV and
    /// what GStreamer negotiates for SD YUV by default.
    #[default]
    Limited,
    /// Y, U, V in 0..=255 (JPEG / JFIF, and some CSI pipelines).
    Full,
}

#[inline(always)]
fn clamp_u8(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// BT.601 YUV → RGB with 8 fractional bits, rounding half up:
///
/// - limited: `C = 298·(Y−16)`, `R = (C + 409·V′ + 128) >> 8`,
///   `G = (C − 100·U′ − 208·V′ + 128) >> 8`, `B = (C + 516·U′ + 128) >> 8`;
/// - full: `C = 256·Y`, `R = (C + 359·V′ + 128) >> 8`, `G = (C − 88·U′ − 183·V′ + 128) >> 8`,
///   `B = (C + 454·U′ + 128) >> 8`;
///
/// with `U′ = U − 128`, `V′ = V − 128`, each result clamped to 0..=255. Within 1 of the exact
/// real-valued BT.601 conversion for every input.
#[inline(always)]
pub fn yuv_to_rgb(y: u8, u: u8, v: u8, range: YuvRange) -> [u8; 3] {
    let d = u as i32 - 128;
    let e = v as i32 - 128;
    let (c, [rv, gu, gv, bu]) = match range {
        YuvRange::Limited => (298 * (y as i32 - 16), [409, 100, 208, 516]),
        YuvRange::Full => (256 * y as i32, [359, 88, 183, 454]),
    };
    [
        clamp_u8((c + rv * e + 128) >> 8),
        clamp_u8((c - gu * d - gv * e + 128) >> 8),
        clamp_u8((c + bu * d + 128) >> 8),
    ]
}

/// ITU-R 601 luma of an RGB pixel, as PIL's `convert("L")`:
/// `(19595·R + 38470·G + 7471·B + 2¹⁵) >> 16`. A grey pixel maps to itself.
#[inline(always)]
pub fn luma(rgb: [u8; 3]) -> u8 {
    ((19595 * rgb[0] as u32 + 38470 * rgb[1] as u32 + 7471 * rgb[2] as u32 + 32768) >> 16) as u8
}
