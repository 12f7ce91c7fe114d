//! Tensor parallelism (Megatron-LM sharding over in-process ranks) against the single-process
//! model on the fixture: logits, log-probs, loss and every gradient at each TP degree the
//! fixture's head counts allow; sharded load -> save; clear errors; communication volume.

mod model_support;

use model::layers::lm_head::{shifted_targets, IGNORE};
use model::optim::{AdamW, OptimConfig};
use model::tp::{gather, run_ranks, CommVolume, CountingComm, Replicas, ShardPlan, TpModel};
use model::{Activations, GenerateConfig, GradBuffers, Llama, LlamaParams, ModelError};
use model_support::*;
use runtime::{ops, DType, SamplingParams, Tensor};

const REL: f64 = 1e-5;
const TEMPERATURE: f32 = 0.7;

/// What one run (single process or one TP rank) produces.
struct Outputs {
    /// `[B, T, V]` (single) or this rank's `[B, T, V/tp]`.
    logits: Tensor,
    loss: f64,
    /// Per-token log-probs at [`TEMPERATURE`].
    logp: Tensor,
    /// Gradients of the mean loss (full shape: single, or gathered from the ranks).
    loss_grads: LlamaParams,
    /// Gradients of `sum(w * logp)` at [`TEMPERATURE`] (the policy-gradient path).
    logp_grads: LlamaParams,
    /// This rank's own norm-weight gradients of the loss (`input_norm` per layer, then `norm`).
    local_norm_grads: Vec<Tensor>,
}

fn ids(m: &Llama) -> Tensor {
    m.ids_tensor(&id_rows(&reference()["input_ids"])).unwrap()
}

fn targets(ids: &Tensor) -> Tensor {
    let (b, t) = (ids.dim(0), ids.dim(1));
    shifted_targets(&ids.to_vec::<i64>().unwrap(), b, t, None).unwrap()
}

/// Fixed per-token weights for the log-prob loss (what GRPO feeds back as d loss / d logp).
fn dlogp(targets: &Tensor) -> Tensor {
    let v: Vec<f32> = targets
        .to_vec::<i64>()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            if t == IGNORE {
                0.0
            } else {
                ((i % 7) as f32 - 3.0) * 0.1
            }
        })
        .collect();
    Tensor::from_vec(v, targets.shape()).unwrap()
}

fn norm_grads(g: &LlamaParams) -> Vec<Tensor> {
    let mut v: Vec<Tensor> = g.layers.iter().map(|l| l.input_norm.clone()).collect();
    v.extend(g.layers.iter().map(|l| l.post_attn_norm.clone()));
    v.push(g.norm.clone());
    v
}

fn single(m: &Llama, recompute: bool) -> Outputs {
    let ids = ids(m);
    let tg = targets(&ids);
    let (b, t) = (ids.dim(0), ids.dim(1));
    let mut acts = Activations::new(&m.config, b, t, recompute, &m.device).unwrap();
    let mut bufs = GradBuffers::new(&m.config, b, t, &m.device).unwrap();
    let mut loss_grads = m.zero_grads().unwrap();
    m.forward(&ids, &mut acts).unwrap();
    let loss = m.loss(&mut acts, &tg).unwrap();
    let scale = 1.0 / loss.count as f32;
    m.backward(&ids, &tg, &mut acts, &mut loss_grads, &mut bufs, scale)
        .unwrap();

    m.forward(&ids, &mut acts).unwrap();
    let mut logp = Tensor::zeros(&[b, t], DType::F32, &m.device).unwrap();
    ops::token_logprobs_fwd(
        &mut logp,
        &mut acts.lse,
        &acts.logits,
        &tg,
        TEMPERATURE,
        Some(IGNORE),
    )
    .unwrap();
    ops::token_logprobs_bwd(
        &mut bufs.d_logits,
        &dlogp(&tg),
        &acts.logits,
        &acts.lse,
        &tg,
        TEMPERATURE,
        Some(IGNORE),
    )
    .unwrap();
    let mut logp_grads = m.zero_grads().unwrap();
    m.backward_from_dlogits(&ids, &mut acts, &mut logp_grads, &mut bufs)
        .unwrap();
    Outputs {
        logits: acts.logits,
        loss: loss.mean,
        logp,
        local_norm_grads: norm_grads(&loss_grads),
        loss_grads,
        logp_grads,
    }
}

