//! RoPE frequency tables (`default` and `llama3` scaling), computed like transformers.

use crate::error::invalid;
use crate::{Device, Result, Tensor};

/// The `rope_scaling` / `rope_parameters` of a Llama config.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE (`rope_type: "default"` or no scaling).
    Default,
    /// `rope_type: "llama3"` (Llama 3.1+).
    Llama3 {
        factor: f32,
        low_freq_factor: f32,
        high_freq_factor: f32,
        original_max_position_embeddings: usize,
    },
}

/// Inverse frequencies, `head_dim / 2` of them, in f32 arithmetic as transformers does
/// (`_compute_default_rope_parameters` then `_compute_llama3_parameters`).
pub fn rope_inv_freq(head_dim: usize, theta: f32, scaling: &RopeScaling) -> Result<Vec<f32>> {
    if head_dim == 0 || !head_dim.is_multiple_of(2) {
        return invalid(
            "rope_inv_freq",
            format!("head_dim {head_dim} must be even and > 0"),
        );
    }
    let base: Vec<f32> = (0..head_dim / 2)
        .map(|i| 1.0 / theta.powf((2 * i) as f32 / head_dim as f32))
        .collect();
    match *scaling {
        RopeScaling::Default => Ok(base),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => {
            if high_freq_factor == low_freq_factor {
                return invalid(
                    "rope_inv_freq",
                    "llama3 scaling needs high_freq_factor != low_freq_factor",
                );
            }
            let old = original_max_position_embeddings as f32;
            let low_freq_wavelen = old / low_freq_factor;
            let high_freq_wavelen = old / high_freq_factor;
            Ok(base
                .iter()
                .map(|&f| {
                    let wavelen = 2.0 * std::f32::consts::PI / f;
                    let scaled = if wavelen > low_freq_wavelen {
                        f / factor
                    } else {
                        f
                    };
                    let smooth =
                        (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                    let smoothed = (1.0 - smooth) * scaled / factor + smooth * scaled;
                    // transformers: ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
                    let medium = wavelen >= high_freq_wavelen && wavelen <= low_freq_wavelen;
                    if medium {
                        smoothed
                    } else {
                        scaled
                    }
                })
                .collect())
        }
    }
}

/// `cos`/`sin` tables `[max_positions, head_dim / 2]` F32 for [`crate::ops::rope_fwd`]:
/// `cos[p, i] = cos(p * inv_freq[i])` with the product rounded to f32 first, as transformers
/// computes `inv_freq @ position_ids` in f32.
pub fn rope_tables(
    head_dim: usize,
    theta: f32,
    scaling: &RopeScaling,
    max_positions: usize,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let inv = rope_inv_freq(head_dim, theta, scaling)?;
    let half = head_dim / 2;
    let mut cos = Vec::with_capacity(max_positions * half);
    let mut sin = Vec::with_capacity(max_positions * half);
    for p in 0..max_positions {
        for &f in &inv {
            let a = p as f32 * f;
            cos.push(a.cos());
            sin.push(a.sin());
        }
    }
    let cos = Tensor::from_vec(cos, &[max_positions, half])?;
    let sin = Tensor::from_vec(sin, &[max_positions, half])?;
    if device.is_cpu() {
        Ok((cos, sin))
    } else {
        Ok((cos.to_device(device)?, sin.to_device(device)?))
    }
}
