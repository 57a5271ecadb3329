//! The conversation on disk: saved as it goes, exported, and brought back.

use std::path::PathBuf;

use super::{App, Flash};
use crate::conversation::{Message, Role};
use crate::human::printable;
use crate::session::SessionSettings;
use crate::tui::msg::{Cmd, ImageId};
use crate::tui::presets::{model_max_tokens, model_temperature, Settings};
use crate::tui::session_keeper::{Restored, SessionCmd, SessionEvent};
use crate::tui::transcript::{conversation_until, EntryKind, Reply, ReplyPhase};

impl App {
    /// Whether a question has been asked in this conversation.
    pub fn has_question(&self) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e.kind, EntryKind::User { queued: false, .. }))
    }

    /// The settings the session file records.
    pub fn session_settings(&self) -> SessionSettings {
        let mut sampling = self.settings.overrides(0);
        // Each request has its own seed; none describes the conversation.
        sampling.seed = None;
        SessionSettings {
            preset: Some(self.settings.preset_name.clone()),
            sampling,
            device: self.ready().map(|r| r.info.device.clone()),
            dtype: self.ready().map(|r| r.info.dtype.clone()),
            thinking: self.thinking_choice(),
        }
    }

    /// The conversation the model is sent: the preset's system prompt, then
    /// every question and finished answer.
    pub(super) fn conversation_now(&self) -> crate::conversation::Conversation {
        let mut conversation = conversation_until(&self.entries, &self.images);
        if let Some(system) = &self.settings.system_prompt {
            conversation
                .messages
                .insert(0, Message::text(Role::System, system.clone()));
        }
        conversation
    }

    /// The temperature a nudge starts from when the preset leaves it to the model.
    pub(super) fn model_temperature(&self) -> f64 {
        self.ready()
            .map_or(0.0, |r| model_temperature(&r.info.generation))
    }

    pub(super) fn model_max_tokens(&self) -> usize {
        model_max_tokens(self.ready().map(|r| &r.info.generation))
    }

    /// The conversation as it is saved: what the model has been sent, plus
    /// the part of an answer still being written (when quitting).
    fn conversation_to_save(&self, with_running: bool) -> crate::conversation::Conversation {
        let mut conversation = self.conversation_now();
        if with_running {
            if let Some(EntryKind::Assistant(r)) = self.entries.last().map(|e| &e.kind) {
                if r.is_running() && !(r.text.is_empty() && r.reasoning.text.is_empty()) {
                    conversation.push(
                        Message::text(Role::Assistant, r.text.clone())
                            .with_reasoning(&r.reasoning.text),
                    );
                }
            }
        }
        conversation
    }

    pub(super) fn save_session(&mut self, cmds: &mut Vec<Cmd>) {
        self.save_session_with(false, cmds);
    }

    pub(super) fn save_session_with(&mut self, with_running: bool, cmds: &mut Vec<Cmd>) {
        if !self.has_question() {
            return;
        }
        cmds.push(Cmd::Session(SessionCmd::Save {
            conversation: self.conversation_to_save(with_running),
            settings: self.session_settings(),
        }));
    }

    /// `/export [PATH]` and its key.
    pub(super) fn export_session(&mut self, path: Option<PathBuf>, cmds: &mut Vec<Cmd>) {
        if !self.has_question() {
            self.flash = Some(Flash::Info("nothing to export yet".into()));
            return;
        }
        cmds.push(Cmd::Session(SessionCmd::Export {
            conversation: self.conversation_to_save(false),
            settings: self.session_settings(),
            path,
        }));
    }

    /// `/clear`: the screen empties and the next question starts a new session.
    pub(super) fn new_conversation(&mut self, cmds: &mut Vec<Cmd>) {
        self.clear_conversation();
        self.session_id = None;
        cmds.push(Cmd::Session(SessionCmd::New));
    }

    fn clear_conversation(&mut self) {
        self.entries.clear();
        self.next_job = None;
        self.context_used = 0;
        self.dropped_messages = 0;
        self.last_stats = None;
        self.scroll = None;
    }

    pub(super) fn on_session(&mut self, event: SessionEvent, cmds: &mut Vec<Cmd>) {
        match event {
            SessionEvent::Saved {
                id,
                path,
                kept,
                forked_from,
            } => {
                self.session_id = Some(id.clone());
                self.last_save_error = None;
                if forked_from.is_some() {
                    let text = format!(
                        "another glimpse saved this session meanwhile; this conversation continues as {id}"
                    );
                    self.notice(text.clone());
                    self.flash = Some(Flash::Info(text));
                }
                if let Some(why) = kept {
                    self.flash = Some(Flash::Error(format!(
                        "{why} — this conversation is saved as {}",
                        path.display()
                    )));
                }
            }
            SessionEvent::SaveFailed(e) => {
                // Once per cause, not after every answer.
                if self.last_save_error.as_ref() != Some(&e) {
                    self.flash = Some(Flash::Error(e.clone()));
                    self.last_save_error = Some(e);
                }
            }
            SessionEvent::Exported(Ok(path)) => {
                self.flash = Some(Flash::Info(format!("exported to {}", path.display())));
            }
            SessionEvent::Exported(Err(e)) => self.flash = Some(Flash::Error(e)),
            SessionEvent::Opened(Ok(restored)) => self.restore(*restored, cmds),
            SessionEvent::Opened(Err(e)) => self.flash = Some(Flash::Error(e)),
            SessionEvent::Listed(listing) => self.on_listing(listing),
        }
    }

    /// Replaces the conversation on screen with a saved one.
    fn restore(&mut self, restored: Restored, cmds: &mut Vec<Cmd>) {
        let Restored {
            session,
            missing,
            notes,
            unanswered,
            ..
        } = restored;
        self.clear_conversation();
        self.session_id = Some(session.id.clone());
        self.settings = self.settings_from(&session.settings);
        self.settings.system_prompt = None;
        for message in &session.conversation.messages {
            match message.role {
                // The session's own system prompt goes on, whatever its preset says now.
                Role::System => self.settings.system_prompt = Some(message.joined_text()),
                Role::User => {
                    let images = self.restore_images(message, &missing, cmds);
                    self.push_entry(EntryKind::User {
                        text: message.joined_text(),
                        images,
                        queued: false,
                    });
                }
                Role::Assistant => {
                    let id = self.request_id();
                    let mut reply = Reply::new(id, self.settings.clone());
                    reply.text = message.joined_text();
                    reply.reasoning.text = message.reasoning.clone().unwrap_or_default();
                    reply.phase = ReplyPhase::Restored;
                    self.push_entry(EntryKind::Assistant(reply));
                }
            }
        }
        for note in notes {
            self.notice(note);
        }
        if let Some(question) = unanswered {
            self.offer_again(&question, &missing, cmds);
        }
        self.flash = Some(Flash::Info(format!(
            "resumed “{}” ({} messages); new turns are saved to it",
            printable(&session.title()),
            session.conversation.messages.len()
        )));
        self.want_previews(cmds);
        self.ground_restored(cmds);
    }

    /// The live settings a saved session was held with: its preset, then the
    /// values it recorded.
    fn settings_from(&self, saved: &SessionSettings) -> Settings {
        let index = saved
            .preset
            .as_ref()
            .and_then(|name| self.presets.iter().position(|p| &p.name == name));
        let mut settings = match index {
            Some(i) => Settings::from_preset(i, &self.presets[i]),
            None => self.settings.clone(),
        };
        let o = &saved.sampling;
        settings.temperature = o.temperature;
        settings.max_tokens = o.max_new_tokens;
        settings.top_p = o.top_p;
        settings.top_k = o.top_k;
        settings.repetition_penalty = o.repetition_penalty;
        // Files from before sessions kept it follow the preset.
        settings.thinking = saved.thinking.or(settings.thinking);
        settings
    }

    /// A last question without an answer (glimpse was stopped while
    /// answering, or a conversation file ends with it) goes back into the
    /// input box with its images, unless something is typed there already.
    fn offer_again(&mut self, question: &Message, missing: &[PathBuf], cmds: &mut Vec<Cmd>) {
        let text = question.joined_text();
        let typing =
            !self.attachments.is_empty() || self.input.lines().iter().any(|l| !l.is_empty());
        if typing {
            self.notice(format!(
                "The last question has no answer yet: “{}”",
                printable(&text)
            ));
            return;
        }
        self.attachments = self.restore_images(question, missing, cmds);
        self.reset_input();
        self.input.insert_str(text);
        self.notice(
            "The last question has no answer yet; it is back in the input box: Enter asks it",
        );
    }

    /// The images of a saved message that are there, decoded again.
    fn restore_images(
        &mut self,
        message: &Message,
        missing: &[PathBuf],
        cmds: &mut Vec<Cmd>,
    ) -> Vec<ImageId> {
        let present: Vec<PathBuf> = message
            .images()
            .filter(|p| !missing.iter().any(|m| m == p))
            .map(|p| p.to_path_buf())
            .collect();
        present
            .into_iter()
            .map(|p| self.restore_image(p, cmds))
            .collect()
    }

    /// An image of a saved turn: decoded again from its path.
    fn restore_image(&mut self, path: PathBuf, cmds: &mut Vec<Cmd>) -> ImageId {
        if let Some((&id, _)) = self.images.iter().find(|(_, i)| i.path == path) {
            return id;
        }
        self.decode_image(path, cmds)
    }
}
