//! What a checkpoint's chat template does about thinking, found by rendering
//! it: the templates are the only place the behaviour is written down (the
//! small Qwen3.5 checkpoints and the large ones differ only there).

use serde::Serialize;

use super::template::{ChatTemplate, RenderOptions};
use crate::conversation::{Conversation, Message, Role};

/// How a checkpoint thinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ThinkingMode {
    /// The template ignores `enable_thinking` and never opens `<think>`.
    None,
    /// The template ignores `enable_thinking` and its generation prompt opens
    /// `<think>` (Qwen3-VL-*-Thinking).
    Always,
    /// The template reads `enable_thinking`; `default_on` is what it does
    /// when the variable is left undefined.
    Switchable { default_on: bool },
}

impl ThinkingMode {
    /// Renders a one-question conversation with `enable_thinking` undefined,
    /// `true` and `false`, and compares. A template that cannot render it
    /// (it wants something else) counts as not thinking.
    pub fn of(template: &ChatTemplate) -> ThinkingMode {
        let mut probe = Conversation::new();
        probe.push(Message::text(Role::User, "Hello"));
        let render = |enable_thinking| {
            template
                .render_with(
                    &probe,
                    RenderOptions {
                        add_generation_prompt: true,
                        enable_thinking,
                    },
                )
                .ok()
        };
        let (Some(default), Some(on), Some(off)) =
            (render(None), render(Some(true)), render(Some(false)))
        else {
            return ThinkingMode::None;
        };
        if on != off {
            ThinkingMode::Switchable {
                default_on: default == on,
            }
        } else if ends_inside_think(&default) {
            ThinkingMode::Always
        } else {
            ThinkingMode::None
        }
    }

    /// Whether a request with this choice (`None`: the checkpoint's own)
    /// thinks.
    pub fn thinks(self, choice: Option<bool>) -> bool {
        match self {
            ThinkingMode::None => false,
            ThinkingMode::Always => true,
            ThinkingMode::Switchable { default_on } => choice.unwrap_or(default_on),
        }
    }

    /// What to pass the template for a choice, and a one-line notice when the
    /// checkpoint cannot follow it.
    pub fn apply(self, choice: Option<bool>) -> (Option<bool>, Option<String>) {
        match (self, choice) {
            (ThinkingMode::Switchable { .. }, c) => (c, None),
            (ThinkingMode::Always, Some(false)) => (
                None,
                Some("this checkpoint always thinks; thinking cannot be turned off".into()),
            ),
            (ThinkingMode::None, Some(true)) => (
                None,
                Some("this checkpoint has no thinking mode; thinking cannot be turned on".into()),
            ),
            _ => (None, None),
        }
    }

    /// `on`, `off` or `always` for a choice: what status lines show.
    pub fn label(self, choice: Option<bool>) -> &'static str {
        match (self, self.thinks(choice)) {
            (ThinkingMode::Always, _) => "always",
            (_, true) => "on",
            (_, false) => "off",
        }
    }

    /// Whether thinking can be switched at all.
    pub fn is_switchable(self) -> bool {
        matches!(self, ThinkingMode::Switchable { .. })
    }
}

/// Whether a rendered prompt leaves the model inside a `<think>` block.
fn ends_inside_think(prompt: &str) -> bool {
    match (prompt.rfind("<think>"), prompt.rfind("</think>")) {
        (Some(open), Some(close)) => open > close,
        (Some(_), None) => true,
        _ => false,
    }
}

/// Parses `on` / `off` (also `true`/`false`, `yes`/`no`, `1`/`0`).
pub fn parse_switch(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        other => Err(format!("{other:?} is not on or off")),
    }
}

/// The Qwen3.5-0.8B and 2B template, from the 4B+ one (`source`): the same
/// but for its last block, inverted so that it thinks only when asked.
#[cfg(test)]
pub(crate) fn small_qwen3_5_template(source: &str) -> String {
    let small = source.replace(
        "enable_thinking is defined and enable_thinking is false %}\n        {{- '<think>\\n\\n</think>\\n\\n' }}\n    {%- else %}\n        {{- '<think>\\n' }}",
        "enable_thinking is defined and enable_thinking is true %}\n        {{- '<think>\\n' }}\n    {%- else %}\n        {{- '<think>\\n\\n</think>\\n\\n' }}",
    );
    assert_ne!(small, source, "the generation block was not found");
    small
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn template(name: &str) -> ChatTemplate {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/templates")
            .join(name);
        ChatTemplate::from_source(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn the_real_templates_say_what_their_checkpoints_do() {
        assert_eq!(
            ThinkingMode::of(&template("qwen3_5.jinja")),
            ThinkingMode::Switchable { default_on: true }
        );
        assert_eq!(
            ThinkingMode::of(&template("qwen3_vl_thinking.jinja")),
            ThinkingMode::Always
        );
        for name in ["qwen3_vl.jinja", "qwen2_vl.jinja"] {
            assert_eq!(
                ThinkingMode::of(&template(name)),
                ThinkingMode::None,
                "{name}"
            );
        }
    }

    #[test]
    fn the_small_qwen3_5_variant_is_off_by_default() {
        let source = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates/qwen3_5.jinja"),
        )
        .unwrap();
        let small = small_qwen3_5_template(&source);
        let mode = ThinkingMode::of(&ChatTemplate::from_source(&small).unwrap());
        assert_eq!(mode, ThinkingMode::Switchable { default_on: false });
    }

    #[test]
    fn choices_the_checkpoint_cannot_follow_are_said_not_passed() {
        let always = ThinkingMode::Always;
        let (pass, notice) = always.apply(Some(false));
        assert_eq!(pass, None);
        assert!(notice.unwrap().contains("always thinks"));
        assert_eq!(always.label(Some(false)), "always");
        let none = ThinkingMode::None;
        assert!(none
            .apply(Some(true))
            .1
            .unwrap()
            .contains("no thinking mode"));
        assert_eq!(none.apply(Some(false)), (None, None));
        let switch = ThinkingMode::Switchable { default_on: true };
        assert_eq!(switch.apply(Some(false)), (Some(false), None));
        assert_eq!(switch.label(None), "on");
        assert_eq!(switch.label(Some(false)), "off");
    }

    #[test]
    fn switches_parse_with_a_reason() {
        assert_eq!(parse_switch("On"), Ok(true));
        assert_eq!(parse_switch("off"), Ok(false));
        assert!(parse_switch("maybe").unwrap_err().contains("not on or off"));
    }
}
