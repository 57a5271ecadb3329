//! Keybindings as data: which chord does what, and when. The help overlay is
//! generated from the same table, so it cannot disagree with the keys.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use std::collections::BTreeMap;

use super::presets::Preset;
use crate::session::keyspec::{Key, KeySpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Send,
    Newline,
    /// Cancel the running reply (or close what is open).
    Cancel,
    Regenerate,
    CopyReply,
    AttachImage,
    CompletePath,
    RemoveAttachment,
    TogglePreviews,
    /// Boxes and points drawn over the previews under answers, or not.
    ToggleOverlay,
    /// Highlight the next object of the latest answer with objects.
    NextObject,
    PreviousObject,
    ToggleGpuPane,
    Preset(usize),
    TemperatureDown,
    TemperatureUp,
    MaxTokensDown,
    MaxTokensUp,
    ScrollPageUp,
    ScrollPageDown,
    ScrollLineUp,
    ScrollLineDown,
    ScrollTop,
    ScrollBottom,
    Help,
    Redraw,
    /// Open the list of saved sessions.
    SessionList,
    /// Write the conversation as Markdown.
    ExportSession,
    /// Thinking on or off for the next answers.
    ToggleThinking,
    /// Finished reasoning in full, or folded to its heading.
    ToggleReasoning,
    /// Switch to the next theme.
    CycleTheme,
    /// Cancel the running reply, or quit when there is none.
    CancelOrQuit,
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Conversation,
    Images,
    Presets,
    Scrolling,
    Other,
}

impl Section {
    pub const ALL: [Section; 5] = [
        Section::Conversation,
        Section::Images,
        Section::Presets,
        Section::Scrolling,
        Section::Other,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Section::Conversation => "Conversation",
            Section::Images => "Images",
            Section::Presets => "Presets",
            Section::Scrolling => "Scrolling",
            Section::Other => "Other",
        }
    }
}

/// Action names for the config's `[keys]` table, in help order.
pub const ACTION_NAMES: &[(&str, Action)] = &[
    ("send", Action::Send),
    ("newline", Action::Newline),
    ("cancel", Action::Cancel),
    ("regenerate", Action::Regenerate),
    ("copy_reply", Action::CopyReply),
    ("toggle_thinking", Action::ToggleThinking),
    ("toggle_reasoning", Action::ToggleReasoning),
    ("attach_image", Action::AttachImage),
    ("complete_path", Action::CompletePath),
    ("remove_attachment", Action::RemoveAttachment),
    ("toggle_previews", Action::TogglePreviews),
    ("toggle_overlay", Action::ToggleOverlay),
    ("next_object", Action::NextObject),
    ("previous_object", Action::PreviousObject),
    ("preset_1", Action::Preset(0)),
    ("preset_2", Action::Preset(1)),
    ("preset_3", Action::Preset(2)),
    ("preset_4", Action::Preset(3)),
    ("preset_5", Action::Preset(4)),
    ("preset_6", Action::Preset(5)),
    ("preset_7", Action::Preset(6)),
    ("preset_8", Action::Preset(7)),
    ("preset_9", Action::Preset(8)),
    ("temperature_down", Action::TemperatureDown),
    ("temperature_up", Action::TemperatureUp),
    ("max_tokens_down", Action::MaxTokensDown),
    ("max_tokens_up", Action::MaxTokensUp),
    ("scroll_page_up", Action::ScrollPageUp),
    ("scroll_page_down", Action::ScrollPageDown),
    ("scroll_line_up", Action::ScrollLineUp),
    ("scroll_line_down", Action::ScrollLineDown),
    ("scroll_top", Action::ScrollTop),
    ("scroll_bottom", Action::ScrollBottom),
    ("toggle_gpu_pane", Action::ToggleGpuPane),
    ("session_list", Action::SessionList),
    ("export_session", Action::ExportSession),
    ("cycle_theme", Action::CycleTheme),
    ("help", Action::Help),
    ("redraw", Action::Redraw),
    ("cancel_or_quit", Action::CancelOrQuit),
    ("quit", Action::Quit),
];

impl Action {
    pub fn from_name(name: &str) -> Option<Action> {
        ACTION_NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
    }

