//! The answer parser, the applier and the whole reward against a Python rendering of the
//! reference semantics (`re.findall` with the reference pattern, `str.replace`, `difflib`),
//! plus proptest fuzzing: no input may panic.

mod support;

use proptest::prelude::*;
use serde_json::{json, Value};
use support::{assert_all_equal, mutate, python3, run_python, Rng};
use trainer::reward::search_replace::find_blocks;
use trainer::reward::{calculate_search_replace_reward, Files};

const PY_FINDALL: &str = r#"
import json, re, sys
PAT = re.compile(r"```.*?\n### (.*)\n<<<<<<< SEARCH\n([\s\S]*?)\n=======\n([\s\S]*?)\n>>>>>>> REPLACE\n```")
json.dump([[list(m) for m in PAT.findall(t)] for t in json.load(sys.stdin)], sys.stdout)
"#;

/// The reward as the paper's code computes it, restated (not copied) for the comparison.
const PY_REWARD: &str = r#"
import difflib, json, re, sys
PAT = re.compile(r"```.*?\n### (.*)\n<<<<<<< SEARCH\n([\s\S]*?)\n=======\n([\s\S]*?)\n>>>>>>> REPLACE\n```")

def patch(old, new):
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=3))
    return "\n".join(lines[2:])

def score(ctx, oracle, output):
    fail = lambda msg: {"reward": -1.0, "error": msg, "files": []}
    for tag in ("<think>", "</think>", "<solution>", "</solution>"):
        if output.count(tag) != 1:
            return fail(f"count of {tag} is not 1")
    thought = output.split("<think>")[1].split("</think>")[0].strip()
    answer = output.split("<solution>")[1].split("</solution>")[0].strip()
    if not thought:
        return fail("Thought is empty")
    edits = {}
    for path, s, r in PAT.findall(answer):
        edits.setdefault(path, []).append((s, r))
    if not edits:
        return fail("No valid search blocks found")
    pred = {}
    for path, blocks in edits.items():
        text = "\n" + ctx.get(path, "")
        for s, r in blocks:
            if s == r:
                return fail("Search and replace blocks are identical")
            if "\n" + s not in text:
                return fail("Search block not found in the code: \n" + s)
            text = text.replace("\n" + s, "\n" + r)
        pred[path] = text[1:]
    def patches(new):
        out = {}
        for path, text in new.items():
            d = patch(ctx.get(path, ""), text)
            if d:
                out[path] = d
        return out
    po, pp = patches(oracle), patches(pred)
    files = []
    for path in sorted(set(po) | set(pp)):
        a, b = pp.get(path, ""), po.get(path, "")
        sim = difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() if a and b else 0.0
        files.append([path, a, b, sim])
    reward = sum(f[3] for f in files) / len(files) if files else 1.0
    return {"reward": reward, "error": None, "files": files}

json.dump([score(c["ctx"], c["oracle"], c["output"]) for c in json.load(sys.stdin)], sys.stdout)
"#;

const FRAGMENTS: [&str; 22] = [
    "```",
    "```python\n",
    "\n",
    "### ",
    "### a.py\n",
    "a.py",
    "<<<<<<< SEARCH\n",
    "<<<<<<< SEARCH",
    "=======\n",
    "=======",
    "\n=======\n",
    ">>>>>>> REPLACE\n```",
    ">>>>>>> REPLACE",
    "x",
    "y = 1\n",
    " ",
    "\r\n",
    "é",
    "`",
    "#",
    "\n\n",
    "b/c.py",
];

fn fragment_text(rng: &mut Rng) -> String {
    let n = rng.below(40);
    let mut s = String::new();
    for _ in 0..n {
        if rng.chance(1, 8) {
            let path = rng.pick(&["a.py", "b/c.py", " x.py", "a.py\r"]);
            s += &format!(
                "```{}\n### {path}\n<<<<<<< SEARCH\n{}\n=======\n{}\n>>>>>>> REPLACE\n```",
                rng.pick(&["", "python", " py"]),
                rng.pick(&["", "x", "y = 1", "\n"]),
                rng.pick(&["", "z", "y = 2"])
            );
        } else {
            s += *rng.pick(&FRAGMENTS);
        }
    }
    s
}

#[test]
fn block_finder_matches_python_re_findall() {
    if python3().is_none() {
        return;
    }
    let mut rng = Rng(0x5eed_0003);
    let texts: Vec<Value> = (0..4000).map(|_| json!(fragment_text(&mut rng))).collect();
    let want = run_python(PY_FINDALL, &Value::Array(texts.clone()));
    let got: Vec<Value> = texts
        .iter()
        .map(|t| {
            json!(find_blocks(t.as_str().unwrap())
                .into_iter()
                .map(|(p, s, r)| json!([p, s, r]))
                .collect::<Vec<_>>())
        })
        .collect();
    let want = want.as_array().unwrap();
    assert!(
        want.iter()
            .filter(|w| !w.as_array().unwrap().is_empty())
            .count()
            > 500
    );
    assert_all_equal("findall", &texts, &got, want);
}

