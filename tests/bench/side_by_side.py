#!/usr/bin/env python3
"""Glimpse vs transformers (and llama.cpp where `llama-bench` is given) on the same
synthetic checkpoint and the same work, in one run, with ratios.

Run by hand, not in CI (minutes to hours on a CPU):

    cargo build --release -p glimpse-cli
    /root/.venvs/fixtures/bin/python tests/bench/side_by_side.py \
        --synthetic qwen3-vl-2b --layers 2 --vision-layers 4 --dtype bf16 --threads 2

With llama.cpp built outside the repository (BENCHMARKS.md, "llama.cpp", has the commands):

    ... side_by_side.py --synthetic qwen3-vl-30b-a3b --layers 2 --vision-layers 16 \
        --llama-bench /root/llama-build/bin/llama-bench \
        --llama-cpp-src /root/llama-src/llama_cpp_python-0.3.36/vendor/llama.cpp \
        --quants none,q8_0,q4k

1. `glimpse bench --synthetic ...` writes the checkpoint (real layer sizes, random weights,
   transformers-5 files) into the cache folder and measures Glimpse.
2. transformers (the pinned 5.24.0, CPU, the same thread count) loads that folder and runs the
   same image sizes, prompt lengths and decode length, timed the same way (median of repeats,
   wall and process CPU time).
3. Where llama.cpp is built (--llama-bench, see llama_cpp.py): GGUF files made from the same
   checkpoint (gguf_from_checkpoint.py), `llama-bench` on the same prompt lengths, decode length,
   context and threads, and `llama-mtmd-cli` on the same image sizes.
4. A table of all of them and the ratios (>1 means Glimpse is faster).

`--quants none,q8_0,q4k` also runs glimpse with --quant q8_0 / q4k against llama.cpp's Q8_0 /
Q4_K_M (prefill and decode; the vision tower is not quantized, so it is measured once).

`--paired-decode N` runs only decode, Glimpse and llama.cpp back to back N times with the order
swapped every pair, and summarises the ratios within the pairs (paired.py says why).

Timings on a shared machine are noisy: run them all in the same time window (this script does)
and read the CPU-time column next to the wall-clock one.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import llama_cpp  # tests/bench/llama_cpp.py, next to this script
import paired

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--synthetic", default="qwen3-vl-2b")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--vision-layers", type=int, default=4)
    p.add_argument("--dtype", default="bf16", choices=["bf16", "f32"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--images", default="512x512,1024x576", help="WxH,... or none")
    p.add_argument("--prefill", default="128,512")
    p.add_argument("--decode-tokens", type=int, default=32)
    p.add_argument("--decode-context", type=int, default=256)
    p.add_argument("--quants", default="none",
                   help="glimpse --quant values to run, comma separated (none, q8_0, q4k); "
                        "transformers runs --dtype only, llama.cpp the matching GGUF type")
    p.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/glimpse/bench"))
    p.add_argument("--glimpse", default=None, help="the glimpse binary (default: target/release)")
    p.add_argument("--skip-glimpse", action="store_true")
    p.add_argument("--skip-transformers", action="store_true")
    p.add_argument("--json-out", default=None)
    p.add_argument("--expert-layout", default="linear", choices=["linear", "hub"],
                   help="how the synthetic MoE model stores its experts (glimpse bench "
                        "--expert-layout): hub is the released 30B-A3B files' layout; "
                        "transformers is skipped for it")
    p.add_argument("--paired-decode", type=int, default=0, metavar="N",
                   help="instead of the full comparison: N pairs of glimpse and llama.cpp decode "
                        "runs back to back (order alternating), ratios within each pair (paired.py)")
    llama_cpp.add_args(p)
    args = p.parse_args()
    args.quants = args.quants.split(",")
    for q in args.quants:
        if q not in llama_cpp.GGUF_FOR_QUANT:
            p.error(f"--quants: `{q}` is not one of none, q8_0, q4k")
    return args


def glimpse_binary(args):
    if args.glimpse:
        return args.glimpse
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", "glimpse")


def run_glimpse(args, quant, images, prefill=None):
    cmd = [
        glimpse_binary(args), "bench", "--synthetic", args.synthetic,
        "--layers", str(args.layers), "--vision-layers", str(args.vision_layers),
        "--dtype", args.dtype, "--threads", str(args.threads), "--repeats", str(args.repeats),
        "--images", images, "--prefill", prefill or args.prefill,
        "--decode-tokens", str(args.decode_tokens), "--decode-context", str(args.decode_context),
        "--cache-dir", args.cache_dir, "--quant", quant, "--no-ttft",
        "--expert-layout", args.expert_layout,
    ]
    print("$", " ".join(cmd), flush=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    sys.stderr.write(out.stderr)
    print("\n".join(out.stdout.strip().splitlines()[:-1]))
    return json.loads(out.stdout.strip().splitlines()[-1])


def checkpoint_dir(args):
    name = f"{args.synthetic}-L{args.layers}-V{args.vision_layers}-{args.dtype}"
    # glimpse bench names the folder so (Synthetic::dir_name); only MoE models have experts.
    if args.expert_layout == "hub" and "a3b" in args.synthetic:
        name += "-hub"
    return os.path.join(args.cache_dir, name)


def timed(fn, repeats):
    import torch  # noqa: F401  (imported by the caller already)
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append((time.perf_counter() - w0) * 1e3)
        cpus.append((time.process_time() - c0) * 1e3)
    return statistics.median(walls), statistics.median(cpus)


def smart_resize(h, w, factor, min_pixels=65536, max_pixels=16777216):
    # transformers' Qwen2VL smart_resize (spec §6.2), the same budget glimpse bench uses.
    h_bar = round(h / factor) * factor
    w_bar = round(w / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(h * w / max_pixels)
        h_bar = max(factor, math.floor(h / beta / factor) * factor)
        w_bar = max(factor, math.floor(w / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        h_bar = math.ceil(h * beta / factor) * factor
        w_bar = math.ceil(w * beta / factor) * factor
    return h_bar, w_bar


def run_transformers(args, ckpt):
    import torch
    import transformers

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = json.load(open(os.path.join(ckpt, "config.json")))
    cls = getattr(transformers, cfg["architectures"][0])
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    t0 = time.perf_counter()
    model = cls.from_pretrained(ckpt, dtype=dtype).eval()
    load_ms = (time.perf_counter() - t0) * 1e3
    vc, tc = cfg["vision_config"], cfg["text_config"]
    p, m = vc["patch_size"], vc["spatial_merge_size"]
    patch_dim = 3 * vc["temporal_patch_size"] * p * p
    special = {cfg["image_token_id"], cfg["video_token_id"], cfg["vision_start_token_id"],
               cfg["vision_end_token_id"]}
    gen = torch.Generator().manual_seed(1)

    def ids(n):
        out = torch.randint(0, tc["vocab_size"], (1, n), generator=gen)
        for s in special:
            out[out == s] = 0
        return out

    report = {"load_ms": load_ms, "threads": torch.get_num_threads(), "vision": [], "prefill": []}
    with torch.inference_mode():
        for size in ([] if args.images == "none" else args.images.split(",")):
            w, h = (int(v) for v in size.split("x"))
            rh, rw = smart_resize(h, w, p * m)
            grid = torch.tensor([[1, rh // p, rw // p]])
            n = int(grid.prod())
            px = (torch.rand(n, patch_dim, generator=gen) * 2 - 1).to(dtype)
            wall, cpu = timed(lambda: model.model.get_image_features(px, grid), args.repeats)
            print(f"transformers vision {w}x{h}: {wall:.0f} ms", flush=True)
            report["vision"].append({"width": w, "height": h, "ms": wall, "cpu_ms": cpu})
        for n in (int(v) for v in args.prefill.split(",")):
            x = ids(n)
            wall, cpu = timed(lambda: model(input_ids=x, use_cache=True, logits_to_keep=1), args.repeats)
            print(f"transformers prefill {n}: {n / wall * 1e3:.1f} tok/s", flush=True)
            report["prefill"].append({"tokens": n, "ms": wall, "cpu_ms": cpu,
                                      "tokens_per_s": n / wall * 1e3})
        walls, cpus = [], []
        ctx = ids(args.decode_context)
        for _ in range(args.repeats):
            out = model(input_ids=ctx, use_cache=True, logits_to_keep=1)
            pkv, tok = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(args.decode_tokens):
                out = model(input_ids=tok, past_key_values=pkv, use_cache=True)
                pkv, tok = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
            walls.append((time.perf_counter() - w0) * 1e3)
            cpus.append((time.process_time() - c0) * 1e3)
        wall = statistics.median(walls)
        report["decode"] = {"tokens": args.decode_tokens, "ms": wall, "cpu_ms": statistics.median(cpus),
                            "tokens_per_s": args.decode_tokens / wall * 1e3}
        print(f"transformers decode: {report['decode']['tokens_per_s']:.2f} tok/s", flush=True)
    return report


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    args = parse_args()
    # "none": no vision comparison (glimpse bench still encodes its smallest image, not reported).
    images = [] if args.images == "none" else \
        [tuple(int(v) for v in size.split("x")) for size in args.images.split(",")]
    prefill = [int(v) for v in args.prefill.split(",")]
    load = {"start": loadavg()}
    print(f"load average at start: {load['start']}", flush=True)
    tools = llama_cpp.find_tools(args)
    if args.paired_decode:
        return main_paired(args, tools, load)

    # glimpse first (it writes the checkpoint), then the others in the same time window.
    g = {}
    if not args.skip_glimpse:
        for k, q in enumerate(args.quants):
            # glimpse bench always encodes an image; after the first quant only the smallest
            # (the vision tower is not quantized), and its time is not compared.
            g[q] = run_glimpse(args, q, args.images if k == 0 and images else "256x256")
    ckpt = checkpoint_dir(args)
    if not os.path.isfile(os.path.join(ckpt, "config.json")):
        sys.exit(f"{ckpt} has no checkpoint; run without --skip-glimpse first")
    if args.expert_layout == "hub" and not args.skip_transformers:
        # transformers 5 declares the experts [E, 2I, D] / [E, D, I] (spec §2.3).
        print("transformers: skipped for --expert-layout hub (it loads the transformers-5 layout)")
        args.skip_transformers = True
    t = None if args.skip_transformers else run_transformers(args, ckpt)
    load["after_transformers"] = loadavg()
    ll = None
    if tools:
        ll = llama_cpp.run(args, tools, ckpt, args.quants, images, prefill, args.decode_tokens,
                           args.decode_context)
    load["end"] = loadavg()
    print(f"load average: {load}")

    rows = []  # (measure, glimpse, transformers, llama.cpp, higher is better)
    first = args.quants[0]
    g0 = g.get(first)
    lq = (ll or {}).get("per_quant", {})
    lv = {(v["width"], v["height"]): v for v in (ll or {}).get("vision", [])}
    for k, (w, h) in enumerate(images):
        gi = g0["vision"][k] if g0 else None
        ti = t["vision"][k] if t else None
        li = lv.get((w, h))
        for key, unit in (("ms", "ms"), ("cpu_ms", "cpu ms")):
            rows.append((f"vision {w}x{h} {unit}", gi and gi[key], ti and ti[key], li and li[key], False))
    for q in args.quants:
        tag = "" if q == "none" else f" [{q} | {llama_cpp.GGUF_FOR_QUANT[q]}]"
        gq = g.get(q)
        tq = t if q == "none" else None
        l = lq.get(q)
        for k, n in enumerate(prefill):
            gi = gq["prefill"][k] if gq else None
            ti = tq["prefill"][k] if tq else None
            li = l["prefill"][k] if l else None
            rows.append((f"prefill {n} tok/s{tag}", gi and gi["tokens_per_s"], ti and ti["tokens_per_s"],
                         li and li["tokens_per_s"], True))
            rows.append((f"prefill {n} cpu ms{tag}", gi and gi["cpu_ms"], ti and ti["cpu_ms"],
                         li and li["cpu_ms"], False))
        gd = gq["decode"] if gq else None
        td = tq["decode"] if tq else None
        ld = l["decode"] if l else None
        rows.append((f"decode {args.decode_tokens} tok/s{tag}", gd and gd["tokens_per_s"],
                     td and td["tokens_per_s"], ld and ld["tokens_per_s"], True))
        rows.append((f"decode {args.decode_tokens} cpu ms{tag}", gd and gd["cpu_ms"], td and td["cpu_ms"],
                     ld and ld["cpu_ms"], False))
        # Decode's weight reads as a share of the read bandwidth Glimpse's probe measured right
        # after its own decode (the same bytes per token for every engine: Glimpse's count;
        # llama.cpp's Q4_K_M reads somewhat more, its Q6_K tensors, so its share is understated).
        bw = gd and gd.get("read_bandwidth_gb_per_s")
        mb = gd and gd.get("weight_mb_per_token")
        if bw and mb:
            share = lambda d: d and 100.0 * d["tokens_per_s"] * mb / 1e3 / bw
            rows.append((f"decode % of {bw:.1f} GB/s read{tag}", share(gd), share(td), share(ld), True))
    rows.append(("load ms", g0 and g0["load_ms"], t and t["load_ms"], None, False))

    def ratio(gv, other, higher):
        if gv is None or other is None or gv == 0 or other == 0:
            return "-"
        return f"{(gv / other if higher else other / gv):.2f}x"

    def num(v):
        return "-" if v is None else f"{v:.1f}"

    print(f"\n{args.synthetic} L{args.layers} V{args.vision_layers} {args.dtype} quants={','.join(args.quants)} "
          f"threads={args.threads} repeats={args.repeats} (medians); decode after {args.decode_context} "
          f"tokens of context")
    print(f"{'measure':<36} {'glimpse':>10} {'transformers':>13} {'llama.cpp':>10} {'g/tf':>7} {'g/llama':>8}")
    for name, gv, tv, lv_, higher in rows:
        if gv is None and tv is None and lv_ is None:
            continue
        print(f"{name:<36} {num(gv):>10} {num(tv):>13} {num(lv_):>10} {ratio(gv, tv, higher):>7} "
              f"{ratio(gv, lv_, higher):>8}")
    print("ratio > 1: glimpse is faster (tok/s: glimpse / other; times: other / glimpse)")
    if args.json_out:
        json.dump({"glimpse": g, "transformers": t, "llama_cpp": ll, "load_average": load,
                   "args": vars(args)}, open(args.json_out, "w"), indent=1)


def main_paired(args, tools, load):
    if tools is None:
        sys.exit("--paired-decode compares with llama.cpp: give --llama-bench")
    run = lambda q, images, prefill: run_glimpse(args, q, images, prefill)
    ckpt = checkpoint_dir(args)
    if not os.path.isfile(os.path.join(ckpt, "config.json")):
        run(args.quants[0], "64x64", "16")  # writes the checkpoint; not counted
    result = paired.paired_decode(args, tools, ckpt, run)
    load["end"] = loadavg()
    print(f"load average: {load}")
    paired.print_summary(args, result)
    if args.json_out:
        json.dump({"paired_decode": result, "load_average": load, "args": vars(args)},
                  open(args.json_out, "w"), indent=1)


if __name__ == "__main__":
    main()
