//! Differential tests of the difflib port against the machine's CPython `difflib`: thousands
//! of generated string and line-list pairs, sent to one `python3` process per test.

mod support;

use serde_json::{json, Value};
use support::{assert_all_equal, mutate, python3, run_python, Rng};
use trainer::reward::difflib::{Opcode, SequenceMatcher, Strategy};
use trainer::reward::unified_diff::unified_diff;

const PY_CHARS: &str = r#"
import difflib, json, sys
out = []
for c in json.load(sys.stdin):
    a, b = c["a"], c["b"]
    junk = (lambda ch: ch in " \t") if c["junk"] else None
    sm = difflib.SequenceMatcher(junk, a, b, autojunk=c["autojunk"])
    alo, ahi, blo, bhi = c["range"]
    m = sm.find_longest_match(alo, ahi, blo, bhi)
    out.append({
        "ratio": sm.ratio(),
        "blocks": [list(x) for x in sm.get_matching_blocks()],
        "opcodes": [list(x) for x in sm.get_opcodes()],
        "longest": list(m),
        "popular": len(sm.bpopular),
    })
json.dump(out, sys.stdout)
"#;

const PY_LINES: &str = r#"
import difflib, json, sys
out = []
for c in json.load(sys.stdin):
    a, b, n = c["a"], c["b"], c["n"]
    sm = difflib.SequenceMatcher(None, a, b)
    out.append({
        "opcodes": [list(x) for x in sm.get_opcodes()],
        "grouped": [[list(x) for x in g] for g in sm.get_grouped_opcodes(n)],
        "diff": list(difflib.unified_diff(a, b, "old", "new", lineterm="", n=n)),
        "popular": len(sm.bpopular),
    })
json.dump(out, sys.stdout)
"#;

fn opcodes_json(ops: &[Opcode]) -> Value {
    Value::Array(
        ops.iter()
            .map(|o| json!([o.tag.as_str(), o.i1, o.i2, o.j1, o.j2]))
            .collect(),
    )
}

const ALPHABETS: [&str; 6] = [
    "ab",
    "abc ",
    "abcdefgh \n",
    "aé€😀 \t",
    "def return(x):\n =+-_0123456789abcdefghijklmnopqrstuvwxyz",
    "\u{1c}\u{85}\u{2028}\r\n x",
];

fn random_string(rng: &mut Rng, alphabet: &[char], len: usize) -> Vec<char> {
    (0..len).map(|_| *rng.pick(alphabet)).collect()
}

fn string_cases(rng: &mut Rng) -> Vec<Value> {
    let mut cases = Vec::new();
    for i in 0..3000 {
        let alphabet: Vec<char> = rng.pick(&ALPHABETS).chars().collect();
        // Mostly short; every tenth case is long enough (b >= 200) for the popular heuristic.
        let len = if i % 10 == 0 {
            200 + rng.below(400)
        } else {
            rng.below(60)
        };
        let a = random_string(rng, &alphabet, len);
        let b = if rng.chance(1, 20) {
            a.clone()
        } else if rng.chance(3, 4) {
            let edits = 1 + rng.below(1 + len / 8);
            let alpha = alphabet.clone();
            mutate(rng, &a, edits, move |r| *r.pick(&alpha))
        } else {
            let lb = rng.below(len + 5);
            random_string(rng, &alphabet, lb)
        };
        let a: String = a.into_iter().collect();
        let b: String = b.into_iter().collect();
        let (la, lb) = (a.chars().count(), b.chars().count());
        let alo = rng.below(la + 1);
        let ahi = alo + rng.below(la - alo + 1);
        let blo = rng.below(lb + 1);
        let bhi = blo + rng.below(lb - blo + 1);
        cases.push(json!({
            "a": a, "b": b,
            "autojunk": rng.chance(1, 2),
            "junk": rng.chance(1, 5),
            "range": [alo, ahi, blo, bhi],
        }));
    }
    cases
}

