//! ONNX → resq float IR, through tract's typed graph.
//!
//! tract loads the ONNX and lowers it to tract-core ops (`into_typed`): BatchNormalization
//! becomes `Mul` + `Add` by constants, Relu becomes `Max` with 0, Gemm becomes `EinSum` + `Add`,
//! GlobalAveragePool becomes `Reduce<Sum>` + `Div`. The importer walks that graph in evaluation
//! order with one handler per op family (`Importer::HANDLERS`) and fuses as it goes: per-channel affine
//! ops into the producing convolution, ReLU / Clip into the producer's clamp, and a residual
//! `Add` into the epilogue of the convolution that computes last.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::{
    self as tops, array::PadMode, binary::TypedBinOp, change_axes::AxisOp, cnn, einsum::EinSum,
    konst::Const, nn::Reduce, nn::Reducer, nn::Softmax, source::TypedSource,
};
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

use crate::ir::{Activation, Conv, Graph, Layer, Op, Tensor};

/// Ops the importer understands, for error messages.
pub const SUPPORTED_OPS: &str = "Conv (dilation 1, any padding, groups), BatchNormalization, Relu, Clip, Add, Sub, Mul, Div \
    by constants, MaxPool, AveragePool, GlobalAveragePool, ReduceMean (H, W), Flatten, Reshape, Squeeze, Unsqueeze, \
    Gemm, MatMul, Softmax, Transpose (NHWC <-> NCHW), Pad (constant 0), Slice (incl. steps), Identity, Dropout, Cast, \
    QuantizeLinear, DequantizeLinear, QLinearConv, QLinearMatMul, QLinearAdd, QLinearMul, QLinearAveragePool, \
    QLinearGlobalAveragePool, QGemm, QLinearSoftmax";

/// A loaded source model: tract's typed graph with a concrete batch-1 input.
pub struct Source {
    /// The typed graph.
    pub model: TypedModel,
    /// Input `[c, h, w]` as the model lays it out… see [`Source::layout`].
    pub input_shape: Vec<usize>,
    /// Layout of the input.
    pub layout: resq_format::Layout,
    /// Pre-quantized weights: ONNX node name → the step of each output channel of its
    /// DequantizeLinear'd weight (one value when per tensor).
    pub weight_steps: HashMap<String, Vec<f32>>,
}

/// Loads an ONNX file, fixing the batch to 1.
pub fn load(path: &Path, layout: resq_format::Layout) -> Result<Source> {
    // tract 0.23 panics on some malformed graphs where it should return an error (an empty
    // Conv `strides`, Pad sizes that overflow, a Squeeze axis past the rank: see
    // fuzz/regressions/onnx_import): those become an error about the file.
    resq_io::contain_panic(|| load_unguarded(path, layout)).unwrap_or_else(|p| {
        Err(resq_io::bad_input(format!(
            "{}: tract failed on the graph ({p}); the model is malformed: check it with \
             onnx.checker / onnxruntime, or re-export it",
            path.display()
        )))
    })
}

fn load_unguarded(path: &Path, layout: resq_format::Layout) -> Result<Source> {
    // value_info and output shapes are only hints, and exporters get them wrong: onnxruntime's
    // quantize_static pins the batch to 1 in value_info while the input says `N`, which tract
    // refuses to unify. The input's shape (fixed below) determines every other shape anyway.
    let onnx = tract_onnx::onnx()
        .with_ignore_value_info(true)
        .with_ignore_output_shapes(true);
    let mut proto = read_proto(&onnx, path)?;
    let dir = path.parent().and_then(Path::to_str);
    crate::qoperator::rewrite_to_qdq(&mut proto, dir)
        .with_context(|| format!("reading the QOperator model {}", path.display()))?;
    float16_to_float32(&mut proto, dir)
        .with_context(|| format!("reading the float16 model {}", path.display()))?;
    let weight_steps = dequantized_weight_steps(&proto, dir)
        .with_context(|| format!("reading the weight quantization of {}", path.display()))?;
    let parsed = onnx
        .parse(&proto, dir)
        .with_context(|| format!("tract cannot load {} as ONNX", path.display()))?;
    ensure!(
        parsed.unresolved_inputs.is_empty(),
        "{}: nodes read values that nothing in the file defines: {:?}",
        path.display(),
        parsed.unresolved_inputs
    );
    let mut model = parsed.model;
    let fact = model.input_fact(0)?.clone();
    let shape = fact
        .shape
        .dims()
        .map(|d| d.concretize().and_then(|d| d.to_usize().ok()))
        .collect::<Vec<_>>();
    ensure!(
        shape.len() == 4,
        "{}: the input has rank {}, resq expects an image tensor [N, C, H, W] or [N, H, W, C]",
        path.display(),
        shape.len()
    );
    let dims: Vec<usize> = shape.iter().skip(1).map(|d| d.unwrap_or(0)).collect();
    ensure!(
        dims.iter().all(|&d| d > 0),
        "{}: the input's spatial size and channels must be fixed in the ONNX file (found {:?})",
        path.display(),
        fact.shape
    );
    // An input whose channels are last ([N, H, W, 3], as Keras / tf2onnx write it) is NHWC
    // whatever the caller assumed: an NCHW reading would have H channels and be refused.
    let colour = |d: usize| d == 1 || d == 3;
    let layout = if layout == resq_format::Layout::Nchw && !colour(dims[0]) && colour(dims[2]) {
        resq_format::Layout::Nhwc
    } else {
        layout
    };
    let mut full = vec![1usize];
    full.extend(&dims);
    // Operands that cannot meet are refused here, by node, before tract's symbolic shape
    // inference spends minutes on them.
    if let Some(graph) = &proto.graph {
        crate::shape_check::check(graph, &full)
            .map_err(|why| resq_io::bad_input(format!("{}: {why}", path.display())))?;
    }
    model.set_input_fact(0, f32::fact(&full).into())?;
    let mut typed = model
        .into_typed()
        .with_context(|| format!("tract cannot type the graph of {}", path.display()))?;
    typed.prop_consts()?;
    Ok(Source {
        model: typed,
        input_shape: dims,
        layout,
        weight_steps,
    })
}

