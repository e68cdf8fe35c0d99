//! Image files (PNG, JPEG) decoded with limits checked before the pixels are allocated, and
//! damaged files refused rather than half-decoded.

use std::collections::HashSet;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::{bad_input, read_limited, MAX_IMAGE_FILE_BYTES};

/// Largest width or height of an image either tool decodes.
pub const MAX_IMAGE_SIDE: u32 = 16384;
/// Largest number of pixels of a decoded image (64 Mpixel: 192 MB as RGB).
pub const MAX_IMAGE_PIXELS: u64 = 64 << 20;

/// Whether `path` names a PNG or JPEG file, by its extension (any case).
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

/// Every PNG / JPEG file under `dir` (recursively, following symbolic links), sorted by
/// path, so runs are deterministic. Each folder is entered once and each file listed once
/// however many links lead to it (a link back to a parent would otherwise repeat the tree
/// until the path is too long). A folder without images gives an empty list; a folder that
/// does not exist, `ErrorKind::NotFound`. Errors name the folder.
pub fn list_images(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    fn walk(
        dir: &Path,
        out: &mut Vec<PathBuf>,
        seen_dirs: &mut HashSet<PathBuf>,
        seen_files: &mut HashSet<PathBuf>,
    ) -> std::io::Result<()> {
        let named = |e: std::io::Error| {
            std::io::Error::new(
                e.kind(),
                format!("cannot read folder {}: {e}", dir.display()),
            )
        };
        if !seen_dirs.insert(std::fs::canonicalize(dir).map_err(named)?) {
            return Ok(());
        }
        let mut entries = std::fs::read_dir(dir)
            .map_err(named)?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(named)?;
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out, seen_dirs, seen_files)?;
            } else if is_image_path(&path) {
                // A dangling link has no canonical path: keep it, loading names it.
                let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
                if seen_files.insert(real) {
                    out.push(path);
                }
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, &mut out, &mut HashSet::new(), &mut HashSet::new())?;
    out.sort();
    Ok(out)
}

/// Reads and decodes an image file as RGB, refusing files over [`MAX_IMAGE_FILE_BYTES`],
/// images over [`MAX_IMAGE_SIDE`] or [`MAX_IMAGE_PIXELS`], and truncated or damaged files
/// (the PNG decoder checks its own CRCs; a JPEG must reach its end-of-image marker).
pub fn read_image(path: &Path) -> anyhow::Result<RgbImage> {
    let bytes = read_limited(path, MAX_IMAGE_FILE_BYTES, "image")?;
    decode_image(&bytes).map_err(|why| bad_input(format!("image {}: {why}", path.display())))
}

/// [`read_image`] on bytes already in memory; the error says what is wrong with them.
pub fn decode_image(bytes: &[u8]) -> Result<RgbImage, String> {
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let format = reader
        .format()
        .ok_or("not a PNG or JPEG file (unknown signature)")?;
    if format == image::ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(
            "the JPEG is truncated (no end-of-image marker after its scan data); \
                    copy the file again or leave it out"
                .into(),
        );
    }
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| format!("cannot read its size: {e}"))?;
    check_size(w, h)?;
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_PIXELS * 8);
    reader.limits(limits);
    // zune-jpeg 0.5 panics on some damaged JPEGs (fuzz/regressions/image_preprocess).
    let img = crate::contain_panic(|| reader.decode())
        .map_err(|p| format!("the decoder failed on it ({p}); the file is damaged"))?
        .map_err(|e| format!("cannot decode it: {e}"))?;
    Ok(img.to_rgb8())
}

/// Refuses image sizes beyond the limits, naming them.
pub fn check_size(w: u32, h: u32) -> Result<(), String> {
    if w == 0 || h == 0 {
        return Err(format!("it is {w}×{h} pixels: empty"));
    }
    if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE || w as u64 * h as u64 > MAX_IMAGE_PIXELS {
        return Err(format!(
            "it is {w}×{h} pixels, over the limit of {MAX_IMAGE_SIDE} per side and \
             {} Mpixel; scale it down first",
            MAX_IMAGE_PIXELS >> 20
        ));
    }
    Ok(())
}

/// Whether a JPEG stream has an end-of-image marker (FF D9) after its first start-of-scan
/// (FF DA). Entropy-coded data never contains FF D9 (FF is stuffed as FF 00), so a file cut
/// anywhere in its scans lacks it; decoders fill the missing rows with grey without a word.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let Some(sos) = bytes.windows(2).position(|w| w == [0xFF, 0xDA]) else {
        return false;
    };
    bytes[sos..].windows(2).any(|w| w == [0xFF, 0xD9])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
        let mut out = vec![];
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode(&rgb, w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
        out
    }

    #[test]
    fn a_whole_jpeg_decodes_and_a_truncated_one_is_refused() {
        let full = jpeg(64, 48);
        assert_eq!(decode_image(&full).unwrap().dimensions(), (64, 48));
        let cut = &full[..full.len() * 2 / 3];
        let e = decode_image(cut).unwrap_err();
        assert!(e.contains("truncated"), "{e}");
    }

    #[test]
    fn a_truncated_png_is_refused() {
        let mut png = vec![];
        image::RgbImage::from_pixel(40, 30, image::Rgb([1, 2, 3]))
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert!(decode_image(&png).is_ok());
        assert!(decode_image(&png[..png.len() - 20]).is_err());
    }

    #[test]
    fn a_huge_declared_size_is_refused_before_decoding() {
        // A PNG header claiming 60000×60000 pixels, with no pixel data behind it.
        let mut png = vec![];
        image::RgbImage::from_pixel(1, 1, image::Rgb([0, 0, 0]))
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        png[16..20].copy_from_slice(&60000u32.to_be_bytes());
        png[20..24].copy_from_slice(&60000u32.to_be_bytes());
        let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        let e = decode_image(&png).unwrap_err();
        assert!(e.contains("60000×60000") || e.contains("limit"), "{e}");
    }

    #[test]
    fn text_is_not_an_image() {
        let e = decode_image(b"label,file\n").unwrap_err();
        assert!(e.contains("not a PNG or JPEG"), "{e}");
    }

    #[test]
    fn listing_follows_links_once_and_skips_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("b")).unwrap();
        for f in ["a.PNG", "b/c.jpeg", "b/d.jpg", "notes.txt", "b/e.bmp"] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        // A link back to the root (a loop) and a second name for one file.
        std::os::unix::fs::symlink(root, root.join("b/loop")).unwrap();
        std::os::unix::fs::symlink(root.join("a.PNG"), root.join("z.png")).unwrap();
        let names: Vec<String> = list_images(root)
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a.PNG", "b/c.jpeg", "b/d.jpg"]);
    }

    #[test]
    fn listing_a_missing_folder_is_not_found_and_names_it() {
        let e = list_images(Path::new("/nonexistent/resq-images")).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        assert!(e.to_string().contains("/nonexistent/resq-images"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        assert!(list_images(empty.path()).unwrap().is_empty());
    }
}
