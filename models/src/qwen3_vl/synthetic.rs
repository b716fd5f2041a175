//! Synthetic checkpoints with the real layer sizes of the released Qwen3-VL models (spec §1.4,
//! §2), filled with seeded random weights, so benchmarks run without a download. A preset may be
//! cut to fewer decoder layers / vision blocks; every kept layer has its real shape.
//!
//! The files are what transformers 5.24 `save_pretrained` writes (v5 config dialect, experts in
//! the nn.Linear orientation), so the same folder loads in transformers for side-by-side runs.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use candle_core::DType;
use serde_json::json;

use super::moe::ExpertLayout;
use crate::{Error, Result};

/// One of the released model shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Qwen3Vl2b,
    Qwen3Vl4b,
    Qwen3Vl8b,
    Qwen3Vl30bA3b,
}

impl std::str::FromStr for Preset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "qwen3-vl-2b" => Self::Qwen3Vl2b,
            "qwen3-vl-4b" => Self::Qwen3Vl4b,
            "qwen3-vl-8b" => Self::Qwen3Vl8b,
            "qwen3-vl-30b-a3b" => Self::Qwen3Vl30bA3b,
            other => {
                return Err(Error::bad_config(
                    "synthetic model",
                    format!(
                        "`{other}` is not one of qwen3-vl-2b, qwen3-vl-4b, qwen3-vl-8b, \
                         qwen3-vl-30b-a3b"
                    ),
                ))
            }
        })
    }
}

/// The numbers of spec §1.4 that differ between presets.
struct Dims {
    name: &'static str,
    hidden: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    intermediate: usize,
    /// (experts, top-k, expert width)
    moe: Option<(usize, usize, usize)>,
    tied: bool,
    v_depth: usize,
    v_hidden: usize,
    v_intermediate: usize,
    deepstack: [usize; 3],
}

impl Preset {
    pub fn name(self) -> &'static str {
        self.dims().name
    }

    /// Decoder layers and vision blocks of the full model.
    pub fn full_depth(self) -> (usize, usize) {
        let d = self.dims();
        (d.layers, d.v_depth)
    }

    fn dims(self) -> Dims {
        match self {
            Self::Qwen3Vl2b => Dims {
                name: "qwen3-vl-2b",
                hidden: 2048,
                layers: 28,
                heads: 16,
                kv_heads: 8,
                intermediate: 6144,
                moe: None,
                tied: true,
                v_depth: 24,
                v_hidden: 1024,
                v_intermediate: 4096,
                deepstack: [5, 11, 17],
            },
            Self::Qwen3Vl4b => Dims {
                name: "qwen3-vl-4b",
                hidden: 2560,
                layers: 36,
                heads: 32,
                kv_heads: 8,
                intermediate: 9728,
                moe: None,
                tied: true,
                v_depth: 24,
                v_hidden: 1024,
                v_intermediate: 4096,
                deepstack: [5, 11, 17],
            },
            Self::Qwen3Vl8b => Dims {
                name: "qwen3-vl-8b",
                hidden: 4096,
                layers: 36,
                heads: 32,
                kv_heads: 8,
                intermediate: 12288,
                moe: None,
                tied: false,
                v_depth: 27,
                v_hidden: 1152,
                v_intermediate: 4304,
                deepstack: [8, 16, 24],
            },
            Self::Qwen3Vl30bA3b => Dims {
                name: "qwen3-vl-30b-a3b",
                hidden: 2048,
                layers: 48,
                heads: 32,
                kv_heads: 4,
                intermediate: 6144,
                moe: Some((128, 8, 768)),
                tied: false,
                v_depth: 27,
                v_hidden: 1152,
                v_intermediate: 4304,
                deepstack: [8, 16, 24],
            },
        }
    }
}

