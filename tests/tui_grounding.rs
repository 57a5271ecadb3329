//! Boxes and points on the chat screen: an answer in each family's format
//! (fed as engine events, since random tiny models write no boxes) is
//! listed under the answer in original-image pixels and drawn over a
//! half-block preview of its image; keys cycle the highlight and hide the
//! boxes; `/locate` asks in the family's own words about the right image.

mod common;

use std::path::PathBuf;

use image::{DynamicImage, RgbImage};
use ratatui::crossterm::event::{KeyCode, KeyModifiers};
use ratatui::layout::Rect;
use ratatui::style::Color;
use ratatui_image::picker::Picker;
use ratatui_image::Resize;

use common::app::AppHarness;
use common::{fixtures, orange_square_in_scene, perfect_box_reply};
use glimpse::conversation::Part;
use glimpse::engine::{
    describe_images, EngineOptions, Event, FinishReason, ImageFacts, SamplingParams, Timings,
};
use glimpse::processor::grounding::{
    default_image, palette_colour, GroundingFamily, ImageGeometry, Shape, MAX_DETECTIONS,
};
use glimpse::processor::image::{load_image, LongEdgeCap};
use glimpse::tui::detections::{ReplyGrounding, MAX_LISTED};
use glimpse::tui::session_keeper::{SessionEvent, SessionKeeper};
use glimpse::tui::transcript::EntryKind;
use glimpse::tui::{AppConfig, Msg};

const FAMILIES: [&str; 3] = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"];

/// Small enough that the 333×211 scene is capped (to 250×158) before the
/// model's own resize, so every mapping goes through both steps.
const CAP: LongEdgeCap = LongEdgeCap {
    threshold: 300,
    target: 250,
};

fn model_dir(model: &str) -> PathBuf {
    fixtures().join("models").join(model)
}

fn scene() -> PathBuf {
    fixtures().join("images/scene_333x211.png")
}

fn checker() -> PathBuf {
    fixtures().join("images/checker_200x150.png")
}

struct Harness {
    inner: AppHarness,
    model: String,
}

common::app::derefs_to_app_harness!(Harness);

impl Harness {
    fn loaded(model: &str, width: u16, height: u16) -> Self {
        let mut config = AppConfig::new(model_dir(model));
        config.font_size = (10, 20);
        config.seed = 7;
        let mut inner = AppHarness::new(config, width, height);
        inner.cap = Some(CAP);
        let mut options = EngineOptions::new(model_dir(model));
        options.long_edge_cap = Some(CAP);
        inner.load(options);
        Harness {
            inner,
            model: model.into(),
        }
    }

    fn press(&mut self, c: char) {
        self.key(KeyCode::Char(c), KeyModifiers::NONE);
    }

    /// Answers the last request with `reply`, as the engine would: the
    /// prompt with the real facts of its images, the text in pieces, done.
    fn answer(&mut self, reply: &str, finish: FinishReason) {
        self.answer_in_pieces(reply, finish, 7);
    }

    fn answer_in_pieces(&mut self, reply: &str, finish: FinishReason, piece: usize) {
        let g = self.generations.last().expect("a request");
        let (id, conversation) = (g.id, g.conversation.clone());
        let images: Vec<PathBuf> = conversation
            .images()
            .iter()
            .map(|p| p.to_path_buf())
            .collect();
        let facts = facts(&self.model, &images);
        self.send(Msg::Engine {
            id,
            event: Event::Prompt {
                ids: vec![1; 50],
                images: facts,
                cached_tokens: 0,
                dropped_messages: 0,
                params: SamplingParams {
                    temperature: 0.3,
                    top_p: 1.0,
                    top_k: 0,
                    repetition_penalty: 1.0,
                    max_new_tokens: 768,
                    seed: 7,
                },
            },
        });
        let mut rest = reply;
        while !rest.is_empty() {
            let mut cut = rest.len().min(piece);
            while !rest.is_char_boundary(cut) {
                cut += 1;
            }
            let (piece, tail) = rest.split_at(cut);
            self.send(Msg::Engine {
                id,
                event: Event::Token {
                    id: 1,
                    text: piece.into(),
                },
            });
            rest = tail;
        }
        self.send(Msg::Engine {
            id,
            event: Event::Done {
                finish_reason: finish,
                tokens: vec![1; 20],
                text: reply.into(),
                reasoning: String::new(),
                reasoning_tokens: 0,
                timings: Timings {
                    load_s: 0.1,
                    vision_s: 0.01,
                    prefill_s: 0.02,
                    ttft_s: 0.05,
                    decode_tok_s: 42.0,
                },
            },
        });
    }

