//! Rendering a [`Report`]: the JSON numbers ([`Report::to_json`]) and the self-contained HTML
//! page ([`Report::to_html`]: inline SVG charts drawn with plotters, no scripts or fonts
//! fetched). Nothing here measures anything.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use serde_json::{json, Value};

use super::measure::{LayerStats, TensorStats, WeightStats, INNER_BINS, OUTER_BINS};
use super::Report;

/// A finite number for JSON, `null` otherwise.
fn num(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

fn tensor_json(t: &TensorStats) -> Value {
    json!({
        "sqnr_db": num(t.sqnr_db),
        "cosine": num(t.cosine),
        "clipped": t.clipped,
        "f32_range": [num(t.f32_range.0 as f64), num(t.f32_range.1 as f64)],
        "int8_range": [t.int8_range.0, t.int8_range.1],
        "histogram": {"lo": t.histogram.lo, "hi": t.histogram.hi, "counts": t.histogram.counts},
    })
}

impl Report {
    /// The numbers of the page as JSON; `layers` is worst first. SQNR is `null` when exact.
    pub fn to_json(&self) -> Value {
        let e = &self.eval;
        let layers: Vec<Value> = self
            .worst_first()
            .into_iter()
            .map(|l| {
                let mut v = tensor_json(&l.output);
                let o = v.as_object_mut().expect("object");
                o.insert("index".into(), json!(l.index));
                o.insert("name".into(), json!(l.name));
                o.insert("op".into(), json!(l.kind));
                o.insert("int16".into(), json!(l.int16));
                o.insert("shape".into(), json!(l.shape));
                o.insert("scale".into(), json!(l.scale));
                o.insert("zero_point".into(), json!(l.zero_point));
                o.insert("sqnr_change_db".into(), num(l.sqnr_change_db));
                o.insert(
                    "weights".into(),
                    l.weights.as_ref().map_or(
                        Value::Null,
                        |w| json!({"sqnr_db": num(w.sqnr_db), "min": w.min, "max": w.max}),
                    ),
                );
                v
            })
            .collect();
        json!({
            "file": self.file.display().to_string(),
            "reference": self.reference.display().to_string(),
            "model": self.model,
            "source_name": self.source_name,
            "reference_matches_provenance": self.reference_matches_provenance,
            "calibration": self.calibration,
            "stats_images": self.stats_images.len(),
            "summary": {
                "images": e.images,
                "labelled": self.labelled,
                "top1_int8": if self.labelled { json!(e.top1_int8) } else { Value::Null },
                "top1_f32": if self.labelled { json!(e.top1_f32) } else { Value::Null },
                "agreement": e.agreement.map(|a| a as f64 / e.images.max(1) as f64),
                "cosine": e.cosine.map(num),
            },
            "input": tensor_json(&self.input),
            "layers": layers,
        })
    }

    /// The self-contained HTML page.
    pub fn to_html(&self) -> Result<String> {
        html_page(self)
    }
}

// ---------------------------------------------------------------------------------------------
// The page.

/// Chart colours; the screenshot test looks for `HIST_BLUE`.
const HIST_BLUE: RGBColor = RGBColor(49, 130, 189);
const CLIP_ORANGE: RGBColor = RGBColor(230, 120, 20);
const RANGE_RED: RGBColor = RGBColor(200, 30, 30);
const GOOD: RGBColor = RGBColor(46, 160, 67);
const FAIR: RGBColor = RGBColor(220, 160, 0);
const POOR: RGBColor = RGBColor(207, 34, 46);
const GREY: RGBColor = RGBColor(150, 150, 150);

/// SQNR grades: ≥ 30 dB good, ≥ 20 dB fair, below poor.
fn grade(db: f64) -> (&'static str, RGBColor) {
    if db >= 30.0 {
        ("good", GOOD)
    } else if db >= 20.0 {
        ("fair", FAIR)
    } else {
        ("poor", POOR)
    }
}

fn draw_err<E: std::error::Error>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e}")
}

/// Drops the XML prolog plotters may write, so the SVG can sit inside HTML.
fn inline_svg(svg: String) -> String {
    match svg.find("<svg") {
        Some(i) => svg[i..].to_string(),
        None => svg,
    }
}

const FONT: &str = "sans-serif";

