//! onnxruntime's QOperator format, rewritten as QDQ before tract sees the graph.
//!
//! `quantize_static(quant_format=QOperator)` (and the ONNX model zoo's int8 ResNets) write
//! fused integer ops: `QLinearConv`, `QLinearMatMul`, and the `com.microsoft` contrib ops
//! `QLinearAdd`, `QLinearMul`, `QLinearAveragePool`, `QLinearGlobalAveragePool`, `QGemm`,
//! `QLinearSoftmax`. tract types only some of them, and resq's importer reads quantization from
//! QuantizeLinear / DequantizeLinear pairs anyway, so each fused op is rewritten on the protobuf
//! into the QDQ form it stands for:
//!
//! ```text
//! QLinearConv(x, xs, xz, w, ws, wz, ys, yz, B)
//!   →  DequantizeLinear(x, xs, xz) ─┐
//!      DequantizeLinear(w, ws, wz) ─┼─ Conv ─ QuantizeLinear(·, ys, yz)
//!      B · xs · ws (float)  ────────┘
//! ```
//!
//! Ops that move int8 values without arithmetic (MaxPool, Reshape, Flatten, Transpose, …) get
//! a DequantizeLinear before and a QuantizeLinear with the same parameters after, as the QDQ
//! format writes them. The result is a QDQ graph with the same scales and integer weights.

use std::collections::HashMap;

use anyhow::{bail, ensure, Context, Result};
use tract_onnx::pb::{self, AttributeProto, NodeProto, TensorProto};
use tract_onnx::prelude::*;

/// Ops that carry quantized values through unchanged (same scale and zero point out as in).
const PASS_THROUGH: &[&str] = &[
    "MaxPool",
    "Reshape",
    "Flatten",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Identity",
    "Pad",
    "Slice",
];

/// The quantization of a value: names of its scale and (possibly empty) zero point.
#[derive(Clone, Debug)]
struct QuantOf {
    scale: String,
    zero_point: String,
}

/// Rewrites every QOperator node of `proto` into DequantizeLinear → float op → QuantizeLinear.
/// Returns how many nodes were rewritten (0 for float and QDQ models, which are left as they
/// are). `model_dir` resolves external tensor data.
pub fn rewrite_to_qdq(proto: &mut pb::ModelProto, model_dir: Option<&str>) -> Result<usize> {
    let Some(graph) = proto.graph.as_mut() else {
        return Ok(0);
    };
    let is_qoperator = |n: &NodeProto| {
        matches!(
            n.op_type.as_str(),
            "QLinearConv"
                | "QLinearMatMul"
                | "QGemm"
                | "QLinearAdd"
                | "QLinearMul"
                | "QLinearAveragePool"
                | "QLinearGlobalAveragePool"
                | "QLinearSoftmax"
                | "QLinearConcat"
                | "QLinearLeakyRelu"
                | "QLinearSigmoid"
                | "QLinearReduceMean"
                | "QLinearWhere"
        )
    };
    if !graph.node.iter().any(is_qoperator) {
        return Ok(0);
    }
    let mut rw = Rewriter {
        initializers: graph
            .initializer
            .iter()
            .map(|t| (t.name.clone(), t.clone()))
            .collect(),
        model_dir,
        quant: HashMap::new(),
        nodes: Vec::with_capacity(graph.node.len() * 3),
        new_initializers: vec![],
    };
    let mut rewritten = 0;
    for node in std::mem::take(&mut graph.node) {
        let name = node.name.clone();
        let op = node.op_type.clone();
        let fused = is_qoperator(&node);
        rw.node(node)
            .with_context(|| format!("rewriting QOperator node `{name}` ({op}) as QDQ"))?;
        rewritten += fused as usize;
    }
    graph.node = rw.nodes;
    graph.initializer.extend(rw.new_initializers);
    Ok(rewritten)
}

struct Rewriter<'a> {
    initializers: HashMap<String, TensorProto>,
    model_dir: Option<&'a str>,
    /// Values holding quantized integers, with their parameters.
    quant: HashMap<String, QuantOf>,
    nodes: Vec<NodeProto>,
    new_initializers: Vec<TensorProto>,
}

