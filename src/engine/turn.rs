//! One request in flight on the engine thread: where its events go, whether it
//! was cancelled, and how long its stages took.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{Event, FinishReason, Request, Timings};

/// What the model answered.
#[derive(Debug)]
pub(super) struct Answer {
    pub tokens: Vec<u32>,
    pub text: String,
    pub reasoning: String,
    pub reasoning_tokens: usize,
    pub finish: FinishReason,
}

impl Answer {
    /// Nothing yet; the token limit ends it unless something else does first.
    pub fn empty() -> Self {
        Answer {
            tokens: Vec::new(),
            text: String::new(),
            reasoning: String::new(),
            reasoning_tokens: 0,
            finish: FinishReason::Length,
        }
    }

    pub fn cancelled() -> Self {
        Answer {
            finish: FinishReason::Cancelled,
            ..Answer::empty()
        }
    }
}

pub(super) struct Turn<'r> {
    pub req: &'r Request,
    started: Instant,
    pub timings: Timings,
    first_token_at: Option<Instant>,
}

impl<'r> Turn<'r> {
    pub fn start(req: &'r Request, load_s: f64) -> Self {
        Turn {
            req,
            started: Instant::now(),
            timings: Timings {
                load_s,
                ..Default::default()
            },
            first_token_at: None,
        }
    }

    pub fn send(&self, event: Event) {
        // Nobody listening any more (the asker has gone) does not fail the turn.
        let _ = self.req.reply.send(event);
    }

    pub fn cancelled(&self) -> bool {
        self.req.cancel.load(Ordering::Relaxed)
    }

    /// Call on every sampled token: the first one stops the time to first token.
    pub fn token_sampled(&mut self) {
        if self.first_token_at.is_none() {
            self.first_token_at = Some(Instant::now());
            self.timings.ttft_s = self.started.elapsed().as_secs_f64();
        }
    }

    /// Sends `Done` with the decode speed over the tokens after the first.
    pub fn done(mut self, answer: Answer) {
        if let Some(t) = self.first_token_at {
            let after_first = answer.tokens.len().saturating_sub(1);
            let secs = t.elapsed().as_secs_f64();
            if after_first > 0 && secs > 0.0 {
                self.timings.decode_tok_s = after_first as f64 / secs;
            }
        }
        let timings = std::mem::take(&mut self.timings);
        self.send(Event::Done {
            finish_reason: answer.finish,
            tokens: answer.tokens,
            text: answer.text,
            reasoning: answer.reasoning,
            reasoning_tokens: answer.reasoning_tokens,
            timings,
        });
    }
}