    pub fn section(self) -> Section {
        use Action::*;
        match self {
            Send | Newline | Cancel | Regenerate | CopyReply | ToggleThinking | ToggleReasoning
            | SessionList | ExportSession => Section::Conversation,
            AttachImage | CompletePath | RemoveAttachment | TogglePreviews | ToggleOverlay
            | NextObject | PreviousObject => Section::Images,
            Preset(_) | TemperatureDown | TemperatureUp | MaxTokensDown | MaxTokensUp => {
                Section::Presets
            }
            ScrollPageUp | ScrollPageDown | ScrollLineUp | ScrollLineDown | ScrollTop
            | ScrollBottom => Section::Scrolling,
            ToggleGpuPane | CycleTheme | Help | Redraw | CancelOrQuit | Quit => Section::Other,
        }
    }

    pub fn description(self, presets: &[Preset]) -> String {
        use Action::*;
        match self {
            Send => "send the question (queued while a reply is written)".into(),
            Newline => "new line in the question".into(),
            Cancel => {
                "stop the reply (partial answer kept); close a prompt; else browse the conversation"
                    .into()
            }
            Regenerate => "write the last answer again".into(),
            CopyReply => "copy the last answer (OSC 52 clipboard)".into(),
            ToggleThinking => "thinking on or off for the next answers".into(),
            ToggleReasoning => "show finished reasoning in full, or fold it".into(),
            AttachImage => "attach an image by path".into(),
            CompletePath => "complete the path after /image or in the path prompt".into(),
            RemoveAttachment => "remove the last attached image before sending".into(),
            TogglePreviews => "show or hide image previews".into(),
            ToggleOverlay => "draw the boxes found in answers over their image, or not".into(),
            NextObject => "highlight the next box or point of the latest answer".into(),
            PreviousObject => "highlight the previous box or point".into(),
            Preset(i) => match presets.get(i) {
                Some(p) => format!("preset {}: {}", p.name, super::presets::describe(p)),
                None => format!("preset {}", i + 1),
            },
            TemperatureDown => "temperature −0.05".into(),
            TemperatureUp => "temperature +0.05".into(),
            MaxTokensDown => "max new tokens −64".into(),
            MaxTokensUp => "max new tokens +64".into(),
            ScrollPageUp => "scroll the conversation up a page".into(),
            ScrollPageDown => "scroll down a page (at the end it follows the reply)".into(),
            ScrollLineUp => "scroll up a line".into(),
            ScrollLineDown => "scroll down a line".into(),
            ScrollTop => "go to the start of the conversation".into(),
            ScrollBottom => "go to the end and follow the reply".into(),
            ToggleGpuPane => "show or hide the GPU pane (wide screens)".into(),
            Help => "show or hide this help".into(),
            Redraw => "redraw the whole screen".into(),
            SessionList => "saved sessions: open one (Enter), Esc closes".into(),
            ExportSession => "export the conversation as Markdown (in this folder)".into(),
            CycleTheme => "next colour theme (/theme NAME picks one)".into(),
            CancelOrQuit => "stop the reply; quit when none is running".into(),
            Quit => "quit".into(),
        }
    }
}

/// A key with its modifiers. Shift is ignored for characters: terminals
/// disagree on whether `{` arrives with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyChord {
    pub code: KeyCode,
    pub modifiers: KeyModifiers,
}

impl KeyChord {
    pub const fn new(code: KeyCode, modifiers: KeyModifiers) -> Self {
        KeyChord { code, modifiers }
    }

    pub fn from_event(key: &KeyEvent) -> Self {
        let mut modifiers =
            key.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        let code = match key.code {
            KeyCode::Char(c) => {
                modifiers.remove(KeyModifiers::SHIFT);
                // With Ctrl or Alt, some terminals send the shifted letter.
                if modifiers.is_empty() {
                    KeyCode::Char(c)
                } else {
                    KeyCode::Char(c.to_ascii_lowercase())
                }
            }
            // Shift+Tab arrives as BackTab.
            other => other,
        };
        KeyChord { code, modifiers }
    }

