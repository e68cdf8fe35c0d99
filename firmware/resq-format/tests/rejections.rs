//! One test per way a file is refused, each asserting the exact `FormatError` variant.
//!
//! Metadata-content rejections mutate the tiny model's `Metadata` and write it with
//! `write_file`, so the header and CRC are valid and the check under test is the one that fires.
#![cfg(feature = "alloc")]

mod common;

use common::*;
use resq_format::*;

// ---------------------------------------------------------------------------------------------
// Header and framing.
// ---------------------------------------------------------------------------------------------

#[test]
fn tiny_model_is_accepted() {
    parse(&tiny_model()).expect("the unmodified model must parse");
}

#[test]
fn rejects_bad_magic() {
    let good = tiny_model();
    for i in 0..MAGIC.len() {
        let mut file = good.clone();
        file[i] ^= 0x20;
        assert!(
            matches!(parse_err(&file), FormatError::BadMagic),
            "byte {i}"
        );
    }
    // A text-mode transfer turning "\r\n" into "\n" (PNG's reason for this magic).
    let mut file = good.clone();
    file.remove(5);
    assert!(matches!(parse_err(&file), FormatError::BadMagic));
    // Short files that are clearly not `.resq` files.
    assert!(matches!(parse_err(b"not a model"), FormatError::BadMagic));
    assert!(matches!(parse_err(&[0u8; 64]), FormatError::BadMagic));
}

#[test]
fn rejects_future_version() {
    for version in [FORMAT_VERSION + 1, 0x0100, u16::MAX] {
        let mut file = tiny_model();
        set_u16(&mut file, field::VERSION, version);
        let e = parse_err(&file);
        assert!(
            matches!(
                e,
                FormatError::FutureVersion { found, supported: FORMAT_VERSION } if found == version
            ),
            "{e:?}"
        );
    }
}

