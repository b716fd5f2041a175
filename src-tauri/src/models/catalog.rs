//! The Qwen3-VL checkpoints Glimpse runs, what each costs, and which one suits this machine.
//!
//! Parameter counts are computed from each checkpoint's architecture ([`Arch::parameters`]), the
//! same formula that reproduces the spec's §1.4 counts (2.128 B, 4.438 B, 8.767 B, 31.07 B; see
//! the test). The 32B row is an ESTIMATE: no verified copy of its config was available, so it
//! assumes Qwen3-32B's text stack (hidden 5120, 64 layers, 64 heads / 8 KV heads, MLP 25600,
//! untied) and the 8B's vision tower; `estimated` says so to the UI.
//!
//! Memory needed = weights + KV cache for [`CONTEXT_TOKENS`] tokens + [`RUNTIME_ALLOWANCE`]
//! (activations of the vision tower on a large image, logits, allocator slack).

use serde::Serialize;

use super::system::SystemInfo;

/// The context the KV allowance is sized for (a large image plus a long answer).
pub const CONTEXT_TOKENS: u64 = 8192;
/// Activations, logits and allocator slack on top of weights and KV cache.
pub const RUNTIME_ALLOWANCE: u64 = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Dtype {
    Bf16,
    F16,
    F32,
}

