//! The catalogue as the manager shows it: every checkpoint with, per dtype, whether it fits this
//! machine, and the one recommended.

use serde::Serialize;

use super::catalog::{catalog, recommend, CatalogEntry, Dtype, Flavour, Policy, Recommendation};
use super::load_check::Backends;
use super::system::SystemInfo;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fit {
    pub dtype: Dtype,
    /// Weights within the CPU budget ([`Policy::cpu_weight_fraction`] of RAM).
    pub fits_cpu: bool,
    /// Weights and allowance within the GPU budget; `None` without a known GPU.
    pub fits_gpu: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogRow {
    pub entry: CatalogEntry,
    pub fits: Vec<Fit>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogView {
    pub system: SystemInfo,
    pub backends: Backends,
    pub rows: Vec<CatalogRow>,
    /// Instruct (the model that answers directly); `None` when even the smallest does not fit.
    pub recommendation: Option<Recommendation>,
    /// Where downloads come from (the `HF_ENDPOINT` setting, else huggingface.co).
    pub endpoint: String,
}

/// Whether `entry` fits `system` at each dtype, by the same rule as [`recommend`].
pub fn fits(entry: &CatalogEntry, system: &SystemInfo, policy: &Policy) -> Vec<Fit> {
    let cpu_budget = (system.total_ram_bytes as f64 * policy.cpu_weight_fraction) as u64;
    let gpu_budget = system
        .gpu
        .as_ref()
        .map(|g| (g.total_vram_bytes as f64 * policy.gpu_fraction) as u64);
    entry
        .memory
        .iter()
        .map(|m| Fit {
            dtype: m.dtype,
            fits_cpu: m.weights_bytes <= cpu_budget,
            fits_gpu: gpu_budget.map(|b| m.total_bytes <= b),
        })
        .collect()
}

/// The whole view. The GPU only counts for the recommendation when this build can use it.
pub fn catalog_view(system: SystemInfo, backends: Backends, endpoint: String) -> CatalogView {
    let policy = Policy::default();
    let usable = SystemInfo {
        gpu: system.gpu.clone().filter(|_| backends.cuda),
        ..system.clone()
    };
    let recommendation = recommend(&usable, Flavour::Instruct, &policy);
    let rows = catalog()
        .into_iter()
        .map(|entry| CatalogRow {
            fits: fits(&entry, &usable, &policy),
            entry,
        })
        .collect();
    CatalogView {
        system,
        backends,
        rows,
        recommendation,
        endpoint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::system::GpuInfo;

    const GIB: u64 = 1 << 30;

    fn machine(ram_gib: u64, vram_gib: Option<u64>) -> SystemInfo {
        SystemInfo {
            total_ram_bytes: ram_gib * GIB,
            available_ram_bytes: ram_gib * GIB / 2,
            cpu_cores: 2,
            gpu: vram_gib.map(|v| GpuInfo {
                name: "G".into(),
                total_vram_bytes: v * GIB,
                free_vram_bytes: None,
            }),
        }
    }

    const CPU_ONLY: Backends = Backends {
        cuda: false,
        metal: false,
    };

    #[test]
    fn a_24_gib_cpu_machine_gets_the_4b_and_fits_follow_the_rule() {
        let view = catalog_view(machine(24, None), CPU_ONLY, "http://hub".into());
        let rec = view.recommendation.as_ref().unwrap();
        // 60% of 24 GiB = 14.4 GiB: 4B bf16 (8.9 GB) fits, 8B (17.5 GB) does not.
        assert_eq!(rec.entry.repo, "Qwen/Qwen3-VL-4B-Instruct");
        assert_eq!(view.rows.len(), 10);
        let row = |repo: &str| view.rows.iter().find(|r| r.entry.repo == repo).unwrap();
        let fit = |repo: &str, d: Dtype| {
            row(repo)
                .fits
                .iter()
                .find(|f| f.dtype == d)
                .unwrap()
                .clone()
        };
        assert!(fit("Qwen/Qwen3-VL-4B-Instruct", Dtype::Bf16).fits_cpu);
        // 4B in f32 is 17.8 GB: over the budget.
        assert!(!fit("Qwen/Qwen3-VL-4B-Instruct", Dtype::F32).fits_cpu);
        assert!(!fit("Qwen/Qwen3-VL-8B-Thinking", Dtype::Bf16).fits_cpu);
        assert_eq!(fit("Qwen/Qwen3-VL-2B-Instruct", Dtype::F32).fits_gpu, None);
        assert_eq!(view.endpoint, "http://hub");
    }

    #[test]
    fn a_gpu_counts_only_when_the_build_can_use_it() {
        let cpu_build = catalog_view(machine(16, Some(24)), CPU_ONLY, String::new());
        assert_eq!(
            cpu_build.recommendation.unwrap().entry.repo,
            "Qwen/Qwen3-VL-4B-Instruct"
        );
        // The GPU is still reported, for the user to see.
        assert!(cpu_build.system.gpu.is_some());
        let cuda = Backends {
            cuda: true,
            metal: false,
        };
        let view = catalog_view(machine(16, Some(24)), cuda, String::new());
        assert_eq!(
            view.recommendation.unwrap().entry.repo,
            "Qwen/Qwen3-VL-8B-Instruct"
        );
        let eight = view
            .rows
            .iter()
            .find(|r| r.entry.repo == "Qwen/Qwen3-VL-8B-Instruct")
            .unwrap();
        assert_eq!(eight.fits[0].fits_gpu, Some(true));
    }

    #[test]
    fn crosses_ipc_with_the_names_the_ui_reads() {
        // ui/src/lib/ipc.ts (CatalogView) mirrors these.
        let view = catalog_view(machine(24, Some(8)), CPU_ONLY, "http://hub".into());
        let json = serde_json::to_value(&view).unwrap();
        assert!(json["system"]["totalRamBytes"].is_u64());
        assert_eq!(json["system"]["gpu"]["totalVramBytes"], 8 * GIB);
        assert_eq!(
            json["backends"],
            serde_json::json!({"cuda": false, "metal": false})
        );
        let row = &json["rows"][0];
        assert_eq!(row["entry"]["repo"], "Qwen/Qwen3-VL-2B-Instruct");
        assert_eq!(row["entry"]["flavour"], "instruct");
        assert!(row["entry"]["downloadBytes"].is_u64());
        assert_eq!(row["entry"]["memory"][0]["dtype"], "bf16");
        assert!(row["entry"]["memory"][0]["totalBytes"].is_u64());
        assert_eq!(row["fits"][0]["fitsCpu"], true);
        // A GPU this build cannot use counts as none.
        assert!(row["fits"][0]["fitsGpu"].is_null());
        let rec = &json["recommendation"];
        assert_eq!(rec["device"], "cpu");
        assert_eq!(rec["dtype"], "bf16");
        assert!(rec["reason"].as_str().unwrap().contains("RAM"));
        assert_eq!(json["endpoint"], "http://hub");
    }

    #[test]
    fn too_small_a_machine_has_no_recommendation() {
        assert!(catalog_view(machine(2, None), CPU_ONLY, String::new())
            .recommendation
            .is_none());
    }
}
