//! `resq report` on real models: per-layer numbers against tract f32, the HTML page, and the
//! page rendered by a real browser (headless Chromium, installed by .ci/run).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use resq_e2e::{ic01, ic01_subset, photo_folder, resnet8};
use resq_host::convert::{convert, ConvertOptions};
use resq_host::report::{build_report, Report, ReportOptions};
use resq_host::synth::{synth_cifar_resnet, synth_resnet, Arch, CifarSpec, Shortcut, SynthSpec};
use serde_json::Value;

/// ResNet-8 converted from `model_float.onnx`, calibrated on 20 ic01 images, written to `dir`.
fn resnet8_file(dir: &Path) -> PathBuf {
    let calib = ic01_subset(20);
    let c = convert(&ConvertOptions {
        calib: Some(calib.path().to_path_buf()),
        ..ConvertOptions::new(resnet8("model_float.onnx"))
    })
    .expect("convert ResNet-8");
    let path = dir.join("resnet8.resq");
    std::fs::write(&path, &c.bytes).unwrap();
    path
}

fn resnet8_report(dir: &Path) -> Report {
    let (png, csv) = ic01();
    let t = Instant::now();
    let r = build_report(&ReportOptions {
        file: resnet8_file(dir),
        reference: resnet8("model_float.onnx"),
        images: png,
        labels: Some(csv),
        max_images: 8,
        eval_images: 0,
    })
    .expect("report");
    eprintln!(
        "ResNet-8 report (convert + 8 images layer by layer + 200 evaluated): {:?}",
        t.elapsed()
    );
    r
}

