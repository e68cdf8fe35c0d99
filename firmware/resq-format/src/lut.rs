//! The input lookup table ([`InputSpec::lut`](crate::InputSpec::lut)): `[channel][pixel
//! value]`, 256 int8 entries per channel, the whole normalisation and quantization of an 8-bit
//! pixel as one table read.

/// The quantized input value of 8-bit value `pixel` in channel `channel`.
///
/// `lut` holds 256 entries per channel (a validated file's table does); a shorter one panics.
#[inline(always)]
pub fn lut_value(lut: &[i8], channel: usize, pixel: u8) -> i8 {
    lut[channel * 256 + pixel as usize]
}

/// Quantizes interleaved pixels (`[h][w][c]`, `channels` values per pixel, in the model's
/// channel order) into `out` through `lut`, up to the shorter of `pixels` and `out`.
pub fn lut_quantize(lut: &[i8], channels: usize, pixels: &[u8], out: &mut [i8]) {
    for (i, (q, &p)) in out.iter_mut().zip(pixels).enumerate() {
        *q = lut_value(lut, i % channels, p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_value_reads_its_channels_row() {
        // Channel c maps pixel p to (p + c) mod 256, as i8.
        let lut: [i8; 3 * 256] = core::array::from_fn(|i| (i % 256 + i / 256) as u8 as i8);
        assert_eq!(lut_value(&lut, 0, 0), 0);
        assert_eq!(lut_value(&lut, 2, 255), 1);
        let pixels = [10u8, 10, 10, 200, 200, 200, 7];
        let mut out = [0i8; 6];
        lut_quantize(&lut, 3, &pixels, &mut out);
        assert_eq!(out, [10, 11, 12, -56, -55, -54]);
    }
}
