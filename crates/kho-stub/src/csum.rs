//! Linux's `csum_partial` (the Internet checksum's 32-bit partial sum, `__wsum`), per arch.
//!
//! lib/test_kho.c stores `csum_partial` accumulated over its folios and the
//! next kernel recomputes it, so a kho_test subtree must carry exactly the
//! 32-bit value the receiving arch's Linux computes. The two arches differ:
//!
//! - **x86_64** (arch/x86/lib/csum-partial_64.c): the buffer is summed as
//!   little-endian 64-bit words (the last partial word zero-padded) in
//!   one's-complement arithmetic (add with end-around carry), starting from
//!   the incoming sum; the 64-bit result is folded to 32 bits with
//!   end-around carry. No 16-bit fold: the value keeps 32 bits.
//! - **arm64** (lib/checksum.c's `csum_partial` over arch/arm64/lib/csum.c's
//!   `do_csum`): the buffer is summed the same way as 64-bit words, but from
//!   the 8-byte boundary at or below its start (the bytes before it count
//!   as zero), folded to 32 and then to 16 bits, byte-swapped when the
//!   buffer started at an odd address; that 16-bit value is added to the
//!   incoming sum with a 32-bit end-around carry.
//!
//! One's-complement addition with end-around carry never yields 0 unless
//! every addend is 0, so the order and grouping of the additions (Linux
//! sums in parallel lanes) does not change the bits of the result: these
//! functions add one word at a time.
//!
//! [`Csum64`] is the streaming form used on folios read in pieces.

/// 64-bit one's-complement addition (add, then add the carry back in).
pub const fn add64(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    // s + 1 cannot overflow when there was a carry: s <= 2^64 - 2 then.
    s.wrapping_add(carry as u64)
}

/// 32-bit one's-complement addition.
pub const fn add32(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    s.wrapping_add(carry as u32)
}

/// Fold a 64-bit one's-complement sum to 32 bits (high half + low half).
pub const fn fold64(sum: u64) -> u32 {
    add32((sum >> 32) as u32, sum as u32)
}

/// Fold a 32-bit one's-complement sum to 16 bits.
pub const fn fold32(sum: u32) -> u16 {
    let (s, carry) = ((sum >> 16) as u16).overflowing_add(sum as u16);
    s.wrapping_add(carry as u16)
}

/// The one's-complement sum of `bytes` as little-endian 64-bit words, the
/// last partial word padded with zeros.
fn words(bytes: &[u8], start: u64) -> u64 {
    let mut sum = start;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        sum = add64(sum, u64::from_le_bytes(w));
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut w = [0u8; 8];
        w[..tail.len()].copy_from_slice(tail);
        sum = add64(sum, u64::from_le_bytes(w));
    }
    sum
}

// One-shot reference forms (tests and documentation); the stub streams
// with `Csum64`.
/// x86_64 `csum_partial(buff, len, sum)`.
#[cfg_attr(target_os = "none", allow(dead_code))]
pub fn csum_partial_x86_64(bytes: &[u8], sum: u32) -> u32 {
    fold64(words(bytes, u64::from(sum)))
}

/// arm64 `do_csum(buff, len)` for a buffer that starts at an address whose
/// low three bits are `misalign` (0 for the page-aligned folios).
#[cfg_attr(target_os = "none", allow(dead_code))]
pub fn do_csum_arm64(bytes: &[u8], misalign: usize) -> u16 {
    if bytes.is_empty() {
        return 0;
    }
    let misalign = misalign & 7;
    // The head word's bytes before the buffer count as zero: sum the
    // buffer as if `misalign` zero bytes preceded it.
    let mut head = [0u8; 8];
    let first = bytes.len().min(8 - misalign);
    head[misalign..misalign + first].copy_from_slice(&bytes[..first]);
    let sum = words(&bytes[first..], add64(0, u64::from_le_bytes(head)));
    let folded = fold32(fold64(sum));
    if misalign & 1 == 1 {
        folded.swap_bytes()
    } else {
        folded
    }
}

/// arm64 `csum_partial(buff, len, sum)` (lib/checksum.c over arm64's
/// `do_csum`), for a buffer at an address with low three bits `misalign`.
#[cfg_attr(target_os = "none", allow(dead_code))]
pub fn csum_partial_arm64(bytes: &[u8], misalign: usize, sum: u32) -> u32 {
    add32(u32::from(do_csum_arm64(bytes, misalign)), sum)
}

