"""ETDump per-op times of the TSN/TSM/ACTION ExecuTorch artifacts that benchmarks/run_bench.sh left in WORK (default /tmp/bench/work; 8 x 224, 2 threads, 20 runs each).

    python benchmarks/etdump_variants.py [WORK]
"""
import sys
from pathlib import Path
from actionnet_edge.bench.opprofile import etdump_profile
A=Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/bench/work") / "artifacts"
for prec in ("fp32","int8"):
    for v in ("tsn","tsm","action"):
        p=next((A/f"{v}-executorch-{prec}-t8-s224").glob("*.pte"))
        r=etdump_profile(p,(1,8,3,224,224),2,runs=20,top=12)
        tr={t["op"]:round(t["ms"],2) for t in r["top"]}
        print(prec, v, "exec", round(r["method_execute_ms"] or 0,2), {k:x for k,x in tr.items() if x>0.2})
