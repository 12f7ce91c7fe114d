//! SFT examples: JSONL records (`{"prompt", "completion"}` or `{"messages": [...]}`) turned into
//! token ids plus a loss mask that selects the completion / assistant tokens.

use std::io::{BufRead, BufReader};
use std::path::Path;

use model::{Message, Tokenizer};
use serde_json::Value;

use super::error::{io_err, Result, SftError};

/// One tokenised training sequence. `loss_mask[i]` says whether token `i` is a training target
/// (predicted from the tokens before it); token 0 can never be one.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    pub ids: Vec<u32>,
    pub loss_mask: Vec<bool>,
}

impl Example {
    pub fn new(ids: Vec<u32>, loss_mask: Vec<bool>) -> Result<Self> {
        if ids.len() != loss_mask.len() || ids.is_empty() {
            return Err(SftError::Invalid(format!(
                "example needs equal, non-zero numbers of ids and mask entries (got {} and {})",
                ids.len(),
                loss_mask.len()
            )));
        }
        Ok(Example { ids, loss_mask })
    }

    /// Number of tokens that contribute to the loss.
    pub fn target_count(&self) -> usize {
        self.loss_mask.iter().skip(1).filter(|&&m| m).count()
    }

    /// Keeps the first `max_len` tokens; returns whether anything was cut.
    pub fn truncate(&mut self, max_len: usize) -> bool {
        let cut = self.ids.len() > max_len;
        self.ids.truncate(max_len);
        self.loss_mask.truncate(max_len);
        cut
    }
}

/// A parsed data line, before tokenisation.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// Plain text: BOS + prompt + completion + EOS, loss on the completion and EOS.
    Text { prompt: String, completion: String },
    /// A conversation rendered with the chat template; loss on the messages flagged `true`.
    Chat {
        messages: Vec<Message>,
        trained: Vec<bool>,
    },
}

fn messages(v: &Value, field: &str) -> std::result::Result<Vec<Message>, String> {
    let arr = v
        .as_array()
        .ok_or_else(|| format!("`{field}` must be a list of messages"))?;
    arr.iter()
        .enumerate()
        .map(|(i, m)| {
            let get = |k: &str| {
                m.get(k)
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("`{field}[{i}]` needs a string `{k}` (got {m})"))
            };
            Ok(Message::new(get("role")?, get("content")?))
        })
        .collect()
}

impl Record {
    /// Reads one JSON object; the message says what is wrong, for a `file:line:` prefix.
    pub fn from_json(v: &Value) -> std::result::Result<Record, String> {
        let o = v.as_object().ok_or("expected a JSON object")?;
        let (p, c, m) = (o.get("prompt"), o.get("completion"), o.get("messages"));
        match (p, c, m) {
            (None, None, Some(m)) => {
                let messages = messages(m, "messages")?;
                let trained: Vec<bool> = messages.iter().map(|m| m.role == "assistant").collect();
                if !trained.contains(&true) {
                    return Err("`messages` has no assistant message to train on".into());
                }
                Ok(Record::Chat { messages, trained })
            }
            (Some(Value::String(p)), Some(Value::String(c)), None) => Ok(Record::Text {
                prompt: p.clone(),
                completion: c.clone(),
            }),
            // TRL's conversational prompt-completion: both sides are message lists.
            (Some(p @ Value::Array(_)), Some(c @ Value::Array(_)), None) => {
                let mut messages = messages(p, "prompt")?;
                let completion = messages_nonempty(c)?;
                let mut trained = vec![false; messages.len()];
                trained.extend(std::iter::repeat_n(true, completion.len()));
                messages.extend(completion);
                Ok(Record::Chat { messages, trained })
            }
            (Some(_), Some(_), None) => {
                Err("`prompt` and `completion` must both be strings or both message lists".into())
            }
            (_, _, Some(_)) => {
                Err("use either `messages` or `prompt`/`completion`, not both".into())
            }
            _ => Err("expected `prompt` and `completion`, or `messages`".into()),
        }
    }
}

fn messages_nonempty(c: &Value) -> std::result::Result<Vec<Message>, String> {
    let m = messages(c, "completion")?;
    if m.is_empty() {
        return Err("`completion` has no messages".into());
    }
    Ok(m)
}

