//! Writing `.resq` files (host side, needs `alloc`).

use alloc::vec::Vec;

use crate::header::{body_crc, Header, FORMAT_VERSION, HEADER_LEN};
use crate::meta::{DataRef, Metadata, Precision};
use crate::DATA_ALIGN;

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

/// Serialises metadata, the int16 block and data into a complete file image
/// (format version [`FORMAT_VERSION`]).
pub fn write_file(
    meta: &Metadata<'_>,
    precision: &Precision,
    data: &DataSection,
) -> Result<Vec<u8>, postcard::Error> {
    let mut meta_bytes = postcard::to_allocvec(meta)?;
    meta_bytes.extend_from_slice(&postcard::to_allocvec(precision)?);
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
    let crc = body_crc(&file[HEADER_LEN..]);
    file[56..60].copy_from_slice(&crc.to_le_bytes());
}
