//! The conversation as shown: entries (questions, answers, notices), the
//! conversation the engine is sent, and the screen rows entries turn into.

use std::collections::HashMap;
use std::rc::Rc;

use ratatui::text::{Line, Span};

use super::app::{App, ImageState, ModelState, StoredImage};
use super::detections::{ReplyGrounding, SentImages};
use super::layout::preview_cells;
use super::markdown;
use super::msg::{ImageId, RequestId};
use super::presets::Settings;
pub use super::reasoning::Reasoning;
use super::wrap::{truncate, wrap_spans};
use crate::conversation::{Conversation, Message, Part, Role};
use crate::engine::FinishReason;

#[derive(Debug, Clone, PartialEq)]
pub struct ReplyStats {
    pub tokens: usize,
    pub ttft_s: f64,
    pub tok_s: f64,
    pub finish: FinishReason,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReplyPhase {
    /// Sent; the engine has not built the prompt yet.
    Waiting,
    /// New images go through the vision tower.
    Encoding(usize),
    /// Reading the prompt before the first token.
    Prefill,
    Streaming,
    Done(ReplyStats),
    Failed(String),
    /// Brought back from a saved session.
    Restored,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub id: RequestId,
    pub text: String,
    pub tokens: usize,
    pub phase: ReplyPhase,
    /// A thinking model's reasoning, kept apart from the answer.
    pub reasoning: Reasoning,
    /// What it was asked with, shown above it.
    pub settings: Settings,
    /// The images it was asked about.
    pub sent: SentImages,
    /// Boxes and points found once it ended.
    pub grounding: Option<Box<ReplyGrounding>>,
    /// The token limit the engine applied (known once the prompt is built).
    pub limit: Option<usize>,
    /// A restored answer was searched for boxes (it has no `Done` to do it).
    pub grounding_tried: bool,
    /// The app's tick when it was asked: the wait for the first token is
    /// shown, so a slow model or server never looks frozen.
    pub asked_tick: u64,
    /// The app's tick when the last token came: a stream that stalls shows
    /// how long it has been silent.
    pub heard_tick: u64,
}

impl Reply {
    pub fn new(id: RequestId, settings: Settings) -> Self {
        Reply {
            id,
            text: String::new(),
            tokens: 0,
            phase: ReplyPhase::Waiting,
            reasoning: Reasoning::default(),
            settings,
            sent: SentImages::default(),
            grounding: None,
            limit: None,
            grounding_tried: false,
            asked_tick: 0,
            heard_tick: 0,
        }
    }

    pub fn is_running(&self) -> bool {
        !matches!(
            self.phase,
            ReplyPhase::Done(_) | ReplyPhase::Failed(_) | ReplyPhase::Restored
        )
    }
}

// One entry per turn or notice: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum EntryKind {
    User {
        text: String,
        images: Vec<ImageId>,
        /// Waiting for the running answer (or the model) to finish.
        queued: bool,
    },
    Assistant(Reply),
    Notice {
        error: bool,
        text: String,
    },
}

/// An entry with an identity and a version, so its rendered rows can be
/// cached until it changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: u64,
    pub version: u64,
    pub kind: EntryKind,
}

impl Entry {
    pub fn new(id: u64, kind: EntryKind) -> Self {
        Entry {
            id,
            version: 0,
            kind,
        }
    }

    pub fn touch(&mut self) {
        self.version += 1;
    }
}

/// The conversation to send: every question that is not waiting, and every
/// finished or stopped answer that has text. Failed answers are left out.
pub fn conversation_until(
    entries: &[Entry],
    images: &HashMap<ImageId, StoredImage>,
) -> Conversation {
    let mut conv = Conversation::new();
    for e in entries {
        match &e.kind {
            EntryKind::User {
                text,
                images: ids,
                queued: false,
            } => {
                let mut parts: Vec<Part> = ids
                    .iter()
                    .filter_map(|id| images.get(id))
                    .map(|i| Part::Image(i.path.clone()))
                    .collect();
                let text = scrub_placeholders(text);
                if !text.is_empty() {
                    parts.push(Part::Text(text));
                }
                conv.push(Message::parts(Role::User, parts));
            }
            EntryKind::Assistant(r)
                if matches!(r.phase, ReplyPhase::Done(_) | ReplyPhase::Restored)
                    && !r.text.is_empty() =>
            {
                conv.push(
                    Message::text(Role::Assistant, scrub_placeholders(&r.text))
                        .with_reasoning(&scrub_placeholders(&r.reasoning.text)),
                );
            }
            _ => {}
        }
    }
    conv
}

