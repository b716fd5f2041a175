"""llama.cpp's column of side_by_side.py: `llama-bench` for prefill and decode, `llama-mtmd-cli`
for the vision tower, on GGUF files made from the same synthetic checkpoint
(gguf_from_checkpoint.py).

llama.cpp is not part of this repository: build it outside (BENCHMARKS.md has the commands) and
point at it with --llama-bench / LLAMA_BENCH. llama-quantize and llama-mtmd-cli are looked for
next to llama-bench unless given.

Timing: wall time is llama.cpp's own (llama-bench's per-repetition samples; the "image slice
encoded in N ms" line of mtmd), the median of the repeats like the other columns. CPU time
(user + system, all threads) is read from /proc/<pid>/stat when the tool announces a
repetition (`llama-bench --progress`) and when it reports the next event, so it covers the same
span as the wall time plus a few milliseconds of bookkeeping.
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))

# glimpse --quant -> the llama.cpp type compared with it.
GGUF_FOR_QUANT = {"none": "BF16", "q8_0": "Q8_0", "q4k": "Q4_K_M"}

PROGRESS = re.compile(r"benchmark (\d+)/\d+: (prompt|generation|depth|warmup)")
REP_START = re.compile(r"benchmark (\d+)/\d+: (prompt|generation) run")
# mtmd-cli around its vision encode (older builds log through mtmd-helper: "image slice ...").
ENCODE_START = re.compile(r"encoding mtmd batch|encoding image slice")
ENCODE_DONE = re.compile(r"(?:mtmd batch encoding done|image slice encoded) in (\d+) ms")


@dataclass
class Tools:
    bench: str
    quantize: str | None
    mtmd: str | None
    src: str | None
    poll: list


def add_args(p):
    p.add_argument("--llama-bench", default=os.environ.get("LLAMA_BENCH") or shutil.which("llama-bench"),
                   help="llama-bench binary (env LLAMA_BENCH; default: on PATH). Without it the "
                        "llama.cpp column is skipped")
    p.add_argument("--llama-quantize", default=os.environ.get("LLAMA_QUANTIZE"),
                   help="llama-quantize (default: next to llama-bench)")
    p.add_argument("--llama-mtmd-cli", default=os.environ.get("LLAMA_MTMD_CLI"),
                   help="llama-mtmd-cli for the vision tower (default: next to llama-bench)")
    p.add_argument("--llama-cpp-src", default=os.environ.get("LLAMA_CPP_SRC"),
                   help="llama.cpp source tree, for convert_hf_to_gguf.py (env LLAMA_CPP_SRC); "
                        "only needed when the GGUF files do not exist yet")
    p.add_argument("--gguf-dir", default=None,
                   help="where the GGUF files are (default: CACHE_DIR/gguf/<checkpoint name>)")
    p.add_argument("--llama-poll", type=int, default=None,
                   help="llama.cpp's --poll (how long its idle threads spin, 0-100; llama.cpp's "
                        "default 50). On a shared machine 0 is faster and its CPU time is work, "
                        "not spinning")
    p.add_argument("--skip-llama", action="store_true")


def find_tools(args):
    if args.skip_llama:
        return None
    if not args.llama_bench or not os.access(args.llama_bench, os.X_OK):
        print("llama.cpp: no `llama-bench` (give --llama-bench or LLAMA_BENCH); skipped "
              "(BENCHMARKS.md says how to build it outside the repo)")
        return None
    bindir = os.path.dirname(os.path.abspath(args.llama_bench))

    def sibling(given, name):
        path = given or os.path.join(bindir, name)
        return path if os.access(path, os.X_OK) else None

    poll = [] if args.llama_poll is None else ["--poll", str(args.llama_poll)]
    return Tools(args.llama_bench, sibling(args.llama_quantize, "llama-quantize"),
                 sibling(args.llama_mtmd_cli, "llama-mtmd-cli"), args.llama_cpp_src, poll)


def gguf_files(args, tools, ckpt, quants, vision):
    """The GGUF files the run needs, made by gguf_from_checkpoint.py where missing."""
    out = args.gguf_dir or os.path.join(args.cache_dir, "gguf", os.path.basename(ckpt))
    want = {f"text-{GGUF_FOR_QUANT[q]}.gguf" for q in quants}
    if vision and tools.mtmd:
        want.add("mmproj-BF16.gguf")
    missing = [f for f in sorted(want) if not os.path.isfile(os.path.join(out, f))]
    if missing:
        if not tools.src:
            raise SystemExit(f"llama.cpp: {out} lacks {', '.join(missing)}; give --llama-cpp-src "
                             "(or LLAMA_CPP_SRC) to convert the checkpoint")
        cmd = [sys.executable, os.path.join(HERE, "gguf_from_checkpoint.py"), ckpt, out,
               "--llama-cpp-src", tools.src, "--threads", str(args.threads)]
        if tools.quantize and any(q != "none" for q in quants):
            cmd += ["--llama-quantize", tools.quantize]
        if "mmproj-BF16.gguf" not in want:
            cmd.append("--no-mmproj")
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return out


def cpu_ms(pid):
    """User + system CPU time of a running process (all its threads), in ms."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields 14 and 15 of stat(5); the split starts at field 3.
    return (int(fields[11]) + int(fields[12])) * 1e3 / os.sysconf("SC_CLK_TCK")


