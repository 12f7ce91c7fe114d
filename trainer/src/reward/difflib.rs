//! A port of CPython's `difflib.SequenceMatcher` (Lib/difflib.py, 3.11), value for value.
//!
//! Elements are interned to dense `u32` ids first (b's distinct elements get `0..n`, elements
//! only in a get [`ABSENT`]), so the matcher itself compares integers whatever `T` is; equal
//! elements get equal ids, so every comparison CPython makes gives the same answer here.
//! `find_longest_match` replaces CPython's per-row `j2len` dicts with one stamped table that is
//! reused across calls: a row's entries are valid only while their stamp is the previous
//! row's, which makes clearing unnecessary and keeps the hot loop allocation-free.

use std::collections::HashMap;
use std::hash::Hash;

use super::suffix_automaton::SuffixAutomaton;

/// Id of an element of `a` that never occurs in `b`.
const ABSENT: u32 = u32::MAX;

/// `a[a..a+size] == b[b..b+size]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Match {
    pub a: usize,
    pub b: usize,
    pub size: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    Replace,
    Delete,
    Insert,
    Equal,
}

impl Tag {
    pub fn as_str(self) -> &'static str {
        match self {
            Tag::Replace => "replace",
            Tag::Delete => "delete",
            Tag::Insert => "insert",
            Tag::Equal => "equal",
        }
    }
}

/// `(tag, i1, i2, j1, j2)`: `a[i1..i2]` relates to `b[j1..j2]` as `tag` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opcode {
    pub tag: Tag,
    pub i1: usize,
    pub i2: usize,
    pub j1: usize,
    pub j2: usize,
}

/// CPython's `_calculate_ratio`.
pub fn calculate_ratio(matches: usize, length: usize) -> f64 {
    if length > 0 {
        2.0 * matches as f64 / length as f64
    } else {
        1.0
    }
}

/// How `find_longest_match` finds its seed match; every choice gives the same answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// CPython's dynamic programme over equal pairs, or the suffix automaton when the
    /// ranges are large and their elements repetitive (estimated cost).
    Auto,
    DynamicProgramme,
    SuffixAutomaton,
}

/// `difflib.SequenceMatcher(isjunk, a, b, autojunk)` over any `T: Eq + Hash`.
#[derive(Debug, Clone)]
pub struct SequenceMatcher {
    a: Vec<u32>,
    b: Vec<u32>,
    /// b2j in compressed form: the positions in b of id `x` are
    /// `b2j_pos[b2j_start[x]..b2j_start[x + 1]]`, ascending; empty for junk and popular ids.
    b2j_start: Vec<u32>,
    b2j_pos: Vec<u32>,
    junk: Vec<bool>,
    popular: Vec<bool>,
    /// `table[j + 1]` = (row stamp << 32) | length of the match ending at `b[j]`.
    table: Vec<u64>,
    stamp: u32,
    matching_blocks: Option<Vec<Match>>,
    /// Equal seeding pairs per (a, b) element pair: scales the programme's cost estimate.
    pair_density: f64,
    strategy: Strategy,
    sam: SuffixAutomaton,
}

impl SequenceMatcher {
    /// `SequenceMatcher(None, a, b, autojunk)`.
    pub fn new<T: Eq + Hash>(a: &[T], b: &[T], autojunk: bool) -> Self {
        Self::with_junk(a, b, |_: &T| false, autojunk)
    }

    /// `SequenceMatcher(isjunk, a, b, autojunk)`.
    pub fn with_junk<T: Eq + Hash>(
        a: &[T],
        b: &[T],
        isjunk: impl Fn(&T) -> bool,
        autojunk: bool,
    ) -> Self {
        let mut ids: HashMap<&T, u32> = HashMap::with_capacity(b.len().min(1 << 16));
        let mut first_of_id: Vec<&T> = Vec::new();
        let b_ids: Vec<u32> = b
            .iter()
            .map(|x| {
                *ids.entry(x).or_insert_with(|| {
                    first_of_id.push(x);
                    (first_of_id.len() - 1) as u32
                })
            })
            .collect();
        let a_ids: Vec<u32> = a
            .iter()
            .map(|x| ids.get(x).copied().unwrap_or(ABSENT))
            .collect();
        let junk: Vec<bool> = first_of_id.iter().map(|x| isjunk(x)).collect();
        Self::from_ids(a_ids, b_ids, junk, autojunk)
    }

