//! Finding one byte value sixteen bytes at a time: splitting file texts into lines a byte
//! (or a `memchr` call) per step was a visible share of the miner's instructions.

/// Bit `k` set when byte `k` of `chunk` equals `needle`.
#[cfg(target_arch = "x86_64")]
pub fn eq_mask(chunk: &[u8; 16], needle: u8) -> u32 {
    use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set1_epi8};
    let v: __m128i = bytemuck::cast(*chunk);
    // SAFETY: SSE2 is part of the x86_64 baseline (every x86_64 CPU has it), and these
    // intrinsics only compute on register values.
    unsafe { _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(needle as i8))) as u32 }
}

#[cfg(not(target_arch = "x86_64"))]
pub fn eq_mask(chunk: &[u8; 16], needle: u8) -> u32 {
    chunk
        .iter()
        .enumerate()
        .filter(|(_, &c)| c == needle)
        .fold(0, |m, (k, _)| m | 1 << k)
}

/// Calls `f` with the offset of every `needle` in `b`, in order.
pub fn for_each_eq(b: &[u8], needle: u8, mut f: impl FnMut(usize)) {
    let mut chunks = b.chunks_exact(16);
    for (n, chunk) in chunks.by_ref().enumerate() {
        let mut m = eq_mask(chunk.try_into().expect("16 bytes"), needle);
        while m != 0 {
            f(n * 16 + m.trailing_zeros() as usize);
            m &= m - 1;
        }
    }
    let tail = b.len() - chunks.remainder().len();
    for (at, &c) in b.iter().enumerate().skip(tail) {
        if c == needle {
            f(at);
        }
    }
}

/// How many times `needle` occurs in `b`.
pub fn count(b: &[u8], needle: u8) -> usize {
    let mut chunks = b.chunks_exact(16);
    let mut n = 0;
    for chunk in chunks.by_ref() {
        n += eq_mask(chunk.try_into().expect("16 bytes"), needle).count_ones() as usize;
    }
    n + chunks.remainder().iter().filter(|&&c| c == needle).count()
}

/// Whether `needle` occurs in `b`, 64 bytes per step (`<[u8]>::contains` calls a
/// word-at-a-time `memchr` that took 4% of the miner's instructions on binary/CR checks).
pub fn contains(b: &[u8], needle: u8) -> bool {
    let mut blocks = b.chunks_exact(64);
    for block in blocks.by_ref() {
        let any = (0..4).fold(0, |m, k| {
            let chunk: &[u8; 16] = block[k * 16..k * 16 + 16].try_into().expect("16 bytes");
            m | eq_mask(chunk, needle)
        });
        if any != 0 {
            return true;
        }
    }
    blocks.remainder().contains(&needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_matches_the_slice_method_at_every_offset() {
        for len in 0..200 {
            let mut b = vec![b'x'; len];
            assert!(!contains(&b, 0));
            for at in 0..len {
                for put in [0, b'\r'] {
                    b[at] = put;
                    for needle in [0, b'\r', b'x'] {
                        let want = b.contains(&needle);
                        assert_eq!(contains(&b, needle), want, "len {len} at {at}");
                    }
                    b[at] = b'x';
                }
            }
        }
    }

    #[test]
    fn finds_every_occurrence_at_every_offset() {
        for len in 0..70 {
            for at in 0..len {
                let mut b = vec![b'x'; len];
                b[at] = b'\n';
                if at + 17 < len {
                    b[at + 17] = b'\n';
                }
                let want: Vec<usize> = (0..len).filter(|&i| b[i] == b'\n').collect();
                assert_eq!(count(&b, b'\n'), want.len());
                let mut got = Vec::new();
                for_each_eq(&b, b'\n', |i| got.push(i));
                assert_eq!(got, want, "len {len} at {at}");
            }
        }
    }
}
