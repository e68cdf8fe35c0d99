//! Damaged and hostile files: always a typed error, never a panic, never a silent accept.
#![cfg(feature = "alloc")]

mod common;

use std::panic::catch_unwind;

use common::*;
use proptest::prelude::*;
use resq_format::*;

/// Parses `file`, turning a panic into a test failure that names `what`.
fn parse_no_panic(file: &[u8], what: &str) -> Result<(), Box<FormatError>> {
    catch_unwind(|| parse(file)).unwrap_or_else(|_| panic!("Model::parse panicked on {what}"))
}

/// SPEC.md: "Every header field is checked and the CRC covers every other byte, so a flipped
/// bit anywhere in a file is refused."
#[test]
fn flipping_any_byte_is_rejected() {
    let good = tiny_model();
    parse(&good).expect("the unmodified model must parse");
    for mask in [0x01u8, 0x80] {
        for at in 0..good.len() {
            let mut file = good.clone();
            file[at] ^= mask;
            let what = format!("byte {at} ^ {mask:#04x}");
            assert!(parse_no_panic(&file, &what).is_err(), "{what} was accepted");
        }
    }
}

/// Every metadata byte set to a few awkward values, with the CRC fixed up so the damage reaches
/// the decoder and the validator. Any verdict is fine; a panic is not.
#[test]
fn metadata_byte_edits_never_panic() {
    let good = tiny_model();
    let meta_end = 64 + get_u64(&good, field::META_LEN) as usize;
    for at in 64..meta_end {
        for value in [0x00, 0x01, 0x02, 0x3f, 0x40, 0x7f, 0x80, 0xfe, 0xff] {
            let mut file = good.clone();
            file[at] = value;
            recrc(&mut file);
            let _ = parse_no_panic(&file, &format!("metadata byte {at} = {value:#04x}"));
        }
    }
}

fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Anything at all.
        proptest::collection::vec(any::<u8>(), 0..4096),
        // The real magic and a version, then anything.
        proptest::collection::vec(any::<u8>(), 0..4096).prop_map(|rest| {
            let mut file = MAGIC.to_vec();
            file.extend_from_slice(&[1, 0, 64, 0]);
            file.extend(rest);
            file
        }),
        // A header that passes every framing check (magic, version, lengths, CRC) around
        // random metadata and data, so the garbage reaches the metadata decoder.
        (
            proptest::collection::vec(any::<u8>(), 0..1024),
            proptest::collection::vec(any::<u8>(), 0..2048),
        )
            .prop_map(|(meta, data)| assemble(&meta, &data)),
    ]
}

/// The tiny model with random bytes overwritten and the CRC fixed up.
fn mutated_tiny_model() -> impl Strategy<Value = Vec<u8>> {
    let len = tiny_model().len();
    proptest::collection::vec((64..len, any::<u8>()), 1..8).prop_map(|edits| {
        let mut file = tiny_model();
        for (at, value) in edits {
            file[at] = value;
        }
        recrc(&mut file);
        file
    })
}

proptest! {
    #[test]
    fn random_garbage_never_panics(file in garbage()) {
        // Reaching the end without a panic is the property; garbage is never a valid model.
        prop_assert!(parse(&file).is_err());
    }

    #[test]
    fn random_edits_never_panic(file in mutated_tiny_model()) {
        let _ = parse(&file);
    }
}