/// Vision markers typed by a person or written by a model would be read
/// back as real image slots and break the prompt; they are left out of the
/// text sent (the screen keeps them).
pub const VISION_MARKERS: [&str; 5] = [
    "<|image_pad|>",
    "<|video_pad|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
];

pub fn scrub_placeholders(text: &str) -> String {
    let mut out = text.to_string();
    for m in VISION_MARKERS {
        if out.contains(m) {
            out = out.replace(m, "");
        }
    }
    out
}

/// One screen row of the transcript.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    Text(Line<'static>),
    /// Row `line` of an image preview `cells` big, indented by `indent`.
    Image {
        id: ImageId,
        line: u16,
        cells: (u16, u16),
        indent: u16,
    },
}

/// Everything besides an entry itself that its rows depend on. The cache
/// holds rows for one context; a different one starts it afresh, so no
/// change of theme, width or toggle has to remember to clear it.
#[derive(Debug, Clone, PartialEq)]
struct RowContext {
    width: u16,
    theme: String,
    previews_on: bool,
    boxes_on: bool,
    /// The model's name heads each answer.
    family: Option<String>,
    reasoning_expanded: bool,
}

impl RowContext {
    fn of(app: &App, width: u16) -> RowContext {
        RowContext {
            width,
            theme: app.theme.name.clone(),
            previews_on: app.previews_on,
            boxes_on: app.overlay.on(),
            family: app.ready().map(|m| m.info.family.clone()),
            reasoning_expanded: app.reasoning_expanded,
        }
    }
}

/// Rendered rows per entry id, with the entry's version they were made from.
#[derive(Default)]
pub struct RowCache {
    context: Option<RowContext>,
    entries: HashMap<u64, (u64, Rc<Vec<Row>>)>,
}

impl RowCache {
    fn for_context(&mut self, context: RowContext) -> &mut HashMap<u64, (u64, Rc<Vec<Row>>)> {
        if self.context.as_ref() != Some(&context) {
            self.entries.clear();
            self.context = Some(context);
        }
        &mut self.entries
    }
}

/// All rows of the transcript at `width`, as shared chunks.
pub struct RowList {
    chunks: Vec<Rc<Vec<Row>>>,
    len: usize,
}

impl RowList {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rows `start..start + count`, with their indices.
    pub fn range(&self, start: usize, count: usize) -> Vec<(usize, &Row)> {
        let mut out = Vec::with_capacity(count);
        let mut base = 0;
        for chunk in &self.chunks {
            let end = base + chunk.len();
            if end > start && base < start + count {
                for (i, row) in chunk.iter().enumerate() {
                    let idx = base + i;
                    if idx >= start && idx < start + count {
                        out.push((idx, row));
                    }
                }
            }
            base = end;
            if base >= start + count {
                break;
            }
        }
        out
    }
}

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

pub fn spinner(tick: u64) -> &'static str {
    SPINNER[(tick % SPINNER.len() as u64) as usize]
}

pub fn all_rows(app: &App, width: u16) -> RowList {
    let mut chunks = vec![Rc::new(top_rows(app, width))];
    let mut cache = app.rows.borrow_mut();
    let cached = cache.for_context(RowContext::of(app, width));
    // Entries that are gone (a new conversation, a regenerated answer) are dropped.
    if cached.len() > app.entries.len() {
        let live: std::collections::HashSet<u64> = app.entries.iter().map(|e| e.id).collect();
        cached.retain(|id, _| live.contains(id));
    }
    for e in &app.entries {
        let hit = cached
            .get(&e.id)
            .filter(|(v, _)| *v == e.version)
            .map(|(_, rows)| rows.clone());
        let rows = match hit {
            Some(r) => r,
            None => {
                let r = Rc::new(entry_rows(app, e, width));
                cached.insert(e.id, (e.version, r.clone()));
                r
            }
        };
        chunks.push(rows);
        if let Some(footer) = live_footer(app, e) {
            chunks.push(Rc::new(footer));
        }
        chunks.push(Rc::new(vec![Row::Text(Line::default())]));
    }
    let len = chunks.iter().map(|c| c.len()).sum();
    RowList { chunks, len }
}