/// One rank's run; gradients are gathered to full shape (a collective, so every rank does it).
fn rank_run(
    tm: &TpModel,
    ids: &Tensor,
    comm: &mut dyn runtime::comm::Communicator,
    recompute: bool,
) -> model::Result<Outputs> {
    let tg = targets(ids);
    let (b, t) = (ids.dim(0), ids.dim(1));
    let mut acts = tm.activations(b, t, recompute)?;
    let mut bufs = tm.grad_buffers(b, t)?;
    let mut loss_grads = tm.zero_grads()?;
    tm.forward(ids, &mut acts, comm)?;
    let loss = tm.loss(&mut acts, &tg, comm)?;
    let scale = 1.0 / loss.count as f32;
    tm.backward(ids, &tg, &mut acts, &mut loss_grads, &mut bufs, scale, comm)?;
    let local_norm_grads = norm_grads(&loss_grads);
    let gathered = gather(&tm.plan, comm, &loss_grads, Replicas::Partial)?;
    // After summing the replicated K/V copies, the copies agree and gather takes one.
    tm.reduce_replicated_grads(&mut loss_grads, comm)?;
    let synced = gather(&tm.plan, comm, &loss_grads, Replicas::Identical)?;
    for ((n, a), b) in gathered.named(&tm.plan.full).iter().zip(synced.tensors()) {
        assert_eq!(
            a.to_f32_vec()?,
            b.to_f32_vec()?,
            "rank {}: {n} differs after reduce_replicated_grads",
            tm.plan.rank
        );
    }

    tm.forward(ids, &mut acts, comm)?;
    let mut logp = Tensor::zeros(&[b, t], DType::F32, &runtime::Device::Cpu)?;
    tm.token_logprobs(&mut acts, &tg, TEMPERATURE, &mut logp, comm)?;
    tm.logprobs_backward(&acts, &tg, TEMPERATURE, &dlogp(&tg), &mut bufs)?;
    let mut logp_grads = tm.zero_grads()?;
    tm.backward_from_dlogits(ids, &mut acts, &mut logp_grads, &mut bufs, comm)?;
    Ok(Outputs {
        logits: acts.logits,
        loss: loss.mean,
        logp,
        loss_grads: gathered,
        logp_grads: gather(&tm.plan, comm, &logp_grads, Replicas::Partial)?,
        local_norm_grads,
    })
}

fn assert_close(what: &str, got: &Tensor, want: &Tensor) {
    let (rel, abs) = rel_and_abs(got, want);
    assert!(rel <= REL, "{what}: relative error {rel} (max abs {abs})");
}

/// Concatenates the ranks' `[B, T, V/tp]` logits along the vocabulary.
fn concat_vocab(parts: &[&Tensor]) -> Tensor {
    let vl = parts[0].dim(2);
    let rows = parts[0].numel() / vl;
    let data: Vec<Vec<f32>> = parts.iter().map(|p| p.to_f32_vec().unwrap()).collect();
    let mut out = Vec::with_capacity(rows * vl * parts.len());
    for r in 0..rows {
        for d in &data {
            out.extend_from_slice(&d[r * vl..(r + 1) * vl]);
        }
    }
    let s = parts[0].shape();
    Tensor::from_vec(out, &[s[0], s[1], vl * parts.len()]).unwrap()
}

