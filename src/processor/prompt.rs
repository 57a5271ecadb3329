//! The prompt's token ids: chat template, tokenizer, and image-token expansion.
//!
//! transformers' Qwen-VL processors render the chat template, replace the i-th
//! `<|image_pad|>` in the text by as many copies as image i has merged patches
//! (`grid_t·grid_h·grid_w / merge²`), and tokenize the result. `<|image_pad|>`
//! is an added special token, which the tokenizer splits out before anything
//! else, so n copies in the text are exactly n copies of its id: expanding the
//! ids after tokenizing gives the same sequence without tokenizing thousands of
//! placeholders.

use super::template::{ChatTemplate, RenderOptions, TemplateError};
use super::tokenizer::{TextTokenizer, TokenizerError};
use crate::conversation::Conversation;

/// Prompt ids with every image placeholder expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptIds {
    pub ids: Vec<u32>,
    /// Placeholder tokens per image, in prompt order.
    pub image_token_counts: Vec<usize>,
}

/// What went wrong building the prompt.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("the rendered prompt has {placeholders} image placeholder{} but {images} image{} {} given; give one image per image item of the conversation", plural(*placeholders), plural(*images), if *images == 1 { "was" } else { "were" })]
    ImageCountMismatch { placeholders: usize, images: usize },
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Renders the conversation, tokenizes, and expands the i-th `<|image_pad|>`
/// (by id `image_token_id`) into `image_token_counts[i]` copies. Errors if the
/// number of image placeholders in the rendered prompt differs from
/// `image_token_counts.len()`.
pub fn build_prompt_ids(
    template: &ChatTemplate,
    tokenizer: &TextTokenizer,
    conversation: &Conversation,
    image_token_id: u32,
    image_token_counts: &[usize],
    options: RenderOptions,
) -> Result<PromptIds, PromptError> {
    let text = template.render_with(conversation, options)?;
    let ids = tokenizer.encode(&text)?;
    let ids = expand_image_tokens(&ids, image_token_id, image_token_counts)?;
    Ok(PromptIds {
        ids,
        image_token_counts: image_token_counts.to_vec(),
    })
}

/// Replaces the i-th occurrence of `image_token_id` in `ids` by
/// `counts[i]` copies of it.
pub fn expand_image_tokens(
    ids: &[u32],
    image_token_id: u32,
    counts: &[usize],
) -> Result<Vec<u32>, PromptError> {
    let placeholders = ids.iter().filter(|&&id| id == image_token_id).count();
    if placeholders != counts.len() {
        return Err(PromptError::ImageCountMismatch {
            placeholders,
            images: counts.len(),
        });
    }
    let extra: usize = counts.iter().sum::<usize>();
    let mut out = Vec::with_capacity(ids.len() + extra - placeholders);
    let mut next = counts.iter();
    for &id in ids {
        if id == image_token_id {
            let n = *next.next().unwrap_or(&0);
            out.extend(std::iter::repeat_n(image_token_id, n));
        } else {
            out.push(id);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_each_placeholder_by_its_count() {
        let out = expand_image_tokens(&[1, 9, 2, 9, 3], 9, &[3, 1]).unwrap();
        assert_eq!(out, vec![1, 9, 9, 9, 2, 9, 3]);
        assert_eq!(expand_image_tokens(&[1, 2], 9, &[]).unwrap(), vec![1, 2]);
    }

    #[test]
    fn mismatch_is_an_error_saying_both_numbers() {
        let e = expand_image_tokens(&[1, 9, 2], 9, &[4, 4]).unwrap_err();
        assert!(matches!(
            e,
            PromptError::ImageCountMismatch {
                placeholders: 1,
                images: 2
            }
        ));
        assert_eq!(
            e.to_string(),
            "the rendered prompt has 1 image placeholder but 2 images were given; give one image per image item of the conversation"
        );
        let e = expand_image_tokens(&[9, 9], 9, &[4]).unwrap_err();
        assert!(
            e.to_string()
                .contains("2 image placeholders but 1 image was given"),
            "{e}"
        );
    }
}