    fn grounding(&self) -> &ReplyGrounding {
        self.app
            .entries
            .iter()
            .rev()
            .find_map(|e| match &e.kind {
                EntryKind::Assistant(r) => r.grounding.as_deref(),
                _ => None,
            })
            .expect("an answer with objects")
    }

    /// How many drawn cell colours (foreground and background) are near
    /// `colour`: half-blocks blend a line with what is beside it.
    fn cells_near(&mut self, colour: [u8; 3]) -> usize {
        let near = |c: &[u8; 3]| {
            let d: i32 = c
                .iter()
                .zip(&colour)
                .map(|(a, b)| (*a as i32 - *b as i32).pow(2))
                .sum();
            d < 60 * 60
        };
        self.colours().iter().filter(|c| near(c)).count()
    }

    /// The colours of every drawn cell (foreground and background).
    fn colours(&mut self) -> Vec<[u8; 3]> {
        self.screen();
        let buffer = self.terminal.backend().buffer();
        buffer
            .content()
            .iter()
            .flat_map(|c| [c.fg, c.bg])
            .filter_map(|c| match c {
                Color::Rgb(r, g, b) => Some([r, g, b]),
                _ => None,
            })
            .collect()
    }
}

/// The engine's facts about images, with the test's cap.
fn facts(model: &str, images: &[PathBuf]) -> Vec<ImageFacts> {
    let mut options = EngineOptions::new(model_dir(model));
    options.long_edge_cap = Some(CAP);
    describe_images(&options, images).unwrap().1
}

fn geometry(model: &str) -> ImageGeometry {
    facts(model, &[scene()])[0].geometry(Some(&CAP))
}

fn orange_box() -> [f64; 4] {
    orange_square_in_scene().map(|v| v as f64)
}

/// The bounds `[left, top, right, bottom]` (exclusive) of the pixels of
/// exactly `colour` in `img`.
fn bounds_of(img: &RgbImage, colour: [u8; 3]) -> Option<[u32; 4]> {
    let mut b: Option<[u32; 4]> = None;
    for (x, y, p) in img.enumerate_pixels() {
        if p.0 == colour {
            let [l, t, r, bt] = b.unwrap_or([x, y, x + 1, y + 1]);
            b = Some([l.min(x), t.min(y), r.max(x + 1), bt.max(y + 1)]);
        }
    }
    b
}

/// Where the image lies in a preview padded with black.
fn non_black_bounds(img: &RgbImage) -> [u32; 4] {
    let mut b = [u32::MAX, u32::MAX, 0, 0];
    for (x, y, p) in img.enumerate_pixels() {
        if p.0 != [0, 0, 0] {
            b = [b[0].min(x), b[1].min(y), b[2].max(x + 1), b[3].max(y + 1)];
        }
    }
    b
}

fn close(a: [u32; 4], b: [u32; 4], tolerance: u32) -> bool {
    a.iter().zip(&b).all(|(x, y)| x.abs_diff(*y) <= tolerance)
}