#[test]
fn char_matcher_matches_cpython() {
    if python3().is_none() {
        return;
    }
    let cases = string_cases(&mut Rng(0x5eed_0001));
    let want = run_python(PY_CHARS, &Value::Array(cases.clone()));
    for strategy in [
        Strategy::Auto,
        Strategy::DynamicProgramme,
        Strategy::SuffixAutomaton,
    ] {
        let got: Vec<Value> = cases
        .iter()
        .map(|c| {
            let a: Vec<char> = c["a"].as_str().unwrap().chars().collect();
            let b: Vec<char> = c["b"].as_str().unwrap().chars().collect();
            let autojunk = c["autojunk"].as_bool().unwrap();
            let mut sm = if c["junk"].as_bool().unwrap() {
                SequenceMatcher::with_junk(&a, &b, |ch: &char| *ch == ' ' || *ch == '\t', autojunk)
            } else {
                SequenceMatcher::new(&a, &b, autojunk)
            };
            sm.set_strategy(strategy);
            let r: Vec<usize> = serde_json::from_value(c["range"].clone()).unwrap();
            let m = sm.find_longest_match(r[0], r[1], r[2], r[3]);
            json!({
                "ratio": sm.ratio(),
                "blocks": sm.get_matching_blocks().iter().map(|m| json!([m.a, m.b, m.size])).collect::<Vec<_>>(),
                "opcodes": opcodes_json(&sm.get_opcodes()),
                "longest": [m.a, m.b, m.size],
                "popular": sm.popular_count(),
            })
        })
        .collect();
        assert_all_equal(
            &format!("chars {strategy:?}"),
            &cases,
            &got,
            want.as_array().unwrap(),
        );
    }
    // The str fast path must agree with the generic one.
    for c in cases.iter().filter(|c| !c["junk"].as_bool().unwrap()) {
        let (a, b) = (c["a"].as_str().unwrap(), c["b"].as_str().unwrap());
        let autojunk = c["autojunk"].as_bool().unwrap();
        let av: Vec<char> = a.chars().collect();
        let bv: Vec<char> = b.chars().collect();
        assert_eq!(
            SequenceMatcher::from_chars(a, b, autojunk).get_opcodes(),
            SequenceMatcher::new(&av, &bv, autojunk).get_opcodes()
        );
    }
}

const LINE_VOCAB: [&str; 12] = [
    "",
    "    return x",
    "}",
    "def f(x):",
    "    x += 1",
    "import os",
    "  ",
    "# comment",
    "    if x:",
    "        pass",
    "class A:",
    "é = '€'",
];

fn line_cases(rng: &mut Rng) -> Vec<Value> {
    let mut cases = Vec::new();
    for i in 0..600 {
        // Unique-ish lines mixed with a few very common ones, as in source files.
        let len = if i % 3 == 0 {
            200 + rng.below(300)
        } else {
            rng.below(40)
        };
        let mut counter = 0usize;
        let mut line = |r: &mut Rng| -> String {
            counter += 1;
            if r.chance(2, 3) {
                r.pick(&LINE_VOCAB).to_string()
            } else {
                format!("    v{} = {}", r.below(50), counter % 7)
            }
        };
        let a: Vec<String> = (0..len).map(|_| line(rng)).collect();
        let b = if rng.chance(1, 20) {
            a.clone()
        } else if rng.chance(4, 5) {
            let edits = 1 + rng.below(1 + len / 10);
            mutate(rng, &a, edits, &mut line)
        } else {
            let lb = rng.below(len + 3);
            (0..lb).map(|_| line(rng)).collect()
        };
        cases.push(json!({ "a": a, "b": b, "n": rng.below(5) }));
    }
    cases
}

#[test]
fn line_diff_matches_cpython() {
    if python3().is_none() {
        return;
    }
    let cases = line_cases(&mut Rng(0x5eed_0002));
    assert!(
        cases
            .iter()
            .filter(|c| c["b"].as_array().unwrap().len() >= 200)
            .count()
            > 100
    );
    let want = run_python(PY_LINES, &Value::Array(cases.clone()));
    let got: Vec<Value> = cases
        .iter()
        .map(|c| {
            let a: Vec<&str> = c["a"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
            let b: Vec<&str> = c["b"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
            let n = c["n"].as_u64().unwrap() as usize;
            let mut sm = SequenceMatcher::new(&a, &b, true);
            json!({
                "opcodes": opcodes_json(&sm.get_opcodes()),
                "grouped": sm.get_grouped_opcodes(n).iter().map(|g| opcodes_json(g)).collect::<Vec<_>>(),
                "diff": unified_diff(&a, &b, "old", "new", "", n),
                "popular": sm.popular_count(),
            })
        })
        .collect();
    let want = want.as_array().unwrap();
    for strategy in [Strategy::DynamicProgramme, Strategy::SuffixAutomaton] {
        let forced: Vec<Value> = cases
            .iter()
            .map(|c| {
                let a: Vec<&str> = c["a"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap())
                    .collect();
                let b: Vec<&str> = c["b"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap())
                    .collect();
                let mut sm = SequenceMatcher::new(&a, &b, true);
                sm.set_strategy(strategy);
                opcodes_json(&sm.get_opcodes())
            })
            .collect();
        let want_ops: Vec<Value> = want.iter().map(|w| w["opcodes"].clone()).collect();
        assert_all_equal(&format!("lines {strategy:?}"), &cases, &forced, &want_ops);
    }
    assert!(
        want.iter()
            .filter(|w| w["popular"].as_u64().unwrap() > 0)
            .count()
            > 50,
        "the cases must exercise the popular-line heuristic"
    );
    assert_all_equal("lines", &cases, &got, want);
}