#[test]
fn resnet8_report_numbers_are_sound_and_worst_first() {
    let dir = tempfile::tempdir().unwrap();
    let r = resnet8_report(dir.path());
    let v = r.to_json();
    let layers = v["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 11, "one entry per ResNet-8 layer");
    let mut indices: Vec<u64> = layers
        .iter()
        .map(|l| l["index"].as_u64().unwrap())
        .collect();
    indices.sort();
    assert_eq!(indices, (0..11).collect::<Vec<u64>>());
    let mut last = f64::NEG_INFINITY;
    for l in layers {
        let name = l["name"].as_str().unwrap();
        let sqnr = l["sqnr_db"]
            .as_f64()
            .unwrap_or_else(|| panic!("{name}: SQNR not finite: {l}"));
        let cos = l["cosine"].as_f64().unwrap();
        eprintln!(
            "  #{:2} {name:24} {sqnr:6.1} dB  cosine {cos:.5}",
            l["index"]
        );
        assert!(sqnr > 15.0, "{name}: SQNR {sqnr} dB ≤ 15");
        assert!(cos > 0.99, "{name}: cosine {cos} ≤ 0.99");
        assert!(
            sqnr >= last,
            "layers must come worst first: {name} at {sqnr} after {last}"
        );
        last = sqnr;
        let counts = l["histogram"]["counts"].as_array().unwrap();
        let total: u64 = counts.iter().map(|c| c.as_u64().unwrap()).sum();
        let [h, w, c] = [0, 1, 2].map(|i| l["shape"][i].as_u64().unwrap());
        assert_eq!(
            total,
            8 * h * w * c,
            "{name}: every value of 8 images in the histogram"
        );
        if l["op"].as_str().unwrap().starts_with("conv") {
            let wts = &l["weights"];
            assert_eq!(
                wts["min"].as_array().unwrap().len() as u64,
                c,
                "{name}: a range per channel"
            );
            assert!(
                wts["sqnr_db"].as_f64().unwrap() > 30.0,
                "{name}: int8 weights {wts:?}"
            );
        }
    }
    let s = &v["summary"];
    assert_eq!(s["images"], 200);
    assert_eq!(s["labelled"], true);
    assert_eq!(s["top1_f32"], 171, "tract f32 top-1 on ic01");
    assert!(s["top1_int8"].as_u64().unwrap() >= 165, "{s}");
    assert!(s["agreement"].as_f64().unwrap() >= 0.95, "{s}");
    assert_eq!(v["reference_matches_provenance"], true);
}

#[test]
fn report_without_labels_gives_agreement_only() {
    let dir = tempfile::tempdir().unwrap();
    let images = ic01_subset(6);
    let r = build_report(&ReportOptions {
        file: resnet8_file(dir.path()),
        reference: resnet8("model_float.onnx"),
        images: images.path().to_path_buf(),
        labels: None,
        max_images: 2,
        eval_images: 0,
    })
    .expect("report");
    let v = r.to_json();
    assert_eq!(v["stats_images"], 2);
    assert_eq!(v["summary"]["labelled"], false);
    assert_eq!(v["summary"]["top1_int8"], Value::Null);
    assert!(v["summary"]["agreement"].as_f64().is_some());
    let html = r.to_html().unwrap();
    assert!(html.contains("not measured: the images have no labels"));
}

#[test]
fn report_refuses_a_reference_with_another_graph() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("resnet14.onnx");
    let onnx = synth_cifar_resnet(&CifarSpec {
        depth: 14,
        shortcut: Shortcut::Projection,
        preact: false,
        classes: 10,
        seed: 1,
    })
    .unwrap();
    std::fs::write(&other, onnx).unwrap();
    let images = ic01_subset(2);
    let err = build_report(&ReportOptions {
        file: resnet8_file(dir.path()),
        reference: other,
        images: images.path().to_path_buf(),
        labels: None,
        max_images: 1,
        eval_images: 1,
    })
    .expect_err("a different model must be refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("does not match")
            && msg.contains("--reference")
            && msg.contains("model_float.onnx"),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------------
// The browser.

const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs headless Chromium on `page` with `args`, returning its stdout; fails (never skips) when
/// Chromium is missing.
fn chromium(page: &Path, args: &[String]) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the report's browser test needs headless Chromium. Run .ci/run, \
         or `apt-get update && apt-get install -y chromium`"
    );
    let profile = tempfile::tempdir().unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--force-device-scale-factor=1",
            "--window-size=1280,2000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .spawn()
        .expect("start chromium");
    // A browser that hangs must not hang the test suite.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 120 s on {url}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = std::fs::read_to_string(err.path()).unwrap_or_default();
    assert!(
        status.success(),
        "chromium failed ({status}) on {url}:\n{stderr}"
    );
    std::fs::read_to_string(out.path()).unwrap()
}

/// The DOM after the page's script ran: asserts the script's verdict and returns the body tag.
fn check_dom(page: &Path, layers: usize) -> String {
    let dom = chromium(page, &["--dump-dom".into()]);
    let title = dom
        .split("<title>")
        .nth(1)
        .and_then(|t| t.split("</title>").next())
        .unwrap_or("(no title)");
    assert_eq!(
        title, "resq report: ok",
        "the page's own check failed in Chromium (empty charts, missing layers or a script error)"
    );
    let sections = dom.matches("<section class=\"layer\"").count();
    assert_eq!(sections, layers, "one section per layer");
    let body = dom
        .split("<body")
        .nth(1)
        .and_then(|b| b.split('>').next())
        .unwrap();
    assert!(
        body.contains(&format!("data-layers=\"{layers}\"")),
        "{body}"
    );
    body.to_string()
}

fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
    tag.split(&format!("{name}=\""))
        .nth(1)
        .and_then(|v| v.split('"').next())
        .unwrap_or("")
}

fn near(p: &image::Rgba<u8>, rgb: [u8; 3], tol: i32) -> bool {
    (0..3).all(|i| (p[i] as i32 - rgb[i] as i32).abs() <= tol)
}