/// The `csum_partial` of the arch the stub is built for, on an 8-byte
/// aligned buffer (the host build, which only runs tests, uses x86_64's).
#[cfg_attr(target_os = "none", allow(dead_code))]
pub fn csum_partial(bytes: &[u8], sum: u32) -> u32 {
    let mut c = Csum64::new();
    c.add(bytes);
    c.finish(sum)
}

/// A `csum_partial` of one 8-byte-aligned buffer fed in pieces (every
/// piece but the last a multiple of 8 bytes, e.g. a folio read a page at a
/// time), for the arch the stub is built for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Csum64 {
    sum: u64,
    len: u64,
}

impl Csum64 {
    /// An empty buffer.
    pub const fn new() -> Csum64 {
        Csum64 { sum: 0, len: 0 }
    }

    /// Add the next piece.
    pub fn add(&mut self, piece: &[u8]) {
        self.sum = words(piece, self.sum);
        self.len += piece.len() as u64;
    }

    /// `csum_partial(buffer, len, sum)` as x86_64 Linux computes it.
    pub fn finish_x86_64(&self, sum: u32) -> u32 {
        fold64(add64(self.sum, u64::from(sum)))
    }

    /// `csum_partial(buffer, len, sum)` as arm64 Linux computes it.
    pub fn finish_arm64(&self, sum: u32) -> u32 {
        if self.len == 0 {
            return sum;
        }
        add32(u32::from(fold32(fold64(self.sum))), sum)
    }

    /// `csum_partial(buffer, len, sum)` for the arch the stub is built for.
    pub fn finish(&self, sum: u32) -> u32 {
        if cfg!(target_arch = "aarch64") {
            self.finish_arm64(sum)
        } else {
            self.finish_x86_64(sum)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(37).wrapping_add(11))
            .collect()
    }

    #[test]
    fn ones_complement_primitives() {
        assert_eq!(add64(u64::MAX, 1), 1);
        assert_eq!(add64(u64::MAX, u64::MAX), u64::MAX);
        assert_eq!(add64(0, 0), 0);
        assert_eq!(add32(0xffff_ffff, 2), 2);
        assert_eq!(fold64(0x0000_0001_ffff_ffff), 1);
        assert_eq!(fold64(0x8000_0000_8000_0000), 1);
        assert_eq!(fold32(0x0001_ffff), 1);
        assert_eq!(fold32(0xffff_ffff), 0xffff);
    }

    /// Small vectors worked out by hand from the C sources' arithmetic.
    #[test]
    fn hand_checked_x86_64() {
        assert_eq!(csum_partial_x86_64(&[], 0), 0);
        assert_eq!(csum_partial_x86_64(&[], 0x1234), 0x1234);
        // One byte: the word 0x01.
        assert_eq!(csum_partial_x86_64(&[1], 0), 1);
        // Words 0x0807060504030201: high 0x08070605 + low 0x04030201.
        assert_eq!(
            csum_partial_x86_64(&[1, 2, 3, 4, 5, 6, 7, 8], 0),
            0x0c0a_0806
        );
        // 0xff x 8: high + low = 0x1_ffff_fffe, plus the carry: 0xffff_ffff.
        assert_eq!(csum_partial_x86_64(&[0xff; 8], 0), 0xffff_ffff);
        // Two all-ones words stay all ones; a 1 on top wraps around to 1.
        assert_eq!(csum_partial_x86_64(&[0xff; 16], 0), 0xffff_ffff);
        assert_eq!(csum_partial_x86_64(&[0xff; 8], 1), 1);
        // A 3-byte tail: 0x030201 + incoming 0xffff_ffff -> 0x1_0003_0200:
        // fold 0x1 + 0x0003_0200 = 0x0003_0201.
        assert_eq!(csum_partial_x86_64(&[1, 2, 3], 0xffff_ffff), 0x0003_0201);
        // Carries between the halves: 0x0000_0001_8000_0000 twice is
        // 0x0000_0003_0000_0000, folded 3.
        let w = 0x0000_0001_8000_0000u64.to_le_bytes();
        let mut two = Vec::from(w);
        two.extend_from_slice(&w);
        assert_eq!(csum_partial_x86_64(&two, 0), 3);
    }

