//! `swerl plot`: reward, loss and KL curves of a run's `metrics.jsonl` as SVG files.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::train::metrics::{read_metrics, StepMetrics, METRICS_FILE};
use crate::train::{Result, TrainError};

/// A curve: its label and the value it takes at a step.
type Series = (&'static str, fn(&StepMetrics) -> f64);

/// One chart: a title, a file stem and the series it draws (label, value of a step).
struct Chart {
    stem: &'static str,
    title: &'static str,
    series: Vec<Series>,
}

fn charts() -> Vec<Chart> {
    vec![
        Chart {
            stem: "reward",
            title: "reward per step",
            series: vec![
                ("mean", |m| m.reward_mean),
                ("min", |m| m.reward_min),
                ("max", |m| m.reward_max),
            ],
        },
        Chart {
            stem: "loss",
            title: "GRPO loss",
            series: vec![("loss", |m| m.loss)],
        },
        Chart {
            stem: "kl",
            title: "KL to the reference",
            series: vec![("kl", |m| m.kl)],
        },
    ]
}

fn draw(path: &Path, chart: &Chart, metrics: &[StepMetrics]) -> std::result::Result<(), String> {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let xs = metrics.iter().map(|m| m.step as f64);
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    let ys: Vec<f64> = chart
        .series
        .iter()
        .flat_map(|(_, f)| metrics.iter().map(f))
        .filter(|y| y.is_finite())
        .collect();
    let (mut y0, mut y1) = ys
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| {
            (a.min(y), b.max(y))
        });
    if !y0.is_finite() {
        (y0, y1) = (0.0, 1.0);
    }
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    let mut ctx = ChartBuilder::on(&root)
        .caption(chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
        .map_err(|e| e.to_string())?;
    ctx.configure_mesh()
        .x_desc("step")
        .draw()
        .map_err(|e| e.to_string())?;
    let colors = [BLUE, RED, GREEN];
    for (i, (label, f)) in chart.series.iter().enumerate() {
        let color = colors[i % colors.len()];
        let points = metrics
            .iter()
            .map(|m| (m.step as f64, f(m)))
            .filter(|p| p.1.is_finite());
        ctx.draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    if chart.series.len() > 1 {
        ctx.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

/// Writes `reward.svg`, `loss.svg` and `kl.svg` next to the run's metrics; returns their paths.
pub fn plot_run(run_dir: &Path) -> Result<Vec<PathBuf>> {
    let metrics = read_metrics(&run_dir.join(METRICS_FILE))?;
    if metrics.is_empty() {
        return Err(TrainError::Invalid(format!(
            "{}: no metrics lines to plot",
            run_dir.join(METRICS_FILE).display()
        )));
    }
    let mut out = Vec::new();
    for chart in charts() {
        let final_path = run_dir.join(format!("{}.svg", chart.stem));
        // Drawn to a temporary name and renamed, so a reader never sees half a file.
        let tmp = run_dir.join(format!(".{}.svg.tmp", chart.stem));
        draw(&tmp, &chart, &metrics)
            .map_err(|e| TrainError::Invalid(format!("{}: {e}", final_path.display())))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .and_then(|_| std::fs::rename(&tmp, &final_path))
            .map_err(super::train::io_err(&final_path))?;
        out.push(final_path);
    }
    Ok(out)
}

/// A terminal sparkline of the mean reward, for quick looks.
pub fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    values
        .iter()
        .map(|&v| {
            let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
            BARS[((t * 7.0).round() as usize).min(7)]
        })
        .collect()
}