fn sqnr_chart(layers: &[LayerStats]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1180, 250)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let top = layers
            .iter()
            .map(|l| l.output.sqnr_db)
            .filter(|x| x.is_finite())
            .fold(30.0f64, f64::max)
            * 1.1;
        let n = layers.len() as f64;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(48)
            .build_cartesian_2d(-0.5..n - 0.5, 0.0..top)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(layers.len().clamp(2, 30))
            .x_label_formatter(&|v| format!("{:.0}", v))
            .y_desc("SQNR (dB)")
            .x_desc("layer (execution order)")
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .draw()
            .map_err(draw_err)?;
        chart
            .draw_series(layers.iter().map(|l| {
                let db = if l.output.sqnr_db.is_finite() {
                    l.output.sqnr_db.max(0.0)
                } else {
                    top
                };
                let x = l.index as f64;
                Rectangle::new([(x - 0.38, 0.0), (x + 0.38, db)], grade(db).1.filled())
            }))
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(inline_svg(svg))
}

fn histogram_chart(t: &TensorStats) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (390, 180)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let h = &t.histogram;
        let total = h.counts.iter().sum::<u64>().max(1) as f64;
        let pct: Vec<f64> = h.counts.iter().map(|&c| 100.0 * c as f64 / total).collect();
        let smallest = pct
            .iter()
            .copied()
            .filter(|&p| p > 0.0)
            .fold(100.0, f64::min);
        let (ymin, ymax) = (smallest / 2.0, 150.0);
        let (lo, hi) = (h.lo as f64, h.hi as f64);
        let width = (hi - lo) / h.counts.len() as f64;
        let mut chart = ChartBuilder::on(&root)
            .margin(6)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(lo..hi, (ymin..ymax).log_scale())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(6)
            .y_labels(4)
            .x_label_formatter(&|v| short(*v))
            .y_label_formatter(&|v| percent(*v))
            .max_light_lines(1)
            .x_desc("f32 value")
            .label_style((FONT, 11))
            .axis_desc_style((FONT, 11))
            .draw()
            .map_err(draw_err)?;
        let inner = OUTER_BINS..OUTER_BINS + INNER_BINS;
        chart
            .draw_series(
                pct.iter()
                    .enumerate()
                    .filter(|(_, &p)| p > 0.0)
                    .map(|(i, &p)| {
                        let x0 = lo + i as f64 * width;
                        let colour = if inner.contains(&i) {
                            HIST_BLUE
                        } else {
                            CLIP_ORANGE
                        };
                        Rectangle::new([(x0, ymin), (x0 + width, p)], colour.filled())
                    }),
            )
            .map_err(draw_err)?;
        // The int8 representable range: the clipping range chosen at calibration.
        for x in [t.int8_range.0 as f64, t.int8_range.1 as f64] {
            chart
                .draw_series(LineSeries::new(
                    [(x, ymin), (x, ymax)],
                    RANGE_RED.stroke_width(2),
                ))
                .map_err(draw_err)?;
        }
        root.present().map_err(draw_err)?;
    }
    Ok(inline_svg(svg))
}

