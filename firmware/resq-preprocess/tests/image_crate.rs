//! The shared resize stays within 1 LSB of the `image` crate's `Triangle` filter, which the host
//! tool used before the resize moved here: models converted before and after see the same
//! pixels, give or take one level.

use image::imageops::FilterType;
use resq_preprocess::{ChannelOrder, Frame, Geometry, PixelFormat, Resampler};

#[test]
fn photos_match_image_triangle_resize_within_one() {
    let photos = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/photos");
    let mut files: Vec<_> = std::fs::read_dir(&photos)
        .expect("models/photos")
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("png" | "jpg")))
        .collect();
    files.sort();
    assert!(files.len() >= 5);
    for file in files {
        let img = image::open(&file).unwrap().to_rgb8();
        let (w, h) = (img.width() as usize, img.height() as usize);
        for size in [32, 100, 224] {
            let g = Geometry::fit(w, h, size, size).unwrap();
            let resized = image::imageops::resize(
                &img,
                g.resized[0] as u32,
                g.resized[1] as u32,
                FilterType::Triangle,
            );
            let want = image::imageops::crop_imm(
                &resized,
                g.crop[0] as u32,
                g.crop[1] as u32,
                size as u32,
                size as u32,
            )
            .to_image();
            let frame = Frame::contiguous(PixelFormat::Rgb24, w, h, 0, img.as_raw()).unwrap();
            let mut ours = vec![0; size * size * 3];
            Resampler::new(w, h, size, size)
                .unwrap()
                .pixels(&frame, ChannelOrder::Rgb, &mut ours)
                .unwrap();
            let worst = ours
                .iter()
                .zip(want.as_raw())
                .map(|(&a, &b)| a.abs_diff(b))
                .max()
                .unwrap();
            assert!(
                worst <= 1,
                "{} at {size}²: differs from image's Triangle by {worst}",
                file.display()
            );
        }
    }
}