/// float16 models (fp16 initializers between Casts, as onnxconverter-common writes them) read as
/// float32: every fp16 tensor, Cast and type becomes its f32 counterpart. resq quantizes from f32
/// anyway, and tract does not type every op (Gemm) in f16.
fn float16_to_float32(proto: &mut tract_onnx::pb::ModelProto, dir: Option<&str>) -> Result<()> {
    use tract_onnx::pb::{tensor_proto::DataType, type_proto, ValueInfoProto};
    let (f16, f32) = (DataType::Float16 as i32, DataType::Float as i32);
    let widen = |t: &mut tract_onnx::pb::TensorProto| -> Result<()> {
        if t.data_type == f16 {
            let v = tract_onnx::tensor::load_tensor(
                &tract_onnx::data_resolver::MmapDataResolver,
                t,
                dir,
            )
            .with_context(|| format!("reading float16 tensor `{}`", t.name))?;
            *t = tract_onnx::pb::TensorProto {
                name: std::mem::take(&mut t.name),
                dims: std::mem::take(&mut t.dims),
                data_type: f32,
                float_data: f32_values(&v)?,
                ..Default::default()
            };
        }
        Ok(())
    };
    let Some(graph) = proto.graph.as_mut() else {
        return Ok(());
    };
    for t in &mut graph.initializer {
        widen(t)?;
    }
    for node in &mut graph.node {
        for a in &mut node.attribute {
            if node.op_type == "Cast" && a.name == "to" && a.i == f16 as i64 {
                a.i = f32 as i64;
            }
            if let Some(t) = a.t.as_mut() {
                widen(t)?;
            }
        }
    }
    let retype = |v: &mut ValueInfoProto| {
        if let Some(type_proto::Value::TensorType(t)) =
            v.r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            if t.elem_type == f16 {
                t.elem_type = f32;
            }
        }
    };
    graph.input.iter_mut().for_each(retype);
    graph.output.iter_mut().for_each(retype);
    graph.value_info.iter_mut().for_each(retype);
    Ok(())
}

/// For each node reading a weight through `DequantizeLinear(initializer, scale, …)` (QDQ
/// models; QOperator ones after their rewrite), the scale per output channel. tract folds
/// those DequantizeLinear into float constants; the steps let the quantizer find the model's
/// own integers again instead of re-deriving a grid of its own.
fn dequantized_weight_steps(
    proto: &tract_onnx::pb::ModelProto,
    dir: Option<&str>,
) -> Result<HashMap<String, Vec<f32>>> {
    let Some(graph) = &proto.graph else {
        return Ok(HashMap::new());
    };
    let initializers: HashMap<&str, &tract_onnx::pb::TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let mut scale_of_value = HashMap::new();
    for node in &graph.node {
        let [x, scale, ..] = node.input.as_slice() else {
            continue;
        };
        if node.op_type != "DequantizeLinear" || !initializers.contains_key(x.as_str()) {
            continue;
        }
        let Some(scale) = initializers.get(scale.as_str()) else {
            continue;
        };
        let t = tract_onnx::tensor::load_tensor(
            &tract_onnx::data_resolver::MmapDataResolver,
            scale,
            dir,
        )?;
        if let Some(out) = node.output.first() {
            scale_of_value.insert(out.clone(), f32_values(&t)?);
        }
    }
    let mut steps = HashMap::new();
    for node in &graph.node {
        if !matches!(node.op_type.as_str(), "Conv" | "Gemm" | "MatMul") {
            continue;
        }
        if let Some(s) = node.input.get(1).and_then(|w| scale_of_value.get(w)) {
            steps.insert(node.name.clone(), s.clone());
        }
    }
    Ok(steps)
}

/// The ONNX protobuf of `path`, with a clear error for files that are not ONNX.
fn read_proto(onnx: &tract_onnx::Onnx, path: &Path) -> Result<tract_onnx::pb::ModelProto> {
    // Bounded before tract reads it: a device (/dev/zero) or a sparse multi-GB file is refused
    // by its length, not by running out of memory.
    let meta = std::fs::metadata(path).map_err(|e| {
        resq_io::bad_input(format!(
            "cannot open ONNX model {}: {}",
            path.display(),
            if e.kind() == std::io::ErrorKind::NotFound {
                "no such file".to_string()
            } else {
                e.to_string()
            }
        ))
    })?;
    if !meta.is_file() {
        return Err(resq_io::bad_input(format!(
            "{} is not a regular file; pass an .onnx model file",
            path.display()
        )));
    }
    if meta.len() > resq_io::MAX_ONNX_BYTES {
        return Err(resq_io::bad_input(format!(
            "{} is {} bytes, over resq's {} MiB limit for an ONNX file (protobuf's own limit)",
            path.display(),
            meta.len(),
            resq_io::MAX_ONNX_BYTES >> 20
        )));
    }
    let mut head = [0u8; 8];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .with_context(|| format!("cannot read {}", path.display()))?;
    ensure!(
        !(n == head.len() && head == resq_format::MAGIC),
        "{} is already a resq model file (converted); `resq inspect` shows it, `resq eval` runs it. \
         `resq convert` takes the source ONNX model",
        path.display()
    );
    onnx.proto_model_for_path(path).with_context(|| {
        format!(
            "{} is not an ONNX model (its protobuf does not decode); resq converts .onnx files",
            path.display()
        )
    })
}

/// What an outlet of the tract graph holds, as the importer sees it.
#[derive(Clone, Debug)]
enum Value {
    Const(Arc<tract_onnx::prelude::Tensor>),
    /// An IR tensor, as tract lays it out.
    Act {
        tensor: usize,
        view: View,
    },
    /// The sum half of a global average pool, waiting for its division.
    PendingSum {
        tensor: usize,
    },
    /// A QDQ model's QuantizeLinear output, waiting for its DequantizeLinear.
    Quantized {
        tensor: usize,
        view: View,
    },
    /// The softmax of the output logits: only QuantizeLinear / DequantizeLinear may follow.
    Probs {
        tensor: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum View {
    Nchw,
    Nhwc,
    /// Flattened in NCHW order from a `[c, h, w]` map.
    Flat {
        c: usize,
        h: usize,
        w: usize,
    },
}

type Handler<'m> = fn(&mut Importer<'m>, &TypedNode) -> Result<Option<Vec<Value>>>;

struct Importer<'a> {
    model: &'a TypedModel,
    values: HashMap<OutletId, Value>,
    graph: Graph,
    /// Layer writing each tensor.
    producer: Vec<Option<usize>>,
    layout: resq_format::Layout,
    weight_steps: &'a HashMap<String, Vec<f32>>,
}