    /// The character-level matcher of `SequenceMatcher(None, a, b, autojunk)` on two `str`s
    /// (elements are Unicode code points, as in Python).
    pub fn from_chars(a: &str, b: &str, autojunk: bool) -> Self {
        let mut ascii = [ABSENT; 128];
        let mut other: HashMap<char, u32> = HashMap::new();
        let mut next = 0u32;
        let b_ids: Vec<u32> = b
            .chars()
            .map(|c| {
                let slot = if c.is_ascii() {
                    &mut ascii[c as usize]
                } else {
                    other.entry(c).or_insert(ABSENT)
                };
                if *slot == ABSENT {
                    *slot = next;
                    next += 1;
                }
                *slot
            })
            .collect();
        let a_ids: Vec<u32> = a
            .chars()
            .map(|c| {
                if c.is_ascii() {
                    ascii[c as usize]
                } else {
                    other.get(&c).copied().unwrap_or(ABSENT)
                }
            })
            .collect();
        Self::from_ids(a_ids, b_ids, vec![false; next as usize], autojunk)
    }

    /// `b` holds ids `0..junk.len()`; `a` holds those or `ABSENT`.
    fn from_ids(a: Vec<u32>, b: Vec<u32>, junk: Vec<bool>, autojunk: bool) -> Self {
        let nids = junk.len();
        let mut count = vec![0u32; nids];
        for &x in &b {
            count[x as usize] += 1;
        }
        // CPython drops junk from b2j first, then (autojunk, len(b) >= 200) every remaining
        // element seen more than len(b)//100 + 1 times.
        let n = b.len();
        let popular: Vec<bool> = if autojunk && n >= 200 {
            let ntest = n / 100 + 1;
            (0..nids)
                .map(|x| !junk[x] && count[x] as usize > ntest)
                .collect()
        } else {
            vec![false; nids]
        };
        let mut b2j_start = vec![0u32; nids + 1];
        for x in 0..nids {
            let kept = if junk[x] || popular[x] { 0 } else { count[x] };
            b2j_start[x + 1] = b2j_start[x] + kept;
        }
        let mut fill = b2j_start.clone();
        let mut b2j_pos = vec![0u32; b2j_start[nids] as usize];
        for (j, &x) in b.iter().enumerate() {
            let x = x as usize;
            if !(junk[x] || popular[x]) {
                b2j_pos[fill[x] as usize] = j as u32;
                fill[x] += 1;
            }
        }
        let table = vec![0u64; n + 1];
        let mut pairs = 0f64;
        for &x in &a {
            if x != ABSENT {
                pairs += (b2j_start[x as usize + 1] - b2j_start[x as usize]) as f64;
            }
        }
        let pair_density = pairs / (a.len().max(1) as f64 * n.max(1) as f64);
        SequenceMatcher {
            a,
            b,
            b2j_start,
            b2j_pos,
            junk,
            popular,
            table,
            stamp: 0,
            matching_blocks: None,
            pair_density,
            strategy: Strategy::Auto,
            sam: SuffixAutomaton::default(),
        }
    }

    /// Forces one way of finding seed matches (for testing that they agree).
    pub fn set_strategy(&mut self, strategy: Strategy) {
        self.strategy = strategy;
        self.matching_blocks = None;
    }

    pub fn len_a(&self) -> usize {
        self.a.len()
    }

    pub fn len_b(&self) -> usize {
        self.b.len()
    }

    /// How many distinct elements of b the autojunk heuristic marked popular.
    pub fn popular_count(&self) -> usize {
        self.popular.iter().filter(|&&p| p).count()
    }

    fn is_bjunk(&self, j: usize) -> bool {
        self.junk[self.b[j] as usize]
    }

