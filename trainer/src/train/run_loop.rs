//! The step/metrics/checkpoint loop shared by the single-process and tensor-parallel
//! trainers, so the two cannot drift in when they write metrics or save.

use indicatif::{ProgressBar, ProgressStyle};

use super::metrics::{MetricsWriter, StepMetrics};
use super::Result;
use crate::config::GrpoConfig;

/// What the loop needs from a trainer.
pub trait Steps {
    fn config(&self) -> &GrpoConfig;
    /// GRPO steps completed so far.
    fn steps_done(&self) -> usize;
    /// True on the rank that writes metrics and shows the bar.
    fn main_rank(&self) -> bool;
    fn take_step(&mut self) -> Result<StepMetrics>;
    /// Saves a checkpoint; every rank calls it (the save may be collective).
    fn checkpoint(&mut self) -> Result<()>;
}

/// Trains until `steps`; the main rank writes metrics and shows the bar (if `progress`),
/// and a checkpoint is saved every `save_steps` and at the end.
pub fn run_steps(t: &mut impl Steps, progress: bool) -> Result<Vec<StepMetrics>> {
    let main = t.main_rank();
    let (steps, save_steps) = (t.config().steps, t.config().save_steps);
    let mut writer = match main {
        true => Some(MetricsWriter::open(&t.config().output_dir, t.steps_done())?),
        false => None,
    };
    let bar = match progress && main {
        true => ProgressBar::new(steps as u64),
        false => ProgressBar::hidden(),
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps [{elapsed_precise}<{eta_precise}] {msg}",
        )
        .expect("static template"),
    );
    bar.set_position(t.steps_done() as u64);
    let mut all = Vec::new();
    while t.steps_done() < steps {
        let m = t.take_step()?;
        if let Some(w) = writer.as_mut() {
            w.write(&m)?;
        }
        bar.set_message(format!(
            "reward {:.3} loss {:.4} kl {:.4} len {:.0}",
            m.reward_mean, m.loss, m.kl, m.completion_length_mean
        ));
        bar.inc(1);
        let step = t.steps_done();
        if step == steps || (save_steps > 0 && step.is_multiple_of(save_steps)) {
            t.checkpoint()?;
        }
        all.push(m);
    }
    bar.finish();
    Ok(all)
}
