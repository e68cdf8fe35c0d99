//! The `resq-fw` binary as a user runs it: real model (the shipped ResNet-8 converted by the host
//! tool), real photos, real GStreamer pipelines (videotestsrc, filesrc), signals.
#![cfg(target_arch = "x86_64")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{models, photos, resnet8};

fn fw() -> Command {
    Command::new(env!("CARGO_BIN_EXE_resq-fw"))
}

fn model() -> String {
    resnet8().0.display().to_string()
}

fn run(args: &[&str]) -> Output {
    fw().args(args).output().expect("run resq-fw")
}

/// [`run`], failing the test if the command is still running after `limit` (it is killed).
fn run_within(args: &[&str], limit: Duration) -> Output {
    let mut child = fw()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run resq-fw");
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "{args:?} still running after {limit:?}:\n{}",
                text(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A running `resq-fw run`, its stdout lines and stderr lines arriving on channels.
struct Service {
    child: Child,
    out: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
    lines: Vec<String>,
    log: Vec<String>,
}

impl Service {
    fn start(args: &[&str]) -> Service {
        let mut child = fw()
            .arg("run")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start resq-fw");
        let pipe = |r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let out = pipe(Box::new(child.stdout.take().unwrap()));
        let err = pipe(Box::new(child.stderr.take().unwrap()));
        Service {
            child,
            out,
            err,
            lines: vec![],
            log: vec![],
        }
    }

    fn pump(&mut self) {
        self.lines.extend(self.out.try_iter());
        self.log.extend(self.err.try_iter());
    }

    /// Waits (up to a minute: a hung service fails the test) until `done` holds.
    fn until(&mut self, what: &str, done: impl Fn(&Service) -> bool) {
        let t = Instant::now();
        loop {
            self.pump();
            if done(self) {
                return;
            }
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "resq-fw exited while waiting for {what}:\n{}",
                self.log.join("\n")
            );
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "no {what} after 60 s:\n{}",
                self.log.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait(mut self) -> (std::process::ExitStatus, Vec<String>, Vec<String>) {
        let status = self.child.wait().unwrap();
        // The pipes close with the process.
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            self.pump();
            std::thread::sleep(Duration::from_millis(10));
            if self.out.try_recv().is_err()
                && self.err.try_recv().is_err()
                && self.child.try_wait().is_ok()
            {
                break;
            }
        }
        self.pump();
        (status, self.lines, self.log)
    }

    #[cfg_attr(not(feature = "gstreamer"), allow(dead_code))]
    fn rss_kb(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// SIGTERM, and how long the process took to exit.
    fn terminate(mut self) -> (Duration, std::process::ExitStatus, Vec<String>, Vec<String>) {
        let t = Instant::now();
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "resq-fw ignored SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = t.elapsed();
        let (_, lines, log) = self.wait();
        (took, status, lines, log)
    }
}

fn json(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn classify_prints_one_line_per_image_and_agrees_with_the_host_demo() {
    let photos = photos();
    let args: Vec<String> = ["classify", "--model", &model(), "--json"]
        .iter()
        .map(|s| s.to_string())
        .chain(photos.iter().map(|p| p.display().to_string()))
        .collect();
    let o = fw().args(&args).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let lines = json(
        &text(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>(),
    );
    assert_eq!(lines.len(), photos.len());
    // The demo ran the same photos through the host preprocessing and the engine.
    for (line, demo) in lines.iter().zip(&resnet8().1) {
        assert!(line["image"]
            .as_str()
            .unwrap()
            .ends_with(&*demo.image.file_name().unwrap().to_string_lossy()));
        assert_eq!(line["label"], demo.label.as_str());
        assert_eq!(
            line["score"].as_f64().unwrap() as f32,
            demo.confidence,
            "{line}"
        );
    }
    let chelsea = lines
        .iter()
        .find(|l| l["image"].as_str().unwrap().ends_with("chelsea.png"))
        .unwrap();
    assert_eq!(chelsea["label"], "cat");

    let o = run(&[
        "classify",
        "--model",
        &model(),
        &photos[0].display().to_string(),
        "no-such.png",
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "a missing image is bad input: {}",
        text(&o.stderr)
    );
    assert_eq!(text(&o.stdout).lines().count(), 1);
    assert!(
        text(&o.stderr).contains("error: cannot open image no-such.png: no such file"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn classify_prints_aligned_columns_skips_damaged_images_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photos();
    let rocket = photos.iter().find(|p| p.ends_with("rocket.jpg")).unwrap();
    let jpeg = std::fs::read(rocket).unwrap();
    let cut = dir.path().join("cut.jpg");
    std::fs::write(&cut, &jpeg[..jpeg.len() / 2]).unwrap();
    let mut args: Vec<String> = vec!["classify".into(), "--model".into(), model()];
    args.push(photos[0].display().to_string());
    args.push(cut.display().to_string());
    args.push(rocket.display().to_string());
    args.push("a.png".into());
    let o = fw().args(&args).output().unwrap();
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("cut.jpg: the JPEG is truncated (no end-of-image marker"),
        "{err}"
    );
    assert!(
        err.contains("2 of 4 images could not be classified"),
        "{err}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    // Columns: image, label, probability, latency, runner-ups — at the same place on each line.
    for col in [" %  ", " ms"] {
        let at: Vec<usize> = lines.iter().map(|l| l.find(col).unwrap()).collect();
        assert!(at.windows(2).all(|w| w[0] == w[1]), "`{col}`:\n{out}");
    }
    let fields: Vec<&str> = lines[1].split_whitespace().collect();
    assert!(fields[0].ends_with("rocket.jpg"), "{out}");
    let pct: f64 = fields[2].parse().unwrap();
    assert!((0.0..=100.0).contains(&pct) && fields[3] == "%", "{out}");
    let ms: f64 = fields[4].parse().unwrap();
    assert!(ms > 0.0 && fields[5] == "ms", "{out}");
    assert!(fields[6].starts_with('('), "runner-ups: {out}");

    args.insert(3, "--json".into());
    let o = fw().args(&args).output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    for l in json(
        &text(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>(),
    ) {
        assert!(l["latency_ms"].as_f64().unwrap() > 0.0, "{l}");
        let (score, logit) = (l["score"].as_f64().unwrap(), l["logit"].as_f64().unwrap());
        assert!((0.0..=1.0).contains(&score) && logit.is_finite(), "{l}");
        for e in l["topk"].as_array().unwrap() {
            assert!(e["score"].is_number() && e["logit"].is_number(), "{l}");
        }
    }
}

#[test]
fn run_on_a_folder_classifies_the_photos_and_chelsea_is_a_cat() {
    let dir = format!("dir:{}", models().join("photos").display());
    let o = run(&["run", "--model", &model(), "--camera", &dir]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert_eq!(out.lines().count(), photos().len(), "{out}");
    let chelsea = out
        .lines()
        .find(|l| l.starts_with("chelsea.png"))
        .expect("a line for chelsea.png");
    assert!(
        chelsea.split_whitespace().nth(1) == Some("cat"),
        "{chelsea}"
    );
    assert!(
        text(&o.stderr).contains("end of stream: 6 frames processed, 0 dropped"),
        "{}",
        text(&o.stderr)
    );
}

#[cfg(feature = "gstreamer")]
#[test]
fn videotestsrc_gives_one_json_line_per_frame_and_exit_0_at_end_of_stream() {
    let s = Service::start(&[
        "--model",
        &model(),
        "--json",
        "--camera",
        "gst:videotestsrc num-buffers=300 ! video/x-raw,width=640,height=480 ! videoconvert",
    ]);
    let (status, lines, log) = s.wait();
    assert!(status.success(), "{}", log.join("\n"));
    let v = json(&lines);
    // 30 frames/s and a few ms per frame: nothing needs dropping.
    assert_eq!(v.len(), 300, "{}", log.join("\n"));
    for (i, l) in v.iter().enumerate() {
        assert_eq!(l["frame"].as_u64(), Some(i as u64));
        for key in [
            "ts",
            "label",
            "score",
            "topk",
            "latency_ms",
            "infer_ms",
            "dropped",
        ] {
            assert!(!l[key].is_null(), "line {i} has no {key}: {l}");
        }
    }
    assert!(
        log.iter()
            .any(|l| l.contains("end of stream: 300 frames processed")),
        "{}",
        log.join("\n")
    );
}

#[cfg(feature = "gstreamer")]
#[test]
fn a_live_source_faster_than_inference_drops_frames_instead_of_queueing_them() {
    // 1000 live 720p frames at 1000 frames/s: cheap to make (black), a few ms each to preprocess.
    let s = Service::start(&[
        "--model", &model(), "--json", "--threads", "1", "--camera",
        "gst:videotestsrc is-live=true pattern=black num-buffers=1000 ! video/x-raw,format=YUY2,width=1280,height=720,framerate=1000/1",
    ]);
    let (status, lines, log) = s.wait();
    assert!(status.success(), "{}", log.join("\n"));
    let v = json(&lines);
    let ids: Vec<u64> = v.iter().map(|l| l["frame"].as_u64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "frames are processed newest-first, never out of order"
    );
    let dropped: u64 = v.iter().map(|l| l["dropped"].as_u64().unwrap()).sum();
    assert!(
        dropped > 0 && ids.len() < 2000,
        "{} frames processed, {dropped} dropped",
        ids.len()
    );
    assert_eq!(
        ids.len() as u64 + dropped,
        ids.last().unwrap() + 1 - ids[0],
        "each gap is reported as dropped"
    );
    eprintln!(
        "live 720p at 1000 frames/s: {} processed, {dropped} dropped",
        ids.len()
    );
}

#[cfg(feature = "gstreamer")]
#[test]
fn video_files_and_mjpeg_streams_play_through_gstreamer() {
    let dir = tempfile::tempdir().unwrap();
    let avi = dir.path().join("clip.avi");
    gstreamer::init().unwrap();
    let p = gstreamer::parse::launch(&format!(
        "videotestsrc num-buffers=20 pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! jpegenc ! avimux ! filesink location={}",
        avi.display()
    ))
    .unwrap();
    use gstreamer::prelude::*;
    p.set_state(gstreamer::State::Playing).unwrap();
    let bus = p.bus().unwrap();
    let msg = bus.timed_pop_filtered(
        gstreamer::ClockTime::from_seconds(30),
        &[gstreamer::MessageType::Eos, gstreamer::MessageType::Error],
    );
    assert!(matches!(
        msg.map(|m| m.type_()),
        Some(gstreamer::MessageType::Eos)
    ));
    p.set_state(gstreamer::State::Null).unwrap();

    let o = run(&[
        "run",
        "--model",
        &model(),
        "--json",
        "--camera",
        &format!("file:{}", avi.display()),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).lines().count() >= 10, "{}", text(&o.stdout));

    // JPEG buffers straight into the appsink take the MJPEG path.
    let o = run(&[
        "run",
        "--model",
        &model(),
        "--json",
        "--camera",
        "gst:videotestsrc num-buffers=10 ! video/x-raw,width=320,height=240 ! jpegenc",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).lines().count(), 10);
    assert!(
        text(&o.stderr).contains("10 frames processed"),
        "{}",
        text(&o.stderr)
    );

    let o = run(&[
        "run",
        "--model",
        &model(),
        "--camera",
        "file:/no/such/clip.mp4",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        text(&o.stderr)
            .contains("video file /no/such/clip.mp4 does not exist; pass --camera file:"),
        "{}",
        text(&o.stderr)
    );
}

#[cfg(feature = "gstreamer")]
#[test]
fn frames_over_the_size_limit_end_the_run_before_they_are_copied() {
    let o = run(&[
        "run",
        "--model",
        &model(),
        "--camera",
        "gst:videotestsrc num-buffers=3 ! video/x-raw,format=GRAY8,width=16400,height=2",
    ]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("delivers 16400×2 frames: it is 16400×2 pixels, over the limit of 16384"),
        "{err}"
    );
}

#[cfg(feature = "gstreamer")]
#[test]
fn a_failing_camera_is_retried_and_sigterm_ends_the_run_with_exit_0_within_a_second() {
    // `identity error-after=15` fails the pipeline after 15 frames, every time it is opened.
    let mut s = Service::start(&[
        "--model", &model(), "--json", "--camera",
        "gst:videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=60/1 ! identity error-after=15 ! videoconvert",
    ]);
    s.until("two camera losses and frames after them", |s| {
        s.log
            .iter()
            .filter(|l| l.starts_with("camera lost:"))
            .count()
            >= 2
            && s.lines.len() >= 20
    });
    let (took, status, lines, log) = s.terminate();
    assert_eq!(status.code(), Some(0), "{}", log.join("\n"));
    assert!(took < Duration::from_secs(1), "SIGTERM took {took:?}");
    assert!(
        log.iter()
            .any(|l| l.contains("camera lost: GStreamer pipeline") && l.contains("retrying in")),
        "{}",
        log.join("\n")
    );
    assert!(
        log.last().unwrap().contains("stopped:"),
        "{}",
        log.join("\n")
    );
    json(&lines);
    eprintln!("SIGTERM → exit in {took:?}");
}

#[test]
fn a_camera_folder_that_disappears_is_waited_for_and_sigterm_exits_0() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cam");
    let fill = || {
        std::fs::create_dir_all(&dir).unwrap();
        for p in photos().iter().take(2) {
            std::fs::copy(p, dir.join(p.file_name().unwrap())).unwrap();
        }
    };
    fill();
    let uri = format!("dir:{}?loop=true&fps=50", dir.display());
    let mut s = Service::start(&["--model", &model(), "--camera", &uri]);
    s.until("frames", |s| s.lines.len() >= 3);
    std::fs::remove_dir_all(&dir).unwrap();
    s.until("the loss to be noticed", |s| {
        s.log.iter().any(|l| l.starts_with("camera lost:"))
    });
    let before = s.lines.len();
    s.until("more retries", |s| {
        s.log
            .iter()
            .filter(|l| l.starts_with("camera lost:"))
            .count()
            >= 3
    });
    fill();
    s.until("frames after the folder came back", |s| {
        s.lines.len() >= before + 3
    });
    let (took, status, _, log) = s.terminate();
    assert_eq!(status.code(), Some(0), "{}", log.join("\n"));
    assert!(took < Duration::from_secs(1), "SIGTERM took {took:?}");
}

#[test]
fn a_source_that_does_not_exist_is_refused_at_start_up_with_what_to_pass_instead() {
    let mut cases = vec![
        (
            "v4l2:/dev/video-resq-test-missing",
            "camera /dev/video-resq-test-missing does not exist; pass --camera v4l2:/dev/videoN",
        ),
        (
            "dir:/no/such/folder",
            "folder /no/such/folder does not exist; pass --camera dir:FOLDER",
        ),
    ];
    if cfg!(feature = "gstreamer") {
        cases.push((
            "file:/no/such/clip.mp4",
            "video file /no/such/clip.mp4 does not exist; pass --camera file:PATH",
        ));
    }
    for (uri, want) in cases {
        let m = model();
        let o = run_within(
            &["run", "--model", &m, "--camera", uri],
            Duration::from_secs(10),
        );
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{uri}: {err}");
        assert!(err.contains(want), "{uri}: wanted `{want}` in:\n{err}");
        assert!(!err.contains("camera lost"), "{uri} was retried:\n{err}");
    }
}

#[cfg(feature = "gstreamer")]
#[test]
fn memory_stays_flat_over_a_long_run() {
    let mut s = Service::start(&[
        "--model", &model(), "--json", "--camera",
        "gst:videotestsrc num-buffers=12000 ! video/x-raw,width=640,height=480,framerate=1000/1 ! videoconvert",
    ]);
    s.until("warm-up", |s| s.lines.len() >= 300);
    let warm = s.rss_kb();
    let mut peak = warm;
    while s.child.try_wait().unwrap().is_none() {
        s.pump();
        peak = peak.max(s.rss_kb());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, lines, log) = s.wait();
    assert!(status.success(), "{}", log.join("\n"));
    eprintln!(
        "RSS after 300 frames {warm} kB, peak {peak} kB over {} processed frames",
        lines.len()
    );
    assert!(
        warm > 0 && peak < warm + 4096,
        "RSS grew from {warm} kB to {peak} kB"
    );
}

#[test]
fn selftest_passes_and_a_wrong_vector_fails_with_exit_1() {
    let o = run(&["selftest", "--model", &model()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).starts_with("self-test passed:"),
        "{}",
        text(&o.stdout)
    );

    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(model()).unwrap();
    let st = {
        let aligned = resq_engine::AlignedBytes::new(&bytes);
        let expected = resq_format::Model::parse(aligned.as_bytes())
            .unwrap()
            .meta
            .self_test
            .expected;
        expected
    };
    let data_offset = u64::from_le_bytes(bytes[40..48].try_into().unwrap()) as usize;
    let flipped = [bytes[data_offset + st.offset as usize] ^ 0x40];
    resq_format::write::patch_data(
        &mut bytes,
        resq_format::DataRef {
            offset: st.offset,
            len: 1,
        },
        &flipped,
    );
    let bad = dir.path().join("bad.resq");
    std::fs::write(&bad, &bytes).unwrap();
    let o = run(&["selftest", "--model", &bad.display().to_string()]);
    assert_eq!(o.status.code(), Some(4));
    assert!(
        text(&o.stderr).contains("self-test FAILED"),
        "{}",
        text(&o.stderr)
    );
    let o = run(&["selftest", "--json", "--model", &bad.display().to_string()]);
    assert_eq!(o.status.code(), Some(4));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["passed"], false);

    let truncated = dir.path().join("truncated.resq");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let o = run(&["selftest", "--model", &truncated.display().to_string()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o.stderr).contains("truncated"), "{}", text(&o.stderr));

    // Not a model, and endless: refused after its first 64 bytes.
    let o = run_within(
        &["selftest", "--model", "/dev/zero"],
        Duration::from_secs(5),
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("bad magic"), "{}", text(&o.stderr));
}

#[test]
fn selftest_and_boards_print_json() {
    let o = run(&["selftest", "--json", "--model", &model()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["passed"], true);
    assert_eq!(v["model"], model().as_str());
    assert_eq!(v["classes"], 10);
    assert!(v["layers"].as_u64().unwrap() > 5, "{v}");
    assert!(v["arena_bytes"].as_u64().unwrap() > 0, "{v}");
    assert!(
        v["name"].is_string() && v["kernel"].is_string() && v["isa"].is_string(),
        "{v}"
    );

    let o = run(&["boards", "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let boards = v.as_array().unwrap();
    assert_eq!(boards.len(), resq_fw::board::BUILTIN.len());
    let rpi4 = boards.iter().find(|b| b["name"] == "rpi4").unwrap();
    assert!(!rpi4["description"].as_str().unwrap().is_empty(), "{v}");
}

#[test]
fn bad_input_is_refused_with_what_to_change() {
    let m = model();
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "--model", "nope.resq"],
            "cannot open model nope.resq: no such file",
        ),
        (
            &["run", "--model", &m, "--camera", "/dev/video0"],
            "did you mean v4l2:/dev/video0?",
        ),
        (
            &[
                "run",
                "--model",
                &m,
                "--camera",
                "dir:/no/such/folder",
                "--max-frames",
                "1",
                "--board",
                "rpi3",
            ],
            "no board `rpi3`: use one of rpi4",
        ),
        (
            &[
                "run",
                "--model",
                &m,
                "--camera",
                "v4l2:/dev/video0?format=H264",
            ],
            "format `H264` is not one resq-fw reads",
        ),
        (
            &["run", "--model", &m, "--camera", "dir:.", "--watch", "cat"],
            "--watch `cat`: write LABEL=LINE",
        ),
        (
            &[
                "run",
                "--model",
                &m,
                "--camera",
                "dir:.",
                "--watch",
                "unicorn=3",
                "--gpio-chip",
                "/dev/null",
            ],
            "`unicorn` is not a class of the model",
        ),
        (
            &[
                "run",
                "--model",
                &m,
                "--camera",
                "dir:.",
                "--status-led",
                "3",
            ],
            "no GPIO chip: pass --gpio-chip",
        ),
        (
            &[
                "run",
                "--model",
                &m,
                "--camera",
                "gst:videotestsrc ! no-such-element",
            ],
            "does not parse",
        ),
        (
            &["run", "--model", &m, "--camera", "dir:.", "--threads", "0"],
            "--threads 0 is out of range",
        ),
        (
            &["bench", "--model", &m, "--size", "641x480"],
            "--size `641x480`: write WIDTHxHEIGHT with even numbers",
        ),
        // Refused before a frame is allocated (it was "memory allocation failed", an abort).
        (
            &["bench", "--model", &m, "--size", "100000x100000"],
            "--size `100000x100000`: it is 100000×100000 pixels, over the limit of 16384 per side",
        ),
        (
            &[
                "run",
                "--model",
                &m,
                "--camera",
                "v4l2:/dev/video0?width=100000",
            ],
            "`width=100000` is out of range",
        ),
        (
            &["run", "--model", &m, "--camera", "dir:/no/such/folder"],
            "folder /no/such/folder does not exist",
        ),
    ];
    for (args, want) in cases {
        let o = run_within(args, Duration::from_secs(30));
        // Every refused input is exit 3; 2 stays clap's own status for a wrong command line.
        assert_eq!(o.status.code(), Some(3), "{args:?}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains(want),
            "{args:?}: wanted `{want}` in:\n{}",
            text(&o.stderr)
        );
    }
}

#[test]
fn a_board_profile_for_a_cpu_without_its_features_warns() {
    // rpi4 promises aarch64 NEON: on this x86 host the profile's architecture is wrong.
    let o = run(&["selftest", "--model", &model(), "--board", "rpi4"]);
    assert!(o.status.success());
    assert!(
        text(&o.stderr).contains("board profile `rpi4` is for aarch64 but this machine is x86_64"),
        "{}",
        text(&o.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let custom = dir.path().join("box.toml");
    let host = resq_fw::board::BUILTIN
        .iter()
        .find(|(n, _)| *n == "x86_64-host")
        .unwrap()
        .1;
    std::fs::write(
        &custom,
        host.replace(
            "features = [\"sse4.1\", \"avx2\", \"fma\"]",
            "features = [\"avx512vnni\", \"sse2\"]",
        ),
    )
    .unwrap();
    let o = run(&[
        "selftest",
        "--model",
        &model(),
        "--board",
        &custom.display().to_string(),
    ]);
    assert!(o.status.success());
    let has_vnni = std::arch::is_x86_feature_detected!("avx512vnni");
    assert_eq!(
        text(&o.stderr).contains("promises the CPU feature `avx512vnni`, but this CPU lacks it"),
        !has_vnni,
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn bench_measures_preprocessing_and_inference() {
    for format in ["yuyv", "nv12", "rgb", "mjpg"] {
        let o = run(&[
            "bench",
            "--model",
            &model(),
            "--iterations",
            "5",
            "--format",
            format,
            "--json",
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(v["frames_per_s"].as_f64().unwrap() > 0.0);
        assert!(v["preprocess_ms"]["median"].as_f64().unwrap() > 0.0);
        // The keys `resq bench --json` shares.
        assert_eq!(v["model"], model().as_str());
        assert_eq!(
            (v["iterations"].as_u64(), v["warmup"].as_u64()),
            (Some(5), Some(3))
        );
        assert_eq!(v["threads"], 1);
        assert!(v["kernel"].is_string() && v["isa"].is_string(), "{v}");
        assert!(v["frame"].as_str().unwrap().starts_with("640x480 "), "{v}");
        for stats in ["inference_ms", "preprocess_ms"] {
            let s = &v[stats];
            let f = |k: &str| s[k].as_f64().unwrap_or_else(|| panic!("{stats}.{k}: {v}"));
            assert!(f("min") <= f("median") && f("median") <= f("p90") && f("p90") <= f("max"));
            assert!(f("min") <= f("mean") && f("mean") <= f("max"), "{v}");
        }
    }
}

/// Spawns `resq-fw args` with stdout piped; reads `lines` lines (0: none), closes the pipe and
/// waits (a minute at most). Status and stderr.
fn with_closed_stdout(args: &[&str], lines: usize) -> (std::process::ExitStatus, String) {
    let mut child = fw()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    for _ in 0..lines {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        assert!(!l.is_empty(), "{args:?}: stdout ended early");
    }
    drop(out);
    let mut err = child.stderr.take().unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{args:?} still running a minute after its stdout closed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut e = String::new();
    std::io::Read::read_to_string(&mut err, &mut e).unwrap();
    (status, e)
}

#[test]
fn commands_that_print_end_quietly_when_their_reader_goes() {
    use std::os::unix::process::ExitStatusExt;
    let m = model();
    let many: Vec<String> = (0..50)
        .flat_map(|_| photos())
        .map(|p| p.display().to_string())
        .collect();
    let mut classify = vec!["classify", "--model", &m];
    classify.extend(many.iter().map(String::as_str));
    let cases: Vec<(Vec<&str>, usize)> = vec![
        (classify, 1),
        (vec!["boards"], 0),
        (vec!["boards", "--json"], 0),
        (vec!["selftest", "--model", &m], 0),
        (vec!["bench", "--model", &m, "--iterations", "3"], 0),
        (vec!["unit", "--board", "rpi4"], 0),
    ];
    for (args, lines) in cases {
        let (status, err) = with_closed_stdout(&args, lines);
        assert!(!err.contains("panicked"), "{args:?}:\n{err}");
        assert!(!err.contains("error"), "{args:?}:\n{err}");
        // Like `cat`: killed by SIGPIPE, or done before writing anything more.
        assert!(
            status.signal() == Some(13) || status.code() == Some(0),
            "{:?}: {status:?}\n{err}",
            &args[..2]
        );
    }
}

#[test]
fn run_stops_cleanly_when_its_output_closes() {
    let dir = format!("dir:{}?loop=true", models().join("photos").display());
    let (status, err) =
        with_closed_stdout(&["run", "--model", &model(), "--json", "--camera", &dir], 1);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("resq-fw: output closed: "), "{err}");
}

#[test]
fn the_systemd_unit_runs_unprivileged_restarts_and_logs_to_the_journal() {
    let o = run(&["unit", "--board", "rpi4"]);
    assert!(o.status.success());
    let unit = text(&o.stdout);
    for want in [
        "User=resq",
        "SupplementaryGroups=video gpio",
        "ExecStart=/usr/local/bin/resq-fw run --model /var/lib/resq/model.resq --board rpi4 --json",
        "Restart=on-failure",
        "KillSignal=SIGTERM",
        "StandardOutput=journal",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.contains(want), "unit lacks `{want}`:\n{unit}");
    }
    for placeholder in ["@NAME@", "@DESCRIPTION@", "@BIN@", "@MODEL@", "@USER@"] {
        assert!(
            !unit.contains(placeholder),
            "unfilled {placeholder}:\n{unit}"
        );
    }
    let o = run(&["unit", "--board", "jetson-nano", "--model", "/opt/m.resq"]);
    assert!(text(&o.stdout).contains("--model /opt/m.resq --board jetson-nano"));
    let o = run(&["boards"]);
    for name in [
        "rpi4",
        "rpi5",
        "jetson-nano",
        "jetson-orin-nano",
        "generic-aarch64",
        "x86_64-host",
    ] {
        assert!(text(&o.stdout).contains(name));
    }
    // systemd's own checker, where the machine has it.
    if let Ok(v) = Command::new("systemd-analyze").arg("--version").output() {
        if v.status.success() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("resq-fw.service");
            std::fs::write(
                &path,
                unit.replace("/usr/local/bin/resq-fw", env!("CARGO_BIN_EXE_resq-fw")),
            )
            .unwrap();
            let o = Command::new("systemd-analyze")
                .args(["verify", "--man=no"])
                .arg(&path)
                .output()
                .unwrap();
            let err = text(&o.stderr);
            let real: Vec<&str> = err
                .lines()
                .filter(|l| {
                    l.contains("resq-fw.service") && !l.contains("User") && !l.contains("Group")
                })
                .collect();
            assert!(real.is_empty(), "systemd-analyze verify:\n{err}");
        }
    }
}
