//! The side pane, reserved for the GPU view. Until live samples exist it
//! shows the device facts that are known; the GPU view replaces
//! [`draw_device_facts`] and extends [`DeviceFacts`].

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Frame;

use super::theme::Theme;

/// What is known about the machine the model runs on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceFacts {
    /// `cpu`, `cuda:0`, … (`None` while the model loads).
    pub device: Option<String>,
    pub dtype: Option<String>,
    pub max_context: Option<usize>,
    /// Threads the CPU math may use.
    pub cpu_threads: usize,
    /// How previews are drawn: kitty, iterm2, sixel or halfblocks.
    pub image_protocol: String,
}

pub fn draw_device_facts(frame: &mut Frame, area: Rect, facts: &DeviceFacts, theme: &Theme) {
    let block = Block::default()
        .borders(Borders::LEFT)
        .border_style(theme.border)
        .title(Span::styled(" Device ", theme.title));
    let unknown = || "…".to_string();
    let row = |k: &str, v: String| {
        Line::from(vec![
            Span::styled(format!("{k:<9}"), theme.dim),
            Span::styled(v, theme.text),
        ])
    };
    let mut lines = vec![
        Line::default(),
        row("device", facts.device.clone().unwrap_or_else(unknown)),
        row("dtype", facts.dtype.clone().unwrap_or_else(unknown)),
        row(
            "context",
            facts
                .max_context
                .map(|c| format!("{c} tokens"))
                .unwrap_or_else(unknown),
        ),
        row("threads", facts.cpu_threads.to_string()),
        row("images", facts.image_protocol.clone()),
        Line::default(),
    ];
    let note = match facts.device.as_deref() {
        None => "",
        Some(d) if d.starts_with("cuda") => "GPU samples: not collected yet",
        Some(_) => "no GPU in use: the model runs on the CPU",
    };
    lines.push(Line::from(Span::styled(note, theme.dim)));
    frame.render_widget(
        Paragraph::new(lines).block(block).wrap(Wrap { trim: true }),
        area,
    );
}
