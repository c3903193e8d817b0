"""ETDump per-op times of the TSN / TSM / ACTION ExecuTorch artifacts that benchmarks/run_bench.sh
leaves in $WORK/artifacts, fp32 and int8, to compare what each variant spends per kernel kind.

    python benchmarks/etdump_variants.py /tmp/bench/work --runs 20 --threads 2

Prints, per precision and variant, the profiled Method::execute time, the op calls per clip, and
every kernel kind above 0.2 ms per clip or 20 calls per clip as (calls, ms)
(actionnet_edge.bench.opprofile.etdump_profile, the report's profiler).
"""
import argparse
from pathlib import Path

from _variants import VARIANTS, bench_artifact

from actionnet_edge.bench.opprofile import etdump_profile

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("work", type=Path, nargs="?", default=Path("/tmp/bench/work"))
p.add_argument("--runs", type=int, default=20)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--segments", type=int, default=8)
p.add_argument("--size", type=int, default=224)
a = p.parse_args()
for prec in ("fp32", "int8"):
    for variant in VARIANTS:
        pte = bench_artifact(a.work, variant, prec, a.segments, a.size)
        r = etdump_profile(pte, (1, a.segments, 3, a.size, a.size), a.threads, runs=a.runs, top=100)
        if "top" not in r:
            raise SystemExit(f"{pte}: {r['summary']}")
        kinds = {t["op"]: (t["calls"], round(t["ms"], 2)) for t in r["top"] if t["ms"] > 0.2 or t["calls"] >= 20}
        print(prec, variant, "execute", round(r["method_execute_ms"] or 0, 2), "ms,", r["op_calls"], "op calls", kinds)
