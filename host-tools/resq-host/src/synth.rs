//! Synthetic, randomly initialised ResNets serialised as ONNX.
//!
//! These give the importer / quantizer realistic graphs to chew on without
//! shipping pretrained weights: the topology, node names and parameter names
//! mirror what `torch.onnx.export` produces for torchvision's ResNets (and for
//! the usual CIFAR ResNets of He et al.), BatchNormalization is left unfused,
//! and the weights follow torchvision's initialisation with non-trivial BN
//! statistics so the BN-folding and calibration paths see real work.
//!
//! Everything is deterministic: the same spec always yields the same bytes.

use std::fmt;
use std::str::FromStr;

use anyhow::{ensure, Result};
use prost::Message;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{dimension, Dimension};
use tract_onnx::pb::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

/// ONNX operator set the graphs are written against. At this opset Slice and
/// Pad take their parameters as tensor inputs rather than attributes, as in
/// current PyTorch exports.
const OPSET: i64 = 13;
/// IR version matching opset 13 (ONNX 1.8 / 1.9 era).
const IR_VERSION: i64 = 8;
const PRODUCER: &str = "resq synth";
/// Name of the graph input: a float32 `[1, 3, S, S]` NCHW image.
pub const INPUT_NAME: &str = "input";
/// Name of the graph output: float32 `[1, classes]` logits.
pub const OUTPUT_NAME: &str = "logits";

/// PyTorch's `BatchNorm2d` default epsilon.
const BN_EPSILON: f32 = 1e-5;
/// Range of BN gamma for ordinary BatchNormalization nodes.
const GAMMA: (f32, f32) = (0.5, 1.5);
/// Range of BN gamma for the last BN of each residual branch.
///
/// Why: eval-mode BN uses fixed running statistics, so it does not
/// re-normalise anything. With the branch output about as large as its
/// input, every residual `Add` grows the activations, geometrically in depth:
/// with gamma ~ U(0.5, 1.5) here too, the RMS after the last block of a
/// ResNet-152 at 64x64 reached ~1e6 (ResNet-101 ~1e4, CIFAR-110 ~1e5).
/// Damping the branch by ~0.2 makes each block grow the variance by only a
/// few percent; the block outputs then stay at RMS 0.25..2 for every
/// architecture here. Trained ResNets look like this too: the last BN of a
/// branch typically ends up with small gammas (and "zero-init residual"
/// training starts them at 0).
const RESIDUAL_TAIL_GAMMA: (f32, f32) = (0.1, 0.3);

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// The torchvision ImageNet ResNet variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// 18 layers, basic blocks [2, 2, 2, 2].
    ResNet18,
    /// 34 layers, basic blocks [3, 4, 6, 3].
    ResNet34,
    /// 50 layers, bottleneck blocks [3, 4, 6, 3].
    ResNet50,
    /// 101 layers, bottleneck blocks [3, 4, 23, 3].
    ResNet101,
    /// 152 layers, bottleneck blocks [3, 8, 36, 3].
    ResNet152,
}

impl Arch {
    /// All variants, smallest first.
    pub const ALL: [Arch; 5] = [
        Arch::ResNet18,
        Arch::ResNet34,
        Arch::ResNet50,
        Arch::ResNet101,
        Arch::ResNet152,
    ];

    /// Lower-case name as used by torchvision (`"resnet50"`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::ResNet18 => "resnet18",
            Arch::ResNet34 => "resnet34",
            Arch::ResNet50 => "resnet50",
            Arch::ResNet101 => "resnet101",
            Arch::ResNet152 => "resnet152",
        }
    }

    /// Number of residual blocks in layer1..layer4.
    fn blocks(self) -> [u32; 4] {
        match self {
            Arch::ResNet18 => [2, 2, 2, 2],
            Arch::ResNet34 | Arch::ResNet50 => [3, 4, 6, 3],
            Arch::ResNet101 => [3, 4, 23, 3],
            Arch::ResNet152 => [3, 8, 36, 3],
        }
    }

    fn bottleneck(self) -> bool {
        matches!(self, Arch::ResNet50 | Arch::ResNet101 | Arch::ResNet152)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error returned when parsing an unknown architecture name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown ResNet architecture {name:?}; valid names are: {}",
    valid_arch_names()
)]
pub struct UnknownArch {
    /// The string that failed to parse.
    pub name: String,
}

