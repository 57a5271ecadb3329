//! The GPU pane as a pure ratatui widget over plain data: each GPU with its
//! utilisation and memory (gauge + one-minute sparkline), temperature, power,
//! SM clock and the processes on it (this glimpse marked), the one in use
//! marked; or, without an NVIDIA GPU, the sentence that says glimpse runs on
//! the CPU and the CPU's facts. When a server answers, a "remote" block
//! comes first: the server, the model, the last answer's speed and, where
//! the server publishes them, its KV-cache use and queue. The KV-cache format
//! and live tokens/s close it.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Sparkline, Widget};
use ratatui::Frame;

use super::{no_gpu_line, CpuFacts, GpuSample, History};
use crate::human::gib;

/// Everything the pane shows, detached from the sampler.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GpuView {
    /// Every GPU of the latest sample; empty when there is none.
    pub gpus: Vec<GpuRow>,
    /// Why there is no GPU (shown under the "running on CPU" line).
    pub absent_reason: Option<String>,
    pub cpu: Option<CpuFacts>,
    /// NVML index of the GPU the model runs on; `None` on the CPU.
    pub in_use: Option<u32>,
    /// The KV cache's current format, e.g. `bf16` or `int8 (auto, at 86 %)`.
    pub kv_cache: Option<String>,
    /// Decode speed of the answer being generated.
    pub tokens_per_s: Option<f64>,
    /// The server answering instead of a model here.
    pub remote: Option<RemoteView>,
}

/// The server that answers, as the pane shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RemoteView {
    pub server: String,
    pub model: String,
    /// The last answer's time to first token and decode speed, measured
    /// here (so the network is included).
    pub ttft_s: Option<f64>,
    pub tokens_per_s: Option<f64>,
    /// From the server's `/metrics`, when it publishes them: the KV cache
    /// in use (0 to 1) and the requests waiting and running.
    pub kv_cache_use: Option<f64>,
    pub waiting: Option<u64>,
    pub running: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GpuRow {
    pub sample: GpuSample,
    /// Utilisation in percent, oldest first.
    pub utilization: Vec<u64>,
    /// Memory use in percent of the card, oldest first.
    pub memory_pct: Vec<u64>,
}

impl GpuView {
    /// The view of a sampler history's latest sample, with its sparklines.
    pub fn from_history(
        history: &History,
        in_use: Option<u32>,
        kv_cache: Option<String>,
        tokens_per_s: Option<f64>,
    ) -> GpuView {
        let Some(latest) = history.latest() else {
            return GpuView {
                in_use,
                kv_cache,
                tokens_per_s,
                ..Default::default()
            };
        };
        let gpus = latest
            .gpus
            .devices()
            .iter()
            .map(|d| GpuRow {
                sample: d.clone(),
                utilization: history.series(d.index, |s| s.utilization_pct.map(u64::from)),
                memory_pct: history.series(d.index, |s| {
                    Some((s.memory_fraction() * 100.0).round() as u64)
                }),
            })
            .collect();
        let absent_reason = match &latest.gpus {
            super::GpuState::Absent { reason } => Some(reason.clone()),
            super::GpuState::Present { .. } => None,
        };
        GpuView {
            gpus,
            absent_reason,
            cpu: Some(latest.cpu.clone()),
            in_use,
            kv_cache,
            tokens_per_s,
            remote: None,
        }
    }
}

/// The pane's colours; the TUI's theme fills these in.
#[derive(Debug, Clone, PartialEq)]
pub struct PaneStyles {
    pub border: Style,
    pub title: Style,
    pub text: Style,
    pub dim: Style,
    /// The GPU in use and the "running on CPU" line.
    pub highlight: Style,
    pub gauge: Style,
    pub sparkline: Style,
}

impl Default for PaneStyles {
    fn default() -> Self {
        PaneStyles {
            border: Style::default().fg(Color::DarkGray),
            title: Style::default().add_modifier(Modifier::BOLD),
            text: Style::default(),
            dim: Style::default().fg(Color::DarkGray),
            highlight: Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
            gauge: Style::default().fg(Color::Green).bg(Color::Black),
            sparkline: Style::default().fg(Color::Cyan),
        }
    }
}

