//! The fused preprocessing of camera frames agrees with the host tool's preprocessing (the one
//! `resq convert` and `resq eval` use) within 1 LSB on every value, for YUYV, NV12, I420, UYVY,
//! RGB, BGRx (padded rows), GREY and MJPEG frames of real images, under every resize recipe;
//! and a model converted with torchvision's recipe (resize 256, crop 224) gets the same top-1
//! from `resq eval` and from `resq-fw classify`.
//!
//! The "camera" encodes each image into the frame format; the host side decodes the same frame
//! to RGB with the documented conversion (BT.601 limited range, nearest chroma, written here in
//! float from the standard's coefficients) and runs `Preprocess::try_pixels`. The firmware side
//! reads the encoded frame directly.
#![cfg(target_arch = "x86_64")]

mod common;

use common::{photos, resnet8};
use image::{DynamicImage, GrayImage, RgbImage};
use resq_engine::{AlignedBytes, Engine};
use resq_format::{ChannelOrder, Layout, Resize, ResizeMode};
use resq_fw::classify::Preparer;
use resq_fw::frame::FrameBuf;
use resq_host::eval::preprocess_of;
use resq_host::images::Preprocess;
use resq_preprocess::PixelFormat;

/// Real test images: the shipped photos and the first CIFAR-10 test images from ../shared/assets.
fn images() -> Vec<(String, RgbImage)> {
    let mut out: Vec<(String, RgbImage)> = photos()
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                image::open(&p).unwrap().to_rgb8(),
            )
        })
        .collect();
    let cifar = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/assets/cifar10-ic01/png");
    let mut files: Vec<_> = std::fs::read_dir(&cifar)
        .unwrap_or_else(|e| {
            panic!(
                "{} (is ../shared/assets beside the repository?): {e}",
                cifar.display()
            )
        })
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for p in files.into_iter().take(12) {
        out.push((
            p.file_name().unwrap().to_string_lossy().into_owned(),
            image::open(&p).unwrap().to_rgb8(),
        ));
    }
    out
}

/// RGB → BT.601 limited-range YUV, as a camera would produce it.
fn yuv(p: &[u8]) -> [u8; 3] {
    let (r, g, b) = (p[0] as f64, p[1] as f64, p[2] as f64);
    let y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0;
    let u = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0;
    let v = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0;
    [y, u, v].map(|x| x.round().clamp(0.0, 255.0) as u8)
}

/// BT.601 limited-range YUV → RGB in float (the documented conversion, independent of the
/// firmware's integer code).
fn rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let y = (y as f64 - 16.0) * 255.0 / 219.0;
    let pb = (u as f64 - 128.0) * 255.0 / 224.0;
    let pr = (v as f64 - 128.0) * 255.0 / 224.0;
    let r = y + 1.402 * pr;
    let b = y + 1.772 * pb;
    let g = (y - 0.299 * r - 0.114 * b) / 0.587;
    [r, g, b].map(|x| x.round().clamp(0.0, 255.0) as u8)
}