impl Rewriter<'_> {
    fn node(&mut self, node: NodeProto) -> Result<()> {
        let input = |i: usize| node.input.get(i).cloned().unwrap_or_default();
        let op_type = node.op_type.clone();
        match op_type.as_str() {
            "QuantizeLinear" => {
                if let Some(out) = node.output.first() {
                    self.quant.insert(
                        out.clone(),
                        QuantOf {
                            scale: input(1),
                            zero_point: input(2),
                        },
                    );
                }
                self.nodes.push(node);
            }
            "DequantizeLinear" => self.nodes.push(node),
            "QLinearConv" => {
                // x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, [B]
                let x = self.dequantize(&node, &input(0), &input(1), &input(2), None);
                let w = self.dequantize(&node, &input(3), &input(4), &input(5), Some(0));
                let mut inputs = vec![x, w];
                if !input(8).is_empty() {
                    inputs.push(self.float_bias(&input(8), &input(1), &input(4), 1.0)?);
                }
                self.float_op(&node, "Conv", inputs, node.attribute.clone(), Some((6, 7)));
            }
            "QLinearMatMul" => {
                // a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp
                let a = self.dequantize(&node, &input(0), &input(1), &input(2), None);
                let b = self.dequantize(&node, &input(3), &input(4), &input(5), Some(1));
                self.float_op(&node, "MatMul", vec![a, b], vec![], Some((6, 7)));
            }
            "QGemm" => {
                // A, a_scale, a_zp, B, b_scale, b_zp, [C], [y_scale], [y_zp]
                let trans_b = int_attr(&node, "transB").unwrap_or(0) != 0;
                let alpha = node
                    .attribute
                    .iter()
                    .find(|a| a.name == "alpha")
                    .map_or(1.0, |a| a.f);
                let a = self.dequantize(&node, &input(0), &input(1), &input(2), None);
                let b_axis = if trans_b { 0 } else { 1 };
                let b = self.dequantize(&node, &input(3), &input(4), &input(5), Some(b_axis));
                let mut inputs = vec![a, b];
                if !input(6).is_empty() {
                    inputs.push(self.float_bias(&input(6), &input(1), &input(4), alpha)?);
                }
                let attrs = node
                    .attribute
                    .iter()
                    .filter(|a| matches!(a.name.as_str(), "alpha" | "transA" | "transB"))
                    .cloned()
                    .collect();
                let requant = (!input(7).is_empty()).then_some((7, 8));
                self.float_op(&node, "Gemm", inputs, attrs, requant);
            }
            "QLinearAdd" | "QLinearMul" => {
                // A, A_scale, A_zp, B, B_scale, B_zp, C_scale, C_zp
                let a = self.dequantize(&node, &input(0), &input(1), &input(2), None);
                let b = self.dequantize(&node, &input(3), &input(4), &input(5), None);
                let op = &node.op_type["QLinear".len()..];
                self.float_op(&node, op, vec![a, b], vec![], Some((6, 7)));
            }
            "QLinearAveragePool" | "QLinearGlobalAveragePool" | "QLinearSoftmax" => {
                // X, x_scale, x_zp, y_scale, y_zp
                ensure!(
                    int_attr(&node, "channels_last").unwrap_or(0) == 0,
                    "channels_last pooling is not supported; quantize the model with NCHW pooling"
                );
                let x = self.dequantize(&node, &input(0), &input(1), &input(2), None);
                let op = &node.op_type["QLinear".len()..];
                let attrs = node
                    .attribute
                    .iter()
                    .filter(|a| !matches!(a.name.as_str(), "channels_last" | "opset"))
                    .cloned()
                    .collect();
                self.float_op(&node, op, vec![x], attrs, Some((3, 4)));
            }
            op if op.starts_with("QLinear") => bail!(
                "resq does not support `{op}` (ResNets need QLinearConv, QLinearAdd, pooling, QGemm / \
                 QLinearMatMul and QLinearSoftmax); quantize the float model with resq instead"
            ),
            op => {
                let quantized: Vec<usize> = (0..node.input.len())
                    .filter(|&i| self.quant.contains_key(&node.input[i]))
                    .collect();
                if quantized.is_empty() {
                    self.nodes.push(node);
                    return Ok(());
                }
                // A float op reading int8 values: dequantize them; a pass-through op keeps
                // the parameters of its (first) input on its output.
                let mut node = node;
                let first = self.quant[&node.input[quantized[0]]].clone();
                for &i in &quantized {
                    let value = node.input[i].clone();
                    let q = self.quant[&value].clone();
                    let float = self.dequantize(&node, &value, &q.scale, &q.zero_point, None);
                    node.input[i] = float;
                }
                if PASS_THROUGH.contains(&op) && quantized == [0] && !node.output.is_empty() {
                    let out = node.output[0].clone();
                    let float = format!("{out}__resq_float");
                    node.output[0] = float.clone();
                    let name = node.name.clone();
                    self.nodes.push(node);
                    self.quantize(&name, &float, &out, first);
                } else {
                    self.nodes.push(node);
                }
            }
        }
        Ok(())
    }

    /// Appends `DequantizeLinear(value, scale, zero_point)`; returns the float value's name.
    fn dequantize(
        &mut self,
        node: &NodeProto,
        value: &str,
        scale: &str,
        zero_point: &str,
        axis: Option<i64>,
    ) -> String {
        let out = format!("{value}__resq_dq_{}", self.nodes.len());
        let mut inputs = vec![value.to_string(), scale.to_string()];
        if !zero_point.is_empty() {
            inputs.push(zero_point.to_string());
        }
        // Per-axis only where the scale has more than one value.
        let per_axis = axis.filter(|_| self.len_of(scale).is_some_and(|n| n > 1));
        self.nodes.push(NodeProto {
            name: format!("{}/dequantize_{value}", node.name),
            op_type: "DequantizeLinear".into(),
            input: inputs,
            output: vec![out.clone()],
            attribute: per_axis
                .map(|a| int_attribute("axis", a))
                .into_iter()
                .collect(),
            ..Default::default()
        });
        out
    }

    /// Appends `QuantizeLinear(float, q) → out` and records `out` as quantized.
    fn quantize(&mut self, node_name: &str, float: &str, out: &str, q: QuantOf) {
        let mut inputs = vec![float.to_string(), q.scale.clone()];
        if !q.zero_point.is_empty() {
            inputs.push(q.zero_point.clone());
        }
        self.nodes.push(NodeProto {
            name: format!("{node_name}/quantize"),
            op_type: "QuantizeLinear".into(),
            input: inputs,
            output: vec![out.to_string()],
            ..Default::default()
        });
        self.quant.insert(out.to_string(), q);
    }

    /// Appends the float op (keeping the node's name, so layers are named as in the source)
    /// and, with `requant = (scale input, zero point input)`, its output's QuantizeLinear.
    fn float_op(
        &mut self,
        node: &NodeProto,
        op: &str,
        inputs: Vec<String>,
        attribute: Vec<AttributeProto>,
        requant: Option<(usize, usize)>,
    ) {
        let out = node.output.first().cloned().unwrap_or_default();
        let float = match requant {
            Some(_) => format!("{out}__resq_float"),
            None => out.clone(),
        };
        self.nodes.push(NodeProto {
            name: node.name.clone(),
            op_type: op.into(),
            input: inputs,
            output: vec![float.clone()],
            attribute,
            ..Default::default()
        });
        if let Some((s, z)) = requant {
            let q = QuantOf {
                scale: node.input.get(s).cloned().unwrap_or_default(),
                zero_point: node.input.get(z).cloned().unwrap_or_default(),
            };
            self.quantize(&node.name, &float, &out, q);
        }
    }

    /// The float bias `B · alpha · x_scale · w_scale[c]` of an int32 bias initializer.
    fn float_bias(
        &mut self,
        bias: &str,
        x_scale: &str,
        w_scale: &str,
        alpha: f32,
    ) -> Result<String> {
        let b = self.values(bias)?;
        let xs = self.values(x_scale)?;
        let ws = self.values(w_scale)?;
        ensure!(
            xs.len() == 1 && (ws.len() == 1 || ws.len() == b.len()),
            "bias `{bias}` has {} values for input scale `{x_scale}` ({} values) and weight scale `{w_scale}` ({} values)",
            b.len(),
            xs.len(),
            ws.len()
        );
        let float: Vec<f32> = b
            .iter()
            .enumerate()
            .map(|(c, &v)| (v * alpha as f64 * xs[0] * ws[c % ws.len()]) as f32)
            .collect();
        let name = format!("{bias}__resq_float");
        self.new_initializers.push(TensorProto {
            name: name.clone(),
            dims: vec![float.len() as i64],
            data_type: pb::tensor_proto::DataType::Float as i32,
            float_data: float,
            ..Default::default()
        });
        Ok(name)
    }

    /// An initializer as a tract tensor.
    fn constant(&self, name: &str) -> Result<Tensor> {
        let t = self.initializers.get(name).with_context(|| {
            format!("`{name}` must be an initializer (a constant in the file) for resq to read it")
        })?;
        tract_onnx::tensor::load_tensor(
            &tract_onnx::data_resolver::MmapDataResolver,
            t,
            self.model_dir,
        )
        .with_context(|| format!("reading initializer `{name}`"))
    }

    /// An initializer's values as f64.
    fn values(&self, name: &str) -> Result<Vec<f64>> {
        let t = self.constant(name)?;
        let t = t.cast_to::<f64>()?;
        Ok(t.to_plain_array_view::<f64>()?.iter().copied().collect())
    }

    /// Number of values of an initializer, if it is one.
    fn len_of(&self, name: &str) -> Option<usize> {
        self.initializers
            .get(name)
            .map(|t| t.dims.iter().map(|&d| d.max(0) as usize).product())
    }
}

fn int_attr(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

fn int_attribute(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}
