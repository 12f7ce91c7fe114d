//! Host-side RoPE cos/sin tables (`default` and `llama3` scaling), uploaded once and indexed by
//! position id in the `rope` kernel. Arithmetic is f32 in the order Hugging Face transformers
//! uses, so the tables match the reference model's rounding.

use crate::error::{shape, Result};

/// `rope_scaling` of a Llama-3.1+ config with `rope_type = "llama3"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Llama3Scaling {
    pub factor: f32,
    pub low_freq_factor: f32,
    pub high_freq_factor: f32,
    pub original_max_position_embeddings: usize,
}

/// Inverse frequencies, `head_dim / 2` of them.
pub fn inv_freq(head_dim: usize, theta: f32, scaling: Option<&Llama3Scaling>) -> Vec<f32> {
    let base: Vec<f32> = (0..head_dim / 2)
        .map(|j| 1.0 / theta.powf((2 * j) as f32 / head_dim as f32))
        .collect();
    let Some(s) = scaling else { return base };
    let old = s.original_max_position_embeddings as f32;
    let low_wavelen = old / s.low_freq_factor;
    let high_wavelen = old / s.high_freq_factor;
    base.into_iter()
        .map(|f| {
            let wavelen = 2.0 * std::f32::consts::PI / f;
            if wavelen < high_wavelen {
                f
            } else if wavelen > low_wavelen {
                f / s.factor
            } else {
                let smooth =
                    (old / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
                (1.0 - smooth) * f / s.factor + smooth * f
            }
        })
        .collect()
}

/// cos/sin tables, each `[max_pos, head_dim / 2]` row-major f32.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeTables {
    pub head_dim: usize,
    pub max_pos: usize,
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
}

pub fn rope_tables(
    head_dim: usize,
    theta: f32,
    scaling: Option<&Llama3Scaling>,
    max_pos: usize,
) -> Result<RopeTables> {
    if head_dim == 0 || !head_dim.is_multiple_of(2) {
        return Err(shape(
            "rope_tables",
            format!("head_dim {head_dim} must be even and > 0"),
        ));
    }
    if theta.is_nan() || theta <= 1.0 {
        return Err(shape(
            "rope_tables",
            format!("rope theta {theta} must be > 1"),
        ));
    }
    if let Some(s) = scaling {
        if s.factor.is_nan()
            || s.factor <= 0.0
            || s.high_freq_factor.is_nan()
            || s.high_freq_factor <= s.low_freq_factor
            || s.original_max_position_embeddings == 0
        {
            return Err(shape(
                "rope_tables",
                format!("invalid llama3 scaling {s:?}"),
            ));
        }
    }
    let freqs = inv_freq(head_dim, theta, scaling);
    let half = head_dim / 2;
    let mut cos = Vec::with_capacity(max_pos * half);
    let mut sin = Vec::with_capacity(max_pos * half);
    for p in 0..max_pos {
        for &f in &freqs {
            let a = p as f32 * f;
            cos.push(a.cos());
            sin.push(a.sin());
        }
    }
    Ok(RopeTables {
        head_dim,
        max_pos,
        cos,
        sin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA31: Llama3Scaling = Llama3Scaling {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 8192,
    };

    #[test]
    fn default_frequencies_follow_theta() {
        let f = inv_freq(8, 10000.0, None);
        let want = [1.0f64, 0.1, 0.01, 0.001];
        for (a, b) in f.iter().zip(want) {
            assert!(((*a as f64) - b).abs() < 1e-6 * b.max(1e-3), "{a} vs {b}");
        }
    }

    #[test]
    fn llama3_scaling_keeps_high_divides_low_and_blends_between() {
        let plain = inv_freq(128, 500000.0, None);
        let scaled = inv_freq(128, 500000.0, Some(&LLAMA31));
        // Highest frequency: wavelength 2*pi << 8192/4, unchanged.
        assert_eq!(plain[0], scaled[0]);
        // Lowest frequency: wavelength far above 8192, divided by the factor.
        assert_eq!(scaled[63], plain[63] / 8.0);
        // Somewhere in between the blend lies strictly between the two.
        let mid = (0..64)
            .find(|&j| {
                let w = 2.0 * std::f32::consts::PI / plain[j];
                w > 2048.0 && w < 8192.0
            })
            .expect("a blended band exists for llama3.1 settings");
        assert!(scaled[mid] < plain[mid] && scaled[mid] > plain[mid] / 8.0);
    }

    #[test]
    fn tables_are_cos_sin_of_position_times_frequency() {
        let t = rope_tables(4, 10000.0, None, 3).unwrap();
        assert_eq!(t.cos.len(), 6);
        assert_eq!(t.cos[0], 1.0);
        assert_eq!(t.sin[0], 0.0);
        assert!((t.cos[2] - 1f32.cos()).abs() < 1e-7);
        assert!((t.sin[3] - 0.01f32.sin()).abs() < 1e-7);
        assert!((t.sin[4] - 2f32.sin()).abs() < 1e-7);
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(rope_tables(7, 10000.0, None, 4).is_err());
        assert!(rope_tables(0, 10000.0, None, 4).is_err());
        assert!(rope_tables(8, 0.5, None, 4).is_err());
        let bad = Llama3Scaling {
            high_freq_factor: 0.5,
            ..LLAMA31
        };
        let e = rope_tables(8, 500000.0, Some(&bad), 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("rope_tables"), "{e}");
    }
}
