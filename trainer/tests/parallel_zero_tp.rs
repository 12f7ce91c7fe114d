//! Tensor parallelism with sharded state: a TP checkpoint streams one tensor at a time and is
//! byte-identical to saving the gathered model and AdamW state.

mod grpo_support;

use std::path::Path;

use grpo_support::{init_model, parallel_config, Parity, EOS};
use model::optim::AdamW;
use model::tp::{gather, Replicas};
use model::Llama;
use trainer::train::checkpoint::{checkpoint_dir, save_trainer};
use trainer::train::tp_run::{run_mesh, TpTrainer};
use trainer::train::Task;

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect();
    v.sort();
    v
}

/// After a step on a `tp × 2` mesh (TP=4 replicates the 2 KV heads), the streamed
/// checkpoint equals, file for file and byte for byte, the gathered weights and moments
/// written by the single-process checkpoint writer.
#[test]
fn parallel_tp_streamed_checkpoint_equals_the_gathered_one_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let init = init_model(dir.path());
    std::fs::write(init.join("tokenizer.json"), b"{}").unwrap();
    for tp in [2, 4] {
        let mut cfg = parallel_config(&init, &dir.path().join(format!("tp{tp}")));
        cfg.steps = 1;
        cfg.save_steps = 0;
        let streamed = dir.path().join(format!("streamed{tp}"));
        run_mesh(tp, 2, |_, comms| {
            let mut t = TpTrainer::new(cfg.clone(), Parity::default(), vec![EOS], comms)?;
            t.run(false)?;
            if t.comms.dp_rank() != 0 {
                return Ok(());
            }
            let main = t.comms.is_main();
            if main {
                std::fs::rename(checkpoint_dir(&cfg.output_dir, 1), &streamed).unwrap();
            }
            let plan = &t.learner.model.plan;
            let tpc = t.comms.tp.as_mut();
            let mut full = |p: &model::LlamaParams| gather(plan, tpc, p, Replicas::Identical);
            let params = full(&t.learner.model.local.params)?;
            let opt: AdamW = t.learner.opt.map_state(&mut full)?;
            if main {
                let m = Llama::from_params(plan.full.clone(), params)?;
                let cursor = t.task.cursor();
                save_trainer(&cfg, t.step, &m, &opt, t.rng.state(), cursor, Some(&init))?;
            }
            Ok(())
        })
        .unwrap();
        let gathered = files(&checkpoint_dir(&cfg.output_dir, 1));
        assert_eq!(
            gathered.len(),
            5,
            "config, weights, tokenizer, moments, state"
        );
        assert_eq!(files(&streamed), gathered, "tp={tp}");
    }
}