fn compare(tp: usize, want: &Outputs, got: &[Outputs], cfg: &model::LlamaConfig) {
    let parts: Vec<&Tensor> = got.iter().map(|o| &o.logits).collect();
    assert_close(
        &format!("tp={tp} logits"),
        &concat_vocab(&parts),
        &want.logits,
    );
    for (r, o) in got.iter().enumerate() {
        let rel = (o.loss - want.loss).abs() / want.loss.abs();
        assert!(
            rel <= REL,
            "tp={tp} rank {r}: loss {} vs {}",
            o.loss,
            want.loss
        );
        assert_close(&format!("tp={tp} rank {r} logp"), &o.logp, &want.logp);
        for (i, (a, b)) in o
            .local_norm_grads
            .iter()
            .zip(&want.local_norm_grads)
            .enumerate()
        {
            assert_close(&format!("tp={tp} rank {r} norm grad #{i}"), a, b);
        }
        for (kind, g, w) in [
            ("loss", &o.loss_grads, &want.loss_grads),
            ("logp", &o.logp_grads, &want.logp_grads),
        ] {
            for ((name, a), b) in g.named(cfg).iter().zip(w.tensors()) {
                assert_close(&format!("tp={tp} rank {r} {kind} grad.{name}"), a, b);
            }
        }
    }
}

/// The degrees in {2, 4} this config splits into; prints the skipped ones and why.
fn degrees(cfg: &model::LlamaConfig) -> Vec<usize> {
    [2, 4]
        .into_iter()
        .filter(|&tp| match ShardPlan::new(cfg, tp, 0) {
            Ok(_) => true,
            Err(e) => {
                println!("skipping tp={tp}: {e}");
                false
            }
        })
        .collect()
}

#[test]
fn parallel_tp_matches_single_rank_on_the_fixture() {
    let dir = fixture_dir();
    let m = Llama::load(&dir).unwrap();
    let want = single(&m, false);
    let ids = ids(&m);
    let tps = degrees(&m.config);
    assert!(
        !tps.is_empty(),
        "the fixture allows no TP degree in {{2, 4}}"
    );
    for tp in tps {
        let plan = ShardPlan::new(&m.config, tp, 0).unwrap();
        println!("tp={tp}: KV heads {:?}", plan.kv);
        let got = run_ranks(tp, |mut ctx| {
            let tm = TpModel::load(&dir, DType::F32, tp, ctx.rank)?;
            rank_run(&tm, &ids, ctx.comm.as_mut(), false)
        })
        .unwrap();
        compare(tp, &want, &got, &m.config);
    }
}

#[test]
fn parallel_tp_tied_embeddings_and_recompute() {
    let m = Llama::load(&fixture_dir()).unwrap();
    let mut cfg_json = m.config.to_json(DType::F32);
    cfg_json["tie_word_embeddings"] = serde_json::json!(true);
    let cfg = model::LlamaConfig::from_json(cfg_json).unwrap();
    let mut params = m.params.clone();
    params.lm_head = None;
    let tied = Llama::from_params(cfg.clone(), params).unwrap();
    let want = single(&tied, false);
    let ids = ids(&tied);
    for tp in degrees(&cfg) {
        let got = run_ranks(tp, |mut ctx| {
            let tm = TpModel::from_full(&tied, tp, ctx.rank)?;
            assert!(tm.local.params.lm_head.is_none());
            rank_run(&tm, &ids, ctx.comm.as_mut(), tp == 2)
        })
        .unwrap();
        compare(tp, &want, &got, &cfg);
    }
}

