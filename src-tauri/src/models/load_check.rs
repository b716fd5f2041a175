//! Before a model is loaded: can this build and this machine run it with the chosen device and
//! dtype? A refusal names what is missing; a choice that works but poorly comes back as a
//! warning. After loading, [`resident_bytes`] measures what the model took.

use glimpse_models::engine::{DeviceKind, LoadStage};
use glimpse_models::qwen3_vl::{Config, Quant, QuantizedParameters};
use std::path::Path;

use serde::Serialize;

use super::catalog::{Dtype, CONTEXT_TOKENS, RUNTIME_ALLOWANCE};
use super::error::human_bytes;
use super::system::SystemInfo;
use super::validate::{validate, Validation};
use crate::error::AppError;

/// The GPU back ends this binary was compiled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Backends {
    pub cuda: bool,
    pub metal: bool,
}

impl Backends {
    pub const fn compiled() -> Self {
        Self {
            cuda: cfg!(feature = "cuda"),
            metal: cfg!(feature = "metal"),
        }
    }
}

/// Why a load was refused before anything was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadRefusal {
    #[error(
        "this copy of Glimpse was built without {name} support, so it cannot load on {name}; \
         choose the CPU, or build Glimpse with `--features {feature}`"
    )]
    DeviceNotCompiled {
        name: &'static str,
        feature: &'static str,
    },
    #[error(
        "{model} needs about {} in {dtype}{} on the {where_} (weights {} plus {} for the context \
         and working memory), but only {} is available; choose a smaller model{}{}",
        quant_phrase(*quant),
        human_bytes(*needed), human_bytes(*weights), human_bytes(needed - weights),
        human_bytes(*available),
        if *dtype == "f32" { " or a 16-bit precision" } else { "" },
        match quant {
            Quant::None => " or quantized weights (8-bit or 4-bit)",
            Quant::Q8_0 => " or 4-bit weights",
            Quant::Q4K => "",
        }
    )]
    NotEnoughMemory {
        model: String,
        dtype: &'static str,
        quant: Quant,
        where_: &'static str,
        needed: u64,
        weights: u64,
        available: u64,
    },
}

/// " with 8-bit weights" and the like; nothing for unquantized weights.
fn quant_phrase(quant: Quant) -> &'static str {
    match quant {
        Quant::None => "",
        Quant::Q8_0 => " with 8-bit (Q8_0) weights",
        Quant::Q4K => " with 4-bit (Q4_K) weights",
    }
}

impl LoadRefusal {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::DeviceNotCompiled { .. } => "deviceNotCompiled",
            Self::NotEnoughMemory { .. } => "notEnoughMemory",
        }
    }
}

/// What the checks need to know about the model and the machine.
pub struct LoadRequest<'a> {
    pub model: &'a str,
    pub config: &'a Config,
    /// Parameters counted from the safetensors headers (see [`super::validate`]).
    pub parameters: u64,
    pub device: DeviceKind,
    pub dtype: Dtype,
    /// Quantization of the text decoder at load; fewer bytes for the weights it covers.
    pub quant: Quant,
    pub backends: Backends,
    pub system: &'a SystemInfo,
    /// Memory the currently loaded model holds; it is dropped before the new one loads.
    pub freed_by_unload: u64,
}

/// Bytes the model needs at `dtype` with `quant`: weights (the quantized layers counted by the
/// engine's rule, [`QuantizedParameters`]), KV cache for [`CONTEXT_TOKENS`], and
/// [`RUNTIME_ALLOWANCE`]; the same rule as the catalogue, applied to a local folder's own numbers.
/// A tied model is taken to have no `lm_head.weight` of its own, so quantizing adds a quantized
/// copy of its embeddings.
pub fn memory_need(config: &Config, parameters: u64, dtype: Dtype, quant: Quant) -> (u64, u64) {
    let t = &config.text;
    let weights = QuantizedParameters::count(config, quant, !config.tie_word_embeddings)
        .weight_bytes(parameters, dtype.bytes(), quant);
    let kv = 2 * (t.num_hidden_layers * t.num_key_value_heads * t.head_dim) as u64 * dtype.bytes();
    (weights, weights + kv * CONTEXT_TOKENS + RUNTIME_ALLOWANCE)
}

