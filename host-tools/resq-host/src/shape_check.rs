//! A concrete shape pass over the ONNX graph before tract types it.
//!
//! From the input's fixed shape through the ops a ResNet is made of, it refuses operands that
//! cannot meet — an Add of two spatial sizes, a Conv whose weights do not fit its input's
//! channels, a MatMul whose inner sizes differ — naming the node and both shapes. tract comes to
//! the same verdict, but through symbolic broadcast expressions that can take most of a minute
//! and half a gigabyte on a damaged file (`fuzz/regressions/onnx_import/tract-slow-symbolic-dims`:
//! a Conv that lost its `strides`). An op it does not know, or an operand it cannot read, leaves
//! the shapes after it unknown: it only refuses what it can see is wrong.

use std::collections::HashMap;

use tract_onnx::pb::{tensor_proto::DataType, AttributeProto, GraphProto, NodeProto, TensorProto};

type Shape = Vec<i64>;

/// Checks `graph` with its (first non-initializer) input fixed to `input_shape`. The error
/// names the node, its op and the shapes that do not fit.
pub fn check(graph: &GraphProto, input_shape: &[usize]) -> Result<(), String> {
    let mut shapes: HashMap<&str, Shape> = HashMap::new();
    let mut ints: HashMap<&str, Vec<i64>> = HashMap::new();
    for t in &graph.initializer {
        shapes.insert(&t.name, t.dims.clone());
        if let Some(v) = int_values(t) {
            ints.insert(&t.name, v);
        }
    }
    if let Some(input) = graph
        .input
        .iter()
        .find(|i| !shapes.contains_key(i.name.as_str()))
    {
        shapes.insert(&input.name, input_shape.iter().map(|&d| d as i64).collect());
    }
    for node in &graph.node {
        if node.op_type == "Constant" {
            if let (Some(out), Some(t)) = (
                node.output.first(),
                attr(node, "value").and_then(|a| a.t.as_ref()),
            ) {
                shapes.insert(out, t.dims.clone());
                if let Some(v) = int_values(t) {
                    ints.insert(out, v);
                }
            }
            continue;
        }
        let input = |i: usize| {
            node.input
                .get(i)
                .filter(|n| !n.is_empty())
                .and_then(|n| shapes.get(n.as_str()))
        };
        let constant = |i: usize| node.input.get(i).and_then(|n| ints.get(n.as_str()));
        let out = infer(node, &input, &constant).map_err(|why| {
            format!(
                "node `{}` ({}): {why}",
                if node.name.is_empty() {
                    node.output.first().map_or("?", String::as_str)
                } else {
                    &node.name
                },
                node.op_type
            )
        })?;
        if let (Some(shape), Some(name)) = (out, node.output.first()) {
            if shape.iter().all(|&d| d >= 0) {
                shapes.insert(name, shape);
            }
        }
    }
    Ok(())
}

