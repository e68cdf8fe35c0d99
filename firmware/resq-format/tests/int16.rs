//! The int16 block of format version 2: what it accepts, each way it is refused (by name), and
//! that version 1 files (no block) still read as all-int8.
#![cfg(feature = "alloc")]

mod common;

use common::*;
use resq_format::*;

const RELU16: [i16; 2] = [0, i16::MAX];

fn int16(tensor: u16) -> Int16Tensor {
    Int16Tensor {
        tensor,
        clamp: RELU16,
    }
}

/// The tiny model made ready for an int16 conv output: the conv writes the full int8 clamp
/// and its output (and the max pool's copy of it) are symmetric.
fn symmetric(meta: &mut resq_format::Metadata<'static>) {
    conv(meta, L_CONV1).clamp = [i8::MIN, i8::MAX];
    meta.tensors[T_CONV1 as usize].zero_point = 0;
    meta.tensors[T_POOL as usize].zero_point = 0;
}

fn parse_model(file: &[u8]) -> (Vec<u64>, usize) {
    (aligned(file), file.len())
}

#[test]
fn accepts_int16_conv_output_and_its_max_pool_copy() {
    let file = build_with_int16(&[int16(T_CONV1), int16(T_POOL)], |m, _| symmetric(m));
    let (words, len) = parse_model(&file);
    let model = Model::parse(view(&words, len)).expect("valid int16 file");
    assert_eq!(model.header.version, FORMAT_VERSION);
    assert!(model.is_int16(T_CONV1) && model.is_int16(T_POOL));
    assert!(!model.is_int16(T_INPUT) && !model.is_int16(T_GAP) && !model.is_int16(T_LOGITS));
    assert_eq!(model.int16_clamp(T_CONV1), Some(RELU16));
    assert_eq!(
        model.tensor_bytes(T_CONV1),
        2 * model.tensor(T_CONV1).elems()
    );
    assert_eq!(model.tensor_bytes(T_GAP), model.tensor(T_GAP).elems());
}

#[track_caller]
fn assert_bad_int16(file: &[u8], tensor: u16, why_part: &str) {
    match parse_err(file) {
        FormatError::BadInt16 { tensor: t, why, .. } => {
            assert_eq!(t, tensor);
            assert!(why.contains(why_part), "{why}");
        }
        e => panic!("expected BadInt16 for tensor {tensor}, got {e:?}"),
    }
}

#[test]
fn rejects_unknown_tensor() {
    let file = build_with_int16(&[int16(99)], |m, _| symmetric(m));
    assert_bad_int16(&file, 99, "no such tensor");
}

#[test]
fn rejects_tensor_listed_twice() {
    let file = build_with_int16(&[int16(T_CONV1), int16(T_POOL), int16(T_CONV1)], |m, _| {
        symmetric(m)
    });
    assert_bad_int16(&file, T_CONV1, "twice");
}

#[test]
fn rejects_graph_input_and_output() {
    let file = build_with_int16(&[int16(T_INPUT)], |m, _| {
        m.tensors[T_INPUT as usize].zero_point = 0
    });
    assert_bad_int16(&file, T_INPUT, "graph input");
    let file = build_with_int16(&[int16(T_LOGITS)], |m, _| {
        m.tensors[T_LOGITS as usize].zero_point = 0
    });
    assert_bad_int16(&file, T_LOGITS, "graph output");
}

#[test]
fn rejects_nonzero_zero_point() {
    let file = build_with_int16(&[int16(T_CONV1), int16(T_POOL)], |m, _| {
        symmetric(m);
        m.tensors[T_CONV1 as usize].zero_point = 3;
        m.tensors[T_POOL as usize].zero_point = 3;
    });
    assert_bad_int16(&file, T_CONV1, "zero point");
}

#[test]
fn rejects_inverted_clamp() {
    let bad = Int16Tensor {
        tensor: T_CONV1,
        clamp: [10, -10],
    };
    let file = build_with_int16(&[bad, int16(T_POOL)], |m, _| symmetric(m));
    assert_bad_int16(&file, T_CONV1, "clamp");
}

