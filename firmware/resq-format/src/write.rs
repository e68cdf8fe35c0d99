//! Writing `.resq` files (host side, needs `alloc`).

use alloc::vec::Vec;

use crate::header::{body_crc, reseal_header_crc, Header, FORMAT_VERSION, HEADER_LEN};
use crate::meta::{DataRef, Metadata, Precision, Resize};
use crate::DATA_ALIGN;

mod tiny;
pub use tiny::TinyModel;

/// Accumulates the raw data section: each array is appended at an offset aligned for its
/// element type, and named by the returned [`DataRef`].
#[derive(Default, Debug, Clone)]
pub struct DataSection {
    bytes: Vec<u8>,
}

impl DataSection {
    /// An empty section.
    pub fn new() -> Self {
        Self::default()
    }

    fn align(&mut self, to: usize) {
        while !self.bytes.len().is_multiple_of(to) {
            self.bytes.push(0);
        }
    }

    fn data_ref(&self, start: usize) -> DataRef {
        DataRef {
            offset: start as u32,
            len: (self.bytes.len() - start) as u32,
        }
    }

    /// Appends int8 values.
    pub fn push_i8(&mut self, values: &[i8]) -> DataRef {
        let start = self.bytes.len();
        self.bytes.extend(values.iter().map(|&v| v as u8));
        self.data_ref(start)
    }

    /// Appends i32 values, little-endian, 16-byte aligned (so SIMD loads of bias rows are aligned).
    pub fn push_i32(&mut self, values: &[i32]) -> DataRef {
        self.align(16);
        let start = self.bytes.len();
        for v in values {
            self.bytes.extend_from_slice(&v.to_le_bytes());
        }
        self.data_ref(start)
    }

    /// Appends i16 values, little-endian, 16-byte aligned.
    pub fn push_i16(&mut self, values: &[i16]) -> DataRef {
        self.align(16);
        let start = self.bytes.len();
        for v in values {
            self.bytes.extend_from_slice(&v.to_le_bytes());
        }
        self.data_ref(start)
    }

    /// Appends i64 values, little-endian, 16-byte aligned.
    pub fn push_i64(&mut self, values: &[i64]) -> DataRef {
        self.align(16);
        let start = self.bytes.len();
        for v in values {
            self.bytes.extend_from_slice(&v.to_le_bytes());
        }
        self.data_ref(start)
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// The blocks that follow [`Metadata`] in the metadata section (format version 2 on).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blocks {
    /// The int16 block (version 2): tensors and weights kept at int16.
    pub precision: Precision,
    /// The resize recipe (version 3); `None` writes [`Resize::shorter_side`] of the input
    /// tensor, the recipe version 1 and 2 files imply.
    pub resize: Option<Resize>,
}

impl From<Precision> for Blocks {
    fn from(precision: Precision) -> Blocks {
        Blocks {
            precision,
            resize: None,
        }
    }
}

/// Serialises metadata, the blocks after it and data into a complete file image
/// (format version [`FORMAT_VERSION`]).
pub fn write_file(
    meta: &Metadata<'_>,
    blocks: &Blocks,
    data: &DataSection,
) -> Result<Vec<u8>, postcard::Error> {
    let resize = blocks.resize.unwrap_or_else(|| {
        // An invalid input index leaves a zero size: the graph check refuses the file first.
        let shape = meta
            .tensors
            .get(meta.input.tensor as usize)
            .map_or([0; 4], |t| t.shape);
        Resize::shorter_side(shape[2], shape[1])
    });
    let mut meta_bytes = postcard::to_allocvec(meta)?;
    meta_bytes.extend_from_slice(&postcard::to_allocvec(&blocks.precision)?);
    meta_bytes.extend_from_slice(&postcard::to_allocvec(&resize)?);
    let meta_len = meta_bytes.len();
    let data_offset = (HEADER_LEN + meta_len).div_ceil(DATA_ALIGN) * DATA_ALIGN;
    let file_len = data_offset + data.bytes.len();
    let mut file = Vec::with_capacity(file_len);
    file.extend_from_slice(&[0u8; HEADER_LEN]);
    file.extend_from_slice(&meta_bytes);
    file.resize(data_offset, 0);
    file.extend_from_slice(&data.bytes);
    let header = Header {
        version: FORMAT_VERSION,
        file_len: file_len as u64,
        meta_offset: HEADER_LEN as u64,
        meta_len: meta_len as u64,
        data_offset: data_offset as u64,
        data_len: data.bytes.len() as u64,
        crc32: body_crc(&file[HEADER_LEN..]),
    };
    file[..HEADER_LEN].copy_from_slice(&header.to_bytes());
    Ok(file)
}

/// Overwrites `bytes` at data range `r` of a complete file image and updates its CRC
/// (used to store a self-test output computed from the finished file).
pub fn patch_data(file: &mut [u8], r: DataRef, bytes: &[u8]) {
    let data_offset = u64::from_le_bytes(file[40..48].try_into().unwrap_or_default()) as usize;
    let start = data_offset + r.offset as usize;
    file[start..start + bytes.len()].copy_from_slice(bytes);
    reseal_header_crc(file);
}
