//! `swerl bench kernels` through the real binary on the CPU twins at tiny shapes: every op gets
//! a row with a positive time and rate, memory-bound rows carry the copy ceiling, and bad
//! arguments are one-line errors.

use std::process::Command;

fn swerl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_swerl"))
        .args(args)
        .output()
        .expect("run swerl")
}

#[test]
fn cpu_rows_cover_every_op_with_rates_and_ceilings() {
    let out = swerl(&[
        "bench", "kernels", "--device", "cpu", "--size", "tiny", "--reps", "2", "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    for want in [
        "copy (ceiling)",
        "rmsnorm_fwd",
        "rmsnorm_bwd",
        "rope (in place)",
        "embedding_fwd",
        "swiglu_fwd",
        "swiglu_bwd",
        "logprobs_fwd",
        "logprobs_bwd",
        "cast f32->bf16",
        "sum_squares f32",
        "adamw f32",
        "adamw f32+bf16 copy",
        "attention_fwd",
        "attention_bwd",
        "matmul x@W^T",
    ] {
        assert!(names.contains(&want), "no row for {want}: {names:?}");
    }
    for r in &rows {
        let (ms, rate) = (r["ms"].as_f64().unwrap(), r["rate"].as_f64().unwrap());
        assert!(ms > 0.0 && rate > 0.0 && rate.is_finite(), "{r}");
        if r["unit"] == "GB/s" {
            assert!(r["ceiling"].as_f64().unwrap() > 0.0, "{r}");
        }
    }
}

#[test]
fn bad_arguments_are_one_line_errors() {
    for (args, want) in [
        (vec!["--size", "huge"], "--size"),
        (vec!["--size", "tiny", "--device", "tpu"], "--device"),
        (vec!["--size", "tiny", "--dtype", "f8"], "--dtype"),
        (vec!["--size", "tiny", "--reps", "0"], "--reps"),
    ] {
        let mut all = vec!["bench", "kernels"];
        all.extend(args);
        let out = swerl(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want),
            "{all:?}: {err}"
        );
    }
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_says_so() {
    let out = swerl(&["bench", "kernels", "--device", "cuda", "--size", "tiny"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no CUDA"), "{err}");
}
