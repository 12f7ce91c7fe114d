#!/usr/bin/env python3
"""Writes the reward benchmark's inputs: realistic SWE-RL cases (Python-like files of 50-3,000
lines, oracle patches of 1-50 hunks, completions that are exact, partial or wrong) as JSONL
lines with `code_context`, `oracle_new_content` and `output`, the format `swerl reward --data`
reads. Deterministic for a given --seed.

    python3 bench/reward_cases.py [--n 60] [--seed 1] [--out bench/out/reward_cases.jsonl]
"""
import argparse
import json
import math
import os
import random

WORDS = ("item key value node cache token queue buffer record config session worker "
         "payload request response order entry field schema graph batch event").split()
VERBS = "load parse build update render merge filter compute collect validate apply".split()


def ident(rng):
    return "_".join(rng.sample(WORDS, rng.choice([1, 1, 2])))


def statement(rng, depth):
    pad = "    " * depth
    a, b = ident(rng), ident(rng)
    return pad + rng.choice([
        f"{a} = {b}.get('{rng.choice(WORDS)}', {rng.randint(0, 99)})",
        f"{a} = [x for x in {b} if x is not None]",
        f"if {a} is None:\n{pad}    {a} = {rng.choice(VERBS)}_{b}({b})",
        f"for x in {a}:\n{pad}    {b}.append(max(x, {rng.randint(1, 9)}))",
        f"logger.debug(\"{a}=%r\", {b})",
        f"# {rng.choice(VERBS)} the {b} before {rng.choice(VERBS)}ing",
        f"return {a}",
        f"assert {a} is not None, 'missing {a}'",
        "",
    ])


def source_file(rng, n_lines):
    lines = ['"""Utilities for %s handling."""' % rng.choice(WORDS), "", "import logging",
             "import os", "", "logger = logging.getLogger(__name__)", ""]
    while len(lines) < n_lines:
        if rng.random() < 0.2:
            lines += ["", "", f"class {ident(rng).title().replace('_', '')}:"]
            lines.append(f"    def {rng.choice(VERBS)}_{ident(rng)}(self, {ident(rng)}):")
            depth = 2
        else:
            lines += ["", "", f"def {rng.choice(VERBS)}_{ident(rng)}({ident(rng)}, {ident(rng)}):"]
            depth = 1
        lines.append("    " * depth + '"""%s the %s."""' % (rng.choice(VERBS).title(), rng.choice(WORDS)))
        for _ in range(rng.randint(3, 25)):
            lines += statement(rng, depth).split("\n")
    return lines[:n_lines]


def edits_for(rng, lines, n_hunks):
    """Non-overlapping (start, end, new_lines) edits at least 8 lines apart."""
    slots = list(range(2, len(lines) - 4, 9))
    starts = sorted(rng.sample(slots, min(n_hunks, len(slots))))
    edits = []
    for s in starts:
        end = s + rng.randint(0, 2)
        new = [l + "  # fixed" if rng.random() < 0.5 else l.replace("x", "y") + " or 0"
               for l in lines[s:end]]
        new += [statement(rng, 1).split("\n")[0] for _ in range(rng.randint(0, 2))]
        if new == lines[s:end]:
            new.append("    pass")
        edits.append((s, end, new))
    return edits


def apply(lines, edits):
    out, pos = [], 0
    for s, e, new in edits:
        out += lines[pos:s] + new
        pos = e
    return out + lines[pos:]


def block(path, lines, s, e, new):
    lo, hi = max(s - 1, 0), min(e + 1, len(lines))
    search = lines[lo:hi]
    replace = lines[lo:s] + new + lines[e:hi]
    return ("```python\n### %s\n<<<<<<< SEARCH\n%s\n=======\n%s\n>>>>>>> REPLACE\n```"
            % (path, "\n".join(search), "\n".join(replace)))


def case(rng):
    n_lines = int(math.exp(rng.uniform(math.log(50), math.log(3000))))
    path = f"src/{rng.choice(WORDS)}/{rng.choice(WORDS)}.py"
    lines = source_file(rng, n_lines)
    n_hunks = rng.randint(1, max(1, min(50, n_lines // 12)))
    oracle_edits = edits_for(rng, lines, n_hunks)
    kind = rng.choice(["exact", "partial", "partial", "different"])
    if kind == "exact":
        pred = oracle_edits
    elif kind == "partial":
        keep = [e for e in oracle_edits if rng.random() < 0.6] or oracle_edits[:1]
        other = edits_for(rng, lines, max(1, n_hunks // 3))
        taken = {s for s, _, _ in keep}
        pred = sorted(keep + [e for e in other
                              if all(abs(e[0] - t) > 9 for t in taken)])
    else:
        pred = edits_for(rng, lines, rng.randint(1, n_hunks))
    answer = "\n".join(block(path, lines, s, e, new) for s, e, new in pred)
    output = f"<think>\nThe {kind} fix touches {len(pred)} places.\n</think>\n<solution>\n{answer}\n</solution>"
    return {
        "instance_id": f"bench-{n_lines}-{n_hunks}-{kind}",
        "code_context": {path: "\n".join(lines) + "\n"},
        "oracle_new_content": {path: "\n".join(apply(lines, oracle_edits)) + "\n"},
        "output": output,
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=60)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="bench/out/reward_cases.jsonl")
    args = p.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        for _ in range(args.n):
            f.write(json.dumps(case(rng)) + "\n")
    print(f"wrote {args.n} cases to {args.out}")


if __name__ == "__main__":
    main()
