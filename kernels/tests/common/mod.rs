//! Shared helpers of the GPU tests: device gate, fresh random inputs, poisoned outputs, the
//! runtime's CPU tensors as twins, and the relative error ‖gpu − cpu‖ / ‖cpu‖.
#![allow(dead_code)]

use half::{bf16, f16};
use kernels::cudarc::driver::{CudaSlice, DeviceRepr};
use kernels::{Elem, Gpu};
use runtime::{Element, Tensor};

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

/// The runtime's RNG seeded from the clock: fresh inputs every run, seed printed for replay.
pub fn fresh_rng(test: &str) -> runtime::Rng {
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
    runtime::Rng::new(seed)
}

/// `n` values uniform in [-a, a).
pub fn uniform(rng: &mut runtime::Rng, n: usize, a: f32) -> Vec<f32> {
    (0..n).map(|_| (rng.next_f32() * 2.0 - 1.0) * a).collect()
}

/// Storage types the tests run: device element + runtime element.
pub trait Host: Elem + Element {
    fn nan() -> Self;
    /// Relative tolerance of this storage type (f32 paths 1e-5, bf16 paths 1e-2).
    const TOL: f64;
}
impl Host for f32 {
    fn nan() -> Self {
        f32::NAN
    }
    const TOL: f64 = 1e-5;
}
impl Host for bf16 {
    fn nan() -> Self {
        bf16::NAN
    }
    const TOL: f64 = 1e-2;
}
impl Host for f16 {
    fn nan() -> Self {
        f16::NAN
    }
    const TOL: f64 = 2e-3;
}

pub fn up<T: DeviceRepr>(g: &Gpu, v: &[T]) -> CudaSlice<T> {
    g.stream().clone_htod(v).expect("upload")
}

/// The same values as a CPU tensor of dtype `E` (the twin's input) and a device buffer.
pub fn pair<E: Host>(g: &Gpu, v: &[f32], shape: &[usize]) -> (Tensor, CudaSlice<E>) {
    let e: Vec<E> = v.iter().map(|&x| <E as Element>::from_f32(x)).collect();
    (
        Tensor::from_vec(e.clone(), shape).expect("tensor"),
        up(g, &e),
    )
}

/// An index tensor and its device copy.
pub fn ids_pair(g: &Gpu, v: &[i32], shape: &[usize]) -> (Tensor, CudaSlice<i32>) {
    (
        Tensor::from_vec(v.to_vec(), shape).expect("tensor"),
        up(g, v),
    )
}

/// A CPU output tensor of dtype `E` (zeros; the CPU op overwrites or accumulates it).
pub fn cpu_zeros<E: Host>(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape, E::DTYPE, &runtime::Device::Cpu).expect("tensor")
}

/// A device buffer of NaNs: any element a kernel fails to write shows up as NaN.
pub fn poisoned<E: Host>(g: &Gpu, n: usize) -> CudaSlice<E> {
    up(g, &vec![E::nan(); n])
}

pub fn down<E: Host>(g: &Gpu, s: &CudaSlice<E>) -> Vec<f64> {
    g.synchronize().expect("kernel ran");
    let v: Vec<E> = g.stream().clone_dtoh(s).expect("download");
    v.into_iter().map(Element::to_f64).collect()
}

pub fn cpu(t: &Tensor) -> Vec<f64> {
    t.to_f32_vec()
        .expect("cpu values")
        .into_iter()
        .map(f64::from)
        .collect()
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
