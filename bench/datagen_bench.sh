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