/// Per-channel float weight ranges: a bar per channel, or a min–max band when there are many.
fn weights_chart(w: &WeightStats) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (390, 150)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let n = w.min.len();
        let m = w
            .min
            .iter()
            .chain(&w.max)
            .fold(0.0f32, |m, x| m.max(x.abs()))
            .max(1e-12) as f64;
        let mut chart = ChartBuilder::on(&root)
            .margin(6)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5..n as f64 - 0.5, -m * 1.05..m * 1.05)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(6)
            .y_labels(5)
            .x_label_formatter(&|v| format!("{:.0}", v))
            // Ticks like −5.6e-17 are zero in float noise.
            .y_label_formatter(&|v| short(if v.abs() < m * 1e-6 { 0.0 } else { *v }))
            .max_light_lines(1)
            .x_desc("output channel")
            .label_style((FONT, 11))
            .axis_desc_style((FONT, 11))
            .draw()
            .map_err(draw_err)?;
        const MAX_BARS: usize = 96;
        if n <= MAX_BARS {
            chart
                .draw_series((0..n).map(|i| {
                    let x = i as f64;
                    Rectangle::new(
                        [(x - 0.35, w.min[i] as f64), (x + 0.35, w.max[i] as f64)],
                        HIST_BLUE.filled(),
                    )
                }))
                .map_err(draw_err)?;
        } else {
            // Many channels: one polygon (upper edge forward, lower edge back) over at most
            // 300 columns, which looks the same and keeps the page small.
            let cols = n.min(300);
            let bucket = |k: usize| (k * n / cols)..((k + 1) * n / cols).max(k * n / cols + 1);
            let mut pts: Vec<(f64, f64)> = (0..cols)
                .map(|k| {
                    let r = bucket(k);
                    let x = (r.start + r.end - 1) as f64 / 2.0;
                    (x, w.max[r].iter().copied().fold(f32::MIN, f32::max) as f64)
                })
                .collect();
            pts.extend((0..cols).rev().map(|k| {
                let r = bucket(k);
                let x = (r.start + r.end - 1) as f64 / 2.0;
                (x, w.min[r].iter().copied().fold(f32::MAX, f32::min) as f64)
            }));
            chart
                .draw_series(std::iter::once(Polygon::new(pts, HIST_BLUE.filled())))
                .map_err(draw_err)?;
        }
        chart
            .draw_series(LineSeries::new([(-0.5, 0.0), (n as f64 - 0.5, 0.0)], GREY))
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(inline_svg(svg))
}

/// A compact number for axes and tables.
fn short(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e4).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .into()
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .into()
    }
}

/// A log-axis percentage with just enough decimals: `10%`, `0.01%`, `0.0001%`.
fn percent(v: f64) -> String {
    if v >= 1.0 || v <= 0.0 {
        format!("{v:.0}%")
    } else {
        let decimals = (-v.log10()).ceil().clamp(1.0, 9.0) as usize;
        format!("{v:.decimals$}%")
    }
}