#[test]
fn parallel_tp_bad_degree_is_a_clear_error() {
    let dir = fixture_dir();
    let e = TpModel::load(&dir, DType::F32, 3, 0).err().unwrap();
    assert!(matches!(e, ModelError::TensorParallel(_)), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("num_attention_heads") && msg.contains("tp=3"),
        "{msg}"
    );

    // 6 query heads over 3 KV heads at tp=2: KV heads neither split nor replicate.
    let m = Llama::load(&dir).unwrap();
    let mut j = m.config.to_json(DType::F32);
    j["num_attention_heads"] = serde_json::json!(6);
    j["num_key_value_heads"] = serde_json::json!(3);
    j["head_dim"] = serde_json::json!(16);
    let cfg = model::LlamaConfig::from_json(j).unwrap();
    let odd = Llama::random(cfg, DType::F32, 1).unwrap();
    let e = TpModel::from_full(&odd, 2, 0).err().unwrap().to_string();
    assert!(
        e.contains("num_key_value_heads 3") && e.contains("tp=2"),
        "{e}"
    );
    // Through the group runner: every rank fails the same way, and the error comes back.
    let e = run_ranks(3, |ctx| {
        TpModel::load(&dir, DType::F32, 3, ctx.rank).map(|_| ())
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("num_attention_heads"), "{e}");
}

#[test]
fn parallel_tp_sharded_load_then_save_gives_the_original_tensors() {
    let dir = fixture_dir();
    let original = model::safetensors_io::read_all(&dir.join("model.safetensors")).unwrap();
    let cfg = Llama::load(&dir).unwrap().config;
    for tp in degrees(&cfg) {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join(format!("tp{tp}"));
        run_ranks(tp, |mut ctx| {
            let tm = TpModel::load(&dir, DType::F32, tp, ctx.rank)?;
            model::tp::load::save(
                &tm.plan,
                ctx.comm.as_mut(),
                &tm.local.params,
                &out,
                DType::F32,
                Some(&dir),
            )
        })
        .unwrap();
        let saved = model::safetensors_io::read_all(&out.join("model.safetensors")).unwrap();
        assert_eq!(
            saved.keys().collect::<Vec<_>>(),
            original.keys().collect::<Vec<_>>(),
            "tp={tp}: tensor names"
        );
        for (name, t) in &original {
            let s = &saved[name];
            assert_eq!(s.shape(), t.shape(), "tp={tp}: {name} shape");
            assert_eq!(s.dtype(), t.dtype(), "tp={tp}: {name} dtype");
            assert_eq!(
                s.to_f32_vec().unwrap(),
                t.to_f32_vec().unwrap(),
                "tp={tp}: {name} values"
            );
        }
        let back = Llama::load(&out).unwrap();
        assert_eq!(back.config, cfg, "tp={tp}: config");
        assert!(out.join("tokenizer.json").exists());
    }
}

#[test]
fn parallel_tp_comm_volume_matches_the_model() {
    let dir = fixture_dir();
    let m = Llama::load(&dir).unwrap();
    let ids = ids(&m);
    let (b, t) = (ids.dim(0), ids.dim(1));
    let tp = degrees(&m.config)[0];
    let counts = run_ranks(tp, |mut ctx| {
        let mut comm = CountingComm::new(ctx.comm.as_mut());
        let tm = TpModel::load(&dir, DType::F32, tp, ctx.rank)?;
        let tg = targets(&ids);
        let mut acts = tm.activations(b, t, false)?;
        let mut bufs = tm.grad_buffers(b, t)?;
        let mut g = tm.zero_grads()?;
        tm.forward(&ids, &mut acts, &mut comm)?;
        let loss = tm.loss(&mut acts, &tg, &mut comm)?;
        tm.backward(
            &ids,
            &tg,
            &mut acts,
            &mut g,
            &mut bufs,
            1.0 / loss.count as f32,
            &mut comm,
        )?;
        Ok(comm.counts)
    })
    .unwrap();
    let want = CommVolume::training_step(&m.config, b, t, false);
    println!(
        "tp={tp}, [B, T] = [{b}, {t}], hidden {}: {want:?}",
        m.config.hidden_size
    );
    for (r, c) in counts.iter().enumerate() {
        println!("rank {r} measured: {c:?}");
        assert_eq!(c.all_reduce_bytes, want.total_all_reduce_bytes, "rank {r}");
        assert_eq!(c.all_reduce_calls, want.total_all_reduce_calls, "rank {r}");
        assert_eq!(c.all_gather_bytes, want.loss_all_gather_bytes, "rank {r}");
        assert_eq!(c.all_gather_calls, 1, "rank {r}");
    }
}

#[test]
fn parallel_tp_failing_rank_surfaces_its_own_error() {
    let dir = fixture_dir();
    let m = Llama::load(&dir).unwrap();
    let ids = ids(&m);
    let tp = degrees(&m.config)[0];
    let started = std::time::Instant::now();
    let e = run_ranks(tp, |mut ctx| {
        if ctx.rank == 1 {
            return Err(ModelError::Invalid("rank 1 gave up".into()));
        }
        let tm = TpModel::load(&dir, DType::F32, tp, ctx.rank)?;
        let mut acts = tm.activations(ids.dim(0), ids.dim(1), false)?;
        tm.forward(&ids, &mut acts, ctx.comm.as_mut())
    })
    .unwrap_err();
    assert!(e.to_string().contains("rank 1 gave up"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn parallel_tp_generate_matches_single_rank() {
    let dir = fixture_dir();
    let m = Llama::load(&dir).unwrap();
    let r = reference();
    let prompt = id_rows(&r["greedy.prompt"]).remove(0);
    let want_greedy = id_rows(&r["greedy.output"]).remove(0);
    let greedy = GenerateConfig::greedy(want_greedy.len() - prompt.len(), vec![]);
    // Different-length prompts, sampled: exercises padding, compaction and the shared RNG.
    let prompts = vec![prompt.clone(), prompt[..5].to_vec(), prompt[3..].to_vec()];
    let sampled = GenerateConfig {
        max_new_tokens: 9,
        sampling: SamplingParams {
            temperature: 0.8,
            top_k: 50,
            top_p: 0.95,
        },
        seed: 7,
        eos_token_ids: vec![],
    };
    let want_sampled = m.generate(&prompts, &sampled).unwrap();
    for tp in degrees(&m.config) {
        let got = run_ranks(tp, |mut ctx| {
            let tm = TpModel::load(&dir, DType::F32, tp, ctx.rank)?;
            let g = tm.generate(std::slice::from_ref(&prompt), &greedy, ctx.comm.as_mut())?;
            let s = tm.generate(&prompts, &sampled, ctx.comm.as_mut())?;
            Ok((g, s))
        })
        .unwrap();
        for (rank, (g, s)) in got.iter().enumerate() {
            let full: Vec<u32> = prompt.iter().chain(&g[0]).copied().collect();
            assert_eq!(full, want_greedy, "tp={tp} rank {rank}: greedy decode");
            assert_eq!(s, &want_sampled, "tp={tp} rank {rank}: sampled decode");
        }
    }
}

#[test]
fn parallel_tp_optimizer_step_matches_single_rank() {
    let dir = fixture_dir();
    let m = Llama::load(&dir).unwrap();
    let ids = ids(&m);
    let tg = targets(&ids);
    let (b, t) = (ids.dim(0), ids.dim(1));
    // Adam's first step is lr * g / (|g| + eps): with a tiny eps it turns the rounding noise
    // of near-zero gradient entries into whole-lr differences, so eps is large enough here
    // for the update to follow the gradient smoothly.
    let cfg = OptimConfig {
        lr: 1e-2,
        eps: 1e-3,
        weight_decay: 0.1,
        max_grad_norm: Some(0.05),
        ..OptimConfig::default()
    };
    let mut single = Llama::load(&dir).unwrap();
    let (_, g) = loss_and_grads(&single, &id_rows(&ids), false);
    let want = AdamW::new(&single, cfg)
        .unwrap()
        .step(&mut single, &g)
        .unwrap();
    assert!(want.clip_scale < 1.0, "the test wants clipping: {want:?}");
    for tp in degrees(&m.config) {
        let got = run_ranks(tp, |mut ctx| {
            let comm = ctx.comm.as_mut();
            let mut tm = TpModel::load(&dir, DType::F32, tp, ctx.rank)?;
            let mut acts = tm.activations(b, t, false)?;
            let mut bufs = tm.grad_buffers(b, t)?;
            let mut grads = tm.zero_grads()?;
            tm.forward(&ids, &mut acts, comm)?;
            let loss = tm.loss(&mut acts, &tg, comm)?;
            let scale = 1.0 / loss.count as f32;
            tm.backward(&ids, &tg, &mut acts, &mut grads, &mut bufs, scale, comm)?;
            tm.reduce_replicated_grads(&mut grads, comm)?;
            let norm = tm.grad_norm(&grads, comm)?;
            let mut opt = AdamW::new(&tm.local, cfg)?;
            let stats = opt.step_with_norm(&mut tm.local, &grads, cfg.lr, norm)?;
            let params = gather(&tm.plan, comm, &tm.local.params, Replicas::Identical)?;
            Ok((stats, params))
        })
        .unwrap();
        for (rank, (stats, params)) in got.iter().enumerate() {
            let rel = (stats.grad_norm - want.grad_norm).abs() / want.grad_norm;
            assert!(
                rel <= REL,
                "tp={tp} rank {rank}: grad norm {stats:?} vs {want:?}"
            );
            assert!((stats.clip_scale - want.clip_scale).abs() <= 1e-5 * want.clip_scale);
            for ((name, a), w) in params.named(&m.config).iter().zip(single.params.tensors()) {
                assert_close(&format!("tp={tp} rank {rank} updated {name}"), a, w);
            }
        }
    }
}

#[test]
fn parallel_tp_bf16_shards_are_slices_of_the_bf16_model() {
    let dir = fixture_dir();
    let m = Llama::load_as(&dir, DType::BF16).unwrap();
    let tp = degrees(&m.config)[0];
    let got = run_ranks(tp, |mut ctx| {
        let tm = TpModel::load(&dir, DType::BF16, tp, ctx.rank)?;
        assert!(tm
            .local
            .params
            .tensors()
            .iter()
            .all(|t| t.dtype() == DType::BF16));
        gather(
            &tm.plan,
            ctx.comm.as_mut(),
            &tm.local.params,
            Replicas::Identical,
        )
    })
    .unwrap();
    for ((name, a), b) in got[0].named(&m.config).iter().zip(m.params.tensors()) {
        assert_eq!(a.to_f32_vec().unwrap(), b.to_f32_vec().unwrap(), "{name}");
    }
}

#[test]
fn parallel_tp_loads_shards_from_a_multi_file_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path();
    std::fs::copy(fixture_dir().join("config.json"), p.join("config.json")).unwrap();
    let all = model::safetensors_io::read_all(&fixture_dir().join("model.safetensors")).unwrap();
    let names: Vec<&String> = all.keys().collect();
    let (a, b) = names.split_at(names.len() / 2);
    let mut map = serde_json::Map::new();
    for (file, part) in [("w-1.safetensors", a), ("w-2.safetensors", b)] {
        let tensors: Vec<(String, &Tensor)> =
            part.iter().map(|n| ((*n).clone(), &all[*n])).collect();
        model::safetensors_io::save(&p.join(file), &tensors, DType::F32).unwrap();
        for n in part {
            map.insert((*n).clone(), serde_json::json!(file));
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(p.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let m = Llama::load(&fixture_dir()).unwrap();
    for tp in degrees(&m.config) {
        let got = run_ranks(tp, |mut ctx| {
            let tm = TpModel::load(p, DType::F32, tp, ctx.rank)?;
            gather(
                &tm.plan,
                ctx.comm.as_mut(),
                &tm.local.params,
                Replicas::Identical,
            )
        })
        .unwrap();
        for ((name, a), b) in got[0].named(&m.config).iter().zip(m.params.tensors()) {
            assert_eq!(
                a.to_f32_vec().unwrap(),
                b.to_f32_vec().unwrap(),
                "tp={tp}: {name}"
            );
        }
    }
}
