//! The resize, crop and colour conversions against independent float references, and every
//! pixel format against the same pixels given as RGB.

use proptest::prelude::*;
use resq_preprocess::{
    luma, yuv_to_rgb, ChannelOrder, Frame, Geometry, PixelFormat, PreprocessError, Resampler,
    Resize, ResizeMode, YuvRange, MAX_FRAME_DIM,
};

/// Triangle-filter resize + crop in f64, written from the definition (pixel centres at
/// i + ½, half-width max(n/m, 1), weights normalised per output pixel), then rounded.
fn reference(rgb: &[u8], w: usize, h: usize, ow: usize, oh: usize, c: usize) -> Vec<f64> {
    reference_for(rgb, &Geometry::fit(w, h, ow, oh).unwrap(), c)
}

/// [`reference`] for any geometry (resize recipe).
fn reference_for(rgb: &[u8], g: &Geometry, c: usize) -> Vec<f64> {
    let [w, h] = g.source;
    let [ow, oh] = g.output;
    let weights = |n: usize, m: usize, o: usize| -> Vec<(usize, f64)> {
        let ratio = n as f64 / m as f64;
        let support = ratio.max(1.0);
        let centre = (o as f64 + 0.5) * ratio;
        let mut v: Vec<(usize, f64)> = (0..n)
            .map(|i| {
                (
                    i,
                    (1.0 - ((i as f64 + 0.5 - centre) / support).abs()).max(0.0),
                )
            })
            .filter(|&(_, w)| w > 0.0)
            .collect();
        let s: f64 = v.iter().map(|p| p.1).sum();
        v.iter_mut().for_each(|p| p.1 /= s);
        v
    };
    let mut out = vec![0.0; ow * oh * c];
    for oy in 0..oh {
        let wy = weights(h, g.resized[1], oy + g.crop[1]);
        for ox in 0..ow {
            let wx = weights(w, g.resized[0], ox + g.crop[0]);
            for ch in 0..c {
                let mut a = 0.0;
                for &(y, qy) in &wy {
                    for &(x, qx) in &wx {
                        a += qy * qx * rgb[(y * w + x) * c + ch] as f64;
                    }
                }
                out[(oy * ow + ox) * c + ch] = a;
            }
        }
    }
    out
}

fn resize(
    format: PixelFormat,
    data: &[u8],
    w: usize,
    h: usize,
    ow: usize,
    oh: usize,
    order: ChannelOrder,
) -> Vec<u8> {
    let frame = Frame::contiguous(format, w, h, 0, data).unwrap();
    let mut r = Resampler::new(w, h, ow, oh).unwrap();
    let mut out = vec![0; ow * oh * resq_preprocess::channel_count(order)];
    r.pixels(&frame, order, &mut out).unwrap();
    out
}

fn image(w: usize, h: usize, c: usize, seed: u64) -> Vec<u8> {
    // A smooth gradient plus xorshift noise: edges and flat parts both.
    let mut s = seed | 1;
    (0..w * h * c)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let (p, ch) = (i / c, i % c);
            let (x, y) = (p % w, p / w);
            ((x * 255 / w.max(1) + y * 97 / h.max(1) + ch * 40) as u64 / 2 + (s % 128)) as u8
        })
        .collect()
}

#[test]
fn geometry_follows_resize_then_centre_crop() {
    let g = Geometry::fit(640, 480, 32, 32).unwrap();
    assert_eq!((g.resized, g.crop), ([43, 32], [5, 0]));
    let g = Geometry::fit(480, 640, 224, 224).unwrap();
    assert_eq!((g.resized, g.crop), ([224, 299], [0, 37]));
    let g = Geometry::fit(32, 32, 32, 32).unwrap();
    assert_eq!((g.resized, g.crop), ([32, 32], [0, 0]));
    // Upscale, and a non-square model input.
    let g = Geometry::fit(10, 20, 64, 32).unwrap();
    assert_eq!((g.resized, g.crop), ([64, 128], [0, 48]));
}

fn recipe(mode: ResizeMode, w: u32, h: u32) -> Resize {
    Resize { mode, size: [w, h] }
}