/// The model's state, or a welcome when the conversation is empty.
fn top_rows(app: &App, width: u16) -> Vec<Row> {
    let t = &app.theme;
    let w = width as usize;
    let lines: Vec<Line<'static>> = match &app.model {
        ModelState::Downloading(d) => {
            let mut l = wrap_spans(
                &[Span::styled(d.headline(), t.dim)],
                w,
                &[Span::styled(format!("{} ", spinner(app.tick)), t.spinner)],
                &[Span::raw("  ")],
            );
            l.extend(wrap_spans(
                &[Span::styled(d.detail(), t.dim)],
                w,
                &[Span::raw("  ")],
                &[Span::raw("  ")],
            ));
            l
        }
        ModelState::Loading { dir } => vec![Line::from(vec![
            Span::styled(format!("{} ", spinner(app.tick)), t.spinner),
            Span::styled(format!("Loading the model from {}…", dir.display()), t.dim),
        ])],
        ModelState::Failed(e) => {
            let mut l = wrap_spans(
                &[Span::styled(format!("Could not load the model: {e}"), t.error)],
                w,
                &[Span::styled("✗ ", t.error)],
                &[Span::raw("  ")],
            );
            // Errors from the hub already say what to pass to --model.
            let hint = if e.contains("--model") {
                "Ctrl+Q quits."
            } else {
                "Check --model (a folder with config.json, *.safetensors, tokenizer.json); Ctrl+Q quits."
            };
            l.extend(wrap_spans(
                &[Span::styled(hint, t.dim)],
                w,
                &[Span::raw("  ")],
                &[Span::raw("  ")],
            ));
            l
        }
        ModelState::Ready(r) if app.entries.is_empty() => wrap_spans(
            &[Span::styled(
                format!(
                    "{} is ready on {}, {}. Type a question and press Enter; attach images with /image PATH, Ctrl+O or by pasting a path. ? shows every key.",
                    r.info.family, r.info.device, r.info.precision()
                ),
                t.dim,
            )],
            w,
            &[],
            &[],
        ),
        ModelState::Ready(_) => Vec::new(),
    };
    let mut rows: Vec<Row> = lines.into_iter().map(Row::Text).collect();
    if !rows.is_empty() {
        rows.push(Row::Text(Line::default()));
    }
    rows
}

fn entry_rows(app: &App, entry: &Entry, width: u16) -> Vec<Row> {
    match &entry.kind {
        EntryKind::User {
            text,
            images,
            queued,
        } => user_rows(app, text, images, *queued, width),
        EntryKind::Assistant(r) => assistant_rows(app, r, width),
        EntryKind::Notice { error, text } => {
            let t = &app.theme;
            let (mark, style) = if *error {
                ("✗ ", t.error)
            } else {
                ("! ", t.notice)
            };
            wrap_spans(
                &[Span::styled(text.clone(), style)],
                width as usize,
                &[Span::styled(mark, style)],
                &[Span::raw("  ")],
            )
            .into_iter()
            .map(Row::Text)
            .collect()
        }
    }
}

fn user_rows(app: &App, text: &str, images: &[ImageId], queued: bool, width: u16) -> Vec<Row> {
    let t = &app.theme;
    let w = width as usize;
    let mut head = vec![Span::styled("You", t.user_label)];
    if queued {
        head.push(Span::styled(" · queued", t.dim));
    }
    let mut rows = vec![Row::Text(Line::from(head))];
    if !text.is_empty() {
        let lines = wrap_spans(&[Span::styled(text.to_string(), t.user_text)], w, &[], &[]);
        rows.extend(lines.into_iter().map(Row::Text));
    }
    for id in images {
        rows.push(Row::Text(image_caption(app, *id, w)));
        if let (
            true,
            Some(StoredImage {
                state: ImageState::Ready(d),
                ..
            }),
        ) = (app.previews_on, app.images.get(id))
        {
            let cells = preview_cells(d.capped, app.font_size, width);
            for line in 0..cells.1 {
                rows.push(Row::Image {
                    id: *id,
                    line,
                    cells,
                    indent: 2,
                });
            }
        }
    }
    rows
}

