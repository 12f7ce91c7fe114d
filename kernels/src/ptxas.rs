//! Reads `ptxas -v` reports: per entry point, registers, shared memory and spills. Used by the CI
//! resource check (`examples/check_kernels.rs`); pure text, so it needs no CUDA library.

/// Resources ptxas reported for one entry point on one architecture.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryUsage {
    pub entry: String,
    pub arch: String,
    pub registers: u32,
    pub shared_bytes: u64,
    pub stack_bytes: u64,
    pub spill_store_bytes: u64,
    pub spill_load_bytes: u64,
}

impl EntryUsage {
    pub fn spills(&self) -> bool {
        self.spill_store_bytes > 0 || self.spill_load_bytes > 0
    }
}

/// The number written just before `unit` in `line` ("12 bytes spill stores" -> 12).
fn number_before(line: &str, unit: &str) -> Option<u64> {
    let at = line.find(unit)?;
    line[..at].split_whitespace().last()?.parse().ok()
}

/// Parses the whole stderr of `ptxas -v` into one record per compiled entry function.
pub fn parse_report(report: &str) -> Vec<EntryUsage> {
    let mut out: Vec<EntryUsage> = Vec::new();
    for line in report.lines() {
        let line = line.trim();
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let mut parts = rest.split('\'');
            let entry = parts.next().unwrap_or_default().to_string();
            let arch = parts.nth(1).unwrap_or_default().to_string();
            out.push(EntryUsage {
                entry,
                arch,
                ..Default::default()
            });
            continue;
        }
        let Some(cur) = out.last_mut() else { continue };
        if line.contains("bytes stack frame") {
            cur.stack_bytes = number_before(line, "bytes stack frame").unwrap_or(0);
            cur.spill_store_bytes = number_before(line, "bytes spill stores").unwrap_or(0);
            cur.spill_load_bytes = number_before(line, "bytes spill loads").unwrap_or(0);
        } else if line.contains("Used ") && line.contains("registers") {
            cur.registers = number_before(line, "registers").unwrap_or(0) as u32;
            cur.shared_bytes = number_before(line, "bytes smem").unwrap_or(0);
        }
    }
    out
}

/// Each `.entry` of a PTX module with its parameter types in order (`.u64`, `.u32`, `.f32`, ...).
pub fn ptx_entry_params(ptx: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = ptx;
    while let Some(at) = rest.find(".entry ") {
        rest = &rest[at + ".entry ".len()..];
        let Some(open) = rest.find('(') else { break };
        let name = rest[..open].trim().to_string();
        let close = rest[open..].find(')').map_or(rest.len(), |c| open + c);
        let params = rest[open + 1..close]
            .split(',')
            .filter_map(|p| p.split_whitespace().nth(1).map(str::to_string))
            .collect();
        out.push((name, params));
        rest = &rest[close..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'rmsnorm_fwd_bf16' for 'sm_90a'
ptxas info    : Function properties for rmsnorm_fwd_bf16
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 18 registers, used 1 barriers, 128 bytes smem, 400 bytes cmem[0]
ptxas info    : Compiling entry function 'attention_fwd_f32' for 'sm_90a'
ptxas info    : Function properties for attention_fwd_f32
    48 bytes stack frame, 40 bytes spill stores, 36 bytes spill loads
ptxas info    : Used 255 registers, used 0 barriers, 428 bytes cmem[0]
";

    #[test]
    fn reads_each_entry() {
        let r = parse_report(SAMPLE);
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0],
            EntryUsage {
                entry: "rmsnorm_fwd_bf16".into(),
                arch: "sm_90a".into(),
                registers: 18,
                shared_bytes: 128,
                stack_bytes: 0,
                spill_store_bytes: 0,
                spill_load_bytes: 0,
            }
        );
        assert!(!r[0].spills());
        assert_eq!(r[1].registers, 255);
        assert_eq!(r[1].shared_bytes, 0);
        assert_eq!(
            (
                r[1].stack_bytes,
                r[1].spill_store_bytes,
                r[1].spill_load_bytes
            ),
            (48, 40, 36)
        );
        assert!(r[1].spills());
    }

    #[test]
    fn reads_ptx_entry_parameters() {
        let ptx = ".visible .entry add_f32(\n\t.param .u64 add_f32_param_0,\n\t.param .u32 add_f32_param_1,\n\t.param .f32 add_f32_param_2\n)\n{\n}\n.visible .entry none()\n{\n}\n";
        let e = ptx_entry_params(ptx);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].0, "add_f32");
        assert_eq!(e[0].1, vec![".u64", ".u32", ".f32"]);
        assert_eq!(e[1], ("none".to_string(), vec![]));
    }

    #[test]
    fn empty_report_has_no_entries() {
        assert!(parse_report("").is_empty());
        assert!(parse_report("ptxas info    : 0 bytes gmem\n").is_empty());
    }
}
