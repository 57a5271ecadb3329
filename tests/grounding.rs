//! Grounding from reply text to original-image pixels, for every family:
//! parser tables (good, messy, malicious), coordinate mapping on a real
//! fixture image through the real model configs, and a pixel snapshot of an
//! annotated image.

mod common;

use std::path::PathBuf;

use common::{fixtures, orange_square_in_scene, perfect_box_reply};
use glimpse::engine::{describe_images, EngineOptions};
use glimpse::processor::grounding::{
    annotate, ground_reply, map_detections, palette_colour, parse_reply, CoordinateSpace,
    Detection, Grounding, GroundingFamily, ImageGeometry, Shape, MAX_DETECTIONS,
};
use glimpse::processor::image::{load_image, LongEdgeCap};

const SCENE: &str = "images/scene_333x211.png";

fn scene_path() -> PathBuf {
    fixtures().join(SCENE)
}

/// The scene's geometry for a tiny model, as the engine prepares it.
fn geometry(model: &str, cap: Option<LongEdgeCap>) -> ImageGeometry {
    let mut options = EngineOptions::new(fixtures().join("models").join(model));
    options.long_edge_cap = cap;
    let (_, facts) = describe_images(&options, &[scene_path()]).unwrap();
    facts[0].geometry(cap.as_ref())
}

fn family(model: &str) -> GroundingFamily {
    GroundingFamily::from_model_type(model).unwrap()
}

