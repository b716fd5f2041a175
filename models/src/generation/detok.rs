//! Incremental detokenization: emit only text that is final.
//!
//! Byte-level BPE tokens can split a UTF-8 character, and some decoders change earlier text when
//! more tokens arrive (spaces, cleanup). The approach of transformers' `TextStreamer` and TGI:
//! decode a small window of recent tokens, compare it with the same window without the newest
//! token, and release the difference only when it does not end in U+FFFD (an incomplete char).

use crate::Result;

/// Anything that can turn ids into text (`tokenizers::Tokenizer` in the app).
pub trait Decode {
    fn decode(&self, ids: &[u32]) -> Result<String>;
}

pub struct IncrementalDecoder<'a> {
    decoder: &'a dyn Decode,
    ids: Vec<u32>,
    /// Start of the window whose decoded text is already emitted up to `read_offset`.
    prefix_offset: usize,
    read_offset: usize,
    text: String,
}

impl<'a> IncrementalDecoder<'a> {
    pub fn new(decoder: &'a dyn Decode) -> Self {
        Self {
            decoder,
            ids: Vec::new(),
            prefix_offset: 0,
            read_offset: 0,
            text: String::new(),
        }
    }

    /// Adds one token and returns the text it made final (possibly empty).
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        let prefix = self
            .decoder
            .decode(&self.ids[self.prefix_offset..self.read_offset])?;
        let full = self.decoder.decode(&self.ids[self.prefix_offset..])?;
        if full.len() > prefix.len() && !full.ends_with('\u{FFFD}') {
            // Normally `full` extends `prefix`; if a decoder rewrote the window, release what
            // lies past the old length rather than stall (earlier text cannot be taken back).
            let cut = (prefix.len()..=full.len())
                .find(|&i| full.is_char_boundary(i))
                .unwrap_or(full.len());
            let new = full[cut..].to_string();
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
            self.text.push_str(&new);
            Ok(new)
        } else {
            Ok(String::new())
        }
    }

    /// All text emitted so far.
    pub fn text(&self) -> &str {
        &self.text
    }
}