/// A preset cut to `layers` decoder layers and `vision_layers` vision blocks, stored as `dtype`.
#[derive(Debug, Clone, Copy)]
pub struct Synthetic {
    pub preset: Preset,
    pub layers: usize,
    pub vision_layers: usize,
    pub dtype: DType,
    /// The real vocabulary (151936) unless a test asks for a smaller one to stay light.
    vocab: usize,
    /// How the MoE experts are stored: transformers 5's layout unless asked for the Hub files'.
    experts: ExpertLayout,
}

/// How a tensor is filled.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Init {
    /// Uniform with this standard deviation (zero mean).
    Random(f32),
    Ones,
    Zeros,
}

const VOCAB: usize = 151936;
const HEAD_DIM: usize = 128;

impl Synthetic {
    /// The full model, or the first `layers` / `vision_layers` of it. Zero layers are refused.
    pub fn new(
        preset: Preset,
        layers: Option<usize>,
        vision_layers: Option<usize>,
        dtype: DType,
    ) -> Result<Self> {
        let (full_l, full_v) = preset.full_depth();
        let layers = layers.unwrap_or(full_l);
        let vision_layers = vision_layers.unwrap_or(full_v);
        if layers == 0 || layers > full_l || vision_layers == 0 || vision_layers > full_v {
            return Err(Error::bad_config(
                "synthetic layers",
                format!(
                    "{} has {full_l} decoder layers and {full_v} vision blocks; asked for \
                     {layers} and {vision_layers} (each must be at least 1)",
                    preset.name()
                ),
            ));
        }
        Ok(Self {
            preset,
            layers,
            vision_layers,
            dtype,
            vocab: VOCAB,
            experts: ExpertLayout::Linear,
        })
    }

    /// The same model with its MoE experts stored as `layout` (the released 30B-A3B files use
    /// [`ExpertLayout::Hub`]; transformers 5 saves [`ExpertLayout::Linear`]). Dense presets have
    /// no experts, and the name does not change for them.
    pub fn with_expert_layout(mut self, layout: ExpertLayout) -> Self {
        self.experts = layout;
        self
    }

    /// The same model with a smaller vocabulary (embeddings and lm_head of `vocab` rows), for
    /// tests that want the real layer sizes in a lighter file.
    pub fn with_vocab(mut self, vocab: usize) -> Self {
        self.vocab = vocab;
        self
    }

    /// A folder name that identifies the content (for a cache of generated checkpoints).
    pub fn dir_name(&self) -> String {
        let hub = self.experts == ExpertLayout::Hub && self.preset.dims().moe.is_some();
        format!(
            "{}-L{}-V{}-{}{}",
            self.preset.name(),
            self.layers,
            self.vision_layers,
            self.dtype.as_str(),
            if hub { "-hub" } else { "" }
        )
    }

