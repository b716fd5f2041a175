//! Is a local folder a checkpoint Glimpse can load? Checked without reading any tensor data:
//!
//! 1. `config.json` parses as a Qwen3-VL config (`qwen3_vl` or `qwen3_vl_moe`) the engine accepts;
//! 2. the weights: `model.safetensors`, or every shard `model.safetensors.index.json` names;
//! 3. each weight file's header parses, its tensors' byte ranges are consistent with their dtype
//!    and shape, and the file is exactly as long as the header says (a truncated download shows
//!    up here), and every tensor the index lists is in the file it names;
//! 4. the embedding table has the shape the config implies;
//! 5. tokenizer, chat template and processor config are present.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use glimpse_models::qwen3_vl::{Architecture, Config};
use serde::{Deserialize, Serialize};

use crate::model_search::{ModelArchitecture, SearchResult, UnusableModel};

/// Safetensors headers are JSON; bigger than this is not a header we should read.
const MAX_HEADER_BYTES: u64 = 100 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum Validation {
    /// `summary` is one line for the model list, e.g. "dense Qwen3-VL, 2.13 B parameters, 1 file".
    #[serde(rename_all = "camelCase")]
    Usable {
        summary: String,
        architecture: ModelArchitecture,
        parameters: u64,
        weight_bytes: u64,
    },
    /// `reason` is a sentence saying what is wrong and where.
    Unusable { reason: String },
}

impl Validation {
    pub fn is_usable(&self) -> bool {
        matches!(self, Self::Usable { .. })
    }
}

/// Checks `dir` (a plain folder or an HF cache snapshot of symlinks).
pub fn validate(dir: &Path) -> Validation {
    match check(dir) {
        Ok(v) => v,
        Err(reason) => Validation::Unusable { reason },
    }
}