/// `Ok(warnings)` when the load may go ahead, else why not.
pub fn check_load(req: &LoadRequest) -> Result<Vec<String>, LoadRefusal> {
    let mut warnings = Vec::new();
    match req.device {
        DeviceKind::Cuda if !req.backends.cuda => {
            return Err(LoadRefusal::DeviceNotCompiled {
                name: "CUDA",
                feature: "cuda",
            })
        }
        DeviceKind::Metal if !req.backends.metal => {
            return Err(LoadRefusal::DeviceNotCompiled {
                name: "Metal",
                feature: "metal",
            })
        }
        _ => {}
    }
    if req.device == DeviceKind::Cpu && req.dtype != Dtype::F32 {
        warnings.push(format!(
            "{} on the CPU works but is several times slower than f32 (the CPU path has no fast \
             16-bit matrix multiply); choose f32 if memory allows",
            dtype_name(req.dtype)
        ));
    }
    let (weights, needed) = memory_need(req.config, req.parameters, req.dtype, req.quant);
    // Only the CPU's memory is known for certain; a GPU's free memory when nvidia-smi told us.
    let (where_, available) = match req.device {
        DeviceKind::Cpu => (
            "CPU",
            Some(req.system.available_ram_bytes + req.freed_by_unload),
        ),
        DeviceKind::Cuda => (
            "GPU",
            req.system.gpu.as_ref().and_then(|g| g.free_vram_bytes),
        ),
        DeviceKind::Metal => ("GPU", None),
    };
    if let Some(available) = available {
        if needed > available {
            return Err(LoadRefusal::NotEnoughMemory {
                model: req.model.to_string(),
                dtype: dtype_name(req.dtype),
                quant: req.quant,
                where_,
                needed,
                weights,
                available,
            });
        }
    }
    Ok(warnings)
}

/// What [`preflight`] decided: the dtype to load in, and the warnings to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    pub dtype: Dtype,
    pub warnings: Vec<String>,
}

/// Everything checked before a load: the folder validates, and the device, dtype and memory work.
/// Without a `dtype`, an accelerator gets bf16 and the CPU f32 (its fast path) when that fits in
/// memory, else bf16 with a warning saying why.
pub fn preflight(
    dir: &Path,
    device: DeviceKind,
    dtype: Option<Dtype>,
    quant: Quant,
    backends: Backends,
    system: &SystemInfo,
    freed_by_unload: u64,
) -> crate::error::Result<Preflight> {
    let parameters = match validate(dir) {
        Validation::Usable { parameters, .. } => parameters,
        Validation::Unusable { reason } => {
            return Err(AppError::UnusableModel {
                path: dir.display().to_string(),
                reason,
            })
        }
    };
    let config = Config::from_dir(dir)?;
    let name = dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let request = |dtype| LoadRequest {
        model: &name,
        config: &config,
        parameters,
        device,
        dtype,
        quant,
        backends,
        system,
        freed_by_unload,
    };
    let chosen = match dtype {
        Some(d) => d,
        None if device != DeviceKind::Cpu => Dtype::Bf16,
        None => match check_load(&request(Dtype::F32)) {
            Ok(warnings) => {
                return Ok(Preflight {
                    dtype: Dtype::F32,
                    warnings,
                })
            }
            Err(LoadRefusal::NotEnoughMemory { needed, .. }) => {
                let mut warnings = check_load(&request(Dtype::Bf16))?;
                warnings.insert(
                    0,
                    format!(
                        "loaded in bf16 because f32 would need about {}, more than is free",
                        human_bytes(needed)
                    ),
                );
                return Ok(Preflight {
                    dtype: Dtype::Bf16,
                    warnings,
                });
            }
            Err(e) => return Err(e.into()),
        },
    };
    let warnings = check_load(&request(chosen))?;
    Ok(Preflight {
        dtype: chosen,
        warnings,
    })
}

pub fn dtype_name(d: Dtype) -> &'static str {
    match d {
        Dtype::Bf16 => "bf16",
        Dtype::F16 => "f16",
        Dtype::F32 => "f32",
    }
}

