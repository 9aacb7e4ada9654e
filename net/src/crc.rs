//! crc32c of a concatenation from the checksums of its parts.
//!
//! The `crc32c` crate's `crc32c_combine` is zlib's old matrix method,
//! about 40 µs for a 1 MiB second part here: as slow as checksumming the
//! megabyte again, which a body sent to three replicas did three times.
//! This is zlib's newer method: shifting a checksum past `n` zero bytes is
//! a multiplication by x^(8n) modulo the polynomial, built from a table
//! of x^(2^k), so combining costs well under a microsecond at any length.

/// The crc32c polynomial, bit-reflected.
const POLY: u32 = 0x82F6_3B78;

/// `a * b` modulo [`POLY`], in the reflected bit order crc32c uses (the
/// polynomial's x^0 term is the top bit).
const fn mult_mod_p(a: u32, mut b: u32) -> u32 {
    let mut m: u32 = 1 << 31;
    let mut p: u32 = 0;
    loop {
        if a & m != 0 {
            p ^= b;
            if a & (m - 1) == 0 {
                return p;
            }
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
}

/// `X2N[k]` = x^(2^k) modulo [`POLY`]; 67 entries cover every `u64`
/// length in bytes, 2^3 bits each (x^(2^32) is not x again for this
/// polynomial, so zlib's 32 entries, which wrap, would not).
const X2N: [u32; 67] = {
    let mut table = [0u32; 67];
    let mut p: u32 = 1 << 30; // x^1
    table[0] = p;
    let mut k = 1;
    while k < 67 {
        p = mult_mod_p(p, p);
        table[k] = p;
        k += 1;
    }
    table
};

/// x^(n * 2^k) modulo [`POLY`], for `n * 2^k` below 2^67.
fn x2n_mod_p(mut n: u64, mut k: usize) -> u32 {
    let mut p: u32 = 1 << 31; // x^0
    while n != 0 {
        if n & 1 != 0 {
            p = mult_mod_p(X2N[k], p);
        }
        n >>= 1;
        k += 1;
    }
    p
}

/// The crc32c of `a ++ b` from `crc_a`, `crc_b` and `b`'s length in bytes.
pub fn combine(crc_a: u32, crc_b: u32, len_b: usize) -> u32 {
    // x^(8 * len_b): 2^3 = 8 bits per byte.
    mult_mod_p(x2n_mod_p(len_b as u64, 3), crc_a) ^ crc_b
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_second_part_leaves_the_first() {
        let a = crc32c::crc32c(b"govfs");
        assert_eq!(combine(a, crc32c::crc32c(b""), 0), a);
    }

    #[test]
    fn matches_the_crate_at_large_lengths() {
        for len in [1usize, 4096, 1 << 20, (16 << 20) + 3, 1 << 40, usize::MAX] {
            let (a, b) = (0x1234_5678, 0x9abc_def0);
            assert_eq!(
                combine(a, b, len),
                crc32c::crc32c_combine(a, b, len),
                "len {len}"
            );
        }
    }

    proptest! {
        #[test]
        fn combined_equals_checksum_of_the_concatenation(
            a in proptest::collection::vec(any::<u8>(), 0..300),
            b in proptest::collection::vec(any::<u8>(), 0..5000),
        ) {
            let whole: Vec<u8> = a.iter().chain(&b).copied().collect();
            prop_assert_eq!(
                combine(crc32c::crc32c(&a), crc32c::crc32c(&b), b.len()),
                crc32c::crc32c(&whole)
            );
        }
    }
}
