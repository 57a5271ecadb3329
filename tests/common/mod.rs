//! Shared helpers for the integration tests: reading the recorded
//! transformers outputs, running glimpse's own pipeline up to the same
//! points, and facts about the fixture images.
#![allow(dead_code)]

pub mod app;

use std::path::{Path, PathBuf};
use std::process::Output;

use candle_core::{DType, Device, Tensor};
use serde_json::Value;

use glimpse::conversation::Conversation;
use glimpse::model::rope_index::rope_index;
use glimpse::model::{Family, VlModel};
use glimpse::processor::grounding::ImageGeometry;
use glimpse::processor::image::{load_image_with, AlphaMode};
use glimpse::processor::prompt::build_prompt_ids;
use glimpse::processor::template::ChatTemplate;
use glimpse::processor::template::RenderOptions;
use glimpse::processor::tokenizer::TextTokenizer;
use glimpse::processor::vision_input::{
    preprocess_image, PreprocessedImage, VisionPreprocessConfig,
};

/// Checks the one-line error of loading the invalid fixture `path` against
/// its `# expect-line: N` and `# expect: TEXT` comments; `line` is the line
/// the error carries (`None` when it is not an error about the content).
pub fn check_expected_error(path: &Path, message: &str, line: Option<usize>) {
    let text = std::fs::read_to_string(path).unwrap();
    let expected_line: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("# expect-line: "))
        .unwrap_or_else(|| panic!("{}: no expect-line", path.display()))
        .parse()
        .unwrap();
    let expected: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .collect();
    assert!(!expected.is_empty(), "{}: no expect", path.display());
    let Some(line) = line else {
        panic!("{}: not a content error: {message}", path.display());
    };
    assert_eq!(line, expected_line, "{}: {message}", path.display());
    assert!(
        message.starts_with(&format!(
            "{}, line {expected_line}, column ",
            path.display()
        )),
        "{message}"
    );
    for part in expected {
        assert!(
            message.contains(part),
            "{}: {message:?} lacks {part:?}",
            path.display()
        );
    }
    assert!(!message.contains('\n'), "one line: {message:?}");
}

/// The `.toml` files of `tests/fixtures/FOLDER/KIND`, sorted.
pub fn toml_fixtures(folder: &str, kind: &str) -> Vec<PathBuf> {
    let dir = fixtures().join(folder).join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no {folder}/{kind} fixtures");
    files
}

/// Every family with a tiny checkpoint in `tests/fixtures/models`, sorted.
pub fn fixture_families() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures().join("models"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The bounds `[left, top, right, bottom]` (right and bottom exclusive) of
/// the orange square in `images/scene_333x211.png`, read from its pixels.
pub fn orange_square_in_scene() -> [u32; 4] {
    let img = load_image_with(
        &fixtures().join("images/scene_333x211.png"),
        None,
        AlphaMode::White,
    )
    .unwrap()
    .rgb;
    let (mut l, mut t, mut r, mut b) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in img.enumerate_pixels() {
        let [red, green, blue] = p.0;
        if red > 220 && green < 140 && blue < 60 {
            (l, t, r, b) = (l.min(x), t.min(y), r.max(x + 1), b.max(y + 1));
        }
    }
    assert!(l < r && t < b, "the scene has an orange square");
    [l, t, r, b]
}

pub struct Reference {
    pub name: String,
    pub json: Value,
}

impl Reference {
    pub fn all() -> Vec<Reference> {
        let mut out: Vec<Reference> = std::fs::read_dir(fixtures().join("reference"))
            .expect("tests/fixtures/reference exists")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| Reference {
                name: p.file_stem().unwrap().to_string_lossy().into_owned(),
                json: serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            })
            .filter(|r| r.json.get("family").is_some())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    pub fn by_name(name: &str) -> Reference {
        Self::all()
            .into_iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no reference named {name}"))
    }

    pub fn model_dir(&self) -> PathBuf {
        fixtures().join(self.json["model"].as_str().unwrap())
    }

    pub fn conversation_path(&self) -> PathBuf {
        fixtures().join(self.json["conversation"].as_str().unwrap())
    }

    pub fn conversation(&self) -> Conversation {
        Conversation::from_json_file(&self.conversation_path()).unwrap()
    }

    /// The `enable_thinking` the reference was rendered with (`None`: the
    /// template's default).
    pub fn thinking(&self) -> Option<bool> {
        self.json.get("enable_thinking").and_then(Value::as_bool)
    }

    pub fn u32s(&self, key: &str) -> Vec<u32> {
        as_u32s(&self.json[key])
    }

    pub fn grids(&self) -> Vec<[usize; 3]> {
        self.json["image_grid_thw"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                let v: Vec<usize> = g
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as usize)
                    .collect();
                [v[0], v[1], v[2]]
            })
            .collect()
    }
}