/// The shape of `node`'s first output, `None` when this pass cannot tell, or why the operands
/// cannot meet.
fn infer<'a>(
    node: &NodeProto,
    input: &dyn Fn(usize) -> Option<&'a Shape>,
    constant: &dyn Fn(usize) -> Option<&'a Vec<i64>>,
) -> Result<Option<Shape>, String> {
    let x = input(0);
    Ok(match node.op_type.as_str() {
        // Shape-preserving ops (first input).
        "Relu" | "Clip" | "LeakyRelu" | "Sigmoid" | "Tanh" | "HardSigmoid" | "HardSwish"
        | "Softmax" | "LogSoftmax" | "BatchNormalization" | "Dropout" | "Identity" | "Cast"
        | "QuantizeLinear" | "DequantizeLinear" | "Neg" | "Abs" | "Sqrt" | "Exp" | "Erf" => {
            x.cloned()
        }
        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Max" | "Min" | "Sum" | "Mean" => {
            let mut out: Option<Shape> = None;
            for i in 0..node.input.len() {
                let Some(s) = input(i) else {
                    return Ok(None);
                };
                out = Some(match out {
                    None => s.clone(),
                    Some(o) => broadcast(&o, s).ok_or_else(|| {
                        format!(
                            "its inputs have shapes {o:?} and {s:?}, which do not broadcast; \
                             the layers feeding it disagree (check the strides and pads of the \
                             convolutions before it, or re-export the model)"
                        )
                    })?,
                });
            }
            out
        }
        "Conv" => match (x, input(1)) {
            (Some(x), Some(w)) if x.len() >= 3 && w.len() == x.len() => {
                let group = attr(node, "group").map_or(1, |a| a.i);
                if x[1] != w[1] * group {
                    return Err(format!(
                        "its input {x:?} has {} channels, its weights {w:?} (group {group}) \
                         expect {}",
                        x[1],
                        w[1] * group
                    ));
                }
                let kernel = &w[2..];
                let window = Window::of(node, kernel.len());
                let spatial = window.output(&x[2..], kernel, false, x)?;
                [vec![x[0], w[0]], spatial].concat().into()
            }
            _ => None,
        },
        "MaxPool" | "AveragePool" => match (x, attr(node, "kernel_shape")) {
            (Some(x), Some(k)) if x.len() >= 3 && k.ints.len() == x.len() - 2 => {
                let window = Window::of(node, k.ints.len());
                let ceil = attr(node, "ceil_mode").is_some_and(|a| a.i != 0);
                let spatial = window.output(&x[2..], &k.ints, ceil, x)?;
                [x[..2].to_vec(), spatial].concat().into()
            }
            _ => None,
        },
        "GlobalAveragePool" | "GlobalMaxPool" => x
            .filter(|x| x.len() >= 3)
            .map(|x| [x[..2].to_vec(), vec![1; x.len() - 2]].concat()),
        "Transpose" => x.and_then(|x| {
            let perm: Vec<i64> = match attr(node, "perm") {
                Some(p) => p.ints.clone(),
                None => (0..x.len() as i64).rev().collect(),
            };
            perm.iter()
                .map(|&p| usize::try_from(p).ok().and_then(|p| x.get(p).copied()))
                .collect::<Option<Shape>>()
                .filter(|s| s.len() == x.len())
        }),
        "Flatten" => x.and_then(|x| {
            let axis = axis(attr(node, "axis").map_or(1, |a| a.i), x.len() + 1)?;
            Some(vec![x[..axis].iter().product(), x[axis..].iter().product()])
        }),
        "Reshape" => match (x, constant(1)) {
            (Some(x), Some(to)) => {
                reshape(x, to, attr(node, "allowzero").is_some_and(|a| a.i != 0))?
            }
            _ => None,
        },
        "Pad" => {
            let pads = match attr(node, "pads") {
                Some(p) => Some(&p.ints),
                None => constant(1),
            };
            match (x, pads) {
                (Some(x), Some(p)) if p.len() == 2 * x.len() => Some(
                    x.iter()
                        .enumerate()
                        .map(|(i, d)| d + p[i] + p[i + x.len()])
                        .collect(),
                ),
                _ => None,
            }
        }
        "Squeeze" => {
            let axes = attr(node, "axes").map(|a| &a.ints).or_else(|| constant(1));
            x.and_then(|x| {
                let drop: Vec<usize> = match axes {
                    Some(a) => a.iter().map(|&a| axis(a, x.len())).collect::<Option<_>>()?,
                    None => (0..x.len()).filter(|&i| x[i] == 1).collect(),
                };
                (drop.iter().all(|&i| x[i] == 1)).then(|| {
                    x.iter()
                        .enumerate()
                        .filter(|(i, _)| !drop.contains(i))
                        .map(|(_, &d)| d)
                        .collect()
                })
            })
        }
        "MatMul" => match (x, input(1)) {
            (Some(a), Some(b)) if a.len() >= 2 && b.len() == 2 => {
                if a[a.len() - 1] != b[0] {
                    return Err(format!(
                        "it multiplies {a:?} by {b:?}: the inner sizes differ"
                    ));
                }
                Some([&a[..a.len() - 1], &b[1..]].concat())
            }
            _ => None,
        },
        "Gemm" => match (x, input(1)) {
            (Some(a), Some(b)) if a.len() == 2 && b.len() == 2 => {
                let t = |name: &str| attr(node, name).is_some_and(|a| a.i != 0);
                let (m, ka) = if t("transA") {
                    (a[1], a[0])
                } else {
                    (a[0], a[1])
                };
                let (kb, n) = if t("transB") {
                    (b[1], b[0])
                } else {
                    (b[0], b[1])
                };
                if ka != kb {
                    return Err(format!(
                        "it multiplies {a:?} by {b:?} (transA {}, transB {}): the inner sizes \
                         differ",
                        t("transA"),
                        t("transB")
                    ));
                }
                Some(vec![m, n])
            }
            _ => None,
        },
        _ => None,
    })
}

/// Numpy's multidirectional broadcast, or `None` when two sizes differ and neither is 1.
fn broadcast(a: &[i64], b: &[i64]) -> Option<Shape> {
    let rank = a.len().max(b.len());
    let at = |s: &[i64], i: usize| (i + s.len()).checked_sub(rank).map_or(1, |j| s[j]);
    (0..rank)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y || y == 1 => Some(x),
            (1, y) => Some(y),
            _ => None,
        })
        .collect()
}

/// A Conv's or pool's window attributes over `n` spatial axes.
struct Window {
    strides: Vec<i64>,
    dilations: Vec<i64>,
    pads: Vec<i64>,
    auto_pad: String,
}