    /// `config.json` in the transformers 5 dialect.
    pub fn config_json(&self) -> serde_json::Value {
        let d = self.preset.dims();
        // DeepStack taps past the kept blocks are dropped: the tower cannot tap a missing block.
        let deepstack: Vec<usize> = d
            .deepstack
            .iter()
            .copied()
            .filter(|&b| b < self.vision_layers)
            .collect();
        // The released ids (image, video, vision start/end, bos, eos); a test's cut-down
        // vocabulary takes its last six rows instead.
        let v = self.vocab;
        let tok: [usize; 6] = if v == VOCAB {
            [151655, 151656, 151652, 151653, 151643, 151645]
        } else {
            [v - 6, v - 5, v - 4, v - 3, v - 2, v - 1]
        };
        let mut text = json!({
            "attention_bias": false,
            "attention_dropout": 0.0,
            "bos_token_id": tok[4],
            "eos_token_id": tok[5],
            "head_dim": HEAD_DIM,
            "hidden_act": "silu",
            "hidden_size": d.hidden,
            "initializer_range": 0.02,
            "intermediate_size": d.intermediate,
            "max_position_embeddings": 262144,
            "num_attention_heads": d.heads,
            "num_hidden_layers": self.layers,
            "num_key_value_heads": d.kv_heads,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {
                "mrope_interleaved": true,
                "mrope_section": [24, 20, 20],
                "rope_theta": 5000000.0,
                "rope_type": "default"
            },
            "use_cache": true,
            "vocab_size": self.vocab,
        });
        let (arch, model_type) = if let Some((e, k, i)) = d.moe {
            let t = text.as_object_mut().expect("object");
            t.insert("model_type".into(), json!("qwen3_vl_moe_text"));
            t.insert("num_experts".into(), json!(e));
            t.insert("num_experts_per_tok".into(), json!(k));
            t.insert("moe_intermediate_size".into(), json!(i));
            t.insert("decoder_sparse_step".into(), json!(1));
            t.insert("mlp_only_layers".into(), json!([]));
            t.insert("norm_topk_prob".into(), json!(true));
            ("Qwen3VLMoeForConditionalGeneration", "qwen3_vl_moe")
        } else {
            let t = text.as_object_mut().expect("object");
            t.insert("model_type".into(), json!("qwen3_vl_text"));
            ("Qwen3VLForConditionalGeneration", "qwen3_vl")
        };
        json!({
            "architectures": [arch],
            "model_type": model_type,
            "dtype": torch_dtype_name(self.dtype),
            "image_token_id": tok[0],
            "video_token_id": tok[1],
            "vision_start_token_id": tok[2],
            "vision_end_token_id": tok[3],
            "tie_word_embeddings": d.tied,
            "transformers_version": "5.24.0",
            "text_config": text,
            "vision_config": {
                "deepstack_visual_indexes": deepstack,
                "depth": self.vision_layers,
                "hidden_act": "gelu_pytorch_tanh",
                "hidden_size": d.v_hidden,
                "in_channels": 3,
                "initializer_range": 0.02,
                "intermediate_size": d.v_intermediate,
                "model_type": if d.moe.is_some() { "qwen3_vl_moe_vision" } else { "qwen3_vl_vision" },
                "num_heads": 16,
                "num_position_embeddings": 2304,
                "out_hidden_size": d.hidden,
                "patch_size": 16,
                "rope_parameters": {"rope_theta": 10000.0, "rope_type": "axial"},
                "spatial_merge_size": 2,
                "temporal_patch_size": 2
            }
        })
    }

