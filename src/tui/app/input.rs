//! Keys, pastes, the mouse and typed commands: what the person does.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use ratatui::crossterm::event::{KeyEvent, MouseEvent, MouseEventKind};

use super::{App, Dialog, Flash, ImageState, PathPrompt, StoredImage};
use crate::session::digest::why_not_a_file;
use crate::tui::attachments::{complete_path, expand_home, pasted_image_paths, split_pasted};
use crate::tui::keymap::Action;
use crate::tui::msg::{Cmd, ImageId};
use crate::tui::presets::{describe, Settings};

impl App {
    pub(super) fn on_key(&mut self, key: KeyEvent, cmds: &mut Vec<Cmd>) {
        match self.dialog {
            Dialog::Help { .. } => return self.on_help_key(key, cmds),
            Dialog::Sessions(_) => {
                self.flash = None;
                return self.on_session_list_key(key, cmds);
            }
            Dialog::PathPrompt(_) => return self.on_prompt_key(key, cmds),
            Dialog::None => {}
        }
        let action = self
            .keymap
            .lookup(&key, self.input_is_empty(), self.browsing);
        // A key clears the last flash unless it is the one that sets a new one.
        self.flash = None;
        match action {
            Some(a) => self.act(a, cmds),
            None => {
                use ratatui::crossterm::event::{KeyCode, KeyModifiers};
                if self.browsing {
                    // Typing goes back to the question.
                    let typing = matches!(
                        key.code,
                        KeyCode::Char(_) | KeyCode::Enter | KeyCode::Backspace
                    ) && !key
                        .modifiers
                        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
                    if !typing {
                        return;
                    }
                    self.browsing = false;
                    if key.code == KeyCode::Enter {
                        return;
                    }
                }
                if self.input.input(key) {
                    self.rows_changed_by_input();
                }
            }
        }
    }

    pub(super) fn rows_changed_by_input(&mut self) {
        // The input grows and shrinks with its lines, which moves the transcript.
        self.clamp_scroll();
    }

    pub(super) fn on_help_key(&mut self, key: KeyEvent, cmds: &mut Vec<Cmd>) {
        match self.keymap.lookup(&key, true, false) {
            Some(Action::Help) | Some(Action::Cancel) => self.dialog.close(),
            Some(Action::Quit) | Some(Action::CancelOrQuit) => self.act(Action::Quit, cmds),
            Some(Action::ScrollPageUp) | Some(Action::ScrollLineUp) => self.dialog.scroll_help(-3),
            Some(Action::ScrollPageDown) | Some(Action::ScrollLineDown) => {
                self.dialog.scroll_help(3)
            }
            _ => {
                use ratatui::crossterm::event::KeyCode;
                match key.code {
                    KeyCode::Char('q') => self.dialog.close(),
                    KeyCode::Up => self.dialog.scroll_help(-1),
                    KeyCode::Down => self.dialog.scroll_help(1),
                    _ => {}
                }
            }
        }
    }

