//! The side pane: the live GPU view (or the CPU's facts where there is no
//! NVIDIA GPU), in the chat's colours.

use ratatui::layout::Rect;
use ratatui::Frame;

use super::theme::Theme;
use crate::gpu::pane::{draw_gpu_pane, GpuView, PaneStyles};

pub fn pane_styles(theme: &Theme) -> PaneStyles {
    PaneStyles {
        border: theme.border,
        title: theme.title,
        text: theme.text,
        dim: theme.dim,
        highlight: theme.status_accent,
        ..PaneStyles::default()
    }
}

pub fn draw_side_pane(frame: &mut Frame, area: Rect, view: &GpuView, theme: &Theme) {
    draw_gpu_pane(frame, area, view, &pane_styles(theme));
}
