//! Smoothing of scores over the last N frames, in fixed capacity.

use heapless::Deque;

/// Most frames scores can be averaged over.
pub const MAX_SMOOTH: usize = 64;

/// The mean of the last `window` score vectors. Buffers are recycled once the window is full,
/// so a long run allocates nothing per frame.
pub struct Smoother {
    window: usize,
    history: Deque<Box<[f32]>, MAX_SMOOTH>,
    mean: Vec<f32>,
}

impl Smoother {
    /// Averages over `window` frames (clamped to 1..=[`MAX_SMOOTH`]; 1 = no smoothing).
    pub fn new(window: usize, classes: usize) -> Smoother {
        Smoother {
            window: window.clamp(1, MAX_SMOOTH),
            history: Deque::new(),
            mean: vec![0.0; classes],
        }
    }

    /// Frames averaged over.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Frames currently in the window.
    pub fn len(&self) -> usize {
        self.history.len()
    }

    /// Whether no frame was pushed since the last reset.
    pub fn is_empty(&self) -> bool {
        self.history.is_empty()
    }

    /// Forgets the history (e.g. after the camera was lost: old scenes should not linger).
    pub fn reset(&mut self) {
        self.history.clear();
    }

    /// Adds one frame's scores and returns the mean over the window.
    pub fn push(&mut self, scores: &[f32]) -> &[f32] {
        let mut slot = if self.history.len() >= self.window {
            self.history.pop_front().unwrap_or_default()
        } else {
            vec![0.0; scores.len()].into_boxed_slice()
        };
        if slot.len() != scores.len() {
            slot = vec![0.0; scores.len()].into_boxed_slice();
        }
        slot.copy_from_slice(scores);
        // Cannot fail: the window is at most the capacity and one entry was popped when full.
        let _ = self.history.push_back(slot);
        self.mean.clear();
        self.mean.resize(scores.len(), 0.0);
        for h in self.history.iter() {
            for (m, &s) in self.mean.iter_mut().zip(h.iter()) {
                *m += s;
            }
        }
        let n = self.history.len() as f32;
        self.mean.iter_mut().for_each(|m| *m /= n);
        &self.mean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_the_last_window_frames() {
        let mut s = Smoother::new(2, 2);
        assert_eq!(s.push(&[1.0, 0.0]), &[1.0, 0.0]);
        assert_eq!(s.push(&[0.0, 1.0]), &[0.5, 0.5]);
        assert_eq!(s.push(&[0.0, 1.0]), &[0.0, 1.0]);
        assert_eq!(s.len(), 2);
        s.reset();
        assert_eq!(s.push(&[1.0, 0.0]), &[1.0, 0.0]);
    }

    #[test]
    fn window_one_is_no_smoothing_and_big_windows_are_clamped() {
        let mut s = Smoother::new(1, 1);
        s.push(&[3.0]);
        assert_eq!(s.push(&[5.0]), &[5.0]);
        assert_eq!(Smoother::new(1000, 1).window(), MAX_SMOOTH);
        assert_eq!(Smoother::new(0, 1).window(), 1);
    }
}
