"""python -m benchmarks [--device cpu|cuda] [--ops gaussian] [--quick]

Times every case of the chosen op families for eager, compile and each gentk backend
available on the device, writes benchmarks/results/<device>.json and re-renders
BENCHMARKS.md from every result file."""
import argparse
import os
import sys

import torch

from benchmarks.ops import gaussian, gumbel, instance_norm, losses
from benchmarks.harness import Timer, copy_bandwidth_GBps, machine_info, render_all, run_case, write_results

FAMILIES = {
    "gaussian": gaussian.cases,
    "gumbel": gumbel.cases,
    "losses": losses.cases,
    "instance_norm": instance_norm.cases,
}
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Peak DRAM bandwidth (GB/s) of GPUs we report against.
PEAK_BANDWIDTH = {"H100 80GB HBM3": 3350.0, "H100 PCIe": 2000.0, "H200": 4800.0, "A100-SXM4-80GB": 2039.0}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--ops", default=",".join(FAMILIES), help="comma-separated op families: " + ", ".join(FAMILIES))
    p.add_argument("--backends", default=None,
                   help="gentk backends to time (default: cpp on CPU; cuda,triton on GPU)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile provider")
    p.add_argument("--quick", action="store_true", help="fewer repeats (smoke test)")
    p.add_argument("--out", default=None, help="result JSON path (default benchmarks/results/<device>.json)")
    p.add_argument("--markdown", default=os.path.join(ROOT, "BENCHMARKS.md"))
    args = p.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    unknown = [f for f in args.ops.split(",") if f not in FAMILIES]
    if unknown:
        p.error(f"--ops: unknown op family {unknown[0]!r}; choose from {', '.join(FAMILIES)}")
    backends = args.backends.split(",") if args.backends else (["cpp"] if device.type == "cpu" else ["cuda", "triton"])
    timer = Timer(device, min_repeats=3 if args.quick else 10, budget_s=0.1 if args.quick else 1.0,
                  warmup=1 if args.quick else 3)

    machine = machine_info(device)
    if device.type == "cuda":
        name = machine["gpu"]
        machine["peak_GBps"] = next((bw for k, bw in PEAK_BANDWIDTH.items() if k in name), None)
        machine["copy_GBps"] = round(copy_bandwidth_GBps(device), 1)
        print(f"measured device-to-device copy: {machine['copy_GBps']:.0f} GB/s")
    print(f"gentk benchmarks on {machine.get('gpu') or machine['cpu']} ({machine['threads']} threads)")
    rows = []
    for family in args.ops.split(","):
        for case in FAMILIES[family]():
            rows += run_case(case, device, backends, timer, compile_reference=not args.no_compile)

    command = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
    out = args.out or os.path.join(HERE, "results", f"{device.type}.json")
    title = f"{'GPU' if device.type == 'cuda' else 'CPU'}: {args.ops}"
    write_results(out, title, command.strip(), machine, rows)
    if os.path.dirname(os.path.abspath(out)) == os.path.join(HERE, "results"):
        render_all(os.path.join(HERE, "results"), args.markdown)
        print(f"wrote {out} and {args.markdown}")
    else:
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