fn valid_arch_names() -> String {
    Arch::ALL.map(Arch::name).join(", ")
}

impl FromStr for Arch {
    type Err = UnknownArch;

    /// Parses `"resnet18"` .. `"resnet152"` (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Arch::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownArch { name: s.to_owned() })
    }
}

/// Parameters of a synthetic torchvision ResNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynthSpec {
    /// Depth / block type.
    pub arch: Arch,
    /// Input height and width in pixels; a multiple of 32 (224 for ImageNet).
    pub size: u32,
    /// Number of output classes (width of the `fc` layer).
    pub classes: u32,
    /// Seed of the weight generator.
    pub seed: u64,
}

impl SynthSpec {
    fn validate(&self) -> Result<()> {
        // The network halves the resolution 5 times (stem conv, maxpool,
        // layer2..4); anything else leaves odd feature maps the reference
        // models never see.
        ensure!(
            self.size >= 32 && self.size.is_multiple_of(32),
            "input size {} is not supported: {} downsamples by 32, so the size must be \
             a multiple of 32 and at least 32 (e.g. 224)",
            self.size,
            self.arch
        );
        ensure!(self.classes >= 1, "classes must be at least 1, got 0");
        Ok(())
    }
}

/// Builds a torchvision-layout ResNet (v1.5: stride on the 3x3 conv of
/// bottlenecks) with random weights and returns the serialised ONNX model.
///
/// Input `"input"`: float32 `[1, 3, size, size]`; output `"logits"`: float32
/// `[1, classes]`. Node and parameter names follow `torch.onnx.export`
/// (`/layer1/layer1.0/conv1/Conv`, `layer1.0.conv1.weight`, ...).
pub fn synth_resnet(spec: &SynthSpec) -> Result<Vec<u8>> {
    spec.validate()?;
    let mut b = Builder::new(spec.seed);
    let root = Scope::root();

    let mut x = b.conv(&root.child("conv1"), INPUT_NAME, 3, 64, 7, 2);
    x = b.batch_norm(&root.child("bn1"), &x, 64, GAMMA);
    x = b.relu(&root.child("relu"), &x);
    x = b.max_pool(&root.child("maxpool"), &x);

    let mut channels = 64;
    for (stage, (blocks, planes)) in spec
        .arch
        .blocks()
        .into_iter()
        .zip([64, 128, 256, 512])
        .enumerate()
    {
        let layer = root.child(&format!("layer{}", stage + 1));
        for i in 0..blocks {
            // torchvision downsamples in the first block of layer2..layer4.
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            let block = layer.item(i);
            (x, channels) = if spec.arch.bottleneck() {
                bottleneck_block(&mut b, &block, &x, channels, planes, stride)
            } else {
                let y = basic_block(
                    &mut b,
                    &block,
                    &x,
                    channels,
                    planes,
                    stride,
                    Shortcut::Projection,
                );
                (y, planes)
            };
        }
    }

    let logits = head(&mut b, &root, &x, channels, spec.classes);
    Ok(b.finish(spec.arch.name(), spec.size, spec.classes, logits))
}

/// How a CIFAR ResNet block matches its shortcut to a smaller, wider output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shortcut {
    /// "Option A": subsample spatially (Slice with steps 2) and zero-pad the
    /// new channels (Pad). Parameter-free.
    ZeroPad,
    /// "Option B": 1x1 conv with stride 2 followed by BatchNormalization.
    Projection,
}

/// Parameters of a synthetic CIFAR ResNet (32x32 input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CifarSpec {
    /// Total depth `6n + 2` (8, 14, 20, 32, 44, 56, 110, ...); each of the
    /// three stages has `n` basic blocks.
    pub depth: u32,
    /// Shortcut used where a block halves the resolution and doubles the
    /// width (first block of stages 2 and 3).
    pub shortcut: Shortcut,
    /// Pre-activation ResNet (v2, He et al. 2016) instead of the original.
    pub preact: bool,
    /// Number of output classes (width of the `fc` layer).
    pub classes: u32,
    /// Seed of the weight generator.
    pub seed: u64,
}

