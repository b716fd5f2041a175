//! The checkpoint's own chat template, rendered with minijinja the way transformers renders it
//! with jinja2 (`trim_blocks`, `lstrip_blocks`, Python string methods, `raise_exception`,
//! `tojson` with Python's separators).

use std::path::Path;

use minijinja::{Environment, ErrorKind, Value};
use serde_json::json;

use crate::{Error, Result};

/// Where the template was found, for error messages.
#[derive(Clone, Debug)]
pub struct ChatTemplate {
    source: String,
    origin: String,
    /// Special-token strings of `tokenizer_config.json` (`bos_token`, `eos_token`, …), passed to
    /// the template as transformers does.
    special_tokens: serde_json::Map<String, serde_json::Value>,
}

/// Options of one rendering (`apply_chat_template` keyword arguments).
#[derive(Clone, Debug, Default)]
pub struct RenderOptions {
    pub add_generation_prompt: bool,
    /// Passed through as `enable_thinking` when set (Qwen3 thinking templates read it).
    pub enable_thinking: Option<bool>,
    /// Tool JSON schemas (`tools=` in transformers), if any.
    pub tools: Option<serde_json::Value>,
    /// Prefix images/videos with `Picture N:`/`Video N:` (`add_vision_id`).
    pub add_vision_id: bool,
}

fn template_error(origin: &str, e: impl std::fmt::Display) -> Error {
    Error::Template {
        reason: format!("{origin}: {e}"),
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::BadFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn parse_json(path: &Path) -> Result<serde_json::Value> {
    serde_json::from_str(&read(path)?).map_err(|e| Error::BadFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// `chat_template` may be a string or a list of `{name, template}` (transformers picks "default").
fn template_from_value(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(items) => items
            .iter()
            .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
            .and_then(|t| t.get("template"))
            .and_then(|t| t.as_str())
            .map(str::to_owned),
        _ => None,
    }
}

/// A special token in `tokenizer_config.json` is either a string or `{"content": …}`.
fn token_string(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content")?.as_str().map(str::to_owned),
        _ => None,
    }
}

impl ChatTemplate {
    /// Find the template of a checkpoint: `chat_template.jinja`, else `chat_template.json`, else
    /// the `chat_template` key of `tokenizer_config.json` (spec §1.5).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let tokenizer_config = dir.join("tokenizer_config.json");
        let tok_cfg = if tokenizer_config.is_file() {
            Some(parse_json(&tokenizer_config)?)
        } else {
            None
        };
        let mut special_tokens = serde_json::Map::new();
        if let Some(cfg) = &tok_cfg {
            for key in ["bos_token", "eos_token", "pad_token", "unk_token"] {
                if let Some(s) = cfg.get(key).and_then(token_string) {
                    special_tokens.insert(key.into(), s.into());
                }
            }
        }
        let jinja = dir.join("chat_template.jinja");
        let json_file = dir.join("chat_template.json");
        let (source, origin) = if jinja.is_file() {
            (read(&jinja)?, jinja.display().to_string())
        } else if json_file.is_file() {
            let v = parse_json(&json_file)?;
            let t = v
                .get("chat_template")
                .and_then(template_from_value)
                .ok_or_else(|| {
                    Error::bad_config(
                        "chat_template",
                        format!("missing in {}", json_file.display()),
                    )
                })?;
            (t, json_file.display().to_string())
        } else if let Some(t) = tok_cfg
            .as_ref()
            .and_then(|c| c.get("chat_template"))
            .and_then(template_from_value)
        {
            (t, tokenizer_config.display().to_string())
        } else {
            return Err(Error::MissingFile {
                path: jinja,
                reason: "no chat template: expected chat_template.jinja, chat_template.json or a \
                         `chat_template` in tokenizer_config.json"
                    .into(),
            });
        };
        let t = Self {
            source,
            origin,
            special_tokens,
        };
        // Fail at load, not at the first prompt, on a template minijinja cannot parse.
        t.environment()?;
        Ok(t)
    }

    /// A template from text (tests, or a user-supplied override).
    pub fn from_source(source: impl Into<String>) -> Result<Self> {
        let t = Self {
            source: source.into(),
            origin: "chat template".into(),
            special_tokens: Default::default(),
        };
        t.environment()?;
        Ok(t)
    }

    pub fn special_token(&self, key: &str) -> Option<&str> {
        self.special_tokens.get(key).and_then(|v| v.as_str())
    }

    fn environment(&self) -> Result<Environment<'_>> {
        let mut env = Environment::new();
        // transformers' jinja2 environment: trim_blocks + lstrip_blocks, loop controls on.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<Value, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_filter("tojson", tojson);
        env.add_template("chat", &self.source)
            .map_err(|e| template_error(&self.origin, e))?;
        Ok(env)
    }

    /// Render `messages` (transformers' message format: `role` and `content`, the content a string
    /// or a list of `{"type": "text"|"image"|"video", …}` items).
    pub fn render(&self, messages: &serde_json::Value, opts: &RenderOptions) -> Result<String> {
        let env = self.environment()?;
        let tmpl = env
            .get_template("chat")
            .map_err(|e| template_error(&self.origin, e))?;
        let mut ctx = self.special_tokens.clone();
        ctx.insert("messages".into(), messages.clone());
        ctx.insert(
            "add_generation_prompt".into(),
            opts.add_generation_prompt.into(),
        );
        if let Some(t) = opts.enable_thinking {
            ctx.insert("enable_thinking".into(), t.into());
        }
        if let Some(tools) = &opts.tools {
            ctx.insert("tools".into(), tools.clone());
        }
        if opts.add_vision_id {
            ctx.insert("add_vision_id".into(), json!(true));
        }
        tmpl.render(Value::from_serialize(&ctx))
            .map_err(|e| template_error(&self.origin, e))
    }
}

