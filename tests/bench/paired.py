"""Decode of Glimpse and llama.cpp in alternating pairs (side_by_side.py --paired-decode N).

Why: decode is bound by memory reads, and on a shared VM the read bandwidth changes by up to
half from one minute to the next (BENCHMARKS.md §11–12: the bench's probe reads 35 GB/s in one
window and 68 GB/s in another). Two engines measured a few minutes apart can then differ by
more than the engines do. Here each pair runs the two back to back, the order swapped every
pair (ABBA), and the ratio is taken within the pair; the summary is over the pairs' ratios,
not over the two engines' separate medians.
"""

import math
import os
import statistics

import llama_cpp


def paired_decode(args, tools, ckpt, run_glimpse):
    """`run_glimpse(quant, extra)` runs one `glimpse bench` and returns its JSON report."""
    gdir = llama_cpp.gguf_files(args, tools, ckpt, args.quants, vision=False)
    out = {}
    for q in args.quants:
        gguf = os.path.join(gdir, f"text-{llama_cpp.GGUF_FOR_QUANT[q]}.gguf")

        def glimpse():
            # The smallest image and prompt glimpse bench accepts: only its decode is read.
            return run_glimpse(q, "64x64", "16")["decode"]

        def llama():
            return llama_cpp.llama_bench(
                tools, gguf, args.threads, args.repeats,
                ["-p", "0", "-n", str(args.decode_tokens), "-d", str(args.decode_context)])[0]

        pairs = []
        for k in range(args.paired_decode):
            if k % 2 == 0:
                g, l = glimpse(), llama()
            else:
                l, g = llama(), glimpse()
            pair = {"glimpse_tok_s": g["tokens_per_s"], "llama_tok_s": l["tokens_per_s"],
                    "ratio": g["tokens_per_s"] / l["tokens_per_s"],
                    "glimpse_cpu_ms": g["cpu_ms"], "llama_cpu_ms": l["cpu_ms"],
                    "probe_gb_s": g.get("read_bandwidth_gb_per_s"),
                    "order": "glimpse first" if k % 2 == 0 else "llama.cpp first"}
            pairs.append(pair)
            print(f"pair {k + 1} [{q}]: glimpse {pair['glimpse_tok_s']:.2f} / llama.cpp "
                  f"{pair['llama_tok_s']:.2f} tok/s = {pair['ratio']:.3f}x "
                  f"(probe {pair['probe_gb_s'] or float('nan'):.1f} GB/s, {pair['order']})", flush=True)
        ratios = [p["ratio"] for p in pairs]
        out[q] = {"pairs": pairs, "median_ratio": statistics.median(ratios),
                  "geomean_ratio": math.exp(statistics.fmean(math.log(r) for r in ratios)),
                  "glimpse_ahead": sum(r >= 1.0 for r in ratios)}
    return out


def print_summary(args, result):
    print(f"\npaired decode: {args.synthetic} L{args.layers} {args.dtype}, {args.decode_tokens} tokens "
          f"after {args.decode_context} of context, threads={args.threads}, {args.paired_decode} pairs "
          f"of {args.repeats} repeats each (ratio > 1: glimpse faster)")
    print(f"{'quant':<18} {'median g/llama':>15} {'geomean':>9} {'range':>15} {'glimpse ahead':>14}")
    for q, r in result.items():
        ratios = [p["ratio"] for p in r["pairs"]]
        name = f"{q} | {llama_cpp.GGUF_FOR_QUANT[q]}"
        print(f"{name:<18} {r['median_ratio']:>14.3f}x {r['geomean_ratio']:>8.3f}x "
              f"{min(ratios):>6.3f}–{max(ratios):.3f}x {r['glimpse_ahead']:>8} of {len(ratios)}")
