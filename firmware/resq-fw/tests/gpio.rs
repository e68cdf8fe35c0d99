//! The GPIO indicators through embedded-hal's `OutputPin`, with mock lines.

mod common;

use common::{pins, MockPin};
use resq_fw::gpio::Indicators;

#[test]
fn every_line_starts_low() {
    let (log, p) = pins(&["status", "cat"]);
    let mut p = p.into_iter();
    let ind = Indicators::new(p.next(), vec![(3, 0.6, p.next().unwrap())]).unwrap();
    assert!(!ind.is_empty());
    assert_eq!(
        *log.lock().unwrap(),
        vec![("status", false), ("cat", false)]
    );
}

#[test]
fn status_led_is_lit_while_frames_flow_and_writes_only_changes() {
    let (log, mut p) = pins(&["status"]);
    let mut ind = Indicators::new(p.pop(), vec![]).unwrap();
    for _ in 0..3 {
        assert!(ind.result(0, 0.9).is_empty());
    }
    assert!(ind.camera(false).is_empty());
    assert!(ind.result(1, 0.2).is_empty());
    assert!(ind.all_off().is_empty());
    assert_eq!(
        *log.lock().unwrap(),
        vec![
            ("status", false),
            ("status", true),
            ("status", false),
            ("status", true),
            ("status", false)
        ]
    );
}

#[test]
fn a_watch_line_is_high_while_its_class_leads_at_or_above_its_threshold() {
    let (log, p) = pins(&["cat", "dog"]);
    let mut p = p.into_iter();
    let mut ind = Indicators::new(
        None,
        vec![(3, 0.6, p.next().unwrap()), (5, 0.5, p.next().unwrap())],
    )
    .unwrap();
    log.lock().unwrap().clear();
    ind.result(3, 0.59); // cat leads, below its threshold
    ind.result(3, 0.6); // cat: on
    ind.result(3, 0.95); // no change
    ind.result(5, 0.7); // dog leads: cat off, dog on
    ind.camera(false); // camera lost: everything off
    assert_eq!(
        *log.lock().unwrap(),
        vec![("cat", true), ("cat", false), ("dog", true), ("dog", false)]
    );
}

#[test]
fn a_failing_line_is_reported_once_and_the_others_go_on() {
    use std::sync::atomic::Ordering;
    let (log, p) = pins(&["status", "cat"]);
    let mut p = p.into_iter();
    let (status, cat) = (p.next().unwrap(), p.next().unwrap());
    // A line that fails when claimed stops the start: a board that cannot light its LED says so.
    status.broken.store(true, Ordering::Relaxed);
    let e = Indicators::new(Some(status.clone()), vec![]).unwrap_err();
    assert!(
        e.to_string().contains("GPIO status LED write failed"),
        "{e}"
    );
    status.broken.store(false, Ordering::Relaxed);

    // A line that breaks later is reported once, then left alone; the others go on.
    let mut ind = Indicators::new(Some(status.clone()), vec![(1, 0.5, cat)]).unwrap();
    status.broken.store(true, Ordering::Relaxed);
    let errors = ind.result(1, 0.9);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, "status LED");
    assert!(ind.camera(false).is_empty(), "reported once");
    assert!(ind.result(1, 0.9).is_empty());
    let cat: Vec<bool> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(n, _)| *n == "cat")
        .map(|&(_, v)| v)
        .collect();
    assert_eq!(cat, [false, true, false, true]);

    let mut none: Indicators<MockPin> = Indicators::default();
    assert!(none.is_empty() && none.result(0, 1.0).is_empty());
}