    /// Every tensor of the checkpoint (spec §2) with its shape and fill.
    fn tensors(&self) -> Vec<(String, Vec<usize>, Init)> {
        let d = self.preset.dims();
        let mut out = Vec::new();
        let lin = |out: &mut Vec<_>, name: String, rows: usize, cols: usize, bias: bool| {
            out.push((
                format!("{name}.weight"),
                vec![rows, cols],
                Init::Random(1.0 / (cols as f32).sqrt()),
            ));
            if bias {
                out.push((format!("{name}.bias"), vec![rows], Init::Zeros));
            }
        };
        let norm = |out: &mut Vec<_>, name: String, dim: usize, bias: bool| {
            out.push((format!("{name}.weight"), vec![dim], Init::Ones));
            if bias {
                out.push((format!("{name}.bias"), vec![dim], Init::Zeros));
            }
        };

        // Vision tower (§2.1).
        let (dv, iv, dt) = (d.v_hidden, d.v_intermediate, d.hidden);
        let dm = 4 * dv;
        let v = "model.visual";
        out.push((
            format!("{v}.patch_embed.proj.weight"),
            vec![dv, 3, 2, 16, 16],
            Init::Random(1.0 / (1536f32).sqrt()),
        ));
        out.push((format!("{v}.patch_embed.proj.bias"), vec![dv], Init::Zeros));
        out.push((
            format!("{v}.pos_embed.weight"),
            vec![2304, dv],
            Init::Random(0.02),
        ));
        for b in 0..self.vision_layers {
            let p = format!("{v}.blocks.{b}");
            norm(&mut out, format!("{p}.norm1"), dv, true);
            norm(&mut out, format!("{p}.norm2"), dv, true);
            lin(&mut out, format!("{p}.attn.qkv"), 3 * dv, dv, true);
            lin(&mut out, format!("{p}.attn.proj"), dv, dv, true);
            lin(&mut out, format!("{p}.mlp.linear_fc1"), iv, dv, true);
            lin(&mut out, format!("{p}.mlp.linear_fc2"), dv, iv, true);
        }
        norm(&mut out, format!("{v}.merger.norm"), dv, true);
        lin(&mut out, format!("{v}.merger.linear_fc1"), dm, dm, true);
        lin(&mut out, format!("{v}.merger.linear_fc2"), dt, dm, true);
        let levels = d
            .deepstack
            .iter()
            .filter(|&&b| b < self.vision_layers)
            .count();
        for k in 0..levels {
            let p = format!("{v}.deepstack_merger_list.{k}");
            norm(&mut out, format!("{p}.norm"), dm, true);
            lin(&mut out, format!("{p}.linear_fc1"), dm, dm, true);
            lin(&mut out, format!("{p}.linear_fc2"), dt, dm, true);
        }

        // Text decoder (§2.2).
        let t = "model.language_model";
        let (dh, hq, hkv) = (d.hidden, d.heads, d.kv_heads);
        out.push((
            format!("{t}.embed_tokens.weight"),
            vec![self.vocab, dh],
            Init::Random(0.02),
        ));
        for i in 0..self.layers {
            let p = format!("{t}.layers.{i}");
            norm(&mut out, format!("{p}.input_layernorm"), dh, false);
            norm(&mut out, format!("{p}.post_attention_layernorm"), dh, false);
            lin(
                &mut out,
                format!("{p}.self_attn.q_proj"),
                hq * HEAD_DIM,
                dh,
                false,
            );
            lin(
                &mut out,
                format!("{p}.self_attn.k_proj"),
                hkv * HEAD_DIM,
                dh,
                false,
            );
            lin(
                &mut out,
                format!("{p}.self_attn.v_proj"),
                hkv * HEAD_DIM,
                dh,
                false,
            );
            lin(
                &mut out,
                format!("{p}.self_attn.o_proj"),
                dh,
                hq * HEAD_DIM,
                false,
            );
            norm(&mut out, format!("{p}.self_attn.q_norm"), HEAD_DIM, false);
            norm(&mut out, format!("{p}.self_attn.k_norm"), HEAD_DIM, false);
            match d.moe {
                Some((e, _, ie)) => {
                    lin(&mut out, format!("{p}.mlp.gate"), e, dh, false);
                    // §2.3: [E, 2I, D] and [E, D, I] as transformers 5 saves them, or the
                    // Hub files' [E, D, 2I] and [E, I, D].
                    out.push((
                        format!("{p}.mlp.experts.gate_up_proj"),
                        self.experts.gate_up_shape(e, dh, ie).to_vec(),
                        Init::Random(1.0 / (dh as f32).sqrt()),
                    ));
                    out.push((
                        format!("{p}.mlp.experts.down_proj"),
                        self.experts.down_shape(e, dh, ie).to_vec(),
                        Init::Random(1.0 / (ie as f32).sqrt()),
                    ));
                }
                None => {
                    let i = d.intermediate;
                    lin(&mut out, format!("{p}.mlp.gate_proj"), i, dh, false);
                    lin(&mut out, format!("{p}.mlp.up_proj"), i, dh, false);
                    lin(&mut out, format!("{p}.mlp.down_proj"), dh, i, false);
                }
            }
        }
        norm(&mut out, format!("{t}.norm"), dh, false);
        if !d.tied {
            lin(&mut out, "lm_head".into(), self.vocab, dh, false);
        }
        out
    }

