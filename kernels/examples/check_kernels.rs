//! CI resource check (run by scripts/check-kernels.sh): compiles every kernel through
//! `kernels::compile::compile_ptx` (the backend's own path) for each `--arch`, assembles the PTX
//! with `ptxas -v`, prints one row per entry point and exits non-zero on a compile error, an
//! entry list that disagrees with ptxas, a source signature that disagrees with the PTX, or a
//! spill in a kernel marked spill-free.
//!
//! usage: check_kernels --ptxas PATH --out DIR --arch sm_80 --arch sm_90a

use kernels::{compile, ptxas, signature, KERNELS};
use std::path::PathBuf;
use std::process::{Command, ExitCode};

struct Args {
    ptxas: PathBuf,
    out: PathBuf,
    archs: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut ptxas, mut out, mut archs) = (None, None, Vec::new());
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--ptxas" => ptxas = Some(PathBuf::from(val()?)),
            "--out" => out = Some(PathBuf::from(val()?)),
            "--arch" => archs.push(val()?),
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    if archs.is_empty() {
        return Err("give at least one --arch (e.g. sm_90a)".into());
    }
    Ok(Args {
        ptxas: ptxas.ok_or("--ptxas is required")?,
        out: out.ok_or("--out is required")?,
        archs,
    })
}

fn run(args: &Args) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let version = compile::nvrtc_version().map_err(|e| e.to_string())?;
    println!(
        "NVRTC {}.{}; ptxas {}",
        version.0,
        version.1,
        args.ptxas.display()
    );
    println!(
        "{:<14} {:<26} {:<7} {:>5} {:>7} {:>6} {:>7} {:>6}",
        "kernel", "entry", "arch", "regs", "smem", "stack", "spill", "ok"
    );
    let mut failures = Vec::new();
    for sm in &args.archs {
        let Some(virt) = sm.strip_prefix("sm_") else {
            return Err(format!("--arch {sm}: expected sm_XY"));
        };
        let arch = format!("compute_{virt}");
        for k in KERNELS {
            let ptx = match compile::compile_ptx(k, &arch) {
                Ok(p) => p,
                Err(e) => {
                    failures.push(e.to_string());
                    continue;
                }
            };
            // The launchers are checked against the source's signatures at run time; check those
            // readings against what NVRTC compiled.
            for (entry, params) in ptxas::ptx_entry_params(&ptx) {
                let want: Option<Vec<&str>> = signature::signature(k, &entry)
                    .map(|s| s.iter().map(|p| p.ptx_type()).collect());
                if want.as_deref()
                    != Some(
                        params
                            .iter()
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .as_slice(),
                    )
                {
                    failures.push(format!(
                        "{entry}: PTX parameters {params:?}, source signature reads {want:?}"
                    ));
                }
            }
            let ptx_path = args.out.join(format!("{}.{sm}.ptx", k.name));
            std::fs::write(&ptx_path, &ptx).map_err(|e| format!("{}: {e}", ptx_path.display()))?;
            let cubin = args.out.join(format!("{}.{sm}.cubin", k.name));
            let res = Command::new(&args.ptxas)
                .arg("-v")
                .arg(format!("--gpu-name={sm}"))
                .arg("-o")
                .arg(&cubin)
                .arg(&ptx_path)
                .output()
                .map_err(|e| format!("running {}: {e}", args.ptxas.display()))?;
            let report = String::from_utf8_lossy(&res.stderr);
            if !res.status.success() {
                failures.push(format!("ptxas failed on {}.cu for {sm}:\n{report}", k.name));
                continue;
            }
            let usage = ptxas::parse_report(&report);
            let mut seen: Vec<&str> = usage.iter().map(|u| u.entry.as_str()).collect();
            let mut listed: Vec<&str> = k.entries.to_vec();
            seen.sort_unstable();
            listed.sort_unstable();
            if seen != listed {
                failures.push(format!(
                    "{}.cu for {sm}: ptxas saw entries {seen:?}, the registry lists {listed:?}",
                    k.name
                ));
            }
            for u in &usage {
                let bad = k.spill_free && u.spills();
                println!(
                    "{:<14} {:<26} {:<7} {:>5} {:>7} {:>6} {:>7} {:>6}",
                    k.name,
                    u.entry,
                    sm,
                    u.registers,
                    u.shared_bytes,
                    u.stack_bytes,
                    u.spill_store_bytes + u.spill_load_bytes,
                    if bad { "SPILL" } else { "ok" }
                );
                if bad {
                    failures.push(format!(
                        "{} ({sm}) is marked spill-free but spills {} bytes stored, {} loaded",
                        u.entry, u.spill_store_bytes, u.spill_load_bytes
                    ));
                }
            }
        }
    }
    Ok(failures)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("check_kernels: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(f) if f.is_empty() => {
            println!("check_kernels: all kernels compiled, no spills where forbidden");
            ExitCode::SUCCESS
        }
        Ok(f) => {
            for e in &f {
                eprintln!("FAIL: {e}");
            }
            eprintln!("check_kernels: {} failure(s)", f.len());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("check_kernels: {e}");
            ExitCode::FAILURE
        }
    }
}
