//! Replies rendered from Markdown into wrapped, styled terminal lines:
//! headings, emphasis, lists, quotes, tables, rules and highlighted code.

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};

use super::highlight::highlight;
use super::theme::Theme;
use super::wrap::{truncate, width, wrap_spans};

/// Renders `text` to lines no wider than `width` cells.
pub fn render(text: &str, width_cells: usize, theme: &Theme) -> Vec<Line<'static>> {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut r = Renderer::new(width_cells.max(8), theme);
    for event in Parser::new_ext(text, options) {
        r.event(event);
    }
    r.flush();
    r.lines
}

enum Container {
    Quote,
    Item { bullet: String, used: bool },
}

#[derive(Default)]
struct Table {
    rows: Vec<Vec<Vec<Span<'static>>>>,
    header_rows: usize,
    in_header: bool,
}

struct Renderer<'t> {
    theme: &'t Theme,
    width: usize,
    lines: Vec<Line<'static>>,
    inline: Vec<Span<'static>>,
    styles: Vec<Style>,
    containers: Vec<Container>,
    lists: Vec<Option<u64>>,
    code: Option<(String, String)>,
    table: Option<Table>,
    links: Vec<(usize, String)>,
}

impl<'t> Renderer<'t> {
    fn new(width: usize, theme: &'t Theme) -> Self {
        Renderer {
            theme,
            width,
            lines: Vec::new(),
            inline: Vec::new(),
            styles: vec![theme.text],
            containers: Vec::new(),
            lists: Vec::new(),
            code: None,
            table: None,
            links: Vec::new(),
        }
    }

    fn style(&self) -> Style {
        *self.styles.last().expect("base style")
    }

    fn push_style(&mut self, s: Style) {
        let merged = self.style().patch(s);
        self.styles.push(merged);
    }

    fn pop_style(&mut self) {
        if self.styles.len() > 1 {
            self.styles.pop();
        }
    }

    /// Prefixes for the first and the following lines of the next block;
    /// using them consumes a pending list bullet.
    fn prefixes(&mut self) -> (Vec<Span<'static>>, Vec<Span<'static>>) {
        let mut first = Vec::new();
        let mut rest = Vec::new();
        let quote = self.theme.quote;
        let dim = self.theme.dim;
        for c in &mut self.containers {
            match c {
                Container::Quote => {
                    first.push(Span::styled("│ ", quote));
                    rest.push(Span::styled("│ ", quote));
                }
                Container::Item { bullet, used } => {
                    let pad = " ".repeat(width(bullet));
                    if *used {
                        first.push(Span::raw(pad.clone()));
                    } else {
                        first.push(Span::styled(bullet.clone(), dim));
                        *used = true;
                    }
                    rest.push(Span::raw(pad));
                }
            }
        }
        (first, rest)
    }

