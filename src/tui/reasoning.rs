//! A thinking model's reasoning under its answer's heading: a dim block
//! headed "thinking · N tokens · T s", in full while it streams, then folded
//! to that one line until a key unfolds it.

use std::time::Instant;

use ratatui::text::{Line, Span};

use super::theme::Theme;
use super::wrap::wrap_spans;

/// What a thinking model reasoned before its answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reasoning {
    pub text: String,
    /// Tokens streamed (0 for one restored from a session).
    pub tokens: usize,
    /// Seconds from its first token to the answer's, once it has ended.
    pub seconds: Option<f64>,
    /// When its first token came, while it streams.
    pub started: Option<Instant>,
}

impl Reasoning {
    pub fn is_empty(&self) -> bool {
        self.tokens == 0 && self.text.is_empty()
    }

    /// Still being written: the reply runs and no answer token came yet.
    pub fn is_streaming(&self, reply_running: bool) -> bool {
        reply_running && self.started.is_some()
    }

    /// Ends it: the answer started, or the reply ended.
    pub fn close(&mut self) {
        if let Some(t) = self.started.take() {
            self.seconds = Some(t.elapsed().as_secs_f64());
        }
    }

    /// `thinking · 412 tokens · 6.1 s`, with what is known.
    pub fn heading(&self) -> String {
        let mut parts = vec!["thinking".to_string()];
        if self.tokens > 0 {
            parts.push(format!("{} tokens", self.tokens));
        }
        let seconds = self
            .seconds
            .or_else(|| self.started.map(|t| t.elapsed().as_secs_f64()));
        if let Some(s) = seconds {
            parts.push(format!("{s:.1} s"));
        }
        parts.join(" · ")
    }

    /// Its rows at `width`: the heading, then the text when `expanded`;
    /// folded, the heading says which key (`toggle`) unfolds it.
    pub fn rows(
        &self,
        t: &Theme,
        width: usize,
        expanded: bool,
        toggle: &str,
    ) -> Vec<Line<'static>> {
        if self.is_empty() {
            return Vec::new();
        }
        let mut heading = format!("{} {}", if expanded { "▾" } else { "▸" }, self.heading());
        if !expanded && !toggle.is_empty() {
            heading.push_str(&format!(" · {toggle} shows it"));
        }
        let mut rows = wrap_spans(
            &[Span::styled(heading, t.dim)],
            width,
            &[Span::raw("  ")],
            &[Span::raw("    ")],
        );
        if expanded {
            let bar = [Span::styled("  │ ", t.dim)];
            for line in self.text.trim().lines() {
                rows.extend(wrap_spans(
                    &[Span::styled(line.to_string(), t.dim)],
                    width,
                    &bar,
                    &bar,
                ));
            }
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
            .collect()
    }

    #[test]
    fn folded_it_is_one_line_that_names_its_key() {
        let r = Reasoning {
            text: "The bars are red.\nThree of them.".into(),
            tokens: 412,
            seconds: Some(6.1),
            started: None,
        };
        let t = Theme::default();
        assert_eq!(
            text(&r.rows(&t, 80, false, "Alt+R")),
            ["  ▸ thinking · 412 tokens · 6.1 s · Alt+R shows it"]
        );
        assert_eq!(
            text(&r.rows(&t, 80, true, "Alt+R")),
            [
                "  ▾ thinking · 412 tokens · 6.1 s",
                "  │ The bars are red.",
                "  │ Three of them."
            ]
        );
        assert!(Reasoning::default().rows(&t, 80, true, "").is_empty());
    }

    #[test]
    fn it_streams_until_closed() {
        let mut r = Reasoning {
            started: Some(Instant::now()),
            tokens: 1,
            ..Reasoning::default()
        };
        assert!(r.is_streaming(true));
        r.close();
        assert!(!r.is_streaming(true));
        assert!(r.seconds.is_some());
        assert!(r.heading().starts_with("thinking · 1 tokens · "));
    }
}
