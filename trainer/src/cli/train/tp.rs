//! `swerl train --tp N [--dp M]`: a `tp × dp` mesh of ranks as threads of this process, each
//! holding its tensor-parallel shard (see `trainer::train::tp_run`).

use anyhow::Context;
use model::tp::ShardPlan;
use model::LlamaConfig;
use runtime::comm::DistEnv;
use trainer::config::GrpoConfig;
use trainer::train::tp_run::{run_mesh, TpTrainer};
use trainer::train::TrainError;

use super::{resume_dir, summary, swe_task, Args};

pub fn run(args: &Args, cfg: GrpoConfig) -> anyhow::Result<()> {
    anyhow::ensure!(
        DistEnv::from_env()?.is_none(),
        "--tp {} under a launcher (RANK/WORLD_SIZE set): tensor parallelism runs its ranks as \
         threads of one process; start a single `swerl train --tp {} --dp M` instead",
        args.tp,
        args.tp
    );
    let resume = resume_dir(args, &cfg)?;
    let model_dir = resume.clone().unwrap_or_else(|| cfg.model.clone());
    // Check the split before starting any rank, so a bad degree is one clear line.
    let config = LlamaConfig::from_file(&model_dir.join("config.json"))?;
    ShardPlan::new(&config, args.tp, 0)
        .with_context(|| format!("--tp {}: cannot shard {}", args.tp, model_dir.display()))?;
    let per_rank = run_mesh(args.tp, args.dp, |_, comms| {
        let (task, eos) =
            swe_task(&cfg, &model_dir).map_err(|e| TrainError::Invalid(format!("{e:#}")))?;
        let mut t = match &resume {
            Some(dir) => TpTrainer::resume(cfg.clone(), dir, task, eos, comms)?,
            None => TpTrainer::new(cfg.clone(), task, eos, comms)?,
        };
        let progress = !args.quiet && t.comms.is_main();
        t.run(progress)
    })?;
    summary(&per_rank[0], &cfg.output_dir);
    Ok(())
}
