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
    ($name:literal, $entries:expr, $spill_free:expr) => {
        KernelSource {
            name: $name,
            source: include_str!(concat!($name, ".cu")),
            entries: $entries,
            spill_free: $spill_free,
        }
    };
}

/// Entry names: each `float` base instantiated for f32, bf16 and f16 (`FOR_FLOAT_TYPES` in
/// common.cuh), then the `plain` names as written.
macro_rules! entries {
    (float: [$($base:literal),* $(,)?] $(, plain: [$($p:literal),* $(,)?])?) => {
        &[$(concat!($base, "_f32"), concat!($base, "_bf16"), concat!($base, "_f16"),)* $($($p,)*)?]
    };
}

/// Every kernel the crate ships; names follow the runtime's ops (one op, one name). Keep in
/// step with the `.cu` files: the check script fails on an entry listed here that ptxas did not
/// see, and on one ptxas saw that is not listed.
pub const KERNELS: &[KernelSource] = &[
    kernel!(
        "rmsnorm",
        entries!(float: ["rmsnorm_fwd", "rmsnorm_bwd_dx", "rmsnorm_bwd_dw"]),
        true
    ),
    kernel!("rope", entries!(float: ["rope"]), true),
    kernel!(
        "swiglu",
        entries!(float: ["swiglu_fwd", "swiglu_bwd"]),
        true
    ),
    kernel!(
        "embedding",
        entries!(float: ["embedding_fwd", "embedding_bwd"]),
        true
    ),
    kernel!(
        "logprobs",
        entries!(float: ["logprobs_fwd", "logprobs_bwd", "softmax"]),
        true
    ),
    kernel!(
        "adamw",
        entries!(float: ["adamw"], plain: ["adamw_multi"]),
        true
    ),
    kernel!(
        "cast",
        &[
            "cast_f32_bf16",
            "cast_bf16_f32",
            "cast_f32_f16",
            "cast_f16_f32",
            "cast_bf16_f16",
            "cast_f16_bf16",
            "cast_i64_i32"
        ],
        true
    ),
    kernel!(
        "reduce",
        entries!(float: ["sum_partial", "sumsq_partial"], plain: ["reduce_final"]),
        true
    ),
    kernel!(
        "elementwise",
        entries!(float: ["add", "mul", "scale", "axpy", "kv_cache_write"]),
        true
    ),
    kernel!("sampling", entries!(float: ["sample"]), true),
    kernel!(
        "attention",
        entries!(float: ["attention_fwd", "attention_bwd_dq", "attention_bwd_dkdv"]),
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
