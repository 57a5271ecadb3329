//! A request's prompt as the worker runs it: its ids and images, the oldest
//! turns it may lose to fit the context, and how much of the previous
//! prompt's KV cache it can reuse.

use std::path::PathBuf;
use std::sync::Arc;

use super::sampling::SamplingParams;
use super::{Event, ImageFacts};
use crate::conversation::{Conversation, Role};
use crate::processor::vision_input::PreprocessedImage;

/// A request's prompt: its ids, image placeholders expanded, and its images.
pub(super) struct Prompt {
    pub ids: Vec<u32>,
    pub paths: Vec<PathBuf>,
    pub images: Vec<Arc<PreprocessedImage>>,
    /// Placeholder tokens of each image.
    pub counts: Vec<usize>,
    /// Oldest messages left out to fit the context.
    pub dropped_messages: usize,
    /// Leading ids the conversation renders to without a reply opened: where
    /// the next turn's prompt may part from this one (a template can render
    /// a past answer differently from how the model wrote it). Zero when the
    /// model does not need to know.
    pub history: usize,
}

impl Prompt {
    pub fn event(&self, cached_tokens: usize, params: SamplingParams) -> Event {
        let images = self.paths.iter().zip(&self.images).zip(&self.counts);
        Event::Prompt {
            ids: self.ids.clone(),
            images: images
                .map(|((path, i), &tokens)| ImageFacts {
                    path: path.clone(),
                    original_size: [i.original_width, i.original_height],
                    model_size: [i.resized_width, i.resized_height],
                    grid_thw: i.grid_thw,
                    tokens,
                })
                .collect(),
            cached_tokens,
            dropped_messages: self.dropped_messages,
            params,
        }
    }
}

/// Removes the oldest exchange after any system prompt: one user message and
/// the replies up to the next user message. Never removes the last user
/// message. Returns how many messages went.
pub(super) fn drop_oldest_turn(conversation: &mut Conversation) -> usize {
    let msgs = &conversation.messages;
    let Some(first) = msgs.iter().position(|m| m.role != Role::System) else {
        return 0;
    };
    let last_user = msgs.iter().rposition(|m| m.role == Role::User).unwrap_or(0);
    if first >= last_user {
        return 0;
    }
    let mut end = first + 1;
    while end < last_user && msgs[end].role != Role::User {
        end += 1;
    }
    conversation.messages.drain(first..end);
    end - first
}

/// How much of the cache, holding `cached`, serves a prompt of `ids`: their
/// common prefix, never splitting an image's placeholder run (its features
/// come from one encoding) and leaving at least one token to run.
pub(super) fn reusable_prefix(cached: &[u32], ids: &[u32], image_id: u32) -> usize {
    let mut reuse = common_prefix(cached, ids).min(ids.len() - 1);
    while reuse > 0 && ids[reuse] == image_id && ids[reuse - 1] == image_id {
        reuse -= 1;
    }
    reuse
}

pub(super) fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Number of images whose placeholder runs start within `ids`.
pub(super) fn count_image_runs(ids: &[u32], image_id: u32) -> usize {
    ids.iter()
        .enumerate()
        .filter(|(i, &id)| id == image_id && (*i == 0 || ids[i - 1] != image_id))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_turns_keeps_the_system_prompt_and_the_last_question() {
        use crate::conversation::Message;
        let mut c = Conversation {
            messages: vec![
                Message::text(Role::System, "s"),
                Message::text(Role::User, "q1"),
                Message::text(Role::Assistant, "a1"),
                Message::text(Role::User, "q2"),
            ],
        };
        assert_eq!(drop_oldest_turn(&mut c), 2);
        assert_eq!(c.messages.len(), 2);
        assert_eq!(c.messages[1].joined_text(), "q2");
        assert_eq!(drop_oldest_turn(&mut c), 0);
    }

    #[test]
    fn image_runs_are_counted_once_each() {
        assert_eq!(count_image_runs(&[1, 9, 9, 2, 9, 3], 9), 2);
        assert_eq!(count_image_runs(&[], 9), 0);
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4, 5]), 2);
    }

    #[test]
    fn the_reused_prefix_never_splits_an_image_and_leaves_a_token_to_run() {
        // The same prompt again: all but its last token.
        assert_eq!(reusable_prefix(&[1, 2, 3], &[1, 2, 3], 9), 2);
        // The new prompt's image is longer: back to the start of its run.
        assert_eq!(reusable_prefix(&[1, 9, 9, 2], &[1, 9, 9, 9, 2], 9), 1);
        // A whole image in common is kept.
        assert_eq!(reusable_prefix(&[1, 9, 9, 2, 3], &[1, 9, 9, 2, 4], 9), 4);
        assert_eq!(reusable_prefix(&[], &[1, 2], 9), 0);
    }
}
