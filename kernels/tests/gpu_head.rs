//! The chunked LM-head + log-probs path against the runtime's CPU ops composed the same way
//! (matmul into logits of the same dtype, token_logprobs, matmuls back), on fresh random inputs.
//! Skips (with a printed reason) without a GPU.
#![cfg(feature = "cuda")]

mod common;

use common::*;
use half::bf16;
use kernels::chunked::{head_logprobs_bwd, head_logprobs_fwd, HeadSpec};
use kernels::gemm::{Gemm, GemmElem};
use kernels::Gpu;
use runtime::{ops, MatmulParams, Rng};

fn head_case<E: Host + GemmElem>(
    g: &Gpu,
    gemm: &Gemm,
    rng: &mut Rng,
    tokens: usize,
    d: usize,
    vocab: usize,
    chunk: usize,
) {
    let temperature = 0.8;
    let ignore = Some(-100i64);
    let (hc, hd) = pair::<E>(g, &uniform(rng, tokens * d, 1.0), &[tokens, d]);
    let (wc, wd) = pair::<E>(g, &uniform(rng, vocab * d, 0.5), &[vocab, d]);
    let targets: Vec<i32> = (0..tokens)
        .map(|t| {
            if t % 5 == 2 {
                -100
            } else {
                rng.below(vocab as u64) as i32
            }
        })
        .collect();
    let (tc, td) = ids_pair(g, &targets, &[tokens]);
    let (gc, gd) = pair::<f32>(g, &uniform(rng, tokens, 1.0), &[tokens]);
    let (mut dwc, mut dwd) = pair::<f32>(g, &uniform(rng, vocab * d, 1.0), &[vocab, d]);

    // CPU: the full logits, which the GPU path never holds.
    let mut logits = cpu_zeros::<E>(&[tokens, vocab]);
    let nt = MatmulParams {
        trans_b: true,
        ..Default::default()
    };
    ops::matmul(&mut logits, &hc, &wc, &nt).unwrap();
    let (mut lpc, mut lsec) = (cpu_zeros::<f32>(&[tokens]), cpu_zeros::<f32>(&[tokens]));
    ops::token_logprobs_fwd(&mut lpc, &mut lsec, &logits, &tc, temperature, ignore).unwrap();
    let mut dl = cpu_zeros::<E>(&[tokens, vocab]);
    ops::token_logprobs_bwd(&mut dl, &gc, &logits, &lsec, &tc, temperature, ignore).unwrap();
    let mut dhc = cpu_zeros::<E>(&[tokens, d]);
    ops::matmul(&mut dhc, &dl, &wc, &MatmulParams::default()).unwrap();
    let acc = MatmulParams {
        trans_a: true,
        beta: 1.0,
        ..Default::default()
    };
    ops::matmul(&mut dwc, &dl, &hc, &acc).unwrap();

    let s = HeadSpec {
        tokens,
        d,
        vocab,
        chunk,
        ignore_index: ignore,
        temperature,
    };
    let mut scratch = poisoned::<E>(g, chunk.min(tokens) * vocab);
    let (mut lp, mut lse) = (poisoned::<f32>(g, tokens), poisoned::<f32>(g, tokens));
    head_logprobs_fwd(g, gemm, &s, &hd, &wd, &td, &mut scratch, &mut lp, &mut lse).unwrap();
    let mut dh = poisoned::<E>(g, tokens * d);
    head_logprobs_bwd(
        g,
        gemm,
        &s,
        &hd,
        &wd,
        &td,
        &lse,
        &gd,
        1.0,
        &mut scratch,
        &mut dh,
        &mut dwd,
    )
    .unwrap();
    let what = format!("head {} tokens={tokens} chunk={chunk}", E::SUFFIX);
    // Logits rounded to E before the softmax: log-probs carry E's rounding.
    let tol = E::TOL.max(1e-5);
    assert_close(&format!("{what} logp"), &down(g, &lp), &cpu(&lpc), tol);
    assert_close(&format!("{what} lse"), &down(g, &lse), &cpu(&lsec), tol);
    assert_close(&format!("{what} dhidden"), &down(g, &dh), &cpu(&dhc), tol);
    assert_close(&format!("{what} dw"), &down(g, &dwd), &cpu(&dwc), tol);
}

#[test]
fn chunked_head_logprobs_match_cpu() {
    let Some(g) = gpu() else { return };
    let gemm = Gemm::new(&g).unwrap();
    let mut rng = fresh_rng("head");
    for (tokens, d, vocab, chunk) in [
        (1, 8, 10, 4),
        (37, 64, 1000, 8),
        (64, 128, 5003, 64),
        (50, 32, 300, 1000),
    ] {
        head_case::<f32>(&g, &gemm, &mut rng, tokens, d, vocab, chunk);
        head_case::<bf16>(&g, &gemm, &mut rng, tokens, d, vocab, chunk);
    }
    let s = HeadSpec {
        tokens: 4,
        d: 2,
        vocab: 3,
        chunk: 0,
        ignore_index: None,
        temperature: 1.0,
    };
    let (h, w, t) = (up(&g, &[0f32; 8]), up(&g, &[0f32; 6]), up(&g, &[0i32; 4]));
    let (mut sc, mut lp, mut lse) = (up(&g, &[0f32; 12]), up(&g, &[0f32; 4]), up(&g, &[0f32; 4]));
    let e = head_logprobs_fwd(&g, &gemm, &s, &h, &w, &t, &mut sc, &mut lp, &mut lse)
        .unwrap_err()
        .to_string();
    assert!(e.contains("chunk is 0"), "{e}");
}