fn assistant_rows(app: &App, r: &Reply, width: u16) -> Vec<Row> {
    let t = &app.theme;
    let w = width as usize;
    let name = app
        .ready()
        .map(|m| m.info.family.clone())
        .unwrap_or_else(|| "glimpse".into());
    let mut rows = vec![Row::Text(Line::from(vec![
        Span::styled(name, t.assistant_label),
        Span::styled(
            std::iter::once(r.settings.preset_name.clone())
                .chain(std::iter::once(r.settings.short()))
                .chain(r.settings.extras())
                .fold(String::new(), |line, part| format!("{line} · {part}")),
            t.dim,
        ),
    ]))];
    let expanded = app.reasoning_expanded || r.reasoning.is_streaming(r.is_running());
    let toggle = app
        .keymap
        .first_label(super::keymap::Action::ToggleReasoning)
        .unwrap_or_default();
    rows.extend(
        r.reasoning
            .rows(t, w, expanded, &toggle)
            .into_iter()
            .map(Row::Text),
    );
    rows.extend(markdown::render(&r.text, w, t).into_iter().map(Row::Text));
    let end = match &r.phase {
        ReplyPhase::Done(s) => wrap_spans(&done_spans(app, r, s), w, &[], &[Span::raw("  ")]),
        ReplyPhase::Failed(e) => wrap_spans(
            &[Span::styled(e.clone(), t.error)],
            w,
            &[Span::styled("✗ ", t.error)],
            &[Span::raw("  ")],
        ),
        _ => Vec::new(),
    };
    rows.extend(end.into_iter().map(Row::Text));
    if let Some(g) = &r.grounding {
        rows.extend(super::detections::rows(app, g, width));
    }
    rows
}

/// The line under a finished answer: tokens, speed, and why it ended.
fn done_spans(app: &App, r: &Reply, s: &ReplyStats) -> Vec<Span<'static>> {
    let t = &app.theme;
    let mut parts = vec![format!("{} tokens", s.tokens)];
    if s.tok_s > 0.0 {
        parts.push(format!("{:.1} tok/s", s.tok_s));
    }
    if s.ttft_s > 0.0 {
        parts.push(format!("first token {:.2} s", s.ttft_s));
    }
    match s.finish {
        FinishReason::Cancelled => vec![
            Span::styled("■ cancelled", t.warning),
            Span::styled(
                if r.text.is_empty() {
                    " before the first token".to_string()
                } else {
                    format!(" · partial answer kept · {}", parts.join(" · "))
                },
                t.dim,
            ),
        ],
        FinishReason::Length => {
            // The engine also stops where the context ends.
            let limit = r.limit.or(r.settings.max_tokens);
            let why = if let Some(limit) = limit.filter(|l| s.tokens >= *l) {
                format!("… stopped at the {limit}-token limit")
            } else {
                "… stopped: the context is full".to_string()
            };
            vec![
                Span::styled(why, t.warning),
                Span::styled(format!(" · {}", parts.join(" · ")), t.dim),
            ]
        }
        FinishReason::Stop => vec![Span::styled(parts.join(" · "), t.dim)],
        FinishReason::Dropped(cause) => {
            if !r.text.is_empty() {
                parts.insert(0, "partial answer kept".into());
            }
            parts.extend(cause.hint().map(str::to_string));
            vec![
                Span::styled(format!("■ {}", cause.describe()), t.warning),
                Span::styled(format!(" · {}", parts.join(" · ")), t.dim),
            ]
        }
    }
}

/// Seconds without a token before a streaming answer says it is waiting:
/// long enough that a model thinking over one slow token does not flicker.
const STALL_SHOWN_AFTER: u64 = 3;

