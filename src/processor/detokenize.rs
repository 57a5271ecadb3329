//! Turning generated ids into text as they arrive.
//!
//! Byte-level BPE tokens are byte strings: a Chinese character or an emoji may
//! be split over two or three tokens, so decoding one token at a time would
//! produce broken characters. The decoder keeps a short window of recent ids:
//! `prefix` is text already emitted, decoded again only as context (some
//! decoders treat the start of a sequence specially); each new id extends the
//! window, and whatever the window decodes to beyond `prefix` is emitted once it
//! no longer ends in an incomplete character (U+FFFD). The window then moves up,
//! so each step decodes a handful of ids, never the whole history.
//!
//! Special tokens follow `skip_special_tokens`: when `false` they are emitted as
//! their text (`<|box_start|>`, needed to read Qwen2-VL grounding spans), when
//! `true` they produce nothing. Ids the tokenizer does not know produce nothing.
//! The emitted pieces always concatenate to `decode(all ids)`.

use super::tokenizer::{TextTokenizer, TokenizerError};

/// Incremental, UTF-8 safe detokenizer.
#[derive(Debug, Clone)]
pub struct IncrementalDecoder {
    tokenizer: TextTokenizer,
    skip_special_tokens: bool,
    /// Ids from the start of the context window on.
    ids: Vec<u32>,
    /// `ids[..prefix_end]` is context whose text was emitted already.
    prefix_end: usize,
    /// Text of `ids[..prefix_end]`, as decoded on its own.
    prefix_text: String,
    /// Everything emitted so far.
    text: String,
}

impl IncrementalDecoder {
    pub fn new(tokenizer: TextTokenizer, skip_special_tokens: bool) -> Self {
        IncrementalDecoder {
            tokenizer,
            skip_special_tokens,
            ids: Vec::new(),
            prefix_end: 0,
            prefix_text: String::new(),
            text: String::new(),
        }
    }

    /// Feeds one generated id; returns the newly completed text, if any. Text
    /// that ends in an incomplete UTF-8 character is held back until the next
    /// ids complete it (or `finish` flushes it).
    pub fn push(&mut self, id: u32) -> Result<Option<String>, TokenizerError> {
        self.ids.push(id);
        let full = self.tokenizer.decode(&self.ids, self.skip_special_tokens)?;
        if full.ends_with('\u{FFFD}') {
            return Ok(None);
        }
        let Some(new) = self.fresh_text(&full) else {
            return Ok(None);
        };
        // The id just pushed becomes the context for the next step.
        let keep_from = self.ids.len() - 1;
        self.prefix_text = self
            .tokenizer
            .decode(&self.ids[keep_from..], self.skip_special_tokens)?;
        self.ids.drain(..keep_from);
        self.prefix_end = self.ids.len();
        self.text.push_str(&new);
        Ok(Some(new))
    }

    /// Flushes anything held back (an incomplete character comes out as
    /// U+FFFD, exactly as a full decode would write it) and starts afresh.
    pub fn finish(&mut self) -> Result<Option<String>, TokenizerError> {
        let full = self.tokenizer.decode(&self.ids, self.skip_special_tokens)?;
        let new = self.fresh_text(&full);
        self.ids.clear();
        self.prefix_end = 0;
        self.prefix_text.clear();
        if let Some(new) = &new {
            self.text.push_str(new);
        }
        Ok(new)
    }

    /// Everything emitted so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Ids currently held in the window (context plus pending), for tests and
    /// diagnostics.
    pub fn window_len(&self) -> usize {
        self.ids.len()
    }

    /// The part of `full` (the window's text) not emitted yet, if any.
    fn fresh_text(&self, full: &str) -> Option<String> {
        if self.prefix_end == 0 {
            return (!full.is_empty()).then(|| full.to_string());
        }
        match full.strip_prefix(self.prefix_text.as_str()) {
            Some("") => None,
            Some(rest) => Some(rest.to_string()),
            // The context decodes differently once followed by more ids; emit
            // what lies past the common part so nothing is lost.
            None => {
                let common = common_prefix_len(full, &self.prefix_text);
                (full.len() > common).then(|| full[common..].to_string())
            }
        }
    }
}

