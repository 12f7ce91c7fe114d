//! Shared helpers of the GPU tests: device gate, fresh random inputs, poisoned outputs, and the
//! relative-error measure ‖gpu − cpu‖ / ‖cpu‖.
#![allow(dead_code)]

use half::{bf16, f16};
use kernels::cudarc::driver::CudaSlice;
use kernels::{Elem, Gpu};

/// The device, or None after printing one line saying why the test is skipped.
pub fn gpu() -> Option<Gpu> {
    if let Some(why) = kernels::context::unavailable_reason() {
        eprintln!("skipping GPU test: {why}");
        return None;
    }
    match Gpu::new(0) {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("skipping GPU test: {e}");
            None
        }
    }
}

/// SplitMix64 seeded from the clock: fresh inputs every run, seed printed for replay.
pub struct Rng(u64);

impl Rng {
    pub fn fresh(test: &str) -> Self {
        let seed = std::env::var("SWERL_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("{test}: seed {seed} (SWERL_TEST_SEED to replay)");
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Uniform in [-a, a).
    pub fn sym(&mut self, a: f32) -> f32 {
        (self.unit() * 2.0 - 1.0) * a
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn vec(&mut self, n: usize, a: f32) -> Vec<f32> {
        (0..n).map(|_| self.sym(a)).collect()
    }
}

/// Element types the tests move between host and device.
pub trait Host: Elem {
    fn from_f32(v: f32) -> Self;
    fn to_f64(self) -> f64;
    fn nan() -> Self;
    /// Relative tolerance of this storage type (f32 paths 1e-5, bf16 paths 1e-2).
    const TOL: f64;
}
impl Host for f32 {
    fn from_f32(v: f32) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn nan() -> Self {
        f32::NAN
    }
    const TOL: f64 = 1e-5;
}
impl Host for bf16 {
    fn from_f32(v: f32) -> Self {
        bf16::from_f32(v)
    }
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    fn nan() -> Self {
        bf16::NAN
    }
    const TOL: f64 = 1e-2;
}
impl Host for f16 {
    fn from_f32(v: f32) -> Self {
        f16::from_f32(v)
    }
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    fn nan() -> Self {
        f16::NAN
    }
    const TOL: f64 = 1e-3;
}

/// Host values rounded to `E`, and the same values as f64 for the CPU twin.
pub fn rounded<E: Host>(v: &[f32]) -> (Vec<E>, Vec<f64>) {
    let e: Vec<E> = v.iter().map(|&x| E::from_f32(x)).collect();
    let f = e.iter().map(|&x| x.to_f64()).collect();
    (e, f)
}

pub fn up<T: kernels::cudarc::driver::DeviceRepr>(g: &Gpu, v: &[T]) -> CudaSlice<T> {
    g.stream().clone_htod(v).expect("upload")
}

/// A device buffer of NaNs: any element a kernel fails to write shows up as NaN.
pub fn poisoned<E: Host>(g: &Gpu, n: usize) -> CudaSlice<E> {
    up(g, &vec![E::nan(); n])
}

pub fn poisoned_f32(g: &Gpu, n: usize) -> CudaSlice<f32> {
    up(g, &vec![f32::NAN; n])
}

pub fn down<E: Host>(g: &Gpu, s: &CudaSlice<E>) -> Vec<f64> {
    g.synchronize().expect("kernel ran");
    let v: Vec<E> = g.stream().clone_dtoh(s).expect("download");
    v.into_iter().map(|x| x.to_f64()).collect()
}

/// ‖a − b‖ / ‖b‖; infinite when any value is NaN or the lengths differ.
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() || a.iter().chain(b).any(|x| x.is_nan()) {
        return f64::INFINITY;
    }
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

pub fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    let e = rel_err(got, want);
    assert!(e <= tol, "{what}: relative error {e:e} > {tol:e}");
}
