//! A small seeded RNG (xoshiro256**) with a serialisable state for bit-exact resume.

use crate::{DType, Error, Result, Tensor};

/// xoshiro256** (Blackman & Vigna). `state()` / `from_state()` round-trip exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// Seeds the four state words from `seed` with splitmix64 (never all zero).
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let s = [
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
        ];
        Rng { s }
    }

    /// The full state, for checkpoints.
    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    /// Restores a state from [`Rng::state`]; the all-zero state (a fixed point) is an error.
    pub fn from_state(s: [u64; 4]) -> Result<Rng> {
        if s == [0; 4] {
            return Err(Error::Invalid {
                op: "Rng::from_state",
                msg: "the all-zero state is invalid for xoshiro256**".into(),
            });
        }
        Ok(Rng { s })
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[0, 1)` with 24 random bits.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// Uniform integer in `0..n`, unbiased (Lemire's method with rejection).
    ///
    /// # Panics
    /// If `n == 0` (an empty range is a caller bug, not data).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        loop {
            let m = (self.next_u64() as u128) * (n as u128);
            let lo = m as u64;
            if lo >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }

    /// Standard normal sample (Box-Muller; one of the pair is discarded to keep the state simple).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1], keeps ln finite
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// An independent stream derived from this one (e.g. one per rank or worker).
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

fn fill_with(t: &mut Tensor, op: &'static str, mut f: impl FnMut() -> f64) -> Result<()> {
    match t.dtype() {
        DType::F32 => t
            .as_mut_slice::<f32>()?
            .iter_mut()
            .for_each(|x| *x = f() as f32),
        DType::BF16 => t
            .as_mut_slice::<half::bf16>()?
            .iter_mut()
            .for_each(|x| *x = half::bf16::from_f64(f())),
        DType::F16 => t
            .as_mut_slice::<half::f16>()?
            .iter_mut()
            .for_each(|x| *x = half::f16::from_f64(f())),
        other => {
            return Err(Error::DType {
                op,
                got: other,
                msg: "random fills need a float tensor".into(),
            })
        }
    }
    Ok(())
}

/// Fills a float CPU tensor with `U[lo, hi)` samples, in row-major order.
pub fn fill_uniform(t: &mut Tensor, lo: f64, hi: f64, rng: &mut Rng) -> Result<()> {
    fill_with(t, "fill_uniform", || lo + (hi - lo) * rng.next_f64())
}

/// Fills a float CPU tensor with `N(mean, std^2)` samples, in row-major order.
pub fn fill_normal(t: &mut Tensor, mean: f64, std: f64, rng: &mut Rng) -> Result<()> {
    fill_with(t, "fill_normal", || mean + std * rng.normal())
}
