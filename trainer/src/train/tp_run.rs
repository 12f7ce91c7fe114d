//! The GRPO loop on a `tp × dp` mesh of ranks: rank `r` is TP rank `r % tp` of TP group
//! `r / tp` and DP rank `r / tp` of DP group `r % tp`. The ranks are threads of one process
//! ([`run_mesh`]) or one per launched process ([`launched_rank`]); both run [`TpTrainer`]. Each rank holds its TP shard and steps
//! it with [`grpo_step_tp`]; checkpoints gather the shards (weights and AdamW moments) into
//! one Hugging Face folder that single-process runs (and any `tp`) can resume from.
//!
//! Saving streams one full tensor at a time through the TP group (rank 0 writes it), so no
//! rank holds the model. Resuming maps the checkpoint's files and copies out only this rank's
//! slices (its TP shard, and under ZeRO-1 its DP range of the moments), one tensor at a time.

use std::path::{Path, PathBuf};
use std::time::Instant;

use model::optim::AdamW;
use model::tp::state::{empty_state, StateFile};
use model::tp::{save_file, CountingComm, TpModel};
use model::ModelError;
use runtime::comm::{Backend, Communicator, DistEnv, MeshGroups, Rendezvous, ThreadGroup};
use runtime::{DType, Rng};

use super::checkpoint::{self, OPTIMIZER_FILE};
use super::metrics::StepMetrics;
use super::run::Task;
use super::run_loop::{run_steps, Steps};
use super::step::StepSettings;
use super::tp_step::{grpo_step_tp, TpLearner};
use super::zero1::{full_state_bytes, Zero1};
use super::{Result, TrainError};
use crate::config::GrpoConfig;
use crate::dp::DataParallel;

/// One rank's communicators: its TP group's, and its DP group's when `dp > 1`.
pub struct RankComms {
    pub tp: Box<dyn Communicator>,
    pub dp: Option<DataParallel>,
    /// A launched rank's job rendezvous; rank 0's holds the store the others joined through.
    _rendezvous: Option<Rendezvous>,
}

impl RankComms {
    pub fn tp_rank(&self) -> usize {
        self.tp.rank()
    }

    pub fn dp_rank(&self) -> usize {
        self.dp.as_ref().map_or(0, DataParallel::rank)
    }

    /// The rank that writes metrics and checkpoints.
    pub fn is_main(&self) -> bool {
        self.tp_rank() == 0 && self.dp_rank() == 0
    }
}

/// In-process communicators of a `tp × dp` mesh, indexed by global rank (`dp_rank * tp +
/// tp_rank`): one thread group per TP group and one per DP group.
pub fn thread_mesh(tp: usize, dp: usize) -> Result<Vec<RankComms>> {
    if tp == 0 || dp == 0 {
        return Err(TrainError::Invalid(format!(
            "tp={tp} × dp={dp}: both degrees must be at least 1"
        )));
    }
    let group = |n: usize| -> Result<Vec<Option<runtime::comm::ThreadComm>>> {
        let g = ThreadGroup::new(n).map_err(ModelError::Comm)?;
        Ok(g.into_iter().map(Some).collect())
    };
    let mut tp_groups = (0..dp).map(|_| group(tp)).collect::<Result<Vec<_>>>()?;
    let mut dp_groups = (0..tp).map(|_| group(dp)).collect::<Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(tp * dp);
    for r in 0..tp * dp {
        let (t, d) = (r % tp, r / tp);
        let tp_comm = tp_groups[d][t].take().expect("each slot taken once");
        let dp_comm = dp_groups[t][d].take().expect("each slot taken once");
        out.push(RankComms {
            tp: Box::new(tp_comm),
            dp: (dp > 1).then(|| DataParallel::new(Box::new(dp_comm))),
            _rendezvous: None,
        });
    }
    Ok(out)
}

/// This process's rank of a `tp × (WORLD_SIZE / tp)` mesh launched one rank per process
/// (`swerl launch`, torchrun, srun): joins the job and builds its TP and DP groups, numbered
/// as [`thread_mesh`] numbers its ranks, so a launched run takes every sum in the same order.
pub fn launched_rank(env: DistEnv, tp: usize, backend: Backend) -> Result<RankComms> {
    let mut rv = Rendezvous::join(env).map_err(ModelError::Comm)?;
    let g = MeshGroups::connect(&mut rv, tp, backend).map_err(ModelError::Comm)?;
    let dp = (g.dp.world_size() > 1).then(|| DataParallel::new(Box::new(g.dp)));
    Ok(RankComms {
        tp: Box::new(g.tp),
        dp,
        _rendezvous: Some(rv),
    })
}

