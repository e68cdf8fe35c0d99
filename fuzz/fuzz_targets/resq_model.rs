//! `.resq` loader + engine: a file the loader accepts must build an engine and run on every
//! kernel tier this CPU has without panicking, and every tier must give the reference kernels'
//! output bytes (the engine's documented promise).
//!
//! The header CRC is re-sealed before parsing (when the input starts with the magic), so
//! mutations reach the metadata and data validation instead of stopping at `BadCrc`.
//!
//! The body is `resq_fuzz::resq_model::run`, shared with the regression tests.
//!
//! A custom mutator spends three mutations in four on the metadata block alone (the postcard
//! bytes between the header and the data section, a few kB of a 50–90 kB file): it mutates
//! that block with libFuzzer's own mutator and rebuilds the header's lengths and the padding
//! around it, so layer shapes, tensor indices and data references change far more often than
//! weight bytes do. The fourth mutation is libFuzzer's, on the whole file (header included).
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target, fuzzer_mutate};

fuzz_target!(|data: &[u8]| resq_fuzz::resq_model::run(data));

const HEADER_LEN: usize = 64;
const ALIGN: usize = 64;

fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

/// Mutates the metadata block of a well-formed file; `None` when the file is not one.
fn mutate_meta(data: &mut [u8], size: usize, max_size: usize, seed: u32) -> Option<usize> {
    if size < HEADER_LEN || data[..8] != resq_format::MAGIC || seed % 4 == 0 {
        return None;
    }
    let meta_len = usize::try_from(u64_at(data, 32)).ok()?;
    let data_offset = usize::try_from(u64_at(data, 40)).ok()?;
    if HEADER_LEN.checked_add(meta_len)? > data_offset || data_offset > size {
        return None;
    }
    let mut meta = data[HEADER_LEN..HEADER_LEN + meta_len].to_vec();
    let cap = meta_len * 2 + 64;
    meta.resize(cap, 0);
    let n = fuzzer_mutate(&mut meta, meta_len, cap);
    meta.truncate(n);
    let body = data[data_offset..size].to_vec();
    let new_offset = (HEADER_LEN + n).div_ceil(ALIGN) * ALIGN;
    let new_size = new_offset + body.len();
    if new_size > max_size {
        return None;
    }
    data[32..40].copy_from_slice(&(n as u64).to_le_bytes());
    data[40..48].copy_from_slice(&(new_offset as u64).to_le_bytes());
    data[16..24].copy_from_slice(&(new_size as u64).to_le_bytes());
    data[48..56].copy_from_slice(&(body.len() as u64).to_le_bytes());
    data[HEADER_LEN..HEADER_LEN + n].copy_from_slice(&meta);
    data[HEADER_LEN + n..new_offset].fill(0);
    data[new_offset..new_size].copy_from_slice(&body);
    Some(new_size)
}

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    mutate_meta(data, size, max_size, seed).unwrap_or_else(|| fuzzer_mutate(data, size, max_size))
});
