//! Peak heap use of a tensor-parallel save, measured by a counting global allocator (its own
//! test binary, so nothing else allocates while it measures): saving streams one tensor at a
//! time, so the ranks together hold a few copies of the largest tensor, never the model.

#[path = "../../tests/support/counting_alloc.rs"]
mod counting_alloc;

use model::tp::{run_ranks, TpModel};
use model::{Llama, LlamaConfig};
use runtime::DType;

#[test]
fn tp_save_holds_a_few_tensors_not_the_model() {
    // Many equal layers: the largest tensor is ~1/50 of the model.
    let cfg = LlamaConfig::from_json(serde_json::json!({
        "model_type": "llama", "hidden_size": 128, "intermediate_size": 256,
        "num_hidden_layers": 16, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 32, "vocab_size": 64, "max_position_embeddings": 16, "rms_norm_eps": 1e-5,
    }))
    .unwrap();
    let full = Llama::random(cfg, DType::F32, 3).unwrap();
    let model_bytes: usize = full
        .params
        .tensors()
        .iter()
        .map(|t| t.size_in_bytes())
        .sum();
    let largest = full
        .params
        .tensors()
        .iter()
        .map(|t| t.size_in_bytes())
        .max()
        .unwrap();
    let tp = 2;
    let shards: Vec<TpModel> = (0..tp)
        .map(|r| TpModel::from_full(&full, tp, r).unwrap())
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (saved, left, over) = counting_alloc::measure(|| {
        run_ranks(tp, |mut ctx| {
            let tm = &shards[ctx.rank];
            model::tp::load::save(
                &tm.plan,
                ctx.comm.as_mut(),
                &tm.local.params,
                &out,
                DType::F32,
                None,
            )
        })
    });
    saved.unwrap();
    let extra = left + over;
    // Per rank: the gather buffer, the assembled tensor and (rank 0) its bytes, plus the
    // writer's 1 MiB buffer and the threads' own; assembling the model would take `tp`
    // copies of it.
    let bound = tp * 4 * largest + (2 << 20);
    eprintln!("model {model_bytes} B, largest tensor {largest} B, peak extra {extra} B");
    assert!(bound < model_bytes, "the model is too small to tell");
    assert!(extra <= bound, "peak extra {extra} B > {bound} B");
    assert_eq!(
        Llama::load(&out).unwrap().params.tensors().len(),
        full.params.tensors().len()
    );
}