#[test]
fn every_family_lists_and_draws_its_box_on_the_original_pixels() {
    let square = orange_square_in_scene();
    for model in FAMILIES {
        let mut h = Harness::loaded(model, 100, 50);
        h.ask(&format!("/image {}", scene().display()));
        h.ask("Where is the orange square?");
        h.answer(
            &perfect_box_reply(model, &geometry(model), orange_box()),
            FinishReason::Stop,
        );
        let g = h.grounding().clone();
        assert_eq!(g.detections.len(), 1, "{model}: {g:?}");
        let d = &g.detections[0];
        assert_eq!(
            (d.label.as_str(), d.image_size),
            ("orange square", (333, 211))
        );
        let got = d.pixel_box().unwrap();
        assert!(close(got, square, 2), "{model}: {got:?} vs {square:?}");

        // Listed under the answer, in original pixels.
        let screen = h.screen();
        let [l, t, r, b] = got;
        let place = format!("box ({l},{t})–({r},{b})");
        assert!(screen.contains(&place), "{model}: {place}\n{screen}");
        assert!(screen.contains("▶ 1 ██ orange square"), "{screen}");
        assert!(!screen.contains("image 1"), "one image: not named");

        // Drawn over a copy for the half-block preview: two pixels per
        // cell, blown up to the 10×20 cells' pixels, the scene at the top
        // left and black padding after it. The outline lies where the
        // square is, to one preview pixel (about ten of the scene's).
        let overlay = h.encoded.get(&g.overlay).expect("an overlay preview");
        let overlay = overlay.to_rgb8();
        let colour = palette_colour(0);
        let drawn = bounds_of(&overlay, colour).expect("the box is drawn");
        let content = non_black_bounds(&overlay);
        let (grid_w, grid_h) = (content[2] as f64 / 10.0, content[3] as f64 / 10.0);
        let to_scene =
            |v: u32, grid: f64, side: f64| ((v / 10) as f64 * side / grid).round() as u32;
        let in_scene = [
            to_scene(drawn[0], grid_w, 333.0),
            to_scene(drawn[1], grid_h, 211.0),
            to_scene(drawn[2], grid_w, 333.0),
            to_scene(drawn[3], grid_h, 211.0),
        ];
        let cell = (333.0 / grid_w).ceil() as u32 + 1;
        assert!(
            close(in_scene, square, cell),
            "{model}: drawn at {in_scene:?} (preview {drawn:?} of {content:?}), square at {square:?}"
        );
        // And the half-block cells on screen carry it.
        let with = h.cells_near(colour);
        h.key(KeyCode::Char('b'), KeyModifiers::ALT);
        let without = h.cells_near(colour);
        assert!(
            with > without,
            "{model}: {with} cells near the outline's colour, {without} without"
        );
    }
}

fn two_boxes_qwen2() -> String {
    "Here they are: <|object_ref_start|>orange square<|object_ref_end|><|box_start|>(513,284),(700,569)<|box_end|> \
     and <|object_ref_start|>left side<|object_ref_end|><|box_start|>(0,0),(300,1000)<|box_end|>."
        .to_string()
}

#[test]
fn snapshot_qwen2_vl_boxes_under_the_answer_with_the_overlay() {
    let mut h = Harness::loaded("qwen2_vl", 100, 50);
    h.ask(&format!("/image {}", scene().display()));
    h.ask("Find the orange square and the left side.");
    h.answer(&two_boxes_qwen2(), FinishReason::Stop);
    let screen = h.screen();
    assert!(screen.contains("2 objects found"), "{screen}");
    assert!(screen.matches('▀').count() + screen.matches('▄').count() > 100);
    insta::assert_snapshot!("grounding_qwen2_vl", screen);
}

#[test]
fn snapshot_qwen3_vl_json_box_and_point_on_the_second_image() {
    let mut h = Harness::loaded("qwen3_vl", 100, 60);
    h.ask(&format!("/image {}", checker().display()));
    h.ask("What is this?");
    h.answer("A checkerboard.", FinishReason::Stop);
    h.ask(&format!("/image {}", scene().display()));
    h.ask("Where are the shapes?");
    let reply = "```json\n[\n  {\"bbox_2d\": [513, 284, 700, 569], \"label\": \"橙色 square\"},\n  {\"point_2d\": [250, 500], \"label\": \"a \\\"point\\\"\"}\n]\n```";
    h.answer(reply, FinishReason::Stop);
    let g = h.grounding().clone();
    assert_eq!(g.numbers, vec![2, 2], "both on the second image");
    assert!(matches!(g.detections[1].shape, Shape::Point(_)));
    h.key(KeyCode::End, KeyModifiers::CONTROL);
    let screen = h.screen();
    assert!(screen.contains("point (83,105)  image 2"), "{screen}");
    insta::assert_snapshot!("grounding_qwen3_vl", screen);
}

