"""Synthetic git repository for miner benchmarks, written through `git fast-import`.

    python3 bench/make_synthetic_repo.py OUT_DIR [--commits 20000] [--files 300] [--seed 0]

Deterministic: a main line of small commits touching 1-3 of FILES Python-like files
(one to four edited lines each), every 40th change landed as a `--no-ff` PR merge
(`Merge pull request #N from dev/branch-N`, 2-commit branch) and every 7th as a squash
commit `Title (#N)`. Prints one JSON line with the commit count.
"""
import json, os, random, subprocess, sys


def main():
    args = sys.argv[1:]
    out = args[0]
    opt = lambda name, d: int(args[args.index(name) + 1]) if name in args else d
    n_commits, n_files, seed = opt("--commits", 20000), opt("--files", 300), opt("--seed", 0)
    rng = random.Random(seed)
    os.makedirs(out, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", out], check=True)
    subprocess.run(["git", "-C", out, "remote", "add", "origin", "https://github.com/synthetic/bench-repo.git"], check=True)
    paths = [f"pkg{i % 12}/mod_{i}.py" for i in range(n_files)]
    files = {p: [f"def f_{j}(x):\n    return x + {j}\n" for j in range(40)] for p in paths}
    proc = subprocess.Popen(["git", "-C", out, "fast-import", "--quiet"], stdin=subprocess.PIPE)
    w = proc.stdin.write
    mark = 0
    t = 1_600_000_000
    count = 0
    pr = 0

    def blob_cmds(touched):
        cmds = []
        for p in touched:
            data = "".join(files[p]).encode()
            cmds.append(b"M 100644 inline %s\ndata %d\n%s\n" % (p.encode(), len(data), data))
        return b"".join(cmds)

    def edit():
        touched = rng.sample(paths, rng.randint(1, 3))
        for p in touched:
            for _ in range(rng.randint(1, 4)):
                j = rng.randrange(len(files[p]))
                files[p][j] = f"def f_{j}(x):\n    return x * {rng.randint(0, 10**6)}\n"
        return touched

    def commit(ref, msg, parents, touched):
        nonlocal mark, t, count
        mark += 1
        t += 60
        count += 1
        m = msg.encode()
        w(b"commit %s\nmark :%d\nauthor Dev <dev@example.com> %d +0000\ncommitter Dev <dev@example.com> %d +0000\ndata %d\n%s\n"
          % (ref.encode(), mark, t, t, len(m), m))
        if parents:
            w(b"from :%d\n" % parents[0])
            for p in parents[1:]:
                w(b"merge :%d\n" % p)
        w(blob_cmds(touched))
        w(b"\n")
        return mark

    main_tip = commit("refs/heads/main", "Initial commit", [], paths)
    while count < n_commits:
        pr += 1
        if pr % 40 == 0:
            br = f"refs/heads/branch-{pr}"
            tip = main_tip
            for k in range(2):
                tip = commit(br, f"Work on feature {pr} part {k}", [tip], edit())
            main_tip = commit("refs/heads/main", f"Merge pull request #{pr} from dev/branch-{pr}\n\nFeature {pr}", [main_tip, tip], [])
        elif pr % 7 == 0:
            main_tip = commit("refs/heads/main", f"Change {pr} (#{pr})\n\nFixes #{pr // 2}", [main_tip], edit())
        else:
            main_tip = commit("refs/heads/main", f"Change {pr}", [main_tip], edit())
    proc.stdin.close()
    if proc.wait() != 0:
        sys.exit("git fast-import failed")
    subprocess.run(["git", "-C", out, "symbolic-ref", "HEAD", "refs/heads/main"], check=True)
    print(json.dumps({"repo": out, "commits": count, "files": n_files}))


if __name__ == "__main__":
    main()
