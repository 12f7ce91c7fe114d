//! The GRPO loop: problems from a [`Task`], one [`grpo_step`] per step, metrics, progress,
//! checkpoints every `save_steps`, and exact resume (weights, AdamW moments, RNG, data cursor).

use std::path::{Path, PathBuf};
use std::time::Instant;

use model::optim::AdamW;
use model::tp::state::{empty_state, StateFile};
use model::tp::ShardPlan;
use model::Llama;
use runtime::{DType, Rng};

use super::checkpoint::{self, OPTIMIZER_FILE};
use super::dp_step::grpo_step_dp;
use super::metrics::StepMetrics;
use super::policy::deep_copy;
use super::run_loop::{run_steps, Steps};
use super::step::{grpo_step, Learner, Reward, StepSettings};
use super::zero1::{full_state_bytes, Zero1};
use super::{Result, TrainError};
use crate::config::GrpoConfig;
use crate::dp::DataParallel;

/// A source of problems with a reward over the last batch it handed out.
pub trait Task: Reward {
    /// Token ids of the next `n` prompts (advances the data position).
    fn next_problems(&mut self, n: usize) -> Result<Vec<Vec<u32>>>;
    /// The data position, for checkpoints.
    fn cursor(&self) -> serde_json::Value;
    fn restore(&mut self, cursor: &serde_json::Value) -> Result<()>;
    /// Problems skipped so far (prompt too long).
    fn skipped(&self) -> usize {
        0
    }
}

pub struct Trainer<T: Task> {
    pub cfg: GrpoConfig,
    pub learner: Learner,
    pub task: T,
    pub rng: Rng,
    /// GRPO steps completed.
    pub step: usize,
    settings: StepSettings,
    /// Where tokenizer files are copied from into checkpoints.
    side_files: Option<PathBuf>,
    /// Data-parallel group; rank 0 alone writes metrics and checkpoints.
    dp: Option<DataParallel>,
    /// A resumed run's optimizer file, read on first use: only then is the DP group (and so,
    /// under ZeRO-1, the one range of it this rank keeps) known.
    pending: Option<StateFile>,
}

impl<T: Task> Trainer<T> {
    /// A fresh run from `model` (the reference, when `beta != 0`, is a frozen copy of it).
    pub fn new(cfg: GrpoConfig, model: Llama, task: T, eos_token_ids: Vec<u32>) -> Result<Self> {
        cfg.validate()?;
        let opt = AdamW::new(&model, cfg.optim_config())?;
        let reference = if cfg.beta != 0.0 {
            Some(Llama::from_params(
                model.config.clone(),
                deep_copy(&model.params)?,
            )?)
        } else {
            None
        };
        let settings = StepSettings::from_config(&cfg, eos_token_ids);
        let side_files = cfg.model.is_dir().then(|| cfg.model.clone());
        Ok(Trainer {
            rng: Rng::new(cfg.seed),
            learner: Learner::new(model, opt, reference)?,
            task,
            step: 0,
            settings,
            side_files,
            cfg,
            dp: None,
            pending: None,
        })
    }

    /// Continues the run saved in `dir`; `cfg` may change only settings that do not alter
    /// the trajectory (steps, save_steps, output_dir). The reference is reloaded from
    /// `cfg.model`, the run's initial policy.
    pub fn resume(
        cfg: GrpoConfig,
        dir: &Path,
        mut task: T,
        eos_token_ids: Vec<u32>,
    ) -> Result<Self> {
        let state = checkpoint::load_state_for(dir, &cfg)?;
        let model = Llama::load(dir)?;
        let master = model.params.embed.dtype() != DType::F32;
        // Checked now (a bad file fails the resume), read when the first step needs it.
        let file = StateFile::open(&dir.join(OPTIMIZER_FILE), &model.config, master)?;
        let opt = empty_state(
            &model.config,
            cfg.optim_config(),
            master,
            state.optimizer_step,
        )?;
        let reference = if cfg.beta != 0.0 {
            Some(Llama::load(&cfg.model)?)
        } else {
            None
        };
        task.restore(&state.cursor)?;
        let settings = StepSettings::from_config(&cfg, eos_token_ids);
        let side_files = Some(dir.to_path_buf());
        Ok(Trainer {
            rng: Rng::from_state(state.rng)?,
            learner: Learner::new(model, opt, reference)?,
            task,
            step: state.step,
            settings,
            side_files,
            cfg,
            dp: None,
            pending: Some(file),
        })
    }

    /// Makes this trainer one rank of a data-parallel group: every rank draws the same
    /// problems and trains on its shard of them (see `dp_step`). Every rank must start from
    /// the same weights and config.
    pub fn with_dp(mut self, dp: DataParallel) -> Self {
        self.dp = Some(dp);
        self
    }

    /// True on the rank that writes metrics and checkpoints (rank 0, or no group).
    pub fn is_main(&self) -> bool {
        self.dp.as_ref().is_none_or(|d| d.rank() == 0)
    }

