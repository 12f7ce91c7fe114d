//! `[B, T]` batches from examples: right-padding (padded positions carry no loss and, with
//! causal attention, are never seen by real tokens) or first-fit packing of whole examples.

use super::data::Example;
use super::error::{Result, SftError};

/// Token id written into padding (any valid id: it is never attended nor trained on).
const PAD_ID: u32 = 0;

/// How examples become rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Packing {
    /// One example per row, rows right-padded to the longest in the batch.
    Pad,
    /// Several whole examples per row of `max_seq_len` (first-fit decreasing). Positions run
    /// on across a row and later examples attend to earlier ones in the same row, as in
    /// packing without position resets.
    Pack,
}

/// One micro-batch of `rows x seq` tokens.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub rows: Vec<Vec<u32>>,
    /// Row-major `[rows, seq]`: whether each token is a training target.
    pub mask: Vec<bool>,
    pub seq: usize,
    /// Tokens that are not padding.
    pub real_tokens: usize,
}

impl Batch {
    /// Pads `rows` (ids, mask) to `seq`.
    fn padded(rows: Vec<(Vec<u32>, Vec<bool>)>, seq: usize) -> Batch {
        let mut ids = Vec::with_capacity(rows.len());
        let mut mask = Vec::with_capacity(rows.len() * seq);
        let real_tokens = rows.iter().map(|(r, _)| r.len()).sum();
        for (mut r, mut m) in rows {
            r.resize(seq, PAD_ID);
            m.resize(seq, false);
            ids.push(r);
            mask.extend(m);
        }
        Batch {
            rows: ids,
            mask,
            seq,
            real_tokens,
        }
    }

    /// Number of target tokens (the first column never is one: nothing precedes it).
    pub fn target_count(&self) -> usize {
        self.mask
            .chunks(self.seq)
            .map(|r| r.iter().skip(1).filter(|&&m| m).count())
            .sum()
    }

    /// Tokens processed (padding included).
    pub fn token_count(&self) -> usize {
        self.rows.len() * self.seq
    }

    /// Flat ids as i64, for next-token targets.
    pub fn flat_ids(&self) -> Vec<i64> {
        self.rows.iter().flatten().map(|&x| x as i64).collect()
    }
}

fn round_up(n: usize, multiple: usize) -> usize {
    n.div_ceil(multiple.max(1)) * multiple.max(1)
}

/// Packs whole examples (taken in `order`) into rows of at most `max_len` tokens, largest
/// first, each into the first row with room.
fn pack_rows(examples: &[Example], order: &[usize], max_len: usize) -> Vec<(Vec<u32>, Vec<bool>)> {
    let mut by_len = order.to_vec();
    // Stable sort keeps the shuffled order among equal lengths.
    by_len.sort_by_key(|&i| std::cmp::Reverse(examples[i].ids.len()));
    let mut rows: Vec<(Vec<u32>, Vec<bool>)> = Vec::new();
    for i in by_len {
        let e = &examples[i];
        match rows
            .iter_mut()
            .find(|(r, _)| r.len() + e.ids.len() <= max_len)
        {
            Some((r, m)) => {
                r.extend(&e.ids);
                m.extend(&e.loss_mask);
            }
            None => rows.push((e.ids.clone(), e.loss_mask.clone())),
        }
    }
    rows
}

/// Splits `order` (indices into `examples`, each no longer than `max_len`) into micro-batches
/// of `batch_size` rows. Padded batches are as long as their longest row rounded up to
/// `pad_multiple` (fewer distinct shapes, fewer buffer reallocations), at most `max_len`.
pub fn make_batches(
    examples: &[Example],
    order: &[usize],
    batch_size: usize,
    packing: Packing,
    max_len: usize,
    pad_multiple: usize,
) -> Result<Vec<Batch>> {
    if batch_size == 0 || max_len == 0 {
        return Err(SftError::Invalid(format!(
            "batch size ({batch_size}) and max sequence length ({max_len}) must be positive"
        )));
    }
    if let Some(&i) = order
        .iter()
        .find(|&&i| i >= examples.len() || examples[i].ids.len() > max_len)
    {
        return Err(SftError::Invalid(format!(
            "example {i} is missing or longer than the maximum sequence length {max_len}"
        )));
    }
    let rows: Vec<(Vec<u32>, Vec<bool>)> = match packing {
        Packing::Pad => order
            .iter()
            .map(|&i| (examples[i].ids.clone(), examples[i].loss_mask.clone()))
            .collect(),
        Packing::Pack => pack_rows(examples, order, max_len),
    };
    let mut out = Vec::new();
    let mut it = rows.into_iter().peekable();
    while it.peek().is_some() {
        let chunk: Vec<_> = it.by_ref().take(batch_size).collect();
        let longest = chunk.iter().map(|(r, _)| r.len()).max().unwrap_or(1);
        let seq = match packing {
            Packing::Pad => round_up(longest, pad_multiple).min(max_len),
            Packing::Pack => max_len,
        };
        out.push(Batch::padded(chunk, seq));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(n: usize, first_target: usize) -> Example {
        let ids = (1..=n as u32).collect();
        let mask = (0..n).map(|i| i >= first_target).collect();
        Example::new(ids, mask).unwrap()
    }

    #[test]
    fn padding_keeps_every_target_and_masks_the_padding() {
        let ex = vec![ex(5, 2), ex(3, 1), ex(8, 4)];
        let b = make_batches(&ex, &[0, 1, 2], 2, Packing::Pad, 16, 4).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].rows.len(), b[0].seq), (2, 8));
        assert_eq!((b[1].rows.len(), b[1].seq), (1, 8));
        let total: usize = b.iter().map(Batch::target_count).sum();
        assert_eq!(total, ex.iter().map(Example::target_count).sum::<usize>());
        assert_eq!(&b[0].rows[1][3..], &[PAD_ID; 5]);
        assert!(!b[0].mask[8 + 3..16].iter().any(|&m| m));
    }

    #[test]
    fn packing_fills_rows_without_splitting_examples() {
        let ex = vec![ex(6, 1), ex(5, 1), ex(4, 1), ex(2, 1)];
        let b = make_batches(&ex, &[0, 1, 2, 3], 4, Packing::Pack, 10, 1).unwrap();
        assert_eq!(b.len(), 1);
        let real: Vec<usize> = b[0]
            .rows
            .iter()
            .map(|r| r.iter().filter(|&&x| x != PAD_ID).count())
            .collect();
        // 6+4 in the first row, 5+2 in the second.
        assert_eq!(real, vec![10, 7]);
        assert_eq!(b[0].target_count(), 5 + 3 + 4 + 1);
    }

    #[test]
    fn overlong_examples_are_rejected() {
        let ex = vec![ex(9, 1)];
        assert!(make_batches(&ex, &[0], 1, Packing::Pad, 8, 1).is_err());
    }
}
