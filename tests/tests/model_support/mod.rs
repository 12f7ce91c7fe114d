//! Shared helpers of the model fixture tests: the fixture folder (env `SWERL_FIXTURE`,
//! defaulting to the project's copy) and its reference tensors.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use model::layers::lm_head::shifted_targets;
use model::{Activations, GradBuffers, Llama, LlamaParams};
use runtime::Tensor;

pub fn fixture_dir() -> PathBuf {
    match std::env::var_os("SWERL_FIXTURE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tiny-llama")),
    }
}

pub fn reference() -> BTreeMap<String, Tensor> {
    model::safetensors_io::read_all(&fixture_dir().join("reference.safetensors"))
        .expect("reference.safetensors")
}

pub fn reference_json() -> serde_json::Value {
    let p = fixture_dir().join("reference.json");
    serde_json::from_str(&std::fs::read_to_string(&p).expect("reference.json"))
        .expect("reference.json parses")
}

/// Rows of an integer tensor `[B, T]` as token ids.
pub fn id_rows(t: &Tensor) -> Vec<Vec<u32>> {
    let v = t.to_vec::<i64>().unwrap();
    let cols = *t.shape().last().unwrap();
    v.chunks(cols)
        .map(|r| r.iter().map(|&x| x as u32).collect())
        .collect()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.shape(), b.shape(), "shape mismatch");
    let (a, b) = (a.to_f32_vec().unwrap(), b.to_f32_vec().unwrap());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// ‖a − b‖ / ‖b‖ and max |a − b|.
pub fn rel_and_abs(a: &Tensor, b: &Tensor) -> (f64, f64) {
    assert_eq!(a.shape(), b.shape(), "shape mismatch");
    let (a, b) = (a.to_f32_vec().unwrap(), b.to_f32_vec().unwrap());
    let (mut num, mut den, mut mx) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(&b) {
        let d = (*x as f64) - (*y as f64);
        num += d * d;
        den += (*y as f64) * (*y as f64);
        mx = mx.max(d.abs());
    }
    ((num / den.max(1e-30)).sqrt(), mx)
}

/// One training pass on `rows` (next-token loss, mean over tokens): returns the mean loss and
/// every parameter's gradient.
pub fn loss_and_grads(m: &Llama, rows: &[Vec<u32>], recompute: bool) -> (f64, LlamaParams) {
    let ids = m.ids_tensor(rows).unwrap();
    let (b, t) = (ids.dim(0), ids.dim(1));
    let targets = shifted_targets(&ids.to_vec::<i64>().unwrap(), b, t, None).unwrap();
    let mut acts = Activations::new(&m.config, b, t, recompute, &m.device).unwrap();
    let mut bufs = GradBuffers::new(&m.config, b, t, &m.device).unwrap();
    let mut g = m.zero_grads().unwrap();
    m.forward(&ids, &mut acts).unwrap();
    let loss = m.loss(&mut acts, &targets).unwrap();
    m.backward(
        &ids,
        &targets,
        &mut acts,
        &mut g,
        &mut bufs,
        1.0 / loss.count as f32,
    )
    .unwrap();
    (loss.mean, g)
}
