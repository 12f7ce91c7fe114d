//! The data-parallel gradient all-reduce overlapped with backward: DP=2 GRPO runs and SFT steps
//! give bit-for-bit the weights of the all-reduce after backward (and DP=1's update), buckets
//! are reduced while the backward still runs, and a peer that leaves mid-backward fails the
//! survivor's step with an error naming it instead of a hang; the `overlap_grad_sync` config
//! key (`--overlap-grad-sync` on the command line) refuses the combinations that cannot overlap.

mod cli_support;
mod grpo_support;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use grpo_support::{init_model, parallel_config, param_bits, tiny_model, Parity, EOS};
use model::layers::lm_head::shifted_targets;
use model::model::{GradHook, GradReady};
use model::optim::{AdamW, OptimConfig};
use model::{Activations, GradBuffers, Llama, LlamaParams};
use runtime::comm::{CommError, Communicator, StoreClient, StoreServer, TcpComm, ThreadGroup};
use runtime::Tensor;
use trainer::config::GrpoConfig;
use trainer::dp::{DataParallel, DpError};
use trainer::train::{TrainError, Trainer};

/// `world` in-process ranks each running `f(rank, dp)`; results in rank order.
fn ranks<T: Send>(
    world: usize,
    timeout: Duration,
    f: impl Fn(usize, DataParallel) -> T + Sync,
) -> Vec<T> {
    std::thread::scope(|s| {
        let f = &f;
        let hs: Vec<_> = ThreadGroup::with_timeout(world, timeout)
            .unwrap()
            .into_iter()
            .enumerate()
            .map(|(r, c)| s.spawn(move || f(r, DataParallel::new(Box::new(c)))))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Bits of a model's tensors.
type Bits = Vec<Vec<u32>>;

/// Weights and last gradients of every rank after a DP GRPO run.
fn grpo_run(cfg: &GrpoConfig, world: usize, overlap: bool) -> Vec<(Bits, Bits)> {
    ranks(world, Duration::from_secs(60), |_, mut dp| {
        dp.set_overlap(overlap).unwrap();
        // Small buckets: tensors straddle them and most leave during the backward.
        dp.bucket_bytes = 1000;
        let model = Llama::load(&cfg.model).unwrap();
        let mut t = Trainer::new(cfg.clone(), model, Parity::default(), vec![EOS])
            .unwrap()
            .with_dp(dp);
        let m = t.run(false).unwrap();
        assert_eq!(m.len(), cfg.steps);
        assert!(m
            .iter()
            .all(|x| x.time_s.grad_sync >= 0.0 && x.comm_collectives > 10));
        (
            param_bits(&t.learner.model.params),
            param_bits(t.learner.grads()),
        )
    })
}

#[test]
fn parallel_overlap_grpo_dp2_equals_sync_after_backward_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let init = init_model(dir.path());
    // Two iterations per step (a sync before each optimizer step), micro-batches of 3.
    let mut cfg = parallel_config(&init, &dir.path().join("o"));
    cfg.steps = 2;
    cfg.save_steps = 0;
    let on = grpo_run(&cfg, 2, true);
    let off = grpo_run(&cfg, 2, false);
    assert!(on[0] == on[1], "overlapped replicas diverged");
    assert!(
        on[0].1 == off[0].1,
        "overlapped gradients differ from the synced ones"
    );
    assert!(
        on[0].0 == off[0].0,
        "overlapped weights differ from the synced ones"
    );
    let init_bits = param_bits(&Llama::load(&init).unwrap().params);
    assert!(on[0].0 != init_bits, "the run did not move the weights");
}

/// The token-mean SFT loss of `rows` (each rank's share of a batch of `total` targets).
fn sft_backward(
    m: &Llama,
    rows: &[Vec<i64>],
    total: usize,
    grads: &mut LlamaParams,
    hook: &mut dyn GradHook,
) -> model::Result<()> {
    let (b, t) = (rows.len(), rows[0].len());
    let flat: Vec<i64> = rows.concat();
    let ids = Tensor::from_vec(flat.clone(), &[b, t])?;
    let targets = shifted_targets(&flat, b, t, None)?;
    let mut acts = Activations::new(&m.config, b, t, false, &m.device)?;
    let mut g = GradBuffers::new(&m.config, b, t, &m.device)?;
    m.forward(&ids, &mut acts)?;
    m.loss(&mut acts, &targets)?;
    let scale = 1.0 / total as f32;
    m.backward_hooked(&ids, &targets, &mut acts, grads, &mut g, scale, hook)
}

fn sft_rows() -> Vec<Vec<i64>> {
    let mut rng = runtime::Rng::new(9);
    (0..4)
        .map(|_| (0..12).map(|_| rng.below(16) as i64).collect())
        .collect()
}

fn adam_step(m: &mut Llama, g: &LlamaParams) {
    let cfg = OptimConfig {
        lr: 1e-2,
        ..OptimConfig::default()
    };
    AdamW::new(m, cfg).unwrap().step(m, g).unwrap();
}

/// One DP SFT step on `sft_rows` with tied embeddings or not; returns each rank's weights.
fn sft_dp(tied: bool, overlap: bool) -> Vec<Bits> {
    let rows = sft_rows();
    let total = rows.len() * (rows[0].len() - 1);
    ranks(2, Duration::from_secs(60), |_, mut dp| {
        dp.set_overlap(overlap).unwrap();
        dp.bucket_bytes = 600;
        let mut m = model_of(tied);
        let mut grads = m.zero_grads().unwrap();
        let share = &rows[dp.shard(rows.len()).unwrap()];
        let ((), _) = dp
            .backward_and_sync(&mut grads, |g, hook| {
                sft_backward(&m, share, total, g, hook).map_err(TrainError::from)
            })
            .unwrap();
        adam_step(&mut m, &grads);
        param_bits(&m.params)
    })
}

/// `tiny_model`'s shape, with the LM head tied to the embedding or not.
fn model_of(tied: bool) -> Llama {
    let c = model::LlamaConfig::new(32, 2, 4, 2, 64, 16, 64, tied).unwrap();
    Llama::random(c, runtime::DType::F32, 5).unwrap()
}

#[test]
fn parallel_overlap_sft_dp2_equals_sync_after_backward_and_dp1() {
    let rows = sft_rows();
    let total = rows.len() * (rows[0].len() - 1);
    for tied in [false, true] {
        let on = sft_dp(tied, true);
        let off = sft_dp(tied, false);
        assert_eq!(on[0], on[1], "tied={tied}: replicas diverged");
        assert_eq!(on[0], off[0], "tied={tied}: overlap changed the update");
        let mut one = model_of(tied);
        let mut g = one.zero_grads().unwrap();
        sft_backward(&one, &rows, total, &mut g, &mut model::model::NoHook).unwrap();
        adam_step(&mut one, &g);
        let want = param_bits(&one.params);
        // Two halves summed differ from one batch's sum by rounding only; Adam's first step
        // is about lr * sign(g), so only elements whose gradient is rounding noise may move
        // by up to 2 lr.
        for (k, (a, b)) in want.iter().zip(&on[0]).enumerate() {
            let off = a
                .iter()
                .zip(b)
                .filter(|(x, y)| (f32::from_bits(**x) - f32::from_bits(**y)).abs() > 1e-6)
                .count();
            assert!(
                off <= (a.len() / 200).max(1),
                "tied={tied} tensor {k}: {off} of {} weights differ from DP=1's",
                a.len()
            );
        }
    }
}

/// Counts the collectives its inner communicator has finished.
struct Counting<C> {
    inner: C,
    done: Arc<AtomicUsize>,
}

impl<C: Communicator> Communicator for Counting<C> {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn world_size(&self) -> usize {
        self.inner.world_size()
    }
    fn all_reduce_sum(&mut self, t: &mut Tensor) -> Result<(), CommError> {
        self.inner.all_reduce_sum(t)?;
        self.done.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn all_gather(&mut self, i: &Tensor, o: &mut Tensor) -> Result<(), CommError> {
        self.inner.all_gather(i, o)
    }
    fn reduce_scatter_sum(&mut self, i: &Tensor, o: &mut Tensor) -> Result<(), CommError> {
        self.inner.reduce_scatter_sum(i, o)
    }
    fn broadcast(&mut self, t: &mut Tensor, root: usize) -> Result<(), CommError> {
        self.inner.broadcast(t, root)
    }
    fn barrier(&mut self) -> Result<(), CommError> {
        self.inner.barrier()
    }
}

#[test]
fn parallel_overlap_reduces_buckets_while_the_backward_runs() {
    let rows = sft_rows();
    let total = rows.len() * (rows[0].len() - 1);
    let during: Vec<usize> = std::thread::scope(|s| {
        let hs: Vec<_> = ThreadGroup::new(2)
            .unwrap()
            .into_iter()
            .map(|c| {
                let rows = &rows;
                s.spawn(move || {
                    let done = Arc::new(AtomicUsize::new(0));
                    let comm = Counting {
                        inner: c,
                        done: done.clone(),
                    };
                    let mut dp = DataParallel::new(Box::new(comm));
                    assert!(dp.overlap(), "overlap is on by default for CPU groups");
                    dp.bucket_bytes = 600;
                    let m = tiny_model(5);
                    let mut grads = m.zero_grads().unwrap();
                    let share = &rows[dp.shard(rows.len()).unwrap()];
                    let (seen, _) = dp
                        .backward_and_sync(&mut grads, |g, hook| {
                            sft_backward(&m, share, total, g, hook)?;
                            // Still inside the backward call: buckets already sent must get
                            // reduced by the communication thread meanwhile.
                            let t0 = Instant::now();
                            while done.load(Ordering::SeqCst) == 0
                                && t0.elapsed() < Duration::from_secs(20)
                            {
                                std::thread::sleep(Duration::from_millis(1));
                            }
                            Ok::<_, TrainError>(done.load(Ordering::SeqCst))
                        })
                        .unwrap();
                    seen
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (r, n) in during.into_iter().enumerate() {
        assert!(
            n > 0,
            "rank {r}: no bucket was reduced before the backward returned"
        );
    }
}

/// Reports only the head's gradients, then fails as a crashing backward would.
fn crash_after_head(g: &mut LlamaParams, hook: &mut dyn GradHook) -> Result<(), TrainError> {
    hook.ready(g, GradReady::Head)?;
    Err(TrainError::Invalid("rank 1 crashed mid-backward".into()))
}

/// `world` ranks of a TCP group over localhost (threads of this process), each running
/// `f(rank, dp)`; results in rank order.
fn tcp_ranks<T: Send>(
    world: usize,
    timeout: Duration,
    f: impl Fn(usize, DataParallel) -> T + Sync,
) -> Vec<T> {
    let server = StoreServer::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().to_string();
    std::thread::scope(|s| {
        let (f, addr) = (&f, &addr);
        let hs: Vec<_> = (0..world)
            .map(|r| {
                s.spawn(move || {
                    let mut st = StoreClient::connect(addr, r, timeout).unwrap();
                    let c = TcpComm::connect(&mut st, world, "overlap").unwrap();
                    f(r, DataParallel::new(Box::new(c)))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn parallel_overlap_dead_peer_mid_backward_fails_with_a_message_naming_it() {
    let rows = sft_rows();
    let total = rows.len() * (rows[0].len() - 1);
    let timeout = Duration::from_secs(20);
    let rank = |rank: usize, mut dp: DataParallel| {
        dp.bucket_bytes = 600;
        let m = tiny_model(5);
        let mut grads = m.zero_grads().unwrap();
        let r = if rank == 1 {
            dp.backward_and_sync(&mut grads, crash_after_head)
        } else {
            let share = &rows[dp.shard(rows.len()).unwrap()];
            dp.backward_and_sync(&mut grads, |g, hook| {
                sft_backward(&m, share, total, g, hook).map_err(TrainError::from)
            })
        };
        // Leaving drops the communicator, as a dead process closes its sockets.
        drop(dp);
        r.unwrap_err()
    };
    for backend in ["threads", "tcp"] {
        let t0 = Instant::now();
        let errs = match backend {
            "threads" => ranks(2, timeout, rank),
            _ => tcp_ranks(2, timeout, rank),
        };
        let e1 = errs[1].to_string();
        assert!(e1.contains("rank 1 crashed"), "{backend}: {e1}");
        let e = errs[0].to_string();
        assert!(
            matches!(
                errs[0],
                TrainError::Dp(DpError::Comm(CommError::PeerGone { .. }))
            ),
            "{backend}: {e}"
        );
        assert!(e.contains("rank(s) [1] left the group"), "{backend}: {e}");
        assert!(t0.elapsed() < timeout, "{backend}: took {:?}", t0.elapsed());
    }
}

/// `swerl train --dp 2` with `pre` before the config and `extra` config-key overrides after it.
fn train_dp2(cfg: &Path, out: &Path, pre: &[&str], extra: &[&str]) -> std::process::Output {
    cli_support::swerl()
        .args(["train", "--quiet", "--dp", "2"])
        .args(pre)
        .arg("--config")
        .arg(cfg)
        .arg("--output_dir")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn parallel_overlap_config_key_switches_it_and_is_refused_where_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let data = cli_support::mined_dataset(dir.path());
    let cfg = cli_support::write_config(dir.path(), &data);
    let run = |pre: &[&str], extra: &[&str], out: &str| {
        train_dp2(
            &cfg,
            &dir.path().join(out),
            pre,
            &[&["--steps", "1"], extra].concat(),
        )
    };
    let off = run(&[], &["--overlap-grad-sync", "false"], "off");
    assert!(off.status.success(), "{}", cli_support::stderr(&off));
    let on = run(&[], &[], "on");
    assert!(on.status.success(), "{}", cli_support::stderr(&on));
    let (a, b) = (
        cli_support::metrics(&dir.path().join("off")),
        cli_support::metrics(&dir.path().join("on")),
    );
    for k in ["loss", "grad_norm", "comm_bytes"] {
        assert_eq!(a[0][k], b[0][k], "{k}: overlap off vs on");
    }
    let none: &[&str] = &[];
    for (pre, extra, want) in [
        (
            none,
            &["--overlap-grad-sync", "maybe"][..],
            "overlap_grad_sync",
        ),
        (
            none,
            &["--zero1", "true", "--overlap-grad-sync", "true"],
            "ZeRO-1",
        ),
        (
            &["--tp", "2"],
            &["--overlap-grad-sync", "true"],
            "not implemented for --tp 2",
        ),
    ] {
        let o = run(pre, extra, "bad");
        let e = cli_support::stderr(&o);
        assert!(!o.status.success() && e.contains(want), "{extra:?}: {e}");
    }
}

/// `bucket_mb` sets the DP bucket size: small buckets issue more collectives for the same
/// sums (the same checkpoint, byte for byte), the size may change on resume, and a size
/// holding no f32 is refused.
#[test]
fn parallel_cli_bucket_mb_sets_the_bucket_size_and_may_change_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let data = cli_support::mined_dataset(dir.path());
    let cfg = cli_support::write_config(dir.path(), &data);
    let run = |pre: &[&str], extra: &[&str], out: &str| {
        train_dp2(&cfg, &dir.path().join(out), pre, extra)
    };
    let one = ["--steps", "1"];
    let small = ["--steps", "1", "--bucket_mb", "0.01"];
    for (extra, out) in [(&one[..], "default"), (&small[..], "small")] {
        let o = run(&[], extra, out);
        assert!(o.status.success(), "{extra:?}: {}", cli_support::stderr(&o));
    }
    let (a, b) = (
        cli_support::metrics(&dir.path().join("default")),
        cli_support::metrics(&dir.path().join("small")),
    );
    let calls = |m: &serde_json::Value| m["comm_collectives"].as_u64().unwrap();
    assert!(
        calls(&b[0]) > calls(&a[0]),
        "{} vs {}",
        calls(&b[0]),
        calls(&a[0])
    );
    let ckpt = |out: &str| dir.path().join(out).join("checkpoint-000001");
    let weights = |out: &str| std::fs::read(ckpt(out).join("model.safetensors")).unwrap();
    assert!(
        weights("default") == weights("small"),
        "bucketing changed the sums"
    );

    let resume = ckpt("default");
    let resume = ["--resume", resume.to_str().unwrap()];
    let o = run(&resume, &["--steps", "2", "--bucket_mb", "0.5"], "resumed");
    assert!(o.status.success(), "{}", cli_support::stderr(&o));
    assert_eq!(cli_support::metrics(&dir.path().join("resumed")).len(), 1);

    for bad in ["0", "-1", "1e-7", "nan"] {
        let o = run(&[], &["--bucket_mb", bad], "bad");
        let e = cli_support::stderr(&o);
        assert!(!o.status.success() && e.contains("bucket_mb"), "{bad}: {e}");
    }
}