/// A camera frame of `img` in `format`, and the RGB image the host gets by decoding it.
fn camera(img: &RgbImage, format: &str) -> (FrameBuf, DynamicImage) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    // 4:2:x formats need even sizes, as cameras deliver them.
    let (w, h) = if matches!(format, "YUYV" | "UYVY" | "NV12" | "I420") {
        (w & !1, h & !1)
    } else {
        (w, h)
    };
    let px = |x: usize, y: usize| &img.as_raw()[(y * img.width() as usize + x) * 3..][..3];
    let mut frame = FrameBuf::default();
    let mut decoded = RgbImage::new(w as u32, h as u32);
    match format {
        "YUYV" | "UYVY" => {
            let mut data = vec![];
            for y in 0..h {
                for x in (0..w).step_by(2) {
                    let (a, b) = (yuv(px(x, y)), yuv(px(x + 1, y)));
                    // Chroma of a pair: the left pixel's (co-sited).
                    let (u, v) = (a[1], a[2]);
                    data.extend(if format == "YUYV" {
                        [a[0], u, b[0], v]
                    } else {
                        [u, a[0], v, b[0]]
                    });
                    decoded.put_pixel(x as u32, y as u32, image::Rgb(rgb(a[0], u, v)));
                    decoded.put_pixel(x as u32 + 1, y as u32, image::Rgb(rgb(b[0], u, v)));
                }
            }
            let f = if format == "YUYV" {
                PixelFormat::Yuyv
            } else {
                PixelFormat::Uyvy
            };
            frame.set_contiguous(f, w, h, 0, &data).unwrap();
        }
        "NV12" | "I420" => {
            let luma: Vec<u8> = (0..h)
                .flat_map(|y| (0..w).map(move |x| (x, y)))
                .map(|(x, y)| yuv(px(x, y))[0])
                .collect();
            let chroma: Vec<[u8; 2]> = (0..h / 2)
                .flat_map(|y| (0..w / 2).map(move |x| (x, y)))
                .map(|(x, y)| {
                    let c = yuv(px(2 * x, 2 * y));
                    [c[1], c[2]]
                })
                .collect();
            for y in 0..h {
                for x in 0..w {
                    let [u, v] = chroma[(y / 2) * (w / 2) + x / 2];
                    decoded.put_pixel(x as u32, y as u32, image::Rgb(rgb(luma[y * w + x], u, v)));
                }
            }
            let mut data = luma;
            if format == "NV12" {
                data.extend(chroma.iter().flatten());
                frame
                    .set_contiguous(PixelFormat::Nv12, w, h, 0, &data)
                    .unwrap();
            } else {
                data.extend(chroma.iter().map(|c| c[0]));
                data.extend(chroma.iter().map(|c| c[1]));
                frame
                    .set_contiguous(PixelFormat::I420, w, h, 0, &data)
                    .unwrap();
            }
        }
        "RGB" => {
            frame
                .set_contiguous(PixelFormat::Rgb24, w, h, 0, img.as_raw())
                .unwrap();
            decoded = img.clone();
        }
        "BGRx" => {
            // Rows padded to a multiple of 64 bytes, as GStreamer and ISPs do.
            let stride = (4 * w).div_ceil(64) * 64;
            let mut data = vec![0x5a; stride * h];
            for y in 0..h {
                for x in 0..w {
                    let p = px(x, y);
                    data[y * stride + 4 * x..][..4].copy_from_slice(&[p[2], p[1], p[0], 0xff]);
                }
            }
            frame
                .set_planes(PixelFormat::Bgrx32, w, h, &[(&data, stride)])
                .unwrap();
            decoded = img.clone();
        }
        "GREY" => {
            let grey = DynamicImage::ImageRgb8(img.clone()).to_luma8();
            frame
                .set_contiguous(PixelFormat::Grey8, w, h, 0, grey.as_raw())
                .unwrap();
            return (
                frame,
                DynamicImage::ImageLuma8(
                    GrayImage::from_raw(w as u32, h as u32, grey.into_raw()).unwrap(),
                ),
            );
        }
        "MJPEG" => {
            let mut jpeg = vec![];
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
                .encode(
                    img.as_raw(),
                    w as u32,
                    h as u32,
                    image::ExtendedColorType::Rgb8,
                )
                .unwrap();
            frame.set_jpeg(w, h, &jpeg);
            // The host reads the same JPEG bytes with the image crate.
            return (frame, image::load_from_memory(&jpeg).unwrap());
        }
        _ => unreachable!(),
    }
    (frame, DynamicImage::ImageRgb8(decoded))
}

const FORMATS: [&str; 8] = [
    "YUYV", "UYVY", "NV12", "I420", "RGB", "BGRx", "GREY", "MJPEG",
];

/// Largest difference between two buffers, and how many values differ.
fn compare(a: &[i32], b: &[i32]) -> (i32, usize) {
    assert_eq!(a.len(), b.len());
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .max()
        .unwrap_or(0);
    (worst, a.iter().zip(b).filter(|(x, y)| x != y).count())
}