    /// Longest matching block in `a[alo..ahi]` and `b[blo..bhi]`; among equally long ones the
    /// one that starts earliest in a, then earliest in b (before the junk extensions).
    /// Ranges are clamped to the sequences.
    pub fn find_longest_match(&mut self, alo: usize, ahi: usize, blo: usize, bhi: usize) -> Match {
        let ahi = ahi.min(self.a.len());
        let bhi = bhi.min(self.b.len());
        let alo = alo.min(ahi);
        let blo = blo.min(bhi);
        let use_sam = match self.strategy {
            Strategy::DynamicProgramme => false,
            Strategy::SuffixAutomaton => true,
            Strategy::Auto => {
                let (na, nb) = ((ahi - alo) as f64, (bhi - blo) as f64);
                // Rough break-even on the reward bench: a pair costs ~1 ns, an automaton
                // element ~10 ns; the reward was insensitive to this within 5..100.
                na * nb * self.pair_density > 12.0 * (na + nb) + 1000.0
            }
        };
        let (mut besti, mut bestj, mut bestsize) = if use_sam {
            let (junk, popular) = (&self.junk, &self.popular);
            self.sam
                .longest_match(&self.a, &self.b, (alo, ahi, blo, bhi), |x| {
                    x != ABSENT && !junk[x as usize] && !popular[x as usize]
                })
        } else {
            self.dp_longest_match(alo, ahi, blo, bhi)
        };

        let (a, b) = (&self.a, &self.b);
        while besti > alo
            && bestj > blo
            && !self.is_bjunk(bestj - 1)
            && a[besti - 1] == b[bestj - 1]
        {
            besti -= 1;
            bestj -= 1;
            bestsize += 1;
        }
        while besti + bestsize < ahi
            && bestj + bestsize < bhi
            && !self.is_bjunk(bestj + bestsize)
            && a[besti + bestsize] == b[bestj + bestsize]
        {
            bestsize += 1;
        }
        while besti > alo && bestj > blo && self.is_bjunk(bestj - 1) && a[besti - 1] == b[bestj - 1]
        {
            besti -= 1;
            bestj -= 1;
            bestsize += 1;
        }
        while besti + bestsize < ahi
            && bestj + bestsize < bhi
            && self.is_bjunk(bestj + bestsize)
            && a[besti + bestsize] == b[bestj + bestsize]
        {
            bestsize += 1;
        }
        Match {
            a: besti,
            b: bestj,
            size: bestsize,
        }
    }

    /// CPython's programme: row by row over a, the length of the match ending at each
    /// equal pair; the first longest wins.
    fn dp_longest_match(
        &mut self,
        alo: usize,
        ahi: usize,
        blo: usize,
        bhi: usize,
    ) -> (usize, usize, usize) {
        let (mut besti, mut bestj, mut bestsize) = (alo, blo, 0usize);
        let rows = (ahi - alo) as u64;
        if self.stamp as u64 + rows + 2 >= u32::MAX as u64 {
            self.table.fill(0);
            self.stamp = 0;
        }
        // Skip a stamp so the first row never sees the previous call's last row.
        let mut stamp = self.stamp + 1;
        let (a, start, pos, table) = (&self.a, &self.b2j_start, &self.b2j_pos, &mut self.table);
        for (i, &x) in a.iter().enumerate().take(ahi).skip(alo) {
            let prev = stamp as u64;
            stamp += 1;
            let cur = (stamp as u64) << 32;
            if x == ABSENT {
                continue;
            }
            let occ = &pos[start[x as usize] as usize..start[x as usize + 1] as usize];
            let lo = occ.partition_point(|&j| (j as usize) < blo);
            let hi = occ.partition_point(|&j| (j as usize) < bhi);
            let (mut row_k, mut row_j) = (0u64, 0usize);
            // Descending j: entry j (row i-1) is read before it is overwritten for row i.
            // Python keeps the first j reaching the row's maximum; `>=` going down does too.
            for &j in occ[lo..hi].iter().rev() {
                let j = j as usize;
                let left = table[j];
                let k = if left >> 32 == prev {
                    (left & 0xffff_ffff) + 1
                } else {
                    1
                };
                table[j + 1] = cur | k;
                if k >= row_k {
                    row_k = k;
                    row_j = j;
                }
            }
            let k = row_k as usize;
            if k > bestsize {
                besti = i + 1 - k;
                bestj = row_j + 1 - k;
                bestsize = k;
            }
        }
        self.stamp = stamp;

        (besti, bestj, bestsize)
    }

