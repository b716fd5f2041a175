//! The machine's read bandwidth, measured the way a decode step reads its weights: every
//! thread of the run streaming its share of a buffer far larger than the caches.
//!
//! Decode is bound by reading the weights, so its speed only means something next to what the
//! memory gives at that moment; on a shared machine that moves by half between minutes. The
//! bench measures it just before and just after the decode runs and reports decode's weight
//! reads against the fastest pass of the two.

use rayon::prelude::*;
use std::time::Instant;

/// Bytes each task sums: enough tasks to spread over the threads, each a long sequential run.
const TASK_BYTES: usize = 1 << 20;

/// Read bandwidth in GB/s (10⁹ bytes a second), one figure per read of the buffer.
#[derive(Debug, Clone, Default)]
pub struct Bandwidth {
    rates: Vec<f64>,
}

impl Bandwidth {
    /// The fastest pass: the ceiling the memory gave in that window.
    pub fn best(&self) -> f64 {
        self.rates.iter().copied().fold(f64::NAN, f64::max)
    }

    pub fn median(&self) -> f64 {
        let mut r = self.rates.clone();
        r.sort_by(f64::total_cmp);
        r.get(r.len() / 2).copied().unwrap_or(f64::NAN)
    }

    /// The passes of both measurements.
    pub fn and(mut self, other: Bandwidth) -> Self {
        self.rates.extend(other.rates);
        self
    }
}

/// Reads a buffer of `bytes` (rounded down to 8-byte words) `passes` times on rayon's pool.
pub fn measure(bytes: usize, passes: usize) -> Bandwidth {
    assert!(passes > 0 && bytes >= 8);
    // Written once, so every page is backed (a zeroed allocation would read the zero page).
    let words: Vec<u64> = (0..(bytes / 8) as u64).collect();
    let rates = (0..passes)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(sum(&words));
            (words.len() * 8) as f64 / t.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    Bandwidth { rates }
}

/// The wrapping sum of the words, every one read once, in parallel.
fn sum(words: &[u64]) -> u64 {
    words
        .par_chunks(TASK_BYTES / 8)
        .map(|c| c.iter().fold(0u64, |a, &b| a.wrapping_add(b)))
        .reduce(|| 0, u64::wrapping_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every word is read (the sum of 0..n), and the rates are finite and positive.
    #[test]
    fn reads_every_word() {
        let n = 3 * TASK_BYTES / 8 + 5;
        let words: Vec<u64> = (0..n as u64).collect();
        assert_eq!(sum(&words), (n as u64) * (n as u64 - 1) / 2);
        let b = measure(4 << 20, 3).and(measure(4 << 20, 2));
        assert!(b.median().is_finite() && b.median() > 0.0 && b.best() >= b.median());
        assert_eq!(b.rates.len(), 5);
    }
}
