//! [`TinyModel`]: a whole `.resq` file built in code, for tests and examples.

use alloc::vec::Vec;

use super::{write_file, Blocks, DataSection};
use crate::meta::{
    ChannelOrder, DataRef, InputSpec, Layer, Layout, Metadata, Op, OutputSpec, Precision,
    Provenance, Resize, SelfTest, TensorDesc,
};

/// Builds a small `.resq` model in code over its own [`DataSection`] and writes it with
/// [`write_file`]: the one way the crates' tests make tiny models.
///
/// Arrays land in the data section in call order: [`input`](Self::input) pushes the lookup
/// table, [`self_test`](Self::self_test) the two vectors, and layers push theirs through
/// [`data`](Self::data) before [`layer`](Self::layer) adds them. Until set, the input is tensor
/// 0 (NHWC, RGB, mean 0, std 1, empty LUT), the output tensor 0 without softmax, the labels
/// empty and the self-test empty. Provenance gets fixed test values — source `test.onnx`, zero
/// digests, no calibration images, method `minmax` — and the caller's tool name;
/// [`provenance_mut`](Self::provenance_mut) changes them.
///
/// Nothing is checked before the file is parsed, so a test can build a broken model on purpose,
/// or take the metadata and data apart with [`parts_mut`](Self::parts_mut) and edit them.
///
/// ```
/// use resq_format::write::TinyModel;
/// use resq_format::{ChannelOrder, Layout, Model, Op, Pool};
///
/// // A 2×2 RGB input, max pooled to one value per channel.
/// let mut m = TinyModel::new("max", "docs");
/// let input = m.tensor("image", [2, 2, 3], 1.0 / 128.0, 0);
/// let output = m.tensor("max", [1, 1, 3], 1.0 / 128.0, 0);
/// let lut: Vec<i8> = (0..3 * 256).map(|i| (i % 256 - 128) as i8).collect();
/// m.input(input, Layout::Nhwc, ChannelOrder::Rgb, &lut)
///     .normalisation([128.0; 3], [128.0; 3])
///     .output(output, false)
///     .labels("red\ngreen\nblue");
/// let window = Pool { input, output, kernel: [2, 2], stride: [2, 2], pad: [0; 4] };
/// m.layer("pool", Op::MaxPool(window));
/// m.self_test(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], &[9, 10, 11]);
/// let file = m.write().unwrap();
///
/// // `Model::parse` wants the file 4-byte aligned.
/// let mut words = vec![0u32; file.len().div_ceil(4)];
/// bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..file.len()].copy_from_slice(&file);
/// let model = Model::parse(&bytemuck::cast_slice(&words)[..file.len()]).unwrap();
/// assert_eq!(model.classes(), 3);
/// ```
#[derive(Clone, Debug)]
pub struct TinyModel<'a> {
    meta: Metadata<'a>,
    data: DataSection,
    blocks: Blocks,
}

impl<'a> TinyModel<'a> {
    /// An empty model called `name`, made (as its provenance says) by `tool`.
    pub fn new(name: &'a str, tool: &'a str) -> Self {
        TinyModel {
            meta: Metadata {
                name,
                input: InputSpec {
                    tensor: 0,
                    layout: Layout::Nhwc,
                    channels: ChannelOrder::Rgb,
                    mean: [0.0; 3],
                    std: [1.0; 3],
                    lut: DataRef::default(),
                },
                output: OutputSpec {
                    tensor: 0,
                    softmax: false,
                },
                tensors: heapless::Vec::new(),
                layers: heapless::Vec::new(),
                labels: "",
                provenance: Provenance {
                    source_name: "test.onnx",
                    source_sha256: [0; 32],
                    calib_digest: [0; 32],
                    calib_images: 0,
                    method: "minmax",
                    method_param: 0.0,
                    tool,
                },
                self_test: SelfTest::default(),
            },
            data: DataSection::new(),
            blocks: Blocks::default(),
        }
    }

