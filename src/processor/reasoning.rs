//! Splitting what a thinking model generates into its reasoning and its
//! answer, token by token as it streams.
//!
//! Reasoning is what comes before `</think>` when the prompt opened `<think>`
//! (the model does not write `<think>` itself then), or what the model writes
//! between `<think>` and `</think>` when its first token is `<think>`. The two
//! markers belong to the reasoning and show in neither text; the whitespace
//! the model puts right after a marker is dropped. Without markers in the
//! tokenizer, or with a prompt that leaves no block open and a first token
//! that opens none, everything is answer, byte for byte.

use serde::Serialize;

use super::tokenizer::TextTokenizer;

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// Which part of a reply a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Reasoning,
    Answer,
}

/// The ids of `<think>` and `</think>` in a tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThinkTokens {
    pub open: u32,
    pub close: u32,
}

impl ThinkTokens {
    /// `None` when the tokenizer has not both as single tokens.
    pub fn of(tokenizer: &TextTokenizer) -> Option<ThinkTokens> {
        Some(ThinkTokens {
            open: tokenizer.token_id(OPEN)?,
            close: tokenizer.token_id(CLOSE)?,
        })
    }

    /// Whether a prompt leaves the model inside a reasoning block: its last
    /// `<think>` comes after its last `</think>`.
    pub fn prompt_opens(&self, prompt: &[u32]) -> bool {
        let last = |id| prompt.iter().rposition(|&t| t == id);
        match (last(self.open), last(self.close)) {
            (Some(open), Some(close)) => open > close,
            (Some(_), None) => true,
            _ => false,
        }
    }
}

/// One token's share of the streamed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub channel: Channel,
    pub text: String,
}

/// The finished split.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    pub reasoning: String,
    pub answer: String,
    /// Tokens of the reasoning, its markers included.
    pub reasoning_tokens: usize,
}

#[derive(Debug, Clone)]
pub struct ReasoningSplitter {
    markers: Option<ThinkTokens>,
    channel: Channel,
    /// No token yet: a first `<think>` may still open a block.
    first: bool,
    /// Whitespace at the start of the current channel is dropped.
    trim_leading: bool,
    split: Split,
}

impl ReasoningSplitter {
    /// A splitter for the reply to `prompt`.
    pub fn new(markers: Option<ThinkTokens>, prompt: &[u32]) -> Self {
        let opened = markers.is_some_and(|m| m.prompt_opens(prompt));
        ReasoningSplitter {
            markers,
            channel: if opened {
                Channel::Reasoning
            } else {
                Channel::Answer
            },
            first: true,
            trim_leading: opened,
            split: Split::default(),
        }
    }

    /// The channel the next token will go to.
    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// Takes one generated id and the text the detokenizer gave for it.
    pub fn push(&mut self, id: u32, delta: &str) -> Piece {
        let first = std::mem::replace(&mut self.first, false);
        let Some(m) = self.markers else {
            return self.append(delta);
        };
        match self.channel {
            Channel::Answer if first && id == m.open => {
                self.split.reasoning_tokens += 1;
                self.channel = Channel::Reasoning;
                self.trim_leading = true;
                Piece {
                    channel: Channel::Reasoning,
                    text: String::new(),
                }
            }
            Channel::Reasoning if id == m.close => {
                self.split.reasoning_tokens += 1;
                // Text the detokenizer held back from earlier tokens stays in
                // the reasoning.
                let piece = self.append(&delta.replacen(CLOSE, "", 1));
                self.channel = Channel::Answer;
                self.trim_leading = true;
                piece
            }
            Channel::Reasoning => {
                self.split.reasoning_tokens += 1;
                self.append(delta)
            }
            Channel::Answer => self.append(delta),
        }
    }

    /// Text the detokenizer flushes at the end goes to the current channel.
    pub fn flush(&mut self, rest: &str) -> Piece {
        self.append(rest)
    }

    pub fn finish(mut self) -> Split {
        let trimmed = self.split.reasoning.trim_end().len();
        self.split.reasoning.truncate(trimmed);
        self.split
    }

