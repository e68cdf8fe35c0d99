//! Runs a validated `.resq` int8 graph.
//!
//! All activation memory is planned when the engine is built: one arena, with each tensor at
//! an offset chosen from tensor lifetimes so tensors that are never live together share
//! bytes. Weights are packed for the chosen kernels once, at load (into the engine, or in
//! place in the caller's copy of the file with [`Engine::from_bytes_in_place`]), and the
//! scratch buffer for prepared inputs is sized for the largest layer. [`Engine::run`] then
//! allocates nothing.
//!
//! The kernel tier ([`Isa`]) is chosen once at load: the best the CPU reports, `RESQ_ISA`,
//! or [`EngineOptions::isa`]. Every tier gives the same output bytes as the reference
//! kernels. On targets with an operating system, [`EngineOptions::threads`] > 1 starts a pool
//! of worker threads once, and convolutions and pooling split their output rows (or, for a
//! single-pixel output, their channel panels) across it; on bare-metal targets the engine is
//! `no_std` and single-threaded.
#![no_std]
#![warn(missing_docs)]
// `EngineError` carries `FormatError` (the layer name inline, no allocator on the board); it is
// returned at most once per load, never on a hot path.
#![allow(clippy::result_large_err)]

extern crate alloc;
#[cfg(any(unix, windows))]
extern crate std;

mod dispatch;
mod exec;
mod plan;
#[cfg(any(unix, windows))]
mod pool;

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use dispatch::{is_mixed, split_arena, values, Fast, Path};
use exec::{ConvExec, Weights};
pub use plan::{plan_arena, ArenaPlan};
use resq_format::{ChannelOrder, FormatError, Model, Op};
pub use resq_kernels::mixed::Values;
use resq_kernels::Kernels;
pub use resq_kernels::{Isa, IsaError};

/// A file image held in 8-byte aligned memory, so the model's i32 data can be borrowed in place.
#[derive(Clone, Debug, Default)]
pub struct AlignedBytes {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBytes {
    /// Copies `bytes` into aligned storage.
    pub fn new(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        let dst: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
        dst[..bytes.len()].copy_from_slice(bytes);
        AlignedBytes {
            words,
            len: bytes.len(),
        }
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &bytemuck::cast_slice::<u64, u8>(&self.words)[..self.len]
    }

    /// `len` zero bytes, to be filled in place (e.g. read from a file without a second copy).
    pub fn zeroed(len: usize) -> Self {
        AlignedBytes {
            words: vec![0u64; len.div_ceil(8)],
            len,
        }
    }

    /// The bytes, writable (for [`Engine::from_bytes_in_place`]).
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut::<u64, u8>(&mut self.words)[..self.len]
    }
}

/// Why an engine could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// The model file was refused.
    Format(FormatError),
    /// An input buffer has the wrong length.
    InputLength {
        /// Expected bytes.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// The requested kernel tier is unknown or cannot run here.
    Isa(IsaError),
}

impl core::fmt::Display for EngineError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EngineError::Format(e) => e.fmt(f),
            EngineError::InputLength { expected, actual } => write!(
                f,
                "input has {actual} bytes, the model expects {expected} (height · width · channels of its input)"
            ),
            EngineError::Isa(e) => write!(f, "{e} (RESQ_ISA / --isa)"),
        }
    }
}

impl core::error::Error for EngineError {}

impl From<FormatError> for EngineError {
    fn from(e: FormatError) -> Self {
        EngineError::Format(e)
    }
}

impl From<IsaError> for EngineError {
    fn from(e: IsaError) -> Self {
        EngineError::Isa(e)
    }
}

/// How an engine runs: kernel tier and threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineOptions {
    /// Threads (the calling thread included); 1 starts no workers. Ignored on bare-metal
    /// targets.
    pub threads: usize,
    /// Kernel tier; `None` takes `RESQ_ISA` when set (on targets with an OS), else the best
    /// the CPU runs ([`Isa::detect`]).
    pub isa: Option<Isa>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            threads: 1,
            isa: None,
        }
    }
}

impl EngineOptions {
    /// The tier these options select, checked against the CPU.
    pub fn resolve_isa(&self) -> Result<Isa, IsaError> {
        match self.isa {
            Some(isa) if isa.supported() => Ok(isa),
            Some(isa) => Err(IsaError::Unsupported(isa)),
            None => {
                #[cfg(any(unix, windows))]
                if let Some(isa) = Isa::from_env()? {
                    return Ok(isa);
                }
                Ok(Isa::detect())
            }
        }
    }
}

