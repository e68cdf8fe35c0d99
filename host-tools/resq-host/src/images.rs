//! Images in, model inputs out: folders of images, labelled datasets, and the preprocessing
//! shared by calibration, evaluation and the demo.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use resq_format::{ChannelOrder, Layout, Resize, ResizeMode};
use resq_preprocess::{Frame, PixelFormat, Resampler};
use sha2::{Digest, Sha256};

/// How an image becomes the model's float input: resized by `resize`, centre-cropped to the
/// input, then `x = (pixel − mean) / std`, per channel in the model's channel order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Preprocess {
    /// Model input height.
    pub height: usize,
    /// Model input width.
    pub width: usize,
    /// How the image is resized before the centre crop to `width`×`height`.
    pub resize: Resize,
    /// Channel order (and count: grey is one channel).
    pub channels: ChannelOrder,
    /// Layout of the source model's input tensor.
    pub layout: Layout,
    /// Mean per channel, pixel units.
    pub mean: [f32; 3],
    /// Standard deviation per channel, pixel units.
    pub std: [f32; 3],
}

impl Preprocess {
    /// Number of channels.
    pub fn channel_count(&self) -> usize {
        if self.channels == ChannelOrder::Grey {
            1
        } else {
            3
        }
    }

    /// Loads an image and returns its pixels `[h][w][c]` in the model's channel order, resized by
    /// the recipe and centre-cropped to the input (as torchvision's `Resize` + `CenterCrop`, or
    /// squashed as Keras).
    pub fn load_pixels(&self, path: &Path) -> Result<Vec<u8>> {
        let img = image::DynamicImage::ImageRgb8(resq_io::read_image(path)?);
        self.try_pixels(&img)
            .with_context(|| format!("cannot preprocess image {}", path.display()))
    }

    /// As [`Preprocess::load_pixels`], from a decoded image. An image with no pixels gives
    /// black (see [`Preprocess::try_pixels`] for the error).
    pub fn pixels(&self, img: &image::DynamicImage) -> Vec<u8> {
        self.try_pixels(img)
            .unwrap_or_else(|_| vec![0; self.height * self.width * self.channel_count()])
    }

    /// As [`Preprocess::pixels`], refusing images with no pixels (or over 65535 a side).
    ///
    /// The resize is `resq-preprocess`'s, the one the firmware runs on camera frames, so the
    /// board computes the very pixels calibration and evaluation saw.
    pub fn try_pixels(&self, img: &image::DynamicImage) -> Result<Vec<u8>> {
        let rgb = img.to_rgb8();
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        let mut out = vec![0; self.height * self.width * self.channel_count()];
        let frame = Frame::contiguous(PixelFormat::Rgb24, w, h, 0, rgb.as_raw())?;
        Resampler::with_resize(w, h, self.resize, self.width, self.height)?.pixels(
            &frame,
            self.channels,
            &mut out,
        )?;
        Ok(out)
    }

    /// The float input tensor for the source model (tract), in its layout, shape `[1, …]`.
    pub fn float_input(&self, pixels: &[u8]) -> tract_onnx::prelude::Tensor {
        let (h, w, c) = (self.height, self.width, self.channel_count());
        let x = |y: usize, xx: usize, ch: usize| {
            (pixels[(y * w + xx) * c + ch] as f32 - self.mean[ch]) / self.std[ch]
        };
        match self.layout {
            Layout::Nchw => {
                tract_ndarray::Array4::from_shape_fn((1, c, h, w), |(_, ch, y, xx)| x(y, xx, ch))
                    .into()
            }
            Layout::Nhwc => {
                tract_ndarray::Array4::from_shape_fn((1, h, w, c), |(_, y, xx, ch)| x(y, xx, ch))
                    .into()
            }
        }
    }
}

use tract_onnx::prelude::tract_ndarray;

/// The recipe in words, e.g. `resize shorter side to 256, centre crop 224×224`.
pub fn describe_resize(resize: Resize, width: usize, height: usize) -> String {
    let [rw, rh] = resize.size;
    // Keeping the aspect ratio always leaves an overhang to cut (unless the image has the
    // input's shape); a squash to the input itself leaves nothing.
    let crop = if resize.mode == ResizeMode::Squash && [rw, rh] == [width as u32, height as u32] {
        "no crop".to_string()
    } else {
        format!("centre crop {width}×{height}")
    };
    match resize.mode {
        ResizeMode::Shorter if rw == rh => format!("resize shorter side to {rw}, {crop}"),
        ResizeMode::Shorter => {
            format!("resize to cover {rw}×{rh} (aspect ratio kept), {crop}")
        }
        ResizeMode::Squash => format!("squash to {rw}×{rh} (aspect ratio not kept), {crop}"),
    }
}