impl CifarSpec {
    /// Fixed input resolution of CIFAR ResNets.
    pub const SIZE: u32 = 32;

    fn validate(&self) -> Result<()> {
        ensure!(
            self.depth >= 8 && (self.depth - 2).is_multiple_of(6),
            "CIFAR ResNet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), got {}",
            self.depth
        );
        ensure!(self.classes >= 1, "classes must be at least 1, got 0");
        Ok(())
    }
}

/// Builds a CIFAR-style ResNet (He et al. 2015: 3x3 stem with 16 channels,
/// three stages of 16/32/64 channels, 32x32 input) with random weights and
/// returns the serialised ONNX model.
///
/// With `preact` the blocks are pre-activation (BN-Relu-conv-BN-Relu-conv,
/// no Relu after the Add), the stem is a bare conv and a final BN-Relu sits
/// before the pooling, so BatchNormalization nodes follow Add and Conv
/// outputs that carry no Relu.
pub fn synth_cifar_resnet(spec: &CifarSpec) -> Result<Vec<u8>> {
    spec.validate()?;
    let n = (spec.depth - 2) / 6;
    let mut b = Builder::new(spec.seed);
    let root = Scope::root();

    let mut x = b.conv(&root.child("conv1"), INPUT_NAME, 3, 16, 3, 1);
    if !spec.preact {
        x = b.batch_norm(&root.child("bn1"), &x, 16, GAMMA);
        x = b.relu(&root.child("relu"), &x);
    }

    let mut channels = 16;
    for (stage, planes) in [16, 32, 64].into_iter().enumerate() {
        let layer = root.child(&format!("layer{}", stage + 1));
        for i in 0..n {
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            let block = layer.item(i);
            x = if spec.preact {
                preact_block(&mut b, &block, &x, channels, planes, stride, spec.shortcut)
            } else {
                basic_block(&mut b, &block, &x, channels, planes, stride, spec.shortcut)
            };
            channels = planes;
        }
    }

    if spec.preact {
        // v2 blocks end on a bare Add: normalise and activate once more
        // before pooling.
        x = b.batch_norm(&root.child("bn_final"), &x, channels, GAMMA);
        x = b.relu(&root.child("relu_final"), &x);
    }

    let logits = head(&mut b, &root, &x, channels, spec.classes);
    let name = format!(
        "cifar_{}resnet{}_{}",
        if spec.preact { "preact_" } else { "" },
        spec.depth,
        match spec.shortcut {
            Shortcut::ZeroPad => "zeropad",
            Shortcut::Projection => "projection",
        }
    );
    Ok(b.finish(&name, CifarSpec::SIZE, spec.classes, logits))
}

// ---------------------------------------------------------------------------
// Blocks
// ---------------------------------------------------------------------------

/// Post-activation basic block: conv3x3-bn-relu-conv3x3-bn, + shortcut, Add,
/// Relu. Returns the output tensor name (`planes` channels).
fn basic_block(
    b: &mut Builder,
    s: &Scope,
    x: &str,
    c_in: u32,
    planes: u32,
    stride: u32,
    shortcut: Shortcut,
) -> String {
    let mut y = b.conv(&s.child("conv1"), x, c_in, planes, 3, stride);
    y = b.batch_norm(&s.child("bn1"), &y, planes, GAMMA);
    y = b.relu(&s.child("relu"), &y);
    y = b.conv(&s.child("conv2"), &y, planes, planes, 3, 1);
    y = b.batch_norm(&s.child("bn2"), &y, planes, RESIDUAL_TAIL_GAMMA);
    let identity = b.shortcut(s, x, c_in, planes, stride, shortcut);
    let sum = b.add(s, &y, &identity);
    // torch.onnx names the second call of the shared `self.relu` "relu_1".
    b.relu(&s.child("relu_1"), &sum)
}