    /// Non-overlapping, ascending matching blocks with adjacent ones merged, ending with the
    /// `(len(a), len(b), 0)` sentinel.
    pub fn get_matching_blocks(&mut self) -> Vec<Match> {
        if let Some(m) = &self.matching_blocks {
            return m.clone();
        }
        let (la, lb) = (self.a.len(), self.b.len());
        let mut queue = vec![(0, la, 0, lb)];
        let mut blocks = Vec::new();
        if self.a == self.b {
            // CPython's blocks on equal sequences all lie on the diagonal and tile it (each
            // seed is the first occurrence, and extension covers junk and popular elements),
            // so after merging they are one block; skip the search.
            queue.clear();
            if la > 0 {
                blocks.push(Match {
                    a: 0,
                    b: 0,
                    size: la,
                });
            }
        }
        while let Some((alo, ahi, blo, bhi)) = queue.pop() {
            let x = self.find_longest_match(alo, ahi, blo, bhi);
            let (i, j, k) = (x.a, x.b, x.size);
            if k > 0 {
                blocks.push(x);
                if alo < i && blo < j {
                    queue.push((alo, i, blo, j));
                }
                if i + k < ahi && j + k < bhi {
                    queue.push((i + k, ahi, j + k, bhi));
                }
            }
        }
        blocks.sort_unstable();

        let mut merged = Vec::with_capacity(blocks.len() + 1);
        let (mut i1, mut j1, mut k1) = (0, 0, 0);
        for m in blocks {
            if i1 + k1 == m.a && j1 + k1 == m.b {
                k1 += m.size;
            } else {
                if k1 > 0 {
                    merged.push(Match {
                        a: i1,
                        b: j1,
                        size: k1,
                    });
                }
                (i1, j1, k1) = (m.a, m.b, m.size);
            }
        }
        if k1 > 0 {
            merged.push(Match {
                a: i1,
                b: j1,
                size: k1,
            });
        }
        merged.push(Match {
            a: la,
            b: lb,
            size: 0,
        });
        self.matching_blocks = Some(merged.clone());
        merged
    }

    pub fn get_opcodes(&mut self) -> Vec<Opcode> {
        let (mut i, mut j) = (0, 0);
        let mut answer = Vec::new();
        for m in self.get_matching_blocks() {
            let tag = if i < m.a && j < m.b {
                Some(Tag::Replace)
            } else if i < m.a {
                Some(Tag::Delete)
            } else if j < m.b {
                Some(Tag::Insert)
            } else {
                None
            };
            if let Some(tag) = tag {
                answer.push(Opcode {
                    tag,
                    i1: i,
                    i2: m.a,
                    j1: j,
                    j2: m.b,
                });
            }
            (i, j) = (m.a + m.size, m.b + m.size);
            if m.size > 0 {
                answer.push(Opcode {
                    tag: Tag::Equal,
                    i1: m.a,
                    i2: i,
                    j1: m.b,
                    j2: j,
                });
            }
        }
        answer
    }

    /// Hunks of changes with up to `n` lines of context, as `get_grouped_opcodes(n)`.
    pub fn get_grouped_opcodes(&mut self, n: usize) -> Vec<Vec<Opcode>> {
        let mut codes = self.get_opcodes();
        if codes.is_empty() {
            codes.push(Opcode {
                tag: Tag::Equal,
                i1: 0,
                i2: 1,
                j1: 0,
                j2: 1,
            });
        }
        if let Some(first) = codes.first_mut() {
            if first.tag == Tag::Equal {
                first.i1 = first.i1.max(first.i2.saturating_sub(n));
                first.j1 = first.j1.max(first.j2.saturating_sub(n));
            }
        }
        if let Some(last) = codes.last_mut() {
            if last.tag == Tag::Equal {
                last.i2 = last.i2.min(last.i1 + n);
                last.j2 = last.j2.min(last.j1 + n);
            }
        }
        let nn = n + n;
        let mut groups = Vec::new();
        let mut group = Vec::new();
        for mut c in codes {
            if c.tag == Tag::Equal && c.i2 - c.i1 > nn {
                group.push(Opcode {
                    i2: c.i2.min(c.i1 + n),
                    j2: c.j2.min(c.j1 + n),
                    ..c
                });
                groups.push(std::mem::take(&mut group));
                c.i1 = c.i1.max(c.i2.saturating_sub(n));
                c.j1 = c.j1.max(c.j2.saturating_sub(n));
            }
            group.push(c);
        }
        let only_equal = group.len() == 1 && group[0].tag == Tag::Equal;
        if !group.is_empty() && !only_equal {
            groups.push(group);
        }
        groups
    }

    /// Total size of the matching blocks.
    pub fn matches(&mut self) -> usize {
        self.get_matching_blocks().iter().map(|m| m.size).sum()
    }

    /// `2.0 * M / (len(a) + len(b))`, 1.0 when both are empty.
    pub fn ratio(&mut self) -> f64 {
        let m = self.matches();
        calculate_ratio(m, self.a.len() + self.b.len())
    }
}

/// `SequenceMatcher(None, a, b, autojunk).ratio()` over the code points of two strings.
pub fn char_ratio(a: &str, b: &str, autojunk: bool) -> f64 {
    SequenceMatcher::from_chars(a, b, autojunk).ratio()
}