fn db(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1}")
    } else if x > 0.0 {
        "∞".into()
    } else {
        "—".into()
    }
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:20px 28px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.sub{color:#57606a;font-size:13px;margin-bottom:12px}
table{border-collapse:collapse;font-size:12.5px}td,th{padding:3px 9px;border-bottom:1px solid #eaeef2;text-align:right;white-space:nowrap}
th{background:#f6f8fa;position:sticky;top:0}td.l,th.l{text-align:left}
.kv td{text-align:left;white-space:normal}.kv td:first-child{color:#57606a}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:12px}
.layer{border:1px solid #d0d7de;border-radius:6px;padding:8px 10px}
.layer h3{font-size:13.5px;margin:0 0 2px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.layer .m{font-size:12px;color:#57606a;margin-bottom:4px}
.badge{display:inline-block;border-radius:9px;padding:0 7px;color:#fff;font-size:11.5px;font-weight:600}
.good{background:#2ea043}.fair{background:#c99a00}.poor{background:#cf222e}
.cap{font-size:11.5px;color:#57606a;margin:2px 0 6px}
svg{display:block;max-width:100%;height:auto}.layer svg{width:100%}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;vertical-align:-1px}
";

/// Runs in the browser after layout: the title becomes `resq report: ok` only when every chart
/// has drawn content and a non-empty box (the browser test reads it); an error shows in it.
const CHECK_SCRIPT: &str = "
(function(){
  var bad=[];
  window.addEventListener('error',function(e){document.title='resq report: error '+e.message;});
  var svgs=document.querySelectorAll('svg');
  for(var i=0;i<svgs.length;i++){var b=svgs[i].getBoundingClientRect();
    if(!(b.width>0&&b.height>0)||svgs[i].querySelectorAll('rect,polygon,polyline,path,line').length<2)bad.push(i);}
  var layers=document.querySelectorAll('section.layer').length;
  var want=+document.body.getAttribute('data-layers');
  var h=document.querySelector('section.layer svg');
  if(h){var r=h.getBoundingClientRect();document.body.setAttribute('data-first-chart',
    [Math.round(r.left+window.scrollX),Math.round(r.top+window.scrollY),Math.round(r.width),Math.round(r.height)].join(','));}
  document.body.setAttribute('data-charts',svgs.length);
  document.title=(bad.length===0&&svgs.length>0&&layers===want)?'resq report: ok':
    'resq report: FAILED ('+bad.length+' empty charts, '+layers+' of '+want+' layers)';
})();
";

fn html_page(r: &Report) -> Result<String> {
    let mut h = String::with_capacity(1 << 20);
    let e = &r.eval;
    let pct = |x: usize| 100.0 * x as f64 / e.images.max(1) as f64;
    let title = format!("resq report: {}", r.model);
    // `write!` to a String cannot fail; the results are ignored on purpose.
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head>\n<body data-layers=\"{}\">\n",
        esc(&title),
        r.layers.len()
    );
    let _ = writeln!(
        h,
        "<h1>Quantization report: {}</h1><div class=\"sub\">{} against tract f32 on {} \
         · int8 values dequantized with each tensor's scale and zero point</div>",
        esc(&r.model),
        esc(&file_name(&r.file)),
        esc(&file_name(&r.reference)),
    );

    // Summary.
    let worst = r.worst_first();
    let _ = write!(h, "<h2>Summary</h2><table class=\"kv\">");
    let mut row = |k: &str, v: String| {
        let _ = write!(h, "<tr><td>{k}</td><td>{v}</td></tr>");
    };
    row("layers", r.layers.len().to_string());
    row("calibration", esc(&r.calibration));
    row(
        "reference",
        if r.reference_matches_provenance {
            format!(
                "{} (same SHA-256 as the file's source)",
                esc(&file_name(&r.reference))
            )
        } else {
            format!(
                "{} — <b>not</b> byte-identical to the file's source <code>{}</code>; its graph matches, so it is compared",
                esc(&file_name(&r.reference)),
                esc(&r.source_name)
            )
        },
    );
    if r.labelled {
        row(
            "top-1 int8",
            format!("{} / {} ({:.1} %)", e.top1_int8, e.images, pct(e.top1_int8)),
        );
        if let Some(f) = e.top1_f32 {
            row("top-1 f32", format!("{f} / {} ({:.1} %)", e.images, pct(f)));
        }
    } else {
        row(
            "top-1",
            "not measured: the images have no labels (use DIR/&lt;class&gt;/&lt;image&gt; or --labels CSV)"
                .into(),
        );
    }
    if let Some(a) = e.agreement {
        row(
            "int8 / f32 agreement",
            format!("{a} / {} ({:.1} %) on the top class", e.images, pct(a)),
        );
    }
    if let Some(c) = e.cosine {
        row("logit cosine", format!("{c:.5}"));
    }
    row("input (LUT) SQNR", format!("{} dB", db(r.input.sqnr_db)));
    if let Some(w) = worst.first() {
        row(
            "worst layer",
            format!(
                "<a href=\"#layer-{}\">#{} {}</a>: {} dB",
                w.index,
                w.index,
                esc(&w.name),
                db(w.output.sqnr_db)
            ),
        );
    }
    row(
        "layer statistics",
        format!(
            "{} image{}: {}",
            r.stats_images.len(),
            if r.stats_images.len() == 1 { "" } else { "s" },
            esc(&r
                .stats_images
                .iter()
                .take(8)
                .map(|p| file_name(p))
                .collect::<Vec<_>>()
                .join(", "))
                + if r.stats_images.len() > 8 {
                    ", …"
                } else {
                    ""
                }
        ),
    );
    let _ = writeln!(h, "</table>");

    // Overview chart.
    let _ = writeln!(
        h,
        "<h2>SQNR per layer</h2><div class=\"cap legend\">10·log10(Σf² / Σ(f − q)²) over all sampled \
         values; error accumulates through the network, so later layers score lower.\
         <span style=\"background:#2ea043\"></span>≥ 30 dB<span style=\"background:#dca000\"></span>20–30 dB\
         <span style=\"background:#cf222e\"></span>&lt; 20 dB</div>{}",
        sqnr_chart(&r.layers)?
    );

    // Worst-first table.
    let _ = writeln!(
        h,
        "<h2>Layers, worst first</h2><table><tr><th>rank</th><th>#</th><th class=\"l\">layer</th>\
         <th class=\"l\">op</th><th>shape (h×w×c)</th><th>SQNR dB</th><th title=\"SQNR change against the \
         layer's worst input\">Δ dB</th><th>cosine</th><th>clipped</th><th>f32 range</th><th>int8 range</th>\
         <th>weights SQNR dB</th></tr>"
    );
    for (rank, l) in worst.iter().enumerate() {
        let t = &l.output;
        let (g, _) = grade(t.sqnr_db);
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"l\"><a href=\"#layer-{}\">{}</a></td><td class=\"l\">{}</td>\
             <td>{}×{}×{}</td><td><span class=\"badge {g}\">{}</span></td><td>{}</td><td>{:.5}</td><td>{:.3} %</td>\
             <td>[{}, {}]</td><td>[{}, {}]</td><td>{}</td></tr>",
            rank + 1,
            l.index,
            l.index,
            esc(&l.name),
            l.kind_label(),
            l.shape[0],
            l.shape[1],
            l.shape[2],
            db(t.sqnr_db),
            db(l.sqnr_change_db),
            t.cosine,
            100.0 * t.clipped,
            short(t.f32_range.0 as f64),
            short(t.f32_range.1 as f64),
            short(t.int8_range.0 as f64),
            short(t.int8_range.1 as f64),
            l.weights.as_ref().map_or("—".into(), |w| db(w.sqnr_db)),
        );
    }
    let _ = writeln!(h, "</table>");

    // One card per layer, worst first.
    let _ = writeln!(
        h,
        "<h2>Activations and weights, worst first</h2><div class=\"cap legend\">Histograms: f32 values of \
         the layer's output (log scale)<span style=\"background:#3182bd\"></span>inside the int8 range\
         <span style=\"background:#e67814\"></span>outside the int8 range (the outermost bins hold everything beyond)\
         <span style=\"background:#c81e1e\"></span>int8 range [scale·(−128−zp), scale·(127−zp)], the \
         calibrated clipping range. Weights: per-output-channel min–max of the reference's float weights \
         (BatchNorm folded), each quantized with its own scale max|w|/127.</div><div class=\"grid\">"
    );
    for l in &worst {
        let t = &l.output;
        let (g, _) = grade(t.sqnr_db);
        let _ = write!(
            h,
            "<section class=\"layer\" id=\"layer-{}\"><h3 title=\"{}\">#{} {}</h3>\
             <div class=\"m\"><span class=\"badge {g}\">{} dB</span> {} · {}×{}×{} · cosine {:.5} · clipped {:.3} % \
             · scale {} zp {}</div>{}",
            l.index,
            esc(&l.name),
            l.index,
            esc(&l.name),
            db(t.sqnr_db),
            l.kind_label(),
            l.shape[0],
            l.shape[1],
            l.shape[2],
            t.cosine,
            100.0 * t.clipped,
            short(l.scale as f64),
            l.zero_point,
            histogram_chart(t)?
        );
        if let Some(w) = &l.weights {
            let _ = write!(
                h,
                "<div class=\"cap\">weights: {} channels, int8 weight SQNR {} dB</div>{}",
                w.min.len(),
                db(w.sqnr_db),
                weights_chart(w)?
            );
        }
        let _ = writeln!(h, "</section>");
    }
    let _ = write!(
        h,
        "</div>\n<div class=\"sub\" style=\"margin-top:18px\">written by resq {}</div>\
         <script>{CHECK_SCRIPT}</script>\n</body></html>\n",
        env!("CARGO_PKG_VERSION")
    );
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::measure::Acc;
    use resq_engine::Values;

    #[test]
    fn exact_tensor_has_infinite_sqnr_and_null_json() {
        let mut a = Acc::new(1.0, 0, false);
        a.add(&[1.0, -2.0], Values::I8(&[1, -2]));
        let s = a.finish();
        assert!(s.sqnr_db.is_infinite());
        assert!((s.cosine - 1.0).abs() < 1e-12);
        assert_eq!(tensor_json(&s)["sqnr_db"], Value::Null);
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short(0.0), "0");
        assert_eq!(short(1.5), "1.5");
        assert_eq!(short(250.4), "250");
        assert_eq!(short(0.0125), "0.013");
        assert_eq!(short(12345.0), "1.2e4");
        assert_eq!(percent(10.0), "10%");
        assert_eq!(percent(0.01), "0.01%");
        assert_eq!(percent(0.0001), "0.0001%");
    }
}