/// Imports a loaded model into the float IR.
pub fn import(source: &Source, name: &str) -> Result<Graph> {
    let model = &source.model;
    let mut imp = Importer {
        model,
        values: HashMap::new(),
        graph: Graph {
            name: name.to_string(),
            tensors: vec![],
            layers: vec![],
            input: 0,
            output: 0,
            softmax: false,
        },
        producer: vec![],
        layout: source.layout,
        weight_steps: &source.weight_steps,
    };
    for id in model.eval_order()? {
        let node = model.node(id);
        let mut handled = None;
        for handler in Importer::HANDLERS {
            if let Some(values) = handler(&mut imp, node)
                .with_context(|| format!("node `{}` ({})", node.name, node.op.name()))?
            {
                handled = Some(values);
                break;
            }
        }
        let Some(values) = handled else {
            bail!(
                "node `{}`: op `{}` is not supported by resq{} (supported: {SUPPORTED_OPS})",
                node.name,
                node.op.name(),
                neighbourhood(model, node)
            );
        };
        for (slot, v) in values.into_iter().enumerate() {
            imp.values.insert(OutletId::new(id, slot), v);
        }
    }
    let outputs = model.output_outlets()?;
    ensure!(
        outputs.len() == 1,
        "the model has {} outputs; resq supports one (the class scores)",
        outputs.len()
    );
    match imp.values.get(&outputs[0]) {
        Some(
            Value::Act { tensor, .. } | Value::Quantized { tensor, .. } | Value::Probs { tensor },
        ) => {
            let t = *tensor;
            if !imp.graph.softmax {
                imp.graph.output = t;
            }
            ensure!(
                imp.graph.tensors[imp.graph.output].shape[..2] == [1, 1],
                "the output `{}` is not a vector of class scores (shape {:?})",
                imp.graph.tensors[imp.graph.output].name,
                imp.graph.tensors[imp.graph.output].shape
            );
        }
        _ => bail!("the model's output is not computed from its input"),
    }
    ensure!(!imp.graph.layers.is_empty(), "the model has no layers");
    Ok(imp.graph)
}

/// `, after `a` (Conv) and before `b` (Relu)`: where an unsupported node sits.
fn neighbourhood(model: &TypedModel, node: &TypedNode) -> String {
    let describe = |id: usize| {
        let n = model.node(id);
        format!("`{}` ({})", n.name, n.op.name())
    };
    let before: Vec<String> = node
        .inputs
        .iter()
        .filter(|o| model.node(o.node).op_as::<Const>().is_none())
        .map(|o| describe(o.node))
        .collect();
    let after: Vec<String> = node
        .outputs
        .iter()
        .flat_map(|o| o.successors.iter().map(|i| describe(i.node)))
        .collect();
    let mut s = String::new();
    if !before.is_empty() {
        s += &format!(", after {}", before.join(", "));
    }
    if !after.is_empty() {
        s += &format!(", before {}", after.join(", "));
    }
    s
}

fn shape_of(model: &TypedModel, outlet: OutletId) -> Result<Vec<usize>> {
    let fact = model.outlet_fact(outlet)?;
    fact.shape
        .iter()
        .map(|d| {
            d.to_usize()
                .map_err(|_| anyhow::anyhow!("symbolic dimension {d}"))
        })
        .collect()
}

fn f32_values(t: &tract_onnx::prelude::Tensor) -> Result<Vec<f32>> {
    let t = t.cast_to::<f32>()?;
    Ok(t.to_plain_array_view::<f32>()?.iter().copied().collect())
}

impl<'m> Importer<'m> {
    /// One handler per op family; the first that recognises a node handles it.
    const HANDLERS: [Handler<'m>; 14] = [
        Importer::source,
        Importer::konst,
        Importer::pass_through,
        Importer::conv,
        Importer::pool,
        Importer::binary,
        Importer::reduce,
        Importer::axis,
        Importer::einsum,
        Importer::softmax,
        Importer::pad,
        Importer::slice,
        Importer::strided_slice,
        Importer::qdq,
    ];

    fn value(&self, outlet: OutletId) -> Result<&Value> {
        self.values
            .get(&outlet)
            .context("internal: input value not imported yet")
    }

    fn input_values(&self, node: &TypedNode) -> Result<Vec<Value>> {
        node.inputs
            .iter()
            .map(|o| self.value(*o).cloned())
            .collect()
    }

    fn new_tensor(&mut self, name: &str, shape: [usize; 3], outlet: OutletId) -> usize {
        self.graph.tensors.push(Tensor {
            name: name.to_string(),
            shape,
            outlet,
            qparams: None,
        });
        self.producer.push(None);
        self.graph.tensors.len() - 1
    }

    fn push_layer(&mut self, name: &str, op: Op) -> usize {
        let out = op.output();
        self.graph.layers.push(Layer {
            name: name.to_string(),
            op,
        });
        self.producer[out] = Some(self.graph.layers.len() - 1);
        out
    }

    /// An NCHW activation input, as `[h, w, c]` tensor index.
    fn nchw(&self, v: &Value, what: &str) -> Result<usize> {
        match v {
            Value::Act { tensor, view: View::Nchw } => Ok(*tensor),
            Value::Act { view: View::Nhwc, .. } => bail!(
                "{what} receives an NHWC tensor; transpose the input to NCHW in the model or convert with --layout nhwc"
            ),
            _ => bail!("{what} must take an image tensor computed from the input"),
        }
    }

    fn act_out(&mut self, node: &TypedNode, shape: [usize; 3]) -> usize {
        self.new_tensor(&node.name, shape, OutletId::new(node.id, 0))
    }

    fn nchw_out_shape(&self, node: &TypedNode) -> Result<[usize; 3]> {
        let s = shape_of(self.model, OutletId::new(node.id, 0))?;
        ensure!(s.len() == 4, "expected a 4-D output, found {s:?}");
        Ok([s[2], s[3], s[1]])
    }

    /// The layer that writes `tensor`, if its value may still be changed in place: it has one
    /// consumer in tract (the node being imported) and is not a graph output.
    fn foldable(&self, tensor: usize) -> Option<usize> {
        if self.graph.tensors[tensor].qparams.is_some() {
            return None;
        }
        let layer = self.producer[tensor]?;
        let outlet = self.graph.tensors[tensor].outlet;
        let single = self.model.outlet_successors(outlet).len() == 1;
        let is_output = self
            .model
            .output_outlets()
            .is_ok_and(|o| o.contains(&outlet));
        (single && !is_output).then_some(layer)
    }

    fn source(&mut self, node: &TypedNode) -> Result<Option<Vec<Value>>> {
        if node.op_as::<TypedSource>().is_none() {
            return Ok(None);
        }
        let s = shape_of(self.model, OutletId::new(node.id, 0))?;
        let (shape, view) = match self.layout {
            resq_format::Layout::Nchw => ([s[2], s[3], s[1]], View::Nchw),
            resq_format::Layout::Nhwc => ([s[1], s[2], s[3]], View::Nhwc),
        };
        ensure!(
            shape[2] == 1 || shape[2] == 3,
            "the input `{}` has {} channels in {:?} layout; resq takes 1 (grey) or 3 (colour) — is --layout right?",
            node.name,
            shape[2],
            self.layout
        );
        let t = self.act_out(node, shape);
        self.graph.input = t;
        Ok(Some(vec![Value::Act { tensor: t, view }]))
    }

