"""ExecuTorch (XNNPACK) cost of each temporal module's edge form at the ten shapes where
MobileNetV2 has one (8 frames, 224 px), fp32 or int8, with the op calls the delegate runs.

    python benchmarks/temporal_modules_pte.py --precision int8 --rounds 10 --runs 20

Each variant is one ``.pte`` with ten inputs, one per MobileNetV2 block (24 x 56^2, 2 x 32 x 28^2,
3 x 64 x 14^2, 2 x 96 x 14^2, 2 x 160 x 7^2 at N*T = 8), and runs depthwise 3x3 conv -> temporal
module -> depthwise 3x3 conv on each, so the module sits between NHWC convolutions as in the
network. "none" is that without a temporal module; every other row also prints its extra time
over "none". Int8 is post-training quantized (XNNPACK quantizer) on four random batches. The
variants run interleaved in one process (every other round reversed), ExecuTorch at 2 threads.
``--compare-fold`` adds each variant lowered without the layout fold (export/xnnpack_layout.py).
"""
import argparse
import statistics
import tempfile
from pathlib import Path

from _variants import interleaved
from temporal_modules import SHAPES

from actionnet_edge.malloc import keep_freed_memory

keep_freed_memory()
import torch  # noqa: E402
from torch import nn  # noqa: E402

from actionnet_edge.bench.opprofile import read_etdump  # noqa: E402
from actionnet_edge.models.edge import EdgeLearnableShift, edge_temporal  # noqa: E402
from actionnet_edge.export.executorch import EXPORTER  # noqa: E402
from actionnet_edge.models.temporal import Action, LearnableShift, TemporalShift  # noqa: E402


class Blocks(nn.Module):
    def __init__(self, make) -> None:
        super().__init__()
        self.a = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1, groups=c) for c, _ in SHAPES)
        self.t = nn.ModuleList(make(c) for c, _ in SHAPES)
        self.b = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1, groups=c) for c, _ in SHAPES)

    def forward(self, *xs):
        return tuple(b(t(a(x))) for a, t, b, x in zip(self.a, self.t, self.b, xs))


def perturbed(m: nn.Module) -> nn.Module:
    """Weights moved off their initial values (the shift's one-hot taps), eval mode."""
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m.eval()


def op_calls(pte: Path, xs) -> dict[str, int]:
    """XNNPACK kernel calls per run, by kind (ETDump, read as the bench's profile reads it)."""
    from executorch.extension.pybindings import portable_lib as et

    m = et._load_for_executorch(str(pte), enable_etdump=True)
    m.forward(list(xs))
    with tempfile.TemporaryDirectory() as tmp:
        m.write_etdump_result_to_file(f"{tmp}/r.etdp", f"{tmp}/r.debug")
        return read_etdump(Path(tmp) / "r.etdp")["calls"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--precision", default="int8", choices=("fp32", "int8"))
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--segments", type=int, default=8)
    p.add_argument("--compare-fold", action="store_true",
                   help="also lower each temporal variant without the layout fold (export/xnnpack_layout.py)")
    a = p.parse_args()
    t = a.segments
    torch.manual_seed(0)
    variants = {
        "none": lambda c: nn.Identity(),
        "tsm shift": lambda c: edge_temporal(TemporalShift(c, t)),
        "learnable shift": lambda c: EdgeLearnableShift(perturbed(LearnableShift(c, t))),
        "shift + ste": lambda c: Action(c, t, paths=("ste",)),
        "shift + ce": lambda c: Action(c, t, paths=("ce",)),
        "shift + me": lambda c: Action(c, t, paths=("me",)),
        "action": lambda c: Action(c, t),
    }
    folds = {name: True for name in variants}
    if a.compare_fold:
        for name in list(variants):
            if name != "none":
                variants[f"{name} (no fold)"], folds[f"{name} (no fold)"] = variants[name], False
    xs = tuple(torch.randn(t, c, s, s) for c, s in SHAPES)
    from executorch.extension.pybindings import portable_lib as et

    torch.set_num_threads(1)
    et._unsafe_reset_threadpool(2)
    methods, calls = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in variants.items():
            def build(c, make=make):
                m = make(c)
                return edge_temporal(perturbed(m)) if isinstance(m, Action) else m

            model = Blocks(build).eval()
            if a.precision == "int8":
                from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

                from actionnet_edge.quant import make_quantizer

                g = prepare_pt2e(torch.export.export(model, xs).module(), make_quantizer("xnnpack", qat=False))
                for _ in range(4):
                    g(*(torch.randn_like(x) for x in xs))
                model = convert_pt2e(g)
            pte = Path(tmp) / f"{len(methods)}.pte"
            EXPORTER.convert(model, xs, a.precision, pte, metadata={}, fold_layout=folds[name])
            calls[name] = op_calls(pte, xs)
            methods[name] = et._load_for_executorch(str(pte))
        times = interleaved({n: (lambda m=m: m.forward(list(xs))) for n, m in methods.items()},
                            rounds=a.rounds, runs=a.runs, warmup=5)
    base = statistics.median(times["none"])
    print(f"executorch {a.precision}, 2 threads, ten MobileNetV2 blocks, {a.rounds} x {a.runs} runs interleaved")
    for n, ts in times.items():
        med = statistics.median(ts)
        c = calls[n]
        tr = sum(v for k, v in c.items() if k.startswith("Transpose"))
        print(f"{n:>26}: median {med:6.2f} ms (+{med - base:5.2f}), min {min(ts):6.2f} ms; "
              f"{sum(c.values())} op calls, {tr} Transposes")


if __name__ == "__main__":
    main()