    #[test]
    fn hand_checked_arm64() {
        assert_eq!(do_csum_arm64(&[], 0), 0);
        assert_eq!(csum_partial_arm64(&[], 0, 0x1234), 0x1234);
        // Word 0x0807060504030201 -> 32-bit 0x0c0a0806 -> 16-bit
        // 0x0c0a + 0x0806 = 0x1410.
        assert_eq!(do_csum_arm64(&[1, 2, 3, 4, 5, 6, 7, 8], 0), 0x1410);
        assert_eq!(do_csum_arm64(&[0xff; 8], 0), 0xffff);
        assert_eq!(do_csum_arm64(&[1], 0), 1);
        // At an odd address the byte lands in bits 15:8 and the result is
        // byte-swapped back: 0x0100 -> 0x0001.
        assert_eq!(do_csum_arm64(&[1], 1), 1);
        // Two bytes at offset 1: the word is 0x00_0201_00 -> 16-bit
        // 0x0201_00 folded = 0x0002 + 0x0100 = 0x0102, swapped 0x0201.
        assert_eq!(do_csum_arm64(&[1, 2], 1), 0x0201);
        // The 16-bit value is added to the 32-bit incoming sum with
        // end-around carry.
        assert_eq!(csum_partial_arm64(&[0xff; 8], 0, 0xffff_0001), 1);
        assert_eq!(csum_partial_arm64(&[1, 0], 0, 0x0001_0000), 0x0001_0001);
    }

    #[test]
    fn the_arches_differ_on_the_same_bytes() {
        let b = pattern(4096);
        let x = csum_partial_x86_64(&b, 0);
        let a = csum_partial_arm64(&b, 0, 0);
        assert_ne!(x, a);
        // arm64 keeps 16 bits per call; x86_64 keeps 32, and its 16-bit
        // fold (what a protocol header would get) is arm64's value.
        assert!(a <= 0xffff);
        assert_eq!(u32::from(fold32(x)), a);
    }

    #[test]
    fn chaining_like_test_kho() {
        // test_kho accumulates over folios: csum = csum_partial(f, size, csum).
        let a = pattern(4096);
        let b = pattern(8192).into_iter().rev().collect::<Vec<_>>();
        let mut whole = a.clone();
        whole.extend_from_slice(&b);
        // x86_64: chaining word-aligned pieces equals summing them at once.
        let x = csum_partial_x86_64(&b, csum_partial_x86_64(&a, 0));
        assert_eq!(x, csum_partial_x86_64(&whole, 0));
        // arm64: the chained value is the 32-bit sum of each 16-bit result.
        let y = csum_partial_arm64(&b, 0, csum_partial_arm64(&a, 0, 0));
        assert_eq!(
            y,
            u32::from(do_csum_arm64(&a, 0)) + u32::from(do_csum_arm64(&b, 0))
        );
        // ... which folds to the 16 bits of summing everything at once.
        assert_eq!(u32::from(fold32(y)), csum_partial_arm64(&whole, 0, 0));
    }

    #[test]
    fn streaming_equals_one_call() {
        for n in [0usize, 1, 7, 8, 40, 79, 80, 81, 4096, 12_345] {
            let b = pattern(n);
            let mut c = Csum64::new();
            for piece in b.chunks(4096) {
                c.add(piece);
            }
            for sum in [0, 1, 0xdead_beef, 0xffff_ffff] {
                assert_eq!(c.finish_x86_64(sum), csum_partial_x86_64(&b, sum), "{n}");
                assert_eq!(c.finish_arm64(sum), csum_partial_arm64(&b, 0, sum), "{n}");
            }
        }
        assert_eq!(
            csum_partial(&pattern(80), 5),
            csum_partial_x86_64(&pattern(80), 5)
        );
    }

    #[test]
    fn misaligned_arm64_equals_zero_prefixed_aligned_then_swapped() {
        let b = pattern(100);
        for m in 0..8usize {
            let mut padded = alloc::vec![0u8; m];
            padded.extend_from_slice(&b);
            let aligned = do_csum_arm64(&padded, 0);
            let want = if m % 2 == 1 {
                aligned.swap_bytes()
            } else {
                aligned
            };
            assert_eq!(do_csum_arm64(&b, m), want, "{m}");
        }
    }
}
