#!/usr/bin/env python3
"""GGUF files for llama.cpp from a checkpoint written by `glimpse bench --synthetic ...`.

Run by hand (side_by_side.py calls it when it finds llama.cpp):

    /root/.venvs/fixtures/bin/python tests/bench/gguf_from_checkpoint.py \
        --llama-cpp-src /root/llama-src/llama_cpp_python-0.3.36/vendor/llama.cpp \
        --llama-quantize /root/llama-build/bin/llama-quantize \
        ~/.cache/glimpse/bench/qwen3-vl-30b-a3b-L4-V27-bf16 OUT_DIR

writes OUT_DIR/text-BF16.gguf (the decoder), OUT_DIR/mmproj-BF16.gguf (the vision tower) and,
through llama-quantize, OUT_DIR/text-Q8_0.gguf and OUT_DIR/text-Q4_K_M.gguf. Files that exist
are kept.

The tensors go through llama.cpp's own converter (convert_hf_to_gguf.py's model classes, from
the llama.cpp source given) unchanged, with two adaptations a synthetic checkpoint needs:

* Vocabulary. A synthetic checkpoint has no tokenizer, and the converter identifies a BPE
  tokenizer by hashing how it splits a test string. The text GGUF gets a placeholder byte-level
  vocabulary of the config's `vocab_size` (the 256 byte tokens, one merge, the config's special
  tokens under their Qwen names so mtmd finds `<|vision_start|>`/`<|vision_end|>`, the rest
  unused). llama-bench feeds random token ids and never tokenizes, so speed does not depend on
  it; the weights (embedding and lm_head included) are the checkpoint's.
* Expert orientation. The converter expects the Hub's fused experts, `gate_up_proj [E, D, 2I]`
  and `down_proj [E, I, D]`; `glimpse bench` writes what transformers 5 saves, `[E, 2I, D]` and
  `[E, D, I]` (spec §2.3). Those are transposed back before the converter sees them; the
  orientation is decided once per checkpoint from the shapes, as the engine does.

A `preprocessor_config.json` with Qwen3-VL's image mean/std (0.5) is added for the mmproj: the
converter reads them from there, and the synthetic checkpoint has none.
"""

import argparse
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

QUANTS = ("Q8_0", "Q4_K_M")

# Qwen's names for the special ids a Qwen3-VL config carries.
SPECIAL_NAMES = {
    "bos_token_id": "<|endoftext|>",
    "eos_token_id": "<|im_end|>",
    "image_token_id": "<|image_pad|>",
    "video_token_id": "<|video_pad|>",
    "vision_start_token_id": "<|vision_start|>",
    "vision_end_token_id": "<|vision_end|>",
}

# Qwen3-VL's image processor normalisation (the values glimpse's processor uses, spec §6).
PREPROCESSOR = {
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "patch_size": 16,
    "merge_size": 2,
    "temporal_patch_size": 2,
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--llama-cpp-src", type=Path, default=os.environ.get("LLAMA_CPP_SRC"),
                   help="llama.cpp source tree (has convert_hf_to_gguf.py); env LLAMA_CPP_SRC")
    p.add_argument("--llama-quantize", default=os.environ.get("LLAMA_QUANTIZE"),
                   help="llama-quantize binary; env LLAMA_QUANTIZE (no quantized files without it)")
    p.add_argument("--no-mmproj", action="store_true", help="skip the vision tower")
    p.add_argument("--threads", type=int, default=2, help="llama-quantize threads")
    return p.parse_args()


def byte_tokens():
    # GPT-2's bytes_to_unicode order, which is also the order of Qwen's first 256 ids.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def safetensors_shapes(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}


def experts_are_linear_oriented(ckpt, cfg):
    """True when the fused experts are stored [E, 2I, D] / [E, D, I] (transformers 5 save)."""
    tc = cfg.get("text_config", cfg)
    d, i = tc["hidden_size"], tc.get("moe_intermediate_size")
    if i is None:
        return False
    shapes = safetensors_shapes(ckpt / "model.safetensors")
    down = next((s for k, s in shapes.items() if k.endswith("mlp.experts.down_proj")), None)
    gate_up = next((s for k, s in shapes.items() if k.endswith("mlp.experts.gate_up_proj")), None)
    if down is not None and d != i:
        return down[1:] == [d, i]
    if gate_up is not None and d != 2 * i:
        return gate_up[1:] == [2 * i, d]
    # Square in both: fall back to the file's dialect (transformers ≥ 5 saves nn.Linear layout).
    return int(str(cfg.get("transformers_version", "4")).split(".")[0]) >= 5