/// One model, its arena, its packed weights and a scratch buffer: `run` reads the input region
/// and writes the output region.
pub struct Engine<'m> {
    /// Boxed: the metadata's fixed-capacity lists make a `Model` tens of kB, too much to move
    /// around on a board's stack.
    model: Box<Model<'m>>,
    /// Activation memory, held as i16 so int16 tensors (at 64-byte offsets) are aligned;
    /// viewed as bytes everywhere else.
    arena: Vec<i16>,
    /// Per layer: whether it reads or writes an int16 tensor (then it runs on
    /// `resq_kernels::mixed`).
    mixed: Vec<bool>,
    regions: Vec<Range<usize>>,
    isa: Isa,
    kernels: Option<Kernels>,
    /// Per layer: how a convolution runs (`None` for other ops).
    convs: Vec<Option<ConvExec>>,
    /// Packed weights of the layers not packed in the file.
    packed: Vec<i8>,
    /// Packed biases (encoding-compensated).
    biases: Vec<i32>,
    /// Prepared inputs of the current layer.
    scratch: Vec<u8>,
    #[cfg(any(unix, windows))]
    pool: Option<pool::Pool>,
}

impl<'m> Engine<'m> {
    /// Plans memory for a validated model and packs its weights for the best kernels this CPU
    /// runs (or `RESQ_ISA`'s), single-threaded.
    pub fn new(model: Model<'m>) -> Self {
        let isa = EngineOptions::default()
            .resolve_isa()
            .unwrap_or_else(|_| Isa::detect());
        Self::build(model, isa, 1, &[])
    }

    /// Plans memory and packs weights with explicit options.
    pub fn with_options(model: Model<'m>, options: EngineOptions) -> Result<Self, EngineError> {
        let isa = options.resolve_isa()?;
        Ok(Self::build(model, isa, options.threads, &[]))
    }

    /// Parses, validates and plans a model file in one step.
    pub fn from_bytes(file: &'m [u8]) -> Result<Self, EngineError> {
        Ok(Self::new(Model::parse(file)?))
    }

    /// Parses and validates `file`, then packs the weights **in place** in that buffer, so
    /// the engine needs no second copy of them (boards with little RAM; `resq bench`).
    ///
    /// Each layer whose packed weights are exactly as large as the file's (all ResNet layers
    /// but the stem and odd-sized classifiers) is rewritten in the buffer, the header's CRC is
    /// re-sealed over the new bytes, and the buffer is parsed again. The packing is the chosen
    /// tier's: afterwards `file` no longer holds the original model (it still parses, but only
    /// this engine can run it), so read the file again to load it a second time.
    pub fn from_bytes_in_place(
        file: &'m mut [u8],
        options: EngineOptions,
    ) -> Result<Self, EngineError> {
        let isa = options.resolve_isa()?;
        let in_file = match Kernels::new(isa) {
            None => Vec::new(),
            Some(kernels) => {
                let (jobs, in_file) = {
                    let model = Model::parse(file)?;
                    let data_offset = model.header.data_offset as usize;
                    let mut jobs = Vec::new();
                    let mut in_file = vec![false; model.meta.layers.len()];
                    for (i, layer) in model.meta.layers.iter().enumerate() {
                        if is_mixed(&model, i, &layer.op) {
                            continue;
                        }
                        if let Op::Conv(c) = layer.op {
                            let exec = ConvExec::plan(&model, &c, &kernels);
                            if exec.packed_len() == Some(c.weights.len as usize) {
                                let start = data_offset + c.weights.offset as usize;
                                jobs.push((start..start + c.weights.len as usize, exec));
                                in_file[i] = true;
                            }
                        }
                    }
                    (jobs, in_file)
                };
                // `Model::parse` refuses data references sharing a byte (`OverlappingData`), so
                // packing these ranges in place changes no other array of the model.
                let mut original = Vec::new();
                for (range, exec) in &jobs {
                    original.clear();
                    original.extend_from_slice(&file[range.clone()]);
                    exec.pack(
                        bytemuck::cast_slice(&original),
                        bytemuck::cast_slice_mut(&mut file[range.clone()]),
                    );
                }
                if !jobs.is_empty() {
                    resq_format::reseal_header_crc(file);
                }
                in_file
            }
        };
        let file: &'m [u8] = file;
        Ok(Self::build(
            Model::parse(file)?,
            isa,
            options.threads,
            &in_file,
        ))
    }

