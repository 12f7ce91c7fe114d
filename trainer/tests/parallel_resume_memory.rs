//! Peak heap use of resuming from a checkpoint, measured by a counting global allocator (its
//! own test binary with one test, so nothing else allocates while it measures): the AdamW
//! moments are copied out of the memory-mapped optimizer file as the rank's slices (its TP
//! shard, under ZeRO-1 only its DP range of that), so a resumed rank holds its share of the
//! state and, beyond what it keeps, at most a tensor or two in flight — never the full state.

#[path = "../../tests/support/counting_alloc.rs"]
mod counting_alloc;
mod grpo_support;

use std::path::Path;

use counting_alloc::measure;
use grpo_support::{parallel_config, Parity, EOS};
use model::optim::AdamW;
use model::{Llama, LlamaConfig};
use runtime::comm::ThreadGroup;
use runtime::{DType, Rng};
use trainer::config::GrpoConfig;
use trainer::dp::DataParallel;
use trainer::train::checkpoint::{save_hf_folder, save_trainer, OPTIMIZER_FILE};
use trainer::train::run::Trainer;
use trainer::train::tp_run::{thread_mesh, TpTrainer};
use trainer::train::zero1::full_state_bytes;
use trainer::train::Task;

/// A checkpoint of a many-layer model (the largest tensor ~1/70 of it) with non-zero moments.
fn checkpoint(dir: &Path) -> (GrpoConfig, std::path::PathBuf, usize, usize) {
    let c = LlamaConfig::new(128, 16, 4, 2, 256, 64, 16, false).unwrap();
    let m = Llama::random(c, DType::F32, 3).unwrap();
    let init = dir.join("init");
    save_hf_folder(&m, &init, None).unwrap();
    let mut cfg = parallel_config(&init, &dir.join("out"));
    cfg.beta = 0.0;
    let mut opt = AdamW::new(&m, cfg.optim_config()).unwrap();
    opt.m = m.params.clone();
    opt.v = m.params.clone();
    opt.step = 2;
    let rng = Rng::new(cfg.seed).state();
    let cursor = Parity::default().cursor();
    let ckpt = save_trainer(&cfg, 1, &m, &opt, rng, cursor, None).unwrap();
    let largest = m.params.tensors().iter().map(|t| t.size_in_bytes()).max();
    (cfg, ckpt, full_state_bytes(&opt), largest.unwrap())
}

#[test]
fn parallel_resume_reads_only_this_ranks_share_of_the_optimizer_state() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, ckpt, full, largest) = checkpoint(dir.path());
    // Beyond what the rank keeps: a tensor's slice or two in flight, and small bookkeeping.
    let transient_bound = 2 * largest + 256 * 1024;
    eprintln!("full AdamW state {full} B, largest tensor {largest} B");

    // TP=2: rank 0 keeps half of every split tensor's moments (and whole norm moments).
    let comms = thread_mesh(2, 1).unwrap().into_iter().next().unwrap();
    let (t, kept, over) = measure(|| {
        TpTrainer::resume(cfg.clone(), &ckpt, Parity::default(), vec![EOS], comms).unwrap()
    });
    let state = full_state_bytes(&t.learner.opt);
    eprintln!("tp=2 rank 0: state {state} B, all kept {kept} B, transient {over} B");
    assert!(
        state * 2 >= full && state * 2 < full + full / 20,
        "{state} of {full}"
    );
    assert!(
        over <= transient_bound,
        "tp=2 transient {over} B > {transient_bound} B"
    );
    drop(t);

    // TP=2 × DP=2 with ZeRO-1: a quarter, read straight from the file (no TP shard first).
    let mut zcfg = cfg.clone();
    zcfg.zero1 = true;
    let comms = thread_mesh(2, 2).unwrap().into_iter().next().unwrap();
    let (t, kept, over) = measure(|| {
        TpTrainer::resume(zcfg.clone(), &ckpt, Parity::default(), vec![EOS], comms).unwrap()
    });
    let z = t.learner.zero.as_ref().expect("resumed sharded");
    let state = z.state_bytes() + full_state_bytes(&t.learner.opt);
    eprintln!("tp=2×dp=2 zero1 rank 0: state {state} B, all kept {kept} B, transient {over} B");
    assert!(state * 4 <= full + full / 20, "{state} of {full}");
    assert!(
        over <= transient_bound,
        "zero1 tp×dp transient {over} B > {transient_bound} B"
    );
    drop(t);

    // DP=2 with ZeRO-1 (no TP): half, read when the DP group is known.
    let comm = ThreadGroup::new(2).unwrap().into_iter().next().unwrap();
    let dp = DataParallel::new(Box::new(comm));
    let (t, kept, over) = measure(|| {
        let t = Trainer::resume(zcfg.clone(), &ckpt, Parity::default(), vec![EOS]).unwrap();
        let mut t = t.with_dp(dp);
        t.load_optimizer_state().unwrap();
        t
    });
    let state = t.optimizer_state_bytes();
    eprintln!("dp=2 zero1 rank 0: state {state} B, all kept {kept} B, transient {over} B");
    assert!(state * 2 <= full + 64, "{state} of {full}");
    assert!(
        over <= transient_bound,
        "zero1 dp transient {over} B > {transient_bound} B"
    );
    // Model, gradient buffer and the state share: a full state more would be the old read.
    assert!(kept < 2 * full, "dp=2 zero1 kept {kept} B");

    drop(t);

    // A damaged optimizer file stops every resume path up front, naming the file and tensor.
    let file = ckpt.join(OPTIMIZER_FILE);
    let mut all = model::safetensors_io::read_all(&file).unwrap();
    all.remove("v.lm_head.weight").unwrap();
    let named: Vec<(String, &runtime::Tensor)> = all.iter().map(|(n, t)| (n.clone(), t)).collect();
    model::safetensors_io::save(&file, &named, DType::F32).unwrap();
    let named_both = |e: String| {
        assert!(
            e.contains("v.lm_head.weight") && e.contains(OPTIMIZER_FILE),
            "{e}"
        );
    };
    for c in [&cfg, &zcfg] {
        let comms = thread_mesh(2, 2).unwrap().into_iter().next().unwrap();
        let r = TpTrainer::resume(c.clone(), &ckpt, Parity::default(), vec![EOS], comms);
        named_both(r.err().expect("refused").to_string());
        let r = Trainer::resume(c.clone(), &ckpt, Parity::default(), vec![EOS]);
        named_both(r.err().expect("refused").to_string());
    }
}
