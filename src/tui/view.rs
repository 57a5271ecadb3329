//! Drawing: a pure function of the app state onto a ratatui frame.

use ratatui::layout::{Alignment, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Padding, Paragraph};
use ratatui::Frame;
use ratatui_image::Image;

use super::app::{App, Flash, ImageState, ModelState};
use super::colors::degrade_buffer;
use super::keymap::{Action, Section, COMMANDS};
use super::layout::screen_layout;
use super::session_list_view::draw_session_list;
use super::side_pane::draw_side_pane;
use super::transcript::{all_rows, spinner, Row};
use super::wrap::{sanitize, truncate, width};

pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    if area.width < 20 || area.height < 6 {
        frame.render_widget(
            Paragraph::new("glimpse: window too small").style(app.theme.dim),
            area,
        );
        return;
    }
    let areas = screen_layout(area, app);
    draw_transcript(frame, areas.transcript, app);
    if let Some(side) = areas.side {
        draw_side_pane(frame, side, &app.gpu_view(), &app.theme);
    }
    if let Some(chips) = areas.chips {
        draw_chips(frame, chips, app);
    }
    if let Some(prompt) = areas.path_prompt {
        draw_path_prompt(frame, prompt, app);
    }
    draw_input(frame, areas.input, app);
    draw_status(frame, areas.status, app);
    if let Some(list) = app.dialog.session_list() {
        draw_session_list(frame, area, app, list);
    }
    if app.dialog.is_help() {
        draw_help(frame, area, app);
    }
    degrade_buffer(frame.buffer_mut(), app.color_depth);
}

fn draw_transcript(frame: &mut Frame, area: Rect, app: &App) {
    let rows = all_rows(app, area.width);
    let height = area.height as usize;
    let max_top = rows.len().saturating_sub(height);
    let top = app.scroll.map(|t| t.min(max_top)).unwrap_or(max_top);
    let visible = rows.range(top, height);
    for (idx, row) in &visible {
        let y = area.y + (idx - top) as u16;
        match row {
            Row::Text(line) => {
                frame.render_widget(
                    Paragraph::new(line.clone()),
                    Rect::new(area.x, y, area.width, 1),
                );
            }
            Row::Image {
                id,
                line,
                cells,
                indent,
            } => {
                let first_row = y as i64 - *line as i64;
                let whole = first_row >= area.y as i64
                    && first_row + cells.1 as i64 <= (area.y + area.height) as i64;
                let preview = app.previews.get(id).filter(|p| p.cells == *cells);
                match (whole, preview.and_then(|p| p.protocol.as_ref())) {
                    (true, Some(proto)) => {
                        if *line == 0 {
                            let pa = proto.area();
                            let r = Rect::new(
                                area.x + indent,
                                y,
                                pa.width.min(area.width.saturating_sub(*indent)),
                                pa.height.min(cells.1),
                            );
                            frame.render_widget(Image::new(proto), r);
                        }
                    }
                    _ => {
                        // Not encoded yet, or cut by the edge of the pane:
                        // graphics protocols cannot draw part of an image.
                        let name = app
                            .images
                            .get(id)
                            .map(|i| i.name.as_str())
                            .unwrap_or("image");
                        let text = if *line == 0 || y == area.y {
                            format!("┆ {name}")
                        } else {
                            "┆".to_string()
                        };
                        frame.render_widget(
                            Paragraph::new(Span::styled(text, app.theme.dim)),
                            Rect::new(area.x + indent, y, area.width.saturating_sub(*indent), 1),
                        );
                    }
                }
            }
        }
    }
    if app.scroll.is_some() && top < max_top {
        let below = max_top - top;
        let hint = format!(
            " ↓ {below} more line{} · {} follows ",
            if below == 1 { "" } else { "s" },
            app.keymap
                .first_label(Action::ScrollBottom)
                .unwrap_or_else(|| "PgDn".into())
        );
        let w = width(&hint) as u16;
        if w < area.width {
            frame.render_widget(
                Paragraph::new(Span::styled(hint, app.theme.status)),
                Rect::new(area.x + area.width - w, area.y + area.height - 1, w, 1),
            );
        }
    }
}