    fn quote_prefix(&self) -> Vec<Span<'static>> {
        self.containers
            .iter()
            .filter(|c| matches!(c, Container::Quote))
            .map(|_| Span::styled("│ ", self.theme.quote))
            .collect()
    }

    /// An empty line between blocks, except at the start of a list item.
    fn gap(&mut self) {
        let item_start = matches!(
            self.containers.last(),
            Some(Container::Item { used: false, .. })
        );
        if !self.lines.is_empty() && !item_start {
            self.lines.push(Line::from(self.quote_prefix()));
        }
    }

    fn flush(&mut self) {
        if self.inline.is_empty() {
            return;
        }
        let spans = std::mem::take(&mut self.inline);
        let (first, rest) = self.prefixes();
        self.lines
            .extend(wrap_spans(&spans, self.width, &first, &rest));
    }

    fn text(&mut self, t: &str) {
        if let Some((_, buf)) = &mut self.code {
            buf.push_str(t);
            return;
        }
        let style = self.style();
        self.inline.push(Span::styled(t.to_string(), style));
    }

    fn cell_target(&mut self) -> Option<&mut Vec<Span<'static>>> {
        self.table
            .as_mut()
            .and_then(|t| t.rows.last_mut())
            .and_then(|r| r.last_mut())
    }

    fn event(&mut self, event: Event<'_>) {
        // Inside a table cell, inline content goes to the cell.
        if self.table.is_some() {
            if let Some(done) = self.table_event(&event) {
                if done {
                    return;
                }
            }
        }
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(t) => self.text(&t),
            Event::Code(t) => {
                let style = self.style().patch(self.theme.inline_code);
                self.inline.push(Span::styled(t.to_string(), style));
            }
            Event::Html(t) | Event::InlineHtml(t) => self.text(&t),
            Event::SoftBreak => self.text(" "),
            Event::HardBreak => self.text("\n"),
            Event::Rule => {
                self.flush();
                self.gap();
                let mut line = self.quote_prefix();
                let used: usize = line.iter().map(|s| width(&s.content)).sum();
                line.push(Span::styled(
                    "─".repeat(self.width.saturating_sub(used)),
                    self.theme.dim,
                ));
                self.lines.push(Line::from(line));
            }
            Event::TaskListMarker(done) => {
                let mark = if done { "[x] " } else { "[ ] " };
                let style = self.theme.dim;
                self.inline.push(Span::styled(mark, style));
            }
            Event::FootnoteReference(_) | Event::InlineMath(_) | Event::DisplayMath(_) => {}
        }
    }

    /// Handles events while a table is open; `Some(true)` when consumed.
    fn table_event(&mut self, event: &Event<'_>) -> Option<bool> {
        let style = self.style();
        let code = self.theme.inline_code;
        match event {
            Event::Start(Tag::TableHead) => {
                let t = self.table.as_mut()?;
                t.in_header = true;
                t.rows.push(Vec::new());
            }
            Event::End(TagEnd::TableHead) => {
                let t = self.table.as_mut()?;
                t.in_header = false;
                t.header_rows = t.rows.len();
            }
            Event::Start(Tag::TableRow) => self.table.as_mut()?.rows.push(Vec::new()),
            Event::Start(Tag::TableCell) => self.table.as_mut()?.rows.last_mut()?.push(Vec::new()),
            Event::End(TagEnd::TableRow) | Event::End(TagEnd::TableCell) => {}
            Event::Text(t) => self.cell_target()?.push(Span::styled(t.to_string(), style)),
            Event::Code(t) => self
                .cell_target()?
                .push(Span::styled(t.to_string(), style.patch(code))),
            Event::SoftBreak | Event::HardBreak => self.cell_target()?.push(Span::raw(" ")),
            Event::End(TagEnd::Table) => {
                let t = self.table.take()?;
                self.render_table(t);
            }
            _ => return Some(false),
        }
        Some(true)
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph => {
                self.flush();
                self.gap();
            }
            Tag::Heading { level, .. } => {
                self.flush();
                self.gap();
                let mut s = self.theme.heading;
                if level == HeadingLevel::H1 {
                    s = s.add_modifier(Modifier::UNDERLINED);
                }
                self.push_style(s);
            }
            Tag::BlockQuote(_) => {
                self.flush();
                self.gap();
                self.containers.push(Container::Quote);
                self.push_style(self.theme.quote);
            }
            Tag::CodeBlock(kind) => {
                self.flush();
                self.gap();
                let lang = match kind {
                    CodeBlockKind::Fenced(l) => l.to_string(),
                    CodeBlockKind::Indented => String::new(),
                };
                self.code = Some((lang, String::new()));
            }
            Tag::List(start) => {
                self.flush();
                if self.lists.is_empty() {
                    self.gap();
                }
                self.lists.push(start);
            }
            Tag::Item => {
                self.flush();
                let bullet = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let b = format!("{n}. ");
                        *n += 1;
                        b
                    }
                    _ => "• ".to_string(),
                };
                self.containers.push(Container::Item {
                    bullet,
                    used: false,
                });
            }
            Tag::Emphasis => self.push_style(self.theme.emphasis),
            Tag::Strong => self.push_style(self.theme.strong),
            Tag::Strikethrough => self.push_style(Style::new().add_modifier(Modifier::CROSSED_OUT)),
            Tag::Link { dest_url, .. } => {
                self.links.push((self.inline.len(), dest_url.to_string()));
                self.push_style(self.theme.link);
            }
            Tag::Image { dest_url, .. } => {
                self.text("[image: ");
                self.links.push((self.inline.len(), dest_url.to_string()));
            }
            Tag::Table(_) => {
                self.flush();
                self.gap();
                self.table = Some(Table::default());
            }
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph => self.flush(),
            TagEnd::Heading(_) => {
                self.flush();
                self.pop_style();
            }
            TagEnd::BlockQuote(_) => {
                self.flush();
                self.containers.pop();
                self.pop_style();
            }
            TagEnd::CodeBlock => {
                if let Some((lang, code)) = self.code.take() {
                    self.render_code(&lang, &code);
                }
            }
            TagEnd::List(_) => {
                self.flush();
                self.lists.pop();
            }
            TagEnd::Item => {
                self.flush();
                self.containers.pop();
            }
            TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough => self.pop_style(),
            TagEnd::Link => {
                self.pop_style();
                if let Some((start, url)) = self.links.pop() {
                    let text: String = self.inline[start..]
                        .iter()
                        .map(|s| s.content.as_ref())
                        .collect();
                    if !url.is_empty() && text != url {
                        let dim = self.theme.dim;
                        self.inline.push(Span::styled(format!(" ({url})"), dim));
                    }
                }
            }
            TagEnd::Image => {
                self.links.pop();
                self.text("]");
            }
            _ => {}
        }
    }

    fn render_code(&mut self, lang: &str, code: &str) {
        let bar = self.theme.dim;
        let label = if lang.is_empty() { "code" } else { lang };
        let (first, rest) = self.prefixes();
        let mut head = first;
        head.push(Span::styled(format!("╭─ {label}"), bar));
        self.lines.push(Line::from(head));
        let mut prefix = rest.clone();
        prefix.push(Span::styled("│ ", bar));
        for spans in highlight(code, lang, self.theme.syntax_theme, self.theme.code_block) {
            if spans.is_empty() {
                self.lines.push(Line::from(prefix.clone()));
            } else {
                self.lines.extend(wrap_code(&spans, self.width, &prefix));
            }
        }
        let mut foot = rest;
        foot.push(Span::styled("╰─", bar));
        self.lines.push(Line::from(foot));
    }

    fn render_table(&mut self, table: Table) {
        let cols = table.rows.iter().map(Vec::len).max().unwrap_or(0);
        if cols == 0 {
            return;
        }
        let cell_text = |c: &Vec<Span<'static>>| -> String {
            c.iter()
                .map(|s| s.content.as_ref())
                .collect::<String>()
                .trim()
                .to_string()
        };
        let mut widths = vec![1usize; cols];
        for row in &table.rows {
            for (i, c) in row.iter().enumerate() {
                widths[i] = widths[i].max(width(&cell_text(c)));
            }
        }
        let (first, rest) = self.prefixes();
        let prefix_w: usize = first.iter().map(|s| width(&s.content)).sum();
        let avail = self
            .width
            .saturating_sub(prefix_w + 3 * (cols - 1))
            .max(cols * 3);
        // Shrink the widest column until the table fits.
        while widths.iter().sum::<usize>() > avail {
            let (i, w) = widths
                .iter()
                .copied()
                .enumerate()
                .max_by_key(|&(_, w)| w)
                .expect("cols > 0");
            if w <= 3 {
                break;
            }
            widths[i] = w - 1;
        }
        let sep = self.theme.table_border;
        for (r, row) in table.rows.iter().enumerate() {
            let mut line = if r == 0 { first.clone() } else { rest.clone() };
            for (i, w) in widths.iter().enumerate() {
                if i > 0 {
                    line.push(Span::styled(" │ ", sep));
                }
                let (text, style) = match row.get(i) {
                    Some(c) => (cell_text(c), c.first().map(|s| s.style).unwrap_or_default()),
                    None => (String::new(), Style::default()),
                };
                let style = if r < table.header_rows {
                    style.patch(self.theme.strong)
                } else {
                    style
                };
                let t = truncate(&text, *w);
                let pad = w.saturating_sub(width(&t));
                line.push(Span::styled(format!("{t}{}", " ".repeat(pad)), style));
            }
            self.lines.push(Line::from(line));
            if r + 1 == table.header_rows {
                let mut rule = rest.clone();
                let parts: Vec<String> = widths.iter().map(|w| "─".repeat(*w)).collect();
                rule.push(Span::styled(parts.join("─┼─"), sep));
                self.lines.push(Line::from(rule));
            }
        }
    }
}

