//! The fixture model on the CUDA backend against the CPU backend (and the fixture's transformers
//! reference): the forward's logits and loss, and one SFT step (forward, backward, AdamW) whose
//! gradients and updated weights must agree. Each test skips with a printed line when this
//! machine has no CUDA driver, NVRTC or device. Run with `cargo test -p tests --features cuda`.
#![cfg(feature = "cuda")]

mod model_support;

use model::layers::lm_head::shifted_targets;
use model::optim::{AdamW, OptimConfig};
use model::{Activations, GradBuffers, Llama, LlamaParams};
use model_support::*;
use runtime::{Device, Tensor};

const GPU: Device = Device::Cuda(0);

/// True when device 0 opens; otherwise prints why the test is skipped.
fn have_gpu(test: &str) -> bool {
    match runtime::cuda::device(0) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipping {test}: {e}");
            false
        }
    }
}

/// The fixture model on the CPU and the same weights on the GPU.
fn models() -> (Llama, Llama) {
    let cpu = Llama::load(&fixture_dir()).expect("load fixture model");
    let params = cpu.params.to_device(&GPU).expect("weights to the GPU");
    let gpu = Llama::from_params(cpu.config.clone(), params).expect("GPU model");
    assert_eq!(gpu.device, GPU);
    (cpu, gpu)
}

fn rel(test: &str, got: &Tensor, want: &Tensor, tol: f64) {
    let (e, _) = rel_and_abs(got, want);
    eprintln!("{test}: relative error {e:.3e} (tol {tol:.0e})");
    assert!(e <= tol, "{test}: relative error {e} > {tol}");
}

/// Forward + mean next-token loss of the reference batch on `m`'s device.
fn forward(m: &Llama) -> (Activations, Tensor, Tensor, f64) {
    let r = reference();
    let ids = m.ids_tensor(&id_rows(&r["input_ids"])).unwrap();
    let (b, t) = (ids.dim(0), ids.dim(1));
    let targets = shifted_targets(&ids.to_vec::<i64>().unwrap(), b, t, None)
        .unwrap()
        .to_device(&m.device)
        .unwrap();
    let mut acts = Activations::new(&m.config, b, t, false, &m.device).unwrap();
    m.forward(&ids, &mut acts).unwrap();
    let loss = m.loss(&mut acts, &targets).unwrap();
    (acts, ids, targets, loss.mean)
}

#[test]
fn fixture_logits_on_gpu_match_cpu_and_reference() {
    if !have_gpu("fixture_logits_on_gpu_match_cpu_and_reference") {
        return;
    }
    let (cpu, gpu) = models();
    let (ca, _, _, closs) = forward(&cpu);
    let (ga, _, _, gloss) = forward(&gpu);
    assert_eq!(ga.logits.device(), &GPU);
    rel("logits gpu vs cpu", &ga.logits, &ca.logits, 1e-5);
    let err = max_abs_diff(&ga.logits, &reference()["logits"]);
    eprintln!("logits gpu vs reference: max-abs error {err:.3e}");
    assert!(
        err <= 1e-4,
        "logits max-abs error {err} against the reference"
    );
    for (i, (g, c)) in ga
        .hidden_states()
        .iter()
        .zip(ca.hidden_states())
        .enumerate()
    {
        rel(&format!("hidden_states.{i}"), g, c, 1e-5);
    }
    let want = reference()["loss"].to_scalar().unwrap();
    eprintln!("loss cpu {closs} gpu {gloss} reference {want}");
    assert!(
        ((gloss - want) / want).abs() <= 1e-5,
        "loss {gloss} vs {want}"
    );
}

/// One SFT step on `m`: gradients of the mean loss, then AdamW. Returns the gradients.
fn sft_step(m: &mut Llama, opt: &mut AdamW) -> LlamaParams {
    let (mut acts, ids, targets, _) = forward(m);
    let count = targets
        .to_vec::<i64>()
        .unwrap()
        .iter()
        .filter(|&&t| t != model::layers::lm_head::IGNORE)
        .count();
    let (b, t) = (ids.dim(0), ids.dim(1));
    let mut bufs = GradBuffers::new(&m.config, b, t, &m.device).unwrap();
    let mut grads = m.zero_grads().unwrap();
    m.backward(
        &ids,
        &targets,
        &mut acts,
        &mut grads,
        &mut bufs,
        1.0 / count as f32,
    )
    .unwrap();
    opt.step(m, &grads).unwrap();
    grads
}

#[test]
fn one_sft_step_on_gpu_matches_cpu() {
    if !have_gpu("one_sft_step_on_gpu_matches_cpu") {
        return;
    }
    let (mut cpu, mut gpu) = models();
    let before = cpu.params.copy().unwrap();
    let cfg = OptimConfig {
        lr: 1e-3,
        weight_decay: 0.1,
        ..Default::default()
    };
    let mut co = AdamW::new(&cpu, cfg).unwrap();
    let mut go = AdamW::new(&gpu, cfg).unwrap();
    let cg = sft_step(&mut cpu, &mut co);
    let gg = sft_step(&mut gpu, &mut go);
    let names = param_names(&cpu);
    for ((n, g), c) in names.iter().zip(gg.tensors()).zip(cg.tensors()) {
        assert_eq!(g.device(), &GPU, "grad.{n} not on the GPU");
        rel(&format!("grad.{n}"), g, c, 1e-4);
    }
    let all = gpu
        .params
        .tensors()
        .into_iter()
        .zip(cpu.params.tensors())
        .zip(before.tensors());
    for (((g, c), w0), n) in all.zip(&names) {
        rel(&format!("updated {n}"), g, c, 1e-5);
        // The update itself (a few lr-sized steps can flip sign where a gradient is ~0).
        let delta = |t: &Tensor| {
            let (a, b) = (t.to_f32_vec().unwrap(), w0.to_f32_vec().unwrap());
            let d: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
            Tensor::from_vec(d, t.shape()).unwrap()
        };
        rel(&format!("update of {n}"), &delta(g), &delta(c), 5e-2);
    }
}

fn param_names(m: &Llama) -> Vec<String> {
    m.params
        .named(&m.config)
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}
