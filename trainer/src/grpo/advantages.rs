//! Group-relative advantages: `(r - mean of its group) / (std + 1e-4)`.

use std::str::FromStr;

use super::GrpoError;

/// The `1e-4` TRL adds to the standard deviation.
pub const STD_EPSILON: f64 = 1e-4;

/// Which standard deviation scales the centred rewards (`scale_rewards` in TRL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleRewards {
    /// Each group's own std.
    Group,
    /// One std over the whole batch.
    Batch,
    /// Centred only (Dr. GRPO).
    None,
}

impl FromStr for ScaleRewards {
    type Err = GrpoError;
    fn from_str(s: &str) -> Result<Self, GrpoError> {
        match s {
            "group" => Ok(Self::Group),
            "batch" => Ok(Self::Batch),
            "none" => Ok(Self::None),
            _ => Err(GrpoError::Unknown {
                what: "scale_rewards",
                value: s.to_string(),
                expected: "group, batch, none",
            }),
        }
    }
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Bessel-corrected (n − 1), as `torch.std`; NaN for a single value, like torch.
fn std(xs: &[f64]) -> f64 {
    let m = mean(xs);
    (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() as f64 - 1.0)).sqrt()
}

/// Advantages of `rewards` laid out as consecutive groups of `num_generations` completions
/// of the same prompt.
pub fn compute_advantages(
    rewards: &[f64],
    num_generations: usize,
    scale: ScaleRewards,
) -> Result<Vec<f64>, GrpoError> {
    if num_generations == 0 || !rewards.len().is_multiple_of(num_generations) {
        return Err(GrpoError::Groups {
            n: rewards.len(),
            group: num_generations,
        });
    }
    let batch_std = std(rewards);
    let mut out = Vec::with_capacity(rewards.len());
    for group in rewards.chunks(num_generations) {
        let m = mean(group);
        let denom = match scale {
            ScaleRewards::Group => std(group) + STD_EPSILON,
            ScaleRewards::Batch => batch_std + STD_EPSILON,
            ScaleRewards::None => 1.0,
        };
        out.extend(group.iter().map(|r| (r - m) / denom));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_rewards_give_zero_advantage() {
        let a = compute_advantages(&[1.0, 1.0, 0.0, 1.0], 2, ScaleRewards::Group).unwrap();
        assert_eq!(&a[..2], &[0.0, 0.0]);
        let s = std(&[0.0, 1.0]) + STD_EPSILON;
        assert!((a[2] + 0.5 / s).abs() < 1e-15 && (a[3] - 0.5 / s).abs() < 1e-15);
        assert!(compute_advantages(&[1.0; 3], 2, ScaleRewards::None).is_err());
    }
}