pub fn parse_dtype(s: &str) -> Option<Dtype> {
    match s {
        "bf16" => Some(Dtype::Bf16),
        "f16" => Some(Dtype::F16),
        "f32" => Some(Dtype::F32),
        _ => None,
    }
}

/// A step of loading, as the UI shows it: `step` of `steps`, named by `stage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadProgress {
    pub stage: &'static str,
    pub step: usize,
    pub steps: usize,
}

/// The stages in order: the app's checks, then the engine's [`LoadStage`]s.
pub const LOAD_STAGES: [&str; 7] = [
    "checking",
    "unloading",
    "readingConfig",
    "readingProcessor",
    "openingDevice",
    "mappingWeights",
    "buildingModel",
];

pub fn progress(stage: &'static str) -> LoadProgress {
    let step = LOAD_STAGES.iter().position(|s| *s == stage).unwrap_or(0) + 1;
    LoadProgress {
        stage,
        step,
        steps: LOAD_STAGES.len(),
    }
}

pub fn engine_stage(stage: LoadStage) -> LoadProgress {
    progress(match stage {
        LoadStage::ReadingConfig => "readingConfig",
        LoadStage::ReadingProcessor => "readingProcessor",
        LoadStage::OpeningDevice => "openingDevice",
        LoadStage::MappingWeights => "mappingWeights",
        LoadStage::BuildingModel => "buildingModel",
    })
}

