//! The KV cache: one preallocated `[B, S_max, Hkv, D]` key and value tensor per layer.

use runtime::{ops, DType, Device, Tensor};

use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};

#[derive(Debug)]
pub struct KvCache {
    pub k: Vec<Tensor>,
    pub v: Vec<Tensor>,
    batch: usize,
    capacity: usize,
}

impl KvCache {
    /// Room for `capacity` positions of `batch` sequences in every layer.
    pub fn new(
        c: &LlamaConfig,
        batch: usize,
        capacity: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let shape = [batch, capacity, c.num_kv_heads, c.head_dim];
        let make = || -> Result<Vec<Tensor>> {
            (0..c.num_layers)
                .map(|_| Ok(Tensor::zeros(&shape, dtype, device)?))
                .collect()
        };
        Ok(KvCache {
            k: make()?,
            v: make()?,
            batch,
            capacity,
        })
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn bytes(&self) -> usize {
        self.k
            .iter()
            .chain(&self.v)
            .map(Tensor::size_in_bytes)
            .sum()
    }

    /// Keeps only the sequences `keep` (in that order), so finished sequences stop costing
    /// attention and cache traffic.
    pub fn retain(&mut self, keep: &[usize]) -> Result<()> {
        if let Some(&bad) = keep.iter().find(|&&b| b >= self.batch) {
            return Err(ModelError::Invalid(format!(
                "KvCache::retain: sequence {bad} out of {}",
                self.batch
            )));
        }
        if keep.len() == self.batch && keep.iter().enumerate().all(|(i, &b)| i == b) {
            return Ok(());
        }
        for t in self.k.iter_mut().chain(self.v.iter_mut()) {
            let mut shape = t.shape().to_vec();
            shape[0] = keep.len();
            let mut new = Tensor::zeros(&shape, t.dtype(), t.device())?;
            for (i, &b) in keep.iter().enumerate() {
                ops::copy_rows(&mut new, i, &t.narrow(b, 1)?)?;
            }
            *t = new;
        }
        self.batch = keep.len();
        Ok(())
    }
}