    fn konst(&mut self, node: &TypedNode) -> Result<Option<Vec<Value>>> {
        let Some(c) = node.op_as::<Const>() else {
            return Ok(None);
        };
        let t = c.val();
        if t.datum_type().is_float() {
            if let Some(i) = f32_values(t)?.iter().position(|v| v.is_nan()) {
                bail!(
                    "the constant `{}` (shape {:?}) holds NaN at index {i}: the model's weights are damaged; \
                     re-export it from a checkpoint without NaN",
                    node.name,
                    t.shape()
                );
            }
        }
        Ok(Some(vec![Value::Const(t.clone())]))
    }

    /// Identity (Dropout at inference), and float Casts (fp16 models: `Cast` to and from
    /// float16 around the computation) leave the values as they are.
    fn pass_through(&mut self, node: &TypedNode) -> Result<Option<Vec<Value>>> {
        let is_float_cast = node
            .op_as::<tops::cast::Cast>()
            .is_some_and(|c| c.to.is_float());
        if node.op_as::<tops::identity::Identity>().is_none() && !is_float_cast {
            return Ok(None);
        }
        Ok(Some(vec![self.input_values(node)?.remove(0)]))
    }

    /// The pre-quantized weight steps of `node` (tract keeps the ONNX node's name, or makes it a
    /// prefix of the names of the ops it lowers to), one per output channel.
    fn weight_steps(&self, node: &TypedNode, channels: usize) -> Option<Vec<f32>> {
        let found = self.weight_steps.get(&node.name).or_else(|| {
            self.weight_steps
                .iter()
                .filter(|(name, _)| {
                    node.name.len() > name.len()
                        && node.name.starts_with(name.as_str())
                        && node.name.as_bytes()[name.len()] == b'.'
                })
                .max_by_key(|(name, _)| name.len())
                .map(|(_, s)| s)
        });
        match found? {
            s if s.len() == 1 => Some(vec![s[0]; channels]),
            s if s.len() == channels => Some(s.clone()),
            _ => None,
        }
    }

