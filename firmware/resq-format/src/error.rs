//! Every way a file can be refused, each with what the reader should do about it.

use thiserror::Error;

/// Why a `.resq` file was refused. Messages name the field, layer or tensor at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The file does not start with the `.resq` magic bytes.
    #[error("not a .resq model file (bad magic bytes); convert an ONNX model with `resq convert`")]
    BadMagic,
    /// The file was written by a newer resq.
    #[error(
        "the file is format version {found}, this reader supports up to {supported}; \
         update resq-fw / resq, or re-convert the model with this version's `resq convert`"
    )]
    FutureVersion {
        /// Version in the file.
        found: u16,
        /// Newest version this reader knows.
        supported: u16,
    },
    /// The file is shorter than its header says.
    #[error("the file is truncated: {actual} bytes, its header says {expected}; copy it again")]
    Truncated {
        /// Length the header promises.
        expected: u64,
        /// Length found.
        actual: u64,
    },
    /// Bytes follow the end the header promises.
    #[error("{actual} bytes found where the header says {expected}: extra bytes at the end; copy it again")]
    TrailingBytes {
        /// Length the header promises.
        expected: u64,
        /// Length found.
        actual: u64,
    },
    /// A header field is inconsistent.
    #[error("bad header field `{field}`: {why}")]
    BadHeader {
        /// Header field at fault.
        field: &'static str,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The body does not match its checksum: the file was damaged.
    #[error(
        "checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the file was damaged \
         in transfer or storage; copy it again"
    )]
    BadCrc {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes read.
        computed: u32,
    },
    /// The postcard metadata could not be decoded (or exceeds a fixed capacity).
    #[error("the metadata block cannot be decoded ({0}); the file is damaged or exceeds a limit")]
    BadMetadata(&'static str),
    /// The buffer holding the file is not aligned for in-place i32 access.
    #[error(
        "the model buffer is not 4-byte aligned (8-byte with int16 weights), so its i32 / i64 \
         data cannot be borrowed in place; load the file into aligned memory (resq-engine's \
         `AlignedBytes`)"
    )]
    Misaligned,
    /// This machine is big-endian; the file's raw section is little-endian.
    #[error("resq files are little-endian and this target is big-endian")]
    BigEndianTarget,
    /// A layer refers to a tensor that does not exist.
    #[error("layer {layer} (`{name}`): {what} tensor index {index} is out of range (the graph has {count} tensors)")]
    TensorIndexOutOfRange {
        /// Layer index.
        layer: usize,
        /// Layer name.
        name: heapless::String<64>,
        /// Which operand.
        what: &'static str,
        /// The bad index.
        index: u16,
        /// Number of tensors.
        count: usize,
    },
    /// A tensor is read before any layer writes it, or written twice.
    #[error("layer {layer} (`{name}`): {why}")]
    BadGraph {
        /// Layer index (or the layer count for graph-level problems).
        layer: usize,
        /// Layer name.
        name: heapless::String<64>,
        /// What is wrong.
        why: &'static str,
    },
    /// A layer's tensor shape does not follow from its inputs and parameters.
    #[error("layer {layer} (`{name}`): shape mismatch for {what}: expected {expected:?}, found {found:?}")]
    ShapeMismatch {
        /// Layer index.
        layer: usize,
        /// Layer name.
        name: heapless::String<64>,
        /// Which tensor or blob.
        what: &'static str,
        /// What the parameters imply (NHWC for tensors; element count in slot 0 for blobs).
        expected: [u64; 4],
        /// What the file says.
        found: [u64; 4],
    },
    /// A parameter is outside what resq supports or can run safely.
    #[error("layer {layer} (`{name}`): `{field}` = {value} is out of range ({limit})")]
    OutOfRange {
        /// Layer index (or tensor index for tensor fields).
        layer: usize,
        /// Layer or tensor name.
        name: heapless::String<64>,
        /// The field.
        field: &'static str,
        /// Its value.
        value: i64,
        /// The allowed range, in words.
        limit: &'static str,
    },
    /// The int16 block (format version 2) names a tensor that cannot be int16.
    #[error(
        "int16 tensor {tensor} (`{name}`): {why}; re-convert without keeping this layer at int16"
    )]
    BadInt16 {
        /// Tensor index.
        tensor: u16,
        /// Tensor name (empty when the index is out of range).
        name: heapless::String<64>,
        /// What is wrong.
        why: &'static str,
    },
    /// The resize block (format version 3) cannot give the model input by a centre crop.
    #[error(
        "preprocessing: resize to {}×{} before the {}×{} centre crop of the model input {why}; \
         re-convert with `resq convert --resize` (or `--crop-ratio`) giving a size from the \
         input's up to {}",
        size[0], size[1], input[0], input[1], crate::MAX_IMAGE_DIM
    )]
    BadResize {
        /// The resize `[width, height]` in the file.
        size: [u32; 2],
        /// The model input `[width, height]`.
        input: [u32; 2],
        /// What is wrong.
        why: &'static str,
    },
    /// The resize block names a mode this reader does not know (a newer resq wrote it).
    #[error(
        "preprocessing: unknown resize mode {mode} (this reader knows 0 = shorter side, \
         1 = squash); update resq-fw / resq, or re-convert with this version's `resq convert`"
    )]
    UnknownResizeMode {
        /// The mode's tag in the file.
        mode: u32,
    },
    /// A reference into the data section is out of bounds or misaligned.
    #[error("layer {layer} (`{name}`): `{field}` data range {offset}+{len} is outside the {data_len}-byte data section or misaligned")]
    BadDataRef {
        /// Layer index.
        layer: usize,
        /// Layer name.
        name: heapless::String<64>,
        /// The field.
        field: &'static str,
        /// Offset in the data section.
        offset: u32,
        /// Length in bytes.
        len: u32,
        /// Size of the data section.
        data_len: u64,
    },
    /// Two references into the data section share bytes (the writer gives every array its
    /// own, and the engine's in-place weight packing relies on it).
    #[error(
        "layer {layer} (`{name}`): `{field}` data range {offset}+{len} overlaps layer \
         {other_layer} (`{other_name}`) `{other_field}` data range {other_offset}+{other_len}; \
         every array needs its own bytes, so the file is damaged or was not written by resq; \
         re-convert the model with `resq convert`"
    )]
    OverlappingData {
        /// Layer index of the first reference (the layer count for the graph's own arrays:
        /// input lookup table, self-test vectors).
        layer: usize,
        /// Its layer name (`<graph>` for the graph's own arrays).
        name: heapless::String<64>,
        /// Its field.
        field: &'static str,
        /// Its offset in the data section.
        offset: u32,
        /// Its length in bytes.
        len: u32,
        /// Layer index of the reference it overlaps (the layer count for the graph's arrays).
        other_layer: usize,
        /// That layer's name.
        other_name: heapless::String<64>,
        /// That field.
        other_field: &'static str,
        /// Its offset in the data section.
        other_offset: u32,
        /// Its length in bytes.
        other_len: u32,
    },
}

/// A layer or tensor name, cut to fit an error message without allocating.
pub(crate) fn short_name(name: &str) -> heapless::String<64> {
    let mut s = heapless::String::new();
    for ch in name.chars() {
        if s.push(ch).is_err() {
            break;
        }
    }
    s
}