/// Runs `f(rank, comms)` on one thread per rank of a `tp × dp` mesh; returns the results in
/// rank order, or the first failure of a rank that failed on its own (not one that only saw
/// a peer leave), naming the rank.
pub fn run_mesh<T, F>(tp: usize, dp: usize, f: F) -> Result<Vec<T>>
where
    T: Send,
    F: Fn(usize, RankComms) -> Result<T> + Sync,
{
    let comms = thread_mesh(tp, dp)?;
    let results: Vec<Result<T>> = std::thread::scope(|s| {
        let hs: Vec<_> = comms
            .into_iter()
            .enumerate()
            .map(|(r, c)| {
                let f = &f;
                s.spawn(move || f(r, c))
            })
            .collect();
        hs.into_iter()
            .enumerate()
            .map(|(r, h)| {
                h.join()
                    .unwrap_or_else(|_| Err(TrainError::Invalid(format!("rank {r} panicked"))))
            })
            .collect()
    });
    let secondary = |e: &TrainError| e.to_string().contains("left the group");
    let failed = results
        .iter()
        .position(|x| x.as_ref().is_err_and(|e| !secondary(e)))
        .or_else(|| results.iter().position(Result::is_err));
    if let Some(r) = failed {
        let e = results.into_iter().nth(r).and_then(Result::err);
        let e = e.expect("position found an error");
        return Err(TrainError::Invalid(format!(
            "rank {r} (tp rank {}, dp rank {}): {e}",
            r % tp,
            r / tp
        )));
    }
    Ok(results.into_iter().map(|x| x.expect("no errors")).collect())
}

/// A GRPO run on one rank of a `tp × dp` mesh (every rank runs one, in lockstep).
pub struct TpTrainer<T: Task> {
    pub cfg: GrpoConfig,
    pub learner: TpLearner,
    pub task: T,
    pub rng: Rng,
    /// GRPO steps completed.
    pub step: usize,
    pub comms: RankComms,
    settings: StepSettings,
    side_files: Option<PathBuf>,
}

impl<T: Task> TpTrainer<T> {
    /// A fresh run: this rank's shard of `cfg.model` (the reference, when `beta != 0`, is a
    /// second copy of it).
    pub fn new(
        cfg: GrpoConfig,
        task: T,
        eos_token_ids: Vec<u32>,
        comms: RankComms,
    ) -> Result<Self> {
        cfg.validate()?;
        let (tp, rank) = (comms.tp.world_size(), comms.tp_rank());
        let model = TpModel::load(&cfg.model, DType::F32, tp, rank)?;
        let opt = AdamW::new(&model.local, cfg.optim_config())?;
        let reference = match cfg.beta != 0.0 {
            true => Some(TpModel::load(&cfg.model, DType::F32, tp, rank)?),
            false => None,
        };
        Ok(TpTrainer {
            rng: Rng::new(cfg.seed),
            learner: TpLearner::new(model, opt, reference)?,
            task,
            step: 0,
            settings: StepSettings::from_config(&cfg, eos_token_ids),
            side_files: cfg.model.is_dir().then(|| cfg.model.clone()),
            cfg,
            comms,
        })
    }

    /// Continues the run saved in `dir` (by any `tp × dp`, or a single process): weights and
    /// AdamW state are copied as this rank's slices out of the mapped files (under ZeRO-1
    /// only its DP range of them). `cfg` may change only steps, save_steps and output_dir.
    pub fn resume(
        cfg: GrpoConfig,
        dir: &Path,
        mut task: T,
        eos_token_ids: Vec<u32>,
        comms: RankComms,
    ) -> Result<Self> {
        let state = checkpoint::load_state_for(dir, &cfg)?;
        let (tp, rank) = (comms.tp.world_size(), comms.tp_rank());
        let model = TpModel::load(dir, DType::F32, tp, rank)?;
        let (plan, local) = (&model.plan, &model.local);
        let master = local.params.embed.dtype() != DType::F32;
        let file = StateFile::open(&dir.join(OPTIMIZER_FILE), &plan.full, master)?;
        let (optim, step) = (cfg.optim_config(), state.optimizer_step);
        // Under ZeRO-1 the rank's TP slice is cut again to its DP range as it is read, so
        // neither the full state nor the TP shard's is ever held.
        let (opt, zero) = match (cfg.zero1, &comms.dp) {
            (true, Some(dp)) => (
                empty_state(&local.config, optim, master, step)?,
                Some(Zero1::from_file(
                    &file,
                    plan,
                    local,
                    dp.rank(),
                    dp.world_size(),
                )?),
            ),
            _ => (file.load(plan, optim, step)?, None),
        };
        drop(file);
        let reference = match cfg.beta != 0.0 {
            true => Some(TpModel::load(&cfg.model, DType::F32, tp, rank)?),
            false => None,
        };
        task.restore(&state.cursor)?;
        let mut learner = TpLearner::new(model, opt, reference)?;
        learner.zero = zero;
        Ok(TpTrainer {
            rng: Rng::from_state(state.rng)?,
            learner,
            task,
            step: state.step,
            settings: StepSettings::from_config(&cfg, eos_token_ids),
            side_files: Some(dir.to_path_buf()),
            cfg,
            comms,
        })
    }

    /// With `zero1` and a DP group, shards this TP rank's optimizer state over its DP group
    /// on first use (a fresh state or one resumed from any checkpoint).
    fn ensure_zero(&mut self) -> Result<()> {
        if let (true, None, Some(dp)) = (self.cfg.zero1, &self.learner.zero, &self.comms.dp) {
            let l = &mut self.learner;
            let (rank, world) = (dp.rank(), dp.world_size());
            l.zero = Some(Zero1::new(&mut l.opt, &l.model.local, rank, world)?);
        }
        Ok(())
    }

