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
        Some(1),
        "a missing image fails the command"
    );
    assert_eq!(text(&o.stdout).lines().count(), 1);
    assert!(
        text(&o.stderr).contains("no-such.png: cannot read the image"),
        "{}",
        text(&o.stderr)
    );
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
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("video file /no/such/clip.mp4 does not exist"),
        "{}",
        text(&o.stderr)
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
fn a_missing_v4l2_camera_is_waited_for_and_sigterm_exits_0() {
    let mut s = Service::start(&[
        "--model",
        &model(),
        "--camera",
        "v4l2:/dev/video-resq-test-missing",
    ]);
    s.until("two attempts", |s| {
        s.log
            .iter()
            .filter(|l| l.starts_with("camera lost:"))
            .count()
            >= 2
    });
    assert!(
        s.log
            .iter()
            .any(|l| l.contains("cannot open camera /dev/video-resq-test-missing")),
        "{}",
        s.log.join("\n")
    );
    let (took, status, lines, _) = s.terminate();
    assert_eq!(status.code(), Some(0));
    assert!(lines.is_empty());
    assert!(took < Duration::from_secs(1), "SIGTERM took {took:?}");
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
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("self-test FAILED"),
        "{}",
        text(&o.stderr)
    );

    let truncated = dir.path().join("truncated.resq");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let o = run(&["selftest", "--model", &truncated.display().to_string()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("is not a usable .resq model"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn bad_input_is_refused_with_what_to_change() {
    let m = model();
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "--model", "nope.resq"],
            "cannot read model nope.resq",
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
    ];
    for (args, want) in cases {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
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
    }
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