#[test]
fn keys_cycle_the_highlight_and_hide_the_boxes() {
    let mut h = Harness::loaded("qwen2_vl", 100, 50);
    h.ask(&format!("/image {}", scene().display()));
    h.ask("Find three things.");
    let reply =
        "<|object_ref_start|>a<|object_ref_end|><|box_start|>(100,100),(300,300)<|box_end|>\
        <|object_ref_start|>b<|object_ref_end|><|box_start|>(400,400),(600,600)<|box_end|>\
        <|object_ref_start|>c<|object_ref_end|><|box_start|>(700,700),(900,900)<|box_end|>";
    h.answer(reply, FinishReason::Stop);
    let overlay = h.grounding().overlay;
    let count = |h: &Harness, n: usize| {
        let img = h.encoded[&overlay].to_rgb8();
        img.pixels().filter(|p| p.0 == palette_colour(n)).count()
    };
    let thin_b = count(&h, 1);
    assert_eq!(h.grounding().highlight, 0);

    // Alt+N while typing; n and N while browsing.
    h.key(KeyCode::Char('n'), KeyModifiers::ALT);
    assert_eq!(h.grounding().highlight, 1);
    assert!(
        count(&h, 1) > thin_b,
        "the highlighted box is drawn thicker and encoded again"
    );
    assert!(h.screen().contains("▶ 2 ██ b"), "{}", h.screen());
    h.key(KeyCode::Esc, KeyModifiers::NONE);
    assert!(h.app.browsing);
    h.press('n');
    h.press('n');
    assert_eq!(h.grounding().highlight, 0, "wraps after the last");
    h.key(KeyCode::Char('N'), KeyModifiers::SHIFT);
    assert_eq!(h.grounding().highlight, 2, "N goes back, wrapping");
    assert!(h.screen().contains("object 3 of 3: c"));

    // b hides the boxes: the plain preview shows, without their colours.
    let with = h.cells_near(palette_colour(2));
    h.press('b');
    assert!(!h.app.overlay.on());
    let screen = h.screen();
    assert!(
        screen.contains("as it is") && screen.contains("shows the boxes"),
        "{screen}"
    );
    assert!(h.cells_near(palette_colour(2)) < with);
    h.key(KeyCode::Char('b'), KeyModifiers::ALT);
    assert!(h.app.overlay.on());
    assert_eq!(h.cells_near(palette_colour(2)), with);
    // Letters type themselves when not browsing.
    h.press('q');
    h.press('n');
    assert_eq!(h.app.input_text(), "qn");
}