    /// Bytes of weights the checkpoint holds.
    pub fn weight_bytes(&self) -> usize {
        self.tensors()
            .iter()
            .map(|(_, s, _)| s.iter().product::<usize>() * self.dtype.size_in_bytes())
            .sum()
    }

    /// `root/<dir_name>` with config.json and model.safetensors, written once: a folder that is
    /// already complete is reused as is. Returns the folder.
    pub fn ensure(&self, root: &Path) -> Result<PathBuf> {
        let dir = root.join(self.dir_name());
        let done = dir.join(".complete");
        if done.is_file() {
            return Ok(dir);
        }
        std::fs::create_dir_all(&dir).map_err(|e| io("creating", &dir, e))?;
        self.write(&dir)?;
        std::fs::write(&done, b"").map_err(|e| io("writing", &done, e))?;
        Ok(dir)
    }

    /// Writes config.json and model.safetensors into `dir`, streaming the weights (no copy of
    /// the whole model is ever held in memory).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let elem = match self.dtype {
            DType::F32 | DType::BF16 | DType::F16 => self.dtype.size_in_bytes(),
            other => {
                return Err(Error::bad_config(
                    "dtype",
                    format!("synthetic weights are f32, bf16 or f16, not {other:?}"),
                ))
            }
        };
        let cfg_path = dir.join("config.json");
        let cfg = serde_json::to_string_pretty(&self.config_json()).expect("serialisable");
        std::fs::write(&cfg_path, cfg).map_err(|e| io("writing", &cfg_path, e))?;

        let tensors = self.tensors();
        let mut header = serde_json::Map::new();
        header.insert("__metadata__".into(), json!({"format": "pt"}));
        let mut offset = 0usize;
        for (name, shape, _) in &tensors {
            let bytes = shape.iter().product::<usize>() * elem;
            header.insert(
                name.clone(),
                json!({"dtype": st_dtype(self.dtype), "shape": shape,
                       "data_offsets": [offset, offset + bytes]}),
            );
            offset += bytes;
        }
        let mut header = serde_json::to_vec(&header).expect("serialisable");
        // safetensors pads the header to 8 bytes with spaces.
        while !header.len().is_multiple_of(8) {
            header.push(b' ');
        }
        let path = dir.join("model.safetensors");
        let file = std::fs::File::create(&path).map_err(|e| io("creating", &path, e))?;
        let mut w = BufWriter::with_capacity(1 << 22, file);
        let mut put = |bytes: &[u8]| w.write_all(bytes).map_err(|e| io("writing", &path, e));
        put(&(header.len() as u64).to_le_bytes())?;
        put(&header)?;
        let mut buf = Vec::with_capacity(1 << 20);
        for (k, (name, shape, init)) in tensors.iter().enumerate() {
            let n: usize = shape.iter().product();
            let mut rng =
                SplitMix64(0x5EED ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ hash(name));
            let mut left = n;
            while left > 0 {
                let chunk = left.min(1 << 18);
                buf.clear();
                for _ in 0..chunk {
                    let v = match *init {
                        // Uniform on [-√3σ, √3σ] has standard deviation σ.
                        Init::Random(std) => (rng.unit() * 2.0 - 1.0) * 1.732_050_8 * std,
                        Init::Ones => 1.0,
                        Init::Zeros => 0.0,
                    };
                    match self.dtype {
                        DType::F32 => buf.extend_from_slice(&v.to_le_bytes()),
                        DType::BF16 => {
                            buf.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes())
                        }
                        _ => buf.extend_from_slice(&half::f16::from_f32(v).to_le_bytes()),
                    }
                }
                put(&buf)?;
                left -= chunk;
            }
        }
        w.flush().map_err(|e| io("writing", &path, e))?;
        Ok(())
    }
}

fn io(what: &str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        context: format!("{what} {}", path.display()),
        source,
    }
}

fn st_dtype(dtype: DType) -> &'static str {
    match dtype {
        DType::BF16 => "BF16",
        DType::F16 => "F16",
        _ => "F32",
    }
}