#[test]
fn resize_then_crop_geometry_keeps_the_aspect_ratio() {
    use ResizeMode::Shorter;
    // torchvision's Resize(256) + CenterCrop(224).
    let g = Geometry::new([640, 480], recipe(Shorter, 256, 256), [224, 224]).unwrap();
    assert_eq!((g.resized, g.crop), ([341, 256], [58, 16]));
    let g = Geometry::new([480, 640], recipe(Shorter, 256, 256), [224, 224]).unwrap();
    assert_eq!((g.resized, g.crop), ([256, 341], [16, 58]));
    // A square frame: both sides to 256, a 16-pixel border cut all round.
    let g = Geometry::new([500, 500], recipe(Shorter, 256, 256), [224, 224]).unwrap();
    assert_eq!((g.resized, g.crop), ([256, 256], [16, 16]));
    // Odd everything: 333 × 501 → width 255, height round(501 · 255 / 333) = round(383.65)
    // = 384; crop (255 − 223) / 2 = 16, (384 − 223) / 2 = 80.5 → 80.
    let g = Geometry::new([333, 501], recipe(Shorter, 255, 255), [223, 223]).unwrap();
    assert_eq!((g.resized, g.crop), ([255, 384], [16, 80]));
    // Half up: 3 × 2 to height 5 gives width 7.5 → 8.
    let g = Geometry::new([3, 2], recipe(Shorter, 5, 5), [5, 5]).unwrap();
    assert_eq!((g.resized, g.crop), ([8, 5], [1, 0]));
    // A non-square box (input 64 wide × 32 high at crop ratio 0.5): covered, aspect kept.
    let g = Geometry::new([100, 100], recipe(Shorter, 128, 64), [64, 32]).unwrap();
    assert_eq!((g.resized, g.crop), ([128, 128], [32, 48]));
    // The default recipe is `fit`.
    for (w, h) in [(640, 480), (480, 640), (7, 3), (224, 224)] {
        assert_eq!(
            Geometry::new([w, h], Resize::shorter_side(32, 24), [32, 24]).unwrap(),
            Geometry::fit(w, h, 32, 24).unwrap()
        );
    }
}

#[test]
fn squash_geometry_ignores_the_aspect_ratio() {
    use ResizeMode::Squash;
    // Keras / TFLite: straight to the input, nothing cut.
    for src in [[640, 480], [480, 640], [1, 999], [224, 224]] {
        let g = Geometry::new(src, recipe(Squash, 224, 224), [224, 224]).unwrap();
        assert_eq!((g.resized, g.crop), ([224, 224], [0, 0]), "{src:?}");
    }
    // Squash to 256 then crop 224; odd sizes round the offset down.
    let g = Geometry::new([640, 480], recipe(Squash, 256, 256), [224, 224]).unwrap();
    assert_eq!((g.resized, g.crop), ([256, 256], [16, 16]));
    let g = Geometry::new([333, 501], recipe(Squash, 257, 230), [224, 223]).unwrap();
    assert_eq!((g.resized, g.crop), ([257, 230], [16, 3]));
}

#[test]
fn bad_recipes_are_refused_with_both_sizes() {
    use ResizeMode::*;
    for (mode, size) in [
        (Shorter, [223, 256]),
        (Squash, [256, 223]),
        (Shorter, [0, 256]),
        (Squash, [MAX_FRAME_DIM as u32 + 1, 256]),
    ] {
        let e = Geometry::new([640, 480], recipe(mode, size[0], size[1]), [224, 224]).unwrap_err();
        assert_eq!(
            e,
            PreprocessError::BadResize {
                size: size.map(|d| d as usize),
                output: [224, 224]
            }
        );
        let text = e.to_string();
        assert!(text.contains(&format!("{}×{}", size[0], size[1])), "{text}");
        assert!(text.contains("224×224"), "{text}");
        assert!(
            Resampler::with_resize(640, 480, recipe(mode, size[0], size[1]), 224, 224).is_err()
        );
    }
}

