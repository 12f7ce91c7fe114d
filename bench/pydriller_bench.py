"""PyDriller baseline: commits/s walking history with per-file diffs (what a miner needs).

    python3 bench/pydriller_bench.py REPO [--limit 1000]
Prints one JSON line. PyDriller is slow, so only the first --limit commits are timed.
"""
import json, sys, time
from pydriller import Repository


def main():
    repo = sys.argv[1]
    limit = int(sys.argv[sys.argv.index("--limit") + 1]) if "--limit" in sys.argv else 1000
    n = 0
    t = time.perf_counter()
    for c in Repository(repo, only_in_branch="main").traverse_commits():
        for m in c.modified_files:
            _ = m.diff, m.source_code_before, m.source_code
        n += 1
        if n >= limit:
            break
    dt = time.perf_counter() - t
    print(json.dumps({"impl": "pydriller", "commits": n, "seconds": round(dt, 2), "commits_per_s": round(n / dt, 1)}))


if __name__ == "__main__":
    main()
