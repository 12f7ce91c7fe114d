//! A dataset = a directory of shards `shard-00000.swrl`, `shard-00001.swrl`, ... read as
//! one indexable sequence (the API the trainer uses).

use std::path::{Path, PathBuf};

use crate::shard::{Shard, ShardWriter, SHARD_EXT};
use crate::{Error, Instance, Result};

/// Writes a dataset directory, starting a new shard every `max_records` or `max_bytes`.
pub struct DatasetWriter {
    dir: PathBuf,
    max_records: usize,
    max_bytes: u64,
    current: Option<ShardWriter>,
    next: usize,
    written: Vec<PathBuf>,
}

impl DatasetWriter {
    pub fn create(dir: &Path, max_records: usize, max_bytes: u64) -> Result<DatasetWriter> {
        std::fs::create_dir_all(dir).map_err(Error::io("create dataset directory", dir))?;
        let existing = shard_paths(dir)?;
        if !existing.is_empty() {
            return Err(Error::Format {
                path: dir.to_owned(),
                msg: format!(
                    "already holds {} shard(s); use an empty directory",
                    existing.len()
                ),
            });
        }
        Ok(DatasetWriter {
            dir: dir.to_owned(),
            max_records: max_records.max(1),
            max_bytes,
            current: None,
            next: 0,
            written: Vec::new(),
        })
    }

    pub fn push(&mut self, inst: &Instance) -> Result<()> {
        self.push_with(|w| w.push(inst))
    }

    /// Appends one record already serialised as an `Instance`'s JSON (see
    /// `Miner::mine_repo_records`); the bytes are stored as given.
    pub fn push_bytes(&mut self, record: &[u8]) -> Result<()> {
        self.push_with(|w| w.push_bytes(record))
    }

    fn push_with(&mut self, put: impl FnOnce(&mut ShardWriter) -> Result<()>) -> Result<()> {
        if self.current.is_none() {
            let path = self.dir.join(format!("shard-{:05}.{SHARD_EXT}", self.next));
            self.next += 1;
            self.current = Some(ShardWriter::create(&path)?);
        }
        let w = self.current.as_mut().expect("just created");
        put(w)?;
        if w.len() >= self.max_records || w.bytes() >= self.max_bytes {
            let done = self.current.take().expect("present").finish()?;
            self.written.push(done);
        }
        Ok(())
    }

    /// Finishes the open shard; returns every shard written.
    pub fn finish(mut self) -> Result<Vec<PathBuf>> {
        if let Some(w) = self.current.take() {
            self.written.push(w.finish()?);
        }
        Ok(self.written)
    }
}

/// Finished shards of `dir`, in name order (`*.swrl.tmp` leftovers are ignored).
pub fn shard_paths(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(Error::io("read dataset directory", dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == SHARD_EXT))
        .collect();
    out.sort();
    Ok(out)
}

pub struct Dataset {
    shards: Vec<Shard>,
    /// starts[s] = global index of shard s's first record; last = len.
    starts: Vec<usize>,
}

impl Dataset {
    /// Opens a dataset directory or a single shard file.
    pub fn open(path: &Path) -> Result<Dataset> {
        let paths = if path.is_dir() {
            shard_paths(path)?
        } else {
            vec![path.to_owned()]
        };
        if paths.is_empty() {
            return Err(Error::Format {
                path: path.to_owned(),
                msg: format!("no *.{SHARD_EXT} shards found"),
            });
        }
        let shards = paths
            .iter()
            .map(|p| Shard::open(p))
            .collect::<Result<Vec<_>>>()?;
        let mut starts = vec![0];
        for s in &shards {
            starts.push(starts.last().expect("non-empty") + s.len());
        }
        Ok(Dataset { shards, starts })
    }

    pub fn len(&self) -> usize {
        *self.starts.last().expect("non-empty")
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    fn locate(&self, i: usize) -> Result<(&Shard, usize)> {
        if i >= self.len() {
            return Err(Error::Record {
                path: self.shards[0].path().to_owned(),
                index: i,
                msg: format!("out of range (dataset has {})", self.len()),
            });
        }
        let s = self.starts.partition_point(|&st| st <= i) - 1;
        Ok((&self.shards[s], i - self.starts[s]))
    }

    /// Record `i`'s JSON bytes, borrowed from the memory map (zero-copy).
    pub fn get_bytes(&self, i: usize) -> Result<&[u8]> {
        let (s, j) = self.locate(i)?;
        s.get_bytes(j)
    }

    pub fn get(&self, i: usize) -> Result<Instance> {
        let (s, j) = self.locate(i)?;
        s.get(j)
    }

    /// The global indices this `rank` of `world` sees in one epoch: a seeded permutation
    /// of all records (identical on every rank), then every `world`-th element from `rank`.
    pub fn indices(&self, seed: u64, rank: usize, world: usize) -> Vec<usize> {
        let world = world.max(1);
        shuffled(self.len(), seed)
            .into_iter()
            .skip(rank)
            .step_by(world)
            .collect()
    }

    /// Instances in seeded shuffled order, restricted to `rank` of `world`.
    pub fn iter_shuffled(
        &self,
        seed: u64,
        rank: usize,
        world: usize,
    ) -> impl Iterator<Item = Result<Instance>> + '_ {
        self.indices(seed, rank, world)
            .into_iter()
            .map(move |i| self.get(i))
    }
}

/// splitmix64: small, seedable, and stable across platforms and releases.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fisher–Yates permutation of `0..n` driven by splitmix64(`seed`).
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut st = seed;
    for i in (1..n).rev() {
        let j = (splitmix(&mut st) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}
