//! Tensor parallelism on CPU: one training step (forward, loss, backward) of the "small" config
//! (hidden 512, 8 layers, 8 heads / 4 KV heads, ffn 1408, vocab 2048; random f32 weights) on
//! 4 x 256 tokens, as one process (TP=1) and as 2 / 4 in-process ranks (one thread each,
//! sharing rayon's pool), plus the bytes each rank contributes to the collectives.
//!
//!     cargo bench -p model --bench tp

use std::sync::Mutex;
use std::time::Duration;

use criterion::{criterion_group, Criterion, Throughput};
use model::layers::lm_head::shifted_targets;
use model::tp::{run_ranks, CommVolume, CountingComm, TpModel};
use model::{Activations, GradBuffers, Llama, LlamaConfig, LlamaParams};
use runtime::comm::Communicator;
use runtime::{DType, Tensor};

const B: usize = 4;
const T: usize = 256;

struct Rank {
    model: TpModel,
    state: Mutex<(Activations, GradBuffers, LlamaParams)>,
}

fn step(
    r: &Rank,
    ids: &Tensor,
    targets: &Tensor,
    comm: &mut dyn Communicator,
) -> model::Result<()> {
    let mut st = r.state.lock().expect("one thread per rank");
    let (acts, bufs, grads) = &mut *st;
    r.model.forward(ids, acts, comm)?;
    let loss = r.model.loss(acts, targets, comm)?;
    let scale = 1.0 / loss.count as f32;
    r.model
        .backward(ids, targets, acts, grads, bufs, scale, comm)
}

fn bench(c: &mut Criterion) {
    let cfg = LlamaConfig::new(512, 8, 8, 4, 1408, 2048, 2048, false).expect("small config");
    let full = Llama::random(cfg.clone(), DType::F32, 0).expect("random weights");
    let ids: Vec<i64> = (0..B * T).map(|i| ((i * 7919) % 2048) as i64).collect();
    let targets = shifted_targets(&ids, B, T, None).expect("targets");
    let ids = Tensor::from_vec(ids, &[B, T]).expect("ids");

    let mut g = c.benchmark_group("tp_train_step_small_4x256");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements((B * T) as u64));
    for tp in [1, 2, 4] {
        let ranks: Vec<Rank> = (0..tp)
            .map(|r| {
                let model = TpModel::from_full(&full, tp, r).expect("shard");
                let state = (
                    model.activations(B, T, false).expect("acts"),
                    model.grad_buffers(B, T).expect("bufs"),
                    model.zero_grads().expect("grads"),
                );
                Rank {
                    model,
                    state: Mutex::new(state),
                }
            })
            .collect();
        let counts = run_ranks(tp, |mut ctx| {
            let mut comm = CountingComm::new(ctx.comm.as_mut());
            step(&ranks[ctx.rank], &ids, &targets, &mut comm)?;
            Ok(comm.counts)
        })
        .expect("counted step");
        let want = CommVolume::training_step(&cfg, B, T, false);
        if tp > 1 {
            println!(
                "tp={tp}: rank 0 all-reduced {} B in {} calls (model: {} B in {} calls; per layer \
                 {} B in {} calls), all-gathered {} B",
                counts[0].all_reduce_bytes,
                counts[0].all_reduce_calls,
                want.total_all_reduce_bytes,
                want.total_all_reduce_calls,
                want.per_layer_all_reduce_bytes,
                want.per_layer_all_reduce_calls,
                counts[0].all_gather_bytes,
            );
        }
        g.bench_function(format!("tp{tp}"), |bch| {
            bch.iter(|| {
                run_ranks(tp, |mut ctx| {
                    step(&ranks[ctx.rank], &ids, &targets, ctx.comm.as_mut())
                })
                .expect("step")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
