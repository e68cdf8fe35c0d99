//! Bad input gets a clear error: unsupported ONNX ops, damaged files, files from the future.

use prost::Message;
use resq_e2e::{ic01_subset, resnet8};
use resq_engine::AlignedBytes;
use resq_format::{FormatError, Model};
use resq_host::convert::{convert, ConvertOptions};
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{dimension, Dimension};
use tract_onnx::pb::{
    type_proto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};

fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| Dimension {
            value: Some(dimension::Value::DimValue(d)),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(name: &str, op: &str, input: &str, output: &str) -> NodeProto {
    NodeProto {
        name: name.into(),
        op_type: op.into(),
        input: vec![input.into()],
        output: vec![output.into()],
        ..Default::default()
    }
}

/// input → `op` → GlobalAveragePool → Flatten, as ONNX bytes.
fn model_with(op: &str, node_name: &str) -> Vec<u8> {
    let graph = GraphProto {
        name: "g".into(),
        node: vec![
            node(node_name, op, "input", "a"),
            node("gap", "GlobalAveragePool", "a", "b"),
            node("flat", "Flatten", "b", "out"),
        ],
        input: vec![value_info("input", &[1, 3, 8, 8])],
        output: vec![value_info("out", &[1, 3])],
        ..Default::default()
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

fn convert_onnx(onnx: &[u8]) -> anyhow::Result<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    std::fs::write(&path, onnx).unwrap();
    let photos = resq_e2e::models().join("photos");
    let opts = ConvertOptions {
        calib: Some(photos),
        std: [255.0; 3],
        ..ConvertOptions::new(path)
    };
    convert(&opts).map(|c| c.bytes)
}

#[test]
fn unsupported_op_error_names_node_and_op() {
    let err = convert_onnx(&model_with("Sigmoid", "/head/squash/Sigmoid")).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("/head/squash/Sigmoid"), "{msg}");
    assert!(msg.contains("Sigmoid"), "{msg}");
    assert!(msg.contains("not supported"), "{msg}");
    assert!(
        msg.contains("supported: Conv"),
        "the error lists what resq supports: {msg}"
    );
}

#[test]
fn the_same_graph_with_a_supported_op_converts() {
    // Proves the test above fails for the op, not for the surrounding graph.
    convert_onnx(&model_with("Relu", "/head/relu/Relu")).expect("Relu → GAP → Flatten converts");
}

fn resnet8_file() -> Vec<u8> {
    let calib = ic01_subset(8);
    let opts = ConvertOptions {
        calib: Some(calib.path().to_path_buf()),
        labels: Some(resq_e2e::models().join("resnet8/labels.txt")),
        ..ConvertOptions::new(resnet8("model_float.onnx"))
    };
    convert(&opts).unwrap().bytes
}

fn parse(bytes: &[u8]) -> Result<(), Box<FormatError>> {
    let aligned = AlignedBytes::new(bytes);
    Model::parse(aligned.as_bytes())
        .map(|_| ())
        .map_err(Box::new)
}

#[test]
fn a_flipped_byte_anywhere_in_a_real_model_is_refused() {
    let file = resnet8_file();
    parse(&file).expect("the intact file loads");
    // Every byte of the header and metadata, then every 97th byte of the data.
    let meta_end = 64 + u64::from_le_bytes(file[32..40].try_into().unwrap()) as usize;
    let positions = (0..meta_end)
        .chain((meta_end..file.len()).step_by(97))
        .chain([file.len() - 1]);
    for pos in positions {
        let mut bad = file.clone();
        bad[pos] ^= 0x10;
        let err = parse(&bad).expect_err(&format!("flipped byte {pos} was accepted"));
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn a_truncated_model_is_refused_with_its_lengths() {
    let file = resnet8_file();
    for len in [0, 10, 63, 64, 500, file.len() / 2, file.len() - 1] {
        let err = parse(&file[..len]).unwrap_err();
        assert!(
            matches!(*err, FormatError::Truncated { .. }),
            "length {len}: {err}"
        );
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}

#[test]
fn a_model_from_a_future_version_is_refused() {
    let mut file = resnet8_file();
    file[8..10].copy_from_slice(&(resq_format::FORMAT_VERSION + 1).to_le_bytes());
    let err = parse(&file).unwrap_err();
    assert!(matches!(*err, FormatError::FutureVersion { .. }), "{err}");
    assert!(
        err.to_string().contains("update"),
        "the message says what to do: {err}"
    );
}
