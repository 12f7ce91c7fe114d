//! Forward parity with transformers on the fixture folder: logits, every hidden state, loss.

mod model_support;

use model::layers::lm_head::shifted_targets;
use model::{Activations, Llama};
use model_support::*;

#[test]
fn logits_hidden_states_and_loss_match_reference() {
    let dir = fixture_dir();
    let m = Llama::load(&dir).expect("load fixture model");
    let r = reference();
    let ids = &r["input_ids"];
    let (b, t) = (ids.dim(0), ids.dim(1));
    let ids = m.ids_tensor(&id_rows(ids)).unwrap();
    let mut acts = Activations::new(&m.config, b, t, false, &m.device).unwrap();
    m.forward(&ids, &mut acts).unwrap();

    let err = max_abs_diff(&acts.logits, &r["logits"]);
    assert!(err <= 1e-4, "logits max-abs error {err}");
    let hs = acts.hidden_states();
    assert_eq!(hs.len(), m.config.num_layers + 1);
    for (i, h) in hs.iter().enumerate() {
        let err = max_abs_diff(h, &r[&format!("hidden_states.{i}")]);
        assert!(err <= 1e-4, "hidden_states.{i} max-abs error {err}");
    }

    let flat = ids.to_vec::<i64>().unwrap();
    let targets = shifted_targets(&flat, b, t, None).unwrap();
    let loss = m.loss(&mut acts, &targets).unwrap();
    let want = r["loss"].to_scalar().unwrap();
    assert_eq!(loss.count, b * (t - 1));
    assert!(
        ((loss.mean - want) / want).abs() <= 1e-5,
        "loss {} vs reference {want}",
        loss.mean
    );
}

#[test]
fn recompute_mode_gives_the_same_logits() {
    let m = Llama::load(&fixture_dir()).unwrap();
    let r = reference();
    let ids = m.ids_tensor(&id_rows(&r["input_ids"])).unwrap();
    let (b, t) = (ids.dim(0), ids.dim(1));
    let mut a = Activations::new(&m.config, b, t, false, &m.device).unwrap();
    let mut c = Activations::new(&m.config, b, t, true, &m.device).unwrap();
    m.forward(&ids, &mut a).unwrap();
    m.forward(&ids, &mut c).unwrap();
    assert_eq!(
        a.logits.to_f32_vec().unwrap(),
        c.logits.to_f32_vec().unwrap()
    );
    assert!(c.bytes() < a.bytes());
}