def run_marked(cmd):
    """Runs cmd; every line it prints, with the process's CPU time when the line arrived."""
    print("$", " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            errors="replace", bufsize=1)
    events, lock = [], threading.Lock()

    def read(stream, tag):
        for line in stream:
            try:
                c = cpu_ms(proc.pid)
            except (OSError, IndexError, ValueError):
                c = None
            with lock:
                events.append((time.perf_counter(), tag, line.rstrip("\n"), c))

    readers = [threading.Thread(target=read, args=(proc.stdout, "out")),
               threading.Thread(target=read, args=(proc.stderr, "err"))]
    for t in readers:
        t.start()
    rc = proc.wait()
    for t in readers:
        t.join()
    events.sort(key=lambda e: e[0])
    if rc != 0:
        tail = "\n".join(e[2] for e in events[-25:])
        raise RuntimeError(f"{os.path.basename(cmd[0])} exited with {rc}:\n{tail}")
    return events


def llama_bench(tools, gguf, threads, repeats, extra):
    """One llama-bench invocation; one entry per test it ran (pp or tg)."""
    cmd = [tools.bench, "-m", gguf, "-t", str(threads), "-r", str(repeats), "-o", "jsonl",
           "--progress", *tools.poll, *extra]
    events = run_marked(cmd)
    rep_cpu = {}
    for i, (_, tag, line, c) in enumerate(events):
        m = REP_START.search(line) if tag == "err" else None
        if not m or c is None:
            continue
        # The repetition ends where llama-bench says anything about the benchmark next.
        for _, tag2, line2, c2 in events[i + 1:]:
            if (tag2 == "out" and line2.startswith("{")) or PROGRESS.search(line2):
                if c2 is not None:
                    rep_cpu.setdefault(int(m.group(1)), []).append(c2 - c)
                break
    out = []
    results = [json.loads(e[2]) for e in events if e[1] == "out" and e[2].startswith("{")]
    for k, r in enumerate(results, start=1):
        wall = statistics.median(r["samples_ns"]) / 1e6
        tokens = r["n_prompt"] or r["n_gen"]
        cpus = rep_cpu.get(k, [])
        out.append({"n_prompt": r["n_prompt"], "n_gen": r["n_gen"], "n_depth": r.get("n_depth", 0),
                    "tokens": tokens, "ms": wall, "tokens_per_s": tokens / wall * 1e3,
                    "cpu_ms": statistics.median(cpus) if cpus else None, "runs_ms":
                    [s / 1e6 for s in r["samples_ns"]], "type_k": r.get("type_k"),
                    "flash_attn": r.get("flash_attn"), "n_batch": r.get("n_batch"),
                    "n_ubatch": r.get("n_ubatch"), "poll": r.get("poll"),
                    "build_commit": r.get("build_commit"),
                    "cpu_info": r.get("cpu_info"), "model_type": r.get("model_type"),
                    "model_size": r.get("model_size")})
    return out


def test_image(path, w, h):
    import numpy as np
    from PIL import Image
    if not os.path.isfile(path):
        rng = np.random.default_rng(w * 10007 + h)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def mtmd_vision(tools, text_gguf, mmproj, image, threads, repeats):
    """Vision encode of one image through llama-mtmd-cli, `repeats` fresh runs. mtmd resizes with
    the same smart_resize rule (its token budget, 8..4096 merged tokens, does not bind for the
    sizes benchmarked here), so the grid is the one glimpse and transformers encode."""
    walls, cpus, tokens = [], [], None
    for _ in range(repeats):
        cmd = [tools.mtmd, "-m", text_gguf, "--mmproj", mmproj, "--image", image,
               "-p", "Describe the image.", "-n", "1", "-t", str(threads), "-c", "8192",
               "--temp", "0", "--chat-template", "chatml", *tools.poll]
        events = run_marked(cmd)
        start = next((e for e in events if ENCODE_START.search(e[2])), None)
        done = next((e for e in events if ENCODE_DONE.search(e[2])), None)
        if start is None or done is None:
            raise RuntimeError("llama-mtmd-cli printed no image encode time:\n"
                               + "\n".join(e[2] for e in events[-25:]))
        walls.append(float(ENCODE_DONE.search(done[2]).group(1)))
        if start[3] is not None and done[3] is not None:
            cpus.append(done[3] - start[3])
    return {"ms": statistics.median(walls), "cpu_ms": statistics.median(cpus) if cpus else None,
            "runs_ms": walls}


def run(args, tools, ckpt, quants, images, prefill, decode_tokens, decode_context):
    """llama.cpp on the same work as glimpse: per quant, prefill and decode; vision once (bf16)."""
    if args.dtype != "bf16":
        print(f"llama.cpp: compared at bf16 only (the GGUF is bf16, this run is {args.dtype}); skipped")
        return None
    vision = bool(images) and tools.mtmd is not None
    if images and tools.mtmd is None:
        print("llama.cpp: no llama-mtmd-cli next to llama-bench; vision skipped")
    gdir = gguf_files(args, tools, ckpt, quants, vision)
    report = {"gguf_dir": gdir, "per_quant": {}, "vision": []}
    for q in quants:
        gguf = os.path.join(gdir, f"text-{GGUF_FOR_QUANT[q]}.gguf")
        pp = llama_bench(tools, gguf, args.threads, args.repeats,
                         ["-p", ",".join(map(str, prefill)), "-n", "0"])
        tg = llama_bench(tools, gguf, args.threads, args.repeats,
                         ["-p", "0", "-n", str(decode_tokens), "-d", str(decode_context)])
        report["per_quant"][q] = {"type": GGUF_FOR_QUANT[q], "prefill": pp, "decode": tg[0]}
        for r in pp:
            print(f"llama.cpp {GGUF_FOR_QUANT[q]} prefill {r['tokens']}: {r['tokens_per_s']:.1f} tok/s")
        print(f"llama.cpp {GGUF_FOR_QUANT[q]} decode {decode_tokens}: {tg[0]['tokens_per_s']:.2f} tok/s",
              flush=True)
    if vision:
        text = os.path.join(gdir, f"text-{GGUF_FOR_QUANT[quants[0]]}.gguf")
        for w, h in images:
            img = test_image(os.path.join(gdir, f"noise-{w}x{h}.png"), w, h)
            v = mtmd_vision(tools, text, os.path.join(gdir, "mmproj-BF16.gguf"), img, args.threads,
                            args.repeats)
            v.update(width=w, height=h)
            report["vision"].append(v)
            print(f"llama.cpp vision {w}x{h}: {v['ms']:.0f} ms", flush=True)
    return report
