#!/usr/bin/env bash
# Miner throughput on a synthetic repository: swerl mine vs git log -p vs PyDriller.
#   bash bench/datagen_bench.sh [SWERL_BINARY] [WORK_DIR]
# Prints wall seconds and CPU seconds (user+sys) per tool; commits/s = 20000 / seconds.
set -euo pipefail
SWERL=${1:-target/release/swerl}
WORK=${2:-/tmp/swerl-datagen-bench}
REPO=$WORK/synth
mkdir -p "$WORK"
if [ ! -d "$REPO" ]; then
  python3 "$(dirname "$0")/make_synthetic_repo.py" "$REPO" --commits 20000
fi
N=$(git -C "$REPO" rev-list --count --first-parent HEAD)
ALL=$(git -C "$REPO" rev-list --count HEAD)
echo "repo $REPO: $ALL commits ($N on the first-parent line)"
run() {
  local name=$1; shift
  /usr/bin/time -f "$name wall %e s cpu %U+%S s maxrss %M KiB" "$@" > /dev/null
}
git -C "$REPO" log -p --first-parent > /dev/null  # warm the page cache
run "git log -p --first-parent" git -C "$REPO" log -p --first-parent
run "git log -p (all commits)" git -C "$REPO" log -p
for jobs in 1 2; do
  rm -rf "$WORK/out"
  run "swerl mine --all-commits --jobs $jobs" "$SWERL" mine "$REPO" --out "$WORK/out" --all-commits --jobs "$jobs" --json
  rm -rf "$WORK/out"
  run "swerl mine --all-commits --jobs $jobs --relevant-k 0" "$SWERL" mine "$REPO" --out "$WORK/out" --all-commits --jobs "$jobs" --relevant-k 0 --json
done
rm -rf "$WORK/out"
run "swerl mine (PRs only) --jobs 2" "$SWERL" mine "$REPO" --out "$WORK/out" --jobs 2 --json
if python3 -c "import pydriller" 2>/dev/null; then
  python3 "$(dirname "$0")/pydriller_bench.py" "$REPO" --limit 1000
else
  echo "pydriller not installed (pip install pydriller) - skipped"
fi
# Memory over a long history (opt-in: SWERL_BENCH_LONG=1): 200k one-file commits with
# ~600-byte messages (Linux-like), to see what --all-commits keeps per commit.
if [ "${SWERL_BENCH_LONG:-0}" = 1 ]; then
  LONG=$WORK/long200k
  if [ ! -d "$LONG" ]; then
    git init -q -b main "$LONG"
    python3 - 200000 <<'PY' | git -C "$LONG" fast-import --quiet
import random, sys
random.seed(7)
n, out, files = int(sys.argv[1]), sys.stdout.buffer, {}
words = "fix the driver memory leak when probing device queue lock race handle error path in".split()
for i in range(n):
    body = " ".join(random.choice(words) for _ in range(95))
    msg = f"subsys{i%50}: change {i}\n\n{body}\n\nSigned-off-by: Dev {i%977} <dev{i%977}@example.org>\n".encode()
    f = f"d{i%20}/f{i%200}.c"
    files[f] = files.get(f, b"")[-2000:] + f"int v{i} = {i};\n".encode()
    who = f"Dev {i%977} <dev{i%977}@example.org> {1500000000 + i*60} +0000"
    out.write(f"commit refs/heads/main\nmark :{i+1}\nauthor {who}\ncommitter {who}\ndata {len(msg)}\n".encode() + msg)
    if i:
        out.write(f"from :{i}\n".encode())
    out.write(f"M 100644 inline {f}\ndata {len(files[f])}\n".encode() + files[f] + b"\n")
PY
  fi
  rm -rf "$WORK/out"
  run "swerl mine --all-commits, 200k-commit history" "$SWERL" mine "$LONG" --out "$WORK/out" --all-commits --json
  rm -rf "$WORK/out"
fi