/// Rows the pane needs to show everything in `view`, borders included.
pub fn pane_height(view: &GpuView) -> u16 {
    let styles = PaneStyles::default();
    (rows(view, &styles).len() + usize::from(footer(view, &styles).is_some()) + 2) as u16
}

/// The pane as plain text lines (for `glimpse devices` and logs).
pub fn pane_text(view: &GpuView, width: u16) -> Vec<String> {
    let area = Rect::new(0, 0, width, pane_height(view));
    let mut buf = Buffer::empty(area);
    GpuPane {
        view,
        styles: &PaneStyles::default(),
    }
    .render(area, &mut buf);
    (area.top()..area.bottom())
        .map(|y| {
            (area.left()..area.right())
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect()
}

/// Draws the pane into `area` of the frame.
pub fn draw_gpu_pane(frame: &mut Frame, area: Rect, view: &GpuView, styles: &PaneStyles) {
    frame.render_widget(GpuPane { view, styles }, area);
}

/// The pane as a widget, for drawing straight into a buffer.
pub struct GpuPane<'a> {
    pub view: &'a GpuView,
    pub styles: &'a PaneStyles,
}

/// One line of the pane.
enum Row<'a> {
    Text(Line<'a>),
    /// Label, fill ratio, the gauge's label, sparkline values (max 100).
    Meter(&'static str, f64, String, &'a [u64]),
}

const LABEL_WIDTH: u16 = 7;
/// Room for ` 123.4/140.0 GiB`.
const VALUE_WIDTH: u16 = 16;

impl Widget for GpuPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let s = self.styles;
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(s.border)
            .title(Span::styled(" GPU ", s.title));
        let inner = block.inner(area);
        block.render(area, buf);
        if inner.is_empty() {
            return;
        }
        let body = wrap_text_rows(rows(self.view, s), inner.width);
        let footer = footer(self.view, s);
        let body_height = inner.height.saturating_sub(footer.is_some() as u16);
        for (i, row) in body.iter().take(body_height as usize).enumerate() {
            let r = Rect {
                y: inner.y + i as u16,
                height: 1,
                ..inner
            };
            draw_row(row, r, buf, s);
        }
        if let Some(line) = footer {
            let r = Rect {
                y: inner.bottom() - 1,
                height: 1,
                ..inner
            };
            Paragraph::new(line).render(r, buf);
        }
    }
}

