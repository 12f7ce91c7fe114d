//! Caching device allocator: blocks are rounded up to size classes and returned to a free list
//! on drop, so a training step that repeats the same shapes makes no driver allocation after the
//! first step. One allocator per device stream; blocks are used on that stream only, which keeps
//! reuse ordered without events.

use crate::context::{drv, Gpu};
use crate::error::{shape, Result};
use cudarc::driver::{CudaSlice, CudaStream, CudaView, CudaViewMut, DeviceRepr};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Smallest block: keeps every block 512-byte aligned and small tensors in few classes.
const MIN_BLOCK: usize = 512;
/// Above this, classes grow in 2 MiB steps instead of powers of two (less waste on big tensors).
const POW2_LIMIT: usize = 64 << 20;
const LARGE_STEP: usize = 2 << 20;

/// The size class `bytes` is served from.
pub fn size_class(bytes: usize) -> usize {
    let b = bytes.max(MIN_BLOCK);
    if b <= POW2_LIMIT {
        b.next_power_of_two()
    } else {
        b.div_ceil(LARGE_STEP) * LARGE_STEP
    }
}

/// Counters for tests and `swerl info`-style reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// Allocations that reached the driver.
    pub driver_allocs: u64,
    /// Allocations served from the free lists.
    pub reuses: u64,
    /// Bytes held from the driver (in use + cached).
    pub reserved_bytes: usize,
    /// Bytes in live blocks.
    pub in_use_bytes: usize,
}

struct Pool {
    free: HashMap<usize, Vec<CudaSlice<u8>>>,
    stats: AllocStats,
}

/// Shared by an allocator and its live blocks (a block returns itself on drop).
pub struct CachingAllocator {
    stream: Arc<CudaStream>,
    pool: Arc<Mutex<Pool>>,
}

/// One device buffer of at least the requested size; returned to the cache on drop.
pub struct Block {
    slice: Option<CudaSlice<u8>>,
    bytes: usize,
    pool: Arc<Mutex<Pool>>,
}

impl CachingAllocator {
    pub fn new(gpu: &Gpu) -> Self {
        CachingAllocator {
            stream: gpu.stream().clone(),
            pool: Arc::new(Mutex::new(Pool {
                free: HashMap::new(),
                stats: AllocStats::default(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A block of at least `bytes` bytes, contents undefined.
    pub fn alloc(&self, bytes: usize) -> Result<Block> {
        let class = size_class(bytes);
        let cached = {
            let mut p = self.lock();
            let hit = p.free.get_mut(&class).and_then(Vec::pop);
            if hit.is_some() {
                p.stats.reuses += 1;
                p.stats.in_use_bytes += class;
            }
            hit
        };
        let slice = match cached {
            Some(s) => s,
            None => {
                // SAFETY: the bytes are uninitialised; blocks promise undefined contents.
                let s = unsafe { self.stream.alloc::<u8>(class) }.map_err(drv("device alloc"))?;
                let mut p = self.lock();
                p.stats.driver_allocs += 1;
                p.stats.reserved_bytes += class;
                p.stats.in_use_bytes += class;
                s
            }
        };
        Ok(Block {
            slice: Some(slice),
            bytes: class,
            pool: self.pool.clone(),
        })
    }

    /// A block for `len` elements of `T`.
    pub fn alloc_elems<T: DeviceRepr>(&self, len: usize) -> Result<Block> {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| shape("device alloc", format!("{len} elements overflow")))?;
        self.alloc(bytes)
    }

    pub fn stats(&self) -> AllocStats {
        self.lock().stats
    }

    /// Returns every cached (free) block to the driver.
    pub fn empty_cache(&self) {
        let mut p = self.lock();
        let freed: usize = p.free.iter().map(|(c, v)| c * v.len()).sum();
        p.free.clear();
        p.stats.reserved_bytes -= freed;
    }
}

impl Block {
    /// Capacity in bytes (the size class, at least what was asked).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn slice(&self) -> &CudaSlice<u8> {
        self.slice.as_ref().expect("a live block holds its slice")
    }

    /// The first `len` elements as `T`; errors when they do not fit.
    ///
    /// # Safety
    /// The bytes must hold valid `T` values wherever they are read (the kernels' outputs are
    /// written before they are read; inputs come from uploads or other kernels).
    pub unsafe fn view<T>(&self, len: usize) -> Result<CudaView<'_, T>> {
        self.slice().transmute::<T>(len).ok_or_else(|| {
            shape(
                "block view",
                format!("{len} elements exceed {} bytes", self.bytes),
            )
        })
    }

    /// Mutable view of the first `len` elements as `T`.
    ///
    /// # Safety
    /// As [`Block::view`].
    pub unsafe fn view_mut<T>(&mut self, len: usize) -> Result<CudaViewMut<'_, T>> {
        let bytes = self.bytes;
        self.slice
            .as_mut()
            .expect("a live block holds its slice")
            .transmute_mut::<T>(len)
            .ok_or_else(|| shape("block view", format!("{len} elements exceed {bytes} bytes")))
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        if let Some(s) = self.slice.take() {
            let mut p = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            p.stats.in_use_bytes -= self.bytes;
            p.free.entry(self.bytes).or_default().push(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_round_up_without_shrinking() {
        assert_eq!(size_class(0), 512);
        assert_eq!(size_class(1), 512);
        assert_eq!(size_class(513), 1024);
        assert_eq!(size_class(64 << 20), 64 << 20);
        assert_eq!(size_class((64 << 20) + 1), (66 << 20));
        for b in [1usize, 511, 4097, 1 << 20, (100 << 20) + 3] {
            let c = size_class(b);
            assert!(c >= b && c.is_multiple_of(512), "{b} -> {c}");
            assert_eq!(size_class(c), c, "classes are fixed points");
        }
    }
}