/// The moving part under a running answer (never cached).
fn live_footer(app: &App, entry: &Entry) -> Option<Vec<Row>> {
    let EntryKind::Assistant(r) = &entry.kind else {
        return None;
    };
    if !r.is_running() {
        return None;
    }
    let t = &app.theme;
    let mut what = match r.phase {
        ReplyPhase::Waiting => "waiting for the model…".to_string(),
        ReplyPhase::Encoding(n) => format!("encoding {n} image{}…", if n == 1 { "" } else { "s" }),
        ReplyPhase::Prefill => "reading the prompt…".to_string(),
        ReplyPhase::Streaming if r.reasoning.is_streaming(true) => {
            format!("thinking · {} tokens", r.reasoning.tokens)
        }
        ReplyPhase::Streaming => format!("{} tokens", r.tokens + r.reasoning.tokens),
        _ => return None,
    };
    let secs_since =
        |tick: u64| app.tick.wrapping_sub(tick) * super::msg::TICK.as_millis() as u64 / 1000;
    let waited = secs_since(r.asked_tick);
    if r.phase != ReplyPhase::Streaming && waited >= 1 {
        what.push_str(&format!(" {waited}s"));
    }
    let silent = secs_since(r.heard_tick);
    if r.phase == ReplyPhase::Streaming && silent >= STALL_SHOWN_AFTER {
        what.push_str(&format!(" · nothing new for {silent}s"));
    }
    let esc = app
        .keymap
        .first_label(super::keymap::Action::Cancel)
        .unwrap_or_else(|| "Esc".into());
    Some(vec![Row::Text(Line::from(vec![
        Span::styled(format!("{} ", spinner(app.tick)), t.spinner),
        Span::styled(format!("{what} · {esc} stops"), t.dim),
    ]))])
}

/// `▣ name  333×211 → 336×224 · 96 image tokens`, or its decoding state.
fn image_caption(app: &App, id: ImageId, width: usize) -> Line<'static> {
    let t = &app.theme;
    let Some(img) = app.images.get(&id) else {
        return Line::default();
    };
    let detail = match &img.state {
        ImageState::Decoding => "decoding…".to_string(),
        ImageState::Failed(e) => e.clone(),
        ImageState::Ready(d) => match app.budget(id) {
            Some(Ok(b)) => format!(
                "{}×{} → {}×{} · {} image tokens",
                d.original.0, d.original.1, b.width, b.height, b.tokens
            ),
            Some(Err(e)) => e,
            None => format!("{}×{}", d.original.0, d.original.1),
        },
    };
    let name = truncate(&img.name, width.saturating_sub(4).max(8));
    Line::from(vec![
        Span::styled("  ▣ ", t.dim),
        Span::styled(name, t.text),
        Span::styled(format!("  {detail}"), t.dim),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::presets::{builtin_presets, Settings};

    fn done_reply(text: &str) -> Reply {
        let mut r = Reply::new(1, Settings::from_preset(0, &builtin_presets()[0]));
        r.text = text.into();
        r.phase = ReplyPhase::Done(ReplyStats {
            tokens: 3,
            ttft_s: 0.0,
            tok_s: 0.0,
            finish: FinishReason::Stop,
        });
        r
    }

    #[test]
    fn the_conversation_sent_leaves_out_queued_questions_failed_answers_and_vision_markers() {
        let mut failed = done_reply("");
        failed.phase = ReplyPhase::Failed("boom".into());
        let entries = vec![
            Entry::new(
                1,
                EntryKind::User {
                    text: "q1".into(),
                    images: vec![],
                    queued: false,
                },
            ),
            Entry::new(2, EntryKind::Assistant(done_reply("a <|image_pad|>1"))),
            Entry::new(
                3,
                EntryKind::Notice {
                    error: false,
                    text: "n".into(),
                },
            ),
            Entry::new(
                4,
                EntryKind::User {
                    text: "q2".into(),
                    images: vec![],
                    queued: false,
                },
            ),
            Entry::new(5, EntryKind::Assistant(failed)),
            Entry::new(
                6,
                EntryKind::User {
                    text: "q3".into(),
                    images: vec![],
                    queued: true,
                },
            ),
        ];
        let conv = conversation_until(&entries, &HashMap::new());
        let texts: Vec<String> = conv.messages.iter().map(|m| m.joined_text()).collect();
        assert_eq!(texts, ["q1", "a 1", "q2"]);
    }
}