    /// Reads a resumed run's optimizer state now (else the first step or save does): this
    /// rank's ZeRO-1 range of it with `zero1` in a group, else all of it.
    pub fn load_optimizer_state(&mut self) -> Result<()> {
        let Some(file) = self.pending.take() else {
            return Ok(());
        };
        let l = &mut self.learner;
        let plan = ShardPlan::new(&l.model.config, 1, 0)?;
        match (self.cfg.zero1, &self.dp) {
            (true, Some(dp)) => {
                let (rank, world) = (dp.rank(), dp.world_size());
                l.zero = Some(Zero1::from_file(&file, &plan, &l.model, rank, world)?);
            }
            _ => {
                let mut opt = file.load(&plan, l.opt.config, l.opt.step)?;
                if !l.model.device.is_cpu() {
                    for t in opt.m.tensors_mut().into_iter().chain(opt.v.tensors_mut()) {
                        *t = t.to_device(&l.model.device)?;
                    }
                    for t in opt.master.iter_mut().flat_map(|p| p.tensors_mut()) {
                        *t = t.to_device(&l.model.device)?;
                    }
                }
                l.opt = opt;
            }
        }
        Ok(())
    }

    /// With `zero1` in a group, shards the optimizer state on first use (a fresh state or
    /// one loaded from any checkpoint, so runs resume with or without ZeRO-1).
    fn ensure_zero(&mut self) -> Result<()> {
        if let (true, None, Some(dp)) = (self.cfg.zero1, &self.learner.zero, &self.dp) {
            let l = &mut self.learner;
            l.zero = Some(Zero1::new(
                &mut l.opt,
                &l.model,
                dp.rank(),
                dp.world_size(),
            )?);
        }
        Ok(())
    }

    /// Bytes of optimizer state this rank holds.
    pub fn optimizer_state_bytes(&self) -> usize {
        match &self.learner.zero {
            Some(z) => z.state_bytes(),
            None => full_state_bytes(&self.learner.opt),
        }
    }

    /// Runs one step; returns its metrics line.
    pub fn step_once(&mut self) -> Result<StepMetrics> {
        self.load_optimizer_state()?;
        self.ensure_zero()?;
        let t0 = Instant::now();
        let prompts = self.task.next_problems(self.cfg.per_step_problems)?;
        let seed = self.rng.next_u64();
        let lr = self.cfg.lr_at(self.step);
        let report = match self.dp.as_mut() {
            None => grpo_step(
                &mut self.learner,
                &self.settings,
                &prompts,
                &self.task,
                seed,
                lr,
            )?,
            Some(dp) => grpo_step_dp(
                &mut self.learner,
                &self.settings,
                &prompts,
                &self.task,
                seed,
                lr,
                dp,
            )?,
        };
        self.step += 1;
        let mut m = StepMetrics::from_report(
            self.step,
            lr,
            &report,
            self.task.skipped(),
            t0.elapsed().as_secs_f64(),
        );
        if let Some(dp) = self.dp.as_mut() {
            m.dp_world = dp.world_size();
            (m.comm_bytes, m.comm_collectives) = dp.take_volume();
        }
        m.optimizer_state_bytes = self.optimizer_state_bytes();
        Ok(m)
    }

    /// Writes `checkpoint-<step>` under the output folder. Under ZeRO-1 use
    /// [`Trainer::save_collective`] on every rank instead.
    pub fn save(&self) -> Result<PathBuf> {
        if self.learner.zero.is_some() {
            return Err(TrainError::Checkpoint(
                "the optimizer state is sharded (zero1): every rank must call save_collective"
                    .into(),
            ));
        }
        match &self.pending {
            Some(file) => {
                let plan = ShardPlan::new(&self.learner.model.config, 1, 0)?;
                let (c, step) = (self.learner.opt.config, self.learner.opt.step);
                self.save_with(&file.load(&plan, c, step)?)
            }
            None => self.save_with(&self.learner.opt),
        }
    }

    /// Checkpoints from every rank of the group: under ZeRO-1 the moments are gathered (the
    /// same file layout as without sharding), then the main rank writes; `None` elsewhere.
    pub fn save_collective(&mut self) -> Result<Option<PathBuf>> {
        self.load_optimizer_state()?;
        let gathered = match (&self.learner.zero, self.dp.as_mut()) {
            (Some(z), Some(dp)) => {
                Some(z.gather_state(dp, &self.learner.opt, &self.learner.model)?)
            }
            _ => None,
        };
        if !self.is_main() {
            return Ok(None);
        }
        let opt = gathered.as_ref().unwrap_or(&self.learner.opt);
        self.save_with(opt).map(Some)
    }

    fn save_with(&self, opt: &AdamW) -> Result<PathBuf> {
        checkpoint::save_trainer(
            &self.cfg,
            self.step,
            &self.learner.model,
            opt,
            self.rng.state(),
            self.task.cursor(),
            self.side_files.as_deref(),
        )
    }

    /// Trains until `cfg.steps`, writing metrics and checkpoints; `progress` shows a bar.
    pub fn run(&mut self, progress: bool) -> Result<Vec<StepMetrics>> {
        run_steps(self, progress)
    }
}

impl<T: Task> Steps for Trainer<T> {
    fn config(&self) -> &GrpoConfig {
        &self.cfg
    }
    fn steps_done(&self) -> usize {
        self.step
    }
    fn main_rank(&self) -> bool {
        self.is_main()
    }
    fn take_step(&mut self) -> Result<StepMetrics> {
        self.step_once()
    }
    fn checkpoint(&mut self) -> Result<()> {
        self.save_collective()?;
        Ok(())
    }
}
