//! SFT training: loss falls, a random-init model memorises a sequence and generates it back,
//! accumulated micro-batches equal one batch, and the schedule/clipping reach the optimizer.

mod sft_support;

use model::optim::{OptimConfig, Schedule};
use model::{GenerateConfig, Llama};
use runtime::DType;
use sft_support::*;
use trainer::sft::{make_batches, Encoder, Example, Packing, Record, SftConfig, Trainer};

fn encode_all(enc: &Encoder, lines: &[serde_json::Value]) -> Vec<Example> {
    lines
        .iter()
        .map(|l| enc.encode(&Record::from_json(l).unwrap()).unwrap())
        .collect()
}

#[test]
fn loss_falls_on_a_small_dataset() {
    let enc = Encoder::from_dir(&fixture_dir()).unwrap();
    let examples = encode_all(&enc, &small_dataset());
    let model = Llama::random(tiny_config(), DType::F32, 7).unwrap();
    let cfg = SftConfig {
        optim: OptimConfig {
            lr: 1e-2,
            warmup_steps: 2,
            schedule: Schedule::Cosine {
                total_steps: 0,
                min_ratio: 0.1,
            },
            ..OptimConfig::default()
        },
        batch_size: 4,
        epochs: 15,
        max_seq_len: 64,
        seed: 3,
        ..SftConfig::default()
    };
    let mut tr = Trainer::new(model, cfg).unwrap();
    let mut losses = vec![];
    let s = tr
        .fit(&examples, |s| {
            assert!(s.grad_norm.is_finite() && s.tokens > 0);
            losses.push(s.loss);
            Ok(())
        })
        .unwrap();
    assert_eq!(
        s.steps, 30,
        "8 examples / batch 4 = 2 steps per epoch x 15 epochs"
    );
    assert_eq!(losses.len(), 30);
    let head: f64 = losses[..2].iter().sum::<f64>() / 2.0;
    let tail: f64 = losses[28..].iter().sum::<f64>() / 2.0;
    // A random model starts near ln(2048) = 7.6 nats.
    assert!(head > 6.0, "first losses {:?}", &losses[..2]);
    assert!(tail < 0.5 * head, "loss did not fall: {losses:?}");
}

#[test]
fn random_model_memorises_one_sequence_and_generates_it_greedily() {
    let enc = Encoder::from_dir(&fixture_dir()).unwrap();
    let rec = Record::Text {
        prompt: "def add(a, b):".into(),
        completion: "\n    return a + b  # sum\n".into(),
    };
    let ex = enc.encode(&rec).unwrap();
    let model = Llama::random(tiny_config(), DType::F32, 11).unwrap();
    let cfg = SftConfig {
        optim: OptimConfig {
            lr: 1e-2,
            schedule: Schedule::Constant,
            ..OptimConfig::default()
        },
        batch_size: 1,
        max_steps: Some(60),
        max_seq_len: 64,
        ..SftConfig::default()
    };
    let mut tr = Trainer::new(model, cfg).unwrap();
    let s = tr.fit(std::slice::from_ref(&ex), |_| Ok(())).unwrap();
    assert!(
        s.last_loss < 0.05,
        "loss {} -> {}",
        s.first_loss,
        s.last_loss
    );
    let model = tr.into_model();

    let n_prompt = ex.loss_mask.iter().position(|&m| m).unwrap();
    let prompt = ex.ids[..n_prompt].to_vec();
    let want = ex.ids[n_prompt..].to_vec();
    let eos = enc.eos().unwrap();
    assert_eq!(*want.last().unwrap(), eos);
    let got = model
        .generate(
            &[prompt],
            &GenerateConfig::greedy(want.len() + 5, vec![eos]),
        )
        .unwrap();
    assert_eq!(
        got[0],
        want,
        "generated {:?}",
        enc.tokenizer().decode(&got[0], false)
    );
}

#[test]
fn accumulated_micro_batches_give_the_gradient_of_one_batch() {
    let enc = Encoder::from_dir(&fixture_dir()).unwrap();
    let examples = encode_all(&enc, &small_dataset()[..4]);
    let order = [0, 1, 2, 3];
    let one = make_batches(&examples, &order, 4, Packing::Pad, 64, 1).unwrap();
    let micro = make_batches(&examples, &order, 1, Packing::Pad, 64, 1).unwrap();
    assert_eq!((one.len(), micro.len()), (1, 4));
    let model = || Llama::random(tiny_config(), DType::F32, 5).unwrap();
    let cfg = SftConfig {
        max_seq_len: 64,
        ..SftConfig::default()
    };
    let mut a = Trainer::new(model(), cfg.clone()).unwrap();
    let mut b = Trainer::new(model(), cfg).unwrap();
    let (la, na) = a.accumulate(&one).unwrap();
    let (lb, nb) = b.accumulate(&micro).unwrap();
    assert_eq!(na, nb);
    assert!((la - lb).abs() < 1e-5 * la, "{la} vs {lb}");
    for ((name, ga), gb) in a
        .grads()
        .named(&a.model().config)
        .iter()
        .zip(b.grads().tensors())
    {
        let (x, y) = (ga.to_f32_vec().unwrap(), gb.to_f32_vec().unwrap());
        let diff: f64 = x
            .iter()
            .zip(&y)
            .map(|(p, q)| ((p - q) as f64).powi(2))
            .sum();
        let norm: f64 = x.iter().map(|p| (*p as f64).powi(2)).sum();
        assert!(
            diff.sqrt() <= 1e-5 * norm.sqrt() + 1e-9,
            "{name}: {}",
            diff.sqrt() / norm.sqrt()
        );
    }
}