    /// Refuses weights or biases that are not finite, naming the constant.
    fn check_finite(&self, node: &TypedNode, slot: usize, values: &[f32]) -> Result<()> {
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            let name = node
                .inputs
                .get(slot)
                .map_or("?", |o| self.model.node(o.node).name.as_str());
            bail!(
                "the constant `{name}` holds {} at index {i}: resq cannot quantize an infinite or NaN weight; \
                 fix or re-export the model",
                values[i]
            );
        }
        Ok(())
    }

    fn conv(&mut self, node: &TypedNode) -> Result<Option<Vec<Value>>> {
        let Some(conv) = node.op_as::<cnn::Conv>() else {
            return Ok(None);
        };
        ensure!(
            conv.q_params.is_none(),
            "quantized convolutions are not supported here; convert the float model"
        );
        let inputs = self.input_values(node)?;
        let x = self.nchw(&inputs[0], "Conv")?;
        let (Value::Const(weights_t), Some(Value::Const(bias))) = (&inputs[1], inputs.get(2))
        else {
            bail!("the weights and bias must be constants (initializers)");
        };
        let ps = &conv.pool_spec;
        ensure!(
            ps.data_format == tops::nn::DataFormat::NCHW,
            "data format {:?} is not supported",
            ps.data_format
        );
        ensure!(
            ps.kernel_shape.len() == 2,
            "only 2-D convolutions are supported"
        );
        let dilations = ps.dilations();
        ensure!(
            dilations.iter().all(|&d| d == 1),
            "dilation {:?} is not supported; resq runs dilation 1",
            dilations
        );
        let [ih, iw, ic] = self.graph.tensors[x].shape;
        let out = self.nchw_out_shape(node)?;
        let (kernel, stride, pad) = window(ps, [ih, iw], [out[0], out[1]])?;
        let groups = conv.group;
        let oc = out[2];
        let cin_g = ic / groups;
        // Kernel to [cout][kh][kw][cin/g].
        let k = weights_t.cast_to::<f32>()?;
        let k = k.to_plain_array_view::<f32>()?;
        let k = k.into_dimensionality::<tract_ndarray::Ix4>()?;
        let k = match conv.kernel_fmt {
            cnn::KernelFormat::OIHW => k.permuted_axes([0, 2, 3, 1]),
            cnn::KernelFormat::OHWI => k,
            cnn::KernelFormat::HWIO => k.permuted_axes([3, 0, 1, 2]),
        };
        ensure!(
            k.shape() == [oc, kernel[0], kernel[1], cin_g],
            "kernel shape {:?} does not match {oc} outputs of {}×{}×{cin_g}",
            k.shape(),
            kernel[0],
            kernel[1]
        );
        let weights: Vec<f32> = k.iter().copied().collect();
        self.check_finite(node, 1, &weights)?;
        let b = f32_values(bias)?;
        self.check_finite(node, 2, &b)?;
        let bias = match b.len() {
            1 => vec![b[0]; oc],
            n if n == oc => b,
            n => bail!("bias has {n} values for {oc} output channels"),
        };
        let y = self.act_out(node, out);
        self.push_layer(
            &node.name,
            Op::Conv(Conv {
                input: x,
                output: y,
                kernel,
                stride,
                pad,
                groups,
                weight_step: self.weight_steps(node, oc),
                weights,
                bias,
                residual: None,
                act: Activation::Identity,
            }),
        );
        Ok(Some(nchw_act(y)))
    }

    fn pool(&mut self, node: &TypedNode) -> Result<Option<Vec<Value>>> {
        let (ps, avg) = if let Some(p) = node.op_as::<cnn::MaxPool>() {
            ensure!(
                p.with_index_outputs.is_none(),
                "MaxPool with indices output is not supported"
            );
            (&p.pool_spec, None)
        } else if let Some(p) = node.op_as::<cnn::SumPool>() {
            ensure!(
                p.normalize,
                "sum pooling without normalisation is not supported"
            );
            (&p.pool_spec, Some(p.count_include_pad))
        } else {
            return Ok(None);
        };
        let inputs = self.input_values(node)?;
        let x = self.nchw(&inputs[0], "pooling")?;
        ensure!(
            ps.data_format == tops::nn::DataFormat::NCHW,
            "data format {:?} is not supported",
            ps.data_format
        );
        let [ih, iw, _] = self.graph.tensors[x].shape;
        let out = self.nchw_out_shape(node)?;
        let (kernel, stride, pad) = window(ps, [ih, iw], [out[0], out[1]])?;
        let y = self.act_out(node, out);
        let op = match avg {
            None => Op::MaxPool {
                input: x,
                output: y,
                kernel,
                stride,
                pad,
            },
            Some(count_include_pad) => Op::AvgPool {
                input: x,
                output: y,
                kernel,
                stride,
                pad,
                count_include_pad,
            },
        };
        self.push_layer(&node.name, op);
        Ok(Some(nchw_act(y)))
    }

    fn reduce(&mut self, node: &TypedNode) -> Result<Option<Vec<Value>>> {
        let Some(r) = node.op_as::<Reduce>() else {
            return Ok(None);
        };
        let inputs = self.input_values(node)?;
        // The spatial axes: H, W of NCHW, or of NHWC (a TensorFlow ReduceMean over [1, 2]).
        let (x, spatial) = match &inputs[0] {
            Value::Act {
                tensor,
                view: View::Nhwc,
            } => (*tensor, [1, 2]),
            v => (self.nchw(v, "Reduce")?, [2, 3]),
        };
        ensure!(
            matches!(r.reducer, Reducer::Sum) && r.axes.as_slice() == spatial,
            "only global average pooling (a sum over H and W) is supported, not {:?} over axes {:?}",
            r.reducer,
            r.axes
        );
        Ok(Some(vec![Value::PendingSum { tensor: x }]))
    }

    fn binary(&mut self, node: &TypedNode) -> Result<Option<Vec<Value>>> {
        let Some(bin) = node.op_as::<TypedBinOp>() else {
            return Ok(None);
        };
        let inputs = self.input_values(node)?;
        let name = bin.0.name().to_string();
        let (act, konst, act_first) = match (&inputs[0], &inputs[1]) {
            (Value::Const(c), v) => (v.clone(), Some(c.clone()), false),
            (v, Value::Const(c)) => (v.clone(), Some(c.clone()), true),
            (a, _) => (a.clone(), None, true),
        };
        let Some(c) = konst else {
            ensure!(
                name == "Add",
                "`{name}` of two activations is not supported (only Add, as a residual connection)"
            );
            return self.residual_add(node, &inputs[0], &inputs[1]).map(Some);
        };
        let cv = f32_values(&c)?;
        if let Value::PendingSum { tensor } = act {
            return self
                .global_avg(node, tensor, &name, &cv, act_first)
                .map(Some);
        }
        let Value::Act { tensor, view } = act else {
            bail!("`{name}` of two constants should have been folded")
        };
        let channels = self.graph.tensors[tensor].shape[2];
        let per_channel = per_channel(&c, &cv, channels, view)?;
        if matches!(name.as_str(), "Mul" | "Div" | "Add" | "Sub") {
            self.check_finite(node, act_first as usize, &per_channel)?;
        }
        let y = match (name.as_str(), act_first) {
            ("Mul", _) => self.affine(node, tensor, Some(&per_channel), None)?,
            ("Div", true) => self.affine(node, tensor, Some(&per_channel.iter().map(|v| 1.0 / v).collect::<Vec<_>>()), None)?,
            ("Add", _) => self.affine(node, tensor, None, Some(&per_channel))?,
            ("Sub", true) => self.affine(node, tensor, None, Some(&per_channel.iter().map(|v| -v).collect::<Vec<_>>()))?,
            ("Max", _) | ("Min", _) => {
                ensure!(
                    per_channel.windows(2).all(|w| w[0] == w[1]),
                    "`{name}` with a per-channel bound is not supported; use Relu or Clip"
                );
                let bound = per_channel[0];
                let (lo, hi) = if name == "Max" { (bound, f32::INFINITY) } else { (f32::NEG_INFINITY, bound) };
                self.activation(node, tensor, lo, hi)?
            }
            _ => bail!("`{name}` with a constant is not supported (supported: Mul, Div, Add, Sub, Max, Min)"),
        };
        Ok(Some(vec![Value::Act { tensor: y, view }]))
    }

    /// `x · scale + shift` per channel: folded into the producing convolution when possible,
    /// else a depthwise 1×1 convolution (BatchNormalization after an Add, as in ResNet v2).
    fn affine(
        &mut self,
        node: &TypedNode,
        x: usize,
        scale: Option<&[f32]>,
        shift: Option<&[f32]>,
    ) -> Result<usize> {
        if let Some(l) = self.foldable(x) {
            if let Op::Conv(conv) = &mut self.graph.layers[l].op {
                let can_scale = scale.is_none() || conv.residual.is_none();
                if conv.act == Activation::Identity && can_scale {
                    let flen = conv.filter_len();
                    if let Some(s) = scale {
                        for (oc, filter) in conv.weights.chunks_mut(flen).enumerate() {
                            filter.iter_mut().for_each(|w| *w *= s[oc]);
                            conv.bias[oc] *= s[oc];
                        }
                        if let Some(steps) = &mut conv.weight_step {
                            steps.iter_mut().zip(s).for_each(|(st, s)| *st *= s.abs());
                        }
                    }
                    if let Some(b) = shift {
                        conv.bias.iter_mut().zip(b).for_each(|(v, b)| *v += b);
                    }
                    self.graph.layers[l].name = node.name.clone();
                    self.graph.tensors[x].outlet = OutletId::new(node.id, 0);
                    self.graph.tensors[x].name = node.name.clone();
                    return Ok(x);
                }
            }
        }
        let [h, w, c] = self.graph.tensors[x].shape;
        let y = self.act_out(node, [h, w, c]);
        self.push_layer(
            &node.name,
            Op::Conv(Conv {
                input: x,
                output: y,
                kernel: [1, 1],
                stride: [1, 1],
                pad: [0; 4],
                groups: c,
                weights: scale.map_or(vec![1.0; c], <[f32]>::to_vec),
                bias: shift.map_or(vec![0.0; c], <[f32]>::to_vec),
                weight_step: None,
                residual: None,
                act: Activation::Identity,
            }),
        );
        Ok(y)
    }

    /// ReLU / Clip: into the producer's clamp when possible, else an identity affine layer.
    fn activation(&mut self, node: &TypedNode, x: usize, lo: f32, hi: f32) -> Result<usize> {
        let x = match self.foldable(x).map(|l| &self.graph.layers[l].op) {
            Some(Op::Conv(_)) | Some(Op::Add { .. }) => x,
            _ => self.affine(
                node,
                x,
                Some(&vec![1.0; self.graph.tensors[x].shape[2]]),
                None,
            )?,
        };
        let Some(l) = self.producer[x] else {
            bail!("internal: activation without producer")
        };
        match &mut self.graph.layers[l].op {
            Op::Conv(c) => c.act = c.act.then_clip(lo, hi),
            Op::Add { act, .. } => *act = act.then_clip(lo, hi),
            _ => bail!("internal: activation on a layer without clamp"),
        }
        self.graph.layers[l].name = node.name.clone();
        self.graph.tensors[x].outlet = OutletId::new(node.id, 0);
        self.graph.tensors[x].name = node.name.clone();
        Ok(x)
    }

    fn residual_add(&mut self, node: &TypedNode, a: &Value, b: &Value) -> Result<Vec<Value>> {
        let (
            Value::Act {
                tensor: ta,
                view: va,
            },
            Value::Act {
                tensor: tb,
                view: vb,
            },
        ) = (a, b)
        else {
            bail!("Add operands must both be image tensors");
        };
        // Both maps in the same axis order (NCHW, or NHWC where a TensorFlow graph kept it):
        // resq's tensors are [h, w, c] whatever order tract sees them in.
        ensure!(
            va == vb && matches!(va, View::Nchw | View::Nhwc),
            "Add operands must both be image tensors in the same layout (found {va:?} and {vb:?})"
        );
        let view = *va;
        let (ta, tb) = (*ta, *tb);
        ensure!(
            self.graph.tensors[ta].shape == self.graph.tensors[tb].shape,
            "Add of shapes {:?} and {:?}: broadcasting adds are not supported",
            self.graph.tensors[ta].shape,
            self.graph.tensors[tb].shape
        );
        // Fuse into the convolution computed last, provided the other operand exists by then.
        let candidates = [(ta, tb), (tb, ta)];
        let mut best: Option<(usize, usize)> = None;
        for (main, other) in candidates {
            let Some(l) = self.foldable(main) else {
                continue;
            };
            let Op::Conv(c) = &self.graph.layers[l].op else {
                continue;
            };
            if c.residual.is_some() || c.act != Activation::Identity {
                continue;
            }
            let other_ready = self.producer[other].is_none_or(|p| p < l);
            if other_ready && best.is_none_or(|(bl, _)| l > bl) {
                best = Some((l, other));
            }
        }
        if let Some((l, other)) = best {
            let out = self.graph.layers[l].op.output();
            if let Op::Conv(c) = &mut self.graph.layers[l].op {
                c.residual = Some(other);
            }
            self.graph.layers[l].name = node.name.clone();
            self.graph.tensors[out].outlet = OutletId::new(node.id, 0);
            self.graph.tensors[out].name = node.name.clone();
            return Ok(vec![Value::Act { tensor: out, view }]);
        }
        let shape = self.graph.tensors[ta].shape;
        let y = self.act_out(node, shape);
        self.push_layer(
            &node.name,
            Op::Add {
                a: ta,
                b: tb,
                output: y,
                act: Activation::Identity,
            },
        );
        Ok(vec![Value::Act { tensor: y, view }])
    }

    fn global_avg(
        &mut self,
        node: &TypedNode,
        x: usize,
        op: &str,
        c: &[f32],
        act_first: bool,
    ) -> Result<Vec<Value>> {
        let [h, w, ch] = self.graph.tensors[x].shape;
        let n = (h * w) as f32;
        let ok = c.len() == 1
            && act_first
            && match op {
                "Div" => (c[0] - n).abs() < 1e-3,
                "Mul" => (c[0] * n - 1.0).abs() < 1e-4,
                _ => false,
            };
        ensure!(
            ok,
            "a sum over H and W must be followed by a division by H·W (global average pooling)"
        );
        let y = self.act_out(node, [1, 1, ch]);
        self.push_layer(
            &node.name,
            Op::AvgPool {
                input: x,
                output: y,
                kernel: [h, w],
                stride: [1, 1],
                pad: [0; 4],
                count_include_pad: true,
            },
        );
        Ok(nchw_act(y))
    }

    /// Axis moves, reshapes, flattens, squeezes: resq tensors keep their `[h, w, c]` data and
    /// only the view changes. A `[1, C, 1, 1]` map is a vector, so any reshape that keeps its C
    /// values (tf2onnx writes `[N, 1, 1, C]` and rank-5 steps between pooling and MatMul) is one.
    fn axis(&mut self, node: &TypedNode) -> Result<Option<Vec<Value>>> {
        let Some(op) = node.op_as::<AxisOp>() else {
            return Ok(None);
        };
        let inputs = self.input_values(node)?;
        let (tensor, view, quantized) = match inputs[0].clone() {
            Value::Act { tensor, view } => (tensor, view, false),
            Value::Quantized { tensor, view } => (tensor, view, true),
            _ => bail!("reshaping a constant should have been folded"),
        };
        let out_shape = shape_of(self.model, OutletId::new(node.id, 0))?;
        let elems: usize = out_shape.iter().product();
        let [h, w, c] = self.graph.tensors[tensor].shape;
        let all_but_last_are_one = out_shape.iter().rev().skip(1).all(|&d| d == 1);
        let new_view = match (view, op) {
            // NHWC graph input moved to NCHW.
            (View::Nhwc, AxisOp::Move(3, 1)) => View::Nchw,
            (View::Nchw, AxisOp::Move(1, 3)) => View::Nhwc,
            // Back to the map it was flattened from.
            (View::Nchw | View::Flat { .. }, _) if out_shape == [1, c, h, w] => View::Nchw,
            // A vector: every layout orders its values the same way; the view follows the
            // shape tract gives it.
            _ if h * w == 1 && elems == c => match out_shape.as_slice() {
                [1, d, 1, 1] if *d == c => View::Nchw,
                [1, 1, 1, d] if *d == c => View::Nhwc,
                _ => View::Flat { c, h, w },
            },
            // Flatten / Reshape of an NCHW map to [1, C·H·W] (possibly via unit axes).
            (View::Nchw | View::Flat { .. }, _) if elems == c * h * w && all_but_last_are_one => {
                View::Flat { c, h, w }
            }
            (View::Nhwc, _) => bail!(
                "`{}` reshapes an NHWC {h}×{w}×{c} map to {out_shape:?}; resq flattens maps in NCHW order \
                 (global pooling first, or a Transpose to NCHW before the reshape)",
                node.name
            ),
            _ => bail!(
                "`{}` reshapes the {c}×{h}×{w} map to {out_shape:?}; resq supports Flatten / Reshape to \
                 [1, C·H·W] and reshapes of pooled [1, C, 1, 1] vectors",
                node.name
            ),
        };
        Ok(Some(vec![if quantized {
            Value::Quantized {
                tensor,
                view: new_view,
            }
        } else {
            Value::Act {
                tensor,
                view: new_view,
            }
        }]))
    }

    fn einsum(&mut self, node: &TypedNode) -> Result<Option<Vec<Value>>> {
        let Some(op) = node.op_as::<EinSum>() else {
            return Ok(None);
        };
        ensure!(op.q_params.is_none(), "quantized MatMul is not supported");
        let inputs = self.input_values(node)?;
        ensure!(
            inputs.len() == 2,
            "EinSum with {} inputs is not supported",
            inputs.len()
        );
        let expr = op.axes.to_string();
        let (lhs, out) = expr.split_once("->").context("malformed einsum")?;
        let terms: Vec<&str> = lhs.split(',').collect();
        let (act_i, w_i) = match (&inputs[0], &inputs[1]) {
            (Value::Act { .. }, Value::Const(_)) => (0, 1),
            (Value::Const(_), Value::Act { .. }) => (1, 0),
            _ => bail!("MatMul / Gemm needs one activation and one constant weight matrix"),
        };
        let (Value::Act { tensor: x, view }, Value::Const(wt)) = (&inputs[act_i], &inputs[w_i])
        else {
            unreachable!()
        };
        let (at, wt_axes) = (terms[act_i].as_bytes(), terms[w_i].as_bytes());
        ensure!(
            at.len() == 2 && wt_axes.len() == 2 && out.len() == 2,
            "only 2-D MatMul / Gemm is supported ({expr})"
        );
        let k = at[1];
        ensure!(
            !out.as_bytes().contains(&k) && wt_axes.contains(&k),
            "unexpected MatMul form {expr}"
        );
        let View::Flat { c, h, w } = *view else {
            bail!("Gemm / MatMul must follow Flatten")
        };
        self.check_finite(node, w_i, &f32_values(wt)?)?;
        let wv = wt.cast_to::<f32>()?;
        let wv = wv
            .to_plain_array_view::<f32>()?
            .into_dimensionality::<tract_ndarray::Ix2>()?;
        // Orient to [n][k].
        let wv = if wt_axes[1] == k {
            wv
        } else {
            wv.reversed_axes()
        };
        let (n, kk) = (wv.shape()[0], wv.shape()[1]);
        ensure!(
            kk == c * h * w,
            "weight matrix has {kk} inputs for a {c}×{h}×{w} feature map"
        );
        // A fully connected layer over a flattened NCHW map is a convolution whose kernel
        // covers the map; reorder its weights from NCHW flattening to [n][h][w][c].
        let mut weights = Vec::with_capacity(n * kk);
        for o in 0..n {
            for y in 0..h {
                for xx in 0..w {
                    for ch in 0..c {
                        weights.push(wv[[o, (ch * h + y) * w + xx]]);
                    }
                }
            }
        }
        let y = self.act_out(node, [1, 1, n]);
        self.push_layer(
            &node.name,
            Op::Conv(Conv {
                input: *x,
                output: y,
                kernel: [h, w],
                stride: [1, 1],
                pad: [0; 4],
                groups: 1,
                weight_step: self.weight_steps(node, n),
                weights,
                bias: vec![0.0; n],
                residual: None,
                act: Activation::Identity,
            }),
        );
        Ok(Some(vec![Value::Act {
            tensor: y,
            view: View::Flat { c: n, h: 1, w: 1 },
        }]))
    }

    fn softmax(&mut self, node: &TypedNode) -> Result<Option<Vec<Value>>> {
        let Some(_) = node.op_as::<Softmax>() else {
            return Ok(None);
        };
        let inputs = self.input_values(node)?;
        let Value::Act { tensor, view } = inputs[0].clone() else {
            bail!("softmax of a constant")
        };
        let _ = view;
        self.graph.output = tensor;
        self.graph.softmax = true;
        Ok(Some(vec![Value::Probs { tensor }]))
    }

    fn pad(&mut self, node: &TypedNode) -> Result<Option<Vec<Value>>> {
        let Some(op) = node.op_as::<tops::array::Pad>() else {
            return Ok(None);
        };
        let inputs = self.input_values(node)?;
        // TensorFlow graphs (tf2onnx's TFLite path) pad NHWC maps before transposing them.
        let (x, view) = match &inputs[0] {
            Value::Act {
                tensor,
                view: View::Nhwc,
            } => (*tensor, View::Nhwc),
            v => (self.nchw(v, "Pad")?, View::Nchw),
        };
        match &op.mode {
            PadMode::Constant(v) if f32_values(v)?.iter().all(|&v| v == 0.0) => {}
            m => bail!("Pad mode {m:?} is not supported; resq supports constant zero padding"),
        }
        ensure!(
            op.pads.len() == 4 && op.pads[0] == (0, 0),
            "Pad must pad only C, H and W"
        );
        let [(cb, ca), (t, b), (l, r)] = match view {
            View::Nhwc => [op.pads[3], op.pads[1], op.pads[2]],
            _ => [op.pads[1], op.pads[2], op.pads[3]],
        };
        let [h, w, c] = self.graph.tensors[x].shape;
        let y = self.act_out(node, [h + t + b, w + l + r, c + cb + ca]);
        self.push_layer(
            &node.name,
            Op::Pad {
                input: x,
                output: y,
                pads: [t, b, l, r, cb, ca],
            },
        );
        Ok(Some(vec![Value::Act { tensor: y, view }]))
    }

    fn slice(&mut self, node: &TypedNode) -> Result<Option<Vec<Value>>> {
        let (axis, start, step) = if let Some(s) = node.op_as::<tops::array::Slice>() {
            let start = s.start.to_usize()?;
            (s.axis, start, 1usize)
        } else if let Some(d) = node.op_as::<tops::Downsample>() {
            ensure!(d.stride > 0, "negative slice steps are not supported");
            (d.axis, d.modulo, d.stride as usize)
        } else {
            return Ok(None);
        };
        let inputs = self.input_values(node)?;
        let x = self.nchw(&inputs[0], "Slice")?;
        ensure!(
            axis == 2 || axis == 3,
            "Slice on axis {axis} is not supported; resq slices H and W (zero-padding shortcuts)"
        );
        let out = self.nchw_out_shape(node)?;
        let [h, w, _] = self.graph.tensors[x].shape;
        let ax = axis - 2;
        let expected = ([h, w][ax].saturating_sub(start)).div_ceil(step);
        ensure!(
            out[ax] == expected,
            "Slice with an end before the last element is not supported (output {} of {})",
            out[ax],
            [h, w][ax]
        );
        let (mut s0, mut st) = ([0, 0], [1, 1]);
        s0[ax] = start;
        st[ax] = step;
        let y = self.act_out(node, out);
        self.push_layer(
            &node.name,
            Op::Subsample {
                input: x,
                output: y,
                start: s0,
                step: st,
            },
        );
        Ok(Some(nchw_act(y)))
    }
}

