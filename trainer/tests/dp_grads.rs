//! Data-parallel gradient sync on the tiny-llama fixture: two in-process ranks, each with half
//! of a 4-sequence batch, end with the same averaged gradient as one rank on the whole batch.

use std::path::PathBuf;

use model::layers::lm_head::shifted_targets;
use model::{Activations, GradBuffers, Llama, LlamaParams};
use runtime::comm::{Communicator, ThreadComm, ThreadGroup};
use trainer::dp::{all_reduce_grads, all_reduce_grads_bucketed};

const SEQ: usize = 24;

/// The tiny-llama fixture folder, overridable by `SWERL_FIXTURE`.
fn fixture() -> PathBuf {
    match std::env::var_os("SWERL_FIXTURE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/tiny-llama"
        )),
    }
}

fn batch() -> Vec<Vec<i64>> {
    let mut rng = runtime::Rng::new(7);
    (0..4)
        .map(|_| (0..SEQ).map(|_| rng.below(2000) as i64).collect())
        .collect()
}

/// Gradient of the mean next-token loss over `rows` (every row has `SEQ - 1` targets, so
/// equal halves have equal token counts and the mean of the halves' means is the full mean).
fn grad(m: &Llama, rows: &[Vec<i64>]) -> LlamaParams {
    let (b, dev) = (rows.len(), m.device);
    let flat: Vec<i64> = rows.concat();
    let ids = runtime::Tensor::from_vec(flat.clone(), &[b, SEQ]).unwrap();
    let targets = shifted_targets(&flat, b, SEQ, None).unwrap();
    let mut acts = Activations::new(&m.config, b, SEQ, false, &dev).unwrap();
    let mut g = GradBuffers::new(&m.config, b, SEQ, &dev).unwrap();
    let mut grads = m.zero_grads().unwrap();
    m.forward(&ids, &mut acts).unwrap();
    let stats = m.loss(&mut acts, &targets).unwrap();
    assert_eq!(stats.count, b * (SEQ - 1));
    m.backward(
        &ids,
        &targets,
        &mut acts,
        &mut grads,
        &mut g,
        1.0 / stats.count as f32,
    )
    .unwrap();
    grads
}

fn run_ranks<R: Send>(comms: Vec<ThreadComm>, f: impl Fn(&mut ThreadComm) -> R + Sync) -> Vec<R> {
    std::thread::scope(|s| {
        let hs: Vec<_> = comms
            .into_iter()
            .map(|mut c| {
                let f = &f;
                s.spawn(move || f(&mut c))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn rel_diff(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den.max(1e-300)).sqrt()
}

#[test]
fn dp2_averaged_gradient_equals_dp1() {
    let m = Llama::load(&fixture()).expect("load the tiny-llama fixture");
    let rows = batch();
    let full = grad(&m, &rows);
    let out = run_ranks(ThreadGroup::new(2).unwrap(), |c| {
        let half = &rows[c.rank() * 2..c.rank() * 2 + 2];
        let mut g = grad(&m, half);
        // Small buckets: tensors straddle bucket boundaries.
        let st = all_reduce_grads_bucketed(c, &mut g, true, 64 << 10).unwrap();
        (g, st)
    });
    let n_params: usize = full.tensors().iter().map(|t| t.numel()).sum();
    let st = &out[0].1;
    assert_eq!(st.elements, n_params);
    assert_eq!(st.collectives, n_params.div_ceil((64 << 10) / 4));
    for (idx, (name, want)) in full.named(&m.config).into_iter().enumerate() {
        let want = want.to_f32_vec().unwrap();
        let r0 = out[0].0.tensors()[idx].to_f32_vec().unwrap();
        let r1 = out[1].0.tensors()[idx].to_f32_vec().unwrap();
        assert_eq!(r0, r1, "{name}: ranks disagree");
        let d = rel_diff(&r0, &want);
        assert!(d < 1e-6, "{name}: relative difference {d:e}");
    }
}

#[test]
fn bucket_size_does_not_change_the_result() {
    let m = Llama::load(&fixture()).expect("load the tiny-llama fixture");
    let rows = batch();
    let per_rank: Vec<LlamaParams> = (0..3).map(|r| grad(&m, &rows[r..r + 1])).collect();
    let sync = |bucket: Option<usize>| {
        run_ranks(ThreadGroup::new(3).unwrap(), |c| {
            let mut g = per_rank[c.rank()].copy().unwrap();
            match bucket {
                Some(b) => all_reduce_grads_bucketed(c, &mut g, false, b).unwrap(),
                None => all_reduce_grads(c, &mut g, false).unwrap(),
            };
            g
        })
    };
    let whole = sync(None);
    let small = sync(Some(4 * 999));
    // Serial rank-order sum, element by element.
    for (i, t) in whole[0].tensors().iter().enumerate() {
        let mut want = per_rank[0].tensors()[i].to_f32_vec().unwrap();
        for p in &per_rank[1..] {
            let x = p.tensors()[i].to_f32_vec().unwrap();
            want.iter_mut().zip(x).for_each(|(a, b)| *a += b);
        }
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        assert_eq!(
            bits(t.to_f32_vec().unwrap()),
            bits(want.clone()),
            "tensor {i}"
        );
        for (r, g) in small.iter().enumerate() {
            assert_eq!(
                bits(g.tensors()[i].to_f32_vec().unwrap()),
                bits(want.clone()),
                "tensor {i} rank {r} (small buckets)"
            );
        }
    }
}

#[test]
fn zero_bucket_is_an_error() {
    let m = Llama::load(&fixture()).expect("load the tiny-llama fixture");
    let mut g = m.zero_grads().unwrap();
    let mut c = ThreadGroup::new(1).unwrap().pop().unwrap();
    let e = all_reduce_grads_bucketed(&mut c, &mut g, true, 3).unwrap_err();
    assert!(e.to_string().contains("bucket size 3"), "{e}");
    assert_eq!(c.world_size(), 1);
}
