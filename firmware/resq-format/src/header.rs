//! The fixed 64-byte header at the start of every `.resq` file.

use crate::FormatError;

/// First eight bytes of every file. The high byte and CR LF / ^Z catch text-mode transfers,
/// as in PNG.
pub const MAGIC: [u8; 8] = *b"\x89RESQ\r\n\x1a";
/// The format version this crate reads and writes. See `SPEC.md` for the versioning rule.
pub const FORMAT_VERSION: u16 = 3;
/// Size of the header in bytes.
pub const HEADER_LEN: usize = 64;

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// The decoded header. All integers are little-endian in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Format version the file was written with.
    pub version: u16,
    /// Total file length in bytes.
    pub file_len: u64,
    /// Offset of the postcard metadata block (always [`HEADER_LEN`] in version 1).
    pub meta_offset: u64,
    /// Length of the metadata block.
    pub meta_len: u64,
    /// Offset of the raw data section, a multiple of [`crate::DATA_ALIGN`].
    pub data_offset: u64,
    /// Length of the raw data section; it ends the file.
    pub data_len: u64,
    /// CRC-32 (ISO-HDLC, as zlib) of every byte after the header.
    pub crc32: u32,
}

/// Bytes of the header holding [`Header::crc32`].
const CRC_FIELD: core::ops::Range<usize> = 56..60;

/// CRC-32 of the bytes after the header.
pub fn body_crc(body: &[u8]) -> u32 {
    CRC32.checksum(body)
}

/// Re-seals a file image whose body was changed in place: recomputes the CRC-32 of every byte
/// after the header and stores it in the header (the writer patching its self-test output, the
/// engine packing weights in place). The other header fields are left as they are. An image
/// shorter than the header has no CRC field and is left unchanged.
pub fn reseal_header_crc(file: &mut [u8]) {
    if file.len() < HEADER_LEN {
        return;
    }
    // Slice-by-16 tables: several times faster than the bytewise default on a model's weights.
    let crc =
        crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISO_HDLC).checksum(&file[HEADER_LEN..]);
    file[CRC_FIELD].copy_from_slice(&crc.to_le_bytes());
}

impl Header {
    /// Encodes the header into its 64 bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&self.version.to_le_bytes());
        b[10..12].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        // 12..16: flags, reserved, zero.
        b[16..24].copy_from_slice(&self.file_len.to_le_bytes());
        b[24..32].copy_from_slice(&self.meta_offset.to_le_bytes());
        b[32..40].copy_from_slice(&self.meta_len.to_le_bytes());
        b[40..48].copy_from_slice(&self.data_offset.to_le_bytes());
        b[48..56].copy_from_slice(&self.data_len.to_le_bytes());
        b[CRC_FIELD].copy_from_slice(&self.crc32.to_le_bytes());
        // 60..64: reserved, zero.
        b
    }

    /// Decodes and checks the header of `file` (the whole file): magic, version, that every
    /// length agrees with the file's real length, and the CRC of the body.
    pub fn parse(file: &[u8]) -> Result<Header, FormatError> {
        let header = Header::parse_prefix(file)?;
        let actual = file.len() as u64;
        if header.file_len > actual {
            return Err(FormatError::Truncated {
                expected: header.file_len,
                actual,
            });
        }
        if header.file_len < actual {
            return Err(FormatError::TrailingBytes {
                expected: header.file_len,
                actual,
            });
        }
        let crc = body_crc(&file[HEADER_LEN..]);
        if crc != header.crc32 {
            return Err(FormatError::BadCrc {
                stored: header.crc32,
                computed: crc,
            });
        }
        Ok(header)
    }

    /// Decodes and checks the 64 header bytes alone (`bytes` may be the whole file or just its
    /// start): magic, version, fields and that the sections' offsets and lengths agree with
    /// each other. Readers call this before reading the rest, so a file's stated length is
    /// known, and bounded, before any memory is set aside for it.
    pub fn parse_prefix(bytes: &[u8]) -> Result<Header, FormatError> {
        let file = bytes;
        if file.len() < HEADER_LEN {
            if file.len() >= 8 && file[..8] != MAGIC {
                return Err(FormatError::BadMagic);
            }
            return Err(FormatError::Truncated {
                expected: HEADER_LEN as u64,
                actual: file.len() as u64,
            });
        }
        if file[..8] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        let u16_at = |o: usize| u16::from_le_bytes([file[o], file[o + 1]]);
        let u32_at =
            |o: usize| u32::from_le_bytes([file[o], file[o + 1], file[o + 2], file[o + 3]]);
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&file[o..o + 8]);
            u64::from_le_bytes(a)
        };
        let version = u16_at(8);
        if version > FORMAT_VERSION {
            return Err(FormatError::FutureVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if version == 0 {
            return Err(FormatError::BadHeader {
                field: "version",
                why: "version 0 was never written by resq",
            });
        }
        if u16_at(10) as usize != HEADER_LEN {
            return Err(FormatError::BadHeader {
                field: "header_len",
                why: "must be 64 in format versions 1 to 3",
            });
        }
        if u32_at(12) != 0 {
            return Err(FormatError::BadHeader {
                field: "flags",
                why: "no flags are defined in format versions 1 to 3; the file is damaged",
            });
        }
        if u32_at(60) != 0 {
            return Err(FormatError::BadHeader {
                field: "reserved",
                why: "reserved bytes 60..64 must be zero; the file is damaged",
            });
        }
        let header = Header {
            version,
            file_len: u64_at(16),
            meta_offset: u64_at(24),
            meta_len: u64_at(32),
            data_offset: u64_at(40),
            data_len: u64_at(48),
            crc32: u32_at(CRC_FIELD.start),
        };
        if header.meta_offset != HEADER_LEN as u64 {
            return Err(FormatError::BadHeader {
                field: "meta_offset",
                why: "the metadata must follow the header directly",
            });
        }
        let meta_end = header.meta_offset.checked_add(header.meta_len);
        if meta_end.is_none_or(|end| end > header.data_offset) {
            return Err(FormatError::BadHeader {
                field: "meta_len",
                why: "the metadata runs past the start of the data section",
            });
        }
        if !header.data_offset.is_multiple_of(crate::DATA_ALIGN as u64) {
            return Err(FormatError::BadHeader {
                field: "data_offset",
                why: "the data section must start on a 64-byte boundary",
            });
        }
        if header.data_offset.checked_add(header.data_len) != Some(header.file_len) {
            return Err(FormatError::BadHeader {
                field: "data_len",
                why: "the data section must end the file",
            });
        }
        Ok(header)
    }
}