    /// How the chord is written in the help: `Ctrl+R`, `Alt+1`, `F2`, `[`.
    pub fn label(&self) -> String {
        let mut s = String::new();
        if self.modifiers.contains(KeyModifiers::CONTROL) {
            s.push_str("Ctrl+");
        }
        if self.modifiers.contains(KeyModifiers::ALT) {
            s.push_str("Alt+");
        }
        if self.modifiers.contains(KeyModifiers::SHIFT) {
            s.push_str("Shift+");
        }
        match self.code {
            KeyCode::Char(c) if self.modifiers.is_empty() => s.push(c),
            KeyCode::Char(c) => s.push(c.to_ascii_uppercase()),
            KeyCode::F(n) => s.push_str(&format!("F{n}")),
            KeyCode::Enter => s.push_str("Enter"),
            KeyCode::Esc => s.push_str("Esc"),
            KeyCode::Tab => s.push_str("Tab"),
            KeyCode::Backspace => s.push_str("Backspace"),
            KeyCode::PageUp => s.push_str("PgUp"),
            KeyCode::PageDown => s.push_str("PgDn"),
            KeyCode::Home => s.push_str("Home"),
            KeyCode::End => s.push_str("End"),
            KeyCode::Up => s.push('↑'),
            KeyCode::Down => s.push('↓'),
            KeyCode::Left => s.push('←'),
            KeyCode::Right => s.push('→'),
            other => s.push_str(&format!("{other:?}")),
        }
        s
    }
}

/// Commands typed into the input, for the help overlay.
pub const COMMANDS: [(&str, &str); 10] = [
    (
        "/image PATH",
        "attach an image (Tab completes the path; several paths work)",
    ),
    ("/drop N", "remove attached image N before sending"),
    (
        "/locate THING",
        "ask the model to box THING in the latest image",
    ),
    (
        "/clear, /new",
        "start a new conversation (the last one stays saved)",
    ),
    ("/sessions", "saved sessions: open one"),
    (
        "/think [on|off]",
        "thinking on or off for the next answers; alone, switch it",
    ),
    (
        "/export [PATH]",
        "write the conversation as Markdown (images linked)",
    ),
    (
        "/theme [NAME]",
        "switch to a colour theme; alone, list them",
    ),
    ("/help", "show this help"),
    ("/quit", "quit"),
];

/// When a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Always,
    /// Only while the question being typed is empty (or while browsing), so
    /// plain characters still type themselves otherwise.
    InputEmpty,
    /// Only while browsing the conversation (Esc with no answer running), so
    /// a question may start with any letter.
    Browsing,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub chord: KeyChord,
    pub when: When,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Keymap {
    pub bindings: Vec<Binding>,
}

/// One row of the help overlay.
#[derive(Debug, Clone, PartialEq)]
pub struct HelpRow {
    pub section: Section,
    pub keys: String,
    pub description: String,
}

impl KeyChord {
    /// The chord of a key as the config writes it, normalised as
    /// [`KeyChord::from_event`] normalises key presses.
    pub fn from_spec(spec: &KeySpec) -> KeyChord {
        let mut modifiers = KeyModifiers::NONE;
        let m = spec.modifiers;
        for (on, bit) in [
            (m.ctrl, KeyModifiers::CONTROL),
            (m.alt, KeyModifiers::ALT),
            (m.shift, KeyModifiers::SHIFT),
            (m.super_key, KeyModifiers::SUPER),
        ] {
            if on {
                modifiers |= bit;
            }
        }
        let code = match spec.key {
            Key::Char(c) => {
                modifiers.remove(KeyModifiers::SHIFT);
                if modifiers.is_empty() {
                    KeyCode::Char(c)
                } else {
                    KeyCode::Char(c.to_ascii_lowercase())
                }
            }
            Key::F(n) => KeyCode::F(n),
            Key::Enter => KeyCode::Enter,
            Key::Esc => KeyCode::Esc,
            Key::Tab if m.shift => {
                modifiers.remove(KeyModifiers::SHIFT);
                KeyCode::BackTab
            }
            Key::Tab => KeyCode::Tab,
            Key::Backspace => KeyCode::Backspace,
            Key::Delete => KeyCode::Delete,
            Key::Insert => KeyCode::Insert,
            Key::Home => KeyCode::Home,
            Key::End => KeyCode::End,
            Key::PageUp => KeyCode::PageUp,
            Key::PageDown => KeyCode::PageDown,
            Key::Up => KeyCode::Up,
            Key::Down => KeyCode::Down,
            Key::Left => KeyCode::Left,
            Key::Right => KeyCode::Right,
        };
        KeyChord { code, modifiers }
    }
}

