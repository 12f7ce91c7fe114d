//! Reward throughput on the cases of `bench/reward_cases.py` (the same file the Python
//! reference is timed on by `bench/reward_reference.py`), single-threaded.
//!
//!     python3 bench/reward_cases.py && python3 bench/reward_reference.py
//!     cargo bench -p trainer --bench reward
//!
//! `SWERL_REWARD_BENCH_CASES` overrides the cases file. When the reference's rewards file is
//! next to it, every reward is checked to be identical before timing.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, Criterion, Throughput};
use trainer::reward::{char_ratio, RewardCase};

fn cases_path() -> PathBuf {
    std::env::var_os("SWERL_REWARD_BENCH_CASES").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../bench/out/reward_cases.jsonl"
            ))
        },
        PathBuf::from,
    )
}

fn load() -> Option<Vec<RewardCase>> {
    let path = cases_path();
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!(
            "{} not found: run `python3 bench/reward_cases.py` first",
            path.display()
        );
        return None;
    };
    let cases: Vec<RewardCase> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a reward case"))
        .collect();
    let reference = path.with_file_name("reward_reference.jsonl");
    if let Ok(text) = std::fs::read_to_string(&reference) {
        let want: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(want.len(), cases.len(), "{} is stale", reference.display());
        for (c, w) in cases.iter().zip(&want) {
            let got = c.score().expect("scorable case").reward;
            assert_eq!(Some(got), w["reward"].as_f64(), "{:?}", c.instance_id);
        }
        eprintln!("{} rewards identical to the Python reference", cases.len());
    }
    Some(cases)
}

fn bench(c: &mut Criterion) {
    let Some(cases) = load() else { return };
    let mut g = c.benchmark_group("reward");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(cases.len() as u64));
    g.bench_function("cases_single_thread", |b| {
        b.iter(|| cases.iter().map(|c| c.score().unwrap().reward).sum::<f64>())
    });
    // The hot path alone: the character-level ratio of the longest oracle patch with itself
    // and with a lightly edited copy.
    let longest = cases
        .iter()
        .filter_map(|c| c.score().ok())
        .flat_map(|o| o.similarities)
        .max_by_key(|s| s.oracle_change.len())
        .expect("a scored file");
    let edited = longest.oracle_change.replacen("return", "yield", 3);
    g.throughput(Throughput::Bytes(longest.oracle_change.len() as u64));
    g.bench_function("char_ratio_longest_patch_edited", |b| {
        b.iter(|| char_ratio(&edited, &longest.oracle_change, false))
    });
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
