//! `swerl train --tp N [--dp M]`: a `tp × dp` mesh of ranks as threads of this process, or,
//! under a launcher, this process's rank of a `tp × (WORLD_SIZE / tp)` mesh; each rank holds
//! its tensor-parallel shard (see `trainer::train::tp_run`).

use anyhow::Context;
use model::tp::ShardPlan;
use model::LlamaConfig;
use runtime::comm::{Backend, DistEnv};
use trainer::config::GrpoConfig;
use trainer::train::metrics::StepMetrics;
use trainer::train::tp_run::{launched_rank, run_mesh, RankComms, TpTrainer};
use trainer::train::TrainError;

use super::{resume_dir, summary, swe_task, Args};

pub fn run(args: &Args, cfg: GrpoConfig, cuda: bool) -> anyhow::Result<()> {
    let launched = DistEnv::from_env()?;
    if let Some(env) = &launched {
        anyhow::ensure!(
            args.dp == 1 || args.dp * args.tp == env.world_size,
            "--tp {} --dp {} under a launcher with WORLD_SIZE={}: the launcher's ranks form the \
             mesh, so --dp is WORLD_SIZE / --tp (leave it out)",
            args.tp,
            args.dp,
            env.world_size
        );
    }
    let resume = resume_dir(args, &cfg)?;
    let model_dir = resume.clone().unwrap_or_else(|| cfg.model.clone());
    // Check the split before starting any rank, so a bad degree is one clear line.
    let config = LlamaConfig::from_file(&model_dir.join("config.json"))?;
    ShardPlan::new(&config, args.tp, 0)
        .with_context(|| format!("--tp {}: cannot shard {}", args.tp, model_dir.display()))?;
    let train = |mut comms: RankComms| -> Result<Vec<StepMetrics>, TrainError> {
        if let Some(dp) = comms.dp.as_mut() {
            dp.bucket_bytes = cfg.bucket_bytes();
        }
        let (task, eos) =
            swe_task(&cfg, &model_dir).map_err(|e| TrainError::Invalid(format!("{e:#}")))?;
        let mut t = match &resume {
            Some(dir) => TpTrainer::resume(cfg.clone(), dir, task, eos, comms)?,
            None => TpTrainer::new(cfg.clone(), task, eos, comms)?,
        };
        let progress = !args.quiet && t.comms.is_main();
        t.run(progress)
    };
    match launched {
        Some(env) => {
            let backend = if cuda { Backend::Nccl } else { Backend::Tcp };
            let comms = launched_rank(env, args.tp, backend)?;
            let main = comms.is_main();
            let metrics = train(comms)?;
            if main {
                summary(&metrics, &cfg.output_dir);
            }
        }
        None => {
            let per_rank = run_mesh(args.tp, args.dp, |_, comms| train(comms))?;
            summary(&per_rank[0], &cfg.output_dir);
        }
    }
    Ok(())
}
