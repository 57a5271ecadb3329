//! Word wrapping of styled text to a column width, counting terminal cells
//! (CJK characters take two and may break anywhere, as they have no spaces).

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Cells a string takes on screen.
pub fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Space,
    Word,
    Break,
}

struct Atom {
    text: String,
    style: Style,
    kind: Kind,
}

fn atoms(spans: &[Span<'_>]) -> Vec<Atom> {
    let mut out: Vec<Atom> = Vec::new();
    for span in spans {
        for c in span.content.chars() {
            // Control characters would reach the terminal as commands.
            let c = match c {
                '\t' => ' ',
                '\n' => '\n',
                c if c.is_control() => '\u{fffd}',
                c => c,
            };
            let kind = if c == '\n' {
                Kind::Break
            } else if c == ' ' {
                Kind::Space
            } else {
                Kind::Word
            };
            let wide = c.width().unwrap_or(0) > 1;
            let joins = !wide
                && kind != Kind::Break
                && out.last().is_some_and(|a| {
                    a.kind == kind
                        && a.style == span.style
                        && a.text
                            .chars()
                            .last()
                            .is_none_or(|l| l.width().unwrap_or(0) <= 1)
                });
            if joins {
                out.last_mut().expect("checked").text.push(c);
            } else if kind != Kind::Break {
                out.push(Atom {
                    text: c.to_string(),
                    style: span.style,
                    kind,
                });
            } else {
                out.push(Atom {
                    text: String::new(),
                    style: span.style,
                    kind,
                });
            }
        }
    }
    out
}

struct LineBuilder {
    spans: Vec<Span<'static>>,
    used: usize,
    content: bool,
}

impl LineBuilder {
    fn new(prefix: &[Span<'static>]) -> Self {
        LineBuilder {
            spans: prefix.to_vec(),
            used: prefix.iter().map(|s| width(&s.content)).sum(),
            content: false,
        }
    }

    fn push(&mut self, text: &str, style: Style) {
        self.used += width(text);
        self.content = true;
        match self.spans.last_mut() {
            Some(last) if last.style == style => last.content.to_mut().push_str(text),
            _ => self.spans.push(Span::styled(text.to_string(), style)),
        }
    }

    fn finish(mut self) -> Line<'static> {
        let many = self.spans.len() > 1;
        if let Some(last) = self.spans.last_mut() {
            let trimmed = last.content.trim_end_matches(' ').len();
            if trimmed == 0 && many {
                self.spans.pop();
            } else {
                last.content.to_mut().truncate(trimmed);
            }
        }
        Line::from(self.spans)
    }
}

/// Wraps `spans` to `width` cells. The first line starts with
/// `first_prefix`, the others with `rest_prefix` (list bullets, quote bars,
/// indentation). `\n` forces a break. Always returns at least one line.
pub fn wrap_spans(
    spans: &[Span<'_>],
    width_cells: usize,
    first_prefix: &[Span<'static>],
    rest_prefix: &[Span<'static>],
) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let mut line = LineBuilder::new(first_prefix);
    // Never narrower than a prefix plus one cell, so every line makes progress.
    let limit = width_cells
        .max(prefix_width(rest_prefix) + 1)
        .max(prefix_width(first_prefix) + 1);
    for atom in atoms(spans) {
        match atom.kind {
            Kind::Break => {
                lines.push(line.finish());
                line = LineBuilder::new(rest_prefix);
            }
            Kind::Space => {
                if line.content && line.used + width(&atom.text) <= limit {
                    line.push(&atom.text, atom.style);
                } else if line.content {
                    lines.push(line.finish());
                    line = LineBuilder::new(rest_prefix);
                }
            }
            Kind::Word => {
                let w = width(&atom.text);
                if line.used + w > limit && line.content {
                    lines.push(line.finish());
                    line = LineBuilder::new(rest_prefix);
                }
                if line.used + w <= limit {
                    line.push(&atom.text, atom.style);
                    continue;
                }
                // A word longer than the line: cut it by characters.
                for c in atom.text.chars() {
                    let cw = c.width().unwrap_or(0);
                    if line.used + cw > limit && line.content {
                        lines.push(line.finish());
                        line = LineBuilder::new(rest_prefix);
                    }
                    let mut buf = [0u8; 4];
                    line.push(c.encode_utf8(&mut buf), atom.style);
                }
            }
        }
    }
    lines.push(line.finish());
    lines
}

fn prefix_width(prefix: &[Span<'static>]) -> usize {
    prefix.iter().map(|s| width(&s.content)).sum()
}

/// Replaces control characters (escape sequences from a model, a file
/// name or a paste) so they are shown, not obeyed.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// Cuts a string to at most `max` cells, ending in `…` when cut; control
/// characters are replaced.
pub fn truncate(s: &str, max: usize) -> String {
    let s = &sanitize(s);
    if width(s) <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > max {
            break;
        }
        used += w;
        out.push(c);
    }
    if max > 0 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(lines: &[Line<'_>]) -> Vec<String> {
        lines
            .iter()
            .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
            .collect()
    }

    #[test]
    fn words_wrap_at_spaces_and_keep_their_styles() {
        let bold = Style::new().bold();
        let spans = [Span::raw("the quick "), Span::styled("brown fox", bold)];
        let lines = wrap_spans(&spans, 10, &[], &[]);
        assert_eq!(plain(&lines), ["the quick", "brown fox"]);
        assert_eq!(lines[1].spans[0].style, bold);
    }

    #[test]
    fn prefixes_start_every_line() {
        let spans = [Span::raw("one two three")];
        let lines = wrap_spans(&spans, 8, &[Span::raw("• ")], &[Span::raw("  ")]);
        assert_eq!(plain(&lines), ["• one", "  two", "  three"]);
    }

    #[test]
    fn cjk_breaks_between_characters_by_cell_width() {
        let spans = [Span::raw("日本語のテキスト")];
        let lines = wrap_spans(&spans, 6, &[], &[]);
        assert_eq!(plain(&lines), ["日本語", "のテキ", "スト"]);
        assert!(lines.iter().all(|l| l.width() <= 6));
    }

    #[test]
    fn long_words_are_cut_and_newlines_break() {
        let spans = [Span::raw("abcdefghij\nx")];
        let lines = wrap_spans(&spans, 4, &[], &[]);
        assert_eq!(plain(&lines), ["abcd", "efgh", "ij", "x"]);
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let lines = wrap_spans(&[Span::raw("a\x1b[2Jb\rc\x07")], 20, &[], &[]);
        assert_eq!(plain(&lines), ["a\u{fffd}[2Jb\u{fffd}c\u{fffd}"]);
    }

    #[test]
    fn truncation_counts_cells() {
        assert_eq!(truncate("hello world", 6), "hello…");
        assert_eq!(truncate("漢字漢字", 5), "漢字…");
        assert_eq!(truncate("ok", 5), "ok");
    }
}