/// What a table row expects: a label and a box or point in original pixels.
#[derive(Debug)]
enum Want {
    B(&'static str, [f64; 4]),
    P(&'static str, [f64; 2]),
}

struct Case {
    name: &'static str,
    reply: String,
    want: Vec<Want>,
    /// A fragment of some warning, per expected warning; none means none.
    warns: Vec<&'static str>,
}

fn case(name: &'static str, reply: &str, want: Vec<Want>, warns: &[&'static str]) -> Case {
    Case {
        name,
        reply: reply.to_string(),
        want,
        warns: warns.to_vec(),
    }
}

fn check_table(model: &str, cases: &[Case]) {
    let g = geometry(model, Some(LongEdgeCap::default()));
    for c in cases {
        let got = ground_reply(&c.reply, family(model), &[g], Some(0));
        assert_eq!(
            got.detections.len(),
            c.want.len(),
            "{model} / {}: {:?}",
            c.name,
            got
        );
        for (d, w) in got.detections.iter().zip(&c.want) {
            let (label, shape) = match w {
                Want::B(l, v) => (*l, Shape::Box(*v)),
                Want::P(l, v) => (*l, Shape::Point(*v)),
            };
            assert_eq!(d.label, label, "{model} / {}", c.name);
            assert_eq!(d.image, 0);
            assert!(
                close(&d.shape, &shape, 1e-6),
                "{model} / {}: got {:?}, want {:?}",
                c.name,
                d.shape,
                shape
            );
        }
        for fragment in &c.warns {
            assert!(
                got.warnings.iter().any(|w| w.contains(fragment)),
                "{model} / {}: no warning with {fragment:?} in {:?}",
                c.name,
                got.warnings
            );
        }
        if c.warns.is_empty() {
            assert!(
                got.warnings.is_empty(),
                "{model} / {}: {:?}",
                c.name,
                got.warnings
            );
        }
    }
}

fn close(a: &Shape, b: &Shape, tol: f64) -> bool {
    let (x, y): (&[f64], &[f64]) = match (a, b) {
        (Shape::Box(x), Shape::Box(y)) => (x, y),
        (Shape::Point(x), Shape::Point(y)) => (x, y),
        _ => return false,
    };
    x.iter().zip(y).all(|(p, q)| (p - q).abs() <= tol)
}

#[test]
fn the_fixture_scene_reaches_each_tiny_model_at_a_known_size() {
    assert_eq!(geometry("qwen2_vl", None).model_input, (280, 168));
    assert_eq!(geometry("qwen2_5_vl", None).model_input, (280, 168));
    assert_eq!(geometry("qwen3_vl", None).model_input, (320, 192));
    let capped = geometry(
        "qwen2_5_vl",
        Some(LongEdgeCap {
            threshold: 200,
            target: 150,
        }),
    );
    assert_eq!(capped.capped, (150, 95));
    assert_eq!(capped.model_input, (140, 84));
}

/// Qwen2-VL: special-token spans on the 0–1000 grid; the scene is 333×211,
/// so x scales by 0.333 and y by 0.211.
#[test]
fn qwen2_vl_table() {
    use Want::*;
    let cases = [
        case(
            "one labelled box",
            "<|object_ref_start|>the blue circle<|object_ref_end|><|box_start|>(120,140),(600,900)<|box_end|>",
            vec![B("the blue circle", [39.96, 29.54, 199.8, 189.9])],
            &[],
        ),
        case(
            "several boxes for one label, several labels",
            "<|object_ref_start|>squares<|object_ref_end|><|box_start|>(0,0),(100,100)<|box_end|><|box_start|>(500,500),(1000,1000)<|box_end|>\n\
             and <|object_ref_start|>红色方块<|object_ref_end|><|box_start|>(660,190),(930,810)<|box_end|><|im_end|>",
            vec![
                B("squares", [0.0, 0.0, 33.3, 21.1]),
                B("squares", [166.5, 105.5, 333.0, 211.0]),
                B("红色方块", [219.78, 40.09, 309.69, 170.91]),
            ],
            &[],
        ),
        case(
            "spaces, swapped corners, quotes in the label",
            "<|object_ref_start|> the \"big\" one <|object_ref_end|><|box_start|>( 600 , 900 ) , ( 120 , 140 )<|box_end|>",
            vec![B("the \"big\" one", [39.96, 29.54, 199.8, 189.9])],
            &[],
        ),
        case(
            "cut off after the numbers",
            "<|object_ref_start|>circle<|object_ref_end|><|box_start|>(120,140),(600,900)",
            vec![B("circle", [39.96, 29.54, 199.8, 189.9])],
            &["not closed"],
        ),
        case(
            "cut off inside the numbers",
            "<|object_ref_start|>circle<|object_ref_end|><|box_start|>(120,140),(6",
            vec![],
            &["found 3"],
        ),
        case(
            "out of the grid",
            "<|box_start|>(-20,140),(1200,900)<|box_end|><|box_start|>(1100,1100),(1300,1200)<|box_end|>",
            vec![B("", [0.0, 29.54, 333.0, 189.9])],
            &["clamped", "outside the image"],
        ),
        case(
            "malformed numbers",
            "<|box_start|>(1e999,1),(2,3)<|box_end|><|box_start|>(a,b),(c,d)<|box_end|>",
            vec![],
            &["out of any range", "found 0"],
        ),
        case("no grounding at all", "A blue circle and an orange square.", vec![], &[]),
    ];
    check_table("qwen2_vl", &cases);
}

/// Qwen2.5-VL: JSON in pixels of the 280×168 model input; x scales by
/// 333/280 and y by 211/168.
#[test]
fn qwen2_5_vl_table() {
    use Want::*;
    let cases = [
        case(
            "a fenced list of boxes and points",
            "```json\n[\n  {\"bbox_2d\": [28, 21, 140, 84], \"label\": \"top left\"},\n  {\"point_2d\": [280, 168], \"label\": \"corner\"}\n]\n```",
            vec![B("top left", [33.3, 26.375, 166.5, 105.5]), P("corner", [333.0, 211.0])],
            &[],
        ),
        case(
            "a single object in prose",
            "The square is here: {\"bbox_2d\": [0, 0, 56, 42], \"label\": \"square\"}. Anything else?",
            vec![B("square", [0.0, 0.0, 66.6, 52.75])],
            &[],
        ),
        case(
            "quotes, escapes and CJK in labels",
            r#"[{"bbox_2d": [0, 0, 56, 42], "label": "the \"big\" square"}, {"bbox_2d": [0, 0, 56, 42], "label": "红色的车 \u732b"}]"#,
            vec![
                B("the \"big\" square", [0.0, 0.0, 66.6, 52.75]),
                B("红色的车 猫", [0.0, 0.0, 66.6, 52.75]),
            ],
            &[],
        ),
        case(
            "single quotes, trailing commas, swapped corners",
            "[{'bbox_2d': [56, 42, 0, 0], 'label': 'square',},]",
            vec![B("square", [0.0, 0.0, 66.6, 52.75])],
            &[],
        ),
        case(
            "cut off in the second object",
            "```json\n[{\"bbox_2d\": [0, 0, 56, 42], \"label\": \"a\"}, {\"bbox_2d\": [0, 0, 5",
            vec![B("a", [0.0, 0.0, 66.6, 52.75])],
            &["bbox_2d was cut off"],
        ),
        case(
            "beyond the model input",
            "{\"bbox_2d\": [140, 84, 300, 200], \"label\": \"over\"}",
            vec![B("over", [166.5, 105.5, 333.0, 211.0])],
            &["280×168 model input"],
        ),
        case(
            "wrong shapes and types",
            r#"[{"bbox_2d": [1, 2, 3]}, {"bbox_2d": ["1", 2, 3, 4]}, {"point_2d": [NaN, 1]}, {"bbox_2d": null}]"#,
            vec![],
            &["found 3", "not a list of plain numbers"],
        ),
        case(
            "JSON that is not grounding",
            "{\"answer\": 42, \"colours\": [\"blue\", \"orange\"]}",
            vec![],
            &[],
        ),
    ];
    check_table("qwen2_5_vl", &cases);
}

/// Qwen3-VL: JSON on the 0–1000 grid (inclusive; beyond is clamped).
#[test]
fn qwen3_vl_table() {
    use Want::*;
    let cases = [
        case(
            "the whole grid is the whole image",
            "```json\n[{\"bbox_2d\": [0, 0, 1000, 1000], \"label\": \"everything\"}, {\"point_2d\": [500, 500], \"label\": \"centre\"}]\n```",
            vec![B("everything", [0.0, 0.0, 333.0, 211.0]), P("centre", [166.5, 105.5])],
            &[],
        ),
        case(
            "several fenced blocks with prose between",
            "First:\n```json\n{\"bbox_2d\": [660, 190, 930, 810], \"label\": \"orange square\"}\n```\nSecond:\n```json\n{\"point_2d\": [360, 520], \"label\": \"circle\"}\n```",
            vec![B("orange square", [219.78, 40.09, 309.69, 170.91]), P("circle", [119.88, 109.72])],
            &[],
        ),
        case(
            "just past the grid",
            "[{\"bbox_2d\": [-1, 0, 1001, 1000], \"label\": \"x\"}]",
            vec![B("x", [0.0, 0.0, 333.0, 211.0])],
            &["0–1000 grid"],
        ),
        case(
            "nested corner lists and extra fields",
            "{\"bbox_2d\": [[0, 0], [500, 500]], \"label\": \"a\", \"attributes\": {\"colour\": \"blue\"}}",
            vec![B("a", [0.0, 0.0, 166.5, 105.5])],
            &[],
        ),
        case(
            "bare corner pairs when the model ignores the format",
            "orange square: (660,190),(930,810)",
            vec![B("orange square", [219.78, 40.09, 309.69, 170.91])],
            &[],
        ),
        case(
            "a picture number beyond the conversation",
            "Picture 3: {\"point_2d\": [500, 500]}",
            vec![P("", [166.5, 105.5])],
            &["picture 3"],
        ),
    ];
    check_table("qwen3_vl", &cases);
}

#[test]
fn boxes_land_on_the_object_in_the_original_image_for_every_family_and_cap() {
    let truth = orange_square_in_scene().map(f64::from);
    let caps = [
        None,
        Some(LongEdgeCap::default()),
        Some(LongEdgeCap {
            threshold: 200,
            target: 150,
        }),
    ];
    for model in ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"] {
        for cap in caps {
            let g = geometry(model, cap);
            let reply = perfect_box_reply(model, &g, truth);
            let got = ground_reply(&reply, family(model), &[g], Some(0));
            assert_eq!(got.detections.len(), 1, "{model} {cap:?}: {got:?}");
            // Whole units of the model's own space, mapped back: at most
            // half a unit off, in original pixels.
            let (ow, oh) = (g.original.0 as f64, g.original.1 as f64);
            let unit = match family(model) {
                GroundingFamily::Qwen25Vl => {
                    [ow / g.model_input.0 as f64, oh / g.model_input.1 as f64]
                }
                _ => [ow / 1000.0, oh / 1000.0],
            };
            let Shape::Box(b) = got.detections[0].shape else {
                panic!("a box")
            };
            for (i, (v, want)) in b.iter().zip(truth).enumerate() {
                assert!(
                    (v - want).abs() <= unit[i % 2] / 2.0 + 1e-9,
                    "{model} {cap:?}: {b:?} vs {truth:?} ({reply})"
                );
            }
        }
    }
}

