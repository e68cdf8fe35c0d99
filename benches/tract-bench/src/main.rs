//! Times tract's f32 inference of an ONNX image classifier, for `benches/side_by_side.py`.
//!
//! `resq-tract-bench MODEL.onnx [--size 224] [--threads N] [--iterations N] [--warmup N]` prints
//! one JSON object with the keys `resq bench --json` prints: `inference_ms` {median, min, max},
//! `iterations`, `warmup`, `threads`, `kernel`.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use tract_linalg::multithread::{set_default_executor, Executor};
use tract_onnx::prelude::*;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut model = None;
    let (mut size, mut threads, mut iters, mut warmup) = (224usize, 1usize, 20usize, 3usize);
    while let Some(a) = args.next() {
        let mut value = |name: &str| -> Result<usize> {
            args.next()
                .with_context(|| format!("{name} needs a value"))?
                .parse()
                .with_context(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "--size" => size = value("--size")?,
            "--threads" => threads = value("--threads")?,
            "--iterations" => iters = value("--iterations")?,
            "--warmup" => warmup = value("--warmup")?,
            _ if model.is_none() && !a.starts_with('-') => model = Some(a),
            _ => bail!("usage: resq-tract-bench MODEL.onnx [--size N] [--threads N] [--iterations N] [--warmup N]"),
        }
    }
    let model = model.context("usage: resq-tract-bench MODEL.onnx [--threads N] ...")?;
    if threads > 1 {
        set_default_executor(Executor::multithread(threads));
    }
    let plan = tract_onnx::onnx()
        .model_for_path(&model)?
        .with_input_fact(0, f32::fact([1, 3, size, size]).into())?
        .into_optimized()?
        .into_runnable()?;
    // A fixed pseudo-random input (timing does not depend on the values).
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let input: Vec<f32> = (0..3 * size * size)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 2000) as f32 / 1000.0 - 1.0
        })
        .collect();
    let input = tract_ndarray::Array4::from_shape_vec((1, 3, size, size), input)?.into_tensor();
    let mut run = || -> Result<f64> {
        let t = Instant::now();
        let out = plan.run(tvec!(input.clone().into()))?;
        std::hint::black_box(out);
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    for _ in 0..warmup {
        run()?;
    }
    let mut ms = (0..iters.max(1))
        .map(|_| run())
        .collect::<Result<Vec<_>>>()?;
    ms.sort_by(f64::total_cmp);
    let median = if ms.len() % 2 == 1 {
        ms[ms.len() / 2]
    } else {
        (ms[ms.len() / 2 - 1] + ms[ms.len() / 2]) / 2.0
    };
    println!(
        "{{\"inference_ms\": {{\"median\": {median}, \"min\": {}, \"max\": {}}}, \"threads\": {threads}, \"iterations\": {}, \"warmup\": {warmup}, \"kernel\": \"tract f32 0.23.9\"}}",
        ms[0],
        ms[ms.len() - 1],
        ms.len()
    );
    Ok(())
}
