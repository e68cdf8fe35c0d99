//! A pre-quantized (QDQ) ONNX model converts without calibration, keeps its own scales and int8
//! weights, and answers like onnxruntime does on the same QDQ file.

use std::collections::HashMap;

use resq_e2e::{ic01, resnet8};
use resq_engine::{AlignedBytes, Engine};
use resq_format::{Layout, Model, Op};
use resq_host::convert::{convert, ConvertOptions};
use resq_host::eval::{argmax, int8_logits, preprocess_of};
use resq_host::images::labelled_dataset;
use tract_onnx::prelude::Framework;

fn convert_qdq() -> Vec<u8> {
    let opts = ConvertOptions::new(resnet8("model_int8_qdq.onnx"));
    convert(&opts)
        .expect("QDQ converts without calibration")
        .bytes
}

/// onnxruntime's prediction per image (reference_outputs/model_int8_qdq.csv).
fn onnxruntime_predictions() -> HashMap<String, usize> {
    let csv = std::fs::read_to_string(resnet8("reference_outputs/model_int8_qdq.csv")).unwrap();
    csv.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].replace(".bin", ".png"), f[2].parse().unwrap())
        })
        .collect()
}

#[test]
fn qdq_resnet8_matches_onnxruntime() {
    let bytes = AlignedBytes::new(&convert_qdq());
    let mut engine = Engine::from_bytes(bytes.as_bytes()).unwrap();
    assert!(engine.self_test());
    let ort = onnxruntime_predictions();
    let (png, csv) = ic01();
    let samples = labelled_dataset(&png, Some(&csv)).unwrap();
    let pre = preprocess_of(&engine);
    let (mut top1, mut agree, mut ort_top1) = (0, 0, 0);
    for s in &samples {
        engine
            .set_input_pixels(&pre.load_pixels(&s.path).unwrap())
            .unwrap();
        engine.run();
        let pred = argmax(&int8_logits(&engine));
        let name = s.path.file_name().unwrap().to_string_lossy().into_owned();
        let theirs = ort[&name];
        top1 += (pred == s.label) as usize;
        ort_top1 += (theirs == s.label) as usize;
        agree += (pred == theirs) as usize;
    }
    eprintln!("QDQ: resq top-1 {top1}/200, onnxruntime {ort_top1}/200, agreement {agree}/200");
    assert!(
        (top1 as i64 - ort_top1 as i64).abs() <= 1,
        "top-1 {top1} vs onnxruntime {ort_top1}"
    );
    assert!((169..=170).contains(&top1), "top-1 {top1}");
    assert!(
        agree >= 198,
        "agreement with onnxruntime {agree}/200 < 99 %"
    );
}

#[test]
fn qdq_scales_and_int8_weights_are_kept_exactly() {
    let bytes = AlignedBytes::new(&convert_qdq());
    let model = Model::parse(bytes.as_bytes()).unwrap();
    assert_eq!(model.meta.provenance.method, "qdq");
    assert_eq!(model.meta.provenance.calib_images, 0);
    // The file's activation scales are the QDQ model's (see its DequantizeLinear nodes).
    let by_name: HashMap<&str, (f32, i8)> = model
        .meta
        .tensors
        .iter()
        .map(|t| (t.name, (t.scale, t.zero_point)))
        .collect();
    assert_eq!(by_name["Relu_n_22.low"], (0.03939355, -128));
    assert_eq!(by_name["Conv_n_64"], (0.10419496, 4));
    assert_eq!(model.input().scale, 1.0);
    assert_eq!(model.input().zero_point, -128);

    // Every convolution's int8 weights are the QDQ initializers, bit for bit.
    let proto = tract_onnx::onnx()
        .proto_model_for_path(resnet8("model_int8_qdq.onnx"))
        .unwrap();
    let graph = proto.graph.unwrap();
    let init: HashMap<&str, &tract_onnx::pb::TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let producer: HashMap<&str, &tract_onnx::pb::NodeProto> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    let file_weights: Vec<&[i8]> = model
        .meta
        .layers
        .iter()
        .filter_map(|l| match l.op {
            Op::Conv(c) => Some(model.i8s(c.weights)),
            _ => None,
        })
        .collect();
    let mut checked = 0;
    for conv in graph.node.iter().filter(|n| n.op_type == "Conv") {
        let dq = producer[conv.input[1].as_str()];
        let w = init[dq.input[0].as_str()];
        let q: Vec<i8> = w.raw_data.iter().map(|&b| b as i8).collect();
        let (o, i, kh, kw) = (
            w.dims[0] as usize,
            w.dims[1] as usize,
            w.dims[2] as usize,
            w.dims[3] as usize,
        );
        // ONNX OIHW → resq OHWI.
        let mut ohwi = Vec::with_capacity(q.len());
        for oc in 0..o {
            for y in 0..kh {
                for x in 0..kw {
                    for ic in 0..i {
                        ohwi.push(q[((oc * i + ic) * kh + y) * kw + x]);
                    }
                }
            }
        }
        assert!(
            file_weights.contains(&ohwi.as_slice()),
            "int8 weights of {} are not in the file unchanged",
            conv.name
        );
        checked += 1;
    }
    assert_eq!(checked, 9, "all nine convolutions checked");
}

#[test]
fn eval_against_the_qdq_model_itself_compares_logits() {
    // tract runs the QDQ graph in float with fake quantization; the reference must step back
    // over the trailing QuantizeLinear / DequantizeLinear to the softmax's input.
    let bytes = AlignedBytes::new(&convert_qdq());
    let mut engine = Engine::from_bytes(bytes.as_bytes()).unwrap();
    let (png, csv) = ic01();
    let samples = labelled_dataset(&png, Some(&csv)).unwrap();
    let reference =
        resq_host::eval::Reference::load(&resnet8("model_int8_qdq.onnx"), Layout::Nchw).unwrap();
    let r = resq_host::eval::evaluate(&mut engine, &samples, Some(&reference)).unwrap();
    eprintln!("{r:?}");
    assert!(r.cosine.unwrap() > 0.999, "{r:?}");
    assert!(r.agreement.unwrap() >= 198, "{r:?}");
}