fn common_prefix_len(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map(|((i, _), _)| i)
        .unwrap_or_else(|| a.len().min(b.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn tiny() -> TextTokenizer {
        TextTokenizer::from_model_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/text/tiny_tokenizer"),
        )
        .unwrap()
    }

    fn stream(tok: &TextTokenizer, ids: &[u32], skip: bool) -> (Vec<String>, IncrementalDecoder) {
        let mut dec = IncrementalDecoder::new(tok.clone(), skip);
        let mut pieces = Vec::new();
        for &id in ids {
            if let Some(p) = dec.push(id).unwrap() {
                pieces.push(p);
            }
        }
        if let Some(p) = dec.finish().unwrap() {
            pieces.push(p);
        }
        (pieces, dec)
    }

    #[test]
    fn multibyte_characters_are_never_split() {
        let tok = tiny();
        let text = "你好! 好的😀😃 ok 你 ß👍🏽 end";
        let ids = tok.encode(text).unwrap();
        assert!(
            ids.len() > text.chars().count(),
            "characters should span several tokens"
        );
        let (pieces, dec) = stream(&tok, &ids, true);
        for p in &pieces {
            assert!(!p.contains('\u{FFFD}'), "broken character in {p:?}");
        }
        assert_eq!(pieces.concat(), text);
        assert_eq!(dec.text(), text);
    }

    #[test]
    fn window_stays_small() {
        let tok = tiny();
        let text = "this image ".repeat(200);
        let ids = tok.encode(&text).unwrap();
        let mut dec = IncrementalDecoder::new(tok.clone(), false);
        let mut max_window = 0;
        for &id in &ids {
            dec.push(id).unwrap();
            max_window = max_window.max(dec.window_len());
        }
        dec.finish().unwrap();
        assert_eq!(dec.text(), text);
        assert!(max_window <= 2, "window grew to {max_window}");
    }

    #[test]
    fn special_tokens_follow_the_flag() {
        let tok = tiny();
        let text =
            "<|object_ref_start|>猫<|object_ref_end|><|box_start|>(1,2),(3,4)<|box_end|><|im_end|>";
        let ids = tok.encode(text).unwrap();
        let (kept, _) = stream(&tok, &ids, false);
        assert_eq!(kept.concat(), text);
        let (skipped, _) = stream(&tok, &ids, true);
        assert_eq!(skipped.concat(), "猫(1,2),(3,4)");
        assert_eq!(skipped.concat(), tok.decode(&ids, true).unwrap());
    }

    #[test]
    fn unknown_ids_produce_nothing() {
        let tok = tiny();
        let mut ids = tok.encode("你好 there").unwrap();
        ids.insert(1, 151_900);
        ids.push(151_935);
        let (pieces, _) = stream(&tok, &ids, false);
        assert_eq!(pieces.concat(), "你好 there");
    }

    #[test]
    fn truncated_character_is_flushed_like_a_full_decode() {
        let tok = tiny();
        let ids = tok.encode("ab好").unwrap();
        let cut = &ids[..ids.len() - 1];
        let mut dec = IncrementalDecoder::new(tok.clone(), false);
        let mut out = String::new();
        for &id in cut {
            if let Some(p) = dec.push(id).unwrap() {
                out.push_str(&p);
            }
        }
        assert_eq!(out, "ab");
        let rest = dec.finish().unwrap().unwrap();
        assert_eq!(format!("{out}{rest}"), tok.decode(cut, false).unwrap());
        assert!(rest.ends_with('\u{FFFD}'));
        // After finish the decoder starts afresh.
        assert_eq!(dec.push(ids[0]).unwrap().as_deref(), Some("a"));
    }
}