    fn append(&mut self, text: &str) -> Piece {
        let text = if self.trim_leading {
            let t = text.trim_start();
            self.trim_leading = t.is_empty();
            t
        } else {
            text
        };
        match self.channel {
            Channel::Reasoning => self.split.reasoning.push_str(text),
            Channel::Answer => self.split.answer.push_str(text),
        }
        Piece {
            channel: self.channel,
            text: text.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::detokenize::IncrementalDecoder;
    use std::path::Path;

    fn tokenizer() -> TextTokenizer {
        TextTokenizer::from_model_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/qwen3_vl"),
        )
        .unwrap()
    }

    /// Streams `ids` through the real detokenizer and the splitter.
    fn run(prompt: &[u32], ids: &[u32]) -> (Vec<Piece>, Split) {
        let tok = tokenizer();
        let mut splitter = ReasoningSplitter::new(ThinkTokens::of(&tok), prompt);
        let mut decoder = IncrementalDecoder::new(tok, false);
        let mut pieces = Vec::new();
        for &id in ids {
            let delta = decoder.push(id).unwrap().unwrap_or_default();
            pieces.push(splitter.push(id, &delta));
        }
        if let Some(rest) = decoder.finish().unwrap() {
            pieces.push(splitter.flush(&rest));
        }
        (pieces, splitter.finish())
    }

    fn ids(text: &str) -> Vec<u32> {
        tokenizer().encode(text).unwrap()
    }

    #[test]
    fn the_fixture_tokenizer_has_both_markers() {
        let m = ThinkTokens::of(&tokenizer()).unwrap();
        assert_eq!((m.open, m.close), (504, 505));
    }

    #[test]
    fn a_prompt_that_opens_think_makes_everything_before_the_close_reasoning() {
        let prompt = ids("<|im_start|>assistant\n<think>\n");
        let reply = ids("The sky is blue.\n</think>\n\nBlue.<|im_end|>");
        let (pieces, split) = run(&prompt, &reply);
        assert_eq!(split.reasoning, "The sky is blue.");
        assert_eq!(split.answer, "Blue.<|im_end|>");
        let close = reply.iter().position(|&t| t == 505).unwrap();
        assert_eq!(split.reasoning_tokens, close + 1);
        assert!(pieces[..=close]
            .iter()
            .all(|p| p.channel == Channel::Reasoning));
        assert!(pieces[close + 1..]
            .iter()
            .all(|p| p.channel == Channel::Answer));
        let streamed: String = pieces.iter().map(|p| p.text.as_str()).collect();
        assert!(!streamed.contains("think>"), "{streamed:?}");
    }

    #[test]
    fn a_model_that_opens_think_itself_is_split_the_same_way() {
        let reply = ids("<think>\nLooking.\n</think>\n\nA cat.");
        let (pieces, split) = run(&ids("<|im_start|>assistant\n"), &reply);
        assert_eq!(pieces[0].channel, Channel::Reasoning);
        assert_eq!(split.reasoning, "Looking.");
        assert_eq!(split.answer, "A cat.");
    }

    #[test]
    fn a_closed_empty_block_in_the_prompt_leaves_the_answer_untouched() {
        // enable_thinking=false: the prompt closes an empty block itself.
        let prompt = ids("<|im_start|>assistant\n<think>\n\n</think>\n\n");
        let text = "  Two dogs.\n";
        let (pieces, split) = run(&prompt, &ids(text));
        assert_eq!(split.answer, text);
        assert_eq!((split.reasoning.as_str(), split.reasoning_tokens), ("", 0));
        assert!(pieces.iter().all(|p| p.channel == Channel::Answer));
    }

    #[test]
    fn think_later_in_an_answer_is_just_text() {
        let text = "Hi <think> there";
        let (_, split) = run(&ids("<|im_start|>assistant\n"), &ids(text));
        assert_eq!(split.answer, text);
    }

    #[test]
    fn reasoning_cut_off_by_the_limit_stays_reasoning() {
        let prompt = ids("<|im_start|>assistant\n<think>\n");
        let (_, split) = run(&prompt, &ids("Still thinking about 猫"));
        assert_eq!(split.reasoning, "Still thinking about 猫");
        assert_eq!(split.answer, "");
    }

    #[test]
    fn without_markers_everything_is_answer() {
        let mut s = ReasoningSplitter::new(None, &[504]);
        assert_eq!(s.push(504, "<think>").channel, Channel::Answer);
        assert_eq!(s.finish().answer, "<think>");
    }
}