/// `tojson` as transformers defines it: `json.dumps(x, ensure_ascii=False)` with Python's default
/// separators `", "` and `": "`, keys in insertion order, optional `indent`.
fn tojson(value: Value, indent: Option<usize>) -> std::result::Result<Value, minijinja::Error> {
    let v = serde_json::to_value(&value)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    let mut out = String::new();
    dump(&v, indent, 0, &mut out);
    Ok(Value::from_safe_string(out))
}

fn dump_str(s: &str, out: &mut String) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn dump(v: &serde_json::Value, indent: Option<usize>, depth: usize, out: &mut String) {
    use serde_json::Value as J;
    let (item_sep, newline) = match indent {
        Some(n) => (",", Some(n)),
        None => (", ", None),
    };
    let open = |out: &mut String, d: usize| {
        if let Some(n) = newline {
            out.push('\n');
            out.push_str(&" ".repeat(n * d));
        }
    };
    match v {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Number(n) => out.push_str(&n.to_string()),
        J::String(s) => dump_str(s, out),
        J::Array(items) if items.is_empty() => out.push_str("[]"),
        J::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                open(out, depth + 1);
                dump(item, indent, depth + 1, out);
            }
            open(out, depth);
            out.push(']');
        }
        J::Object(map) if map.is_empty() => out.push_str("{}"),
        J::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                open(out, depth + 1);
                dump_str(k, out);
                out.push_str(": ");
                dump(item, indent, depth + 1, out);
            }
            open(out, depth);
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_style_tojson() {
        let t = ChatTemplate::from_source("{{ x | tojson }}").unwrap();
        let _ = t;
        let mut out = String::new();
        dump(
            &json!({"name": "f", "arguments": {"b": [1, 2], "a": "é\n"}}),
            None,
            0,
            &mut out,
        );
        assert_eq!(
            out,
            r#"{"name": "f", "arguments": {"b": [1, 2], "a": "é\n"}}"#
        );
    }

    #[test]
    fn trim_and_python_methods() {
        let t = ChatTemplate::from_source(
            "{% for m in messages %}\n  {{ m.role.upper() }}:{{ m.content.strip() }}|\n{% endfor %}\n\
             {% if add_generation_prompt %}GO{% endif %}",
        )
        .unwrap();
        let out = t
            .render(
                &json!([{"role": "user", "content": "  hi "}]),
                &RenderOptions {
                    add_generation_prompt: true,
                    ..Default::default()
                },
            )
            .unwrap();
        // Verified with jinja2 (trim_blocks, lstrip_blocks): only block tags are stripped.
        assert_eq!(out, "  USER:hi|\nGO");
    }

    #[test]
    fn raise_exception_is_an_error() {
        let t = ChatTemplate::from_source("{{ raise_exception('bad role') }}").unwrap();
        let err = t.render(&json!([]), &RenderOptions::default()).unwrap_err();
        assert!(err.to_string().contains("bad role"), "{err}");
    }

    #[test]
    fn missing_template_is_an_error() {
        let d = std::env::temp_dir().join(format!("glimpse-tmpl-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        assert!(matches!(
            ChatTemplate::from_dir(&d),
            Err(Error::MissingFile { .. })
        ));
    }
}