    /// Plans the arena, packs what `in_file` does not mark as already packed in the file, and
    /// sizes the scratch buffer.
    fn build(model: Model<'m>, isa: Isa, threads: usize, in_file: &[bool]) -> Self {
        #[cfg(not(any(unix, windows)))]
        let _ = threads;
        let plan = plan_arena(&model);
        let kernels = Kernels::new(isa);
        let layers = &model.meta.layers;
        let mixed: Vec<bool> = layers
            .iter()
            .enumerate()
            .map(|(i, l)| is_mixed(&model, i, &l.op))
            .collect();
        let mut convs: Vec<Option<ConvExec>> = layers
            .iter()
            .zip(&mixed)
            .map(|(l, &mixed)| match (l.op, &kernels) {
                (Op::Conv(c), Some(k)) if !mixed => Some(ConvExec::plan(&model, &c, k)),
                _ => None,
            })
            .collect();
        // One exact allocation for everything packed here, so loading never holds two copies.
        let packed_len: usize = convs
            .iter()
            .enumerate()
            .filter(|(i, _)| !in_file.get(*i).copied().unwrap_or(false))
            .filter_map(|(_, c)| c.as_ref().and_then(|c| c.packed_len()))
            .sum();
        let bias_len: usize = convs.iter().flatten().map(|c| c.bias_len()).sum();
        let mut packed = Vec::with_capacity(packed_len);
        let mut biases = Vec::with_capacity(bias_len);
        let mut scratch_len = 0;
        for (i, exec) in convs.iter_mut().enumerate() {
            let (Some(exec), Op::Conv(c)) = (exec, layers[i].op) else {
                continue;
            };
            let weights = model.i8s(c.weights);
            let weights_at = if in_file.get(i).copied().unwrap_or(false) {
                Weights::InFile
            } else if let Some(len) = exec.packed_len() {
                let start = packed.len();
                packed.resize(start + len, 0);
                exec.pack(weights, &mut packed[start..]);
                Weights::Owned(start..start + len)
            } else {
                Weights::InFile
            };
            exec.set_weights(weights_at);
            let w = match &exec.weights() {
                Weights::Owned(r) => &packed[r.clone()],
                Weights::InFile => weights,
            };
            exec.pack_bias(w, model.i32s(c.bias), &mut biases);
            scratch_len = scratch_len.max(exec.scratch_len());
        }
        Engine {
            arena: vec![0; plan.size.div_ceil(2)],
            mixed,
            regions: plan.regions,
            isa,
            kernels,
            convs,
            packed,
            biases,
            scratch: vec![0; scratch_len],
            #[cfg(any(unix, windows))]
            pool: (threads > 1).then(|| pool::Pool::new(threads)),
            model: Box::new(model),
        }
    }