/// This process's resident memory now (RSS), or `None` where the OS does not say.
pub fn resident_bytes() -> Option<u64> {
    use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};
    let pid = sysinfo::get_current_pid().ok()?;
    let mut sys = System::new();
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        false,
        ProcessRefreshKind::nothing().with_memory(),
    );
    sys.process(pid).map(|p| p.memory())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::system::GpuInfo;

    const GIB: u64 = 1 << 30;

    fn config() -> Config {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/grounding");
        Config::from_dir(&dir).unwrap()
    }

    fn system(available: u64, gpu_free: Option<u64>) -> SystemInfo {
        SystemInfo {
            total_ram_bytes: 2 * available,
            available_ram_bytes: available,
            cpu_cores: 2,
            gpu: gpu_free.map(|f| GpuInfo {
                name: "G".into(),
                total_vram_bytes: 2 * f,
                free_vram_bytes: Some(f),
            }),
        }
    }

    fn request<'a>(
        config: &'a Config,
        system: &'a SystemInfo,
        device: DeviceKind,
        dtype: Dtype,
        parameters: u64,
    ) -> LoadRequest<'a> {
        LoadRequest {
            model: "m",
            config,
            parameters,
            device,
            dtype,
            quant: Quant::None,
            backends: Backends {
                cuda: false,
                metal: false,
            },
            system,
            freed_by_unload: 0,
        }
    }

    #[test]
    fn a_gpu_back_end_that_is_not_compiled_in_is_refused() {
        let (c, s) = (config(), system(16 * GIB, None));
        for (device, name) in [(DeviceKind::Cuda, "CUDA"), (DeviceKind::Metal, "Metal")] {
            let err = check_load(&request(&c, &s, device, Dtype::Bf16, 1000)).unwrap_err();
            assert_eq!(err.kind(), "deviceNotCompiled");
            assert!(err.to_string().contains(name), "{err}");
        }
        let mut req = request(&c, &s, DeviceKind::Cuda, Dtype::Bf16, 1000);
        req.backends.cuda = true;
        assert_eq!(check_load(&req), Ok(vec![]));
    }

    #[test]
    fn half_precision_on_the_cpu_is_allowed_with_a_warning() {
        let (c, s) = (config(), system(16 * GIB, None));
        let warnings = check_load(&request(&c, &s, DeviceKind::Cpu, Dtype::Bf16, 1000)).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("slower"), "{}", warnings[0]);
        assert!(
            check_load(&request(&c, &s, DeviceKind::Cpu, Dtype::F32, 1000))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_model_larger_than_free_memory_is_refused_with_numbers() {
        let c = config();
        let s = system(8 * GIB, Some(4 * GIB));
        // 4 B parameters in f32 = 16 GB of weights > 8 GiB free.
        let err =
            check_load(&request(&c, &s, DeviceKind::Cpu, Dtype::F32, 4_000_000_000)).unwrap_err();
        assert_eq!(err.kind(), "notEnoughMemory");
        let msg = err.to_string();
        assert!(msg.contains("16.0 GB") && msg.contains("16-bit"), "{msg}");
        // Unloading the current model frees enough.
        let mut req = request(&c, &s, DeviceKind::Cpu, Dtype::F32, 1_000_000_000);
        assert!(check_load(&req).is_ok());
        req.parameters = 2_500_000_000;
        assert!(check_load(&req).is_err());
        req.freed_by_unload = 8 * GIB;
        assert!(check_load(&req).is_ok());
        // On a GPU the free VRAM counts.
        let mut req = request(&c, &s, DeviceKind::Cuda, Dtype::Bf16, 3_000_000_000);
        req.backends.cuda = true;
        let err = check_load(&req).unwrap_err();
        assert!(err.to_string().contains("GPU"), "{err}");
    }

    #[test]
    fn memory_need_counts_weights_kv_and_allowance() {
        let c = config();
        let t = &c.text;
        let (weights, total) = memory_need(&c, 1000, Dtype::Bf16, Quant::None);
        assert_eq!(weights, 2000);
        let kv = 2 * (t.num_hidden_layers * t.num_key_value_heads * t.head_dim) as u64 * 2;
        assert_eq!(total, 2000 + kv * CONTEXT_TOKENS + RUNTIME_ALLOWANCE);
    }

    fn fixture() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/grounding")
    }

    const CPU_ONLY: Backends = Backends {
        cuda: false,
        metal: false,
    };

    #[test]
    fn preflight_picks_f32_on_the_cpu_when_it_fits_else_bf16_with_a_reason() {
        let dir = fixture();
        let roomy = system(16 * GIB, None);
        let p = preflight(
            &dir,
            DeviceKind::Cpu,
            None,
            Quant::None,
            CPU_ONLY,
            &roomy,
            0,
        )
        .unwrap();
        assert_eq!((p.dtype, p.warnings.len()), (Dtype::F32, 0));
        // The fixture is tiny; what decides is weights + KV + the 1 GiB allowance. Between the
        // bf16 and the f32 need, only bf16 fits.
        let config = Config::from_dir(&dir).unwrap();
        let parameters = match validate(&dir) {
            Validation::Usable { parameters, .. } => parameters,
            v => panic!("{v:?}"),
        };
        let (_, bf16) = memory_need(&config, parameters, Dtype::Bf16, Quant::None);
        let (_, f32) = memory_need(&config, parameters, Dtype::F32, Quant::None);
        let tight = system((bf16 + f32) / 2, None);
        let p = preflight(
            &dir,
            DeviceKind::Cpu,
            None,
            Quant::None,
            CPU_ONLY,
            &tight,
            0,
        )
        .unwrap();
        assert_eq!(p.dtype, Dtype::Bf16);
        assert!(p.warnings[0].contains("f32 would need"), "{:?}", p.warnings);
        assert!(p.warnings[1].contains("slower"), "{:?}", p.warnings);
        // An explicit choice is checked as asked.
        let err = preflight(
            &dir,
            DeviceKind::Cpu,
            Some(Dtype::F32),
            Quant::None,
            CPU_ONLY,
            &tight,
            0,
        )
        .unwrap_err();
        assert_eq!(err.kind(), "notEnoughMemory");
        let none = system(bf16 / 2, None);
        let err =
            preflight(&dir, DeviceKind::Cpu, None, Quant::None, CPU_ONLY, &none, 0).unwrap_err();
        assert_eq!(err.kind(), "notEnoughMemory");
        let err = preflight(
            &dir,
            DeviceKind::Cuda,
            None,
            Quant::None,
            CPU_ONLY,
            &roomy,
            0,
        )
        .unwrap_err();
        assert_eq!(err.kind(), "deviceNotCompiled");
    }

    /// Quantized weights need fewer bytes, by the engine's rule: on the MoE fixture (D 64) Q8_0
    /// covers the attention, dense MLP, experts' gate_up and lm_head; Q4_K covers nothing
    /// (no width is a multiple of 256), so it needs what unquantized weights need. A load that
    /// does not fit unquantized fits with 8-bit weights, and the refusal says so.
    #[test]
    fn quantized_weights_need_less_memory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/moe-hub");
        let config = Config::from_dir(&dir).unwrap();
        let parameters = match validate(&dir) {
            Validation::Usable { parameters, .. } => parameters,
            v => panic!("{v:?}"),
        };
        let (w_none, need_none) = memory_need(&config, parameters, Dtype::F32, Quant::None);
        let (w_q8, need_q8) = memory_need(&config, parameters, Dtype::F32, Quant::Q8_0);
        let (w_q4, _) = memory_need(&config, parameters, Dtype::F32, Quant::Q4K);
        assert_eq!(w_none, parameters * 4);
        assert_eq!(w_q4, w_none);
        let q = QuantizedParameters::count(&config, Quant::Q8_0, !config.tie_word_embeddings);
        assert!(q.replaced > parameters / 4, "{q:?} of {parameters}");
        assert_eq!(
            w_q8,
            (parameters - q.replaced) * 4
                + ((q.replaced + q.added) as f64 * 34.0 / 32.0).ceil() as u64
        );
        assert_eq!(
            need_none - w_none,
            need_q8 - w_q8,
            "the KV cache does not change"
        );

        let tight = system((need_none + need_q8) / 2, None);
        let err = preflight(
            &dir,
            DeviceKind::Cpu,
            Some(Dtype::F32),
            Quant::None,
            CPU_ONLY,
            &tight,
            0,
        )
        .unwrap_err();
        assert_eq!(err.kind(), "notEnoughMemory");
        assert!(err.to_string().contains("quantized weights"), "{err}");
        let p = preflight(
            &dir,
            DeviceKind::Cpu,
            Some(Dtype::F32),
            Quant::Q8_0,
            CPU_ONLY,
            &tight,
            0,
        )
        .unwrap();
        assert_eq!(p.dtype, Dtype::F32);
        let none = system(need_q8 / 2, None);
        let err = preflight(
            &dir,
            DeviceKind::Cpu,
            Some(Dtype::F32),
            Quant::Q8_0,
            CPU_ONLY,
            &none,
            0,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("with 8-bit (Q8_0) weights") && msg.contains("4-bit"),
            "{msg}"
        );
    }

    #[test]
    fn preflight_refuses_a_broken_folder_with_the_validation_reason() {
        let tmp = tempfile::tempdir().unwrap();
        let err = preflight(
            tmp.path(),
            DeviceKind::Cpu,
            None,
            Quant::None,
            CPU_ONLY,
            &system(16 * GIB, None),
            0,
        )
        .unwrap_err();
        assert_eq!(err.kind(), "unusableModel");
        assert!(err.to_string().contains("config.json"), "{err}");
    }

    #[test]
    fn stages_count_up_to_the_engine_build() {
        assert_eq!(progress("checking").step, 1);
        let last = engine_stage(LoadStage::BuildingModel);
        assert_eq!((last.step, last.steps), (7, 7));
        assert_eq!(engine_stage(LoadStage::ReadingConfig).step, 3);
    }

    #[test]
    fn an_engine_load_reports_every_stage_in_order() {
        use glimpse_models::engine::{Engine, LoadOptions};
        let mut seen = Vec::new();
        Engine::load_with(&fixture(), &LoadOptions::default(), &mut |s| {
            seen.push(engine_stage(s).step)
        })
        .unwrap();
        assert_eq!(seen, vec![3, 4, 5, 6, 7]);
        // A failing load stops at the stage that failed.
        let tmp = tempfile::tempdir().unwrap();
        let mut seen = Vec::new();
        assert!(
            Engine::load_with(tmp.path(), &LoadOptions::default(), &mut |s| {
                seen.push(engine_stage(s).stage)
            })
            .is_err()
        );
        assert_eq!(seen, vec!["readingConfig"]);
    }

    #[test]
    fn resident_memory_is_measured_and_grows_with_an_allocation() {
        let before = resident_bytes().expect("RSS on this OS");
        let block = vec![1u8; 64 << 20];
        let after = resident_bytes().unwrap();
        assert!(block.iter().all(|&b| b == 1));
        assert!(after >= before + (48 << 20), "{before} -> {after}");
    }
}