fn draw_chips(frame: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let mut spans = vec![Span::raw(" ")];
    for (n, id) in app.attachments.iter().enumerate() {
        let Some(img) = app.images.get(id) else {
            continue;
        };
        let (detail, style) = match (&img.state, app.budget(*id)) {
            (ImageState::Decoding, _) => ("decoding…".to_string(), t.chip_pending),
            (ImageState::Failed(_), _) => ("unreadable".to_string(), t.error),
            (ImageState::Ready(d), Some(Ok(b))) => (
                format!(
                    "{}×{}→{}×{} · {} tok",
                    d.original.0, d.original.1, b.width, b.height, b.tokens
                ),
                t.chip,
            ),
            (ImageState::Ready(_), Some(Err(e))) => (e, t.error),
            (ImageState::Ready(d), None) => (format!("{}×{}", d.original.0, d.original.1), t.chip),
        };
        spans.push(Span::styled(
            format!(" {} {} {} ", n + 1, truncate(&img.name, 24), detail),
            style,
        ));
        spans.push(Span::raw(" "));
    }
    let remove = app
        .keymap
        .first_label(Action::RemoveAttachment)
        .unwrap_or_default();
    spans.push(Span::styled(
        format!("{remove} removes the last · /drop N"),
        t.dim,
    ));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_path_prompt(frame: &mut Frame, area: Rect, app: &App) {
    let Some(prompt) = app.dialog.path_prompt() else {
        return;
    };
    let t = &app.theme;
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(t.border_focused)
        .title(Span::styled(" Attach image ", t.title))
        .title_bottom(Line::from(Span::styled(
            if prompt.candidates.is_empty() {
                " Tab completes · Enter attaches · Esc closes ".to_string()
            } else {
                format!(" {} ", prompt.candidates.join("  "))
            },
            t.dim,
        )));
    let inner = block.inner(area);
    frame.render_widget(Clear, area);
    frame.render_widget(block, area);
    // Keep the end of a long path (where the typing happens) visible.
    let room = inner.width.saturating_sub(3) as usize;
    let mut shown = sanitize(&prompt.text);
    while width(&shown) > room {
        shown.remove(0);
    }
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("› ", t.dim),
            Span::styled(shown, t.text),
            Span::styled("▏", t.border_focused),
        ])),
        inner,
    );
}