/// Tokenises records the way the model will see them (chat template, BOS/EOS).
pub struct Encoder {
    tok: Tokenizer,
    eos: Option<u32>,
}

fn eos_from_dir(dir: &Path, tok: &Tokenizer) -> Result<Option<u32>> {
    let path = dir.join("tokenizer_config.json");
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| SftError::Line {
            path: path.clone(),
            line: e.line(),
            msg: format!("invalid JSON: {e}"),
        })?;
        let name = match v.get("eos_token") {
            Some(Value::String(s)) => Some(s.as_str()),
            Some(Value::Object(o)) => o.get("content").and_then(Value::as_str),
            _ => None,
        };
        if let Some(id) = name.and_then(|n| tok.token_to_id(n)) {
            return Ok(Some(id));
        }
    }
    let cfg = model::LlamaConfig::from_file(&dir.join("config.json"))?;
    Ok(cfg.eos_token_ids.first().copied())
}

impl Encoder {
    /// `eos` is appended after plain-text completions (none when `None`).
    pub fn new(tok: Tokenizer, eos: Option<u32>) -> Self {
        Encoder { tok, eos }
    }

    /// The model folder's tokenizer; EOS from `tokenizer_config.json`'s `eos_token`, else the
    /// first `eos_token_id` of `config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let tok = Tokenizer::from_dir(dir)?;
        let eos = eos_from_dir(dir, &tok)?;
        Ok(Encoder { tok, eos })
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tok
    }

    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    pub fn encode(&self, r: &Record) -> Result<Example> {
        match r {
            Record::Text { prompt, completion } => {
                let mut ids = self.tok.encode(prompt, true)?;
                let n_prompt = ids.len();
                ids.extend(self.tok.encode(completion, false)?);
                ids.extend(self.eos);
                let mask = (0..ids.len()).map(|i| i >= n_prompt).collect();
                Example::new(ids, mask)
            }
            Record::Chat { messages, trained } => self.encode_chat(messages, trained),
        }
    }

    /// Tokens of message `i` are located by rendering the conversation up to it: they start
    /// where the prefix (plus the generation prompt before an assistant turn) ends and stop
    /// where the prefix including message `i` ends. Both must be token prefixes of the whole.
    fn encode_chat(&self, messages: &[Message], trained: &[bool]) -> Result<Example> {
        let ids = self.tok.encode_chat(messages, false)?;
        let mut mask = vec![false; ids.len()];
        let prefix_len = |ms: &[Message], gen: bool| -> Result<usize> {
            let p = self.tok.encode_chat(ms, gen)?;
            if p.len() > ids.len() || p[..] != ids[..p.len()] {
                return Err(SftError::Invalid(
                    "the chat template does not render a conversation's beginning as a token \
                     prefix of the whole, so the assistant tokens cannot be located"
                        .into(),
                ));
            }
            Ok(p.len())
        };
        for (i, _) in trained.iter().enumerate().filter(|(_, &t)| t) {
            let gen = messages[i].role == "assistant";
            let start = prefix_len(&messages[..i], gen)?;
            let end = prefix_len(&messages[..=i], false)?;
            mask[start..end.max(start)]
                .iter_mut()
                .for_each(|m| *m = true);
        }
        Example::new(ids, mask)
    }
}

/// Reads and tokenises a JSONL file (blank lines skipped). Every error names the file and the
/// 1-based line.
pub fn load_jsonl(path: &Path, enc: &Encoder) -> Result<Vec<Example>> {
    let f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(io_err(path))?;
        if line.trim().is_empty() {
            continue;
        }
        let at = |msg: String| SftError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            msg,
        };
        let v: Value = serde_json::from_str(&line).map_err(|e| at(format!("invalid JSON: {e}")))?;
        let rec = Record::from_json(&v).map_err(at)?;
        let ex = enc.encode(&rec).map_err(|e| at(e.to_string()))?;
        if ex.target_count() == 0 {
            return Err(at("no tokens to train on (empty completion?)".into()));
        }
        out.push(ex);
    }
    if out.is_empty() {
        return Err(SftError::Invalid(format!(
            "{}: no examples (the file is empty)",
            path.display()
        )));
    }
    Ok(out)
}