#[test]
fn resize_then_crop_is_the_middle_of_the_bigger_resize() {
    // Resizing to 48 then cropping 40 gives exactly the middle of resizing to 48 (no crop).
    let (w, h) = (97, 61);
    let px = image(w, h, 3, 11);
    let frame = Frame::contiguous(PixelFormat::Rgb24, w, h, 0, &px).unwrap();
    for mode in [ResizeMode::Shorter, ResizeMode::Squash] {
        let mut full = Resampler::with_resize(w, h, recipe(mode, 48, 48), 48, 48).unwrap();
        let [fw, fh] = full.geometry().output;
        // Shorter: 97 × 61 → 76 × 48; the full resize is its own 48 × 48 centre.
        let mut all = vec![0u8; fw * fh * 3];
        full.pixels(&frame, ChannelOrder::Rgb, &mut all).unwrap();
        let g_full = *full.geometry();
        let mut cropped = Resampler::with_resize(w, h, recipe(mode, 48, 48), 40, 40).unwrap();
        let g = *cropped.geometry();
        assert_eq!(g.resized, g_full.resized, "{mode:?}");
        let mut out = vec![0u8; 40 * 40 * 3];
        cropped.pixels(&frame, ChannelOrder::Rgb, &mut out).unwrap();
        let (dx, dy) = (g.crop[0] - g_full.crop[0], g.crop[1] - g_full.crop[1]);
        assert_eq!((dx, dy), (4, 4), "{mode:?}");
        for y in 0..40 {
            assert_eq!(
                out[y * 120..(y + 1) * 120],
                all[((y + dy) * fw + dx) * 3..][..120],
                "{mode:?} row {y}"
            );
        }
    }
}

#[test]
fn zero_sized_frames_and_inputs_are_refused_by_name() {
    let e = Geometry::fit(0, 480, 32, 32).unwrap_err();
    assert!(e.to_string().contains("frame size 0×480"), "{e}");
    let e = Geometry::fit(640, 480, 32, 0).unwrap_err();
    assert!(e.to_string().contains("model input size 32×0"), "{e}");
}

#[test]
fn same_size_is_the_identity() {
    let px = image(32, 32, 3, 7);
    assert_eq!(
        resize(PixelFormat::Rgb24, &px, 32, 32, 32, 32, ChannelOrder::Rgb),
        px
    );
}