    /// The kernel tier in use.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The convolution micro-kernel in use, for reports (`reference` on the reference tier).
    pub fn kernel_name(&self) -> &'static str {
        match &self.kernels {
            Some(k) => k.gemm().name,
            None => "reference",
        }
    }

    /// The kernel tier's int8 peak on one core in multiply-accumulates per second, measured now
    /// (about 30 ms; `None` for the reference and tiers without a measurement).
    #[cfg(any(unix, windows))]
    pub fn peak_macs_per_second(&self) -> Option<f64> {
        self.kernels.as_ref()?.peak_macs_per_second(4_000_000)
    }

    /// The same peak measured on all of the engine's threads at once, summed. About
    /// `threads ×` the one-core figure when the threads have cores of their own; less when
    /// they share cores (SMT siblings, or vCPUs the hypervisor placed on one core).
    #[cfg(any(unix, windows))]
    pub fn peak_macs_per_second_all_threads(&self) -> Option<f64> {
        let kernels = self.kernels.as_ref()?;
        let Some(pool) = &self.pool else {
            return self.peak_macs_per_second();
        };
        let sums: Vec<core::sync::atomic::AtomicU64> = (0..pool.threads())
            .map(|_| core::sync::atomic::AtomicU64::new(0))
            .collect();
        pool.run(&|i| {
            let p = kernels.peak_macs_per_second(4_000_000).unwrap_or(0.0);
            sums[i].store(p.to_bits(), core::sync::atomic::Ordering::Relaxed);
        });
        let total: f64 = sums
            .iter()
            .map(|v| f64::from_bits(v.load(core::sync::atomic::Ordering::Relaxed)))
            .sum();
        (total > 0.0).then_some(total)
    }

    /// Threads running each layer (1 without a pool).
    pub fn threads(&self) -> usize {
        #[cfg(any(unix, windows))]
        if let Some(p) = &self.pool {
            return p.threads();
        }
        1
    }

    /// Bytes held besides the arena: packed weights and biases made at load, and the scratch
    /// buffer.
    pub fn packed_bytes(&self) -> usize {
        self.packed.len() + 4 * self.biases.len() + self.scratch.len()
    }

    /// The model.
    pub fn model(&self) -> &Model<'m> {
        &self.model
    }

    /// Bytes of activation memory (the arena).
    pub fn arena_bytes(&self) -> usize {
        2 * self.arena.len()
    }

    fn bytes(&self) -> &[i8] {
        bytemuck::cast_slice(&self.arena)
    }

    fn bytes_mut(&mut self) -> &mut [i8] {
        bytemuck::cast_slice_mut(&mut self.arena)
    }

    /// The input tensor, NHWC int8, to be filled before [`Engine::run`].
    pub fn input_mut(&mut self) -> &mut [i8] {
        let r = self.regions[self.model.meta.input.tensor as usize].clone();
        &mut self.bytes_mut()[r]
    }

    /// Fills the input from 8-bit pixels, `[h][w][c]` in the model's channel order, through
    /// the file's lookup table (normalisation and quantization in one integer step).
    pub fn set_input_pixels(&mut self, pixels: &[u8]) -> Result<(), EngineError> {
        let lut = self.model.i8s(self.model.meta.input.lut);
        let channels = self.model.input().shape[3] as usize;
        let input = self.input_mut();
        if pixels.len() != input.len() {
            return Err(EngineError::InputLength {
                expected: input.len(),
                actual: pixels.len(),
            });
        }
        resq_format::lut_quantize(lut, channels, pixels, input);
        Ok(())
    }

    /// Copies an already-quantized input.
    pub fn set_input(&mut self, input: &[i8]) -> Result<(), EngineError> {
        let dst = self.input_mut();
        if input.len() != dst.len() {
            return Err(EngineError::InputLength {
                expected: dst.len(),
                actual: input.len(),
            });
        }
        dst.copy_from_slice(input);
        Ok(())
    }

    /// The output tensor (int8 logits) after [`Engine::run`].
    pub fn output(&self) -> &[i8] {
        &self.bytes()[self.regions[self.model.meta.output.tensor as usize].clone()]
    }

    /// Any tensor's current values, int8 or int16 (valid only while that tensor is live; for
    /// debugging and reports).
    pub fn tensor(&self, index: u16) -> Values<'_> {
        values(
            &self.model,
            index,
            &self.bytes()[self.regions[index as usize].clone()],
        )
    }

    /// Dequantized outputs: logits, or probabilities when the source model ends in a softmax.
    pub fn scores(&self, out: &mut [f32]) {
        let t = self.model.output();
        for (o, &q) in out.iter_mut().zip(self.output()) {
            *o = t.scale * (q as f32 - t.zero_point as f32);
        }
        if self.model.meta.output.softmax {
            softmax(out);
        }
    }

    /// Runs the self-test vector stored in the file; `true` when the output matches bit for bit.
    pub fn self_test(&mut self) -> bool {
        let st = self.model.meta.self_test;
        let input = self.model.i8s(st.input);
        let expected = self.model.i8s(st.expected);
        if self.set_input(input).is_err() {
            return false;
        }
        self.run();
        self.output() == expected
    }

    /// Whether the model takes one grey channel.
    pub fn is_grey(&self) -> bool {
        self.model.meta.input.channels == ChannelOrder::Grey
    }

    /// Runs every layer once.
    pub fn run(&mut self) {
        for i in 0..self.model.meta.layers.len() {
            self.run_layer(i);
        }
    }

    /// Runs layer `i` alone (the caller runs layers in order).
    pub fn run_layer(&mut self, i: usize) {
        let op = self.model.meta.layers[i].op;
        let out_range = self.regions[op.output() as usize].clone();
        let [in0, in1] = op
            .inputs()
            .map(|t| t.map(|t| self.regions[t as usize].clone()));
        let arena: &mut [i8] = bytemuck::cast_slice_mut(&mut self.arena);
        let (output, [x, r]) = split_arena(arena, out_range, [in0, in1]);
        #[cfg(any(unix, windows))]
        let par = exec::Par::new(self.pool.as_ref());
        #[cfg(not(any(unix, windows)))]
        let par = exec::Par::new();
        let path = match &self.kernels {
            _ if self.mixed[i] => Path::Mixed,
            None => Path::Reference,
            Some(kernels) => Path::Fast(Fast {
                kernels,
                conv: self.convs[i].as_ref(),
                packed: &self.packed,
                biases: &self.biases,
                scratch: &mut self.scratch,
            }),
        };
        dispatch::run_layer(
            &par,
            &self.model,
            i,
            path,
            x.unwrap_or(&[]),
            r.unwrap_or(&[]),
            output,
        );
    }
}

/// In-place softmax.
pub fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = libm::expf(*x - max);
        sum += *x;
    }
    for x in v.iter_mut() {
        *x /= sum;
    }
}