/// Runs [`validate`] on every model [`crate::model_search::search`] found (which only reads
/// config.json) and moves the ones that cannot load to `unusable`, with the reason.
pub fn validate_found(found: SearchResult) -> SearchResult {
    let mut out = SearchResult {
        models: Vec::new(),
        unusable: found.unusable,
    };
    for model in found.models {
        match validate(&model.path) {
            Validation::Usable { .. } => out.models.push(model),
            Validation::Unusable { reason } => out.unusable.push(UnusableModel {
                name: model.name,
                path: model.path,
                reason,
            }),
        }
    }
    out.unusable.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[derive(Deserialize)]
struct TensorInfo {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

#[derive(Deserialize)]
struct Index {
    weight_map: BTreeMap<String, String>,
}

fn check(dir: &Path) -> Result<Validation, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a folder", dir.display()));
    }
    // 1. config
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| format!("cannot read config.json: {e}"))?;
    let model_type = serde_json::from_str::<serde_json::Value>(&text)
        .map_err(|e| format!("config.json is not valid JSON: {e}"))?
        .get("model_type")
        .and_then(|t| t.as_str().map(str::to_owned));
    match model_type.as_deref() {
        Some("qwen3_vl" | "qwen3_vl_moe") => {}
        Some(other) => {
            return Err(format!(
                "config.json says model_type `{other}`, but Glimpse runs only Qwen3-VL \
                 (`qwen3_vl` or `qwen3_vl_moe`)"
            ));
        }
        None => return Err("config.json has no `model_type`".into()),
    }
    let cfg = Config::from_dir(dir).map_err(|e| format!("config.json is not usable: {e}"))?;

    // 2. which weight files
    let index_path = dir.join("model.safetensors.index.json");
    let index = if index_path.exists() {
        let text = std::fs::read_to_string(&index_path)
            .map_err(|e| format!("cannot read model.safetensors.index.json: {e}"))?;
        let index: Index = serde_json::from_str(&text)
            .map_err(|e| format!("model.safetensors.index.json is malformed: {e}"))?;
        Some(index)
    } else {
        None
    };
    let files: BTreeSet<String> = match &index {
        Some(index) => index.weight_map.values().cloned().collect(),
        None if dir.join("model.safetensors").exists() => ["model.safetensors".to_string()].into(),
        None => {
            return Err(
                "no weights: neither model.safetensors nor model.safetensors.index.json is here"
                    .into(),
            );
        }
    };
    if files.is_empty() {
        return Err("model.safetensors.index.json lists no tensors".into());
    }
    for f in &files {
        if !dir.join(f).is_file() {
            return Err(format!(
                "weight file {f} is missing (the index lists it); the download may be incomplete"
            ));
        }
    }

    // 3. headers and lengths
    let mut tensors: BTreeMap<String, (String, TensorInfo)> = BTreeMap::new();
    let mut weight_bytes = 0;
    for f in &files {
        let (header, len) = read_header(&dir.join(f)).map_err(|e| format!("{f}: {e}"))?;
        weight_bytes += len;
        for (name, info) in header {
            tensors.insert(name, (f.clone(), info));
        }
    }
    if let Some(index) = &index {
        for (tensor, file) in &index.weight_map {
            match tensors.get(tensor) {
                Some((found_in, _)) if found_in == file => {}
                _ => {
                    return Err(format!(
                        "tensor {tensor} is not in {file}, as the index says"
                    ))
                }
            }
        }
    }

    // 4. the embedding shape ties the weights to this config
    let embed = tensors
        .iter()
        .find(|(name, _)| name.ends_with("embed_tokens.weight"))
        .ok_or("the weights have no embed_tokens.weight tensor")?;
    let want = [cfg.text.vocab_size as u64, cfg.text.hidden_size as u64];
    if embed.1 .1.shape != want {
        return Err(format!(
            "{} has shape {:?} but config.json implies {:?}",
            embed.0, embed.1 .1.shape, want
        ));
    }

    // 5. companions
    let has = |name: &str| dir.join(name).is_file();
    if !has("tokenizer.json") {
        return Err("tokenizer.json is missing".into());
    }
    let template_in_tokenizer_config = std::fs::read_to_string(dir.join("tokenizer_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.get("chat_template").is_some());
    if !(has("chat_template.jinja") || has("chat_template.json") || template_in_tokenizer_config) {
        return Err(
            "no chat template (chat_template.jinja, chat_template.json, or one inside \
                    tokenizer_config.json)"
                .into(),
        );
    }
    if !(has("preprocessor_config.json") || has("processor_config.json")) {
        return Err(
            "no image processor config (preprocessor_config.json or processor_config.json)".into(),
        );
    }

    let parameters: u64 = tensors
        .values()
        .map(|(_, t)| t.shape.iter().product::<u64>())
        .sum();
    let architecture = ModelArchitecture::from(cfg.architecture);
    let kind = match cfg.architecture {
        Architecture::Dense => "dense",
        Architecture::Moe => "mixture-of-experts",
    };
    let summary = format!(
        "{kind} Qwen3-VL, {} parameters in {} file{}",
        human_count(parameters),
        files.len(),
        if files.len() == 1 { "" } else { "s" }
    );
    Ok(Validation::Usable {
        summary,
        architecture,
        parameters,
        weight_bytes,
    })
}

/// Parses one safetensors header and checks the file length against it. Returns the tensors
/// and the file length.
fn read_header(path: &Path) -> Result<(BTreeMap<String, TensorInfo>, u64), String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut n = [0u8; 8];
    file.read_exact(&mut n)
        .map_err(|_| "too short to be a safetensors file".to_string())?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER_BYTES || 8 + n > len {
        return Err(format!(
            "header length {n} does not fit in a {len}-byte file (truncated?)"
        ));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(|e| e.to_string())?;
    let mut raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| format!("header is not valid JSON: {e}"))?;
    raw.remove("__metadata__");
    let mut tensors = BTreeMap::new();
    let mut end = 0u64;
    for (name, value) in raw {
        let info: TensorInfo = serde_json::from_value(value)
            .map_err(|e| format!("tensor {name} has a malformed header entry: {e}"))?;
        let [start, stop] = info.data_offsets;
        let elem = dtype_bytes(&info.dtype)
            .ok_or_else(|| format!("tensor {name} has unknown dtype {}", info.dtype))?;
        let count = info
            .shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .and_then(|c| c.checked_mul(elem))
            .ok_or_else(|| format!("tensor {name} has an absurd shape {:?}", info.shape))?;
        if stop < start || stop - start != count {
            return Err(format!(
                "tensor {name} spans bytes {start}..{stop}, but {} {:?} needs {count}",
                info.dtype, info.shape
            ));
        }
        end = end.max(stop);
        tensors.insert(name, info);
    }
    let expected = 8 + n + end;
    if len != expected {
        return Err(format!(
            "the file is {len} bytes but its header describes {expected} (truncated or damaged)"
        ));
    }
    Ok((tensors, len))
}

fn dtype_bytes(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" => 1,
        "U16" | "I16" | "F16" | "BF16" => 2,
        "U32" | "I32" | "F32" => 4,
        "U64" | "I64" | "F64" => 8,
        _ => return None,
    })
}