pub fn as_u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

pub fn as_f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// Everything glimpse computes before the decoder, for one reference case.
pub struct Prepared {
    pub model: VlModel,
    pub tokenizer: TextTokenizer,
    pub images: Vec<PreprocessedImage>,
    pub ids: Vec<u32>,
}

pub fn preprocess_config(model: &VlModel) -> VisionPreprocessConfig {
    let defaults = match model.family().dense() {
        Family::Qwen3Vl | Family::Qwen35 => VisionPreprocessConfig::qwen3_vl_defaults(),
        _ => VisionPreprocessConfig::qwen2_vl_defaults(),
    };
    VisionPreprocessConfig::from_model_dir(&model.dir, defaults).unwrap()
}

pub fn prepare(r: &Reference) -> Prepared {
    let dir = r.model_dir();
    let model = VlModel::load(&dir, &Device::Cpu, DType::F32).unwrap();
    let tokenizer = TextTokenizer::from_model_dir(&dir).unwrap();
    let template = ChatTemplate::from_model_dir(&dir).unwrap();
    let cfg = preprocess_config(&model);
    let conv = r.conversation();
    let images: Vec<PreprocessedImage> = conv
        .images()
        .iter()
        .map(|p| {
            preprocess_image(&load_image_with(p, None, AlphaMode::Drop).unwrap(), &cfg).unwrap()
        })
        .collect();
    let counts: Vec<usize> = images
        .iter()
        .map(|i| i.num_image_tokens(cfg.merge_size))
        .collect();
    let ids = build_prompt_ids(
        &template,
        &tokenizer,
        &conv,
        model.config.image_token_id,
        &counts,
        RenderOptions {
            add_generation_prompt: true,
            enable_thinking: r.thinking(),
        },
    )
    .unwrap()
    .ids;
    Prepared {
        model,
        tokenizer,
        images,
        ids,
    }
}

impl Prepared {
    pub fn grids(&self) -> Vec<[usize; 3]> {
        self.images.iter().map(|i| i.grid_thw).collect()
    }

    pub fn pixel_values(&self) -> Option<Tensor> {
        if self.images.is_empty() {
            return None;
        }
        let cols = self.images[0].cols;
        let data: Vec<f32> = self
            .images
            .iter()
            .flat_map(|i| i.pixel_values.iter().copied())
            .collect();
        Some(Tensor::from_vec(data.clone(), (data.len() / cols, cols), &Device::Cpu).unwrap())
    }

    pub fn positions(&self) -> glimpse::model::RopePositions {
        rope_index(
            &self.ids,
            self.model.config.image_token_id,
            &self.grids(),
            self.model.config.vision.spatial_merge_size,
        )
        .unwrap()
    }
}

/// max |a − b| / max |b|.
pub fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    let scale = b.iter().map(|y| y.abs()).fold(0.0f32, f32::max).max(1e-12);
    diff / scale
}

