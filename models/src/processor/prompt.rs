//! Placeholder expansion and tokenization (`Qwen3VLProcessor.__call__`): each `<|image_pad|>` of
//! the rendered template becomes `t·h·w/merge²` copies, each `<|video_pad|>` becomes one
//! `<T seconds><|vision_start|><|video_pad|>…<|vision_end|>` run per temporal group (transformers
//! 5.24 keeps the template's outer start/end around it, spec §7.4).

use std::path::Path;

use tokenizers::Tokenizer;

use super::video::{timestamp_text, ProcessedVideo};
use crate::{Error, Result};

/// The vision marker tokens as strings and ids, resolved through the tokenizer (never constants).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VisionTokens {
    pub image_token: String,
    pub video_token: String,
    pub vision_start_token: String,
    pub vision_end_token: String,
    pub image_token_id: u32,
    pub video_token_id: u32,
    pub vision_start_token_id: u32,
    pub vision_end_token_id: u32,
}

fn tokenizer_error(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer {
        reason: e.to_string(),
    }
}

/// Load `tokenizer.json` of a checkpoint directory.
pub fn load_tokenizer(dir: &Path) -> Result<Tokenizer> {
    let path = dir.join("tokenizer.json");
    if !path.is_file() {
        return Err(Error::MissingFile {
            path,
            reason: "the model folder has no tokenizer.json".into(),
        });
    }
    Tokenizer::from_file(&path).map_err(|e| Error::BadFile {
        path,
        reason: e.to_string(),
    })
}

