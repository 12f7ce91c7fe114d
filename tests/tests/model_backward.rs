//! Hand-written backward against transformers' autograd on the fixture: every `grad.<name>`.

mod model_support;

use model::{Llama, LlamaParams};
use model_support::*;

fn grads(m: &Llama, recompute: bool) -> LlamaParams {
    loss_and_grads(m, &id_rows(&reference()["input_ids"]), recompute).1
}

#[test]
fn every_gradient_matches_reference() {
    let m = Llama::load(&fixture_dir()).unwrap();
    let r = reference();
    let g = grads(&m, false);
    let named = g.named(&m.config);
    assert!(!named.is_empty());
    for (name, t) in &named {
        let want = r
            .get(&format!("grad.{name}"))
            .unwrap_or_else(|| panic!("reference lacks grad.{name}"));
        let (rel, abs) = rel_and_abs(t, want);
        assert!(rel <= 1e-4, "grad.{name}: relative error {rel}");
        assert!(abs <= 1e-5, "grad.{name}: max-abs error {abs}");
    }
    let n_ref = r.keys().filter(|k| k.starts_with("grad.")).count();
    assert_eq!(
        n_ref,
        named.len(),
        "reference has gradients we did not compute"
    );
}

#[test]
fn recompute_gives_equal_gradients() {
    let m = Llama::load(&fixture_dir()).unwrap();
    let a = grads(&m, false);
    let b = grads(&m, true);
    for (x, y) in a.tensors().iter().zip(b.tensors()) {
        assert_eq!(x.to_f32_vec().unwrap(), y.to_f32_vec().unwrap());
    }
}

#[test]
fn tied_embedding_gradient_is_the_sum_of_both_uses() {
    // An untied model whose lm_head equals the embedding computes the same function as the
    // tied model, so the tied gradient must be d/d embed + d/d lm_head of the untied one.
    let m = Llama::load(&fixture_dir()).unwrap();
    let mut untied_params = m.params.clone();
    untied_params.lm_head = Some(m.params.embed.copy().unwrap());
    let untied = Llama::from_params(m.config.clone(), untied_params.clone()).unwrap();
    let mut cfg_json = m.config.to_json(runtime::DType::F32);
    cfg_json["tie_word_embeddings"] = serde_json::json!(true);
    let tied_cfg = model::LlamaConfig::from_json(cfg_json).unwrap();
    let mut tied_params = untied_params;
    tied_params.lm_head = None;
    let tied = Llama::from_params(tied_cfg, tied_params).unwrap();

    let gu = grads(&untied, false);
    let gt = grads(&tied, false);
    assert!(gt.lm_head.is_none());
    let sum: Vec<f32> = gu
        .embed
        .to_f32_vec()
        .unwrap()
        .iter()
        .zip(gu.lm_head.as_ref().unwrap().to_f32_vec().unwrap())
        .map(|(a, b)| a + b)
        .collect();
    let sum = runtime::Tensor::from_vec(sum, gt.embed.shape()).unwrap();
    let (rel, _) = rel_and_abs(&gt.embed, &sum);
    assert!(rel <= 1e-6, "tied embedding gradient relative error {rel}");
    let (rel, _) = rel_and_abs(&gt.layers[0].wq, &gu.layers[0].wq);
    assert!(
        rel <= 1e-6,
        "layer gradients differ between tied and untied: {rel}"
    );
}