#[test]
fn int8_input_matches_the_host_within_one_lsb_for_every_format() {
    let (path, _) = resnet8();
    let bytes = AlignedBytes::new(&std::fs::read(path).unwrap());
    let engine = Engine::from_bytes(bytes.as_bytes()).unwrap();
    let pre = preprocess_of(&engine);
    let model = engine.model();
    let lut = model.i8s(model.meta.input.lut);
    let c = pre.channel_count();
    let mut prep = Preparer::default();
    let mut report = vec![];
    for (name, img) in images() {
        for format in FORMATS {
            let (frame, host_img) = camera(&img, format);
            // Host: decoded image → Preprocess → the engine's lookup table (as set_input_pixels).
            let host_px = pre.try_pixels(&host_img).unwrap();
            let host: Vec<i32> = host_px
                .iter()
                .enumerate()
                .map(|(i, &p)| lut[(i % c) * 256 + p as usize] as i32)
                .collect();
            let mut fw = vec![0i8; host.len()];
            prep.quantize(
                &frame,
                pre.resize,
                pre.width,
                pre.height,
                pre.channels,
                lut,
                &mut fw,
            )
            .unwrap();
            let fw: Vec<i32> = fw.iter().map(|&v| v as i32).collect();
            let (worst, differ) = compare(&host, &fw);
            assert!(
                worst <= 1,
                "{name} as {format}: int8 input differs from the host's by {worst} LSB"
            );
            report.push(format!(
                "{name} {format}: {differ}/{} values off by 1",
                host.len()
            ));
        }
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn pixels_match_the_host_within_one_lsb_at_other_sizes_channel_orders_and_recipes() {
    use ResizeMode::{Shorter, Squash};
    let mut prep = Preparer::default();
    for (w, h, order, mode, size) in [
        (224, 224, ChannelOrder::Rgb, Shorter, [224, 224]),
        (96, 64, ChannelOrder::Bgr, Shorter, [96, 64]),
        (40, 56, ChannelOrder::Grey, Shorter, [40, 56]),
        // torchvision's Resize(256) + CenterCrop(224).
        (224, 224, ChannelOrder::Rgb, Shorter, [256, 256]),
        // Keras: squash straight to the input; and squash, then crop, at odd sizes.
        (224, 224, ChannelOrder::Bgr, Squash, [224, 224]),
        (41, 33, ChannelOrder::Rgb, Squash, [47, 39]),
        (39, 57, ChannelOrder::Grey, Shorter, [45, 65]),
    ] {
        let resize = Resize { mode, size };
        let pre = Preprocess {
            height: h,
            width: w,
            resize,
            channels: order,
            layout: Layout::Nchw,
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        for (name, img) in images().into_iter().step_by(3) {
            for format in FORMATS {
                let (frame, host_img) = camera(&img, format);
                let host: Vec<i32> = pre
                    .try_pixels(&host_img)
                    .unwrap()
                    .iter()
                    .map(|&v| v as i32)
                    .collect();
                let mut fw = vec![0u8; host.len()];
                prep.pixels(&frame, resize, w, h, order, &mut fw).unwrap();
                let fw: Vec<i32> = fw.iter().map(|&v| v as i32).collect();
                let (worst, _) = compare(&host, &fw);
                assert!(
                    worst <= 1,
                    "{name} as {format} at {w}×{h} {order:?} {resize:?}: pixels differ by {worst}"
                );
                if matches!(format, "RGB" | "BGRx" | "GREY" | "MJPEG") {
                    assert_eq!(
                        worst, 0,
                        "{name} as {format}: the same decoded pixels must give the same input"
                    );
                }
            }
        }
    }
}

/// The acceptance test of the resize recipe: a 224² model converted with torchvision's recipe
/// (shorter side to 256, centre crop 224, ImageNet mean / std) stores that recipe, and
/// `resq eval` (the host) and `resq-fw classify` (the board's binary) give every photo the same
/// class with the same score — the board resizes camera frames exactly as calibration and
/// evaluation did.
#[test]
fn torchvision_recipe_model_gets_the_same_top1_from_resq_eval_and_resq_fw_classify() {
    use resq_host::convert::{convert, write_atomic, ConvertOptions, ResizeOptions};
    use resq_host::eval::evaluate;
    use resq_host::images::Sample;
    use resq_host::synth::{synth_resnet, Arch, SynthSpec};

    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("resnet18.onnx");
    let onnx_bytes = synth_resnet(&SynthSpec {
        arch: Arch::ResNet18,
        size: 224,
        classes: 10,
        seed: 1,
    })
    .unwrap();
    std::fs::write(&onnx, onnx_bytes).unwrap();
    let converted = convert(&ConvertOptions {
        calib: Some(common::models().join("photos")),
        mean: [123.675, 116.28, 103.53],
        std: [58.395, 57.12, 57.375],
        mean_std_given: true,
        resize: ResizeOptions {
            resize: Some(256),
            crop: Some([224, 224]),
            ..ResizeOptions::default()
        },
        ..ConvertOptions::new(&onnx)
    })
    .unwrap();
    // Six photos are few for calibration, and the converter says so; nothing else may warn.
    let unexpected: Vec<&String> = converted
        .warnings
        .iter()
        .filter(|w| !w.starts_with("calibrating on 6 image(s)"))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    let file = dir.path().join("resnet18.resq");
    write_atomic(&file, &converted.bytes).unwrap();

    let bytes = AlignedBytes::new(&std::fs::read(&file).unwrap());
    let mut engine = Engine::from_bytes(bytes.as_bytes()).unwrap();
    let stored = Resize {
        mode: ResizeMode::Shorter,
        size: [256, 256],
    };
    assert_eq!(
        engine.model().resize,
        stored,
        "the recipe is stored in the file"
    );
    let pre = preprocess_of(&engine);
    assert_eq!(pre.resize, stored);

    // The recipe matters for these photos: it changes the model's input (else this test would
    // not tell the recipes apart).
    let photos = photos();
    let default = Preprocess {
        resize: Resize::shorter_side(224, 224),
        ..pre
    };
    assert!(photos.iter().any(|p| {
        let img = image::open(p).unwrap();
        pre.try_pixels(&img).unwrap() != default.try_pixels(&img).unwrap()
    }));

    // Host: `resq eval`'s evaluation, one prediction per photo (the labels do not matter here),
    // and each photo's scores (all ten) through the same preprocessing.
    let samples: Vec<Sample> = photos
        .iter()
        .map(|p| Sample {
            path: p.clone(),
            label: 0,
        })
        .collect();
    let host = evaluate(&mut engine, &samples, None).unwrap().predictions;
    assert_eq!(host.len(), photos.len());
    let mut scores = vec![0.0; engine.model().classes()];
    let host_scores: Vec<Vec<f32>> = photos
        .iter()
        .map(|p| {
            engine
                .set_input_pixels(&pre.load_pixels(p).unwrap())
                .unwrap();
            engine.run();
            engine.scores(&mut scores);
            scores.clone()
        })
        .collect();

    // Board: the resq-fw binary on the same files.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_resq-fw"))
        .args(["classify", "--json", "--top", "10", "--model"])
        .arg(&file)
        .args(&photos)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), photos.len());
    let host_key = if engine.model().meta.output.softmax {
        "score"
    } else {
        "logit"
    };
    for (((line, p), &class), scores) in lines.iter().zip(&photos).zip(&host).zip(&host_scores) {
        let name = p.file_name().unwrap().to_string_lossy();
        assert!(line["image"].as_str().unwrap().ends_with(&*name), "{line}");
        assert_eq!(
            line["class"].as_u64(),
            Some(class as u64),
            "{name}: resq eval says class {class}, resq-fw classify {line}"
        );
        // Every class's score: the board computed the very int8 output the host did. The host's
        // scores are probabilities for a model ending in a softmax, else logits; the board
        // prints both (`score` is always a probability).
        let topk = line["topk"].as_array().unwrap();
        assert_eq!(topk.len(), 10, "{line}");
        for e in topk {
            let c: usize = e["label"].as_str().unwrap()["class ".len()..]
                .parse()
                .unwrap();
            assert_eq!(
                e[host_key].as_f64().unwrap() as f32,
                scores[c],
                "{name}: {line}"
            );
        }
    }
    eprintln!("per-photo classes (host = board): {host:?}");
}
