//! Shard format: round trip, zero-copy access, shuffling/sharding, and rejection of other
//! versions, truncation, corruption and unfinished writes.

use std::collections::BTreeMap;
use std::path::Path;

use datagen::shard::{Shard, ShardWriter, HEADER_LEN};
use datagen::{Dataset, DatasetWriter, Instance, Stats, UnitKind};

fn inst(i: usize) -> Instance {
    Instance {
        id: format!("o__r-{i}"),
        repo: "o/r".into(),
        pr_number: Some(i as u64),
        kind: UnitKind::Squash,
        base_commit: "b".repeat(40),
        merge_commit: "m".repeat(40),
        head_commit: "m".repeat(40),
        commits: vec!["m".repeat(40)],
        created_at: "2024-01-01T00:00:00Z".into(),
        author: "a".into(),
        title: format!("title {i}"),
        body: "é ünïcode".into(),
        problem_statement: "p".repeat(i % 7),
        hints: String::new(),
        linked_issues: vec![i as u64],
        code_context: BTreeMap::from([("a.py".to_string(), "x\n".repeat(i))]),
        oracle_new_content: BTreeMap::new(),
        oracle_patch: "diff".into(),
        test_patch: String::new(),
        relevant_files: vec![],
        stats: Stats::default(),
    }
}

fn write(dir: &Path, n: usize, per_shard: usize) -> Vec<std::path::PathBuf> {
    let mut w = DatasetWriter::create(dir, per_shard, u64::MAX).unwrap();
    for i in 0..n {
        w.push(&inst(i)).unwrap();
    }
    w.finish().unwrap()
}

#[test]
fn round_trip_across_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = write(tmp.path(), 25, 10);
    assert_eq!(shards.len(), 3);
    let ds = Dataset::open(tmp.path()).unwrap();
    assert_eq!(ds.len(), 25);
    for i in 0..25 {
        assert_eq!(ds.get(i).unwrap(), inst(i));
        // Zero-copy: the bytes live inside the memory map of their shard.
        let bytes = ds.get_bytes(i).unwrap();
        let owner = ds.shards().iter().find(|s| {
            let idx = s.index();
            let start = bytes.as_ptr() as usize;
            let base = idx.as_ptr() as usize;
            start < base && start + 1_000_000 > base
        });
        assert!(owner.is_some());
    }
    let err = ds.get(25).unwrap_err().to_string();
    assert!(err.contains("out of range"), "{err}");
    // Single shard files open too.
    assert_eq!(Dataset::open(&shards[2]).unwrap().len(), 5);
    // A finished directory is never overwritten.
    assert!(DatasetWriter::create(tmp.path(), 10, u64::MAX).is_err());
}

#[test]
fn seeded_shuffle_and_rank_sharding() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), 50, 16);
    let ds = Dataset::open(tmp.path()).unwrap();
    let a = ds.indices(7, 0, 1);
    assert_eq!(a, ds.indices(7, 0, 1), "same seed, same order");
    assert_ne!(a, ds.indices(8, 0, 1));
    assert_ne!(a, (0..50).collect::<Vec<_>>());
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(sorted, (0..50).collect::<Vec<_>>(), "a permutation");
    // Ranks partition the epoch: disjoint, complete, balanced.
    let parts: Vec<Vec<usize>> = (0..3).map(|r| ds.indices(7, r, 3)).collect();
    let mut all: Vec<usize> = parts.concat();
    all.sort();
    assert_eq!(all, (0..50).collect::<Vec<_>>());
    assert!(parts.iter().all(|p| p.len() == 16 || p.len() == 17));
    let firsts: Vec<String> = ds
        .iter_shuffled(7, 1, 3)
        .take(2)
        .map(|r| r.unwrap().id)
        .collect();
    assert_eq!(
        firsts,
        vec![
            format!("o__r-{}", parts[1][0]),
            format!("o__r-{}", parts[1][1])
        ]
    );
}

fn corrupt(path: &Path, at: usize, byte: u8) {
    let mut b = std::fs::read(path).unwrap();
    b[at] = byte;
    std::fs::write(path, b).unwrap();
}

#[test]
fn rejects_bad_files_with_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("x.swrl");
    let mut w = ShardWriter::create(&p).unwrap();
    for i in 0..3 {
        w.push(&inst(i)).unwrap();
    }
    // Unfinished: only the temp file exists and it does not validate.
    let tmp_path = p.with_extension("swrl.tmp");
    assert!(!p.exists());
    let e = Shard::open(&tmp_path).err().unwrap().to_string();
    // Buffered or flushed, the temp file is either too short or carries a zero header.
    assert!(e.contains("shorter than") || e.contains("bad magic"), "{e}");
    w.finish().unwrap();
    let good = std::fs::read(&p).unwrap();
    assert_eq!(Shard::open(&p).unwrap().len(), 3);

    let check = |mutate: &dyn Fn(&Path), want: &str| {
        std::fs::write(&p, &good).unwrap();
        mutate(&p);
        let e = Shard::open(&p)
            .and_then(|s| (0..s.len()).try_for_each(|i| s.get(i).map(|_| ())))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(want) && e.contains("x.swrl"),
            "want {want:?}, got {e}"
        );
    };
    check(&|p| corrupt(p, 8, 2), "format version 2");
    check(&|p| corrupt(p, 20, 1), "header checksum");
    check(
        &|p| std::fs::write(p, &good[..good.len() - 5]).unwrap(),
        "truncated",
    );
    check(&|p| std::fs::write(p, &good[..10]).unwrap(), "shorter than");
    check(&|p| corrupt(p, good.len() - 3, 0xAB), "index checksum");
    check(&|p| corrupt(p, HEADER_LEN + 5, b'#'), "corrupt record");
    check(
        &|p| {
            std::fs::write(
                p,
                b"not a shard at all, just some text that is long enough to have a header...",
            )
            .unwrap()
        },
        "bad magic",
    );
}