impl std::fmt::Display for Preprocess {
    /// `resize shorter side to 256, centre crop 224×224, RGB, mean 123.675,116.28,103.53, std …`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = self.channel_count();
        let list = |v: &[f32; 3]| {
            v[..c]
                .iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let order = match self.channels {
            ChannelOrder::Rgb => "RGB",
            ChannelOrder::Bgr => "BGR",
            ChannelOrder::Grey => "grey",
        };
        write!(
            f,
            "{}, {order}, mean {}, std {} (pixel units 0..255)",
            describe_resize(self.resize, self.width, self.height),
            list(&self.mean),
            list(&self.std)
        )
    }
}

/// Every PNG / JPEG file under `dir` ([`resq_io::image_file::list_images`]: recursive,
/// following links, each folder and file once, sorted); a missing folder or one without
/// images is bad input.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let out = resq_io::image_file::list_images(dir).map_err(|e| {
        if dir.exists() {
            anyhow::Error::new(e)
        } else {
            resq_io::bad_input(format!("image folder {} does not exist", dir.display()))
        }
    })?;
    if out.is_empty() {
        return Err(resq_io::bad_input(format!(
            "no PNG or JPEG images in {}; point to a folder of images",
            dir.display()
        )));
    }
    Ok(out)
}

/// SHA-256 over the calibration set: each file's path relative to `root`, its length and its
/// bytes, in order.
pub fn digest_files(root: &Path, files: &[PathBuf]) -> Result<[u8; 32]> {
    let mut h = Sha256::new();
    for f in files {
        let bytes = resq_io::read_limited(f, resq_io::MAX_IMAGE_FILE_BYTES, "image")?;
        let rel = f.strip_prefix(root).unwrap_or(f);
        h.update(rel.to_string_lossy().as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    Ok(h.finalize().into())
}

/// SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    let bytes = resq_io::read_limited(path, resq_io::MAX_ONNX_BYTES, "file")?;
    Ok(Sha256::digest(&bytes).into())
}

/// A labelled image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Image file.
    pub path: PathBuf,
    /// Class index.
    pub label: usize,
}

/// Reads a labelled dataset without the model's labels: see [`labelled_dataset_for`] (class
/// folders named by number are that class, others are numbered in sorted order).
pub fn labelled_dataset(dir: &Path, csv: Option<&Path>) -> Result<Vec<Sample>> {
    Ok(labelled_dataset_for(dir, csv, &[])?.samples)
}

/// A labelled image set, and how its class folders were numbered when that was a guess.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    /// The images and their class indices.
    pub samples: Vec<Sample>,
    /// Set when class folders were numbered by their sorted order (the model has no labels):
    /// worth telling the user, as a wrong guess scores near 0 % without any error.
    pub note: Option<String>,
}

/// Reads a labelled dataset for a model with class names `labels` (empty when it has none).
///
/// With `csv`: a CSV with a header and columns `file` (relative to `dir`) and `label` (class
/// index). Without: the ImageFolder layout, one sub-folder per class, each folder matched to
/// the model's class by name — exactly, then ignoring case; a folder named by a number
/// (`0/`, `3/`) is that class index. A folder matching nothing is an error listing the
/// model's labels. Without labels, folders named by number are that class and otherwise the
/// sorted folder order numbers the classes (with a [`Dataset::note`]).
pub fn labelled_dataset_for(dir: &Path, csv: Option<&Path>, labels: &[&str]) -> Result<Dataset> {
    match csv {
        Some(csv) => Ok(Dataset {
            samples: read_label_csv(dir, csv)?,
            note: None,
        }),
        None => read_image_folder(dir, labels),
    }
}

