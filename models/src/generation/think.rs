//! Splits streamed text into thinking and answer parts at `<think>` / `</think>`.
//!
//! Qwen's Thinking templates open `<think>\n` in the prompt, so the model's first text is
//! thinking and only `</think>` appears in the output; Instruct models may still emit both tags.
//! The tags are plain text for the tokenizer (spec §10.22) and can arrive split across tokens,
//! so a possible tag prefix at the end of a chunk is held back until the next chunk decides it.

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "text", rename_all = "snake_case")]
pub enum Segment {
    Thinking(String),
    Answer(String),
}

#[derive(Debug, Default)]
pub struct ThinkSplitter {
    in_think: bool,
    pending: String,
    /// Set after a tag: the newlines the template puts after it are not content.
    skip_newlines: bool,
}

impl ThinkSplitter {
    pub fn new(think_open: bool) -> Self {
        Self {
            in_think: think_open,
            pending: String::new(),
            skip_newlines: think_open,
        }
    }

    /// Feeds a chunk; returns the text that is now classified (tags removed).
    pub fn push(&mut self, chunk: &str) -> Vec<Segment> {
        self.pending.push_str(chunk);
        let mut out = Vec::new();
        loop {
            if self.skip_newlines {
                let cut = self.pending.len() - self.pending.trim_start_matches('\n').len();
                self.pending.drain(..cut);
                self.skip_newlines = self.pending.is_empty();
            }
            let tag = if self.in_think { CLOSE } else { OPEN };
            if let Some(at) = self.pending.find(tag) {
                let before: String = self.pending[..at].to_string();
                self.emit(&mut out, &before);
                self.pending.drain(..at + tag.len());
                self.in_think = !self.in_think;
                self.skip_newlines = true;
                continue;
            }
            // Hold back the longest suffix that could still grow into the tag.
            let keep = (1..tag.len())
                .rev()
                .find(|&n| {
                    self.pending.len() >= n
                        && self.pending.is_char_boundary(self.pending.len() - n)
                        && tag.starts_with(&self.pending[self.pending.len() - n..])
                })
                .unwrap_or(0);
            let ready: String = self.pending[..self.pending.len() - keep].to_string();
            self.emit(&mut out, &ready);
            self.pending.drain(..self.pending.len() - keep);
            return out;
        }
    }

    /// Releases whatever is held back (the stream ended inside a partial tag).
    pub fn finish(&mut self) -> Vec<Segment> {
        let rest = std::mem::take(&mut self.pending);
        let mut out = Vec::new();
        self.emit(&mut out, &rest);
        out
    }

    fn emit(&self, out: &mut Vec<Segment>, text: &str) {
        if text.is_empty() {
            return;
        }
        match (out.last_mut(), self.in_think) {
            (Some(Segment::Thinking(t)), true) | (Some(Segment::Answer(t)), false) => {
                t.push_str(text)
            }
            (_, true) => out.push(Segment::Thinking(text.to_string())),
            (_, false) => out.push(Segment::Answer(text.to_string())),
        }
    }
}
