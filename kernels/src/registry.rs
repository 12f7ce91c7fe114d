//! The kernel sources and their entry points: the one list that the CUDA backend loads from and
//! the CI resource check compiles.

/// Shared device helpers prepended to every kernel source.
pub const PRELUDE: &str = include_str!("common.cuh");

/// One `.cu` file: its op name, text, `extern "C"` entry points and whether `ptxas` must report
/// zero spill bytes for every entry on every checked architecture.
#[derive(Debug, Clone, Copy)]
pub struct KernelSource {
    pub name: &'static str,
    pub source: &'static str,
    pub entries: &'static [&'static str],
    pub spill_free: bool,
}

impl KernelSource {
    /// Prelude plus source, with a `#line` marker so NVRTC errors name the `.cu` file and line.
    pub fn full_source(&self) -> String {
        format!("{PRELUDE}\n#line 1 \"{}.cu\"\n{}", self.name, self.source)
    }
}

macro_rules! kernel {
    ($name:literal, [$($e:literal),* $(,)?], $spill_free:expr) => {
        KernelSource {
            name: $name,
            source: include_str!(concat!($name, ".cu")),
            entries: &[$($e),*],
            spill_free: $spill_free,
        }
    };
}

/// Every kernel the crate ships. Keep in step with the `.cu` files: the check script fails on an
/// entry listed here that ptxas did not see, and on one ptxas saw that is not listed.
pub const KERNELS: &[KernelSource] = &[
    kernel!(
        "rmsnorm",
        [
            "rmsnorm_fwd_f32",
            "rmsnorm_fwd_bf16",
            "rmsnorm_bwd_dx_f32",
            "rmsnorm_bwd_dx_bf16",
            "rmsnorm_bwd_dw_f32",
            "rmsnorm_bwd_dw_bf16"
        ],
        true
    ),
    kernel!("rope", ["rope_f32", "rope_bf16"], true),
    kernel!(
        "swiglu",
        [
            "swiglu_fwd_f32",
            "swiglu_fwd_bf16",
            "swiglu_bwd_f32",
            "swiglu_bwd_bf16"
        ],
        true
    ),
    kernel!(
        "embedding",
        [
            "embedding_fwd_f32",
            "embedding_fwd_bf16",
            "embedding_bwd_f32",
            "embedding_bwd_bf16"
        ],
        true
    ),
    kernel!(
        "cross_entropy",
        [
            "cross_entropy_fwd_f32",
            "cross_entropy_fwd_bf16",
            "cross_entropy_bwd_f32",
            "cross_entropy_bwd_bf16"
        ],
        true
    ),
    kernel!("adamw", ["adamw_step"], true),
    kernel!(
        "cast",
        [
            "cast_f32_bf16",
            "cast_bf16_f32",
            "cast_f32_f16",
            "cast_f16_f32",
            "cast_bf16_f16",
            "cast_f16_bf16"
        ],
        true
    ),
    kernel!(
        "reduce",
        [
            "sum_partial_f32",
            "sum_partial_bf16",
            "sumsq_partial_f32",
            "sumsq_partial_bf16",
            "reduce_final"
        ],
        true
    ),
    kernel!("sampling", ["sample_f32", "sample_bf16"], true),
    kernel!(
        "attention",
        [
            "attention_fwd_f32",
            "attention_fwd_bf16",
            "attention_bwd_dq_f32",
            "attention_bwd_dq_bf16",
            "attention_bwd_dkdv_f32",
            "attention_bwd_dkdv_bf16"
        ],
        true
    ),
];

/// The kernel source named `name`.
pub fn kernel(name: &str) -> Option<&'static KernelSource> {
    KERNELS.iter().find(|k| k.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_entries_are_defined_in_their_source() {
        let mut names: Vec<_> = KERNELS.iter().map(|k| k.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KERNELS.len());
        for k in KERNELS {
            assert!(!k.entries.is_empty(), "{} has no entries", k.name);
            for e in k.entries {
                // Entries are spelled out or produced by a `name_##S` macro over dtype suffixes.
                let by_macro = e
                    .match_indices('_')
                    .any(|(i, _)| k.source.contains(&format!("{}_##", &e[..i])));
                assert!(
                    k.source.contains(&format!(" {e}(")) || by_macro,
                    "entry {e} not found in {}.cu",
                    k.name
                );
            }
        }
    }

    #[test]
    fn full_source_starts_with_prelude_and_marks_the_file() {
        let k = kernel("rmsnorm").unwrap();
        let s = k.full_source();
        assert!(s.starts_with(PRELUDE));
        assert!(s.contains("#line 1 \"rmsnorm.cu\""));
        assert!(kernel("no_such_op").is_none());
    }
}