#[test]
fn rejects_version_zero() {
    let mut file = tiny_model();
    set_u16(&mut file, field::VERSION, 0);
    let e = parse_err(&file);
    assert!(
        matches!(
            e,
            FormatError::BadHeader {
                field: "version",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn rejects_bad_header_len() {
    let mut file = tiny_model();
    set_u16(&mut file, field::HEADER_LEN, 128);
    let e = parse_err(&file);
    assert!(
        matches!(
            e,
            FormatError::BadHeader {
                field: "header_len",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn rejects_truncated_file() {
    let good = tiny_model();
    let len = good.len() as u64;
    let data_offset = get_u64(&good, field::DATA_OFFSET) as usize;
    // Inside the header (but past the magic): the header itself is incomplete.
    for cut in [8, 9, 30, 63] {
        let e = parse_err(&good[..cut]);
        assert!(
            matches!(e, FormatError::Truncated { expected: 64, actual } if actual == cut as u64),
            "cut at {cut}: {e:?}"
        );
    }
    // Fewer bytes than even the magic.
    for cut in [0, 1, 7] {
        let e = parse_err(&good[..cut]);
        assert!(
            matches!(e, FormatError::Truncated { .. }),
            "cut at {cut}: {e:?}"
        );
    }
    // After the header: inside the metadata, the padding, the data, and one byte short.
    for cut in [
        64,
        100,
        data_offset - 1,
        data_offset,
        data_offset + 100,
        good.len() - 1,
    ] {
        let e = parse_err(&good[..cut]);
        assert!(
            matches!(e, FormatError::Truncated { expected, actual } if expected == len && actual == cut as u64),
            "cut at {cut}: {e:?}"
        );
    }
}

#[test]
fn rejects_trailing_bytes() {
    let len = tiny_model().len() as u64;
    for extra in [1, 3, 64] {
        let mut file = tiny_model();
        file.extend(std::iter::repeat_n(0u8, extra));
        let e = parse_err(&file);
        assert!(
            matches!(e, FormatError::TrailingBytes { expected, actual } if expected == len && actual == len + extra as u64),
            "{e:?}"
        );
    }
}

#[test]
fn rejects_bad_crc() {
    let good = tiny_model();
    let stored = u32::from_le_bytes(good[field::CRC32..field::CRC32 + 4].try_into().unwrap());
    let mut file = good.clone();
    let last = file.len() - 1;
    file[last] ^= 0x10; // A byte of the self-test vector, at the very end of the data.
    let e = parse_err(&file);
    assert!(
        matches!(e, FormatError::BadCrc { stored: s, computed } if s == stored && computed != stored),
        "{e:?}"
    );
    // A wrong stored CRC over an intact body is refused the same way.
    let mut file = good;
    set_u32(&mut file, field::CRC32, stored ^ 1);
    assert!(matches!(parse_err(&file), FormatError::BadCrc { .. }));
}

#[test]
fn rejects_nonzero_flags() {
    for byte in field::FLAGS..field::FLAGS + 4 {
        let mut file = tiny_model();
        file[byte] = 0x01;
        let e = parse_err(&file);
        assert!(
            matches!(e, FormatError::BadHeader { field: "flags", .. }),
            "byte {byte}: {e:?}"
        );
    }
}

#[test]
fn rejects_nonzero_reserved() {
    for byte in field::RESERVED..field::RESERVED + 4 {
        let mut file = tiny_model();
        file[byte] = 0x80;
        let e = parse_err(&file);
        assert!(
            matches!(
                e,
                FormatError::BadHeader {
                    field: "reserved",
                    ..
                }
            ),
            "byte {byte}: {e:?}"
        );
    }
}

#[test]
fn rejects_bad_meta_offset() {
    let mut file = tiny_model();
    set_u64(&mut file, field::META_OFFSET, 128);
    let e = parse_err(&file);
    assert!(
        matches!(
            e,
            FormatError::BadHeader {
                field: "meta_offset",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn rejects_meta_len_past_data_offset() {
    let mut file = tiny_model();
    let data_offset = get_u64(&file, field::DATA_OFFSET);
    set_u64(&mut file, field::META_LEN, data_offset - 64 + 1);
    let e = parse_err(&file);
    assert!(
        matches!(
            e,
            FormatError::BadHeader {
                field: "meta_len",
                ..
            }
        ),
        "{e:?}"
    );
    // And one that would overflow `meta_offset + meta_len`.
    set_u64(&mut file, field::META_LEN, u64::MAX);
    let e = parse_err(&file);
    assert!(
        matches!(
            e,
            FormatError::BadHeader {
                field: "meta_len",
                ..
            }
        ),
        "{e:?}"
    );
}

/// `meta_len` is the exact postcard length: pointing it into the zero padding must not pass
/// (the header is outside the CRC, so this is what a flipped `meta_len` bit looks like).
#[test]
fn rejects_meta_len_into_padding() {
    let mut file = tiny_model();
    let meta_len = get_u64(&file, field::META_LEN);
    let data_offset = get_u64(&file, field::DATA_OFFSET);
    assert!(64 + meta_len < data_offset, "the tiny model has padding");
    set_u64(&mut file, field::META_LEN, meta_len + 1);
    let e = parse_err(&file);
    assert!(matches!(e, FormatError::BadMetadata(_)), "{e:?}");
}

#[test]
fn rejects_nonzero_padding() {
    let mut file = tiny_model();
    let data_offset = get_u64(&file, field::DATA_OFFSET) as usize;
    file[data_offset - 1] = 0xFF;
    recrc(&mut file);
    let e = parse_err(&file);
    assert!(matches!(e, FormatError::BadMetadata(_)), "{e:?}");
}

#[test]
fn rejects_misaligned_data_offset() {
    let mut file = tiny_model();
    let data_offset = get_u64(&file, field::DATA_OFFSET);
    let data_len = get_u64(&file, field::DATA_LEN);
    // Still consistent (data_offset + data_len = file_len, past the metadata), just not on a
    // 64-byte boundary.
    set_u64(&mut file, field::DATA_OFFSET, data_offset + 4);
    set_u64(&mut file, field::DATA_LEN, data_len - 4);
    let e = parse_err(&file);
    assert!(
        matches!(
            e,
            FormatError::BadHeader {
                field: "data_offset",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn rejects_data_len_not_ending_the_file() {
    let mut file = tiny_model();
    let data_len = get_u64(&file, field::DATA_LEN);
    set_u64(&mut file, field::DATA_LEN, data_len - 1);
    let e = parse_err(&file);
    assert!(
        matches!(
            e,
            FormatError::BadHeader {
                field: "data_len",
                ..
            }
        ),
        "{e:?}"
    );
    set_u64(&mut file, field::DATA_LEN, u64::MAX);
    assert!(matches!(
        parse_err(&file),
        FormatError::BadHeader {
            field: "data_len",
            ..
        }
    ));
}

#[test]
fn rejects_misaligned_buffer() {
    let file = tiny_model();
    let mut shifted = vec![0u8; file.len() + 1];
    shifted[1..].copy_from_slice(&file);
    let words = aligned(&shifted);
    let bytes = &view(&words, shifted.len())[1..];
    assert_eq!(bytes, &file[..]);
    let e = Model::parse(bytes).unwrap_err();
    assert!(matches!(e, FormatError::Misaligned), "{e:?}");
}

// ---------------------------------------------------------------------------------------------
// Metadata decoding.
// ---------------------------------------------------------------------------------------------

/// The tiny model with its layer list replaced by `layers` (any length: postcard encodes a
/// struct exactly as the tuple of its fields, and a `heapless::Vec` exactly as a `Vec`),
/// followed by the version 2 int16 block (empty) and the version 3 resize block.
fn with_layers(layers: &[Layer<'static>]) -> Vec<u8> {
    let (m, _) = tiny_parts();
    let meta_bytes = postcard::to_allocvec(&(
        m.name,
        m.input,
        m.output,
        &m.tensors,
        layers,
        m.labels,
        m.provenance,
        m.self_test,
        Precision::default(),
        Resize::shorter_side(4, 4),
    ))
    .unwrap();
    assemble(&meta_bytes, data_section(&tiny_model()))
}

#[test]
fn rejects_too_many_layers() {
    let (m, _) = tiny_parts();
    // Sanity: the tuple encoding reproduces the real file.
    assert_eq!(with_layers(&m.layers), tiny_model());

    let layer = m.layers[L_CONV1];
    // Exactly MAX_LAYERS decodes (then fails graph validation: every copy writes tensor 1).
    let e = parse_err(&with_layers(&vec![layer; MAX_LAYERS]));
    assert!(matches!(e, FormatError::BadGraph { layer: 1, .. }), "{e:?}");
    // One more is refused while decoding.
    let e = parse_err(&with_layers(&vec![layer; MAX_LAYERS + 1]));
    assert!(matches!(e, FormatError::BadMetadata(_)), "{e:?}");
}

#[test]
fn rejects_huge_list_length() {
    // A layer count varint far beyond the capacity with nothing behind it.
    let (m, _) = tiny_parts();
    let mut meta_bytes = postcard::to_allocvec(&(m.name, m.input, m.output, &m.tensors)).unwrap();
    meta_bytes.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0x0F]); // u32::MAX
    let e = parse_err(&assemble(&meta_bytes, data_section(&tiny_model())));
    assert!(matches!(e, FormatError::BadMetadata(_)), "{e:?}");
}

#[test]
fn rejects_too_many_tensors() {
    let (m, _) = tiny_parts();
    let mut tensors = m.tensors.to_vec();
    tensors.resize(MAX_TENSORS + 1, m.tensors[0]);
    let meta_bytes = postcard::to_allocvec(&(
        m.name,
        m.input,
        m.output,
        tensors,
        &m.layers,
        m.labels,
        m.provenance,
        m.self_test,
    ))
    .unwrap();
    let e = parse_err(&assemble(&meta_bytes, data_section(&tiny_model())));
    assert!(matches!(e, FormatError::BadMetadata(_)), "{e:?}");
}

#[test]
fn rejects_unknown_op() {
    // The first layer's op tag is the byte after its name; 6 is one past `Subsample`.
    let (m, _) = tiny_parts();
    let before = postcard::to_allocvec(&(m.name, m.input, m.output, &m.tensors)).unwrap();
    let name = LAYER_NAMES[L_CONV1];
    let tag_at = 64 + before.len() + 1 + 1 + name.len(); // list length, name length, name
    let mut file = tiny_model();
    assert_eq!(file[tag_at], 0, "Conv is variant 0");
    file[tag_at] = 6;
    recrc(&mut file);
    let e = parse_err(&file);
    assert!(matches!(e, FormatError::BadMetadata(_)), "{e:?}");
}

// ---------------------------------------------------------------------------------------------
// Graph validation.
// ---------------------------------------------------------------------------------------------

#[test]
fn rejects_tensor_index_out_of_range() {
    let e = parse_err(&build(|m, _| conv(m, L_CONV1).input = 99));
    assert!(
        matches!(
            e,
            FormatError::TensorIndexOutOfRange {
                layer: L_CONV1,
                index: 99,
                count: 5,
                ..
            }
        ),
        "{e:?}"
    );
    // Also the graph's own input / output indices.
    let e = parse_err(&build(|m, _| m.output.tensor = 5));
    assert!(
        matches!(e, FormatError::TensorIndexOutOfRange { index: 5, .. }),
        "{e:?}"
    );
}

#[test]
fn rejects_shape_mismatch() {
    let e = parse_err(&build(|m, _| {
        m.tensors[T_CONV1 as usize].shape = [1, 3, 4, 8]
    }));
    assert!(
        matches!(
            e,
            FormatError::ShapeMismatch {
                layer: L_CONV1,
                what: "conv output",
                expected: [1, 4, 4, 8],
                found: [1, 3, 4, 8],
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn rejects_weights_length_mismatch() {
    let e = parse_err(&build(|m, _| conv(m, L_CONV1).weights.len -= 1));
    assert!(
        matches!(
            e,
            FormatError::ShapeMismatch {
                layer: L_CONV1,
                what: "weights",
                expected: [216, 0, 0, 0],
                found: [215, 0, 0, 0],
                ..
            }
        ),
        "{e:?}"
    );
    // Too few multipliers for the fully-connected layer's 5 outputs.
    let e = parse_err(&build(|m, d| {
        conv(m, L_FC).requant.mults = d.push_i32(&[1; 4])
    }));
    assert!(
        matches!(
            e,
            FormatError::ShapeMismatch {
                layer: L_FC,
                what: "multipliers",
                ..
            }
        ),
        "{e:?}"
    );
    // AvgPool needs a multiplier for every count 1..=kh·kw.
    let e = parse_err(&build(|m, d| {
        avgpool(m, L_AVGPOOL).mults = d.push_i32(&[1; 3])
    }));
    assert!(
        matches!(
            e,
            FormatError::ShapeMismatch {
                layer: L_AVGPOOL,
                what: "multipliers",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn rejects_data_ref_out_of_bounds() {
    let data_len = data_section(&tiny_model()).len() as u32;
    let e = parse_err(&build(|m, _| conv(m, L_FC).weights.offset = data_len - 39));
    assert!(
        matches!(
            e,
            FormatError::BadDataRef {
                layer: L_FC,
                field: "weights",
                len: 40,
                ..
            }
        ),
        "{e:?}"
    );
    // Offsets near u32::MAX must not wrap around.
    let e = parse_err(&build(|m, _| m.input.lut.offset = u32::MAX));
    assert!(
        matches!(
            e,
            FormatError::BadDataRef {
                field: "input lut",
                ..
            }
        ),
        "{e:?}"
    );
}

/// Data references must not share bytes: `Engine::from_bytes_in_place` packs a layer's weights
/// over the file's, which would change any other array on the same bytes
/// (fuzz/regressions/resq_model/in-place-packing-bias-aliases-next-weights.resq).
#[test]
fn rejects_overlapping_data_refs() {
    // Two layers on the same bytes, as a deduplicating writer would do: fc's 5 biases are
    // conv1's first 5 (valid biases for fc, so only the overlap is wrong).
    let e = parse_err(&build(|m, _| {
        conv(m, L_FC).bias.offset = conv(m, L_CONV1).bias.offset;
    }));
    assert!(
        matches!(
            &e,
            FormatError::OverlappingData {
                layer: L_CONV1,
                field: "bias",
                other_layer: L_FC,
                other_field: "bias",
                ..
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains(LAYER_NAMES[L_CONV1]) && msg.contains(LAYER_NAMES[L_FC]),
        "names both layers: {msg}"
    );

    // A partial overlap: fc's weights start 8 bytes before the end of conv1's.
    let e = parse_err(&build(|m, _| {
        let w = conv(m, L_CONV1).weights;
        conv(m, L_FC).weights.offset = w.offset + w.len - 8;
    }));
    assert!(
        matches!(
            e,
            FormatError::OverlappingData {
                layer: L_CONV1,
                field: "weights",
                other_layer: L_FC,
                other_field: "weights",
                ..
            }
        ),
        "{e:?}"
    );

    // Within one layer: conv1's biases on its multipliers (valid as biases too).
    let e = parse_err(&build(|m, _| {
        let c = conv(m, L_CONV1);
        c.bias.offset = c.requant.mults.offset;
    }));
    assert!(
        matches!(
            e,
            FormatError::OverlappingData {
                layer: L_CONV1,
                field: "bias",
                other_layer: L_CONV1,
                other_field: "multipliers",
                ..
            }
        ),
        "{e:?}"
    );

    // The graph's own arrays (layer = layer count): the self-test output inside the lookup table.
    let layers = LAYER_NAMES.len();
    let e = parse_err(&build(|m, _| {
        m.self_test.expected.offset = m.input.lut.offset + 100;
    }));
    assert!(
        matches!(
            &e,
            FormatError::OverlappingData {
                layer,
                field: "input lut",
                other_layer,
                other_field: "self-test output",
                ..
            } if *layer == layers && *other_layer == layers
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("<graph>"), "{e}");
}

/// Touching ranges share no byte, and disjoint ranges in any order are fine (the reader does not
/// require the writer's layout order).
#[test]
fn accepts_adjacent_and_reordered_data_refs() {
    let (meta, _) = tiny_parts();
    let lut = meta.input.lut;
    let Op::Conv(c) = meta.layers[L_CONV1].op else {
        panic!("conv1 is a conv")
    };
    assert_eq!(
        lut.offset + lut.len,
        c.weights.offset,
        "adjacent in the tiny model"
    );
    parse(&tiny_model()).expect("adjacent ranges are disjoint");
    // The lookup table moved after the self-test vectors: out of layout order, still disjoint.
    parse(&build(|m, d| m.input.lut = d.push_i8(&TinyData::new().lut)))
        .expect("disjoint ranges out of layout order");
}

#[test]
fn rejects_misaligned_i32_ref() {
    let e = parse_err(&build(|m, _| conv(m, L_CONV1).bias.offset += 1));
    assert!(
        matches!(
            e,
            FormatError::BadDataRef {
                layer: L_CONV1,
                field: "bias",
                ..
            }
        ),
        "{e:?}"
    );
    let e = parse_err(&build(|m, _| avgpool(m, L_AVGPOOL).mults.offset += 2));
    assert!(
        matches!(
            e,
            FormatError::BadDataRef {
                layer: L_AVGPOOL,
                field: "multipliers",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn rejects_read_before_write() {
    // The max pool reads the average pool's output, which is only written after it.
    let e = parse_err(&build(|m, _| maxpool(m, L_MAXPOOL).input = T_GAP));
    assert!(
        matches!(e, FormatError::BadGraph { layer: L_MAXPOOL, why, .. } if why.contains("reads")),
        "{e:?}"
    );
    // Running the two pools in the wrong order.
    let e = parse_err(&build(|m, _| m.layers.swap(L_MAXPOOL, L_AVGPOOL)));
    assert!(
        matches!(e, FormatError::BadGraph { layer: L_MAXPOOL, why, .. } if why.contains("reads")),
        "{e:?}"
    );
}

#[test]
fn rejects_double_write() {
    let e = parse_err(&build(|m, _| avgpool(m, L_AVGPOOL).window.output = T_POOL));
    assert!(
        matches!(e, FormatError::BadGraph { layer: L_AVGPOOL, why, .. } if why.contains("already written")),
        "{e:?}"
    );
    // Writing the graph input counts too.
    let e = parse_err(&build(|m, _| conv(m, L_CONV1).output = T_INPUT));
    assert!(
        matches!(e, FormatError::BadGraph { layer: L_CONV1, .. }),
        "{e:?}"
    );
}

#[test]
fn rejects_bad_shift() {
    for shift in [0, 63, u8::MAX] {
        let e = parse_err(&build(|m, _| conv(m, L_CONV1).requant.shift = shift));
        assert!(
            matches!(
                e,
                FormatError::OutOfRange { layer: L_CONV1, field: "shift", value, .. } if value == shift as i64
            ),
            "shift {shift}: {e:?}"
        );
        let e = parse_err(&build(|m, _| avgpool(m, L_AVGPOOL).shift = shift));
        assert!(
            matches!(
                e,
                FormatError::OutOfRange {
                    layer: L_AVGPOOL,
                    field: "shift",
                    ..
                }
            ),
            "shift {shift}: {e:?}"
        );
    }
    // The limits themselves are fine.
    for shift in [1, 62] {
        parse(&build(|m, _| conv(m, L_CONV1).requant.shift = shift)).unwrap();
    }
}

#[test]
fn rejects_label_count_mismatch() {
    for labels in ["a\nb\nc\nd", "a\nb\nc\nd\ne\nf", "abcde"] {
        let e = parse_err(&build(|m, _| m.labels = labels));
        assert!(
            matches!(
                e,
                FormatError::ShapeMismatch {
                    what: "label count vs classes",
                    expected: [5, 0, 0, 0],
                    ..
                }
            ),
            "{labels:?}: {e:?}"
        );
    }
}

#[test]
fn rejects_self_test_length_mismatch() {
    let e = parse_err(&build(|m, _| m.self_test.input.len = 47));
    assert!(
        matches!(
            e,
            FormatError::ShapeMismatch {
                what: "self-test input",
                expected: [48, 0, 0, 0],
                found: [47, 0, 0, 0],
                ..
            }
        ),
        "{e:?}"
    );
    let e = parse_err(&build(|m, d| m.self_test.expected = d.push_i8(&[0; 6])));
    assert!(
        matches!(
            e,
            FormatError::ShapeMismatch {
                what: "self-test output",
                expected: [5, 0, 0, 0],
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn rejects_bias_that_could_overflow() {
    // |bias| ≤ 2³¹ − 1 − 255·127·kh·kw·cin/groups (SPEC.md); conv1 has kh·kw·cin = 27.
    let budget = i32::MAX - 255 * 127 * 27;
    let with_bias = |b: i32| {
        build(move |m, d| {
            let mut bias = TinyData::new().conv1_bias;
            bias[3] = b;
            conv(m, L_CONV1).bias = d.push_i32(&bias);
        })
    };
    parse(&with_bias(budget)).expect("the bound itself is allowed");
    parse(&with_bias(-budget)).expect("the bound itself is allowed");
    for b in [budget + 1, -budget - 1, i32::MAX, i32::MIN] {
        let e = parse_err(&with_bias(b));
        assert!(
            matches!(
                e,
                FormatError::OutOfRange { layer: L_CONV1, field: "bias", value, .. }
                    if value == (b as i64).abs()
            ),
            "bias {b}: {e:?}"
        );
    }
}

#[test]
fn rejects_negative_multiplier() {
    let e = parse_err(&build(|m, d| {
        conv(m, L_FC).requant.mults = d.push_i32(&[1, 1, -1, 1, 1])
    }));
    assert!(
        matches!(
            e,
            FormatError::OutOfRange {
                layer: L_FC,
                field: "multiplier",
                value: -1,
                ..
            }
        ),
        "{e:?}"
    );
    let e = parse_err(&build(|m, d| {
        avgpool(m, L_AVGPOOL).mults = d.push_i32(&[1, 1, 1, i32::MIN])
    }));
    assert!(
        matches!(
            e,
            FormatError::OutOfRange {
                layer: L_AVGPOOL,
                field: "multiplier",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn rejects_zero_scale_tensor() {
    for scale in [0.0, -0.0, -1.0, f32::NAN, f32::INFINITY] {
        let e = parse_err(&build(|m, _| m.tensors[T_GAP as usize].scale = scale));
        assert!(
            matches!(
                e,
                FormatError::OutOfRange { layer, field: "tensor scale", .. } if layer == T_GAP as usize
            ),
            "scale {scale}: {e:?}"
        );
    }
}

#[test]
fn rejects_oversized_tensor() {
    for shape in [
        [2, 4, 4, 3],
        [1, 0, 4, 3],
        [1, MAX_DIM + 1, 1, 1],
        // Each dim is allowed, their product (2⁴⁸) is not: it must not wrap around.
        [1, MAX_DIM, MAX_DIM, MAX_DIM],
        [1, MAX_DIM, MAX_DIM, 2],
    ] {
        let e = parse_err(&build(|m, _| m.tensors[T_GAP as usize].shape = shape));
        assert!(
            matches!(e, FormatError::OutOfRange { layer, .. } if layer == T_GAP as usize),
            "{shape:?}: {e:?}"
        );
    }
}

#[test]
fn rejects_kernel_larger_than_input() {
    // 7×7 on the 4×4 input padded to 6×6.
    let e = parse_err(&build(|m, _| conv(m, L_CONV1).kernel = [7, 7]));
    assert!(
        matches!(e, FormatError::BadGraph { layer: L_CONV1, why, .. } if why.contains("window")),
        "{e:?}"
    );
    // A 3×3 pool over the 2×2 map.
    let e = parse_err(&build(|m, _| avgpool(m, L_AVGPOOL).window.kernel = [3, 3]));
    assert!(
        matches!(
            e,
            FormatError::BadGraph {
                layer: L_AVGPOOL,
                ..
            }
        ),
        "{e:?}"
    );
    // Beyond MAX_KERNEL is refused as a parameter, before any shape arithmetic.
    let e = parse_err(&build(|m, _| conv(m, L_FC).kernel = [MAX_KERNEL + 1, 1]));
    assert!(
        matches!(
            e,
            FormatError::OutOfRange {
                layer: L_FC,
                field: "kernel",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn rejects_maxpool_changing_quantization() {
    let e = parse_err(&build(|m, _| m.tensors[T_POOL as usize].zero_point = 0));
    assert!(
        matches!(
            e,
            FormatError::BadGraph {
                layer: L_MAXPOOL,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn rejects_output_never_written() {
    // Drop the fully-connected layer: nothing writes the logits.
    let e = parse_err(&build(|m, _| {
        m.layers.pop();
    }));
    assert!(
        matches!(e, FormatError::BadGraph { layer: 3, why, .. } if why.contains("output")),
        "{e:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The resize block (version 3). The tiny model's input is 4×4.
// ---------------------------------------------------------------------------------------------

#[test]
fn rejects_resize_smaller_than_the_input() {
    for size in [[3, 4], [4, 3], [1, 1]] {
        let e = parse_err(&build_with_resize(Resize {
            mode: ResizeMode::Shorter,
            size,
        }));
        assert!(
            matches!(e, FormatError::BadResize { size: s, input: [4, 4], why } if s == size && why.contains("smaller")),
            "{e:?}"
        );
    }
}

#[test]
fn rejects_zero_resize() {
    for size in [[0, 4], [4, 0], [0, 0]] {
        let e = parse_err(&build_with_resize(Resize {
            mode: ResizeMode::Squash,
            size,
        }));
        assert!(
            matches!(e, FormatError::BadResize { why, .. } if why.contains("zero")),
            "{e:?}"
        );
    }
}

#[test]
fn rejects_resize_over_the_frame_limit() {
    for size in [
        [MAX_IMAGE_DIM + 1, 4],
        [4, MAX_IMAGE_DIM + 1],
        [u32::MAX, u32::MAX],
    ] {
        let e = parse_err(&build_with_resize(Resize {
            mode: ResizeMode::Shorter,
            size,
        }));
        assert!(
            matches!(e, FormatError::BadResize { why, .. } if why.contains("65535")),
            "{e:?}"
        );
    }
    // The limit itself is accepted.
    parse(&build_with_resize(Resize {
        mode: ResizeMode::Shorter,
        size: [MAX_IMAGE_DIM, 4],
    }))
    .expect("65535 is the largest side");
}

#[test]
fn rejects_unknown_resize_mode() {
    let file = with_resize_block(&postcard::to_allocvec(&(2u32, [4u32, 4u32])).unwrap());
    let e = parse_err(&file);
    assert!(
        matches!(e, FormatError::UnknownResizeMode { mode: 2 }),
        "{e:?}"
    );
    assert!(e.to_string().contains("update resq-fw"), "{e}");
}

#[test]
fn rejects_version_3_file_without_the_resize_block() {
    let e = parse_err(&with_resize_block(&[]));
    assert!(
        matches!(e, FormatError::BadMetadata("it ends early")),
        "{e:?}"
    );
}

#[test]
fn rejects_bytes_after_the_resize_block() {
    let mut block = postcard::to_allocvec(&Resize::shorter_side(4, 4)).unwrap();
    block.push(0);
    let e = parse_err(&with_resize_block(&block));
    assert!(
        matches!(
            e,
            FormatError::BadMetadata("unexpected bytes after the metadata")
        ),
        "{e:?}"
    );
}

/// The tiny model with `block` in place of its resize block.
fn with_resize_block(block: &[u8]) -> Vec<u8> {
    let (m, _) = tiny_parts();
    let mut meta_bytes = postcard::to_allocvec(&m).unwrap();
    meta_bytes.extend(postcard::to_allocvec(&Precision::default()).unwrap());
    meta_bytes.extend_from_slice(block);
    assemble(&meta_bytes, data_section(&tiny_model()))
}

// ---------------------------------------------------------------------------------------------
// Messages.
// ---------------------------------------------------------------------------------------------

#[test]
fn every_error_has_a_message() {
    let mut truncated = tiny_model();
    truncated.pop();
    let mut future = tiny_model();
    set_u16(&mut future, field::VERSION, 9);
    let errors = [
        parse_err(b"GIF89a.........."),
        parse_err(&future),
        parse_err(&truncated),
        parse_err(&[tiny_model(), vec![0]].concat()),
        parse_err(&build(|m, _| m.labels = "x")),
        parse_err(&build(|m, _| conv(m, L_CONV1).input = 99)),
        parse_err(&build(|m, _| conv(m, L_CONV1).requant.shift = 0)),
        parse_err(&build(|m, _| conv(m, L_CONV1).bias.offset += 1)),
        parse_err(&build(|m, _| m.layers.swap(L_MAXPOOL, L_AVGPOOL))),
        parse_err(&with_layers(&vec![
            tiny_parts().0.layers[0];
            MAX_LAYERS + 1
        ])),
        parse_err(&build_with_resize(Resize::shorter_side(2, 4))),
        parse_err(&with_resize_block(&[9, 4, 4])),
    ];
    for e in errors {
        let text = e.to_string();
        assert!(!text.trim().is_empty(), "{e:?}");
    }
    let e = parse_err(&future);
    assert!(e.to_string().contains("version 9"), "{e}");
}

#[test]
fn layer_errors_name_the_layer() {
    let e = parse_err(&build(|m, _| conv(m, L_CONV1).input = 99));
    assert!(matches!(e, FormatError::TensorIndexOutOfRange { .. }));
    let text = e.to_string();
    assert!(text.contains(LAYER_NAMES[L_CONV1]), "{text}");
    assert!(text.contains("99"), "{text}");

    let e = parse_err(&build(|m, _| avgpool(m, L_AVGPOOL).window.output = T_POOL));
    assert!(matches!(e, FormatError::BadGraph { .. }));
    assert!(e.to_string().contains(LAYER_NAMES[L_AVGPOOL]), "{e}");

    let e = parse_err(&build(|m, _| conv(m, L_FC).weights.len = 1));
    assert!(matches!(e, FormatError::ShapeMismatch { .. }));
    assert!(e.to_string().contains(LAYER_NAMES[L_FC]), "{e}");

    let e = parse_err(&build(|m, _| conv(m, L_FC).requant.shift = 63));
    assert!(matches!(e, FormatError::OutOfRange { .. }));
    assert!(e.to_string().contains(LAYER_NAMES[L_FC]), "{e}");
}

#[test]
fn long_layer_names_are_cut_in_messages() {
    // 100 two-byte characters: the 64-byte name buffer must cut on a char boundary.
    let long: &'static str = "é".repeat(100).leak();
    let e = parse_err(&build(|m, _| {
        m.layers[L_CONV1].name = long;
        conv(m, L_CONV1).input = 99;
    }));
    let FormatError::TensorIndexOutOfRange { name, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(name.as_str(), "é".repeat(32));
}
