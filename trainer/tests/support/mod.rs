//! Shared helpers for the reward tests: a seeded generator and a batched `python3` runner.

#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

/// SplitMix64: a tiny deterministic generator so the cases are the same on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    pub fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }
}

/// Applies random deletions, insertions and substitutions to `xs` (drawing new items with
/// `fresh`), so the result shares long runs with the input as real edits do.
pub fn mutate<T: Clone>(
    rng: &mut Rng,
    xs: &[T],
    edits: usize,
    mut fresh: impl FnMut(&mut Rng) -> T,
) -> Vec<T> {
    let mut out = xs.to_vec();
    for _ in 0..edits {
        let at = rng.below(out.len() + 1);
        match rng.below(3) {
            0 if at < out.len() => {
                let len = (1 + rng.below(4)).min(out.len() - at);
                out.drain(at..at + len);
            }
            1 if at < out.len() => out[at] = fresh(rng),
            _ => {
                for _ in 0..1 + rng.below(3) {
                    let x = fresh(rng);
                    out.insert(at.min(out.len()), x);
                }
            }
        }
    }
    out
}

/// The machine's `python3`, or `None` (with a message) when it is absent.
pub fn python3() -> Option<&'static str> {
    match Command::new("python3")
        .arg("-c")
        .arg("import difflib, re")
        .output()
    {
        Ok(o) if o.status.success() => Some("python3"),
        _ => {
            eprintln!("python3 not found: skipping the differential test against CPython");
            None
        }
    }
}

/// Runs `script` once with `input` as JSON on stdin and parses its stdout as JSON.
pub fn run_python(script: &str, input: &Value) -> Value {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning python3");
    let payload = serde_json::to_vec(input).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&payload));
    let out = child.wait_with_output().expect("running python3");
    writer.join().unwrap().expect("writing to python3");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python3 printed JSON")
}

/// Compares two equally long result lists and fails listing the first mismatches.
pub fn assert_all_equal(what: &str, inputs: &[Value], got: &[Value], want: &[Value]) {
    assert_eq!(got.len(), want.len(), "{what}: result counts differ");
    let bad: Vec<String> = (0..got.len())
        .filter(|&i| got[i] != want[i])
        .take(5)
        .map(|i| {
            let input = inputs[i].to_string();
            let input: String = input.chars().take(400).collect();
            format!(
                "case {i}: input {input}\n  rust   {}\n  python {}",
                got[i], want[i]
            )
        })
        .collect();
    let n_bad = (0..got.len()).filter(|&i| got[i] != want[i]).count();
    assert!(
        n_bad == 0,
        "{what}: {n_bad} of {} cases differ:\n{}",
        got.len(),
        bad.join("\n")
    );
}
