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

/// Fill the `2^order` pages at `phys` with `word(i)` as word `i` of the
/// block, one page at a time; `page` sees each page's words before they are
/// written (for a checksum).
pub fn fill<M: kho_mem::PhysMem>(
    mem: &mut M,
    phys: kho_mem::PhysAddr,
    order: kho_mem::Order,
    word: impl Fn(u64) -> u64,
    mut page: impl FnMut(&[u64]),
) -> Result<(), alloc::string::String> {
    let mut words = [0u64; 512];
    for p in 0..order.pages() {
        for (j, w) in words.iter_mut().enumerate() {
            *w = word(p * 512 + j as u64);
        }
        page(&words);
        // Memory is little-endian (PhysMem): a no-op on every KHO arch.
        words.iter_mut().for_each(|w| *w = w.to_le());
        let at = phys.checked_add(p * 4096).ok_or("block wraps")?;
        mem.write(at, zerocopy::IntoBytes::as_bytes(&words[..]))
            .map_err(|e| alloc::format!("block {phys}: {e}"))?;
    }
    Ok(())
}

/// Compare every word of the `2^order` pages at `phys` with `word(i)`; the
/// first difference is an error naming the word. `page` sees each page's
/// words (for a checksum).
pub fn check<M: kho_mem::PhysMem>(
    mem: &M,
    phys: kho_mem::PhysAddr,
    order: kho_mem::Order,
    word: impl Fn(u64) -> u64,
    mut page: impl FnMut(&[u64]),
) -> Result<(), alloc::string::String> {
    let mut words = [0u64; 512];
    for p in 0..order.pages() {
        let at = phys.checked_add(p * 4096).ok_or("block wraps")?;
        mem.read_u64s(at, &mut words)
            .map_err(|e| alloc::format!("block {phys}: {e}"))?;
        for (j, &w) in words.iter().enumerate() {
            let index = p * 512 + j as u64;
            let want = word(index);
            if w != want {
                return Err(alloc::format!(
                    "block {phys} word {index}: {w:#x}, expected {want:#x}"
                ));
            }
        }
        page(&words);
    }
    Ok(())
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
    fn fill_then_check_and_a_changed_word_is_named() {
        use kho_mem::{HostMem, Order, PhysAddr, PhysMem};
        let mut mem = HostMem::new(HostMem::DEFAULT_BASE, 1 << 20).unwrap();
        let at = mem.alloc_pages(Order::try_new(1).unwrap()).unwrap();
        let order = Order::try_new(1).unwrap();
        let word = |i| word(7, 1, 2, i);
        let (mut filled, mut checked) = (0, 0);
        fill(&mut mem, at, order, word, |p| filled += p.len()).unwrap();
        check(&mem, at, order, word, |p| checked += p.len()).unwrap();
        assert_eq!((filled, checked), (1024, 1024));
        mem.write_u64(PhysAddr::new(at.as_u64() + 8 * 700), 0)
            .unwrap();
        let e = check(&mem, at, order, word, |_| {}).unwrap_err();
        assert!(e.contains("word 700: 0x0, expected"), "{e}");
    }

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