/// torchvision v1.5 bottleneck: conv1x1-bn-relu-conv3x3(stride)-bn-relu-
/// conv1x1-bn, + shortcut, Add, Relu. Returns `(output, 4 * planes)`.
fn bottleneck_block(
    b: &mut Builder,
    s: &Scope,
    x: &str,
    c_in: u32,
    planes: u32,
    stride: u32,
) -> (String, u32) {
    const EXPANSION: u32 = 4;
    let c_out = planes * EXPANSION;
    let mut y = b.conv(&s.child("conv1"), x, c_in, planes, 1, 1);
    y = b.batch_norm(&s.child("bn1"), &y, planes, GAMMA);
    y = b.relu(&s.child("relu"), &y);
    y = b.conv(&s.child("conv2"), &y, planes, planes, 3, stride);
    y = b.batch_norm(&s.child("bn2"), &y, planes, GAMMA);
    y = b.relu(&s.child("relu_1"), &y);
    y = b.conv(&s.child("conv3"), &y, planes, c_out, 1, 1);
    y = b.batch_norm(&s.child("bn3"), &y, c_out, RESIDUAL_TAIL_GAMMA);
    let identity = b.shortcut(s, x, c_in, c_out, stride, Shortcut::Projection);
    let sum = b.add(s, &y, &identity);
    (b.relu(&s.child("relu_2"), &sum), c_out)
}

/// Pre-activation basic block: BN-Relu-conv3x3-BN-Relu-conv3x3, + shortcut
/// taken from the raw block input, Add (no Relu).
fn preact_block(
    b: &mut Builder,
    s: &Scope,
    x: &str,
    c_in: u32,
    planes: u32,
    stride: u32,
    shortcut: Shortcut,
) -> String {
    let mut y = b.batch_norm(&s.child("bn1"), x, c_in, GAMMA);
    y = b.relu(&s.child("relu"), &y);
    y = b.conv(&s.child("conv1"), &y, c_in, planes, 3, stride);
    // Last BN of the branch: damped for the same reason as in v1 blocks.
    // It scales the input of conv2 and hence (Relu being positively
    // homogeneous) the branch output.
    y = b.batch_norm(&s.child("bn2"), &y, planes, RESIDUAL_TAIL_GAMMA);
    y = b.relu(&s.child("relu_1"), &y);
    y = b.conv(&s.child("conv2"), &y, planes, planes, 3, 1);
    let identity = b.shortcut(s, x, c_in, planes, stride, shortcut);
    b.add(s, &y, &identity)
}

/// GlobalAveragePool -> Flatten -> Gemm, producing the graph output.
fn head(b: &mut Builder, root: &Scope, x: &str, features: u32, classes: u32) -> String {
    let pooled = b.node(&root.child("avgpool"), "GlobalAveragePool", &[x], vec![]);
    let flat = b.node(root, "Flatten", &[&pooled], vec![attr_int("axis", 1)]);
    b.gemm(&root.child("fc"), &flat, features, classes, OUTPUT_NAME)
}

// ---------------------------------------------------------------------------
// Graph builder
// ---------------------------------------------------------------------------

/// Where a layer sits in the module tree, spelled the two ways the PyTorch
/// ONNX exporter uses.
#[derive(Clone, Debug)]
struct Scope {
    /// Node-name prefix, e.g. `/layer1/layer1.0/conv1`.
    path: String,
    /// Parameter (initializer) prefix, e.g. `layer1.0.conv1`.
    param: String,
}

impl Scope {
    fn root() -> Self {
        Scope {
            path: String::new(),
            param: String::new(),
        }
    }

    /// A named submodule (`self.conv1`).
    fn child(&self, attr: &str) -> Self {
        let param = if self.param.is_empty() {
            attr.to_owned()
        } else {
            format!("{}.{attr}", self.param)
        };
        Scope {
            path: format!("{}/{attr}", self.path),
            param,
        }
    }

    /// Item `idx` of an `nn.Sequential`: the exporter scopes it as
    /// `<seq>.<idx>` inside the sequential, e.g. `/layer1/layer1.0`.
    fn item(&self, idx: u32) -> Self {
        let seq = self.path.rsplit('/').next().unwrap_or_default();
        Scope {
            path: format!("{}/{seq}.{idx}", self.path),
            param: format!("{}.{idx}", self.param),
        }
    }