    pub(super) fn on_prompt_key(&mut self, key: KeyEvent, cmds: &mut Vec<Cmd>) {
        use ratatui::crossterm::event::{KeyCode, KeyModifiers};
        let Some(prompt) = self.dialog.path_prompt_mut() else {
            return;
        };
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => self.dialog.close(),
            KeyCode::Char('c') | KeyCode::Char('g') if ctrl => self.dialog.close(),
            KeyCode::Char('u') if ctrl => prompt.text.clear(),
            KeyCode::Char('q') if ctrl => self.act(Action::Quit, cmds),
            KeyCode::Enter => {
                let text = prompt.text.clone();
                self.dialog.close();
                if !text.trim().is_empty() {
                    self.attach_text(&text, cmds);
                }
            }
            KeyCode::Tab => {
                let c = complete_path(&prompt.text);
                prompt.text = c.completed;
                prompt.candidates = c.candidates;
            }
            KeyCode::Backspace => {
                prompt.text.pop();
                prompt.candidates.clear();
            }
            KeyCode::Char(c) if !ctrl => {
                prompt.text.push(c);
                prompt.candidates.clear();
            }
            _ => {}
        }
    }

    pub(super) fn on_paste(&mut self, text: &str, cmds: &mut Vec<Cmd>) {
        if let Some(prompt) = self.dialog.path_prompt_mut() {
            prompt.text.push_str(text.trim());
            return;
        }
        if self.dialog.is_open() {
            return;
        }
        match pasted_image_paths(text) {
            Some(paths) => {
                for p in paths {
                    self.attach(p, cmds);
                }
            }
            None => {
                // Pasted text keeps its newlines; carriage returns would show as ^M.
                self.input
                    .insert_str(text.replace("\r\n", "\n").replace('\r', "\n"));
                self.rows_changed_by_input();
            }
        }
    }

    pub(super) fn on_mouse(&mut self, m: MouseEvent) {
        if self.dialog.is_help() {
            match m.kind {
                MouseEventKind::ScrollUp => self.dialog.scroll_help(-3),
                MouseEventKind::ScrollDown => self.dialog.scroll_help(3),
                _ => {}
            }
            return;
        }
        match m.kind {
            MouseEventKind::ScrollUp => self.scroll_by(-3),
            MouseEventKind::ScrollDown => self.scroll_by(3),
            _ => {}
        }
    }

    pub(super) fn act(&mut self, action: Action, cmds: &mut Vec<Cmd>) {
        match action {
            Action::Send => self.send(cmds),
            Action::Newline => {
                self.input.insert_newline();
                self.rows_changed_by_input();
            }
            Action::Cancel => self.cancel(),
            Action::CancelOrQuit => {
                if self.running.is_some() {
                    self.cancel_running();
                } else {
                    self.act(Action::Quit, cmds);
                }
            }
            Action::Quit => self.quit(cmds),
            Action::Regenerate => self.regenerate(cmds),
            Action::CopyReply => self.copy_reply(cmds),
            Action::AttachImage => {
                self.dialog = Dialog::PathPrompt(PathPrompt::default());
            }
            Action::CompletePath => self.complete_in_input(),
            Action::RemoveAttachment => self.remove_last_attachment(),
            Action::ToggleGpuPane => {
                self.gpu_pane_on = !self.gpu_pane_on;
                self.layout_toggled("GPU pane", self.gpu_pane_on, cmds);
            }
            Action::TogglePreviews => {
                self.previews_on = !self.previews_on;
                self.layout_toggled("previews", self.previews_on, cmds);
            }
            Action::Preset(i) => self.choose_preset(i),
            Action::TemperatureDown => self
                .settings
                .nudge_temperature(-1, self.model_temperature()),
            Action::TemperatureUp => self.settings.nudge_temperature(1, self.model_temperature()),
            Action::MaxTokensDown => self.settings.nudge_max_tokens(-1, self.model_max_tokens()),
            Action::MaxTokensUp => self.settings.nudge_max_tokens(1, self.model_max_tokens()),
            Action::ScrollPageUp => self.scroll_by(-self.page()),
            Action::ScrollPageDown => self.scroll_by(self.page()),
            Action::ScrollLineUp => self.scroll_by(-1),
            Action::ScrollLineDown => self.scroll_by(1),
            Action::ScrollTop => self.scroll = Some(0),
            Action::ScrollBottom => self.scroll = None,
            Action::Help => {
                self.dialog = Dialog::Help { scroll: 0 };
            }
            Action::Redraw => cmds.push(Cmd::Redraw),
            Action::ToggleOverlay => self.toggle_overlay(cmds),
            Action::NextObject => self.cycle_highlight(1, cmds),
            Action::PreviousObject => self.cycle_highlight(-1, cmds),
            Action::SessionList => self.open_session_list(cmds),
            Action::CycleTheme => self.cycle_theme(),
            Action::ToggleThinking => self.set_thinking(None, cmds),
            Action::ToggleReasoning => self.toggle_reasoning(),
            Action::ExportSession => self.export_session(None, cmds),
        }
    }

    /// Esc: stop the answer, else take back the queued question, else
    /// switch between the question and browsing the conversation.
    fn cancel(&mut self) {
        if self.running.is_some() {
            self.cancel_running();
        } else if self.next_job.is_some() {
            self.unqueue();
        } else {
            self.browsing = !self.browsing;
        }
    }

    fn quit(&mut self, cmds: &mut Vec<Cmd>) {
        if let Some(r) = &self.running {
            r.cancel.store(true, Ordering::Relaxed);
            // The answer stops with the program: keep what it wrote.
            self.save_session_with(true, cmds);
        }
        self.quitting = true;
        cmds.push(Cmd::Quit);
    }

    fn remove_last_attachment(&mut self) {
        let message = match self.attachments.pop() {
            Some(id) => {
                let name = self
                    .images
                    .get(&id)
                    .map(|i| i.name.clone())
                    .unwrap_or_default();
                format!("removed {name}")
            }
            None => "no image attached".into(),
        };
        self.flash = Some(Flash::Info(message));
    }

    /// A pane or the previews were switched: the transcript's width or
    /// height changed.
    fn layout_toggled(&mut self, what: &str, on: bool, cmds: &mut Vec<Cmd>) {
        self.clamp_scroll();
        self.want_previews(cmds);
        let state = if on { "on" } else { "off" };
        self.flash = Some(Flash::Info(format!("{what} {state}")));
    }

    fn choose_preset(&mut self, i: usize) {
        let Some(p) = self.presets.get(i) else {
            return;
        };
        self.settings = Settings::from_preset(i, p);
        let when = if self.running.is_some() {
            " (from the next answer)"
        } else {
            ""
        };
        self.flash = Some(Flash::Info(format!(
            "preset {}: {}{when}",
            p.name,
            describe(p)
        )));
    }

    fn page(&self) -> i64 {
        self.transcript_area().height.saturating_sub(2).max(1) as i64
    }

    pub(super) fn complete_in_input(&mut self) {
        let text = self.input_text();
        let Some(fragment) = text.strip_prefix("/image ") else {
            return;
        };
        if fragment.contains('\n') {
            return;
        }
        // Several paths may follow /image: complete the last one (a space
        // escaped with a backslash belongs to the path).
        let bytes = fragment.as_bytes();
        let split = (0..bytes.len())
            .rev()
            .find(|&i| bytes[i] == b' ' && (i == 0 || bytes[i - 1] != b'\\'))
            .map_or(0, |i| i + 1);
        let (head, fragment) = fragment.split_at(split);
        let c = complete_path(&fragment.replace("\\ ", " "));
        let completed = format!("{head}{}", c.completed.replace(' ', "\\ "));
        if c.candidates.len() > 1 {
            let shown: Vec<&str> = c.candidates.iter().take(8).map(String::as_str).collect();
            let more = c.candidates.len().saturating_sub(8);
            let mut line = shown.join("  ");
            if more > 0 {
                line.push_str(&format!("  (+{more})"));
            }
            self.flash = Some(Flash::Info(line));
        } else if c.completed == fragment.replace("\\ ", " ") {
            self.flash = Some(Flash::Info("no match".into()));
        }
        self.input.select_all();
        self.input.cut();
        self.input.insert_str(format!("/image {completed}"));
    }

    /// Attaches every path in `text` (quoted, escaped or plain).
    pub(super) fn attach_text(&mut self, text: &str, cmds: &mut Vec<Cmd>) {
        let items = split_pasted(text);
        if items.is_empty() {
            self.flash = Some(Flash::Error(
                "give the path of an image: /image PATH".into(),
            ));
        }
        for item in items {
            self.attach(expand_home(&item), cmds);
        }
    }

    pub fn attach(&mut self, path: PathBuf, cmds: &mut Vec<Cmd>) {
        if let Some(why) = why_not_a_file(&path) {
            self.flash = Some(Flash::Error(format!(
                "{}: {why}; check the path (Tab completes it)",
                path.display()
            )));
            return;
        }
        // An absolute path keeps working whatever the engine's directory is.
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        // The same file attached again reuses its decoded pixels.
        if let Some((&id, _)) = self
            .images
            .iter()
            .find(|(_, i)| i.path == path && !matches!(i.state, ImageState::Failed(_)))
        {
            self.attachments.push(id);
            return;
        }
        let id = self.decode_image(path, cmds);
        self.attachments.push(id);
    }

    /// A new image, decoded off the UI thread from `path`.
    pub(super) fn decode_image(&mut self, path: PathBuf, cmds: &mut Vec<Cmd>) -> ImageId {
        let id = self.next_image;
        self.next_image += 1;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        self.images.insert(
            id,
            StoredImage {
                path: path.clone(),
                name,
                state: ImageState::Decoding,
            },
        );
        cmds.push(Cmd::DecodeImage { id, path });
        id
    }

    /// Handles `/command`; false when it is not one (then it is sent as text).
    pub(super) fn slash_command(&mut self, rest: &str, cmds: &mut Vec<Cmd>) -> bool {
        let (name, arg) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        match name {
            "image" | "img" => {
                if arg.trim().is_empty() {
                    self.dialog = Dialog::PathPrompt(PathPrompt::default());
                } else {
                    self.attach_text(arg, cmds);
                }
            }
            "drop" => {
                let n: usize = arg.trim().parse().unwrap_or(0);
                if n >= 1 && n <= self.attachments.len() {
                    self.attachments.remove(n - 1);
                } else {
                    self.flash = Some(Flash::Error(format!(
                        "/drop N removes attached image N (1 to {})",
                        self.attachments.len()
                    )));
                }
            }
            "clear" | "new" => {
                if self.running.is_some() {
                    self.flash = Some(Flash::Error("Esc stops the answer first".into()));
                } else {
                    self.new_conversation(cmds);
                    self.flash = Some(Flash::Info("new conversation".into()));
                }
            }
            "export" => {
                let arg = arg.trim();
                let path = (!arg.is_empty()).then(|| expand_home(arg));
                self.export_session(path, cmds);
            }
            "sessions" => self.open_session_list(cmds),
            "theme" => self.theme_command(arg.trim()),
            "think" => self.think_command(arg.trim(), cmds),
            "help" => self.dialog = Dialog::Help { scroll: 0 },
            "quit" | "exit" | "q" => self.act(Action::Quit, cmds),
            _ => return false,
        }
        true
    }
}
