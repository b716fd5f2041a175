//! Criterion benches of the engine's kernels at the released models' real shapes (spec §1.4):
//! the decoder's linear layers (dense f32/bf16, Q8_0, Q4_K) for one row (decode) and a
//! 128-row block (prefill), decode attention over 1024- and 4096-token caches, one MoE block of the
//! 30B-A3B (32 of its 128 experts, so the bench fits in memory), and one 2B vision block.
//!
//! `cargo bench -p glimpse-models --bench kernels [-- FILTER]`. Numbers on a shared machine are
//! noisy; compare runs made back to back.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use glimpse_models::qwen3_vl::moe::SparseMoeBlock;
use glimpse_models::qwen3_vl::quant::{Linear, Quant};
use glimpse_models::qwen3_vl::synthetic::{Preset, Synthetic};
use glimpse_models::qwen3_vl::vision::layers::{Segments, VisionBlock};
use glimpse_models::qwen3_vl::Config;
use glimpse_models::qwen3_vl::{cpu_mm, kv_attention};
use std::collections::HashMap;
use std::time::Duration;

fn randn(shape: &[usize], std: f64, dtype: DType) -> Tensor {
    Tensor::randn(0f32, std as f32, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn config(preset: Preset) -> Config {
    let s = Synthetic::new(preset, Some(1), Some(1), DType::BF16).unwrap();
    Config::from_json(&s.config_json().to_string()).unwrap()
}

fn linear(c: &mut Criterion) {
    let mut g = c.benchmark_group("linear");
    // (name, in, out): 2B gate/up and down projections, 30B-A3B q_proj.
    for (name, k, n) in [
        ("2b.up", 2048, 6144),
        ("2b.down", 6144, 2048),
        ("30b.q", 2048, 4096),
    ] {
        let w = randn(&[n, k], 0.02, DType::F32);
        for (label, dtype, quant) in [
            ("f32", DType::F32, Quant::None),
            ("bf16", DType::BF16, Quant::None),
            ("q8_0", DType::F32, Quant::Q8_0),
            ("q4k", DType::F32, Quant::Q4K),
        ] {
            let lin = Linear::from_weight(w.to_dtype(dtype).unwrap(), quant).unwrap();
            for rows in [1usize, 128] {
                let x = randn(&[1, rows, k], 1.0, dtype);
                g.bench_with_input(
                    BenchmarkId::new(format!("{name}.{label}"), rows),
                    &x,
                    |b, x| b.iter(|| lin.forward(x).unwrap()),
                );
            }
        }
    }
    g.finish();
}

fn attention(c: &mut Criterion) {
    // One decode step's attention of one layer: the 2B's 16 query / 8 KV heads and the
    // 30B-A3B's 32 / 4, against 1024 and 4096 cached keys; the kernel the decoder uses
    // (kv_attention) and, for the 2B at 1024 keys, the general candle path it replaced.
    let mut g = c.benchmark_group("attention_decode");
    for dtype in [DType::F32, DType::BF16] {
        for (model, hq, hkv) in [("2b", 16, 8), ("30b", 32, 4)] {
            for keys in [1024, 4096] {
                let q = randn(&[1, hq, 1, 128], 1.0, dtype);
                let k = randn(&[1, hkv, keys, 128], 1.0, dtype);
                let v = randn(&[1, hkv, keys, 128], 1.0, dtype);
                let id = format!("{dtype:?}.{model}.{keys}keys");
                g.bench_function(id, |b| {
                    b.iter(|| kv_attention::attention(&q, &k, &v, 0.088).unwrap())
                });
            }
        }
        let q = randn(&[1, 8, 2, 128], 1.0, dtype);
        let k = randn(&[1, 8, 1024, 128], 1.0, dtype);
        let v = randn(&[1, 8, 1024, 128], 1.0, dtype);
        g.bench_function(format!("{dtype:?}.2b.1024keys.candle"), |b| {
            b.iter(|| {
                let s = cpu_mm::matmul(&q, &k.t().unwrap()).unwrap();
                let p = candle_nn::ops::softmax_last_dim(&s.to_dtype(DType::F32).unwrap())
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                cpu_mm::matmul(&p, &v).unwrap()
            })
        });
    }
    g.finish();
}

fn moe(c: &mut Criterion) {
    let mut cfg = config(Preset::Qwen3Vl30bA3b);
    let experts = 32;
    if let Some(m) = cfg.text.moe.as_mut() {
        m.num_experts = experts;
    }
    let (d, i) = (2048, 768);
    let mut g = c.benchmark_group("moe_block_30b");
    for (label, dtype, quant) in [
        ("bf16", DType::BF16, Quant::None),
        ("q8_0", DType::F32, Quant::Q8_0),
    ] {
        let mut t = HashMap::new();
        t.insert("gate.weight".into(), randn(&[experts, d], 0.02, dtype));
        t.insert(
            "experts.gate_up_proj".into(),
            randn(&[experts, 2 * i, d], 0.02, dtype),
        );
        t.insert(
            "experts.down_proj".into(),
            randn(&[experts, d, i], 0.02, dtype),
        );
        let vb = VarBuilder::from_tensors(t, dtype, &Device::Cpu);
        let block = SparseMoeBlock::new(&cfg, &mut None, quant, vb).unwrap();
        for rows in [1usize, 64] {
            let x = randn(&[1, rows, d], 1.0, dtype);
            g.bench_with_input(BenchmarkId::new(label, rows), &x, |b, x| {
                b.iter(|| block.forward(x).unwrap())
            });
        }
    }
    g.finish();
}

fn vision_block(c: &mut Criterion) {
    let cfg = config(Preset::Qwen3Vl2b).vision;
    let (dv, iv) = (cfg.hidden_size, cfg.intermediate_size);
    let mut g = c.benchmark_group("vision_block_2b");
    g.sample_size(10);
    for dtype in [DType::F32, DType::BF16] {
        let mut t = HashMap::new();
        for (name, shape) in [
            ("norm1.weight", vec![dv]),
            ("norm1.bias", vec![dv]),
            ("norm2.weight", vec![dv]),
            ("norm2.bias", vec![dv]),
            ("attn.qkv.weight", vec![3 * dv, dv]),
            ("attn.qkv.bias", vec![3 * dv]),
            ("attn.proj.weight", vec![dv, dv]),
            ("attn.proj.bias", vec![dv]),
            ("mlp.linear_fc1.weight", vec![iv, dv]),
            ("mlp.linear_fc1.bias", vec![iv]),
            ("mlp.linear_fc2.weight", vec![dv, iv]),
            ("mlp.linear_fc2.bias", vec![dv]),
        ] {
            t.insert(name.to_string(), randn(&shape, 0.02, dtype));
        }
        let block =
            VisionBlock::new(&cfg, VarBuilder::from_tensors(t, dtype, &Device::Cpu)).unwrap();
        // A 512×512 image: 32×32 patches.
        let n = 1024;
        let x = randn(&[n, dv], 1.0, dtype);
        let angles = randn(&[n, cfg.head_dim() / 2], 1.0, DType::F32);
        let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
        let seg = [Segments {
            start: 0,
            frames: 1,
            len: n,
        }];
        g.bench_function(format!("{dtype:?}.1024patches"), |b| {
            b.iter(|| block.forward(&x, &cos, &sin, &seg).unwrap())
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = linear, attention, moe, vision_block
}
criterion_main!(benches);
