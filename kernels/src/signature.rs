//! Kernel parameter lists read from the `.cu` sources, so every launch can be checked against
//! the entry it calls (a wrong argument count or kind is an error, not a corrupted launch), and
//! CI can check the reading against the PTX NVRTC emits.

use crate::registry::KernelSource;

/// How one kernel parameter is passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// Any pointer (8 bytes).
    Ptr,
    I32,
    I64,
    F32,
}

impl Param {
    /// The PTX parameter type this kind compiles to.
    pub fn ptx_type(self) -> &'static str {
        match self {
            Param::Ptr | Param::I64 => ".u64",
            Param::I32 => ".u32",
            Param::F32 => ".f32",
        }
    }
}

fn param_kind(p: &str) -> Option<Param> {
    if p.contains('*') {
        return Some(Param::Ptr);
    }
    let words: Vec<&str> = p.split_whitespace().filter(|w| *w != "const").collect();
    let ty = words[..words.len().saturating_sub(1)].join(" ");
    match ty.as_str() {
        "int" => Some(Param::I32),
        "i64" | "long long" => Some(Param::I64),
        "float" => Some(Param::F32),
        _ => None,
    }
}

/// Does `entry` match a kernel name written with macro pastes (`rmsnorm_fwd_##S`,
/// `cast_##SI##_##SO`)? Each pasted macro parameter stands for one dtype suffix.
/// The dtype suffixes the `.cu` macros paste (longest first where one prefixes another).
const SUFFIXES: &[&str] = &["bf16", "f16", "f32", "i32", "i64"];

fn name_matches(pattern: &str, entry: &str) -> bool {
    let mut rest = entry;
    for piece in pattern.split("##") {
        // Macro parameters are upper-case identifiers (S, S_, SI, SO); anything else is literal.
        if piece.starts_with(|c: char| c.is_ascii_uppercase()) {
            match SUFFIXES.iter().find_map(|sfx| rest.strip_prefix(sfx)) {
                Some(r) => rest = r,
                None => return false,
            }
        } else {
            match rest.strip_prefix(piece) {
                Some(r) => rest = r,
                None => return false,
            }
        }
    }
    rest.is_empty()
}

/// The parameter kinds of `entry` as declared in `kernel`'s source; None when no `__global__`
/// declaration matches or a parameter type is not one of the kinds above.
pub fn signature(kernel: &KernelSource, entry: &str) -> Option<Vec<Param>> {
    let src = kernel.source.replace("\\\n", " ");
    for decl in src.split("__global__").skip(1) {
        let head = decl.trim_start().trim_start_matches("void").trim_start();
        let head = match head.strip_prefix("__launch_bounds__") {
            Some(r) => &r[r.find(')')? + 1..],
            None => head,
        };
        let open = head.find('(')?;
        let name = head[..open].trim();
        if !name_matches(name, entry) {
            continue;
        }
        let close = open + head[open..].find(')')?;
        let params = &head[open + 1..close];
        return params.split(',').map(|p| param_kind(p.trim())).collect();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{kernel, KERNELS};

    #[test]
    fn names_with_macro_pastes_match_only_their_entries() {
        assert!(name_matches("rmsnorm_fwd_##S", "rmsnorm_fwd_bf16"));
        assert!(!name_matches("rmsnorm_fwd_##S", "rmsnorm_bwd_dx_bf16"));
        assert!(name_matches("cast_##SI##_##SO", "cast_f32_bf16"));
        assert!(!name_matches("cast_##SI##_##SO", "cast_f32"));
        assert!(name_matches("attention_fwd_##S_", "attention_fwd_f16"));
        assert!(name_matches("adamw_multi", "adamw_multi"));
        assert!(!name_matches("adamw_##S", "adamw_multi_f32"));
        assert!(!name_matches("adamw_##S", "adamw_multi"));
    }

    #[test]
    fn every_registered_entry_has_a_readable_signature() {
        for k in KERNELS {
            for e in k.entries {
                let sig = signature(k, e).unwrap_or_else(|| panic!("no signature for {e}"));
                assert!(!sig.is_empty(), "{e}");
            }
        }
    }

    #[test]
    fn signatures_read_kinds_in_order() {
        use Param::*;
        let k = kernel("rmsnorm").unwrap();
        assert_eq!(
            signature(k, "rmsnorm_fwd_f32").unwrap(),
            vec![Ptr, Ptr, Ptr, Ptr, I32, I32, F32]
        );
        let c = kernel("cast").unwrap();
        assert_eq!(signature(c, "cast_i64_i32").unwrap(), vec![Ptr, Ptr, I64]);
        assert_eq!(signature(c, "cast_bf16_f16").unwrap(), vec![Ptr, Ptr, I64]);
        let l = kernel("logprobs").unwrap();
        assert_eq!(
            signature(l, "logprobs_fwd_bf16").unwrap(),
            vec![Ptr, Ptr, Ptr, Ptr, I32, I32, I64, I32, F32]
        );
        assert!(signature(l, "no_such_entry").is_none());
    }
}
