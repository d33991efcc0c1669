#!/usr/bin/env bash
# The end-to-end effect of each kernel variant family on this device: the default tuning
# against the tuning with one family turned off, as alternating runs (every round runs every
# variant once, so a change of the machine's load spreads over all of them).
#
#   bash benches/variants.sh [ROUNDS] [TUNING ...]   # default 3 rounds, every family
#
# With TUNING arguments (override syntax, e.g. `lanes=off`) only those run beside the
# default, for more rounds on one close decision.
#
# Workloads: a world-model update and a behaviour update at the `small` preset (`rssm bench
# --wall-only`, median of 3 steps after a warm-up), and a short `rssm dreamer` run (one prefill
# episode and one collected episode of 50 actions, 10 world-model + behaviour updates; wall
# clock of the whole process). Prints one line per run and a table of medians.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-3}"
shift || true
BIN="${RSSM_BIN:-target/release/rssm}"
# The rules, not a tuning cached by `rssm tune`: each run differs from the rules by one family.
export RSSM_TUNE=off
[ -x "$BIN" ] || cargo build --release
OUT="$(mktemp -d)"
VARIANTS=("default|")
if [ "$#" -gt 0 ]; then
  for t in "$@"; do VARIANTS+=("$t|$t"); done
else
  VARIANTS+=(
    "lanes=off|lanes=off"
    "path=fused|path=fused"
  )
fi
for round in $(seq "$ROUNDS"); do
  for v in "${VARIANTS[@]}"; do
    name="${v%%|*}"
    tuning="${v#*|}"
    json=$("$BIN" --tuning "$tuning" bench --json --presets small --workloads train,behaviour \
      --reps 3 --wall-only 2>/dev/null)
    train=$(echo "$json" | python3 -c 'import json,sys; r=json.load(sys.stdin); print([m["ms"] for m in r["results"] if m["workload"]=="train"][0])')
    behaviour=$(echo "$json" | python3 -c 'import json,sys; r=json.load(sys.stdin); print([m["ms"] for m in r["results"] if m["workload"]=="behaviour"][0])')
    start=$(date +%s.%N)
    "$BIN" --tuning "$tuning" dreamer --preset small --logdir "$OUT/d" --env-steps 300 \
      --episode-len 50 --prefill 1 --train-steps 10 --behaviour-warmup 0 --eval-every 100 \
      >/dev/null 2>&1
    rm -rf "$OUT/d"
    dreamer=$(python3 -c "import time; print(round(($(date +%s.%N) - $start) * 1000))")
    echo "$round $name $train $behaviour $dreamer" | tee -a "$OUT/runs.txt"
  done
done
python3 - "$OUT/runs.txt" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    _, name, t, b, d = line.split()
    rows.setdefault(name, []).append((float(t), float(b), float(d)))
base = [statistics.median(x[i] for x in rows["default"]) for i in range(3)]
print("| variant | world-model update ms | behaviour update ms | dreamer run ms |")
print("| --- | ---: | ---: | ---: |")
for name, xs in rows.items():
    med = [statistics.median(x[i] for x in xs) for i in range(3)]
    cells = [f"{m:,.0f}" + ("" if name == "default" else f" ({m / b:.2f}x)") for m, b in zip(med, base)]
    print(f"| {name} | " + " | ".join(cells) + " |")
EOF
rm -rf "$OUT"
