//! Asking, answering, stopping and asking again: the life of a reply.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{App, Flash, ModelState, NextJob, Running, STOPPING};

const QUEUED: &str = "queued: asked";
use crate::engine::{Event, FinishReason};
use crate::tui::detections::SentImages;
use crate::tui::msg::{Cmd, RequestId};
use crate::tui::transcript::{Entry, EntryKind, Reply, ReplyPhase, ReplyStats};

impl App {
    pub(super) fn send(&mut self, cmds: &mut Vec<Cmd>) {
        self.browsing = false;
        let Ok(text) = self.expand_locate(self.input_text().trim()) else {
            return;
        };
        let trimmed = text.trim();
        if let Some(rest) = trimmed.strip_prefix('/') {
            if self.slash_command(rest, cmds) {
                self.reset_input();
                return;
            }
        }
        if trimmed.is_empty() && self.attachments.is_empty() {
            return;
        }
        if let ModelState::Failed(_) = self.model {
            self.flash = Some(Flash::Error(
                "the model did not load, so nothing can be asked; Ctrl+Q quits".into(),
            ));
            return;
        }
        let busy = self.running.is_some() || self.model.is_coming();
        if busy && self.next_job.is_some() {
            self.flash = Some(Flash::Error(
                "a question is already waiting; Esc cancels the running answer".into(),
            ));
            return;
        }
        let images = std::mem::take(&mut self.attachments);
        let kind = EntryKind::User {
            text: trimmed.to_string(),
            images,
            queued: busy,
        };
        self.push_entry(kind);
        self.reset_input();
        self.scroll = None;
        self.want_previews(cmds);
        if busy {
            self.next_job = Some(NextJob::Ask);
            let when = if self.running.is_some() {
                "when the current answer is done (Esc cancels it)"
            } else {
                "as soon as the model is loaded"
            };
            self.flash = Some(Flash::Info(format!("{QUEUED} {when}")));
        } else {
            self.start_reply(cmds);
        }
    }

    pub(super) fn request_id(&mut self) -> RequestId {
        let id = self.next_request;
        self.next_request += 1;
        id
    }

    /// Starts an answer to the conversation as it stands.
    pub(super) fn start_reply(&mut self, cmds: &mut Vec<Cmd>) {
        let conversation = self.conversation_now();
        let id = self.request_id();
        let cancel = Arc::new(AtomicBool::new(false));
        self.live_tokens_per_s = None;
        self.tokens_since_sample = 0;
        self.running = Some(Running {
            id,
            cancel: cancel.clone(),
        });
        let seed = self.seed;
        self.seed = self.seed.wrapping_add(1);
        let mut reply = Reply::new(id, self.settings.clone());
        reply.asked_tick = self.tick;
        reply.sent = SentImages::of(&conversation, &self.images);
        self.push_entry(EntryKind::Assistant(reply));
        self.scroll = None;
        cmds.push(Cmd::Generate {
            id,
            conversation,
            sampling: self.settings.overrides(seed),
            thinking: self.thinking_for_request(),
            cancel,
        });
        self.save_session(cmds);
    }

    pub(super) fn start_queued(&mut self, cmds: &mut Vec<Cmd>) {
        let Some(entry) = self
            .entries
            .iter_mut()
            .rev()
            .find(|e| matches!(e.kind, EntryKind::User { queued: true, .. }))
        else {
            return;
        };
        if let EntryKind::User { queued, .. } = &mut entry.kind {
            *queued = false;
        }
        entry.touch();
        // The queue has drained: its notice would now be wrong.
        if matches!(&self.flash, Some(Flash::Info(f)) if f.starts_with(QUEUED)) {
            self.flash = None;
        }
        self.start_reply(cmds);
    }

    pub(super) fn cancel_running(&mut self) {
        if let Some(r) = &self.running {
            r.cancel.store(true, Ordering::Relaxed);
            self.flash = Some(Flash::Info(STOPPING.into()));
        }
    }

    /// Esc with nothing running takes a waiting question back into the input.
    pub(super) fn unqueue(&mut self) {
        self.next_job = None;
        if let Some(pos) = self
            .entries
            .iter()
            .rposition(|e| matches!(e.kind, EntryKind::User { queued: true, .. }))
        {
            let e = self.entries.remove(pos);
            if let EntryKind::User { text, images, .. } = e.kind {
                self.attachments = images;
                self.reset_input();
                self.input.insert_str(text);
            }
        }
    }

    pub(super) fn regenerate(&mut self, cmds: &mut Vec<Cmd>) {
        if self.ready().is_none() {
            self.flash = Some(Flash::Info("the model is not loaded".into()));
            return;
        }
        if self.running.is_some() {
            if self.next_job == Some(NextJob::Ask) {
                self.flash = Some(Flash::Error(
                    "a question is waiting; it is asked after this answer".into(),
                ));
                return;
            }
            self.next_job = Some(NextJob::Regenerate);
            self.cancel_running();
            return;
        }
        let last_user = self
            .entries
            .iter()
            .rposition(|e| matches!(e.kind, EntryKind::User { .. }));
        let Some(last_user) = last_user else {
            self.flash = Some(Flash::Info("nothing to regenerate yet".into()));
            return;
        };
        // Everything after the last question (its answer, notices) goes.
        self.entries.truncate(last_user + 1);
        self.start_reply(cmds);
    }

    pub(super) fn last_reply_text(&self) -> Option<&str> {
        self.entries.iter().rev().find_map(|e| match &e.kind {
            EntryKind::Assistant(r) if !r.text.is_empty() => Some(r.text.as_str()),
            _ => None,
        })
    }