    /// Runs one step; returns its metrics line (whole-batch values on every rank; the
    /// communication volume is this rank's, TP and DP together).
    pub fn step_once(&mut self) -> Result<StepMetrics> {
        self.ensure_zero()?;
        let t0 = Instant::now();
        let prompts = self.task.next_problems(self.cfg.per_step_problems)?;
        let seed = self.rng.next_u64();
        let lr = self.cfg.lr_at(self.step);
        let mut tp = CountingComm::new(self.comms.tp.as_mut());
        let report = grpo_step_tp(
            &mut self.learner,
            &self.settings,
            &prompts,
            &self.task,
            seed,
            lr,
            &mut tp,
            self.comms.dp.as_mut(),
        )?;
        let c = tp.counts;
        self.step += 1;
        let mut m = StepMetrics::from_report(
            self.step,
            lr,
            &report,
            self.task.skipped(),
            t0.elapsed().as_secs_f64(),
        );
        m.comm_bytes = c.all_reduce_bytes + c.all_gather_bytes + c.other_bytes;
        m.comm_collectives = c.all_reduce_calls + c.all_gather_calls + c.other_calls;
        m.optimizer_state_bytes = match &self.learner.zero {
            Some(z) => z.state_bytes(),
            None => full_state_bytes(&self.learner.opt),
        };
        if let Some(dp) = self.comms.dp.as_mut() {
            m.dp_world = dp.world_size();
            let (bytes, calls) = dp.take_volume();
            m.comm_bytes += bytes;
            m.comm_collectives += calls;
        }
        Ok(m)
    }

    /// Streams the TP group's shards (weights and AdamW moments, one full tensor at a time)
    /// into `checkpoint-<step>`, written by the main rank; a collective over the TP group of
    /// DP rank 0 (and, under ZeRO-1, over every DP group first: the moments are gathered into
    /// the unsharded layout, so any run resumes from it with or without ZeRO-1).
    pub fn save(&mut self) -> Result<Option<PathBuf>> {
        // Under ZeRO-1 every DP rank first contributes its share of the moments.
        let gathered = match (&self.learner.zero, self.comms.dp.as_mut()) {
            (Some(z), Some(dp)) => {
                Some(z.gather_state(dp, &self.learner.opt, &self.learner.model.local)?)
            }
            _ => None,
        };
        if self.comms.dp_rank() != 0 {
            return Ok(None);
        }
        let plan = &self.learner.model.plan;
        let tp = self.comms.tp.as_mut();
        let main = plan.rank == 0;
        let begun = main.then(|| checkpoint::begin(&self.cfg.output_dir, self.step));
        let dir = begun.as_ref().and_then(|b| b.as_ref().ok());
        let file = |name: &str| dir.map(|d| d.join(name));
        let (model_file, opt_file) = (file("model.safetensors"), file(OPTIMIZER_FILE));
        let opt = gathered.as_ref().unwrap_or(&self.learner.opt);
        let local = [("", &self.learner.model.local.params)];
        let weights = save_file(plan, tp, &local, model_file.as_deref(), DType::F32);
        let mut parts = vec![("m.", &opt.m), ("v.", &opt.v)];
        parts.extend(opt.master.as_ref().map(|p| ("master.", p)));
        let moments = save_file(plan, tp, &parts, opt_file.as_deref(), DType::F32);
        let streamed = weights.and(moments).map_err(TrainError::from);
        let written = match begun {
            Some(begun) => begun.and_then(|tmp| {
                streamed?;
                checkpoint::write_hf_config(&plan.full, &tmp)?;
                checkpoint::copy_side_files(&tmp, self.side_files.as_deref())?;
                let state = checkpoint::TrainerState::new(
                    &self.cfg,
                    self.step,
                    opt.step,
                    self.rng.state(),
                    self.task.cursor(),
                );
                checkpoint::finish(&self.cfg.output_dir, &tmp, &state).map(Some)
            }),
            None => streamed.map(|()| None),
        };
        // Everyone waits for the write, even a failed one, so no rank is left in a collective.
        tp.barrier().map_err(ModelError::Comm)?;
        written
    }

    /// Trains until `cfg.steps`; the main rank writes metrics, shows the bar and saves
    /// checkpoints every `save_steps` and at the end.
    pub fn run(&mut self, progress: bool) -> Result<Vec<StepMetrics>> {
        run_steps(self, progress)
    }
}

impl<T: Task> Steps for TpTrainer<T> {
    fn config(&self) -> &GrpoConfig {
        &self.cfg
    }
    fn steps_done(&self) -> usize {
        self.step
    }
    fn main_rank(&self) -> bool {
        self.comms.is_main()
    }
    fn take_step(&mut self) -> Result<StepMetrics> {
        self.step_once()
    }
    fn checkpoint(&mut self) -> Result<()> {
        self.save()?;
        Ok(())
    }
}