    /// Adds an activation tensor of shape `[1, h, w, c]`, returning its index.
    ///
    /// # Panics
    ///
    /// Past [`MAX_TENSORS`](crate::MAX_TENSORS) tensors.
    pub fn tensor(
        &mut self,
        name: &'a str,
        [h, w, c]: [u32; 3],
        scale: f32,
        zero_point: i8,
    ) -> u16 {
        let desc = TensorDesc {
            name,
            shape: [1, h, w, c],
            scale,
            zero_point,
        };
        assert!(self.meta.tensors.push(desc).is_ok(), "too many tensors");
        (self.meta.tensors.len() - 1) as u16
    }

    /// Appends a layer, returning its index. Push its arrays with [`data`](Self::data) first.
    ///
    /// # Panics
    ///
    /// Past [`MAX_LAYERS`](crate::MAX_LAYERS) layers.
    pub fn layer(&mut self, name: &'a str, op: Op) -> usize {
        assert!(
            self.meta.layers.push(Layer { name, op }).is_ok(),
            "too many layers"
        );
        self.meta.layers.len() - 1
    }

    /// The data section, to push a layer's weights, biases and multipliers.
    pub fn data(&mut self) -> &mut DataSection {
        &mut self.data
    }

    /// Sets the input tensor, the source model's layout and channel order, and pushes `lut`
    /// (`[channel][pixel]`) as the input lookup table.
    pub fn input(
        &mut self,
        tensor: u16,
        layout: Layout,
        channels: ChannelOrder,
        lut: &[i8],
    ) -> &mut Self {
        let lut = self.data.push_i8(lut);
        self.meta.input = InputSpec {
            tensor,
            layout,
            channels,
            lut,
            ..self.meta.input
        };
        self
    }

    /// Sets the input normalisation `x = (pixel − mean) / std`, per channel in pixel units.
    pub fn normalisation(&mut self, mean: [f32; 3], std: [f32; 3]) -> &mut Self {
        self.meta.input.mean = mean;
        self.meta.input.std = std;
        self
    }

    /// Sets the output tensor and whether the model ends in a softmax.
    pub fn output(&mut self, tensor: u16, softmax: bool) -> &mut Self {
        self.meta.output = OutputSpec { tensor, softmax };
        self
    }

    /// Sets the class names, one per line.
    pub fn labels(&mut self, labels: &'a str) -> &mut Self {
        self.meta.labels = labels;
        self
    }

    /// Pushes the self-test input and expected output, returning where they are (to
    /// [`patch_data`](super::patch_data) the expectation once the engine has computed it).
    pub fn self_test(&mut self, input: &[i8], expected: &[i8]) -> SelfTest {
        let self_test = SelfTest {
            input: self.data.push_i8(input),
            expected: self.data.push_i8(expected),
        };
        self.meta.self_test = self_test;
        self_test
    }

    /// The provenance, to replace the test defaults.
    pub fn provenance_mut(&mut self) -> &mut Provenance<'a> {
        &mut self.meta.provenance
    }

    /// Sets the int16 block (format version 2); empty by default.
    pub fn precision(&mut self, precision: Precision) -> &mut Self {
        self.blocks.precision = precision;
        self
    }

    /// Sets the resize block (format version 3); by default [`write_file`]'s, the shorter side
    /// to the input.
    pub fn resize(&mut self, resize: Resize) -> &mut Self {
        self.blocks.resize = Some(resize);
        self
    }

    /// The metadata so far.
    pub fn meta(&self) -> &Metadata<'a> {
        &self.meta
    }

    /// The metadata and data section, to edit before [`write`](Self::write).
    pub fn parts_mut(&mut self) -> (&mut Metadata<'a>, &mut DataSection) {
        (&mut self.meta, &mut self.data)
    }

    /// The metadata and data section, without the blocks.
    pub fn into_parts(self) -> (Metadata<'a>, DataSection) {
        (self.meta, self.data)
    }

    /// The complete file image.
    pub fn write(&self) -> Result<Vec<u8>, postcard::Error> {
        write_file(&self.meta, &self.blocks, &self.data)
    }
}