#[test]
fn photo_sized_downscale_matches_the_float_reference() {
    let (w, h) = (512, 384);
    let px = image(w, h, 3, 3);
    let ours = resize(PixelFormat::Rgb24, &px, w, h, 32, 32, ChannelOrder::Rgb);
    let want = reference(&px, w, h, 32, 32, 3);
    for (i, (&a, &b)) in ours.iter().zip(&want).enumerate() {
        assert!(
            (a as f64 - b).abs() <= 0.5 + 1e-3 || (a as f64 - b.round()).abs() <= 1.0,
            "pixel {i}: {a} vs {b}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn resize_is_within_one_of_the_float_reference(
        w in 1usize..70, h in 1usize..70, ow in 1usize..40, oh in 1usize..40, c in prop::sample::select(vec![1usize, 3]), seed: u64,
    ) {
        let px = image(w, h, c, seed);
        let (format, order) = if c == 3 { (PixelFormat::Rgb24, ChannelOrder::Rgb) } else { (PixelFormat::Grey8, ChannelOrder::Grey) };
        let ours = resize(format, &px, w, h, ow, oh, order);
        let want = reference(&px, w, h, ow, oh, c);
        for (i, (&a, &b)) in ours.iter().zip(&want).enumerate() {
            prop_assert!((a as f64 - b).abs() < 1.0, "{w}x{h} -> {ow}x{oh}, value {i}: {a} vs {b:.3}");
        }
    }

    #[test]
    fn every_recipe_is_within_one_of_the_float_reference(
        w in 1usize..70, h in 1usize..70, ow in 1usize..30, oh in 1usize..30,
        extra_w in 0u32..20, extra_h in 0u32..20, squash: bool, c in prop::sample::select(vec![1usize, 3]), seed: u64,
    ) {
        let mode = if squash { ResizeMode::Squash } else { ResizeMode::Shorter };
        let resize = recipe(mode, ow as u32 + extra_w, oh as u32 + extra_h);
        let px = image(w, h, c, seed);
        let (format, order) = if c == 3 { (PixelFormat::Rgb24, ChannelOrder::Rgb) } else { (PixelFormat::Grey8, ChannelOrder::Grey) };
        let frame = Frame::contiguous(format, w, h, 0, &px).unwrap();
        let mut r = Resampler::with_resize(w, h, resize, ow, oh).unwrap();
        let g = *r.geometry();
        prop_assert!(g.resized[0] >= g.crop[0] + ow && g.resized[1] >= g.crop[1] + oh);
        if squash {
            prop_assert_eq!(g.resized, [ow + extra_w as usize, oh + extra_h as usize]);
        }
        let mut ours = vec![0u8; ow * oh * c];
        r.pixels(&frame, order, &mut ours).unwrap();
        let want = reference_for(&px, &g, c);
        for (i, (&a, &b)) in ours.iter().zip(&want).enumerate() {
            prop_assert!((a as f64 - b).abs() < 1.0, "{w}x{h} {resize:?} -> {ow}x{oh}, value {i}: {a} vs {b:.3}");
        }
    }

    #[test]
    fn a_flat_frame_stays_flat(w in 1usize..90, h in 1usize..90, ow in 1usize..50, oh in 1usize..50, v: [u8; 3]) {
        let px: Vec<u8> = (0..w * h).flat_map(|_| v).collect();
        let out = resize(PixelFormat::Rgb24, &px, w, h, ow, oh, ChannelOrder::Rgb);
        prop_assert!(out.chunks_exact(3).all(|p| p == v));
    }
}

#[test]
fn yuv_conversion_is_within_one_of_bt601() {
    // Every Y, every fifth U and V: 0.7 M triples (cheap enough under qemu too).
    for range in [YuvRange::Limited, YuvRange::Full] {
        for y in 0..=255u8 {
            for u in (0..=255u8).step_by(5) {
                for v in (0..=255u8).step_by(5) {
                    let want = bt601(y, u, v, range);
                    let got = yuv_to_rgb(y, u, v, range);
                    for c in 0..3 {
                        assert!(
                            (got[c] as f64 - want[c]).abs() <= 1.0,
                            "{range:?} Y={y} U={u} V={v}: {got:?} vs {want:?}"
                        );
                    }
                }
            }
        }
    }
}

/// BT.601 YUV → RGB in f64, from the standard's coefficients (Kr = 0.299, Kb = 0.114).
fn bt601(y: u8, u: u8, v: u8, range: YuvRange) -> [f64; 3] {
    let (y, pb, pr) = match range {
        YuvRange::Limited => (
            (y as f64 - 16.0) * 255.0 / 219.0,
            (u as f64 - 128.0) * 255.0 / 224.0,
            (v as f64 - 128.0) * 255.0 / 224.0,
        ),
        YuvRange::Full => (y as f64, u as f64 - 128.0, v as f64 - 128.0),
    };
    let (kr, kb) = (0.299, 0.114);
    let kg = 1.0 - kr - kb;
    let r = y + 2.0 * (1.0 - kr) * pr;
    let b = y + 2.0 * (1.0 - kb) * pb;
    let g = (y - kr * r - kb * b) / kg;
    [r, g, b].map(|x| x.round().clamp(0.0, 255.0))
}

#[test]
fn luma_is_bt601_and_keeps_grey() {
    for v in 0..=255u8 {
        assert_eq!(luma([v; 3]), v);
    }
    assert_eq!(luma([255, 0, 0]), 76);
    assert_eq!(luma([0, 255, 0]), 150);
    assert_eq!(luma([0, 0, 255]), 29);
}

/// The same picture in every pixel format, and its RGB decoding by the documented rules.
struct Planes {
    w: usize,
    h: usize,
    y: Vec<u8>,
    /// Chroma at half resolution (ceil), one (U, V) per 2×2 block.
    uv: Vec<(u8, u8)>,
}

impl Planes {
    fn new(w: usize, h: usize, seed: u64) -> Planes {
        let y = image(w, h, 1, seed);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let u = image(cw, ch, 1, seed ^ 0x55);
        let v = image(cw, ch, 1, seed ^ 0xaa);
        Planes {
            w,
            h,
            y,
            uv: u.into_iter().zip(v).collect(),
        }
    }
    fn chroma(&self, x: usize, y: usize) -> (u8, u8) {
        self.uv[(y / 2) * self.w.div_ceil(2) + x / 2]
    }
    /// Decoded with the documented conversion: nearest chroma, BT.601 limited range.
    fn rgb(&self) -> Vec<u8> {
        let mut out = vec![];
        for y in 0..self.h {
            for x in 0..self.w {
                let (u, v) = self.chroma(x, y);
                out.extend(yuv_to_rgb(self.y[y * self.w + x], u, v, YuvRange::Limited));
            }
        }
        out
    }
    fn encode(&self, format: PixelFormat) -> Vec<u8> {
        let (w, h) = (self.w, self.h);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut out = vec![];
        match format {
            PixelFormat::Yuyv | PixelFormat::Uyvy => {
                for y in 0..h {
                    for pair in 0..cw {
                        let y0 = self.y[y * w + 2 * pair];
                        let y1 = *self
                            .y
                            .get(y * w + 2 * pair + 1)
                            .filter(|_| 2 * pair + 1 < w)
                            .unwrap_or(&0);
                        let (u, v) = self.chroma(2 * pair, y);
                        out.extend(if format == PixelFormat::Yuyv {
                            [y0, u, y1, v]
                        } else {
                            [u, y0, v, y1]
                        });
                    }
                }
            }
            PixelFormat::Nv12 | PixelFormat::Nv21 | PixelFormat::I420 => {
                out.extend(&self.y);
                match format {
                    PixelFormat::Nv12 => out.extend(self.uv.iter().flat_map(|&(u, v)| [u, v])),
                    PixelFormat::Nv21 => out.extend(self.uv.iter().flat_map(|&(u, v)| [v, u])),
                    _ => {
                        // I420 chroma rows are ceil(stride / 2) = ceil(w / 2) long.
                        out.extend(self.uv.iter().map(|p| p.0));
                        out.extend(self.uv.iter().map(|p| p.1));
                    }
                }
                let _ = ch;
            }
            _ => unreachable!(),
        }
        out
    }
}

#[test]
fn every_yuv_format_equals_its_rgb_decoding() {
    for &(w, h) in &[(64, 48), (31, 17), (2, 2), (1, 1)] {
        let planes = Planes::new(w, h, (w * h) as u64);
        let rgb = planes.rgb();
        for order in [ChannelOrder::Rgb, ChannelOrder::Bgr, ChannelOrder::Grey] {
            for (ow, oh) in [(32, 32), (8, 12), (70, 40)] {
                let want = resize(PixelFormat::Rgb24, &rgb, w, h, ow, oh, order);
                for format in [
                    PixelFormat::Yuyv,
                    PixelFormat::Uyvy,
                    PixelFormat::Nv12,
                    PixelFormat::Nv21,
                    PixelFormat::I420,
                ] {
                    let got = resize(format, &planes.encode(format), w, h, ow, oh, order);
                    assert_eq!(got, want, "{format:?} {w}x{h} -> {ow}x{oh} {order:?}");
                }
            }
        }
    }
}

#[test]
fn every_rgb_layout_equals_rgb24() {
    let (w, h) = (45, 30);
    let rgb = image(w, h, 3, 11);
    let px = || rgb.chunks_exact(3);
    let bgr: Vec<u8> = px().flat_map(|p| [p[2], p[1], p[0]]).collect();
    let rgbx: Vec<u8> = px().flat_map(|p| [p[0], p[1], p[2], 0xee]).collect();
    let bgrx: Vec<u8> = px().flat_map(|p| [p[2], p[1], p[0], 0x11]).collect();
    for order in [ChannelOrder::Rgb, ChannelOrder::Bgr, ChannelOrder::Grey] {
        let want = resize(PixelFormat::Rgb24, &rgb, w, h, 16, 16, order);
        assert_eq!(resize(PixelFormat::Bgr24, &bgr, w, h, 16, 16, order), want);
        assert_eq!(
            resize(PixelFormat::Rgbx32, &rgbx, w, h, 16, 16, order),
            want
        );
        assert_eq!(
            resize(PixelFormat::Bgrx32, &bgrx, w, h, 16, 16, order),
            want
        );
    }
    // Grey frames: three equal channels, or one.
    let grey = image(w, h, 1, 5);
    let as_rgb: Vec<u8> = grey.iter().flat_map(|&g| [g; 3]).collect();
    assert_eq!(
        resize(PixelFormat::Grey8, &grey, w, h, 16, 16, ChannelOrder::Rgb),
        resize(PixelFormat::Rgb24, &as_rgb, w, h, 16, 16, ChannelOrder::Rgb)
    );
    assert_eq!(
        resize(PixelFormat::Grey8, &grey, w, h, 16, 16, ChannelOrder::Grey),
        resize(
            PixelFormat::Grey8,
            &as_rgb.iter().step_by(3).copied().collect::<Vec<_>>(),
            w,
            h,
            16,
            16,
            ChannelOrder::Grey
        )
    );
}

#[test]
fn padded_strides_give_the_same_pixels() {
    let (w, h) = (30, 20);
    let planes = Planes::new(w, h, 9);
    let packed = planes.encode(PixelFormat::Nv12);
    let stride = 48;
    let mut padded = vec![0xAB; stride * h + stride * h.div_ceil(2)];
    for y in 0..h {
        padded[y * stride..y * stride + w].copy_from_slice(&packed[y * w..(y + 1) * w]);
    }
    for y in 0..h.div_ceil(2) {
        let src = &packed[w * h + y * w..w * h + (y + 1) * w];
        padded[stride * h + y * stride..stride * h + y * stride + w].copy_from_slice(src);
    }
    let frame = Frame::contiguous(PixelFormat::Nv12, w, h, stride, &padded).unwrap();
    let mut r = Resampler::new(w, h, 16, 16).unwrap();
    let mut out = vec![0; 16 * 16 * 3];
    r.pixels(&frame, ChannelOrder::Rgb, &mut out).unwrap();
    assert_eq!(
        out,
        resize(PixelFormat::Nv12, &packed, w, h, 16, 16, ChannelOrder::Rgb)
    );
}

#[test]
fn quantize_is_pixels_through_the_lut() {
    let (w, h) = (40, 30);
    let rgb = image(w, h, 3, 2);
    let frame = Frame::contiguous(PixelFormat::Rgb24, w, h, 0, &rgb).unwrap();
    let lut: Vec<i8> = (0..3 * 256)
        .map(|i: i32| ((i % 256) / 2 - 64 + i / 256) as i8)
        .collect();
    let mut r = Resampler::new(w, h, 24, 24).unwrap();
    let mut px = vec![0u8; 24 * 24 * 3];
    let mut q = vec![0i8; 24 * 24 * 3];
    r.pixels(&frame, ChannelOrder::Rgb, &mut px).unwrap();
    r.quantize(&frame, ChannelOrder::Rgb, &lut, &mut q).unwrap();
    for (i, (&p, &v)) in px.iter().zip(&q).enumerate() {
        assert_eq!(v, lut[(i % 3) * 256 + p as usize]);
    }
}

#[test]
fn bad_frames_are_refused_with_the_field_at_fault() {
    let data = vec![0u8; 100];
    let e = Frame::contiguous(PixelFormat::Yuyv, 640, 480, 0, &data).unwrap_err();
    assert!(
        matches!(
            e,
            PreprocessError::ShortPlane {
                plane: 0,
                len: 100,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("640×480 YUYV frame: plane 0 has 100 bytes, it needs 614400"),
        "{e}"
    );
    let e = Frame::contiguous(PixelFormat::Rgb24, 10, 2, 20, &data).unwrap_err();
    assert!(
        e.to_string()
            .contains("row stride of 20 bytes, but one row needs at least 30"),
        "{e}"
    );
    let e = Frame::contiguous(PixelFormat::Nv12, 8, 8, 0, &data[..64 + 10]).unwrap_err();
    assert!(
        matches!(e, PreprocessError::ShortPlane { plane: 1, .. }),
        "{e:?}"
    );

    let frame = Frame::contiguous(PixelFormat::Grey8, 10, 10, 0, &data).unwrap();
    let mut r = Resampler::new(10, 9, 4, 4).unwrap();
    let e = r
        .pixels(&frame, ChannelOrder::Grey, &mut [0; 16])
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("frame is 10×10 but the resampler was planned for 10×9"),
        "{e}"
    );
    let mut r = Resampler::new(10, 10, 4, 4).unwrap();
    let e = r
        .pixels(&frame, ChannelOrder::Rgb, &mut [0; 16])
        .unwrap_err();
    assert_eq!(
        e,
        PreprocessError::OutputLength {
            expected: 48,
            actual: 16
        }
    );
    let e = r
        .quantize(&frame, ChannelOrder::Rgb, &[0; 256], &mut [0; 48])
        .unwrap_err();
    assert_eq!(
        e,
        PreprocessError::LutLength {
            expected: 768,
            actual: 256
        }
    );
}

#[test]
fn full_range_frames_use_full_range_coefficients() {
    let data = [200u8, 90, 200, 180];
    let frame = Frame::contiguous(PixelFormat::Yuyv, 2, 1, 0, &data).unwrap();
    assert_eq!(frame.rgb(0, 0), yuv_to_rgb(200, 90, 180, YuvRange::Limited));
    assert_eq!(
        frame.with_range(YuvRange::Full).rgb(1, 0),
        yuv_to_rgb(200, 90, 180, YuvRange::Full)
    );
}
