//! Asking the engine and following its events to the end of the answer:
//! where the model runs is said once the prompt is built, the images are
//! drawn (`--show`), the tokens stream to stdout (unless `--json`), the
//! reasoning of a thinking model to stderr, dimmed (unless hidden), and a
//! switch of the KV cache to INT8 is noted.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use anyhow::bail;
use serde_json::{json, Value};

use crate::cli::output;
use crate::cli::show::{facts_caption, Shower};
use crate::conversation::Conversation;
use crate::engine::{
    Backend, ContextPolicy, Event, FinishReason, ImageFacts, Request, SamplingOverrides, Timings,
};
use crate::human::gib;
use crate::processor::image::{load_image_with, AlphaMode};

/// Where the answer goes while it is made.
pub struct Stream<'a> {
    pub out: &'a mut output::Stdout,
    pub json: bool,
    pub shower: Option<&'a Shower>,
    pub alpha: AlphaMode,
    /// Reasoning goes to stderr unless hidden (always hidden with `--json`).
    pub show_reasoning: bool,
    /// Reasoning has been written to stderr and not yet ended with a newline.
    pub reasoning_open: bool,
}

/// What the engine said about the question.
pub struct Answer {
    pub prompt_ids: Vec<u32>,
    pub images: Vec<ImageFacts>,
    /// The KV cache's switch to INT8, as `kv_cache.converted` in JSON.
    pub kv_switch: Value,
    pub finish_reason: FinishReason,
    pub tokens: Vec<u32>,
    pub text: String,
    pub reasoning: String,
    pub reasoning_tokens: usize,
    pub timings: Timings,
}

/// Asks `conversation` and follows the answer to its end; `announce` says
/// where it runs once the prompt is built.
pub fn ask(
    backend: &dyn Backend,
    announce: &dyn Fn(),
    conversation: Conversation,
    sampling: SamplingOverrides,
    thinking: Option<bool>,
    stream: &mut Stream,
) -> anyhow::Result<Answer> {
    let cancel = Arc::new(AtomicBool::new(false));
    install_ctrl_c(cancel.clone());
    let (reply, events) = mpsc::channel();
    backend.submit(Request {
        conversation,
        sampling,
        reply,
        cancel,
        context: ContextPolicy::Refuse,
        thinking,
    })?;
    let (mut prompt_ids, mut images, mut kv_switch) = (Vec::new(), Vec::new(), Value::Null);
    for event in events {
        match event {
            Event::Prompt {
                ids, images: facts, ..
            } => {
                // Said only now, so that a refused question stays one error line.
                announce();
                stream.prompt_images(&facts)?;
                (prompt_ids, images) = (ids, facts);
            }
            Event::KvCacheConverted {
                memory_fraction,
                bytes_before,
                bytes_after,
                ..
            } => kv_switch = kv_converted(memory_fraction, bytes_before, bytes_after),
            Event::Token { text, .. } => stream.token(&text)?,
            Event::Reasoning { text, .. } => stream.reasoning(&text),
            Event::Error(msg) => bail!(msg),
            Event::Done {
                finish_reason,
                tokens,
                text,
                reasoning,
                reasoning_tokens,
                timings,
            } => {
                stream.end_reasoning();
                return Ok(Answer {
                    prompt_ids,
                    images,
                    kv_switch,
                    finish_reason,
                    tokens,
                    text,
                    reasoning,
                    reasoning_tokens,
                    timings,
                });
            }
            Event::VisionDone { .. } => {}
        }
    }
    bail!("the engine stopped without finishing the answer")
}

impl Stream<'_> {
    fn prompt_images(&mut self, facts: &[ImageFacts]) -> anyhow::Result<()> {
        if let Some(shower) = self.shower {
            show_images(self.out, shower, facts, self.alpha)?;
        }
        Ok(())
    }

    fn token(&mut self, text: &str) -> anyhow::Result<()> {
        self.end_reasoning();
        if !self.json && !text.is_empty() {
            self.out.write_all(text.as_bytes())?;
            self.out.flush()?;
        }
        Ok(())
    }

    fn reasoning(&mut self, text: &str) {
        if self.json || !self.show_reasoning || text.is_empty() {
            return;
        }
        let mut err = std::io::stderr().lock();
        // Best effort: stderr gone does not stop the answer.
        let _ = if err.is_terminal() {
            write!(err, "\x1b[2m{text}\x1b[22m")
        } else {
            write!(err, "{text}")
        };
        let _ = err.flush();
        self.reasoning_open = true;
    }

    /// Ends the reasoning's line on stderr before the answer starts.
    fn end_reasoning(&mut self) {
        if std::mem::take(&mut self.reasoning_open) {
            eprintln!();
        }
    }
}

/// Each image of the prompt, as the person gave it, with the facts the chat
/// shows on its chips.
pub fn show_images(
    out: &mut impl Write,
    shower: &Shower,
    facts: &[ImageFacts],
    alpha: AlphaMode,
) -> anyhow::Result<()> {
    for f in facts {
        let original = load_image_with(&f.path, None, alpha)?;
        shower.captioned(out, original.rgb, &facts_caption(f))?;
    }
    Ok(())
}

/// Says on stderr that the KV cache turned INT8; the same for JSON.
fn kv_converted(memory_fraction: f64, bytes_before: usize, bytes_after: usize) -> Value {
    eprintln!(
        "glimpse: device memory use reached {:.0} % — KV cache now INT8 ({} → {})",
        memory_fraction * 100.0,
        gib(bytes_before as u64),
        gib(bytes_after as u64)
    );
    json!({
        "memory_fraction": memory_fraction,
        "bytes_before": bytes_before,
        "bytes_after": bytes_after,
    })
}

/// First Ctrl-C asks the engine to stop after the current token; a second one
/// leaves at once.
fn install_ctrl_c(cancel: Arc<AtomicBool>) {
    let _ = ctrlc::set_handler(move || {
        if cancel.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
}
