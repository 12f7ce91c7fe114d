//! Range checks of index values (positions, targets, KV fill levels, cache rows) on a host copy
//! of the indices. The checked ops see only shapes; a kernel meeting a bad index can only write
//! NaN or skip a row, so both backends call these and give the same error.

use crate::error::invalid;
use crate::Result;

/// Every RoPE position inside the `p_max` rows of the cos/sin tables.
pub(crate) fn positions(op: &'static str, pos: &[i64], p_max: usize) -> Result<()> {
    match pos.iter().find(|&&p| p < 0 || p as usize >= p_max) {
        Some(bad) => invalid(
            op,
            format!("position {bad} outside the table of {p_max} positions"),
        ),
        None => Ok(()),
    }
}

/// Every target inside `0..vocab` unless it is the ignore index.
pub(crate) fn targets(
    op: &'static str,
    targets: &[i64],
    vocab: usize,
    ignore: Option<i64>,
) -> Result<()> {
    match targets
        .iter()
        .find(|&&x| Some(x) != ignore && (x < 0 || x as usize >= vocab))
    {
        Some(bad) => invalid(
            op,
            format!("target {bad} outside vocabulary of {vocab} (ignore_index {ignore:?})"),
        ),
        None => Ok(()),
    }
}

/// Every KV fill level `kv_lens[b]` in `t..=s` (it counts the `t` new queries, and the cache has
/// `s` rows).
pub(crate) fn kv_lens(op: &'static str, lens: &[i64], t: usize, s: usize) -> Result<()> {
    match lens
        .iter()
        .enumerate()
        .find(|&(_, &v)| v < t as i64 || v as usize > s)
    {
        Some((b, v)) => invalid(
            op,
            format!("kv_lens[{b}] = {v} must be in {t}..={s} (T new queries, S cache rows)"),
        ),
        None => Ok(()),
    }
}

/// Every cache write `starts[b] .. starts[b] + t` inside the cache's `s_max` rows.
pub(crate) fn cache_rows(op: &'static str, starts: &[i64], t: usize, s_max: usize) -> Result<()> {
    match starts
        .iter()
        .enumerate()
        .find(|&(_, &st)| st < 0 || st as usize + t > s_max)
    {
        Some((b, st)) => invalid(
            op,
            format!(
                "sequence {b}: rows {st}..{} outside cache of {s_max} rows",
                st + t as i64
            ),
        ),
        None => Ok(()),
    }
}