impl Dtype {
    pub fn bytes(self) -> u64 {
        match self {
            Self::Bf16 | Self::F16 => 2,
            Self::F32 => 4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Flavour {
    Instruct,
    Thinking,
}

/// The architecture numbers that decide size (from the checkpoint's config.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arch {
    pub vocab: u64,
    pub hidden: u64,
    pub layers: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub intermediate: u64,
    /// `(num_experts, moe_intermediate_size)` when every layer is a sparse MoE block.
    pub moe: Option<(u64, u64)>,
    pub tied: bool,
    pub vision_depth: u64,
    pub vision_hidden: u64,
    pub vision_intermediate: u64,
    pub deepstack_levels: u64,
}

impl Arch {
    /// Exact parameter count of a Qwen3-VL model with these numbers (patch 16, temporal 2,
    /// merge 2, 2304 position embeddings, as in every released checkpoint).
    pub fn parameters(&self) -> u64 {
        let (h, hd) = (self.hidden, self.head_dim);
        let attn = 2 * h * self.heads * hd + 2 * h * self.kv_heads * hd + 2 * hd;
        let ffn = match self.moe {
            None => 3 * h * self.intermediate,
            Some((experts, inter)) => experts * h + experts * 3 * h * inter,
        };
        let layer = attn + ffn + 2 * h;
        let embeddings = self.vocab * h * if self.tied { 1 } else { 2 };
        let text = embeddings + self.layers * layer + h;

        let (hv, iv) = (self.vision_hidden, self.vision_intermediate);
        let patch = 3 * 2 * 16 * 16 * hv + hv + 2304 * hv;
        let block = 4 * hv + 3 * hv * hv + 3 * hv + hv * hv + hv + 2 * hv * iv + iv + hv;
        let m = 4 * hv;
        let merger_tail = m * m + m + m * h + h;
        let vision = patch
            + self.vision_depth * block
            + (2 * hv + merger_tail)
            + self.deepstack_levels * (2 * m + merger_tail);
        text + vision
    }

    /// KV cache bytes per token at `dtype`.
    pub fn kv_bytes_per_token(&self, dtype: Dtype) -> u64 {
        2 * self.layers * self.kv_heads * self.head_dim * dtype.bytes()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogEntry {
    /// The Hub repository, e.g. `Qwen/Qwen3-VL-4B-Instruct`.
    pub repo: String,
    /// `2B`, `30B-A3B`.
    pub size_label: &'static str,
    pub flavour: Flavour,
    pub moe: bool,
    pub parameters: u64,
    /// Download size of the bf16 safetensors (2 bytes per parameter; headers and small files
    /// add well under 1%).
    pub download_bytes: u64,
    /// True when the parameter count is derived from an unverified config (32B).
    pub estimated: bool,
    pub memory: Vec<MemoryNeed>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryNeed {
    pub dtype: Dtype,
    pub weights_bytes: u64,
    /// KV cache for [`CONTEXT_TOKENS`] plus [`RUNTIME_ALLOWANCE`].
    pub allowance_bytes: u64,
    pub total_bytes: u64,
}

impl CatalogEntry {
    pub fn memory_for(&self, dtype: Dtype) -> MemoryNeed {
        *self
            .memory
            .iter()
            .find(|m| m.dtype == dtype)
            .expect("every entry lists every dtype")
    }
}

/// What every released checkpoint shares (the 8B-class vision tower; smaller ones override it).
const BASE: Arch = Arch {
    vocab: 151_936,
    hidden: 0,
    layers: 0,
    heads: 0,
    kv_heads: 0,
    head_dim: 128,
    intermediate: 0,
    moe: None,
    tied: false,
    vision_depth: 27,
    vision_hidden: 1152,
    vision_intermediate: 4304,
    deepstack_levels: 3,
};

/// The 2B/4B vision tower.
const SMALL_VISION: Arch = Arch {
    vision_depth: 24,
    vision_hidden: 1024,
    vision_intermediate: 4096,
    tied: true,
    ..BASE
};

/// `(size label, architecture, estimated)`, smallest first. Values: spec §1.4 (32B: see module doc).
const SIZES: [(&str, Arch, bool); 5] = [
    (
        "2B",
        Arch {
            hidden: 2048,
            layers: 28,
            heads: 16,
            kv_heads: 8,
            intermediate: 6144,
            ..SMALL_VISION
        },
        false,
    ),
    (
        "4B",
        Arch {
            hidden: 2560,
            layers: 36,
            heads: 32,
            kv_heads: 8,
            intermediate: 9728,
            ..SMALL_VISION
        },
        false,
    ),
    (
        "8B",
        Arch {
            hidden: 4096,
            layers: 36,
            heads: 32,
            kv_heads: 8,
            intermediate: 12288,
            ..BASE
        },
        false,
    ),
    (
        "30B-A3B",
        Arch {
            hidden: 2048,
            layers: 48,
            heads: 32,
            kv_heads: 4,
            intermediate: 6144,
            moe: Some((128, 768)),
            ..BASE
        },
        false,
    ),
    (
        "32B",
        Arch {
            hidden: 5120,
            layers: 64,
            heads: 64,
            kv_heads: 8,
            intermediate: 25600,
            ..BASE
        },
        true,
    ),
];

/// Every checkpoint, smallest first, Instruct before Thinking.
pub fn catalog() -> Vec<CatalogEntry> {
    let mut out = Vec::new();
    for (label, arch, estimated) in SIZES {
        for flavour in [Flavour::Instruct, Flavour::Thinking] {
            let parameters = arch.parameters();
            let memory = [Dtype::Bf16, Dtype::F16, Dtype::F32]
                .into_iter()
                .map(|dtype| {
                    let weights_bytes = parameters * dtype.bytes();
                    let allowance_bytes =
                        arch.kv_bytes_per_token(dtype) * CONTEXT_TOKENS + RUNTIME_ALLOWANCE;
                    MemoryNeed {
                        dtype,
                        weights_bytes,
                        allowance_bytes,
                        total_bytes: weights_bytes + allowance_bytes,
                    }
                })
                .collect();
            out.push(CatalogEntry {
                repo: format!("Qwen/Qwen3-VL-{label}-{flavour:?}"),
                size_label: label,
                flavour,
                moe: arch.moe.is_some(),
                parameters,
                download_bytes: parameters * Dtype::Bf16.bytes(),
                estimated,
                memory,
            });
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Device {
    Cpu,
    Gpu,
}

/// What "fits comfortably" means. On a GPU the whole need (weights + allowance) must stay within
/// `gpu_fraction` of total VRAM (the driver and display take the rest). On the CPU the weights
/// must stay within `cpu_weight_fraction` of total RAM, leaving the rest to the OS, the app and
/// the allowance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub cpu_dtype: Dtype,
    pub gpu_dtype: Dtype,
    pub cpu_weight_fraction: f64,
    pub gpu_fraction: f64,
}

impl Default for Policy {
    /// bf16 everywhere (the checkpoints' own dtype), 60% of RAM, 85% of VRAM.
    fn default() -> Self {
        Self {
            cpu_dtype: Dtype::Bf16,
            gpu_dtype: Dtype::Bf16,
            cpu_weight_fraction: 0.60,
            gpu_fraction: 0.85,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    pub entry: CatalogEntry,
    pub device: Device,
    pub dtype: Dtype,
    /// What the rule compared against the budget (weights on CPU, weights + allowance on GPU).
    pub counted_bytes: u64,
    pub budget_bytes: u64,
    /// One sentence for the UI.
    pub reason: String,
}

/// The largest checkpoint of `flavour` that fits comfortably (see [`Policy`]): on the GPU when
/// `system.gpu` is known and something fits there, else on the CPU. `None` when even the smallest
/// does not fit (the UI then offers the smallest with a warning).
pub fn recommend(system: &SystemInfo, flavour: Flavour, policy: &Policy) -> Option<Recommendation> {
    let entries: Vec<_> = catalog()
        .into_iter()
        .filter(|e| e.flavour == flavour)
        .collect();
    let largest = |budget: u64, count: &dyn Fn(&CatalogEntry) -> u64| {
        entries
            .iter()
            .filter(|e| count(e) <= budget)
            .max_by_key(|e| e.parameters)
            .cloned()
    };
    if let Some(gpu) = &system.gpu {
        let budget = (gpu.total_vram_bytes as f64 * policy.gpu_fraction) as u64;
        let count = |e: &CatalogEntry| e.memory_for(policy.gpu_dtype).total_bytes;
        if let Some(entry) = largest(budget, &count) {
            let counted = count(&entry);
            return Some(Recommendation {
                reason: format!(
                    "{} needs about {} of GPU memory in {:?}; {} has {} ({}% budget: {})",
                    entry.repo,
                    gb(counted),
                    policy.gpu_dtype,
                    gpu.name,
                    gb(gpu.total_vram_bytes),
                    (policy.gpu_fraction * 100.0).round(),
                    gb(budget)
                ),
                entry,
                device: Device::Gpu,
                dtype: policy.gpu_dtype,
                counted_bytes: counted,
                budget_bytes: budget,
            });
        }
    }
    let budget = (system.total_ram_bytes as f64 * policy.cpu_weight_fraction) as u64;
    let count = |e: &CatalogEntry| e.memory_for(policy.cpu_dtype).weights_bytes;
    let entry = largest(budget, &count)?;
    let counted = count(&entry);
    Some(Recommendation {
        reason: format!(
            "{}'s weights take about {} in {:?}; this machine has {} of RAM ({}% budget: {})",
            entry.repo,
            gb(counted),
            policy.cpu_dtype,
            gb(system.total_ram_bytes),
            (policy.cpu_weight_fraction * 100.0).round(),
            gb(budget)
        ),
        entry,
        device: Device::Cpu,
        dtype: policy.cpu_dtype,
        counted_bytes: counted,
        budget_bytes: budget,
    })
}

fn gb(bytes: u64) -> String {
    super::error::human_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::system::GpuInfo;

    const GIB: u64 = 1 << 30;

    fn system(ram_gib: u64, vram_gib: Option<u64>) -> SystemInfo {
        SystemInfo {
            total_ram_bytes: ram_gib * GIB,
            available_ram_bytes: ram_gib * GIB / 2,
            cpu_cores: 8,
            gpu: vram_gib.map(|v| GpuInfo {
                name: "Test GPU".into(),
                total_vram_bytes: v * GIB,
                free_vram_bytes: None,
            }),
        }
    }

    #[test]
    fn parameter_formula_reproduces_the_spec_counts() {
        // Spec §1.4 consistency check (transformers 5.24 on the meta device), in millions.
        let want = [("2B", 2128), ("4B", 4438), ("8B", 8767), ("30B-A3B", 31071)];
        for (label, millions) in want {
            let (_, arch, _) = SIZES.iter().find(|(l, _, _)| *l == label).unwrap();
            let got = (arch.parameters() as f64 / 1e6).round() as u64;
            assert!(
                got.abs_diff(millions) <= 1,
                "{label}: {got} M vs {millions} M"
            );
        }
    }

    #[test]
    fn catalogue_lists_ten_checkpoints_with_consistent_sizes() {
        let cat = catalog();
        assert_eq!(cat.len(), 10);
        assert!(cat
            .iter()
            .any(|e| e.repo == "Qwen/Qwen3-VL-30B-A3B-Thinking" && e.moe));
        assert!(cat
            .iter()
            .any(|e| e.repo == "Qwen/Qwen3-VL-2B-Instruct" && !e.moe));
        for e in &cat {
            assert_eq!(e.estimated, e.size_label == "32B", "{}", e.repo);
            let bf16 = e.memory_for(Dtype::Bf16);
            let f32 = e.memory_for(Dtype::F32);
            assert_eq!(bf16.weights_bytes, e.download_bytes);
            assert_eq!(f32.weights_bytes, 2 * bf16.weights_bytes);
            assert!(bf16.allowance_bytes > RUNTIME_ALLOWANCE && f32.total_bytes > bf16.total_bytes);
        }
        // 2B: 28 layers × 8 KV heads × 128 × 2 (K and V) × 2 bytes × 8192 tokens.
        let two_b = &cat[0];
        assert_eq!(
            two_b.memory_for(Dtype::Bf16).allowance_bytes,
            2 * 28 * 8 * 128 * 2 * 8192 + RUNTIME_ALLOWANCE
        );
    }

    #[test]
    fn recommends_the_largest_that_fits_comfortably() {
        let policy = Policy::default();
        let pick = |ram, vram| {
            recommend(&system(ram, vram), Flavour::Instruct, &policy)
                .map(|r| (r.entry.size_label, r.device))
        };
        // 8 GiB RAM: 60% = 4.8 GiB; 2B bf16 weights are 4.26 GB.
        assert_eq!(pick(8, None), Some(("2B", Device::Cpu)));
        // 16 GiB: 9.6 GiB budget fits 4B (8.9 GB), not 8B (17.5 GB).
        assert_eq!(pick(16, None), Some(("4B", Device::Cpu)));
        assert_eq!(pick(32, None), Some(("8B", Device::Cpu)));
        // 128 GiB: 76.8 GiB budget fits the 32B (66.7 GB).
        assert_eq!(pick(128, None), Some(("32B", Device::Cpu)));
        assert_eq!(pick(4, None), None);
        // A 24 GiB GPU: 20.4 GiB budget; 8B bf16 needs 17.5 GB + allowance.
        assert_eq!(pick(16, Some(24)), Some(("8B", Device::Gpu)));
        // A GPU too small for anything falls back to the CPU.
        assert_eq!(pick(16, Some(2)), Some(("4B", Device::Cpu)));
        let thinking = recommend(&system(16, None), Flavour::Thinking, &policy).unwrap();
        assert_eq!(thinking.entry.repo, "Qwen/Qwen3-VL-4B-Thinking");
        assert!(thinking.counted_bytes <= thinking.budget_bytes);
        assert!(thinking.reason.contains("RAM"), "{}", thinking.reason);
    }
}
