//! Rollouts: `num_generations` samples per prompt in one batched KV-cache generation, with the
//! completion mask (up to and including the first EOS; truncated completions optionally masked).

use model::{GenerateConfig, Llama};
use runtime::SamplingParams;

use super::Result;

#[derive(Debug, Clone, PartialEq)]
pub struct RolloutSettings {
    pub num_generations: usize,
    pub max_completion_length: usize,
    pub temperature: f32,
    pub top_p: f32,
    pub top_k: usize,
    pub mask_truncated_completions: bool,
    pub eos_token_ids: Vec<u32>,
}

/// `num_generations` consecutive completions per prompt, in prompt order.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollouts {
    /// Index of the prompt each completion answers.
    pub problem_of: Vec<usize>,
    /// Generated tokens, cut after the first EOS.
    pub completions: Vec<Vec<u32>>,
    /// No EOS within `max_completion_length`.
    pub truncated: Vec<bool>,
    /// Row width of the `[n, width]` token layouts (longest completion, at least 1).
    pub width: usize,
    /// `[n, width]`: 1 on completion tokens that count in the loss.
    pub mask: Vec<f32>,
}

impl Rollouts {
    pub fn len(&self) -> usize {
        self.completions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.completions.is_empty()
    }

    /// Builds masks for already generated completions.
    pub fn from_completions(
        problem_of: Vec<usize>,
        raw: Vec<Vec<u32>>,
        s: &RolloutSettings,
    ) -> Rollouts {
        let mut completions = Vec::with_capacity(raw.len());
        let mut truncated = Vec::with_capacity(raw.len());
        for mut c in raw {
            c.truncate(s.max_completion_length);
            match c.iter().position(|t| s.eos_token_ids.contains(t)) {
                Some(e) => {
                    c.truncate(e + 1);
                    truncated.push(false);
                }
                None => truncated.push(true),
            }
            completions.push(c);
        }
        let width = completions.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut mask = vec![0f32; completions.len() * width];
        for (i, c) in completions.iter().enumerate() {
            if s.mask_truncated_completions && truncated[i] {
                continue;
            }
            mask[i * width..i * width + c.len()].fill(1.0);
        }
        Rollouts {
            problem_of,
            completions,
            truncated,
            width,
            mask,
        }
    }
}

/// Samples the rollouts of `prompts` with the policy; `seed` fixes every draw.
pub fn generate(
    m: &Llama,
    prompts: &[Vec<u32>],
    s: &RolloutSettings,
    seed: u64,
) -> Result<Rollouts> {
    let (batch, problem_of, cfg) = requests(prompts, s, seed);
    let raw = m.generate(&batch, &cfg)?;
    Ok(Rollouts::from_completions(problem_of, raw, s))
}

/// The generation batch (`num_generations` copies of each prompt), each row's problem, and
/// the sampling settings: what any policy (single-process or sharded) is asked to sample.
pub(crate) fn requests(
    prompts: &[Vec<u32>],
    s: &RolloutSettings,
    seed: u64,
) -> (Vec<Vec<u32>>, Vec<usize>, GenerateConfig) {
    let mut batch = Vec::with_capacity(prompts.len() * s.num_generations);
    let mut problem_of = Vec::with_capacity(batch.capacity());
    for (i, p) in prompts.iter().enumerate() {
        for _ in 0..s.num_generations {
            batch.push(p.clone());
            problem_of.push(i);
        }
    }
    let cfg = GenerateConfig {
        max_new_tokens: s.max_completion_length,
        sampling: SamplingParams {
            temperature: s.temperature,
            top_k: s.top_k,
            top_p: s.top_p,
        },
        seed,
        eos_token_ids: s.eos_token_ids.clone(),
    };
    (batch, problem_of, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_stops_at_first_eos_and_can_drop_truncated() {
        let mut s = RolloutSettings {
            num_generations: 2,
            max_completion_length: 4,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            mask_truncated_completions: false,
            eos_token_ids: vec![9],
        };
        let raw = vec![vec![1, 9, 2], vec![1, 2, 3, 4, 5], vec![9]];
        let r = Rollouts::from_completions(vec![0, 0, 1], raw.clone(), &s);
        assert_eq!(r.completions, vec![vec![1, 9], vec![1, 2, 3, 4], vec![9]]);
        assert_eq!(r.truncated, vec![false, true, false]);
        assert_eq!(r.width, 4);
        assert_eq!(r.mask, vec![1., 1., 0., 0., 1., 1., 1., 1., 1., 0., 0., 0.]);
        s.mask_truncated_completions = true;
        let r = Rollouts::from_completions(vec![0, 0, 1], raw, &s);
        assert_eq!(&r.mask[4..8], &[0., 0., 0., 0.]);
    }
}
