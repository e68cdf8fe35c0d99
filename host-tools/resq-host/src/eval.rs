//! Accuracy of an int8 file on a labelled dataset, optionally against tract's f32 answers.

use std::path::Path;

use anyhow::{anyhow, ensure, Context, Result};
use resq_engine::Engine;
use resq_format::Model;
use tract_onnx::prelude::*;

use crate::images::{Preprocess, Sample};
use crate::import::{load, Source};

/// The preprocessing recorded in a model file (resize recipe, channels, mean and std).
pub fn preprocess_of(engine: &Engine) -> Preprocess {
    preprocess_of_model(engine.model())
}

/// [`preprocess_of`] for a parsed file.
pub fn preprocess_of_model(m: &Model) -> Preprocess {
    let t = m.input();
    let i = m.meta.input;
    Preprocess {
        height: t.shape[1] as usize,
        width: t.shape[2] as usize,
        resize: m.resize,
        channels: i.channels,
        layout: i.layout,
        mean: i.mean,
        std: i.std,
    }
}

/// tract's f32 model, answering logits (the input of a final softmax) for comparison.
pub struct Reference {
    plan: Arc<TypedSimplePlan>,
}

/// The model input `[height, width, channels]` of an imported ONNX model.
pub fn source_input_hwc(source: &Source) -> [usize; 3] {
    let d = &source.input_shape;
    match source.layout {
        resq_format::Layout::Nchw => [d[1], d[2], d[0]],
        resq_format::Layout::Nhwc => [d[0], d[1], d[2]],
    }
}

/// Checks that the reference ONNX `reference` takes the input `file` (`model`) was converted
/// for: comparing a 224² file with a 32² model would resize every image twice and compare
/// unrelated numbers. Shared by `resq eval --reference` and `resq report`.
pub fn check_reference_input(
    model: &Model,
    file: &Path,
    reference: &Path,
    source: &Source,
) -> Result<()> {
    let [h, w, c] = source_input_hwc(source);
    let s = model.input().shape;
    let (fh, fw, fc) = (s[1] as usize, s[2] as usize, s[3] as usize);
    ensure!(
        (h, w, c) == (fh, fw, fc),
        "--reference {} takes {h}×{w}×{c} inputs (height × width × channels, {:?} layout) but {} \
         was converted for {fh}×{fw}×{fc}; pass as --reference the ONNX model {} was converted \
         from (its provenance names `{}`)",
        reference.display(),
        source.layout,
        file.display(),
        file.display(),
        model.meta.provenance.source_name
    );
    Ok(())
}

impl Reference {
    /// Loads the ONNX model the int8 file should be compared with.
    pub fn load(path: &Path, layout: resq_format::Layout) -> Result<Reference> {
        Reference::from_source(&load(path, layout)?)
    }

    /// Loads the reference for `model` (read from `file`), refusing one whose input size
    /// differs ([`check_reference_input`]).
    pub fn load_for(path: &Path, model: &Model, file: &Path) -> Result<Reference> {
        let source = load(path, model.meta.input.layout)?;
        check_reference_input(model, file, path, &source)?;
        Reference::from_source(&source)
    }

    /// The reference of an already loaded ONNX model (see [`load`]).
    pub fn from_source(source: &Source) -> Result<Reference> {
        let mut model = source.model.clone();
        // Compare logits: step back over a QDQ model's trailing QuantizeLinear / DequantizeLinear
        // to a final Softmax and take its input.
        let mut node = model.node(model.output_outlets()?[0].node);
        while is_qdq(node) {
            node = model.node(node.inputs[0].node);
        }
        if node.op_is::<tract_onnx::tract_core::ops::nn::Softmax>() {
            let logits = node.inputs[0];
            model.select_output_outlets(&[logits])?;
        }
        Ok(Reference {
            plan: model.into_optimized()?.into_runnable()?,
        })
    }

    /// Logits for one float input.
    pub fn logits(&self, input: Tensor) -> Result<Vec<f32>> {
        let out = self.plan.run(tvec!(input.into()))?;
        Ok(out[0]
            .to_plain_array_view::<f32>()?
            .iter()
            .copied()
            .collect())
    }
}

fn is_qdq(node: &TypedNode) -> bool {
    use tract_onnx::tract_core::ops::{element_wise::ElementWiseOp, quant::DequantizeLinearF32};
    node.op_is::<DequantizeLinearF32>()
        || node
            .op_as::<ElementWiseOp>()
            .is_some_and(|op| op.0.name() == "QuantizeLinearI8")
}

/// Figures of one evaluation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EvalReport {
    /// Images evaluated.
    pub images: usize,
    /// int8 top-1 hits.
    pub top1_int8: usize,
    /// f32 top-1 hits (with a reference).
    pub top1_f32: Option<usize>,
    /// Images where int8 and f32 agree on the top class.
    pub agreement: Option<usize>,
    /// Mean cosine similarity of int8 and f32 logits.
    pub cosine: Option<f64>,
    /// The int8 top-1 class of each image, in the order of the samples.
    pub predictions: Vec<usize>,
}

/// Index of the largest value (first on ties).
pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}

/// Cosine similarity.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let na: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        return if na == nb { 1.0 } else { 0.0 };
    }
    dot / (na * nb)
}

/// Dequantized int8 logits of the engine's last run.
pub fn int8_logits(engine: &Engine) -> Vec<f32> {
    let t = engine.model().output();
    engine
        .output()
        .iter()
        .map(|&q| t.scale * (q as f32 - t.zero_point as f32))
        .collect()
}

/// Evaluates `engine` on `samples`.
pub fn evaluate(
    engine: &mut Engine,
    samples: &[Sample],
    reference: Option<&Reference>,
) -> Result<EvalReport> {
    let pre = preprocess_of(engine);
    let classes = engine.model().classes();
    let mut r = EvalReport {
        images: samples.len(),
        ..Default::default()
    };
    let (mut top1_f32, mut agree, mut cos) = (0, 0, 0.0);
    for s in samples {
        ensure!(
            s.label < classes,
            "{}: label {} but the model has {classes} classes",
            s.path.display(),
            s.label
        );
        let px = pre.load_pixels(&s.path)?;
        engine
            .set_input_pixels(&px)
            .map_err(|e| anyhow!("{}: {e}", s.path.display()))?;
        engine.run();
        let q = int8_logits(engine);
        let pred = argmax(&q);
        r.predictions.push(pred);
        r.top1_int8 += (pred == s.label) as usize;
        if let Some(reference) = reference {
            let f = reference
                .logits(pre.float_input(&px))
                .with_context(|| format!("reference on {}", s.path.display()))?;
            ensure!(
                f.len() == q.len(),
                "the reference model has {} outputs, the int8 model {}",
                f.len(),
                q.len()
            );
            let fp = argmax(&f);
            top1_f32 += (fp == s.label) as usize;
            agree += (fp == pred) as usize;
            cos += cosine(&q, &f);
        }
    }
    if reference.is_some() {
        r.top1_f32 = Some(top1_f32);
        r.agreement = Some(agree);
        r.cosine = Some(cos / samples.len().max(1) as f64);
    }
    Ok(r)
}