#[test]
fn boxes_go_to_the_last_image_unless_the_reply_names_one() {
    let a = geometry("qwen3_vl", None);
    let b = ImageGeometry::new((1000, 500), None, (992, 480));
    let reply = "{\"point_2d\": [500, 500]}\nPicture 1: {\"point_2d\": [500, 500]}";
    let got = ground_reply(reply, GroundingFamily::Qwen3Vl, &[a, b], Some(1));
    let placed: Vec<(usize, Shape)> = got.detections.iter().map(|d| (d.image, d.shape)).collect();
    assert_eq!(
        placed,
        vec![
            (1, Shape::Point([500.0, 250.0])),
            (0, Shape::Point([166.5, 105.5]))
        ]
    );
}

/// Replies no model should write, each 10 MB or so: the parser must come
/// back (no hang, no panic, no runaway memory) with bounded results.
#[test]
fn garbage_replies_never_crash_or_hang() {
    const SIZE: usize = 10 << 20;
    let repeat = |unit: &str| unit.repeat(SIZE / unit.len().max(1));
    let mut noise = String::with_capacity(SIZE);
    let mut state: u32 = 12345;
    let alphabet: Vec<char> = "{}[]()<>|\"':,.-+0123456789eE_ abxyz猫\n\\`"
        .chars()
        .collect();
    while noise.len() < SIZE {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        noise.push(alphabet[(state >> 16) as usize % alphabet.len()]);
    }
    let replies = [
        repeat("9"),
        repeat("["),
        repeat("{"),
        repeat("\""),
        repeat("("),
        repeat("(1,"),
        repeat("<|box_start|>"),
        repeat("<|object_ref_start|>"),
        repeat("<|box_start|>(1,2),(3,4)<|box_end|>"),
        repeat("{\"bbox_2d\": ["),
        repeat("[{\"bbox_2d\": [1, 2, 3, 4], \"label\": \"x\"},"),
        repeat("{\"label\": \"") + "\"}",
        repeat("Picture 1: "),
        repeat("```"),
        format!("{{\"bbox_2d\": [{}, 1, 2, 3]}}", "9".repeat(SIZE)),
        format!("<|box_start|>({},1),(2,3)<|box_end|>", "-".repeat(SIZE)),
        noise,
    ];
    let geometries = [
        ImageGeometry::new((333, 211), None, (280, 168)),
        ImageGeometry::new((1, 1), None, (56, 56)),
    ];
    for (i, reply) in replies.iter().enumerate() {
        let parsed = parse_reply(reply);
        assert!(parsed.detections.len() <= MAX_DETECTIONS, "reply {i}");
        assert!(
            parsed.warnings.len() <= 22,
            "reply {i}: {}",
            parsed.warnings.len()
        );
        for label in parsed.detections.iter().map(|d| &d.label) {
            assert!(label.chars().count() <= 201, "reply {i}");
        }
        for space in [
            CoordinateSpace::Relative1000,
            CoordinateSpace::ModelInputPixels,
        ] {
            let got = map_detections(&parsed, space, &geometries, Some(1));
            for d in &got.detections {
                let v: Vec<f64> = match d.shape {
                    Shape::Box(b) => b.to_vec(),
                    Shape::Point(p) => p.to_vec(),
                };
                assert!(v.iter().all(|x| x.is_finite() && *x >= 0.0), "reply {i}");
            }
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The detections of the snapshot: a labelled box, a point with a CJK label
/// (lettered with the embedded outline fonts), an unnamed box cut by the
/// image edge.
fn snapshot_grounding() -> Grounding {
    let reply = "```json\n[\n {\"bbox_2d\": [660, 190, 930, 810], \"label\": \"orange square\"},\n {\"point_2d\": [360, 520], \"label\": \"圆 circle\"},\n {\"bbox_2d\": [-50, 450, 300, 1100]}\n]\n```";
    let g = geometry("qwen3_vl", None);
    ground_reply(reply, GroundingFamily::Qwen3Vl, &[g], Some(0))
}

#[test]
fn annotated_scene_matches_its_pixel_snapshot() {
    let scene = load_image(&scene_path(), None).unwrap().rgb;
    let grounding = snapshot_grounding();
    assert_eq!(grounding.detections.len(), 3);
    let colours: Vec<[u8; 3]> = grounding.detections.iter().map(|d| d.colour).collect();
    assert_eq!(
        colours,
        vec![palette_colour(0), palette_colour(1), palette_colour(2)]
    );

    let drawn = annotate(&scene, &grounding.detections, None);
    // Through a PNG file, as `ask --annotate` writes it.
    let dir = std::env::temp_dir().join(format!("glimpse-grounding-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("annotated.png");
    drawn.save(&file).unwrap();
    let reread = image::open(&file).unwrap().to_rgb8();
    assert_eq!(reread, drawn);

    // The marks are where the boxes are: the orange square's outline in its
    // palette colour, the point's centre in its own.
    let d0: &Detection = &grounding.detections[0];
    let [l, t, _, b] = d0.pixel_box().unwrap();
    assert_eq!(reread.get_pixel(l, (t + b) / 2).0, palette_colour(0));
    let [px, py] = grounding.detections[1].pixel_point().unwrap();
    assert_eq!(reread.get_pixel(px, py).0, palette_colour(1));

    let hash = fnv1a(reread.as_raw());
    let _ = std::fs::remove_dir_all(&dir);
    // Drawing changes (font, widths, placement, palette) change this value;
    // look at the image before accepting a new one.
    assert_eq!(
        hash, 0xd75a_9d0a_7cd2_0ffa,
        "annotated snapshot changed: new hash {hash:#018x}"
    );
}