/// Text rows too wide for the pane continue on the next rows, broken at
/// spaces, in the style of their first span (a narrow side pane must not cut
/// off the "running on CPU" line or the reason).
fn wrap_text_rows(rows: Vec<Row<'_>>, width: u16) -> Vec<Row<'_>> {
    let width = usize::from(width.max(1));
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        match row {
            Row::Text(line) if line.width() > width => {
                let style = line.spans.first().map(|s| s.style).unwrap_or_default();
                let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
                for piece in wrap_words(&text, width) {
                    out.push(Row::Text(Line::styled(piece, style)));
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Greedy word wrap by characters; a word longer than `width` is split.
fn wrap_words(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let mut word: Vec<char> = word.chars().collect();
        let used = current.chars().count();
        if used > 0 && used + 1 + word.len() > width {
            lines.push(std::mem::take(&mut current));
        }
        while word.len() > width {
            if !current.is_empty() {
                lines.push(std::mem::take(&mut current));
            }
            lines.push(word.drain(..width).collect());
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.extend(word);
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

fn rows<'a>(view: &'a GpuView, s: &PaneStyles) -> Vec<Row<'a>> {
    let mut out = Vec::new();
    if let Some(remote) = &view.remote {
        out.extend(remote_rows(remote, s));
        out.push(Row::Text(Line::raw("")));
    }
    if view.gpus.is_empty() {
        out.extend(cpu_rows(view, s));
        return out;
    }
    for (k, row) in view.gpus.iter().enumerate() {
        if k > 0 {
            out.push(Row::Text(Line::raw("")));
        }
        out.extend(gpu_rows(row, view.in_use == Some(row.sample.index), s));
    }
    out
}

/// The server in use, its model, the last answer's speed and the load the
/// server reports.
fn remote_rows<'a>(r: &RemoteView, s: &PaneStyles) -> Vec<Row<'a>> {
    let mut out = vec![
        Row::Text(Line::from(vec![
            Span::styled("▶ remote", s.highlight),
            Span::styled("  in use", s.highlight),
        ])),
        Row::Text(Line::styled(format!("  {}", r.server), s.text)),
        Row::Text(Line::styled(format!("  {}", r.model), s.text)),
    ];
    let mut last = Vec::new();
    if let Some(t) = r.ttft_s.filter(|t| *t > 0.0) {
        last.push(format!("first token {t:.2} s"));
    }
    if let Some(t) = r.tokens_per_s.filter(|t| *t > 0.0) {
        last.push(format!("{t:.1} tokens/s"));
    }
    if !last.is_empty() {
        out.push(Row::Text(Line::styled(
            format!("  last answer: {}", last.join(" · ")),
            s.text,
        )));
    }
    if let Some(kv) = r.kv_cache_use {
        out.push(Row::Meter(
            "KV",
            kv.clamp(0.0, 1.0),
            format!("{:.0} %", kv * 100.0),
            &[],
        ));
    }
    let queue: Vec<String> = [(r.waiting, "waiting"), (r.running, "running")]
        .into_iter()
        .filter_map(|(n, what)| n.map(|n| format!("{n} {what}")))
        .collect();
    if !queue.is_empty() {
        out.push(Row::Text(Line::styled(
            format!("  queue {}", queue.join(" · ")),
            s.text,
        )));
    }
    out
}

/// Without an NVIDIA GPU: the CPU, system memory and glimpse's own share.
fn cpu_rows<'a>(view: &'a GpuView, s: &PaneStyles) -> Vec<Row<'a>> {
    let Some(cpu) = &view.cpu else {
        return vec![Row::Text(Line::styled("reading the devices…", s.dim))];
    };
    // With a server answering, this machine only shows the conversation.
    let first = match view.remote {
        Some(_) => Row::Text(Line::styled(
            format!("no NVIDIA GPU here ({} CPU threads)", cpu.threads),
            s.text,
        )),
        None => Row::Text(Line::styled(no_gpu_line(cpu.threads), s.highlight)),
    };
    let mut out = vec![first];
    if let Some(model) = &cpu.model {
        out.push(Row::Text(Line::styled(model.clone(), s.text)));
    }
    if let (Some(total), Some(avail)) = (cpu.memory_total, cpu.memory_available) {
        let used = total.saturating_sub(avail);
        out.push(Row::Meter(
            "mem",
            used as f64 / total.max(1) as f64,
            used_of(used, total),
            &[],
        ));
    }
    if let Some(rss) = cpu.own_resident {
        out.push(Row::Text(Line::styled(
            format!("glimpse holds {}", gib(rss)),
            s.text,
        )));
    }
    if let Some(reason) = &view.absent_reason {
        out.push(Row::Text(Line::styled(format!("({reason})"), s.dim)));
    }
    out
}

fn gpu_rows<'a>(row: &'a GpuRow, in_use: bool, s: &PaneStyles) -> Vec<Row<'a>> {
    let d = &row.sample;
    let head_style = if in_use { s.highlight } else { s.title };
    let mut head = vec![Span::styled(
        format!(
            "{} GPU {} {}",
            if in_use { "▶" } else { " " },
            d.index,
            d.name
        ),
        head_style,
    )];
    if in_use {
        head.push(Span::styled("  in use", s.highlight));
    }
    let util = d.utilization_pct.unwrap_or(0);
    let mut out = vec![
        Row::Text(Line::from(head)),
        Row::Meter(
            "util",
            f64::from(util.min(100)) / 100.0,
            match d.utilization_pct {
                Some(u) => format!("{u} %"),
                None => "n/a".into(),
            },
            &row.utilization,
        ),
        Row::Meter(
            "mem",
            d.memory_fraction().clamp(0.0, 1.0),
            used_of(d.memory_used, d.memory_total),
            &row.memory_pct,
        ),
    ];
    let facts = gpu_facts(d);
    if !facts.is_empty() {
        out.push(Row::Text(Line::styled(
            format!("  {}", facts.join(" · ")),
            s.text,
        )));
    }
    for p in &d.processes {
        let name = p.name.as_deref().unwrap_or("?");
        let mem = p.memory_bytes.map(gib).unwrap_or_else(|| "n/a".into());
        let mut spans = vec![Span::styled(
            format!("  {:>7} {:<12} {:>9}", p.pid, truncate(name, 12), mem),
            if p.is_self { s.highlight } else { s.dim },
        )];
        if p.is_self {
            spans.push(Span::styled("  this glimpse", s.highlight));
        }
        out.push(Row::Text(Line::from(spans)));
    }
    out
}

/// Temperature, power and clock, where NVML reports them.
fn gpu_facts(d: &GpuSample) -> Vec<String> {
    let mut facts = Vec::new();
    if let Some(t) = d.temperature_c {
        facts.push(format!("{t} °C"));
    }
    match (d.power_watts, d.power_limit_watts) {
        (Some(p), Some(l)) => facts.push(format!("{p:.0}/{l:.0} W")),
        (Some(p), None) => facts.push(format!("{p:.0} W")),
        _ => {}
    }
    if let Some(c) = d.sm_clock_mhz {
        facts.push(format!("SM {c} MHz"));
    }
    facts
}

fn footer<'a>(view: &GpuView, s: &PaneStyles) -> Option<Line<'a>> {
    let mut parts = Vec::new();
    if let Some(kv) = &view.kv_cache {
        parts.push(format!("KV cache {kv}"));
    }
    if let Some(t) = view.tokens_per_s {
        parts.push(format!("{t:.1} tokens/s"));
    }
    (!parts.is_empty()).then(|| Line::styled(parts.join(" · "), s.text))
}

fn draw_row(row: &Row, area: Rect, buf: &mut Buffer, s: &PaneStyles) {
    match row {
        Row::Text(line) => Paragraph::new(line.clone()).render(area, buf),
        Row::Meter(label, ratio, text, spark) => {
            let at = |x: u16, width: u16| Rect {
                x,
                width: width.min(area.right().saturating_sub(x)),
                ..area
            };
            Paragraph::new(Line::styled(format!("  {label}"), s.text))
                .render(at(area.x, LABEL_WIDTH), buf);
            let rest = area.width.saturating_sub(LABEL_WIDTH + VALUE_WIDTH);
            // With history, the gauge takes half of what the label and value
            // leave and the sparkline the other half.
            let gauge_width = if spark.is_empty() { rest } else { rest / 2 };
            let gauge_x = area.x + LABEL_WIDTH;
            Paragraph::new(Line::styled(bar(*ratio, gauge_width), s.gauge))
                .render(at(gauge_x, gauge_width), buf);
            let value_x = gauge_x + gauge_width;
            Paragraph::new(Line::styled(format!(" {text}"), s.text))
                .render(at(value_x, VALUE_WIDTH), buf);
            if !spark.is_empty() {
                let spark_area = at(value_x + VALUE_WIDTH, rest - gauge_width);
                let shown = &spark[spark.len().saturating_sub(spark_area.width as usize)..];
                Sparkline::default()
                    .data(shown)
                    .max(100)
                    .style(s.sparkline)
                    .render(spark_area, buf);
            }
        }
    }
}

/// A horizontal bar `width` cells wide filled to `ratio`, in eighths of a cell.
fn bar(ratio: f64, width: u16) -> String {
    const EIGHTHS: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    let eighths = (ratio.clamp(0.0, 1.0) * f64::from(width) * 8.0).round() as usize;
    let full = eighths / 8;
    let mut out = "█".repeat(full);
    out.push_str(EIGHTHS[eighths % 8]);
    let used = full + usize::from(!eighths.is_multiple_of(8));
    out.push_str(&" ".repeat(usize::from(width).saturating_sub(used)));
    out
}

fn used_of(used: u64, total: u64) -> String {
    format!(
        "{:.1}/{:.1} GiB",
        used as f64 / super::GIB,
        total as f64 / super::GIB
    )
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::replay::{h100, present};
    use crate::gpu::{GpuProcess, GpuState, Sample};

    #[test]
    fn the_text_form_is_as_tall_as_its_content() {
        let h = history_of(vec![GpuState::Absent {
            reason: "no driver".into(),
        }]);
        let view = GpuView::from_history(&h, None, None, None);
        let lines = pane_text(&view, 60);
        assert_eq!(lines.len(), 7);
        assert!(lines[1].contains("running on CPU (16 threads)"));
        assert!(lines[5].contains("(no driver)"));
    }

    fn render(view: &GpuView, width: u16, height: u16) -> Vec<String> {
        let area = Rect::new(0, 0, width, height);
        let mut buf = Buffer::empty(area);
        GpuPane {
            view,
            styles: &PaneStyles::default(),
        }
        .render(area, &mut buf);
        (0..height)
            .map(|y| {
                (0..width)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<String>()
                    .trim_end()
                    .to_string()
            })
            .collect()
    }

    fn cpu() -> CpuFacts {
        CpuFacts {
            threads: 16,
            model: Some("AMD EPYC 7B13 64-Core Processor".into()),
            memory_total: Some(24 << 30),
            memory_available: Some(18 << 30),
            own_resident: Some(3 << 29),
            own_peak_resident: Some(2 << 30),
        }
    }

    fn history_of(states: Vec<GpuState>) -> History {
        let mut h = History::new(60);
        for (seq, gpus) in states.into_iter().enumerate() {
            h.push(Sample {
                seq: seq as u64,
                gpus,
                cpu: cpu(),
            });
        }
        h
    }

    #[test]
    fn without_a_gpu_the_pane_says_cpu_and_shows_cpu_facts() {
        let h = history_of(vec![GpuState::Absent {
            reason: "the NVIDIA driver library (libnvidia-ml) is not installed".into(),
        }]);
        let view = GpuView::from_history(&h, None, Some("f32".into()), Some(3.25));
        assert_eq!(
            render(&view, 72, 9),
            [
                "┌ GPU ─────────────────────────────────────────────────────────────────┐",
                "│no NVIDIA GPU found — running on CPU (16 threads)                     │",
                "│AMD EPYC 7B13 64-Core Processor                                       │",
                "│  mem  ███████████▊                                    6.0/24.0 GiB   │",
                "│glimpse holds 1.5 GiB                                                 │",
                "│(the NVIDIA driver library (libnvidia-ml) is not installed)           │",
                "│                                                                      │",
                "│KV cache f32 · 3.2 tokens/s                                           │",
                "└──────────────────────────────────────────────────────────────────────┘",
            ]
        );
    }

    #[test]
    fn two_gpus_with_history_and_the_one_in_use_marked() {
        let mut states = Vec::new();
        for i in 0..5u32 {
            let mut busy = h100(1, 20.0 + 10.0 * i as f64, 20 * i);
            busy.processes = vec![
                GpuProcess {
                    pid: 4242,
                    name: Some("glimpse".into()),
                    memory_bytes: Some((18 + 10 * i as u64) << 30),
                    is_self: true,
                },
                GpuProcess {
                    pid: 777,
                    name: Some("python3".into()),
                    memory_bytes: Some(2 << 30),
                    is_self: false,
                },
            ];
            states.push(present(vec![h100(0, 0.5, 0), busy]));
        }
        let view = GpuView::from_history(
            &history_of(states),
            Some(1),
            Some("int8 (auto, at 86 %)".into()),
            Some(41.04),
        );
        assert_eq!(view.gpus[1].utilization, [0, 20, 40, 60, 80]);
        assert_eq!(view.gpus[1].memory_pct, [25, 38, 50, 63, 75]);
        let lines = render(&view, 72, 16);
        let expected = [
            "┌ GPU ─────────────────────────────────────────────────────────────────┐",
            "│  GPU 0 NVIDIA H100 80GB HBM3                                         │",
            "│  util                         0 %                                    │",
            "│  mem  ▏                       0.5/80.0 GiB                           │",
            "│  41 °C · 118/700 W · SM 1980 MHz                                     │",
            "│                                                                      │",
            "│▶ GPU 1 NVIDIA H100 80GB HBM3  in use                                 │",
            "│  util ██████████████████▍     80 %            ▁▃▄▆                   │",
            "│  mem  █████████████████▎      60.0/80.0 GiB  ▂▃▄▅▆                   │",
            "│  41 °C · 118/700 W · SM 1980 MHz                                     │",
            "│     4242 glimpse       58.0 GiB  this glimpse                        │",
            "│      777 python3        2.0 GiB                                      │",
            "│                                                                      │",
            "│                                                                      │",
            "│KV cache int8 (auto, at 86 %) · 41.0 tokens/s                         │",
            "└──────────────────────────────────────────────────────────────────────┘",
        ];
        assert_eq!(lines, expected, "\n{}", lines.join("\n"));
    }

    #[test]
    fn a_short_pane_keeps_the_footer_and_cuts_the_body() {
        let h = history_of(vec![present(vec![h100(0, 40.0, 50)])]);
        let view = GpuView::from_history(&h, Some(0), Some("bf16".into()), None);
        let lines = render(&view, 50, 4);
        assert!(lines[1].contains("▶ GPU 0 NVIDIA H100"), "{lines:?}");
        assert!(lines[2].contains("KV cache bf16"), "{lines:?}");
    }

    #[test]
    fn before_the_first_sample_the_pane_says_it_is_reading() {
        let view = GpuView::from_history(&History::new(60), None, None, None);
        assert!(render(&view, 40, 3)[1].contains("reading the devices"));
    }

    fn remote(load: bool) -> RemoteView {
        RemoteView {
            server: "http://gpu-box:8000/v1".into(),
            model: "Qwen/Qwen2.5-VL-72B-Instruct".into(),
            ttft_s: Some(0.4213),
            tokens_per_s: Some(38.14),
            kv_cache_use: load.then_some(0.4127),
            waiting: load.then_some(4),
            running: load.then_some(5),
        }
    }

    #[test]
    fn a_server_comes_first_with_its_load_and_this_machine_after() {
        let h = history_of(vec![GpuState::Absent {
            reason: "no driver".into(),
        }]);
        let view = GpuView {
            remote: Some(remote(true)),
            ..GpuView::from_history(&h, None, Some("on the server".into()), Some(38.14))
        };
        let lines = render(&view, 60, pane_height(&view));
        let expected = [
            "┌ GPU ─────────────────────────────────────────────────────┐",
            "│▶ remote  in use                                          │",
            "│  http://gpu-box:8000/v1                                  │",
            "│  Qwen/Qwen2.5-VL-72B-Instruct                            │",
            "│  last answer: first token 0.42 s · 38.1 tokens/s         │",
            "│  KV   ██████████████▌                     41 %           │",
            "│  queue 4 waiting · 5 running                             │",
            "│                                                          │",
            "│no NVIDIA GPU here (16 CPU threads)                       │",
            "│AMD EPYC 7B13 64-Core Processor                           │",
            "│  mem  ████████▊                           6.0/24.0 GiB   │",
            "│glimpse holds 1.5 GiB                                     │",
            "│(no driver)                                               │",
            "│KV cache on the server · 38.1 tokens/s                    │",
            "└──────────────────────────────────────────────────────────┘",
        ];
        assert_eq!(lines, expected, "\n{}", lines.join("\n"));
    }

    #[test]
    fn a_server_without_metrics_shows_no_load_rows() {
        let mut quiet = remote(false);
        quiet.ttft_s = None;
        quiet.tokens_per_s = None;
        let view = GpuView {
            remote: Some(quiet),
            ..GpuView::from_history(&History::new(60), None, None, None)
        };
        let lines = render(&view, 40, pane_height(&view));
        let expected = [
            "┌ GPU ─────────────────────────────────┐",
            "│▶ remote  in use                      │",
            "│  http://gpu-box:8000/v1              │",
            "│  Qwen/Qwen2.5-VL-72B-Instruct        │",
            "│                                      │",
            "│reading the devices…                  │",
            "└──────────────────────────────────────┘",
        ];
        assert_eq!(lines, expected, "\n{}", lines.join("\n"));
    }

    #[test]
    fn long_lines_wrap_at_spaces_in_a_narrow_pane() {
        assert_eq!(
            wrap_words("no NVIDIA GPU found — running on CPU (4 threads)", 20),
            vec!["no NVIDIA GPU found", "— running on CPU (4", "threads)"]
        );
        assert_eq!(
            wrap_words("abcdefghij xy", 4),
            vec!["abcd", "efgh", "ij", "xy"]
        );
        let history = history_of(vec![GpuState::Absent {
            reason: "no driver".into(),
        }]);
        let view = GpuView::from_history(&history, None, None, None);
        let lines = render(&view, 24, 8);
        assert!(lines[1].contains("no NVIDIA GPU found"), "{lines:?}");
        assert!(lines[2].contains("running on CPU (16"), "{lines:?}");
        assert!(lines[3].contains("threads)"), "{lines:?}");
    }
}