/// Code keeps its spaces: wrap by cells only, never at words.
fn wrap_code(
    spans: &[Span<'static>],
    width_cells: usize,
    prefix: &[Span<'static>],
) -> Vec<Line<'static>> {
    let prefix_w: usize = prefix.iter().map(|s| width(&s.content)).sum();
    let room = width_cells.saturating_sub(prefix_w).max(1);
    let mut lines = Vec::new();
    let mut line = prefix.to_vec();
    let mut used = 0;
    for span in spans {
        let mut chunk = String::new();
        for c in span.content.chars() {
            let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
            if used + w > room {
                if !chunk.is_empty() {
                    line.push(Span::styled(std::mem::take(&mut chunk), span.style));
                }
                lines.push(Line::from(std::mem::replace(&mut line, prefix.to_vec())));
                used = 0;
            }
            chunk.push(c);
            used += w;
        }
        if !chunk.is_empty() {
            line.push(Span::styled(chunk, span.style));
        }
    }
    lines.push(Line::from(line));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(text: &str, width: usize) -> Vec<String> {
        render(text, width, &Theme::default())
            .iter()
            .map(|l| {
                l.spans
                    .iter()
                    .map(|s| s.content.as_ref())
                    .collect::<String>()
            })
            .collect()
    }

    #[test]
    fn paragraphs_headings_and_lists() {
        let out = plain(
            "# Title\n\nSome *text* here.\n\n- one\n- two\n\n1. first\n2. second",
            40,
        );
        assert_eq!(
            out,
            [
                "Title",
                "",
                "Some text here.",
                "",
                "• one",
                "• two",
                "",
                "1. first",
                "2. second"
            ]
        );
    }

    #[test]
    fn emphasis_is_styled_not_printed() {
        let lines = render("a **bold** and *it*", 40, &Theme::default());
        let bold = lines[0]
            .spans
            .iter()
            .find(|s| s.content == "bold")
            .expect("bold span");
        assert!(bold.style.add_modifier.contains(Modifier::BOLD));
        let it = lines[0]
            .spans
            .iter()
            .find(|s| s.content == "it")
            .expect("italic span");
        assert!(it.style.add_modifier.contains(Modifier::ITALIC));
    }

    #[test]
    fn list_items_wrap_under_their_bullet() {
        let out = plain("- alpha beta gamma delta", 14);
        assert_eq!(out, ["• alpha beta", "  gamma delta"]);
    }

    #[test]
    fn code_blocks_are_framed_and_keep_indentation() {
        let out = plain("```rust\nfn f() {\n    1\n}\n```", 30);
        assert_eq!(out, ["╭─ rust", "│ fn f() {", "│     1", "│ }", "╰─"]);
    }

    #[test]
    fn tables_align_columns() {
        let out = plain("| a | bb |\n|---|---|\n| ccc | d |", 30);
        assert_eq!(out, ["a   │ bb", "────┼───", "ccc │ d "]);
    }

    #[test]
    fn wide_tables_shrink_to_the_width() {
        let out = plain(
            "| a | b |\n|---|---|\n| a long cell here | another long cell |",
            20,
        );
        assert!(out.iter().all(|l| width(l) <= 20), "{out:?}");
    }

    #[test]
    fn quotes_and_links() {
        let out = plain("> quoted\n\n[site](https://x.org)", 40);
        assert_eq!(out, ["│ quoted", "", "site (https://x.org)"]);
    }

    #[test]
    fn unfinished_markdown_while_streaming_still_renders() {
        let out = plain("Here:\n\n```py\nprint(1", 40);
        assert_eq!(out, ["Here:", "", "╭─ py", "│ print(1", "╰─"]);
    }
}