/// A `[keys]` entry that names no action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown action `{name}` in [keys]; the actions are: {}",
    action_names()
)]
pub struct UnknownAction {
    pub name: String,
}

fn action_names() -> String {
    ACTION_NAMES
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Keymap {
    /// The keys of `overrides` (action name → keys) replace the built-in
    /// keys of those actions, and take their chords from any other action.
    pub fn with_overrides(
        mut self,
        overrides: &BTreeMap<String, Vec<KeySpec>>,
    ) -> Result<Keymap, UnknownAction> {
        for (name, keys) in overrides {
            let action =
                Action::from_name(name).ok_or_else(|| UnknownAction { name: name.clone() })?;
            let chords: Vec<KeyChord> = keys.iter().map(KeyChord::from_spec).collect();
            let keep = |b: &Binding| b.action != action && !chords.contains(&b.chord);
            // Where the action was, so the help keeps its order.
            let at = self
                .bindings
                .iter()
                .position(|b| b.action == action)
                .map(|i| self.bindings[..i].iter().filter(|b| keep(b)).count())
                .unwrap_or(self.bindings.len());
            self.bindings.retain(keep);
            let at = at.min(self.bindings.len());
            for (i, chord) in chords.into_iter().enumerate() {
                self.bindings.insert(
                    at + i,
                    Binding {
                        chord,
                        when: When::Always,
                        action,
                    },
                );
            }
        }
        Ok(self)
    }

    /// glimpse's default keys. F-keys are often swallowed over SSH, so each
    /// has an Alt chord; bare characters act only on an empty input.
    pub fn builtin() -> Self {
        use Action::*;
        use KeyCode as K;
        const NONE: KeyModifiers = KeyModifiers::NONE;
        const CTRL: KeyModifiers = KeyModifiers::CONTROL;
        const ALT: KeyModifiers = KeyModifiers::ALT;
        const SHIFT: KeyModifiers = KeyModifiers::SHIFT;
        let table: Vec<(KeyCode, KeyModifiers, When, Action)> = vec![
            (K::Enter, NONE, When::Always, Send),
            (K::Enter, SHIFT, When::Always, Newline),
            (K::Enter, ALT, When::Always, Newline),
            (K::Char('j'), CTRL, When::Always, Newline),
            (K::Esc, NONE, When::Always, Cancel),
            (K::Char('r'), CTRL, When::Always, Regenerate),
            (K::Char('y'), CTRL, When::Always, CopyReply),
            (K::Char('y'), NONE, When::Browsing, CopyReply),
            (K::Char('k'), ALT, When::Always, ToggleThinking),
            (K::Char('k'), NONE, When::Browsing, ToggleThinking),
            (K::Char('r'), ALT, When::Always, ToggleReasoning),
            (K::Char('r'), NONE, When::Browsing, ToggleReasoning),
            (K::Char('s'), ALT, When::Always, SessionList),
            (K::Char('s'), NONE, When::Browsing, SessionList),
            (K::Char('e'), ALT, When::Always, ExportSession),
            (K::Char('e'), NONE, When::Browsing, ExportSession),
            (K::Char('o'), CTRL, When::Always, AttachImage),
            (K::Tab, NONE, When::Always, CompletePath),
            (K::Char('x'), CTRL, When::Always, RemoveAttachment),
            (K::Char('p'), ALT, When::Always, TogglePreviews),
            (K::Char('p'), NONE, When::Browsing, TogglePreviews),
            (K::Char('b'), ALT, When::Always, ToggleOverlay),
            (K::Char('b'), NONE, When::Browsing, ToggleOverlay),
            (K::Char('n'), ALT, When::Always, NextObject),
            (K::Char('n'), NONE, When::Browsing, NextObject),
            (K::Char('N'), NONE, When::Browsing, PreviousObject),
            (K::F(1), NONE, When::Always, Preset(0)),
            (K::Char('1'), ALT, When::Always, Preset(0)),
            (K::F(2), NONE, When::Always, Preset(1)),
            (K::Char('2'), ALT, When::Always, Preset(1)),
            (K::F(3), NONE, When::Always, Preset(2)),
            (K::Char('3'), ALT, When::Always, Preset(2)),
            (K::Char('['), NONE, When::InputEmpty, TemperatureDown),
            (K::Char('-'), ALT, When::Always, TemperatureDown),
            (K::Char(']'), NONE, When::InputEmpty, TemperatureUp),
            (K::Char('='), ALT, When::Always, TemperatureUp),
            (K::Char('{'), NONE, When::InputEmpty, MaxTokensDown),
            (K::Char(','), ALT, When::Always, MaxTokensDown),
            (K::Char('}'), NONE, When::InputEmpty, MaxTokensUp),
            (K::Char('.'), ALT, When::Always, MaxTokensUp),
            (K::PageUp, NONE, When::Always, ScrollPageUp),
            (K::PageDown, NONE, When::Always, ScrollPageDown),
            (K::Up, SHIFT, When::Always, ScrollLineUp),
            (K::Up, NONE, When::Browsing, ScrollLineUp),
            (K::Down, SHIFT, When::Always, ScrollLineDown),
            (K::Down, NONE, When::Browsing, ScrollLineDown),
            (K::Home, CTRL, When::Always, ScrollTop),
            (K::Char('g'), NONE, When::Browsing, ScrollTop),
            (K::End, CTRL, When::Always, ScrollBottom),
            (K::Char('G'), NONE, When::Browsing, ScrollBottom),
            (K::Char('g'), ALT, When::Always, ToggleGpuPane),
            (K::Char('t'), ALT, When::Always, CycleTheme),
            (K::Char('t'), NONE, When::Browsing, CycleTheme),
            (K::Char('?'), NONE, When::InputEmpty, Help),
            (K::F(12), NONE, When::Always, Help),
            (K::Char('l'), CTRL, When::Always, Redraw),
            (K::Char('c'), CTRL, When::Always, CancelOrQuit),
            (K::Char('q'), CTRL, When::Always, Quit),
        ];
        Keymap {
            bindings: table
                .into_iter()
                .map(|(code, modifiers, when, action)| Binding {
                    chord: KeyChord::new(code, modifiers),
                    when,
                    action,
                })
                .collect(),
        }
    }

    /// The action of a key press. Bindings for an empty input are skipped
    /// while something is typed (unless browsing); browsing bindings apply
    /// only while browsing.
    pub fn lookup(&self, key: &KeyEvent, input_empty: bool, browsing: bool) -> Option<Action> {
        let chord = KeyChord::from_event(key);
        self.bindings
            .iter()
            .find(|b| {
                b.chord == chord
                    && match b.when {
                        When::Always => true,
                        When::InputEmpty => input_empty || browsing,
                        When::Browsing => browsing,
                    }
            })
            .map(|b| b.action)
    }

    /// Every key, grouped by action in table order; keys that only work on
    /// an empty input are marked with `*`, keys for browsing with `†`.
    pub fn help_rows(&self, presets: &[Preset]) -> Vec<HelpRow> {
        let mut rows: Vec<(Action, Vec<String>)> = Vec::new();
        for b in &self.bindings {
            let mut label = b.chord.label();
            match b.when {
                When::Always => {}
                When::InputEmpty => label.push('*'),
                When::Browsing => label.push('†'),
            }
            match rows.iter_mut().find(|(a, _)| *a == b.action) {
                Some((_, keys)) => keys.push(label),
                None => rows.push((b.action, vec![label])),
            }
        }
        let mut out = Vec::new();
        for section in Section::ALL {
            for (action, keys) in rows.iter().filter(|(a, _)| a.section() == section) {
                out.push(HelpRow {
                    section,
                    keys: keys.join(" "),
                    description: action.description(presets),
                });
            }
        }
        out
    }

    /// The first key bound to an action, for hints like "Esc cancel".
    pub fn first_label(&self, action: Action) -> Option<String> {
        self.bindings
            .iter()
            .find(|b| b.action == action)
            .map(|b| b.chord.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::presets::builtin_presets;

    #[test]
    fn config_keys_replace_an_actions_keys_and_unknown_actions_are_refused() {
        let spec = |s: &str| s.parse::<KeySpec>().unwrap();
        let mut keys = BTreeMap::new();
        keys.insert("regenerate".to_string(), vec![spec("ctrl+g"), spec("f5")]);
        keys.insert("toggle_gpu_pane".to_string(), vec![spec("ctrl+r")]);
        let map = Keymap::builtin().with_overrides(&keys).unwrap();
        let press = |code, modifiers| KeyEvent::new(code, modifiers);
        assert_eq!(
            map.lookup(
                &press(KeyCode::Char('g'), KeyModifiers::CONTROL),
                false,
                false
            ),
            Some(Action::Regenerate)
        );
        assert_eq!(
            map.lookup(&press(KeyCode::F(5), KeyModifiers::NONE), false, false),
            Some(Action::Regenerate)
        );
        // Ctrl+R moved to the GPU pane; Alt+G no longer toggles it.
        assert_eq!(
            map.lookup(
                &press(KeyCode::Char('r'), KeyModifiers::CONTROL),
                false,
                false
            ),
            Some(Action::ToggleGpuPane)
        );
        assert_eq!(
            map.lookup(&press(KeyCode::Char('g'), KeyModifiers::ALT), false, false),
            None
        );
        let mut bad = BTreeMap::new();
        bad.insert("sned".to_string(), vec![spec("enter")]);
        let e = Keymap::builtin()
            .with_overrides(&bad)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("unknown action `sned` in [keys]"), "{e}");
        assert!(!e.contains('\n'));
    }
    use ratatui::crossterm::event::KeyEventKind;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new_with_kind(code, modifiers, KeyEventKind::Press)
    }

    #[test]
    fn f_keys_and_alt_digits_choose_the_same_presets() {
        let k = Keymap::builtin();
        for (i, f) in [1u8, 2, 3].into_iter().enumerate() {
            let digit = char::from(b'1' + i as u8);
            assert_eq!(
                k.lookup(&key(KeyCode::F(f), KeyModifiers::NONE), false, false),
                Some(Action::Preset(i))
            );
            assert_eq!(
                k.lookup(&key(KeyCode::Char(digit), KeyModifiers::ALT), false, false),
                Some(Action::Preset(i))
            );
        }
    }

    #[test]
    fn bare_characters_act_only_on_an_empty_input() {
        let k = Keymap::builtin();
        let bracket = key(KeyCode::Char(']'), KeyModifiers::NONE);
        assert_eq!(k.lookup(&bracket, true, false), Some(Action::TemperatureUp));
        assert_eq!(k.lookup(&bracket, false, false), None);
        // `}` arrives with Shift from some terminals.
        let brace = key(KeyCode::Char('}'), KeyModifiers::SHIFT);
        assert_eq!(k.lookup(&brace, true, false), Some(Action::MaxTokensUp));
        let plain = key(KeyCode::Char('a'), KeyModifiers::NONE);
        assert_eq!(k.lookup(&plain, true, false), None);
    }

    #[test]
    fn letters_act_only_while_browsing_so_questions_can_start_with_them() {
        let k = Keymap::builtin();
        let y = key(KeyCode::Char('y'), KeyModifiers::NONE);
        assert_eq!(k.lookup(&y, true, false), None, "y types itself");
        assert_eq!(k.lookup(&y, true, true), Some(Action::CopyReply));
        let up = key(KeyCode::Up, KeyModifiers::NONE);
        assert_eq!(k.lookup(&up, true, false), None, "Up moves in the input");
        assert_eq!(k.lookup(&up, false, true), Some(Action::ScrollLineUp));
    }

    #[test]
    fn ctrl_letters_match_whatever_case_the_terminal_sends() {
        let k = Keymap::builtin();
        let r = key(
            KeyCode::Char('R'),
            KeyModifiers::CONTROL | KeyModifiers::SHIFT,
        );
        assert_eq!(k.lookup(&r, false, false), Some(Action::Regenerate));
    }

    #[test]
    fn every_action_with_a_key_appears_in_the_help_once() {
        let k = Keymap::builtin();
        let rows = k.help_rows(&builtin_presets());
        let mut actions: Vec<Action> = k.bindings.iter().map(|b| b.action).collect();
        actions.dedup();
        let mut unique = actions.clone();
        unique.sort_by_key(|a| format!("{a:?}"));
        unique.dedup();
        assert_eq!(rows.len(), unique.len());
        let f1 = rows
            .iter()
            .find(|r| r.keys.starts_with("F1"))
            .expect("F1 in help");
        assert_eq!(f1.keys, "F1 Alt+1");
        assert!(f1.description.contains("diagnostic"), "{}", f1.description);
        assert!(rows.iter().any(|r| r.keys == "[* Alt+-"));
    }
}
