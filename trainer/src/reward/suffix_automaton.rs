//! Longest common substring by suffix automaton, giving exactly the match CPython's
//! `find_longest_match` dynamic programme finds (before its extension passes), in time linear
//! in the two ranges instead of proportional to the number of equal-element pairs, which
//! is what makes the character-level ratio of long patches quadratic.
//!
//! Why it is the same match: the programme's best is the longest common substring made of
//! elements allowed to seed a match (not junk, not popular), taken at the first end position
//! in a, and for that end the first end position in b. Scanning a through an automaton of
//! b's range gives, at each position of a, the longest suffix that occurs in b's range (reset
//! at disallowed elements); the state holding it knows the first end position of its
//! occurrences in b.

const NONE: u32 = u32::MAX;

/// Reusable buffers: states, per-state transition lists, and a stamped open-addressing table
/// for `(state, symbol) → state` so nothing is cleared between calls. Most states have one
/// outgoing transition; it is kept beside the state so the table is only consulted for the
/// others.
#[derive(Debug, Clone, Default)]
pub(crate) struct SuffixAutomaton {
    len: Vec<u32>,
    link: Vec<u32>,
    first_end: Vec<u32>,
    inline_sym: Vec<u32>,
    inline_to: Vec<u32>,
    /// Whether the state has transitions in the table.
    spilled: Vec<bool>,
    edge_head: Vec<u32>,
    edge_sym: Vec<u32>,
    edge_next: Vec<u32>,
    slot_key: Vec<u64>,
    slot_val: Vec<u32>,
    slot_gen: Vec<u32>,
    gen: u32,
    mask: usize,
}

impl SuffixAutomaton {
    fn slot(&self, key: u64) -> (usize, bool) {
        let mut i = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20) as usize & self.mask;
        loop {
            if self.slot_gen[i] != self.gen {
                return (i, false);
            }
            if self.slot_key[i] == key {
                return (i, true);
            }
            i = (i + 1) & self.mask;
        }
    }

    fn get(&self, state: u32, sym: u32) -> u32 {
        let s = state as usize;
        if self.inline_sym[s] == sym {
            return self.inline_to[s];
        }
        if !self.spilled[s] {
            return NONE;
        }
        let (i, found) = self.slot(((state as u64) << 32) | sym as u64);
        if found {
            self.slot_val[i]
        } else {
            NONE
        }
    }

    fn set(&mut self, state: u32, sym: u32, to: u32) {
        let s = state as usize;
        if self.inline_sym[s] == sym {
            self.inline_to[s] = to;
            return;
        }
        if self.inline_sym[s] == NONE {
            self.inline_sym[s] = sym;
            self.inline_to[s] = to;
            self.edge_sym.push(sym);
            self.edge_next.push(self.edge_head[s]);
            self.edge_head[s] = (self.edge_sym.len() - 1) as u32;
            return;
        }
        self.spilled[s] = true;
        let key = ((state as u64) << 32) | sym as u64;
        let (i, found) = self.slot(key);
        self.slot_val[i] = to;
        if !found {
            self.slot_gen[i] = self.gen;
            self.slot_key[i] = key;
            self.edge_sym.push(sym);
            self.edge_next.push(self.edge_head[state as usize]);
            self.edge_head[state as usize] = (self.edge_sym.len() - 1) as u32;
        }
    }

    fn new_state(&mut self, len: u32, first_end: u32) -> u32 {
        self.len.push(len);
        self.link.push(NONE);
        self.first_end.push(first_end);
        self.inline_sym.push(NONE);
        self.inline_to.push(NONE);
        self.spilled.push(false);
        self.edge_head.push(NONE);
        (self.len.len() - 1) as u32
    }

    fn reset(&mut self, n: usize) {
        self.len.clear();
        self.link.clear();
        self.first_end.clear();
        self.inline_sym.clear();
        self.inline_to.clear();
        self.spilled.clear();
        self.edge_head.clear();
        self.edge_sym.clear();
        self.edge_next.clear();
        // A suffix automaton of n symbols has at most 3n transitions; keep the load <= 1/2.
        let want = (6 * n + 16).next_power_of_two();
        if self.slot_key.len() < want {
            self.slot_key = vec![0; want];
            self.slot_val = vec![0; want];
            self.slot_gen = vec![0; want];
            self.gen = 0;
        }
        self.mask = self.slot_key.len() - 1;
        if self.gen == u32::MAX {
            self.slot_gen.fill(0);
            self.gen = 0;
        }
        self.gen += 1;
    }

    /// Builds the automaton of `b[blo..bhi]` (positions stay absolute).
    fn build(&mut self, b: &[u32], blo: usize, bhi: usize) {
        self.reset(bhi - blo);
        let root = self.new_state(0, 0);
        let mut last = root;
        for (pos, &c) in b.iter().enumerate().take(bhi).skip(blo) {
            let cur = self.new_state(self.len[last as usize] + 1, pos as u32);
            let mut p = last;
            while p != NONE && self.get(p, c) == NONE {
                self.set(p, c, cur);
                p = self.link[p as usize];
            }
            if p == NONE {
                self.link[cur as usize] = root;
            } else {
                let q = self.get(p, c);
                if self.len[p as usize] + 1 == self.len[q as usize] {
                    self.link[cur as usize] = q;
                } else {
                    let clone =
                        self.new_state(self.len[p as usize] + 1, self.first_end[q as usize]);
                    let mut e = self.edge_head[q as usize];
                    while e != NONE {
                        let sym = self.edge_sym[e as usize];
                        let to = self.get(q, sym);
                        self.set(clone, sym, to);
                        e = self.edge_next[e as usize];
                    }
                    self.link[clone as usize] = self.link[q as usize];
                    while p != NONE && self.get(p, c) == q {
                        self.set(p, c, clone);
                        p = self.link[p as usize];
                    }
                    self.link[q as usize] = clone;
                    self.link[cur as usize] = clone;
                }
            }
            last = cur;
        }
    }

    /// `(besti, bestj, bestsize)` of the longest run of `a[alo..ahi]` found in `b[blo..bhi]`
    /// whose elements all satisfy `seeds` (first in a, then first in b; `(alo, blo, 0)` if
    /// none).
    pub(crate) fn longest_match(
        &mut self,
        a: &[u32],
        b: &[u32],
        (alo, ahi, blo, bhi): (usize, usize, usize, usize),
        seeds: impl Fn(u32) -> bool,
    ) -> (usize, usize, usize) {
        let mut best = (alo, blo, 0usize);
        if alo >= ahi || blo >= bhi {
            return best;
        }
        self.build(b, blo, bhi);
        let (mut state, mut l) = (0u32, 0usize);
        for (i, &c) in a.iter().enumerate().take(ahi).skip(alo) {
            if !seeds(c) {
                (state, l) = (0, 0);
                continue;
            }
            loop {
                let next = self.get(state, c);
                if next != NONE {
                    state = next;
                    l += 1;
                    break;
                }
                if state == 0 {
                    l = 0;
                    break;
                }
                state = self.link[state as usize];
                l = self.len[state as usize] as usize;
            }
            if l > best.2 {
                let end = self.first_end[state as usize] as usize;
                best = (i + 1 - l, end + 1 - l, l);
            }
        }
        best
    }
}
