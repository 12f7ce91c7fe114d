//! Tokenizer and chat template against the fixture's transformers outputs.

mod model_support;

use model::{Message, Tokenizer};
use model_support::*;

#[test]
fn encode_examples_match_transformers() {
    let tok = Tokenizer::from_dir(&fixture_dir()).unwrap();
    let r = reference_json();
    let examples = r["encode_examples"].as_array().unwrap();
    assert!(!examples.is_empty());
    for ex in examples {
        let text = ex["text"].as_str().unwrap();
        let want: Vec<u32> = ex["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(tok.encode(text, false).unwrap(), want, "encoding {text:?}");
        assert_eq!(tok.decode(&want, false).unwrap(), text, "decoding {text:?}");
    }
}

#[test]
fn chat_template_renders_and_tokenizes_like_transformers() {
    let tok = Tokenizer::from_dir(&fixture_dir()).unwrap();
    let r = reference_json();
    let msgs: Vec<Message> = serde_json::from_value(r["chat_messages"].clone()).unwrap();
    let text = tok.apply_chat_template(&msgs, true).unwrap();
    assert_eq!(text, r["chat_text"].as_str().unwrap());
    let ids = tok.encode_chat(&msgs, true).unwrap();
    let want = &reference()["chat.input_ids"];
    let want: Vec<u32> = want
        .to_vec::<i64>()
        .unwrap()
        .iter()
        .map(|&x| x as u32)
        .collect();
    assert_eq!(ids, want);
}

#[test]
fn chat_template_from_jinja_file_wins_and_missing_template_is_an_error() {
    let src = fixture_dir();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        src.join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    let none = Tokenizer::from_dir(dir.path()).unwrap();
    let err = none
        .apply_chat_template(&[Message::new("user", "hi")], true)
        .unwrap_err();
    assert!(err.to_string().contains("no chat template"), "{err}");

    std::fs::write(
        dir.path().join("chat_template.jinja"),
        "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}",
    )
    .unwrap();
    let tok = Tokenizer::from_dir(dir.path()).unwrap();
    let text = tok
        .apply_chat_template(
            &[Message::new("system", "s"), Message::new("user", "u")],
            true,
        )
        .unwrap();
    assert_eq!(text, "[system] s\n[user] u\n[assistant]");
}