impl VisionTokens {
    /// Token strings from `tokenizer_config.json` (top level or `extra_special_tokens`) where the
    /// tokenizer names them, else the Qwen defaults `<|image_pad|>` …; ids from the vocabulary.
    pub fn resolve(dir: &Path, tokenizer: &Tokenizer) -> Result<Self> {
        let cfg: serde_json::Value = std::fs::read_to_string(dir.join("tokenizer_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let name = |key: &str, default: &str| -> String {
            let pick = |v: Option<&serde_json::Value>| {
                v.and_then(|v| v.as_str().or_else(|| v.get("content")?.as_str()))
                    .map(str::to_owned)
            };
            pick(cfg.get(key))
                .or_else(|| pick(cfg.get("extra_special_tokens").and_then(|m| m.get(key))))
                .unwrap_or_else(|| default.to_owned())
        };
        let id = |token: &str| {
            tokenizer
                .token_to_id(token)
                .ok_or_else(|| Error::Tokenizer {
                    reason: format!("the vocabulary has no `{token}` token"),
                })
        };
        let image_token = name("image_token", "<|image_pad|>");
        let video_token = name("video_token", "<|video_pad|>");
        let vision_start_token = name("vision_start_token", "<|vision_start|>");
        let vision_end_token = name("vision_end_token", "<|vision_end|>");
        Ok(Self {
            image_token_id: id(&image_token)?,
            video_token_id: id(&video_token)?,
            vision_start_token_id: id(&vision_start_token)?,
            vision_end_token_id: id(&vision_end_token)?,
            image_token,
            video_token,
            vision_start_token,
            vision_end_token,
        })
    }
}

/// Expand the image and video placeholders of a rendered prompt, in order of appearance.
/// `image_merge`/`video_merge` are the processors' `merge_size`.
pub fn expand_placeholders(
    text: &str,
    tokens: &VisionTokens,
    image_grids: &[[usize; 3]],
    image_merge: usize,
    videos: &[ProcessedVideo],
    video_merge: usize,
) -> Result<String> {
    let (img, vid) = (tokens.image_token.as_str(), tokens.video_token.as_str());
    let mut out = String::with_capacity(text.len());
    let (mut n_img, mut n_vid) = (0usize, 0usize);
    let mut rest = text;
    loop {
        let next_img = rest.find(img);
        let next_vid = rest.find(vid);
        let (pos, is_image) = match (next_img, next_vid) {
            (None, None) => break,
            (Some(i), None) => (i, true),
            (None, Some(v)) => (v, false),
            (Some(i), Some(v)) => (i.min(v), i < v),
        };
        out.push_str(&rest[..pos]);
        if is_image {
            let grid = image_grids.get(n_img).ok_or(Error::TokenCountMismatch {
                what: "images in the prompt vs images given".into(),
                expected: image_grids.len(),
                got: n_img + 1,
            })?;
            let count = grid.iter().product::<usize>() / (image_merge * image_merge);
            out.push_str(&img.repeat(count));
            n_img += 1;
            rest = &rest[pos + img.len()..];
        } else {
            let v = videos.get(n_vid).ok_or(Error::TokenCountMismatch {
                what: "videos in the prompt vs videos given".into(),
                expected: videos.len(),
                got: n_vid + 1,
            })?;
            let [gt, gh, gw] = v.grid_thw;
            let per_group = gh * gw / (video_merge * video_merge);
            if v.timestamps.len() != gt {
                return Err(Error::TokenCountMismatch {
                    what: "video timestamps vs temporal groups".into(),
                    expected: gt,
                    got: v.timestamps.len(),
                });
            }
            for &t in &v.timestamps {
                out.push_str(&timestamp_text(t));
                out.push_str(&tokens.vision_start_token);
                out.push_str(&vid.repeat(per_group));
                out.push_str(&tokens.vision_end_token);
            }
            n_vid += 1;
            rest = &rest[pos + vid.len()..];
        }
    }
    out.push_str(rest);
    if n_img != image_grids.len() {
        return Err(Error::TokenCountMismatch {
            what: "image placeholders in the prompt vs images given".into(),
            expected: image_grids.len(),
            got: n_img,
        });
    }
    if n_vid != videos.len() {
        return Err(Error::TokenCountMismatch {
            what: "video placeholders in the prompt vs videos given".into(),
            expected: videos.len(),
            got: n_vid,
        });
    }
    Ok(out)
}

/// Tokenize a prompt as the processor does: special tokens are added by the tokenizer's
/// post-processor unless the text already starts with the BOS token (transformers'
/// `apply_chat_template` rule).
pub fn encode(tokenizer: &Tokenizer, text: &str, bos_token: Option<&str>) -> Result<Vec<u32>> {
    let add_special = !bos_token.is_some_and(|b| !b.is_empty() && text.starts_with(b));
    let enc = tokenizer
        .encode(text, add_special)
        .map_err(tokenizer_error)?;
    Ok(enc.get_ids().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> VisionTokens {
        VisionTokens {
            image_token: "<I>".into(),
            video_token: "<V>".into(),
            vision_start_token: "<S>".into(),
            vision_end_token: "<E>".into(),
            image_token_id: 1,
            video_token_id: 2,
            vision_start_token_id: 3,
            vision_end_token_id: 4,
        }
    }

    fn video(grid: [usize; 3], timestamps: Vec<f64>) -> ProcessedVideo {
        ProcessedVideo {
            pixel_values: vec![],
            grid_thw: grid,
            frame_indices: vec![],
            fps: 1.0,
            timestamps,
            resized: (0, 0),
        }
    }

    #[test]
    fn expands_images_and_videos_in_order() {
        let text = "a<S><I><E>b<S><V><E>c<S><I><E>";
        let out = expand_placeholders(
            text,
            &tokens(),
            &[[1, 4, 6], [1, 2, 2]],
            2,
            &[video([2, 2, 4], vec![0.25, 1.35])],
            2,
        )
        .unwrap();
        assert_eq!(
            out,
            "a<S><I><I><I><I><I><I><E>b<S><0.2 seconds><S><V><V><E><1.4 seconds><S><V><V><E><E>c<S><I><E>"
        );
    }

    #[test]
    fn count_mismatch_is_an_error() {
        let t = tokens();
        assert!(matches!(
            expand_placeholders("<I><I>", &t, &[[1, 2, 2]], 2, &[], 2),
            Err(Error::TokenCountMismatch { .. })
        ));
        assert!(matches!(
            expand_placeholders("none", &t, &[[1, 2, 2]], 2, &[], 2),
            Err(Error::TokenCountMismatch { .. })
        ));
        assert!(matches!(
            expand_placeholders("<V>", &t, &[], 2, &[], 2),
            Err(Error::TokenCountMismatch { .. })
        ));
    }
}
