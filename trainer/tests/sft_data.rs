//! SFT data: loss masks select exactly the completion / assistant tokens, and bad lines are
//! errors naming the file and line.

mod sft_support;

use model::Message;
use serde_json::json;
use sft_support::*;
use trainer::sft::{load_jsonl, Encoder, Record, SftError};

fn masked_text(enc: &Encoder, ids: &[u32], mask: &[bool]) -> String {
    let sel: Vec<u32> = ids
        .iter()
        .zip(mask)
        .filter(|(_, &m)| m)
        .map(|(&i, _)| i)
        .collect();
    enc.tokenizer().decode(&sel, false).unwrap()
}

#[test]
fn prompt_completion_trains_on_completion_and_eos_only() {
    let enc = Encoder::from_dir(&fixture_dir()).unwrap();
    let rec = Record::from_json(&json!({"prompt": "def f(x):", "completion": "\n    return x\n"}))
        .unwrap();
    let ex = enc.encode(&rec).unwrap();
    let bos = enc.tokenizer().token_to_id("<|begin_of_text|>").unwrap();
    assert_eq!(ex.ids[0], bos);
    assert_eq!(enc.eos(), enc.tokenizer().token_to_id("<|eot_id|>"));
    assert_eq!(
        masked_text(&enc, &ex.ids, &ex.loss_mask),
        "\n    return x\n<|eot_id|>"
    );
    let prompt: Vec<u32> = ex
        .ids
        .iter()
        .zip(&ex.loss_mask)
        .filter(|(_, &m)| !m)
        .map(|(&i, _)| i)
        .collect();
    assert_eq!(
        enc.tokenizer().decode(&prompt, false).unwrap(),
        "<|begin_of_text|>def f(x):"
    );
}

#[test]
fn chat_trains_on_every_assistant_turn_with_its_end_token() {
    let enc = Encoder::from_dir(&fixture_dir()).unwrap();
    let v = json!({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Fix foo.py"},
        {"role": "assistant", "content": "Done."},
        {"role": "user", "content": "Thanks"},
        {"role": "assistant", "content": "You are welcome."},
    ]});
    let rec = Record::from_json(&v).unwrap();
    let ex = enc.encode(&rec).unwrap();
    let msgs: Vec<Message> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| Message::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(ex.ids, enc.tokenizer().encode_chat(&msgs, false).unwrap());
    assert_eq!(
        masked_text(&enc, &ex.ids, &ex.loss_mask),
        "Done.<|eot_id|>You are welcome.<|eot_id|>"
    );
}

#[test]
fn conversational_prompt_completion_trains_on_the_completion_messages() {
    let enc = Encoder::from_dir(&fixture_dir()).unwrap();
    let v = json!({
        "prompt": [{"role": "user", "content": "2+2?"}],
        "completion": [{"role": "assistant", "content": "4"}],
    });
    let ex = enc.encode(&Record::from_json(&v).unwrap()).unwrap();
    assert_eq!(masked_text(&enc, &ex.ids, &ex.loss_mask), "4<|eot_id|>");
}

#[test]
fn bad_lines_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let enc = Encoder::from_dir(&fixture_dir()).unwrap();
    let good = r#"{"prompt": "a", "completion": "b"}"#;
    let cases = [
        ("not json {", "invalid JSON"),
        (r#"{"prompt": "a"}"#, "expected `prompt` and `completion`"),
        (
            r#"{"prompt": 1, "completion": "b"}"#,
            "must both be strings",
        ),
        (
            r#"{"messages": [{"role": "user"}]}"#,
            "`messages[0]` needs a string `content`",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "hi"}]}"#,
            "no assistant message",
        ),
        (
            r#"{"messages": [], "prompt": "x", "completion": "y"}"#,
            "not both",
        ),
        ("[1, 2]", "expected a JSON object"),
    ];
    for (bad, want) in cases {
        let path = dir.path().join("data.jsonl");
        // Line 3: a blank line is skipped but still counted.
        std::fs::write(&path, format!("{good}\n\n{bad}\n{good}\n")).unwrap();
        let err = load_jsonl(&path, &enc).unwrap_err();
        assert!(
            matches!(err, SftError::Line { line: 3, .. }),
            "{bad}: {err}"
        );
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("{}:3: ", path.display())), "{msg}");
        assert!(msg.contains(want), "{bad}: {msg}");
    }
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "\n").unwrap();
    assert!(load_jsonl(&empty, &enc)
        .unwrap_err()
        .to_string()
        .contains("empty.jsonl"));
    let missing = dir.path().join("missing.jsonl");
    assert!(load_jsonl(&missing, &enc)
        .unwrap_err()
        .to_string()
        .contains("missing.jsonl"));
}

#[test]
fn a_jsonl_file_loads_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.jsonl");
    write_jsonl(&path, &small_dataset());
    let enc = Encoder::from_dir(&fixture_dir()).unwrap();
    let ex = load_jsonl(&path, &enc).unwrap();
    assert_eq!(ex.len(), small_dataset().len());
    assert!(ex
        .iter()
        .all(|e| e.target_count() > 0 && e.ids.len() == e.loss_mask.len()));
}