    fn param_name(&self, name: &str) -> String {
        format!("{}.{name}", self.param)
    }
}

/// Accumulates nodes and initializers of one graph.
struct Builder {
    seed: u64,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl Builder {
    fn new(seed: u64) -> Self {
        Builder {
            seed,
            nodes: Vec::new(),
            initializers: Vec::new(),
        }
    }

    /// Adds node `<scope>/<op_type>` and returns its output name
    /// (`<node name>_output_0`, like torch.onnx).
    fn node(
        &mut self,
        scope: &Scope,
        op_type: &str,
        inputs: &[&str],
        attributes: Vec<AttributeProto>,
    ) -> String {
        let name = format!("{}/{op_type}", scope.path);
        let output = format!("{name}_output_0");
        self.push_node(name, op_type, inputs, attributes, output)
    }

    fn push_node(
        &mut self,
        name: String,
        op_type: &str,
        inputs: &[&str],
        attribute: Vec<AttributeProto>,
        output: String,
    ) -> String {
        // Names are derived from the module tree; a clash would be a bug in
        // the block builders, not something a caller can provoke.
        debug_assert!(
            self.nodes.iter().all(|n| n.name != name),
            "duplicate node {name}"
        );
        self.nodes.push(NodeProto {
            name,
            op_type: op_type.to_owned(),
            input: inputs.iter().map(|s| (*s).to_owned()).collect(),
            output: vec![output.clone()],
            attribute,
            ..Default::default()
        });
        output
    }

    /// Generator for one parameter tensor. Seeding per parameter name keeps
    /// every tensor's values independent of the order the graph is built in.
    fn rng(&self, param: &str) -> Rng {
        Rng::new(self.seed ^ fnv1a(param.as_bytes()))
    }

    fn f32_initializer(
        &mut self,
        name: String,
        dims: &[i64],
        values: impl Iterator<Item = f32>,
    ) -> String {
        let len = dims.iter().product::<i64>() as usize;
        let mut raw_data = Vec::with_capacity(len * 4);
        for v in values {
            raw_data.extend_from_slice(&v.to_le_bytes());
        }
        debug_assert_eq!(raw_data.len(), len * 4, "{name}: data does not match dims");
        self.push_initializer(name, DataType::Float, dims, raw_data)
    }

    fn i64_initializer(&mut self, name: String, values: &[i64]) -> String {
        let raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.push_initializer(name, DataType::Int64, &[values.len() as i64], raw_data)
    }

    fn push_initializer(
        &mut self,
        name: String,
        data_type: DataType,
        dims: &[i64],
        raw_data: Vec<u8>,
    ) -> String {
        self.initializers.push(TensorProto {
            name: name.clone(),
            data_type: data_type as i32,
            dims: dims.to_vec(),
            raw_data,
            ..Default::default()
        });
        name
    }

    /// Bias-free Conv with "same" padding (`kernel / 2`) and He-normal
    /// weights in torchvision's `fan_out` mode.
    fn conv(
        &mut self,
        s: &Scope,
        x: &str,
        c_in: u32,
        c_out: u32,
        kernel: u32,
        stride: u32,
    ) -> String {
        let (k, st, pad) = (i64::from(kernel), i64::from(stride), i64::from(kernel / 2));
        let name = s.param_name("weight");
        let std = (2.0 / f64::from(c_out * kernel * kernel)).sqrt();
        let mut rng = self.rng(&name);
        let count = c_in * c_out * kernel * kernel;
        let weight = self.f32_initializer(
            name,
            &[i64::from(c_out), i64::from(c_in), k, k],
            (0..count).map(|_| (rng.normal() * std) as f32),
        );
        self.node(
            s,
            "Conv",
            &[x, &weight],
            vec![
                attr_ints("dilations", &[1, 1]),
                attr_int("group", 1),
                attr_ints("kernel_shape", &[k, k]),
                attr_ints("pads", &[pad, pad, pad, pad]),
                attr_ints("strides", &[st, st]),
            ],
        )
    }

    /// Inference-mode BatchNormalization with randomised, non-trivial
    /// statistics so that folding it into the preceding conv matters.
    fn batch_norm(&mut self, s: &Scope, x: &str, channels: u32, gamma: (f32, f32)) -> String {
        let dims = [i64::from(channels)];
        let n = channels as usize;
        let param = |b: &mut Self, what: &str, f: &dyn Fn(&mut Rng) -> f64| {
            let name = s.param_name(what);
            let mut rng = b.rng(&name);
            b.f32_initializer(name, &dims, (0..n).map(|_| f(&mut rng) as f32))
        };
        let scale = param(self, "weight", &|r| {
            r.uniform(f64::from(gamma.0), f64::from(gamma.1))
        });
        let bias = param(self, "bias", &|r| r.normal() * 0.1);
        let mean = param(self, "running_mean", &|r| r.normal() * 0.1);
        let var = param(self, "running_var", &|r| r.uniform(0.5, 2.0));
        self.node(
            s,
            "BatchNormalization",
            &[x, &scale, &bias, &mean, &var],
            vec![
                attr_float("epsilon", BN_EPSILON),
                attr_float("momentum", 0.9),
            ],
        )
    }

    fn relu(&mut self, s: &Scope, x: &str) -> String {
        self.node(s, "Relu", &[x], vec![])
    }

    fn add(&mut self, block: &Scope, a: &str, b: &str) -> String {
        self.node(block, "Add", &[a, b], vec![])
    }

    /// torchvision stem pooling: 3x3, stride 2, pad 1.
    fn max_pool(&mut self, s: &Scope, x: &str) -> String {
        self.node(
            s,
            "MaxPool",
            &[x],
            vec![
                attr_int("ceil_mode", 0),
                attr_ints("dilations", &[1, 1]),
                attr_ints("kernel_shape", &[3, 3]),
                attr_ints("pads", &[1, 1, 1, 1]),
                attr_ints("strides", &[2, 2]),
            ],
        )
    }

    /// `nn.Linear` as torch exports it: Gemm with transB=1 and PyTorch's
    /// default uniform(-1/sqrt(in), 1/sqrt(in)) init for weight and bias.
    fn gemm(&mut self, s: &Scope, x: &str, features: u32, classes: u32, output: &str) -> String {
        let bound = 1.0 / f64::from(features).sqrt();
        let weight_name = s.param_name("weight");
        let mut rng = self.rng(&weight_name);
        let weight = self.f32_initializer(
            weight_name,
            &[i64::from(classes), i64::from(features)],
            (0..u64::from(classes) * u64::from(features))
                .map(|_| rng.uniform(-bound, bound) as f32),
        );
        let bias_name = s.param_name("bias");
        let mut rng = self.rng(&bias_name);
        let bias = self.f32_initializer(
            bias_name,
            &[i64::from(classes)],
            (0..classes).map(|_| rng.uniform(-bound, bound) as f32),
        );
        self.push_node(
            format!("{}/Gemm", s.path),
            "Gemm",
            &[x, &weight, &bias],
            vec![
                attr_float("alpha", 1.0),
                attr_float("beta", 1.0),
                attr_int("transB", 1),
            ],
            output.to_owned(),
        )
    }

    /// Shortcut of a residual block: the input itself when shapes match,
    /// otherwise a zero-pad ("option A") or projection ("option B") branch.
    fn shortcut(
        &mut self,
        block: &Scope,
        x: &str,
        c_in: u32,
        c_out: u32,
        stride: u32,
        kind: Shortcut,
    ) -> String {
        if stride == 1 && c_in == c_out {
            return x.to_owned();
        }
        match kind {
            Shortcut::Projection => {
                let ds = block.child("downsample");
                let y = self.conv(&ds.item(0), x, c_in, c_out, 1, stride);
                self.batch_norm(&ds.item(1), &y, c_out, GAMMA)
            }
            Shortcut::ZeroPad => {
                self.zero_pad_shortcut(&block.child("shortcut"), x, c_in, c_out, stride)
            }
        }
    }

    /// `F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))`
    /// exported at opset 13: Slice with steps, then a constant Pad, with all
    /// parameters as int64 (and f32 scalar) initializers.
    fn zero_pad_shortcut(
        &mut self,
        s: &Scope,
        x: &str,
        c_in: u32,
        c_out: u32,
        stride: u32,
    ) -> String {
        // Option A doubles the width while halving the resolution: pad
        // planes/4 channels on each side.
        let pad = i64::from(c_out / 4);
        debug_assert_eq!(
            i64::from(c_in) + 2 * pad,
            i64::from(c_out),
            "zero-pad shortcut needs c_out = 2 * c_in"
        );
        let st = i64::from(stride);
        let starts = self.i64_initializer(s.param_name("slice_starts"), &[0, 0]);
        // i64::MAX is what torch emits for an open-ended slice.
        let ends = self.i64_initializer(s.param_name("slice_ends"), &[i64::MAX, i64::MAX]);
        let axes = self.i64_initializer(s.param_name("slice_axes"), &[2, 3]);
        let steps = self.i64_initializer(s.param_name("slice_steps"), &[st, st]);
        let sliced = self.node(s, "Slice", &[x, &starts, &ends, &axes, &steps], vec![]);

        // ONNX pads layout: all begins (N, C, H, W) then all ends.
        let pads = self.i64_initializer(s.param_name("pads"), &[0, pad, 0, 0, 0, pad, 0, 0]);
        let zero = self.f32_initializer(s.param_name("pad_value"), &[], std::iter::once(0.0));
        self.node(
            s,
            "Pad",
            &[&sliced, &pads, &zero],
            vec![attr_string("mode", "constant")],
        )
    }

    /// Wraps the graph into an opset-13 model and serialises it.
    fn finish(self, graph_name: &str, size: u32, classes: u32, output: String) -> Vec<u8> {
        let s = i64::from(size);
        let graph = GraphProto {
            name: graph_name.to_owned(),
            node: self.nodes,
            initializer: self.initializers,
            input: vec![f32_value_info(INPUT_NAME, &[1, 3, s, s])],
            output: vec![f32_value_info(&output, &[1, i64::from(classes)])],
            ..Default::default()
        };
        let model = ModelProto {
            ir_version: IR_VERSION,
            producer_name: PRODUCER.to_owned(),
            producer_version: env!("CARGO_PKG_VERSION").to_owned(),
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            graph: Some(graph),
            ..Default::default()
        };
        model.encode_to_vec()
    }
}

fn f32_value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| Dimension {
            value: Some(dimension::Value::DimValue(d)),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.to_owned(),
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

fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: AttributeType::Ints as i32,
        ints: ints.to_vec(),
        ..Default::default()
    }
}

