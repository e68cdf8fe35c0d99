//! A valid file survives writing and parsing unchanged, and its bytes are pinned.
#![cfg(feature = "alloc")]

mod common;

use common::*;
use resq_format::write::{patch_data, write_file};
use resq_format::*;

#[test]
fn round_trip_preserves_metadata_and_data() {
    let (meta, data) = tiny_parts();
    let file = write_file(&meta, &Default::default(), &data).unwrap();
    let words = aligned(&file);
    let model = Model::parse(view(&words, file.len())).expect("tiny model is valid");

    assert_eq!(model.meta, meta);
    assert_eq!(model.header.version, FORMAT_VERSION);
    assert_eq!(model.header.file_len, file.len() as u64);
    assert_eq!(model.header.meta_offset, HEADER_LEN as u64);
    assert_eq!(model.header.data_offset % DATA_ALIGN as u64, 0);
    assert_eq!(model.data().len() as u64, model.header.data_len);
    assert_eq!(model.data().len(), data.len());

    let d = TinyData::new();
    let m = &model.meta;
    assert_eq!(model.i8s(m.input.lut), &d.lut[..]);
    let Op::Conv(conv1) = m.layers[L_CONV1].op else {
        panic!("layer 0 is a conv")
    };
    assert_eq!(model.i8s(conv1.weights), &d.conv1_weights[..]);
    assert_eq!(model.i32s(conv1.bias), &d.conv1_bias[..]);
    assert_eq!(model.i32s(conv1.requant.mults), &d.conv1_mults[..]);
    let Op::AvgPool(gap) = m.layers[L_AVGPOOL].op else {
        panic!("layer 2 is an avgpool")
    };
    assert_eq!(model.i32s(gap.mults), &d.avg_mults[..]);
    let Op::Conv(fc) = m.layers[L_FC].op else {
        panic!("layer 3 is a conv")
    };
    assert_eq!(model.i8s(fc.weights), &d.fc_weights[..]);
    assert_eq!(model.i32s(fc.bias), &d.fc_bias[..]);
    assert_eq!(model.i32s(fc.requant.mults), &d.fc_mults[..]);
    assert_eq!(model.i8s(m.self_test.input), &d.self_test_input[..]);
    assert_eq!(model.i8s(m.self_test.expected), &d.self_test_expected[..]);

    // i32 arrays are 16-byte aligned in the data section (SPEC.md).
    for r in [
        conv1.bias,
        conv1.requant.mults,
        gap.mults,
        fc.bias,
        fc.requant.mults,
    ] {
        assert_eq!(r.offset % 16, 0, "{r:?}");
    }

    assert_eq!(
        model.labels().collect::<Vec<_>>(),
        ["a", "b", "c", "d", "e"]
    );
    assert_eq!(model.classes(), 5);
    assert_eq!(model.input().shape, [1, 4, 4, 3]);
    assert_eq!(model.output().shape, [1, 1, 1, 5]);
    assert_eq!(model.tensor(T_POOL).name, "pool1_out");
    let weight_bytes = (d.conv1_weights.len() + d.fc_weights.len()) as u64
        + 4 * (d.conv1_bias.len()
            + d.conv1_mults.len()
            + d.avg_mults.len()
            + d.fc_bias.len()
            + d.fc_mults.len()) as u64;
    assert_eq!(model.weight_bytes(), weight_bytes);
}

#[test]
fn empty_labels_are_allowed() {
    let file = build(|m, _| m.labels = "");
    let words = aligned(&file);
    let model = Model::parse(view(&words, file.len())).unwrap();
    assert_eq!(model.labels().count(), 0);
    assert_eq!(model.classes(), 5);
}

#[test]
fn file_layout_follows_the_spec() {
    let (meta, _) = tiny_parts();
    let file = tiny_model();
    let mut meta_bytes = postcard::to_allocvec(&meta).unwrap();
    // Version 2: the (empty) int16 block follows the metadata.
    meta_bytes.extend(postcard::to_allocvec(&Precision::default()).unwrap());
    // Version 3: then the resize recipe, by default the shorter side to the 4×4 input: mode
    // tag 0 (shorter side) and [width, height] as two varints.
    meta_bytes.extend([0x00, 0x04, 0x04]);
    // The independent assembler in `common` lays the file out from SPEC.md alone.
    assert_eq!(file, assemble(&meta_bytes, data_section(&file)));
    assert_eq!(get_u64(&file, field::META_LEN), meta_bytes.len() as u64);
    let data_offset = get_u64(&file, field::DATA_OFFSET) as usize;
    assert!(file[HEADER_LEN + meta_bytes.len()..data_offset]
        .iter()
        .all(|&b| b == 0));
}