    pub(super) fn copy_reply(&mut self, cmds: &mut Vec<Cmd>) {
        match self.last_reply_text() {
            Some(t) => {
                let n = t.chars().count();
                cmds.push(Cmd::Copy(t.to_string()));
                self.flash = Some(Flash::Info(format!(
                    "copied the last answer ({n} characters) to the clipboard"
                )));
            }
            None => self.flash = Some(Flash::Info("no answer to copy yet".into())),
        }
    }

    pub(super) fn reply_mut(&mut self, id: RequestId) -> Option<&mut Entry> {
        self.entries
            .iter_mut()
            .rev()
            .find(|e| matches!(&e.kind, EntryKind::Assistant(r) if r.id == id))
    }

    /// Changes the reply of request `id` and marks its rows as stale.
    fn update_reply(&mut self, id: RequestId, change: impl FnOnce(&mut Reply)) {
        if let Some(e) = self.reply_mut(id) {
            if let EntryKind::Assistant(r) = &mut e.kind {
                change(r);
            }
            e.touch();
        }
    }

    pub(super) fn on_engine(&mut self, id: RequestId, event: Event, cmds: &mut Vec<Cmd>) {
        if self.running.as_ref().map(|r| r.id) != Some(id) {
            return;
        }
        match event {
            Event::Prompt {
                ids,
                images,
                dropped_messages,
                params,
                ..
            } => {
                self.context_used = ids.len();
                if dropped_messages > self.dropped_messages {
                    let notice = self.dropped_notice(dropped_messages);
                    self.notice_above_reply(id, notice);
                }
                self.dropped_messages = dropped_messages;
                self.update_reply(id, |r| {
                    r.limit = Some(params.max_new_tokens);
                    r.phase = if images.is_empty() {
                        ReplyPhase::Prefill
                    } else {
                        ReplyPhase::Encoding(images.len())
                    };
                    r.sent.facts = images;
                });
            }
            Event::KvCacheConverted {
                memory_fraction,
                bytes_before,
                bytes_after,
                ..
            } => {
                self.kv_cache = Some(format!("int8 (auto, at {:.0} %)", memory_fraction * 100.0));
                let notice = format!(
                    "Device memory reached {:.0} %: the KV cache now stores INT8 ({} → {}).",
                    memory_fraction * 100.0,
                    crate::human::mib(bytes_before as u64),
                    crate::human::mib(bytes_after as u64),
                );
                self.notice_above_reply(id, notice);
            }
            Event::VisionDone { .. } => self.update_reply(id, |r| r.phase = ReplyPhase::Prefill),
            Event::Reasoning { text, .. } => {
                self.context_used += 1;
                self.count_streamed_token();
                let tick = self.tick;
                self.update_reply(id, |r| {
                    r.heard_tick = tick;
                    let reasoning = &mut r.reasoning;
                    reasoning
                        .started
                        .get_or_insert_with(std::time::Instant::now);
                    reasoning.text.push_str(&text);
                    reasoning.tokens += 1;
                    r.phase = ReplyPhase::Streaming;
                });
            }
            Event::Token { text, .. } => {
                self.context_used += 1;
                self.count_streamed_token();
                let tick = self.tick;
                self.update_reply(id, |r| {
                    r.heard_tick = tick;
                    r.reasoning.close();
                    r.text.push_str(&text);
                    r.tokens += 1;
                    r.phase = ReplyPhase::Streaming;
                });
            }
            Event::Done {
                finish_reason,
                tokens,
                timings,
                text,
                reasoning,
                reasoning_tokens,
            } => {
                // The engine's split is the final word: the streamed pieces
                // may miss text the detokenizer held back.
                self.update_reply(id, |r| {
                    r.reasoning.close();
                    if reasoning_tokens > 0 {
                        r.reasoning.text = reasoning;
                        r.reasoning.tokens = reasoning_tokens;
                        r.text = text;
                    }
                });
                let stats = ReplyStats {
                    tokens: tokens.len(),
                    ttft_s: timings.ttft_s,
                    tok_s: timings.decode_tok_s,
                    finish: finish_reason,
                };
                if finish_reason != FinishReason::Cancelled || !tokens.is_empty() {
                    self.last_stats = Some(stats.clone());
                }
                self.update_reply(id, |r| r.phase = ReplyPhase::Done(stats));
                self.ground_finished(id, cmds);
                self.reply_ended(cmds);
            }
            Event::Error(msg) => {
                self.update_reply(id, |r| r.phase = ReplyPhase::Failed(msg));
                self.reply_ended(cmds);
            }
        }
    }

    fn dropped_notice(&self, dropped: usize) -> String {
        format!(
            "The conversation no longer fits the context of {} tokens: the oldest {} message{} {} left out of this answer (they stay on screen). /clear starts afresh.",
            self.ready().map(|r| r.info.max_context).unwrap_or(0),
            dropped,
            if dropped == 1 { "" } else { "s" },
            if dropped == 1 { "is" } else { "are" },
        )
    }

    /// A notice about answer `id`, shown above it.
    fn notice_above_reply(&mut self, id: RequestId, text: String) {
        let pos = self
            .entries
            .iter()
            .rposition(|e| matches!(&e.kind, EntryKind::Assistant(r) if r.id == id))
            .unwrap_or(self.entries.len());
        let entry = self.new_entry(EntryKind::Notice { error: false, text });
        self.entries.insert(pos, entry);
    }

    /// The answer is over (done, stopped or failed): save, then start what waits.
    fn reply_ended(&mut self, cmds: &mut Vec<Cmd>) {
        self.running = None;
        self.save_session(cmds);
        if self.flash == Some(Flash::Info(STOPPING.into())) {
            self.flash = None;
        }
        match self.next_job.take() {
            Some(NextJob::Ask) => self.start_queued(cmds),
            Some(NextJob::Regenerate) => self.regenerate(cmds),
            None => {}
        }
    }
}