fn attr_float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: AttributeType::Float as i32,
        f,
        ..Default::default()
    }
}

fn attr_string(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: AttributeType::String as i32,
        s: s.as_bytes().to_vec(),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------
// Deterministic random numbers
// ---------------------------------------------------------------------------

/// FNV-1a, used to turn parameter names into independent seeds.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// SplitMix64 with Box-Muller normals: tiny, fast, and reproducible on every
/// platform, which is all the weight generator needs.
struct Rng {
    state: u64,
    /// Second normal of the last Box-Muller pair.
    spare: Option<f64>,
}

impl Rng {
    fn new(seed: u64) -> Self {
        Rng {
            state: seed,
            spare: None,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Standard normal via Box-Muller.
    fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        // 1 - unit() lies in (0, 1], keeping ln() finite.
        let radius = (-2.0 * (1.0 - self.unit()).ln()).sqrt();
        let angle = std::f64::consts::TAU * self.unit();
        self.spare = Some(radius * angle.sin());
        radius * angle.cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normals_have_unit_variance() {
        let mut rng = Rng::new(42);
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
    }

    #[test]
    fn scope_names_match_torch_export() {
        let block = Scope::root().child("layer1").item(0);
        let ds = block.child("downsample").item(0);
        assert_eq!(block.child("conv1").path, "/layer1/layer1.0/conv1");
        assert_eq!(ds.path, "/layer1/layer1.0/downsample/downsample.0");
        assert_eq!(ds.param_name("weight"), "layer1.0.downsample.0.weight");
    }
}