fn draw_input(frame: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let focused = !app.dialog.is_open() && !app.browsing;
    let title = if app.browsing {
        " Browsing the conversation · y copies · p previews · ↑↓ scroll · typing or Esc returns "
    } else if app.is_generating() {
        " Ask · answering, Enter queues the question "
    } else {
        " Ask "
    };
    let mut block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(if focused { t.border_focused } else { t.border })
        .title(Span::styled(title, t.title));
    let bottom = match &app.flash {
        Some(Flash::Error(e)) => Some(Span::styled(format!(" {e} "), t.error)),
        Some(Flash::Info(i)) => Some(Span::styled(format!(" {i} "), t.notice)),
        None => None,
    };
    if let Some(b) = bottom {
        let room = area.width.saturating_sub(4) as usize;
        let text = truncate(&b.content, room);
        block = block.title_bottom(Line::from(Span::styled(text, b.style)));
    } else {
        let hint = format!(
            " Enter sends · {} new line · {} help ",
            app.keymap.first_label(Action::Newline).unwrap_or_default(),
            app.keymap.first_label(Action::Help).unwrap_or_default()
        );
        block =
            block.title_bottom(Line::from(Span::styled(hint, t.dim)).alignment(Alignment::Right));
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if app.browsing {
        // No cursor in the question while keys go to the conversation.
        let lines: Vec<Line> = app
            .input
            .lines()
            .iter()
            .map(|l| Line::from(Span::styled(sanitize(l), t.dim)))
            .collect();
        frame.render_widget(Paragraph::new(lines), inner);
    } else {
        frame.render_widget(&app.input, inner);
    }
}

fn draw_status(frame: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let (model_long, model_short) = status_model(app);
    // Segments in screen order with a rank: when the line is too narrow the
    // highest rank goes first, and the model name is shortened before that.
    let mut segments: Vec<(u8, String, Style)> = vec![
        (1, model_long, t.status_accent),
        (0, status_preset(app), t.status),
    ];
    if let Some(label) = app.thinking_label() {
        segments.push((2, format!(" {label} "), t.status));
    }
    if let Some(c) = status_context(app) {
        segments.push((2, c, t.status));
    }
    if let Some(e) = &app.last_save_error {
        // Kept before everything but the preset: the conversation is at risk.
        segments.insert(1, (0, format!(" ✗ not saved: {e} "), t.error));
    }
    // The default theme goes unmentioned (the help names it); any other is
    // named while there is room, before the speed (the GPU pane shows that too).
    let themed = t.name != "dark";
    let speed = app
        .last_stats
        .as_ref()
        .map(|st| format!(" {:.1} tok/s · TTFT {:.2} s ", st.tok_s, st.ttft_s));
    if let Some(sp) = speed {
        segments.push((if themed { 4 } else { 3 }, sp, t.status));
    }
    if themed {
        segments.push((3, format!(" {} ", t.name), t.status));
    }
    let right = status_right(app);
    let total = area.width as usize;
    let show_right = fit_segments(&mut segments, model_short, width(&right), total);
    let mut spans: Vec<Span> = segments
        .into_iter()
        .map(|(_, text, style)| Span::styled(truncate(&text, total), style))
        .collect();
    let used: usize = spans.iter().map(|s| width(&s.content)).sum();
    if show_right {
        let gap = total.saturating_sub(used + width(&right));
        spans.push(Span::styled(" ".repeat(gap), t.status));
        spans.push(Span::styled(right, t.status_accent));
    } else if used < total {
        spans.push(Span::styled(" ".repeat(total - used), t.status));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// Drops the highest-ranked segments (after shortening the model's name)
/// until they fit `total` columns; whether the right-hand part fits too.
fn fit_segments(
    segments: &mut Vec<(u8, String, Style)>,
    model_short: String,
    right: usize,
    total: usize,
) -> bool {
    let used = |segs: &[(u8, String, Style)]| segs.iter().map(|(_, s, _)| width(s)).sum::<usize>();
    let fitted_whole = used(segments) + right <= total;
    if used(segments) > total {
        segments[0].1 = model_short;
    }
    while used(segments) > total && segments.len() > 1 {
        let worst = segments
            .iter()
            .enumerate()
            .max_by_key(|(_, (rank, _, _))| *rank)
            .map(|(i, _)| i)
            .expect("non-empty");
        segments.remove(worst);
    }
    fitted_whole || used(segments) + right <= total
}

/// The model's part of the status line, long and short.
fn status_model(app: &App) -> (String, String) {
    match &app.model {
        ModelState::Loading { .. } => {
            let l = format!(" {} loading ", spinner(app.tick));
            (l.clone(), l)
        }
        ModelState::Downloading(d) => {
            let l = format!(" {} {} ", spinner(app.tick), d.status());
            (l.clone(), l)
        }
        ModelState::Failed(_) => (" no model ".to_string(), " no model ".to_string()),
        ModelState::Ready(r) => {
            let dir = r
                .info
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let short = format!(
                " {} · {} {} ",
                r.info.family,
                r.info.device,
                r.info.precision()
            );
            (format!(" {dir} ·{short}"), short)
        }
    }
}

fn status_preset(app: &App) -> String {
    let s = &app.settings;
    let modified = app.presets.get(s.preset).is_some_and(|p| !s.matches(p));
    let key = app
        .keymap
        .bindings
        .iter()
        .find(|b| b.action == Action::Preset(s.preset))
        .map(|b| b.chord.label())
        .unwrap_or_default();
    format!(
        " {key} {}{} · {} ",
        s.preset_name,
        if modified { "*" } else { "" },
        s.short()
    )
}

fn status_context(app: &App) -> Option<String> {
    let r = app.ready()?;
    let max = r.info.max_context;
    // The count includes the token being written when the context ends.
    let used = app.context_used.min(max);
    Some(if app.dropped_messages > 0 {
        format!(" ctx {used}/{max} ({} dropped) ", app.dropped_messages)
    } else {
        format!(" ctx {used}/{max} ")
    })
}

fn status_right(app: &App) -> String {
    if app.browsing {
        format!(
            " browsing · {} returns ",
            app.keymap.first_label(Action::Cancel).unwrap_or_default()
        )
    } else if app.is_generating() {
        format!(
            " {} answering · {} stops ",
            spinner(app.tick),
            app.keymap.first_label(Action::Cancel).unwrap_or_default()
        )
    } else {
        format!(
            " {} help ",
            app.keymap.first_label(Action::Help).unwrap_or_default()
        )
    }
}

fn draw_help(frame: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let rows = app.keymap.help_rows(&app.presets);
    let key_w = rows
        .iter()
        .map(|r| width(&r.keys))
        .max()
        .unwrap_or(8)
        .min(28);
    let mut lines: Vec<Line> = Vec::new();
    for section in Section::ALL {
        let in_section: Vec<_> = rows.iter().filter(|r| r.section == section).collect();
        if in_section.is_empty() {
            continue;
        }
        if !lines.is_empty() {
            lines.push(Line::default());
        }
        lines.push(Line::from(Span::styled(section.title(), t.heading)));
        for r in in_section {
            let pad = key_w.saturating_sub(width(&r.keys));
            lines.push(Line::from(vec![
                Span::styled(format!("  {}{}", r.keys, " ".repeat(pad)), t.help_key),
                Span::styled(format!("  {}", r.description), t.text),
            ]));
        }
    }
    lines.push(Line::default());
    lines.push(Line::from(Span::styled("Commands", t.heading)));
    for (cmd, what) in COMMANDS {
        let pad = key_w.saturating_sub(width(cmd));
        lines.push(Line::from(vec![
            Span::styled(format!("  {cmd}{}", " ".repeat(pad)), t.help_key),
            Span::styled(format!("  {what}"), t.text),
        ]));
    }
    lines.push(Line::default());
    for note in [
        "* only while the input is empty",
        "† only while browsing the conversation (Esc when no answer runs; typing returns)",
        "The mouse wheel scrolls · pasting an image path attaches it",
    ] {
        lines.push(Line::from(Span::styled(note, t.dim)));
    }

    let w = area.width.saturating_sub(4).min(102);
    let h = area.height.saturating_sub(2).min(lines.len() as u16 + 2);
    let r = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let max_scroll = (lines.len() as u16).saturating_sub(h.saturating_sub(2));
    let scroll = app.dialog.help_scroll().unwrap_or(0).min(max_scroll);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(t.border_focused)
        .padding(Padding::horizontal(1))
        .title(Span::styled(format!(" Keys · theme {} ", t.name), t.title))
        .title_bottom(
            Line::from(Span::styled(" Esc, ? or F12 closes · ↑↓ scroll ", t.dim))
                .alignment(Alignment::Right),
        );
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .style(Style::default())
            .scroll((scroll, 0)),
        r,
    );
}