#[test]
fn locate_asks_in_the_familys_words_about_the_right_image() {
    let mut h = Harness::loaded("qwen2_vl", 100, 40);
    h.ask("/locate the orange square");
    assert!(h.generations.is_empty(), "no image, no question");
    assert!(h.screen().contains("/image PATH"), "{}", h.screen());
    assert_eq!(
        h.app.input_text(),
        "/locate the orange square",
        "kept to retry"
    );
    for _ in 0..40 {
        h.key(KeyCode::Backspace, KeyModifiers::NONE);
    }

    // The image attached now goes with the question.
    h.ask(&format!("/image {}", scene().display()));
    h.ask("/locate the orange square");
    let conv = h.generations.last().unwrap().conversation.clone();
    let want = GroundingFamily::Qwen2Vl
        .locate_prompt("the orange square")
        .unwrap();
    let last = conv.messages.last().unwrap();
    assert_eq!(last.images().count(), 1);
    assert!(last.joined_text().contains(&want), "{:?}", last);
    assert!(h.screen().contains("Find <|object_ref_start|>the orange"));
    h.answer(
        &perfect_box_reply("qwen2_vl", &geometry("qwen2_vl"), orange_box()),
        FinishReason::Stop,
    );

    // With nothing attached, it asks about the latest image in the
    // conversation, where the answer's box then lands.
    for model in ["qwen2_5_vl", "qwen3_vl"] {
        let mut h = Harness::loaded(model, 100, 40);
        h.ask(&format!("/image {}", checker().display()));
        h.ask("first");
        h.answer("ok", FinishReason::Stop);
        h.ask(&format!("/image {}", scene().display()));
        h.ask("second");
        h.answer("ok", FinishReason::Stop);
        h.ask("/locate the orange square");
        let conv = h.generations.last().unwrap().conversation.clone();
        let family = GroundingFamily::from_model_type(model).unwrap();
        let want = family.locate_prompt("the orange square").unwrap();
        let last = conv.messages.last().unwrap();
        assert_eq!(
            last.content,
            glimpse::conversation::Content::Parts(vec![Part::Text(want)])
        );
        assert_eq!(default_image(&conv), Some(1), "the scene, image 2");
        h.answer(
            &perfect_box_reply(model, &geometry(model), orange_box()),
            FinishReason::Stop,
        );
        let g = h.grounding();
        assert_eq!(g.numbers, vec![2]);
        let scene_id = h.app.entries.iter().find_map(|e| match &e.kind {
            EntryKind::User { text, images, .. } if text == "second" => images.first().copied(),
            _ => None,
        });
        assert_eq!(g.images.first().copied(), scene_id);
        assert!(close(
            g.detections[0].pixel_box().unwrap(),
            orange_square_in_scene(),
            2
        ));
    }
}

#[test]
fn a_stopped_answer_is_grounded_too_and_plain_answers_change_nothing() {
    let mut h = Harness::loaded("qwen3_vl", 100, 40);
    h.ask(&format!("/image {}", scene().display()));
    h.ask("Describe it.");
    h.answer("An orange square on grey.", FinishReason::Stop);
    let plain = h
        .app
        .entries
        .iter()
        .any(|e| matches!(&e.kind, EntryKind::Assistant(r) if r.grounding.is_some()));
    assert!(!plain, "no objects, nothing kept");
    assert!(!h.screen().contains("found"));
    h.key(KeyCode::Char('n'), KeyModifiers::ALT);
    assert!(h.screen().contains("no boxes or points"));

    h.ask("Where?");
    // Cut off in the middle of the second object.
    h.answer(
        "[{\"bbox_2d\": [513, 284, 700, 569], \"label\": \"square\"}, {\"bbox_2d\": [1, 2",
        FinishReason::Cancelled,
    );
    let g = h.grounding();
    assert_eq!(g.detections.len(), 1);
    assert!(!g.warnings.is_empty());
    let screen = h.screen();
    assert!(screen.contains("not placed: "), "{screen}");
    assert!(screen.contains("cancelled"), "{screen}");
}

#[test]
fn huge_and_garbage_answers_neither_crash_nor_stall_the_screen() {
    let mut h = Harness::loaded("qwen3_vl", 100, 40);
    h.ask(&format!("/image {}", scene().display()));
    let unit = "[{\"bbox_2d\": [1, 2, 3, 4], \"label\": \"x\"},";
    let huge = unit.repeat((10 << 20) / unit.len());
    let mut state: u32 = 99;
    let alphabet: Vec<char> = "{}[]()<>|\"':,.-+0123456789 bbox_2d point_2d\n`猫"
        .chars()
        .collect();
    let noise: String = (0..200_000)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            alphabet[(state >> 16) as usize % alphabet.len()]
        })
        .collect();
    for reply in [huge, noise] {
        h.ask("Find everything.");
        // One huge token: the whole answer arrives at once.
        h.answer_in_pieces(&reply, FinishReason::Length, usize::MAX);
        let screen = h.screen();
        assert!(!h.app.is_generating());
        let count = h
            .app
            .entries
            .iter()
            .rev()
            .find_map(|e| match &e.kind {
                EntryKind::Assistant(r) => {
                    Some(r.grounding.as_ref().map_or(0, |g| g.detections.len()))
                }
                _ => None,
            })
            .unwrap();
        assert!(count <= MAX_DETECTIONS);
        if count > MAX_LISTED {
            assert!(screen.contains("more not listed"), "{screen}");
        }
        // Keys still work.
        h.key(KeyCode::Char('n'), KeyModifiers::ALT);
        h.screen();
    }
}