/// Compares a tensor against recorded summary statistics and samples.
pub fn check_stats(name: &str, t: &Tensor, stats: &Value, tol: f64) {
    let shape: Vec<usize> = stats["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(t.dims(), shape.as_slice(), "{name}: shape");
    let flat: Vec<f32> = t
        .flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap();
    let idx = as_u32s(&stats["sample_index"]);
    let want = as_f32s(&stats["sample"]);
    let got: Vec<f32> = idx.iter().map(|&i| flat[i as usize]).collect();
    let err = rel_err(&got, &want);
    assert!(
        err < tol as f32,
        "{name}: sampled values differ, rel err {err:e}"
    );
    let sum: f64 = flat.iter().map(|&x| x as f64).sum();
    let abs_sum: f64 = flat.iter().map(|&x| (x as f64).abs()).sum();
    let want_abs = stats["abs_sum"].as_f64().unwrap();
    let want_sum = stats["sum"].as_f64().unwrap();
    assert!(
        (abs_sum - want_abs).abs() <= tol * want_abs.max(1e-9),
        "{name}: abs sum {abs_sum} vs {want_abs}"
    );
    assert!(
        (sum - want_sum).abs() <= tol * want_abs.max(1e-9),
        "{name}: sum {sum} vs {want_sum}"
    );
}

/// What a perfect model of each family would write for a box, given the
/// box in original pixels: rounded to whole numbers in its own space.
pub fn perfect_box_reply(model: &str, g: &ImageGeometry, [l, t, r, b]: [f64; 4]) -> String {
    let (w, h) = (g.original.0 as f64, g.original.1 as f64);
    let rel = |x: f64, side: f64| (x / side * 1000.0).round();
    match model {
        "qwen2_vl" => format!(
            "<|object_ref_start|>orange square<|object_ref_end|><|box_start|>({},{}),({},{})<|box_end|>",
            rel(l, w),
            rel(t, h),
            rel(r, w),
            rel(b, h)
        ),
        "qwen2_5_vl" => {
            let (x1, y1) = g.original_to_model(l, t);
            let (x2, y2) = g.original_to_model(r, b);
            format!(
                "```json\n[{{\"bbox_2d\": [{}, {}, {}, {}], \"label\": \"orange square\"}}]\n```",
                x1.round(),
                y1.round(),
                x2.round(),
                y2.round()
            )
        }
        _ => format!(
            "```json\n[{{\"bbox_2d\": [{}, {}, {}, {}], \"label\": \"orange square\"}}]\n```",
            rel(l, w),
            rel(t, h),
            rel(r, w),
            rel(b, h)
        ),
    }
}

/// The stdout of a glimpse run that must have succeeded (else its exit code
/// and stderr, in the failure).
pub fn successful_stdout(out: &Output) -> &[u8] {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    &out.stdout
}

/// The qwen3_vl fixture model in a folder of its own, with the committed
/// chat template `template` (from `tests/fixtures/templates/`) as its
/// `chat_template.jinja`: a thinking checkpoint at test time.
pub fn model_with_template(template: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let source = fixtures().join("models/qwen3_vl");
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    std::fs::copy(
        fixtures().join("templates").join(template),
        dir.path().join("chat_template.jinja"),
    )
    .unwrap();
    dir
}

/// Submits a request rendered the way the reference `r` was (thinking on,
/// off or the template's default).
pub fn ask_like(
    engine: &glimpse::engine::Engine,
    r: &Reference,
    conversation: Conversation,
    sampling: glimpse::engine::SamplingOverrides,
) -> std::sync::mpsc::Receiver<glimpse::engine::Event> {
    let (reply, rx) = std::sync::mpsc::channel();
    engine
        .submit(glimpse::engine::Request {
            conversation,
            sampling,
            reply,
            cancel: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
            context: glimpse::engine::ContextPolicy::Refuse,
            thinking: r.thinking(),
        })
        .unwrap();
    rx
}
