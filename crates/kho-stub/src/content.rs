//! Deterministic content of preserved memory, and its checksum.
//!
//! Every preserved word is a pure function of (seed, generation that wrote
//! it, block index, word index), so a later generation can check every byte
//! without keeping a copy.

/// splitmix64: a fast, well-mixed 64-bit hash.
pub const fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Word `word` of block `block` written by generation `generation`.
pub const fn word(seed: u64, generation: u32, block: u32, word: u64) -> u64 {
    mix(seed ^ ((generation as u64) << 40) ^ ((block as u64) << 20) ^ mix(word))
}

/// A running checksum over 64-bit words (FNV-1a over the words).
#[derive(Clone, Copy, Debug)]
pub struct Checksum(u64);

impl Checksum {
    /// An empty checksum.
    pub const fn new() -> Checksum {
        Checksum(0xcbf2_9ce4_8422_2325)
    }

    /// Add one word.
    pub fn add(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(0x0000_0100_0000_01b3);
    }

    /// The checksum so far.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl Default for Checksum {
    fn default() -> Self {
        Checksum::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_depends_on_every_coordinate() {
        let base = word(1, 2, 3, 4);
        assert_ne!(base, word(0, 2, 3, 4));
        assert_ne!(base, word(1, 1, 3, 4));
        assert_ne!(base, word(1, 2, 2, 4));
        assert_ne!(base, word(1, 2, 3, 5));
        assert_eq!(base, word(1, 2, 3, 4));
        let mut a = Checksum::new();
        let mut b = Checksum::new();
        a.add(1);
        a.add(2);
        b.add(2);
        b.add(1);
        assert_ne!(a.get(), b.get());
    }
}
