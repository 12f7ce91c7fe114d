//! Model folders: save/load round trip, both config/template layouts, sharded weights,
//! dtype conversion, and clear errors for broken files.

mod model_support;

use std::path::Path;

use model::safetensors_io::{self, read_all};
use model::{Activations, Llama, Message, ModelError, Tokenizer};
use model_support::*;
use runtime::{DType, Tensor};

fn logits(m: &Llama) -> Vec<f32> {
    let ids = m.ids_tensor(&id_rows(&reference()["input_ids"])).unwrap();
    let mut a = Activations::new(&m.config, ids.dim(0), ids.dim(1), false, &m.device).unwrap();
    m.forward(&ids, &mut a).unwrap();
    a.logits.to_f32_vec().unwrap()
}

/// A copy of the fixture folder (model files only) to break or rewrite.
fn copy_fixture(to: &Path) {
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(fixture_dir().join(f), to.join(f)).unwrap();
    }
}

#[test]
fn load_save_load_gives_identical_logits() {
    let src = fixture_dir();
    let m = Llama::load(&src).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("saved");
    m.save(&out, DType::F32, Some(&src)).unwrap();
    for f in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(out.join(f).exists(), "{f} not written");
    }
    let back = Llama::load(&out).unwrap();
    assert_eq!(back.config, Llama::load(&out).unwrap().config);
    assert_eq!(logits(&m), logits(&back));
    let (a, b) = (m.config.clone(), back.config.clone());
    assert_eq!(
        (a.eos_token_ids, a.rope_theta, a.num_kv_heads),
        (b.eos_token_ids, b.rope_theta, b.num_kv_heads)
    );
    // The saved tokenizer renders the same chat.
    let msgs = [Message::new("user", "hi")];
    assert_eq!(
        Tokenizer::from_dir(&out)
            .unwrap()
            .apply_chat_template(&msgs, true)
            .unwrap(),
        Tokenizer::from_dir(&src)
            .unwrap()
            .apply_chat_template(&msgs, true)
            .unwrap()
    );
}

#[test]
fn newer_transformers_layout_loads_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let p = dir.path();
    // config.json: rope_parameters + dtype; chat template moved to chat_template.jinja.
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.join("config.json")).unwrap()).unwrap();
    let o = cfg.as_object_mut().unwrap();
    let theta = o.remove("rope_theta").unwrap_or(serde_json::json!(10000.0));
    o.remove("rope_scaling");
    o.insert(
        "rope_parameters".into(),
        serde_json::json!({"rope_type": "default", "rope_theta": theta}),
    );
    let dt = o
        .remove("torch_dtype")
        .unwrap_or(serde_json::json!("float32"));
    o.insert("dtype".into(), dt);
    std::fs::write(p.join("config.json"), serde_json::to_string(&cfg).unwrap()).unwrap();
    let tc_path = p.join("tokenizer_config.json");
    let mut tc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&tc_path).unwrap()).unwrap();
    let tpl = tc.as_object_mut().unwrap().remove("chat_template").unwrap();
    std::fs::write(p.join("chat_template.jinja"), tpl.as_str().unwrap()).unwrap();
    std::fs::write(&tc_path, serde_json::to_string(&tc).unwrap()).unwrap();

    let orig = Llama::load(&fixture_dir()).unwrap();
    let m = Llama::load(p).unwrap();
    assert_eq!(logits(&orig), logits(&m));
    let r = reference_json();
    let msgs: Vec<Message> = serde_json::from_value(r["chat_messages"].clone()).unwrap();
    let text = Tokenizer::from_dir(p)
        .unwrap()
        .apply_chat_template(&msgs, true)
        .unwrap();
    assert_eq!(text, r["chat_text"].as_str().unwrap());
}