#[test]
fn patch_data_keeps_the_file_valid() {
    let (meta, data) = tiny_parts();
    let mut file = write_file(&meta, &Default::default(), &data).unwrap();
    let new_expected = [1i8, 2, 3, 4, 5].map(|v| v as u8);
    patch_data(&mut file, meta.self_test.expected, &new_expected);
    let words = aligned(&file);
    let model = Model::parse(view(&words, file.len())).unwrap();
    assert_eq!(model.i8s(meta.self_test.expected), &[1, 2, 3, 4, 5]);
}

#[test]
fn reseal_header_crc_seals_a_body_edited_in_place() {
    let mut file = tiny_model();
    let sealed = file[..HEADER_LEN].to_vec();
    reseal_header_crc(&mut file);
    assert_eq!(
        file[..HEADER_LEN],
        sealed,
        "an unchanged body keeps its header"
    );
    let last = file.len() - 1;
    file[last] ^= 0x40;
    assert!(Model::parse(view(&aligned(&file), file.len())).is_err());
    reseal_header_crc(&mut file);
    let crc = &file[field::CRC32..field::CRC32 + 4];
    assert_eq!(crc, body_crc(&file).to_le_bytes());
    assert!(Model::parse(view(&aligned(&file), file.len())).is_ok());
    assert_eq!(file[..56], sealed[..56], "only the CRC field changes");
    assert_eq!(file[60..HEADER_LEN], sealed[60..]);
    // Too short to have a header: left alone.
    let mut short = file[..HEADER_LEN - 1].to_vec();
    reseal_header_crc(&mut short);
    assert_eq!(short, file[..HEADER_LEN - 1]);
}

/// The exact header of `tiny_model()`.
///
/// If this test fails, the bytes `write_file` produces for the same model changed: that is a
/// change of the file format (header, metadata types or their encoding). Per SPEC.md
/// ("Versioning") it needs a `FORMAT_VERSION` bump and a reader that still accepts the old
/// version — do not just paste the new bytes here.
#[test]
fn golden_header() {
    let file = tiny_model();
    #[rustfmt::skip]
    const EXPECTED: [u8; 64] = [
        // magic \x89RESQ\r\n\x1a
        0x89, 0x52, 0x45, 0x53, 0x51, 0x0d, 0x0a, 0x1a,
        // version 3, header_len 64, flags 0
        0x03, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00,
        // file_len 1673
        0x89, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        // meta_offset 64
        0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        // meta_len 381 (376 of metadata + 2 for the empty Precision block: two empty lists
        // + 3 for the version 3 resize block: shorter side, 4, 4)
        0x7d, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        // data_offset 448 (64 + 381 rounded up to a multiple of 64)
        0xc0, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        // data_len 1225 (448 + 1225 = 1673)
        0xc9, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        // crc32 0xdc00dcd6 (the resize block's bytes were padding in version 2), reserved 0
        0xd6, 0xdc, 0x00, 0xdc, 0x00, 0x00, 0x00, 0x00,
    ];
    assert_eq!(file[..HEADER_LEN], EXPECTED, "{:02x?}", &file[..HEADER_LEN]);
}

/// The first 16 bytes of `tiny_model()`'s postcard metadata. See `golden_header` for what a
/// failure here means.
#[test]
fn golden_metadata_prefix() {
    let file = tiny_model();
    #[rustfmt::skip]
    const EXPECTED: [u8; 16] = [
        // name: varint length 4, "tiny"
        0x04, b't', b'i', b'n', b'y',
        // input.tensor 0 (varint), input.layout Nchw (variant 0), input.channels Rgb (variant 0)
        0x00, 0x00, 0x00,
        // input.mean[0] = 123.675f32, input.mean[1] = 116.28f32, little-endian
        0x9a, 0x59, 0xf7, 0x42, 0x5c, 0x8f, 0xe8, 0x42,
    ];
    assert_eq!(file[64..80], EXPECTED, "{:02x?}", &file[64..80]);
}
