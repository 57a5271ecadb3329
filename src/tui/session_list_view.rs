//! Drawing the saved sessions overlay: newest first, one line each, files
//! that cannot be read listed as such at the end. Titles, models and file
//! names come from files anyone could have written, so they are shown with
//! their control characters escaped.

use ratatui::layout::{Alignment, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Padding, Paragraph};
use ratatui::Frame;

use super::app::{App, SessionList};
use super::wrap::{truncate, width};
use crate::human::printable;
use crate::session::store::{SessionSummary, Unreadable};

pub fn draw_session_list(frame: &mut Frame, area: Rect, app: &App, list: &SessionList) {
    let t = &app.theme;
    let w = area.width.saturating_sub(4).min(110);
    let inner_w = w.saturating_sub(4) as usize;
    let wanted = (list.rows().max(1) as u16).saturating_add(2);
    let h = area.height.saturating_sub(2).min(wanted.max(3));
    let r = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let visible = h.saturating_sub(2) as usize;
    let lines: Vec<Line> = match &list.listing {
        None => vec![Line::from(Span::styled(
            "reading the session folder…",
            t.dim,
        ))],
        Some(Err(e)) => vec![Line::from(Span::styled(e.clone(), t.error))],
        Some(Ok(l)) if l.sessions.is_empty() && l.unreadable.is_empty() => {
            vec![Line::from(Span::styled(
                "no saved sessions yet: every conversation is saved as it goes",
                t.dim,
            ))]
        }
        Some(Ok(l)) => {
            let top = list.selected.saturating_sub(visible.saturating_sub(1));
            let current = app.session_id.as_deref();
            let columns = Columns {
                room: inner_w,
                model: l
                    .sessions
                    .iter()
                    .map(|s| width(&printable(short_model(&s.model))).min(MODEL_WIDTH))
                    .max()
                    .unwrap_or(0),
                turns: l
                    .sessions
                    .iter()
                    .map(|s| width(&turns(s.turns)))
                    .max()
                    .unwrap_or(0),
            };
            let readable = l
                .sessions
                .iter()
                .map(|s| session_line(s, current == Some(s.id.as_str()), &columns, app));
            let unreadable = l
                .unreadable
                .iter()
                .map(|u| unreadable_line(u, inner_w, app));
            readable
                .chain(unreadable)
                .enumerate()
                .skip(top)
                .take(visible)
                .map(|(i, line)| {
                    if i == list.selected {
                        let spans: Vec<Span> = line
                            .spans
                            .into_iter()
                            .map(|s| Span::styled(s.content, t.status_accent))
                            .collect();
                        Line::from(spans)
                    } else {
                        line
                    }
                })
                .collect()
        }
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(t.border_focused)
        .padding(Padding::horizontal(1))
        .title(Span::styled(" Sessions ", t.title))
        .title_bottom(
            Line::from(Span::styled(
                " ↑↓ choose · Enter opens · Esc closes ",
                t.dim,
            ))
            .alignment(Alignment::Right),
        );
    frame.render_widget(Clear, r);
    frame.render_widget(Paragraph::new(lines).block(block), r);
}

const MODEL_WIDTH: usize = 24;

/// Widths shared by every row, so the columns line up.
struct Columns {
    room: usize,
    model: usize,
    turns: usize,
}

fn turns(n: usize) -> String {
    format!("{n} turn{}", if n == 1 { "" } else { "s" })
}

fn pad_to(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(width(s))))
}

/// `• 2025-01-31 09:05 UTC  What is on the shelf?   Qwen3-VL-4B-Instruct  3 turns`
fn session_line(s: &SessionSummary, current: bool, c: &Columns, app: &App) -> Line<'static> {
    let t = &app.theme;
    let mark = if current { "• " } else { "  " };
    let date = s.updated.human();
    let model = truncate(&printable(short_model(&s.model)), MODEL_WIDTH);
    let fixed = width(mark) + width(&date) + 2 + 2 + c.model + 2 + c.turns;
    let title_room = c.room.saturating_sub(fixed).max(8);
    let title = truncate(&printable(&s.title), title_room);
    Line::from(vec![
        Span::styled(mark, t.help_key),
        Span::styled(date, t.dim),
        Span::raw("  "),
        Span::styled(pad_to(&title, title_room), t.text),
        Span::raw("  "),
        Span::styled(pad_to(&model, c.model), t.dim),
        Span::raw("  "),
        Span::styled(pad_to(&turns(s.turns), c.turns), t.dim),
    ])
}

fn unreadable_line(u: &Unreadable, room: usize, app: &App) -> Line<'static> {
    let t = &app.theme;
    let name = u
        .path()
        .file_name()
        .map(|n| printable(&n.to_string_lossy()).into_owned())
        .unwrap_or_default();
    let why = match u {
        Unreadable::Corrupt { .. } => "damaged, left untouched".to_string(),
        Unreadable::Newer { found, .. } => {
            format!("written by a newer glimpse (format {found}), left untouched")
        }
    };
    Line::from(vec![
        Span::styled("✗ ", t.error),
        Span::styled(
            truncate(&format!("{name}: {why}"), room.saturating_sub(2)),
            t.error,
        ),
    ])
}

/// The last part of a hub id or a directory: `Qwen3-VL-4B-Instruct`.
fn short_model(model: &str) -> &str {
    model
        .trim_end_matches(['/', '\\'])
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(model)
}