impl Importer<'_> {
    /// QuantizeLinear / DequantizeLinear pairs of a pre-quantized (QDQ) model: the pair marks a
    /// tensor quantized with the DequantizeLinear's scale and zero point, which the file keeps.
    /// (tract has already folded the DequantizeLinear of every weight into a float constant.)
    fn qdq(&mut self, node: &TypedNode) -> Result<Option<Vec<Value>>> {
        let is_quantize = node
            .op_as::<tops::element_wise::ElementWiseOp>()
            .is_some_and(|op| matches!(&*op.0.name(), "QuantizeLinearI8" | "QuantizeLinearU8"));
        let dequantize = node.op_as::<tops::quant::DequantizeLinearF32>();
        if !is_quantize && dequantize.is_none() {
            return Ok(None);
        }
        let input = self.input_values(node)?.remove(0);
        let value = match (input, dequantize) {
            (Value::Probs { tensor }, _) => Value::Probs { tensor },
            (Value::Act { tensor, view }, None) => Value::Quantized { tensor, view },
            (Value::Quantized { tensor, view }, Some(dq)) => {
                // uint8 activations (onnxruntime's default U8) hold q + 128 of the int8 value
                // with the same scale: the zero point moves by 128, the reals stay the same.
                let unsigned =
                    self.model.outlet_fact(node.inputs[0])?.datum_type == u8::datum_type();
                let zero_point = if unsigned {
                    dq.zero_point - 128
                } else {
                    dq.zero_point
                };
                let zp = i8::try_from(zero_point).map_err(|_| {
                    anyhow::anyhow!(
                        "zero point {} is outside the {} range",
                        dq.zero_point,
                        if unsigned { "uint8" } else { "int8" }
                    )
                })?;
                let t = &mut self.graph.tensors[tensor];
                match t.qparams {
                    Some((s, z)) if (s, z) != (dq.scale, zp) => bail!(
                        "tensor `{}` is quantized twice, as ({s}, {z}) and ({}, {zp}); resq needs one scale per tensor",
                        t.name,
                        dq.scale
                    ),
                    _ => t.qparams = Some((dq.scale, zp)),
                }
                Value::Act { tensor, view }
            }
            (Value::Act { .. }, Some(_)) => {
                bail!("DequantizeLinear of an activation that was not quantized")
            }
            _ => bail!(
                "QuantizeLinear / DequantizeLinear must wrap an activation or a constant weight"
            ),
        };
        Ok(Some(vec![value]))
    }

    /// ONNX Slice with steps) (CIFAR "option A" shortcuts take every other row and column).
    fn strided_slice(&mut self, node: &TypedNode) -> Result<Option<Vec<Value>>> {
        let Some(op) = node.op_as::<tops::array::StridedSlice>() else {
            return Ok(None);
        };
        ensure!(
            op.begin_mask == 0 && op.end_mask == 0 && op.shrink_axis_mask == 0,
            "StridedSlice masks are not supported"
        );
        let inputs = self.input_values(node)?;
        let x = self.nchw(&inputs[0], "Slice")?;
        let ints = |i: Option<usize>| -> Result<Option<Vec<i64>>> {
            match i.and_then(|i| inputs.get(i)) {
                None => Ok(None),
                Some(Value::Const(t)) => Ok(Some(
                    t.cast_to::<i64>()?
                        .to_plain_array_view::<i64>()?
                        .iter()
                        .copied()
                        .collect(),
                )),
                Some(_) => bail!("Slice starts, ends, axes and steps must be constants"),
            }
        };
        let begin = ints(Some(1))?.context("Slice without starts")?;
        let end = ints(Some(2))?.context("Slice without ends")?;
        let axes =
            ints(op.optional_axes_input)?.unwrap_or_else(|| (0..begin.len() as i64).collect());
        let steps = ints(op.optional_steps_input)?.unwrap_or_else(|| vec![1; begin.len()]);
        let [h, w, c] = self.graph.tensors[x].shape;
        let dims = [1, c, h, w];
        let (mut start, mut step) = ([0usize; 2], [1usize; 2]);
        for (i, &axis) in axes.iter().enumerate() {
            let axis = if axis < 0 { axis + 4 } else { axis } as usize;
            let dim = *dims.get(axis).context("Slice axis out of range")? as i64;
            let b = if begin[i] < 0 {
                begin[i] + dim
            } else {
                begin[i]
            }
            .clamp(0, dim);
            ensure!(steps[i] > 0, "negative Slice steps are not supported");
            ensure!(
                end[i] >= dim,
                "Slice ending before the last element is not supported (end {} of {dim})",
                end[i]
            );
            if b == 0 && steps[i] == 1 {
                continue;
            }
            ensure!(axis == 2 || axis == 3, "Slice on axis {axis} is not supported; resq slices H and W (zero-padding shortcuts)");
            start[axis - 2] = b as usize;
            step[axis - 2] = steps[i] as usize;
        }
        let out = self.nchw_out_shape(node)?;
        let y = self.act_out(node, out);
        self.push_layer(
            &node.name,
            Op::Subsample {
                input: x,
                output: y,
                start,
                step,
            },
        );
        Ok(Some(nchw_act(y)))
    }
}