fn read_label_csv(dir: &Path, csv: &Path) -> Result<Vec<Sample>> {
    let text = resq_io::read_text(csv, "ground-truth CSV")?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .with_context(|| format!("{} is empty; it needs a header line", csv.display()))?;
    let cols = csv_fields(header);
    // `file` is the documented name; the aliases cover common dataset exports (e.g. MLPerf Tiny's `png`).
    let col = |names: &[&str]| {
        cols.iter()
            .position(|c| names.contains(&c.as_str()))
            .with_context(|| {
                format!(
                    "{}: the header has no `{}` column (found: {}); it needs `file` and `label`",
                    csv.display(),
                    names[0],
                    cols.join(", ")
                )
            })
    };
    let file_col = col(&["file", "png", "image", "filename", "path"])?;
    let label_col = col(&["label"])?;
    let mut out = Vec::new();
    for (i, line) in lines {
        let fields = csv_fields(line);
        let get = |c: usize| {
            fields
                .get(c)
                .map(String::as_str)
                .with_context(|| format!("{} line {}: too few columns", csv.display(), i + 1))
        };
        let label = get(label_col)?.parse().with_context(|| {
            format!(
                "{} line {}: label `{}` is not a class index",
                csv.display(),
                i + 1,
                fields[label_col]
            )
        })?;
        let path = dir.join(get(file_col)?);
        if !path.is_file() {
            bail!(
                "{} line {}: image {} does not exist",
                csv.display(),
                i + 1,
                path.display()
            );
        }
        out.push(Sample { path, label });
    }
    if out.is_empty() {
        bail!("{} lists no images", csv.display());
    }
    Ok(out)
}

/// The fields of one CSV line (RFC 4180: fields may be quoted, `""` is a quote inside quotes),
/// trimmed. Spreadsheets and pandas quote headers and paths with commas.
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![];
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field).trim().to_string()),
            _ => field.push(ch),
        }
    }
    fields.push(field.trim().to_string());
    fields
}

fn read_image_folder(dir: &Path, labels: &[&str]) -> Result<Dataset> {
    let mut classes: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    if classes.is_empty() {
        bail!(
            "{} has no class sub-folders; use the ImageFolder layout (DIR/<class>/<image>) or pass --labels CSV",
            dir.display()
        );
    }
    let names: Vec<String> = classes
        .iter()
        .map(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let mut note = None;
    let indices: Vec<usize> = if !labels.is_empty() {
        names
            .iter()
            .map(|name| class_of_folder(dir, name, labels))
            .collect::<Result<_>>()?
    } else if let Some(indices) = names
        .iter()
        .map(|n| folder_number(n))
        .collect::<Option<Vec<_>>>()
    {
        indices
    } else {
        let shown: Vec<String> = names
            .iter()
            .take(3)
            .enumerate()
            .map(|(i, n)| format!("{n} = {i}"))
            .collect();
        note = Some(format!(
            "the model has no class labels, so the {} class folders of {} are numbered in sorted \
             order ({}{}); if that is not the model's class order, re-convert with \
             `resq convert --labels FILE` so folders are matched to classes by name",
            names.len(),
            dir.display(),
            shown.join(", "),
            if names.len() > 3 { ", …" } else { "" }
        ));
        (0..names.len()).collect()
    };
    let mut out = Vec::new();
    for (class, &label) in classes.iter().zip(&indices) {
        for path in list_images(class).unwrap_or_default() {
            out.push(Sample { path, label });
        }
    }
    Ok(Dataset { samples: out, note })
}

/// The class index a folder named by a number (`0`, `3`; digits only) stands for.
fn folder_number(name: &str) -> Option<usize> {
    name.parse::<usize>()
        .ok()
        .filter(|_| name.bytes().all(|b| b.is_ascii_digit()))
}

/// The class index of ImageFolder folder `name`: the label of that name (exactly, then
/// ignoring case), else the number it is.
fn class_of_folder(dir: &Path, name: &str, labels: &[&str]) -> Result<usize> {
    if let Some(i) = labels.iter().position(|l| *l == name) {
        return Ok(i);
    }
    if let Some(i) = labels
        .iter()
        .position(|l| l.to_lowercase() == name.to_lowercase())
    {
        return Ok(i);
    }
    if let Some(i) = folder_number(name) {
        ensure!(
            i < labels.len(),
            "{}: class folder `{name}` is class number {i}, but the model has {} classes (0..={})",
            dir.join(name).display(),
            labels.len(),
            labels.len() - 1
        );
        return Ok(i);
    }
    const SHOWN: usize = 50;
    let mut list = labels
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if labels.len() > SHOWN {
        list.push_str(&format!(", … ({} in all)", labels.len()));
    }
    bail!(
        "{}: class folder `{name}` matches none of the model's labels; name each class folder \
         after one of them (case does not matter) or by class number 0..={}. The model's labels: {list}",
        dir.join(name).display(),
        labels.len() - 1
    )
}