/// The annotated copy takes exactly the cells of the plain preview in every
/// protocol, whatever the terminal's cell size, so switching the boxes off
/// and on never moves or resizes the picture.
#[test]
fn overlays_take_the_plain_previews_cells_in_every_protocol() {
    use glimpse::tui::overlay::{overlay_pixels, PreviewKind};
    use ratatui_image::picker::ProtocolType;
    let base = load_image(&scene(), Some(&CAP)).unwrap().rgb;
    let d = glimpse::processor::grounding::Detection {
        label: "orange square".into(),
        image: 0,
        image_size: (333, 211),
        colour: palette_colour(0),
        shape: Shape::Box(orange_box()),
    };
    for font in [(10, 20), (7, 15), (9, 19), (8, 16)] {
        for cells in [(25, 8), (12, 4), (40, 10)] {
            for protocol in [
                ProtocolType::Halfblocks,
                ProtocolType::Sixel,
                ProtocolType::Kitty,
                ProtocolType::Iterm2,
            ] {
                #[allow(deprecated)]
                let mut picker = Picker::from_fontsize(font);
                picker.set_protocol_type(protocol);
                let kind = if protocol == ProtocolType::Halfblocks {
                    PreviewKind::HalfBlocks
                } else {
                    PreviewKind::Graphics
                };
                let area = Rect::new(0, 0, cells.0, cells.1);
                let plain = picker
                    .new_protocol(
                        DynamicImage::ImageRgb8(base.clone()),
                        area,
                        Resize::Fit(None),
                    )
                    .unwrap();
                let marked =
                    overlay_pixels(&base, std::slice::from_ref(&d), Some(0), cells, font, kind);
                let overlay = picker
                    .new_protocol(DynamicImage::ImageRgb8(marked), area, Resize::Fit(None))
                    .unwrap();
                assert_eq!(
                    overlay.area(),
                    plain.area(),
                    "{protocol:?}, cells {cells:?}, font {font:?}"
                );
            }
        }
    }
}

#[test]
fn a_conversation_file_opened_in_the_chat_shows_the_boxes_of_its_answers() {
    // As `glimpse chat --conversation FILE` opens it: the assistant turn is
    // typed into the file in each family's own format.
    let square = orange_square_in_scene();
    let dir = tempfile::tempdir().unwrap();
    for model in FAMILIES {
        let reply = perfect_box_reply(model, &geometry(model), orange_box());
        let file = dir.path().join(format!("{model}.json"));
        let messages = serde_json::json!([
            {"role": "user", "content": [
                {"type": "image", "image": scene()},
                {"type": "text", "text": "Where is the orange square?"}
            ]},
            {"role": "assistant", "content": [{"type": "text", "text": reply}]}
        ]);
        std::fs::write(&file, messages.to_string()).unwrap();
        let spec = model_dir(model).display().to_string();
        let session = glimpse::cli::chat::session_from_file(&file, &spec).unwrap();
        let mut keeper = SessionKeeper::new(Err("not saved in this test".into()), spec);
        let restored = keeper.resume(session);
        assert!(restored.notes.is_empty(), "{model}: {:?}", restored.notes);

        let mut h = Harness::loaded(model, 100, 50);
        h.send(Msg::Session(SessionEvent::Opened(Ok(Box::new(restored)))));
        let g = h.grounding().clone();
        assert_eq!(g.detections.len(), 1, "{model}: {g:?}");
        let got = g.detections[0].pixel_box().unwrap();
        assert!(close(got, square, 2), "{model}: {got:?} vs {square:?}");
        let [l, t, r, b] = got;
        let screen = h.screen();
        assert!(
            screen.contains(&format!("box ({l},{t})–({r},{b})")),
            "{model}\n{screen}"
        );
        assert!(
            h.encoded.contains_key(&g.overlay),
            "{model}: an overlay preview"
        );
    }
}
