//! What a result looks like on stdout: one human line or one JSON object per frame.

use serde::Serialize;

use crate::classify::{TopK, MAX_TOP_K};

/// One entry of a top-k list.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Entry<'a> {
    /// Class label.
    pub label: &'a str,
    /// Its score.
    pub score: f32,
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
    /// Its score: a probability when the model ends in a softmax, else a logit.
    pub score: f32,
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

/// The top-k list with labels.
pub fn entries<'a>(top: &TopK, labels: &'a [String]) -> heapless::Vec<Entry<'a>, MAX_TOP_K> {
    top.iter()
        .map(|&(c, score)| Entry {
            label: labels.get(c).map_or("?", String::as_str),
            score,
        })
        .collect()
}

/// A score for people: a percentage for probabilities, the value for logits.
pub fn human_score(score: f32, probabilities: bool) -> String {
    if probabilities {
        format!("{:5.1} %", 100.0 * score)
    } else {
        format!("{score:7.3}")
    }
}

impl Record<'_> {
    /// The JSON line.
    pub fn json(&self) -> String {
        // Serialising plain numbers and strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The human line.
    pub fn human(&self, probabilities: bool) -> String {
        let who = match self.image {
            Some(name) => format!("{name:<24}"),
            None => format!("frame {:<7}", self.frame),
        };
        let rest: Vec<String> = self
            .topk
            .iter()
            .skip(1)
            .map(|e| format!("{} {}", e.label, human_score(e.score, probabilities).trim()))
            .collect();
        let rest = if rest.is_empty() {
            String::new()
        } else {
            format!("  ({})", rest.join(", "))
        };
        let dropped = if self.dropped > 0 {
            format!("  [{} dropped]", self.dropped)
        } else {
            String::new()
        };
        format!(
            "{who} {:<12} {}{rest}  {:.1} ms{dropped}",
            self.label,
            human_score(self.score, probabilities),
            self.latency_ms
        )
    }
}