#[test]
fn resnet8_report_renders_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let r = resnet8_report(dir.path());
    let page = dir.path().join("report.html");
    let html = r.to_html().unwrap();
    std::fs::write(&page, &html).unwrap();
    eprintln!("ResNet-8 page: {} bytes", html.len());
    for fetch in ["src=", "<link", "@import", "url("] {
        assert!(
            !html.contains(fetch),
            "self-contained: the page must fetch nothing ({fetch})"
        );
    }

    let body = check_dom(&page, 11);
    // Where the first layer's histogram sits (CSS px = screenshot px at scale factor 1).
    let rect: Vec<u32> = attr(&body, "data-first-chart")
        .split(',')
        .map(|v| v.parse().expect("data-first-chart"))
        .collect();
    let [x, y, w, h] = [rect[0], rect[1], rect[2], rect[3]];

    let shot = dir.path().join("shot.png");
    chromium(&page, &[format!("--screenshot={}", shot.display())]);
    let img = image::open(&shot).expect("screenshot PNG").to_rgba8();
    assert_eq!(img.dimensions(), (1280, 2000));
    assert!(
        x + w <= img.width() && y + h <= img.height() && w > 100 && h > 100,
        "first histogram at {rect:?} must be inside the 1280×2000 screenshot"
    );
    // The histogram bars are drawn in #3182bd; the rest of the chart is white, grey and red.
    let blue = (y..y + h)
        .flat_map(|yy| (x..x + w).map(move |xx| (xx, yy)))
        .filter(|&(xx, yy)| near(img.get_pixel(xx, yy), [49, 130, 189], 12))
        .count();
    let area = (w * h) as usize;
    eprintln!("first histogram {rect:?}: {blue} of {area} pixels in the bar colour");
    assert!(
        blue * 20 > area,
        "the first histogram has too few bar pixels: {blue} of {area}"
    );
    // The SQNR overview: green / amber / red bars near the top of the page.
    let bars = img
        .pixels()
        .filter(|p| {
            near(p, [46, 160, 67], 12) || near(p, [220, 160, 0], 12) || near(p, [207, 34, 46], 12)
        })
        .count();
    assert!(
        bars > 20_000,
        "SQNR overview bars: only {bars} coloured pixels"
    );
}

#[test]
fn resnet50_report_lists_all_56_layers() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("resnet50.onnx");
    std::fs::write(
        &onnx,
        synth_resnet(&SynthSpec {
            arch: Arch::ResNet50,
            size: 224,
            classes: 1000,
            seed: 1,
        })
        .unwrap(),
    )
    .unwrap();
    let photos = photo_folder();
    let plain = photos.path().join("0");
    let c = convert(&ConvertOptions {
        calib: Some(plain.clone()),
        mean: [123.7, 116.3, 103.5],
        std: [58.4, 57.1, 57.4],
        ..ConvertOptions::new(onnx.clone())
    })
    .expect("convert ResNet-50");
    let file = dir.path().join("resnet50.resq");
    std::fs::write(&file, &c.bytes).unwrap();

    let t = Instant::now();
    let r = build_report(&ReportOptions {
        file,
        reference: onnx,
        images: plain,
        labels: None,
        max_images: 8,
        eval_images: 200,
    })
    .expect("report");
    let html = r.to_html().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).unwrap();
    // Timing is reported, not asserted (house rule).
    eprintln!(
        "ResNet-50 report: {:?} for 8 images layer by layer + {} evaluated; page {} bytes",
        t.elapsed(),
        r.eval.images,
        html.len()
    );
    assert_eq!(r.layers.len(), 56);
    for l in &r.layers {
        assert!(
            html.contains(&format!("id=\"layer-{}\"", l.index)),
            "layer {} missing",
            l.index
        );
        assert!(
            l.output.cosine > 0.95,
            "#{} {}: cosine {}",
            l.index,
            l.name,
            l.output.cosine
        );
    }
    assert!(html.len() < 8 << 20, "page {} bytes", html.len());
    check_dom(&page, 56);
}