/// `2.13 B`, `31.1 M`: parameter counts as model cards write them.
pub fn human_count(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2} B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} k", n / 1e3)
    } else {
        format!("{n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/models")
            .join(name)
    }

    /// A writable copy of a fixture checkpoint.
    fn copy_of(name: &str) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(fixture(name)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, tmp.path().join(path.file_name().unwrap())).unwrap();
        }
        tmp
    }

    fn reason(v: Validation) -> String {
        match v {
            Validation::Unusable { reason } => reason,
            other => panic!("expected unusable, got {other:?}"),
        }
    }

    #[test]
    fn both_fixture_checkpoints_are_usable() {
        for (name, arch, files) in [
            ("dense-v5", ModelArchitecture::Dense, "1 file"),
            ("moe-hub", ModelArchitecture::Moe, "2 files"),
        ] {
            match validate(&fixture(name)) {
                Validation::Usable {
                    summary,
                    architecture,
                    parameters,
                    weight_bytes,
                } => {
                    assert_eq!(architecture, arch, "{name}");
                    assert!(summary.ends_with(files), "{summary}");
                    assert!(parameters > 0 && weight_bytes > parameters, "{name}");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn missing_shard_is_named() {
        let dir = copy_of("moe-hub");
        std::fs::remove_file(dir.path().join("model-00002-of-00002.safetensors")).unwrap();
        let r = reason(validate(dir.path()));
        assert!(
            r.contains("model-00002-of-00002.safetensors") && r.contains("missing"),
            "{r}"
        );
    }

    #[test]
    fn wrong_architecture_is_rejected() {
        let dir = copy_of("dense-v5");
        let path = dir.path().join("config.json");
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        cfg["model_type"] = "qwen2_5_vl".into();
        std::fs::write(&path, cfg.to_string()).unwrap();
        let r = reason(validate(dir.path()));
        assert!(r.contains("qwen2_5_vl") && r.contains("Qwen3-VL"), "{r}");
    }

    #[test]
    fn truncated_weights_are_detected() {
        let dir = copy_of("dense-v5");
        let path = dir.path().join("model.safetensors");
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 1000).unwrap();
        let r = reason(validate(dir.path()));
        assert!(
            r.contains("model.safetensors") && r.contains("truncated"),
            "{r}"
        );
    }

    #[test]
    fn weights_for_another_config_are_rejected() {
        let dir = copy_of("dense-v5");
        let path = dir.path().join("config.json");
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let vocab = cfg["text_config"]["vocab_size"].as_u64().unwrap();
        cfg["text_config"]["vocab_size"] = (vocab + 1).into();
        std::fs::write(&path, cfg.to_string()).unwrap();
        let r = reason(validate(dir.path()));
        assert!(r.contains("embed_tokens") && r.contains("shape"), "{r}");
    }

    #[test]
    fn search_results_are_validated() {
        use crate::model_search::{search, LocationKind, SearchLocation};
        let app = tempfile::tempdir().unwrap();
        let good = app.path().join("good");
        std::fs::create_dir(&good).unwrap();
        for entry in std::fs::read_dir(fixture("dense-v5")).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, good.join(path.file_name().unwrap())).unwrap();
        }
        let config_only = app.path().join("config-only");
        std::fs::create_dir(&config_only).unwrap();
        std::fs::copy(
            fixture("dense-v5").join("config.json"),
            config_only.join("config.json"),
        )
        .unwrap();
        let loc = [SearchLocation::new(
            LocationKind::AppData,
            app.path().into(),
        )];
        let found = search(&loc).unwrap();
        assert_eq!(found.models.len(), 2, "search reads only config.json");
        let checked = validate_found(found);
        assert_eq!(checked.models.len(), 1);
        assert_eq!(checked.models[0].name, "good");
        assert_eq!(checked.unusable.len(), 1);
        assert!(
            checked.unusable[0].reason.contains("no weights"),
            "{:?}",
            checked.unusable
        );
    }

    #[test]
    fn missing_companions_are_named() {
        for (file, needle) in [
            ("tokenizer.json", "tokenizer.json"),
            ("processor_config.json", "processor config"),
        ] {
            let dir = copy_of("dense-v5");
            std::fs::remove_file(dir.path().join(file)).unwrap();
            let r = reason(validate(dir.path()));
            assert!(r.contains(needle), "{file}: {r}");
        }
        let dir = copy_of("dense-v5");
        std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
        assert!(reason(validate(dir.path())).contains("no weights"));
    }
}
