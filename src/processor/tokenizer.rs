//! The model's text tokenizer: a thin wrapper over a Hugging Face
//! `tokenizer.json` that behaves like transformers' fast tokenizer.
//!
//! * `encode` is `tokenizer(text)["input_ids"]`: added tokens written in the
//!   text (`<|im_start|>`, `<|image_pad|>`, …) become their single ids.
//! * `decode` is `tokenizer.decode(ids, skip_special_tokens=…)` with
//!   `clean_up_tokenization_spaces=False`, which is what the Qwen-VL tokenizer
//!   configs set. Ids the tokenizer does not know — the padding rows of an
//!   embedding matrix that is larger than the vocabulary — decode to nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What went wrong loading or running the tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("no tokenizer at {}: the model directory needs the tokenizer.json from the model's Hugging Face repository next to config.json", path.display())]
    Missing { path: PathBuf },
    #[error("cannot load tokenizer {}: {message}; replace it with the tokenizer.json from the model's Hugging Face repository", path.display())]
    Load { path: PathBuf, message: String },
    #[error("cannot tokenize the prompt: {message}")]
    Encode { message: String },
    #[error("cannot turn token ids back into text: {message}")]
    Decode { message: String },
}

/// A loaded `tokenizer.json`. Cloning is cheap (the tokenizer is shared).
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Arc<tokenizers::Tokenizer>,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("vocab_size", &self.inner.get_vocab_size(true))
            .finish()
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json` from a model directory.
    pub fn from_model_dir(dir: &Path) -> Result<Self, TokenizerError> {
        Self::from_file(&dir.join("tokenizer.json"))
    }

    /// Loads a `tokenizer.json` file.
    pub fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        if !path.is_file() {
            return Err(TokenizerError::Missing {
                path: path.to_path_buf(),
            });
        }
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| TokenizerError::Load {
            path: path.to_path_buf(),
            message: one_line(&e.to_string()),
        })?;
        Ok(Self::from_tokenizer(inner))
    }

    /// Wraps an already built tokenizer.
    pub fn from_tokenizer(tokenizer: tokenizers::Tokenizer) -> Self {
        TextTokenizer {
            inner: Arc::new(tokenizer),
        }
    }

    /// Token ids of `text`, as transformers' `tokenizer(text)` gives them:
    /// special tokens written in the text are recognised as such, and the
    /// tokenizer's post-processor runs (for Qwen it adds nothing).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self
            .inner
            .encode(text, true)
            .map_err(|e| TokenizerError::Encode {
                message: one_line(&e.to_string()),
            })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of `ids`. Unknown ids are dropped; with `skip_special_tokens` the
    /// tokens marked special in tokenizer.json are dropped too.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TokenizerError> {
        let known: Vec<u32>;
        let ids = if ids.iter().all(|&id| self.is_known(id)) {
            ids
        } else {
            known = ids
                .iter()
                .copied()
                .filter(|&id| self.is_known(id))
                .collect();
            &known
        };
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| TokenizerError::Decode {
                message: one_line(&e.to_string()),
            })
    }

    /// Id of a token given by its text (`"<|image_pad|>"`), if the tokenizer has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Whether `id` is a token of this tokenizer.
    pub fn is_known(&self, id: u32) -> bool {
        self.inner.id_to_token(id).is_some()
    }

    /// The wrapped `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/text/tiny_tokenizer")
    }

    fn tiny() -> TextTokenizer {
        TextTokenizer::from_model_dir(&fixture_dir()).unwrap()
    }

    #[test]
    fn special_tokens_in_text_become_single_ids() {
        let tok = tiny();
        let start = tok.token_id("<|im_start|>").unwrap();
        let end = tok.token_id("<|im_end|>").unwrap();
        let pad = tok.token_id("<|image_pad|>").unwrap();
        let ids = tok
            .encode("<|im_start|>user\n<|image_pad|><|im_end|>")
            .unwrap();
        assert_eq!(ids.first(), Some(&start));
        assert_eq!(ids.last(), Some(&end));
        assert_eq!(ids.iter().filter(|&&i| i == pad).count(), 1);
        assert_eq!(
            tok.decode(&ids, false).unwrap(),
            "<|im_start|>user\n<|image_pad|><|im_end|>"
        );
        assert_eq!(tok.decode(&ids, true).unwrap(), "user\n");
    }

    #[test]
    fn round_trips_non_ascii_text() {
        let tok = tiny();
        let text = "Describe this image: 你好, 好的 😀 café ß\n\nend";
        let ids = tok.encode(text).unwrap();
        assert_eq!(tok.decode(&ids, true).unwrap(), text);
    }

    #[test]
    fn unknown_ids_decode_to_nothing() {
        let tok = tiny();
        let mut ids = tok.encode("Describe this").unwrap();
        ids.insert(1, 151_935);
        ids.push(u32::MAX);
        assert_eq!(tok.decode(&ids, false).unwrap(), "Describe this");
        assert_eq!(tok.decode(&[151_935], true).unwrap(), "");
        assert!(!tok.is_known(151_935));
    }

    #[test]
    fn missing_file_names_it_and_what_to_do() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/text/no_such_model");
        let e = TextTokenizer::from_model_dir(&dir).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, TokenizerError::Missing { .. }));
        assert!(msg.contains("no_such_model/tokenizer.json"), "{msg}");
        assert!(msg.contains("Hugging Face"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn broken_file_is_a_load_error_naming_it() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/text/qwen2_vl/chat_template.json");
        let e = TextTokenizer::from_file(&path).unwrap_err();
        assert!(matches!(e, TokenizerError::Load { .. }), "{e}");
        assert!(e.to_string().contains("chat_template.json"), "{e}");
        assert!(!e.to_string().contains('\n'), "{e}");
    }
}
