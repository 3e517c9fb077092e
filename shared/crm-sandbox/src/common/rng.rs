//! A small, seedable, portable random number generator and seed derivation.
//!
//! The sandboxes promise that a seed number gives the same data and the same fault
//! sequence on every machine and every crate version, so they do not rely on `rand`'s
//! `StdRng` (whose algorithm may change between releases). [`SeededRng`] is SplitMix64,
//! which is tiny, fast and statistically good enough for test data. It implements
//! [`rand::RngCore`] so `rand`'s helpers work on it too.

/// Mixes a 64-bit value (the SplitMix64 finaliser); a bijection with good avalanche.
#[must_use]
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable 64-bit hash of a string (FNV-1a followed by [`mix64`]).
///
/// Stable across platforms and releases, unlike `std`'s `DefaultHasher`.
#[must_use]
pub fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// Derives a child seed from a parent seed and a list of labels, e.g.
/// `derive_seed(seed, &["org-a", "Account"])`. Different label lists give unrelated seeds.
#[must_use]
pub fn derive_seed(seed: u64, labels: &[&str]) -> u64 {
    labels
        .iter()
        .fold(mix64(seed ^ 0x5eed_5eed_5eed_5eed), |acc, label| {
            mix64(acc ^ hash_str(label))
        })
}

/// Derives a child seed from a parent seed and a number (a record index, a request number).
#[must_use]
pub const fn derive_index(seed: u64, index: u64) -> u64 {
    mix64(seed ^ mix64(index.wrapping_add(0x9e37_79b9_7f4a_7c15)))
}

/// SplitMix64: a deterministic generator; the same seed always yields the same sequence.
#[derive(Debug, Clone)]
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    /// A generator whose whole sequence is determined by `seed`.
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.state)
    }

    /// A uniform number in `0..n` (`0` when `n` is `0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Lemire's multiply-shift; the tiny bias is irrelevant for test data.
        ((u128::from(self.bits()) * u128::from(n)) >> 64) as u64
    }

    /// A uniform number in `lo..=hi`.
    pub fn range_i64(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = hi.abs_diff(lo).saturating_add(1);
        lo.wrapping_add(self.below(span) as i64)
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.bits() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `true` with probability `p` (clamped to `[0, 1]`).
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One element of a non-empty slice; the first element's default when empty is impossible
    /// because callers pass constant tables.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let i = self.below(items.len() as u64) as usize;
        &items[i.min(items.len().saturating_sub(1))]
    }
}

impl rand::RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        (self.bits() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.bits()
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.bits().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = SeededRng::new(42);
        let mut b = SeededRng::new(42);
        for _ in 0..100 {
            assert_eq!(a.bits(), b.bits());
        }
    }

    #[test]
    fn known_values_are_stable() {
        // Pinned so a refactor cannot silently change every generated data set.
        let mut r = SeededRng::new(0);
        assert_eq!(r.bits(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(derive_seed(1, &["a"]), derive_seed(1, &["a"]));
        assert_ne!(derive_seed(1, &["a"]), derive_seed(1, &["b"]));
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = SeededRng::new(7);
        for n in 1..200 {
            assert!(r.below(n) < n);
        }
        assert_eq!(r.below(0), 0);
        for _ in 0..1000 {
            let v = r.range_i64(-5, 5);
            assert!((-5..=5).contains(&v));
        }
    }
}