#[test]
fn sharded_weights_with_an_index_load() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::copy(fixture_dir().join("config.json"), p.join("config.json")).unwrap();
    let all = read_all(&fixture_dir().join("model.safetensors")).unwrap();
    let names: Vec<&String> = all.keys().collect();
    let (a, b) = names.split_at(names.len() / 2);
    let mut map = serde_json::Map::new();
    for (shard, part) in [
        ("model-00001-of-00002.safetensors", a),
        ("model-00002-of-00002.safetensors", b),
    ] {
        let tensors: Vec<(String, &Tensor)> =
            part.iter().map(|n| ((*n).clone(), &all[*n])).collect();
        safetensors_io::save(&p.join(shard), &tensors, DType::F32).unwrap();
        for n in part {
            map.insert((*n).clone(), serde_json::json!(shard));
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(p.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let m = Llama::load(p).unwrap();
    assert_eq!(logits(&m), logits(&Llama::load(&fixture_dir()).unwrap()));
}

#[test]
fn bf16_save_rounds_weights_and_loads_back() {
    let m = Llama::load(&fixture_dir()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    m.save(dir.path(), DType::BF16, None).unwrap();
    let raw = read_all(&dir.path().join("model.safetensors")).unwrap();
    assert!(raw.values().all(|t| t.dtype() == DType::BF16));
    let back = Llama::load(dir.path()).unwrap();
    assert_eq!(back.config.dtype, Some(DType::BF16));
    let want = m.params.layers[0]
        .wq
        .cast(DType::BF16)
        .unwrap()
        .to_f32_vec()
        .unwrap();
    assert_eq!(back.params.layers[0].wq.to_f32_vec().unwrap(), want);
    let bf = Llama::load_as(dir.path(), DType::BF16).unwrap();
    assert_eq!(bf.params.embed.dtype(), DType::BF16);
    let err = (logits(&bf)
        .iter()
        .zip(logits(&m))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)) as f64;
    assert!(err < 0.5, "bf16 weights drift too far: {err}");
}

fn load_err(p: &Path) -> ModelError {
    match Llama::load(p) {
        Ok(_) => panic!("loading {} should fail", p.display()),
        Err(e) => e,
    }
}

#[test]
fn truncated_or_corrupt_safetensors_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let f = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() - 100]).unwrap();
    let e = load_err(dir.path());
    assert!(matches!(e, ModelError::Safetensors { .. }), "{e}");
    assert!(e.to_string().contains("model.safetensors"), "{e}");

    let mut bad = bytes.clone();
    bad[8..16].copy_from_slice(b"not json");
    std::fs::write(&f, &bad).unwrap();
    assert!(matches!(
        load_err(dir.path()),
        ModelError::Safetensors { .. }
    ));

    std::fs::write(&f, &bytes[..4]).unwrap();
    assert!(matches!(
        load_err(dir.path()),
        ModelError::Safetensors { .. }
    ));

    std::fs::remove_file(&f).unwrap();
    let e = load_err(dir.path());
    assert!(e.to_string().contains("model.safetensors"), "{e}");
}

#[test]
fn missing_or_misshaped_tensors_are_named_with_shapes() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let f = dir.path().join("model.safetensors");
    let all = read_all(&f).unwrap();
    let victim = "model.layers.1.mlp.up_proj.weight";
    let without: Vec<(String, &Tensor)> = all
        .iter()
        .filter(|(n, _)| *n != victim)
        .map(|(n, t)| (n.clone(), t))
        .collect();
    safetensors_io::save(&f, &without, DType::F32).unwrap();
    match load_err(dir.path()) {
        ModelError::MissingTensor { name, .. } => assert_eq!(name, victim),
        e => panic!("expected MissingTensor, got {e}"),
    }

    let shape = all[victim].shape().to_vec();
    let wrong = all[victim].reshape(&[shape[1], shape[0]]).unwrap();
    let mut swapped: Vec<(String, &Tensor)> = without.clone();
    swapped.push((victim.to_string(), &wrong));
    safetensors_io::save(&f, &swapped, DType::F32).unwrap();
    let e = load_err(dir.path());
    match &e {
        ModelError::ShapeMismatch {
            name,
            expected,
            found,
            ..
        } => {
            assert_eq!(name, victim);
            assert_eq!(expected, &shape);
            assert_eq!(found, &vec![shape[1], shape[0]]);
        }
        e => panic!("expected ShapeMismatch, got {e}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains(victim) && msg.contains(&format!("{shape:?}")),
        "{msg}"
    );
}

#[test]
fn unsupported_config_is_an_error_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let p = dir.path().join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    cfg["attention_bias"] = serde_json::json!(true);
    std::fs::write(&p, cfg.to_string()).unwrap();
    let e = load_err(dir.path());
    assert!(
        matches!(e, ModelError::Unsupported(_)) && e.to_string().contains("attention_bias"),
        "{e}"
    );
}
