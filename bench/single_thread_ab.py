#!/usr/bin/env python3
"""Single-thread speed of two ferrolite builds, A/B: an earlier commit's binary against this one.

  python3 bench/single_thread_ab.py OLD_BINARY NEW_BINARY A.flb,B.flb,... [ROUNDS=7]

Each round runs `bench MODEL --runs 40 --warmup 5 --json` with each binary (the order
alternates from round to round), pinned to CPU 1 with taskset; the new binary gets
`--threads 1`. Prints a markdown table: medians over rounds of the per-round medians, and the
median of the per-round ratios new / old. The old binary of a commit C comes from
  git worktree add /tmp/prev C && (cd /tmp/prev && cargo build --release -p ferrolite \
      --no-default-features --features libjpeg --target-dir /tmp/prev-target)
"""
import json, statistics, subprocess, sys
old, new = sys.argv[1], sys.argv[2]
models = sys.argv[3].split(",")
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 7
def med(binary, model, extra):
    out = subprocess.run(["taskset", "-c", "1", binary, "bench", model, "--runs", "40",
                          "--warmup", "5", "--json"] + extra,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["median_ms"]
print("| model | previous main ms | this main, --threads 1, ms | this / previous |")
print("|---|---|---|---|")
for m in models:
    o, n, r = [], [], []
    for i in range(rounds):
        pair = [("o", old, []), ("n", new, ["--threads", "1"])]
        if i % 2: pair.reverse()
        t = {}
        for k, b, e in pair:
            t[k] = med(b, m, e)
        o.append(t["o"]); n.append(t["n"]); r.append(t["n"] / t["o"])
    name = m.rsplit("/", 1)[-1].removesuffix(".flb")
    print(f"| {name} | {statistics.median(o):.2f} | {statistics.median(n):.2f} | {statistics.median(r):.3f} |", flush=True)