#[test]
fn rejects_int8_clamp_on_a_layer_writing_int16() {
    let file = build_with_int16(&[int16(T_CONV1), int16(T_POOL)], |m, _| {
        symmetric(m);
        conv(m, L_CONV1).clamp = [0, 127];
    });
    match parse_err(&file) {
        FormatError::OutOfRange { layer, field, .. } => {
            assert_eq!((layer, field), (L_CONV1, "clamp"));
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn rejects_max_pool_between_int16_and_int8() {
    // The conv writes int16 but its max-pool copy is listed as int8.
    let file = build_with_int16(&[int16(T_CONV1)], |m, _| symmetric(m));
    match parse_err(&file) {
        FormatError::BadGraph { layer, why, .. } => {
            assert_eq!(layer, L_MAXPOOL);
            assert!(why.contains("same type"), "{why}");
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn rejects_version_2_file_without_the_block() {
    let (meta, data) = tiny_parts();
    let meta_bytes = postcard::to_allocvec(&meta).unwrap();
    let mut file = assemble(&meta_bytes, data_bytes(&data, &tiny_model()));
    set_u16(&mut file, field::VERSION, 2);
    recrc(&mut file);
    assert!(matches!(
        parse_err(&file),
        FormatError::BadMetadata("it ends early")
    ));
}

#[test]
fn reads_version_1_files_as_all_int8() {
    let (meta, data) = tiny_parts();
    let meta_bytes = postcard::to_allocvec(&meta).unwrap();
    let mut file = assemble(&meta_bytes, data_bytes(&data, &tiny_model()));
    set_u16(&mut file, field::VERSION, 1);
    recrc(&mut file);
    let (words, len) = parse_model(&file);
    let model = Model::parse(view(&words, len)).expect("version 1 file");
    assert_eq!(model.header.version, 1);
    assert!(model.precision.int16.is_empty());
    assert!((0..model.meta.tensors.len() as u16).all(|t| !model.is_int16(t)));
}

#[test]
fn rejects_int16_block_in_a_version_1_file() {
    let mut file = build_with_int16(&[int16(T_CONV1), int16(T_POOL)], |m, _| symmetric(m));
    set_u16(&mut file, field::VERSION, 1);
    recrc(&mut file);
    assert!(matches!(
        parse_err(&file),
        FormatError::BadMetadata("unexpected bytes after the metadata")
    ));
}

// ---------------------------------------------------------------------------------------------
// int16 weights (and i64 biases) of a kept convolution.

/// The tiny model with conv1's weights as int16 and its biases as i64, listed in the block.
fn wide_conv1(edit: impl FnOnce(&mut Precision, &mut resq_format::Metadata<'static>)) -> Vec<u8> {
    let (mut meta, mut data) = tiny_parts();
    let d = TinyData::new();
    let c = conv(&mut meta, L_CONV1);
    let w16: Vec<i16> = d.conv1_weights.iter().map(|&w| w as i16 * 200).collect();
    c.weights = data.push_i16(&w16);
    let b64: Vec<i64> = d.conv1_bias.iter().map(|&b| b as i64 * 200).collect();
    c.bias = data.push_i64(&b64);
    let mut precision = Precision::default();
    precision.int16_weights.push(L_CONV1 as u16).unwrap();
    edit(&mut precision, &mut meta);
    resq_format::write::write_file(&meta, &precision.into(), &data).unwrap()
}

#[test]
fn accepts_int16_weights_with_i64_biases() {
    let file = wide_conv1(|_, _| {});
    let (words, len) = parse_model(&file);
    let model = Model::parse(view(&words, len)).expect("valid");
    assert!(model.has_int16_weights(L_CONV1) && !model.has_int16_weights(L_FC));
    let Op::Conv(c) = model.meta.layers[L_CONV1].op else {
        panic!()
    };
    let d = TinyData::new();
    assert_eq!(model.i16s(c.weights).len(), d.conv1_weights.len());
    assert_eq!(model.i16s(c.weights)[0], d.conv1_weights[0] as i16 * 200);
    assert_eq!(model.i64s(c.bias)[1], d.conv1_bias[1] as i64 * 200);
}

#[test]
fn rejects_int16_weights_on_a_layer_that_is_not_a_convolution_or_missing_or_twice() {
    let why = |file: &[u8]| match parse_err(file) {
        FormatError::BadGraph { layer, why, .. } => (layer, why),
        e => panic!("{e:?}"),
    };
    let file = wide_conv1(|p, _| p.int16_weights.push(L_MAXPOOL as u16).unwrap());
    let (layer, w) = why(&file);
    assert_eq!(layer, L_MAXPOOL);
    assert!(w.contains("not a convolution"), "{w}");
    let file = wide_conv1(|p, _| p.int16_weights.push(40).unwrap());
    let (layer, w) = why(&file);
    assert_eq!(layer, 40);
    assert!(w.contains("does not exist"), "{w}");
    let file = wide_conv1(|p, _| p.int16_weights.push(L_CONV1 as u16).unwrap());
    assert!(why(&file).1.contains("twice"));
}

#[test]
fn rejects_int8_sized_weights_or_biases_on_an_int16_weight_layer() {
    // Listed as int16 but still holding int8 weights / i32 biases: the lengths are wrong.
    let (meta, data) = tiny_parts();
    let mut precision = Precision::default();
    precision.int16_weights.push(L_CONV1 as u16).unwrap();
    let file = resq_format::write::write_file(&meta, &precision.into(), &data).unwrap();
    match parse_err(&file) {
        FormatError::ShapeMismatch { layer, what, .. }
        | FormatError::BadDataRef {
            layer, field: what, ..
        } => {
            assert_eq!(layer, L_CONV1);
            assert_eq!(what, "weights");
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn rejects_an_i64_bias_beyond_two_to_the_62() {
    let (mut meta, mut data) = tiny_parts();
    let d = TinyData::new();
    let c = conv(&mut meta, L_CONV1);
    c.weights = data.push_i16(
        &d.conv1_weights
            .iter()
            .map(|&w| w as i16)
            .collect::<Vec<_>>(),
    );
    let mut b64: Vec<i64> = d.conv1_bias.iter().map(|&b| b as i64).collect();
    b64[3] = i64::MIN;
    c.bias = data.push_i64(&b64);
    let mut precision = Precision::default();
    precision.int16_weights.push(L_CONV1 as u16).unwrap();
    let file = resq_format::write::write_file(&meta, &precision.into(), &data).unwrap();
    match parse_err(&file) {
        FormatError::OutOfRange { layer, field, .. } => {
            assert_eq!((layer, field), (L_CONV1, "bias"))
        }
        e => panic!("{e:?}"),
    }
}

/// The data section bytes of the tiny model (the same whatever the metadata encoding).
fn data_bytes<'a>(_: &resq_format::write::DataSection, file: &'a [u8]) -> &'a [u8] {
    data_section(file)
}