/// The value of an NCHW activation tensor.
fn nchw_act(tensor: usize) -> Vec<Value> {
    vec![Value::Act {
        tensor,
        view: View::Nchw,
    }]
}

/// A constant as one value per channel of a `channels`-wide activation in `view`.
fn per_channel(
    c: &tract_onnx::prelude::Tensor,
    v: &[f32],
    channels: usize,
    view: View,
) -> Result<Vec<f32>> {
    if v.len() == 1 {
        return Ok(vec![v[0]; channels]);
    }
    let shape = c.shape();
    let non_unit: Vec<usize> = shape
        .iter()
        .enumerate()
        .filter(|(_, &d)| d != 1)
        .map(|(i, _)| i)
        .collect();
    let rank = shape.len();
    let channel_axis_ok = match view {
        View::Nchw => non_unit == [rank.wrapping_sub(3)] && rank >= 3,
        View::Nhwc => non_unit == [rank - 1],
        View::Flat { .. } => non_unit == [rank - 1],
    };
    ensure!(
        channel_axis_ok && v.len() == channels,
        "constant of shape {shape:?} is not per-channel for {channels} channels; resq folds only per-channel or scalar constants"
    );
    Ok(v.to_vec())
}

/// Kernel, stride and explicit `[top, left, bottom, right]` padding of a window op.
fn window(
    ps: &cnn::PoolSpec,
    input: [usize; 2],
    output: [usize; 2],
) -> Result<([usize; 2], [usize; 2], [usize; 4])> {
    let kernel = [ps.kernel_shape[0], ps.kernel_shape[1]];
    let strides = ps.strides();
    let stride = [strides[0], strides[1]];
    let computed = ps
        .padding
        .compute(&input, &ps.kernel_shape, &ps.dilations(), &strides);
    let mut pad = [
        computed[0].pad_before,
        computed[1].pad_before,
        computed[0].pad_after,
        computed[1].pad_after,
    ];
    for axis in 0..2 {
        // ceil_mode pooling: extend the padding after until the output size matches.
        while (input[axis] + pad[axis] + pad[axis + 2]).saturating_sub(kernel[axis]) / stride[axis]
            + 1
            < output[axis]
        {
            pad[axis + 2] += 1;
        }
        let got = (input[axis] + pad[axis] + pad[axis + 2]).saturating_sub(kernel[axis])
            / stride[axis]
            + 1;
        ensure!(
            got == output[axis],
            "cannot express the padding {:?} explicitly",
            ps.padding
        );
    }
    Ok((kernel, stride, pad))
}
