#!/usr/bin/env python3
"""Times the SWE-RL reward as the paper's Python code computes it (restated here: the same
stdlib calls, `re.findall` with the reference pattern, `str.replace`, `difflib.unified_diff`
and the character-level `SequenceMatcher(autojunk=False).ratio()`), single-threaded, on the
cases of bench/reward_cases.py, and writes each case's reward for the Rust side to compare.

    python3 bench/reward_reference.py [--cases bench/out/reward_cases.jsonl]
        [--out bench/out/reward_reference.jsonl]
"""
import argparse
import difflib
import json
import re
import time

PATTERN = re.compile(r"```.*?\n### (.*)\n<<<<<<< SEARCH\n([\s\S]*?)\n=======\n([\s\S]*?)\n>>>>>>> REPLACE\n```")


class Malformed(Exception):
    pass


def patch(old, new):
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=3))
    return "\n".join(lines[2:])


def patches(ctx, new_files):
    out = {}
    for path, text in new_files.items():
        d = patch(ctx.get(path, ""), text)
        if d:
            out[path] = d
    return out


def predicted_files(ctx, output):
    for tag in ("<think>", "</think>", "<solution>", "</solution>"):
        if output.count(tag) != 1:
            raise Malformed(f"count of {tag} is not 1")
    thought = output.split("<think>")[1].split("</think>")[0].strip()
    answer = output.split("<solution>")[1].split("</solution>")[0].strip()
    if not thought:
        raise Malformed("Thought is empty")
    edits = {}
    for path, s, r in PATTERN.findall(answer):
        edits.setdefault(path, []).append((s, r))
    if not edits:
        raise Malformed("No valid search blocks found")
    new = {}
    for path, blocks in edits.items():
        text = "\n" + ctx.get(path, "")
        for s, r in blocks:
            if s == r:
                raise Malformed("Search and replace blocks are identical")
            if "\n" + s not in text:
                raise Malformed("Search block not found in the code: \n" + s)
            text = text.replace("\n" + s, "\n" + r)
        new[path] = text[1:]
    return new


def reward(ctx, oracle, output):
    try:
        pred = predicted_files(ctx, output)
    except Malformed as e:
        return -1.0, str(e)
    po, pp = patches(ctx, oracle), patches(ctx, pred)
    sims = []
    for path in set(po) | set(pp):
        a, b = pp.get(path, ""), po.get(path, "")
        sims.append(difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() if a and b else 0.0)
    return (sum(sims) / len(sims) if sims else 1.0), None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cases", default="bench/out/reward_cases.jsonl")
    p.add_argument("--out", default="bench/out/reward_reference.jsonl")
    args = p.parse_args()
    cases = [json.loads(l) for l in open(args.cases)]
    results, total = [], 0.0
    cpu0 = time.process_time()
    for c in cases:
        t0 = time.perf_counter()
        r, err = reward(c["code_context"], c["oracle_new_content"], c["output"])
        dt = time.perf_counter() - t0
        total += dt
        results.append({"instance_id": c.get("instance_id"), "reward": r, "format_error": err, "seconds": dt})
    with open(args.out, "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    cpu = time.process_time() - cpu0
    slowest = max(results, key=lambda r: r["seconds"])
    # CPU time is the fair figure on a shared machine: wall time includes waiting for a core.
    print(f"python reference: {len(cases)} cases in {total:.2f} s wall = {len(cases) / total:.2f} cases/s; "
          f"{cpu:.2f} s CPU = {len(cases) / cpu:.2f} cases per CPU-second "
          f"(slowest {slowest['instance_id']}: {slowest['seconds']:.2f} s wall); rewards in {args.out}")


if __name__ == "__main__":
    main()
