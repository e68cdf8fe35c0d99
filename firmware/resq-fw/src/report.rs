//! What a result looks like on stdout: one human line or one JSON object per frame or image.
//!
//! `score` is always a probability (the softmax of the model's outputs, whether or not the
//! model ends in a softmax) and people see it as a percentage; `logit` is the model's
//! dequantized output before that softmax.

use serde::Serialize;

use crate::classify::{TopK, MAX_TOP_K};

/// One entry of a top-k list.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Entry<'a> {
    /// Class label.
    pub label: &'a str,
    /// Its probability.
    pub score: f32,
    /// Its logit (the dequantized output before the softmax).
    pub logit: f32,
}

/// One classified frame, as printed.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Record<'a> {
    /// The source's frame number (gaps: frames dropped before inference).
    pub frame: u64,
    /// Capture time, seconds since the Unix epoch.
    pub ts: f64,
    /// Image file, for frames read from a folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<&'a str>,
    /// Leading class label (after smoothing).
    pub label: &'a str,
    /// Its index.
    pub class: usize,
    /// Its probability (averaged over the smoothed frames).
    pub score: f32,
    /// Its logit (averaged over the same frames).
    pub logit: f32,
    /// The best classes, highest first.
    pub topk: heapless::Vec<Entry<'a>, MAX_TOP_K>,
    /// Capture to result, milliseconds.
    pub latency_ms: f64,
    /// Preprocessing + inference, milliseconds.
    pub infer_ms: f64,
    /// Frames the source delivered since the previous processed one that were not processed.
    pub dropped: u64,
    /// Frames the scores were averaged over.
    pub smoothed: usize,
}

/// The top-k list with labels and logits (`logits` indexed by class).
pub fn entries<'a>(
    top: &TopK,
    labels: &'a [String],
    logits: &[f32],
) -> heapless::Vec<Entry<'a>, MAX_TOP_K> {
    top.iter()
        .map(|&(c, score)| Entry {
            label: labels.get(c).map_or("?", String::as_str),
            score,
            logit: logits.get(c).copied().unwrap_or(f32::NAN),
        })
        .collect()
}

/// A probability for people: a percentage, 7 characters wide (` 99.1 %`).
pub fn human_score(probability: f32) -> String {
    format!("{:5.1} %", 100.0 * probability)
}

/// The runner-ups of a top-k list for people: `  (dog 3.1 %, horse 1.0 %)`, or nothing.
fn runner_ups(topk: &[Entry]) -> String {
    let rest: Vec<String> = topk
        .iter()
        .skip(1)
        .map(|e| format!("{} {}", e.label, human_score(e.score).trim()))
        .collect();
    if rest.is_empty() {
        String::new()
    } else {
        format!("  ({})", rest.join(", "))
    }
}

impl Record<'_> {
    /// The JSON line.
    pub fn json(&self) -> String {
        // Serialising plain numbers and strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The human line.
    pub fn human(&self) -> String {
        let who = match self.image {
            Some(name) => format!("{name:<24}"),
            None => format!("frame {:<7}", self.frame),
        };
        let dropped = if self.dropped > 0 {
            format!("  [{} dropped]", self.dropped)
        } else {
            String::new()
        };
        format!(
            "{who} {:<12} {}{}  {:.1} ms{dropped}",
            self.label,
            human_score(self.score),
            runner_ups(&self.topk),
            self.latency_ms
        )
    }
}

/// One classified image file (`resq-fw classify`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ImageRecord<'a> {
    /// The file, as given.
    pub image: String,
    /// Leading class label.
    pub label: &'a str,
    /// Its index.
    pub class: usize,
    /// Its probability.
    pub score: f32,
    /// Its logit.
    pub logit: f32,
    /// The best classes, highest first.
    pub topk: heapless::Vec<Entry<'a>, MAX_TOP_K>,
    /// Reading, decoding, preprocessing and inference of this image, milliseconds.
    pub latency_ms: f64,
}

/// Column widths of `resq-fw classify`'s human lines, known before the first line: the
/// longest file name given and the longest label of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Columns {
    /// Characters of the image column.
    pub image: usize,
    /// Characters of the label column.
    pub label: usize,
}

impl Columns {
    /// Widths fitting every image name and label.
    pub fn fit<'a>(
        images: impl IntoIterator<Item = &'a str>,
        labels: impl IntoIterator<Item = &'a str>,
    ) -> Columns {
        let width =
            |it: &mut dyn Iterator<Item = &str>| it.map(|s| s.chars().count()).max().unwrap_or(0);
        Columns {
            image: width(&mut images.into_iter()),
            label: width(&mut labels.into_iter()),
        }
    }
}

impl ImageRecord<'_> {
    /// The JSON line.
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The human line, in columns: image, label, probability, latency, runner-ups.
    pub fn human(&self, cols: Columns) -> String {
        format!(
            "{:<iw$}  {:<lw$}  {}  {:8.2} ms{}",
            self.image,
            self.label,
            human_score(self.score),
            self.latency_ms,
            runner_ups(&self.topk),
            iw = cols.image,
            lw = cols.label,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_lines_are_aligned_in_columns_and_json_has_latency_and_logits() {
        let labels = ["cat".to_string(), "airplane".to_string()];
        let top: TopK = [(1usize, 0.873f32), (0, 0.127)].into_iter().collect();
        let logits = [0.5f32, 2.43];
        let names = ["a.png", "photos/chelsea.png"];
        let cols = Columns::fit(names, labels.iter().map(String::as_str));
        assert_eq!(
            cols,
            Columns {
                image: 18,
                label: 8
            }
        );
        let lines: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let class = [0, 1][i];
                ImageRecord {
                    image: n.to_string(),
                    label: &labels[class],
                    class,
                    score: top[0].1,
                    logit: logits[class],
                    topk: entries(&top, &labels, &logits),
                    latency_ms: [1.5, 123.25][i],
                }
                .human(cols)
            })
            .collect();
        assert_eq!(
            lines[0],
            "a.png               cat        87.3 %      1.50 ms  (cat 12.7 %)"
        );
        assert_eq!(
            lines[1],
            "photos/chelsea.png  airplane   87.3 %    123.25 ms  (cat 12.7 %)"
        );
        // Every column starts at the same character on every line.
        for col in ["87.3 %", "ms"] {
            let at: Vec<usize> = lines.iter().map(|l| l.find(col).unwrap()).collect();
            assert!(at.windows(2).all(|w| w[0] == w[1]), "{col}: {lines:#?}");
        }
        let r = ImageRecord {
            image: "a.png".into(),
            label: &labels[1],
            class: 1,
            score: 0.873,
            logit: 2.43,
            topk: entries(&top, &labels, &logits),
            latency_ms: 1.5,
        };
        let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(v["latency_ms"], 1.5);
        assert_eq!(v["logit"].as_f64().unwrap() as f32, 2.43);
        assert_eq!(v["topk"][1]["label"], "cat");
        assert_eq!(v["topk"][1]["logit"].as_f64().unwrap() as f32, 0.5);
        assert_eq!(v["topk"][1]["score"].as_f64().unwrap() as f32, 0.127);
    }

    #[test]
    fn scores_are_shown_as_percentages() {
        assert_eq!(human_score(0.9904), " 99.0 %");
        assert_eq!(human_score(1.0), "100.0 %");
        assert_eq!(human_score(0.0), "  0.0 %");
    }
}