def staging_dir(ckpt, out):
    """The checkpoint's files (linked, not copied) plus the preprocessor config the converter needs."""
    stage = out / "hf"
    stage.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        link = stage / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to((ckpt / name).resolve())
    (stage / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR, indent=1))
    return stage


def convert(stage, out_file, mmproj, cfg, linear_experts):
    import torch
    import gguf
    from conversion import ModelBase, ModelType, get_model_architecture, get_model_class

    hparams = ModelBase.load_hparams(stage, False)
    arch = get_model_architecture(hparams, ModelType.MMPROJ if mmproj else ModelType.TEXT)
    base = get_model_class(arch, mmproj=mmproj)
    tc = cfg.get("text_config", cfg)

    class Synthetic(base):
        model_arch = base.model_arch  # the converter checks that every subclass names it

        def set_vocab(self):
            n = tc["vocab_size"]
            tokens = byte_tokens() + ["ĠĠ"]
            types = [gguf.TokenType.NORMAL] * len(tokens)
            tokens += [f"<|unused_{i}|>" for i in range(len(tokens), n)]
            types += [gguf.TokenType.UNUSED] * (n - len(types))
            for key, name in SPECIAL_NAMES.items():
                tid = tc.get(key, cfg.get(key))
                if tid is not None and tid < n:
                    tokens[tid], types[tid] = name, gguf.TokenType.CONTROL
            self.gguf_writer.add_tokenizer_model("gpt2")
            self.gguf_writer.add_tokenizer_pre("qwen2")
            self.gguf_writer.add_token_list(tokens)
            self.gguf_writer.add_token_types(types)
            self.gguf_writer.add_token_merges(["Ġ Ġ"])
            self.gguf_writer.add_bos_token_id(tc["bos_token_id"])
            self.gguf_writer.add_eos_token_id(tc["eos_token_id"])
            self.gguf_writer.add_add_bos_token(False)

        def modify_tensors(self, data_torch, name, bid):
            if linear_experts and (name.endswith("mlp.experts.gate_up_proj")
                                   or name.endswith("mlp.experts.down_proj")):
                data_torch = data_torch.permute(0, 2, 1)
            yield from super().modify_tensors(data_torch, name, bid)

    with torch.inference_mode():
        model = Synthetic(stage, gguf.LlamaFileType.MOSTLY_BF16, out_file)
        model.write()


def main():
    args = parse_args()
    if args.llama_cpp_src is None or not (args.llama_cpp_src / "convert_hf_to_gguf.py").is_file():
        sys.exit("--llama-cpp-src (or LLAMA_CPP_SRC) must be a llama.cpp source tree with convert_hf_to_gguf.py")
    sys.path.insert(0, str(args.llama_cpp_src / "gguf-py"))
    sys.path.insert(0, str(args.llama_cpp_src))
    ckpt, out = args.checkpoint.expanduser(), args.out.expanduser()
    cfg = json.loads((ckpt / "config.json").read_text())
    linear = experts_are_linear_oriented(ckpt, cfg)
    out.mkdir(parents=True, exist_ok=True)
    stage = staging_dir(ckpt, out)

    jobs = [("text-BF16.gguf", False)] + ([] if args.no_mmproj else [("mmproj-BF16.gguf", True)])
    for name, mmproj in jobs:
        if not (out / name).is_file():
            print(f"converting {ckpt} -> {out / name}", flush=True)
            # Written under a temporary name so an interrupted run leaves no file that looks done.
            part = out / (name + ".part")
            convert(stage, part, mmproj, cfg, linear)
            part.rename(out / name)
    if args.llama_quantize:
        for q in QUANTS:
            dst = out / f"text-{q}.gguf"
            if dst.is_file():
                continue
            part = out / (dst.name + ".part")
            cmd = [args.llama_quantize, str(out / "text-BF16.gguf"), str(part), q, str(args.threads)]
            print("$", " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)
            part.rename(dst)
    for p in sorted(out.glob("*.gguf")):
        print(f"{p}  {p.stat().st_size / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