impl Window {
    fn of(node: &NodeProto, n: usize) -> Self {
        let ints = |name: &str, default: i64, len: usize| {
            attr(node, name)
                .map(|a| a.ints.clone())
                .filter(|v| v.len() == len)
                .unwrap_or_else(|| vec![default; len])
        };
        Self {
            strides: ints("strides", 1, n),
            dilations: ints("dilations", 1, n),
            pads: ints("pads", 0, 2 * n),
            auto_pad: attr(node, "auto_pad")
                .map(|a| String::from_utf8_lossy(&a.s).into_owned())
                .unwrap_or_default(),
        }
    }

    /// The output's spatial sizes for an input of `spatial` sizes and a `kernel`.
    fn output(
        &self,
        spatial: &[i64],
        kernel: &[i64],
        ceil: bool,
        x: &[i64],
    ) -> Result<Shape, String> {
        let n = spatial.len();
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let (stride, extent) = (
                self.strides[i].max(1),
                self.dilations[i] * (kernel[i] - 1) + 1,
            );
            let size = match self.auto_pad.as_str() {
                "SAME_UPPER" | "SAME_LOWER" => (spatial[i] + stride - 1) / stride,
                "VALID" => (spatial[i] - extent) / stride + 1,
                _ => {
                    let room = spatial[i] + self.pads[i] + self.pads[i + n] - extent;
                    if room < 0 {
                        -1
                    } else if ceil {
                        (room + stride - 1) / stride + 1
                    } else {
                        room / stride + 1
                    }
                }
            };
            if size < 1 {
                return Err(format!(
                    "its window {kernel:?} (strides {:?}, pads {:?}) does not fit its input {x:?}",
                    self.strides, self.pads
                ));
            }
            out.push(size);
        }
        Ok(out)
    }
}

/// ONNX Reshape: `0` copies the input's size (unless `allowzero`), one `-1` takes the rest.
fn reshape(x: &[i64], to: &[i64], allowzero: bool) -> Result<Option<Shape>, String> {
    let total: i64 = x.iter().product();
    let mut out: Shape = to
        .iter()
        .enumerate()
        .map(|(i, &d)| match d {
            0 if !allowzero => x.get(i).copied().unwrap_or(-1),
            d => d,
        })
        .collect();
    let unknown: Vec<usize> = (0..out.len()).filter(|&i| out[i] == -1).collect();
    let known: i64 = out.iter().filter(|&&d| d >= 0).product();
    if out.iter().any(|&d| d < -1) || unknown.len() > 1 {
        return Ok(None);
    }
    if let [i] = unknown[..] {
        if known == 0 || total % known != 0 {
            return Err(format!(
                "it cannot reshape {x:?} ({total} values) to {to:?}"
            ));
        }
        out[i] = total / known;
    } else if known != total {
        return Err(format!(
            "it cannot reshape {x:?} ({total} values) to {to:?}"
        ));
    }
    Ok(Some(out))
}

/// A possibly negative axis of a rank-`rank` tensor.
fn axis(a: i64, rank: usize) -> Option<usize> {
    let a = if a < 0 { a + rank as i64 } else { a };
    usize::try_from(a).ok().filter(|&a| a < rank)
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

/// The values of a small int64 / int32 tensor stored in the file (shapes, pads, axes).
fn int_values(t: &TensorProto) -> Option<Vec<i64>> {
    const MAX: usize = 64;
    let raw = &t.raw_data;
    match t.data_type {
        d if d == DataType::Int64 as i32 => {
            if !t.int64_data.is_empty() {
                (t.int64_data.len() <= MAX).then(|| t.int64_data.clone())
            } else {
                (raw.len().is_multiple_of(8) && raw.len() <= 8 * MAX).then(|| {
                    raw.chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                        .collect()
                })
            }
        }
        d if d == DataType::Int32 as i32 => {
            if !t.int32_data.is_empty() {
                (t.int32_data.len() <= MAX)
                    .then(|| t.int32_data.iter().map(|&v| v as i64).collect())
            } else {
                (raw.len().is_multiple_of(4) && raw.len() <= 4 * MAX).then(|| {
                    raw.chunks_exact(4)
                        .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as i64)
                        .collect()
                })
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_follows_numpy() {
        assert_eq!(
            broadcast(&[1, 64, 8, 8], &[64, 1, 1]),
            Some(vec![1, 64, 8, 8])
        );
        assert_eq!(broadcast(&[1, 64, 8, 8], &[1, 64, 4, 4]), None);
        assert_eq!(broadcast(&[3], &[1, 3]), Some(vec![1, 3]));
    }

    #[test]
    fn reshape_copies_zeros_and_infers_one_size() {
        assert_eq!(
            reshape(&[1, 64, 1, 1], &[0, -1], false),
            Ok(Some(vec![1, 64]))
        );
        assert!(reshape(&[1, 64, 2, 2], &[1, 100], false).is_err());
        assert_eq!(reshape(&[1, 6], &[-1, -1], false), Ok(None));
    }
}