fn torch_dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        _ => "float32",
    }
}

fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// A small, fast, seedable generator: the weights only need to be reproducible, not good.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform on [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qwen3_vl::{Config, Qwen3VLModel};
    use candle_core::Device;

    /// Every preset's config parses, and the tensor list is exactly what the model asks for
    /// (checked by building it on a cut-down copy small enough for a unit test).
    #[test]
    fn presets_parse_and_list_real_shapes() {
        for p in [
            Preset::Qwen3Vl2b,
            Preset::Qwen3Vl4b,
            Preset::Qwen3Vl8b,
            Preset::Qwen3Vl30bA3b,
        ] {
            let s = Synthetic::new(p, Some(1), Some(1), DType::BF16).unwrap();
            let cfg = Config::from_json(&s.config_json().to_string()).unwrap();
            assert_eq!(cfg.text.num_hidden_layers, 1);
            assert_eq!(cfg.text.vocab_size, VOCAB);
            assert_eq!(cfg.text.moe.is_some(), p == Preset::Qwen3Vl30bA3b);
        }
        // 2B's q_proj is [2048, 2048], 30B-A3B's is [4096, 2048] (spec §2.2).
        let s = Synthetic::new(Preset::Qwen3Vl30bA3b, Some(1), Some(1), DType::BF16).unwrap();
        let t = s.tensors();
        let q = t
            .iter()
            .find(|(n, _, _)| n.ends_with("layers.0.self_attn.q_proj.weight"))
            .unwrap();
        assert_eq!(q.1, vec![4096, 2048]);
        let gu = t
            .iter()
            .find(|(n, _, _)| n.ends_with("experts.gate_up_proj"))
            .unwrap();
        assert_eq!(gu.1, vec![128, 1536, 2048]);
        // The Hub files' layout: [E, D, 2I] and [E, I, D], under its own folder name.
        let hub = s.with_expert_layout(ExpertLayout::Hub);
        let shape = |s: &Synthetic, suffix: &str| {
            let t = s.tensors();
            t.into_iter()
                .find(|(n, _, _)| n.ends_with(suffix))
                .unwrap()
                .1
        };
        assert_eq!(shape(&hub, "experts.gate_up_proj"), vec![128, 2048, 1536]);
        assert_eq!(shape(&hub, "experts.down_proj"), vec![128, 768, 2048]);
        assert_eq!(shape(&s, "experts.down_proj"), vec![128, 2048, 768]);
        assert_eq!(hub.dir_name(), format!("{}-hub", s.dir_name()));
        let dense = Synthetic::new(Preset::Qwen3Vl2b, Some(1), Some(1), DType::BF16).unwrap();
        let dense_hub = dense.with_expert_layout(ExpertLayout::Hub);
        assert_eq!(dense_hub.dir_name(), dense.dir_name());
        assert!(Synthetic::new(Preset::Qwen3Vl2b, Some(29), None, DType::F32).is_err());
        assert!("qwen3-vl-7b".parse::<Preset>().is_err());
    }

    /// A written checkpoint loads through the ordinary loader (every name and shape fits).
    #[test]
    fn written_checkpoint_loads() {
        let dir = std::env::temp_dir().join(format!("glimpse-synth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // One real-width layer of each kind; the vocabulary cut to 1024 rows keeps the file
        // at ~0.2 GB instead of 0.8 GB (the embedding is the 2B model's largest tensor).
        let mut s = Synthetic::new(Preset::Qwen3Vl2b, Some(1), Some(1), DType::BF16).unwrap();
        s.vocab = 1024;
        let got = s.ensure(&dir).unwrap();
        assert!(got.join(".complete").is_file());
        let (cfg, _model) = Qwen3VLModel::load(&got, DType::BF16, &Device::Cpu).unwrap();
        assert_eq!(cfg.vision.depth, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