const CODE_LINES: [&str; 10] = [
    "",
    "def f(x):",
    "    return x",
    "    x += 1",
    "import os",
    "# note",
    "    if x:",
    "        pass",
    "class A:",
    "    y = 'é'",
];

fn code_line(rng: &mut Rng) -> String {
    if rng.chance(1, 2) {
        rng.pick(&CODE_LINES).to_string()
    } else {
        format!("    v{} = f(v{})", rng.below(100), rng.below(100))
    }
}

/// A completion editing `ctx`: blocks cut from the real files (sometimes altered, sometimes
/// for another path), wrapped in the think/solution format (sometimes broken).
fn completion(rng: &mut Rng, ctx: &[(String, Vec<String>)]) -> String {
    let mut answer = String::new();
    for _ in 0..1 + rng.below(3) {
        let (path, lines) = rng.pick(ctx);
        let path = if rng.chance(1, 10) {
            "other.py"
        } else {
            path.as_str()
        };
        let at = rng.below(lines.len() + 1);
        let len = rng.below(6).min(lines.len() - at);
        let mut search: Vec<String> = lines[at..at + len].to_vec();
        if rng.chance(1, 10) {
            search = mutate(rng, &search, 1, code_line);
        }
        let replace = if rng.chance(1, 15) {
            search.clone()
        } else {
            let edits = 1 + rng.below(2);
            mutate(rng, &search, edits, code_line)
        };
        answer += &format!(
            "```python\n### {path}\n<<<<<<< SEARCH\n{}\n=======\n{}\n>>>>>>> REPLACE\n```\n",
            search.join("\n"),
            replace.join("\n")
        );
    }
    let thought = rng.pick(&["Fix it.", " \u{1c} ", "x"]);
    match rng.below(12) {
        0 => format!("<think>{thought}</think>{answer}"),
        1 => format!("<think>a</think><think>b</think><solution>{answer}</solution>"),
        2 => format!("<solution>\n{answer}</solution>\n<think>{thought}</think>"),
        _ => format!("<think>\n{thought}\n</think>\n<solution>\n{answer}</solution>"),
    }
}

#[test]
fn reward_matches_python_reference_semantics() {
    if python3().is_none() {
        return;
    }
    let mut rng = Rng(0x5eed_0004);
    let mut cases = Vec::new();
    for _ in 0..400 {
        let files: Vec<(String, Vec<String>)> = (0..1 + rng.below(2))
            .map(|k| {
                let n = rng.below(120);
                let lines = (0..n).map(|_| code_line(&mut rng)).collect();
                (format!("pkg/m{k}.py"), lines)
            })
            .collect();
        let end = |r: &mut Rng| if r.chance(3, 4) { "\n" } else { "" };
        let ctx: Files = files
            .iter()
            .map(|(p, l)| (p.clone(), l.join("\n") + end(&mut rng)))
            .collect();
        let mut oracle = Files::new();
        for (p, l) in &files {
            if rng.chance(3, 4) {
                let edits = 1 + rng.below(4);
                let text = mutate(&mut rng, l, edits, code_line).join("\n") + end(&mut rng);
                oracle.insert(p.clone(), text);
            }
        }
        let output = completion(&mut rng, &files);
        cases.push(json!({ "ctx": ctx, "oracle": oracle, "output": output }));
    }
    let want = run_python(PY_REWARD, &Value::Array(cases.clone()));
    let got: Vec<Value> = cases
        .iter()
        .map(|c| {
            let ctx: Files = serde_json::from_value(c["ctx"].clone()).unwrap();
            let oracle: Files = serde_json::from_value(c["oracle"].clone()).unwrap();
            let r = calculate_search_replace_reward(&ctx, &oracle, c["output"].as_str().unwrap());
            json!({
                "reward": r.reward,
                "error": r.format_error.map(|e| e.to_string()),
                "files": r.similarities.iter()
                    .map(|s| json!([s.path, s.pred_change, s.oracle_change, s.similarity]))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    let want = want.as_array().unwrap();
    let scored = want.iter().filter(|w| w["error"].is_null()).count();
    assert!(
        scored > 100 && scored < 380,
        "{scored} of 400 cases without format error"
    );
    assert_all_equal("reward", &cases, &got, want);
}

fn any_ctx() -> impl Strategy<Value = Files> {
    prop::collection::btree_map("(a\\.py|b|)", "(x|\n|y = 1|\r|é| )*", 0..3)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_panic_on_structured_noise(
        output in "(```|```py\n|\n|### |a\\.py|<<<<<<< SEARCH|=======|>>>>>>> REPLACE|<think>|</think>|<solution>|</solution>|x|é|\r| |\u{2028})*",
        ctx in any_ctx(),
        oracle in any_ctx(),
    ) {
        let r = calculate_search_replace_reward(&ctx, &oracle, &output);
        prop_assert!(r.reward == -1.0 || (0.0..=1.0).contains(&r.reward));
    }

    #[test]
    fn no_panic_on_arbitrary_text(output in any::<String>(), ctx in any_ctx()) {
        let _ = find_blocks(&output);
        let r = calculate_search_replace_reward(&ctx, &ctx, &output);
        prop_assert!(r.reward == -1.0 || (0.0..=1.0).contains(&r.reward));
    }
}
