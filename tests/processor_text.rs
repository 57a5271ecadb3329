//! The text half of the processor against the shipped Qwen-VL chat templates,
//! a tiny byte-level tokenizer shaped like Qwen2's, and renderings made by
//! Jinja2 with transformers' chat-template settings (`render_cases.json`).

use std::path::{Path, PathBuf};

use glimpse::conversation::{Conversation, Message, Part, Role};
use glimpse::processor::detokenize::IncrementalDecoder;
use glimpse::processor::prompt::{build_prompt_ids, PromptError};
use glimpse::processor::template::RenderOptions;
use glimpse::processor::template::{ChatTemplate, TemplateError};
use glimpse::processor::tokenizer::{TextTokenizer, TokenizerError};

const TEMPLATES: [&str; 3] = ["qwen2_vl", "qwen2_vl_generation", "qwen3_vl"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/text")
}

fn template(name: &str) -> ChatTemplate {
    ChatTemplate::from_model_dir(&fixtures().join(name)).unwrap()
}

fn tokenizer() -> TextTokenizer {
    TextTokenizer::from_model_dir(&fixtures().join("tiny_tokenizer")).unwrap()
}

/// A fresh, empty directory under the system temp dir.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "glimpse-processor-text-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn image_then_text(text: &str) -> Conversation {
    Conversation {
        messages: vec![Message::parts(
            Role::User,
            vec![Part::Image("cat.png".into()), Part::Text(text.into())],
        )],
    }
}

#[test]
fn single_turn_example_is_byte_exact() {
    let conv = image_then_text("Describe this image.");
    let qwen2 = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n\
                 <|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe this image.<|im_end|>\n\
                 <|im_start|>assistant\n";
    let qwen3 = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe this image.<|im_end|>\n\
                 <|im_start|>assistant\n";
    assert_eq!(template("qwen2_vl").render(&conv, true).unwrap(), qwen2);
    assert_eq!(
        template("qwen2_vl_generation").render(&conv, true).unwrap(),
        qwen2
    );
    assert_eq!(template("qwen3_vl").render(&conv, true).unwrap(), qwen3);
}

#[test]
fn renders_exactly_like_jinja2_with_transformers_settings() {
    let text = std::fs::read_to_string(fixtures().join("render_cases.json")).unwrap();
    let cases: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 8);
    let templates: Vec<(&str, ChatTemplate)> =
        TEMPLATES.iter().map(|&n| (n, template(n))).collect();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let conv = Conversation::from_json_value(&case["messages"], Path::new("/images")).unwrap();
        let agp = case["add_generation_prompt"].as_bool().unwrap();
        for (tname, t) in &templates {
            let expected = case["expected"][*tname].as_str().unwrap();
            let got = t.render(&conv, agp).unwrap();
            assert_eq!(got, expected, "case {name}, template {tname}");
        }
    }
}

/// Whitespace control, loop controls, namespaces, macros, filters and Python
/// string methods, each checked against Jinja2's output (`jinja_cases.json`).
#[test]
fn jinja_features_render_like_jinja2() {
    let text = std::fs::read_to_string(fixtures().join("jinja_cases.json")).unwrap();
    let data: serde_json::Value = serde_json::from_str(&text).unwrap();
    let conv = Conversation::from_json_value(&data["messages"], Path::new(".")).unwrap();
    let agp = data["add_generation_prompt"].as_bool().unwrap();
    for case in data["cases"].as_array().unwrap() {
        let source = case["template"].as_str().unwrap();
        let t = ChatTemplate::from_source(source).unwrap();
        assert_eq!(
            t.render(&conv, agp).unwrap(),
            case["expected"].as_str().unwrap(),
            "template {source:?}"
        );
    }
}

#[test]
fn default_system_prompt_only_in_qwen2_vl() {
    let conv = Conversation {
        messages: vec![Message::text(Role::User, "Hi")],
    };
    assert_eq!(
        template("qwen2_vl").render(&conv, false).unwrap(),
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    );
    assert_eq!(
        template("qwen3_vl").render(&conv, false).unwrap(),
        "<|im_start|>user\nHi<|im_end|>\n"
    );

    let mut with_system = Conversation {
        messages: vec![Message::text(Role::System, "Be terse.")],
    };
    with_system.push(Message::text(Role::User, "Hi"));
    let expected = "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
    assert_eq!(
        template("qwen2_vl").render(&with_system, true).unwrap(),
        expected
    );
    assert_eq!(
        template("qwen3_vl").render(&with_system, true).unwrap(),
        expected
    );
}

#[test]
fn string_and_single_text_item_render_alike() {
    let as_string = Conversation {
        messages: vec![Message::text(Role::User, "你好 😀")],
    };
    let as_list = Conversation {
        messages: vec![Message::parts(
            Role::User,
            vec![Part::Text("你好 😀".into())],
        )],
    };
    for name in TEMPLATES {
        let t = template(name);
        assert_eq!(
            t.render(&as_string, true).unwrap(),
            t.render(&as_list, true).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn generation_tags_are_stripped_without_changing_output() {
    let t = template("qwen2_vl_generation");
    assert!(!t.source().contains("generation %}"));
    let plain = template("qwen2_vl");
    let mut conv = image_then_text("What is it?");
    conv.push(Message::text(Role::Assistant, "A cat."));
    conv.push(Message::parts(
        Role::Assistant,
        vec![Part::Text("Still a cat.".into())],
    ));
    assert_eq!(
        t.render(&conv, false).unwrap(),
        plain.render(&conv, false).unwrap()
    );
}

#[test]
fn template_lookup_order_and_sources() {
    let qwen3_source = template("qwen3_vl").source().to_string();

    // chat_template.jinja wins over chat_template.json.
    let dir = scratch_dir("jinja-first");
    std::fs::write(dir.join("chat_template.jinja"), "J{{ messages|length }}\n").unwrap();
    std::fs::write(
        dir.join("chat_template.json"),
        r#"{"chat_template": "JSON"}"#,
    )
    .unwrap();
    let t = ChatTemplate::from_model_dir(&dir).unwrap();
    assert_eq!(t.render(&image_then_text("x"), false).unwrap(), "J1");
    assert!(t.origin().ends_with("chat_template.jinja"));

    // tokenizer_config.json: a list of named templates, "default" taken; its
    // special tokens are visible to the template.
    let dir = scratch_dir("tokenizer-config");
    let config = serde_json::json!({
        "bos_token": null,
        "eos_token": "<|im_end|>",
        "pad_token": {"content": "<|endoftext|>", "special": true},
        "chat_template": [
            {"name": "tool_use", "template": "TOOLS"},
            {"name": "default", "template": "{{ bos_token }}|{{ eos_token }}|{{ pad_token }}|{{ add_generation_prompt }}"}
        ]
    });
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
    let t = ChatTemplate::from_model_dir(&dir).unwrap();
    assert_eq!(
        t.render(&image_then_text("x"), true).unwrap(),
        "|<|im_end|>|<|endoftext|>|True"
    );

    // The same template text through from_source renders the same.
    let t = ChatTemplate::from_source(&qwen3_source).unwrap();
    assert_eq!(
        t.render(&image_then_text("Describe this image."), true)
            .unwrap(),
        template("qwen3_vl")
            .render(&image_then_text("Describe this image."), true)
            .unwrap()
    );
}

#[test]
fn missing_template_error_names_dir_and_files() {
    let dir = scratch_dir("no-template");
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"eos_token": "<|im_end|>"}"#,
    )
    .unwrap();
    let e = ChatTemplate::from_model_dir(&dir).unwrap_err();
    assert!(matches!(e, TemplateError::NotFound { .. }));
    let msg = e.to_string();
    for needle in [
        dir.display().to_string().as_str(),
        "chat_template.jinja",
        "chat_template.json",
        "tokenizer_config.json",
    ] {
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
    }
    assert!(!msg.contains('\n'));

    std::fs::write(dir.join("chat_template.json"), "{not json").unwrap();
    let e = ChatTemplate::from_model_dir(&dir).unwrap_err();
    assert!(matches!(e, TemplateError::Json { .. }), "{e}");
    assert!(e.to_string().contains("chat_template.json"), "{e}");
}

/// transformers replaces each `<|image_pad|>` in the text by n copies and then
/// tokenizes; build_prompt_ids expands ids instead. Both must agree.
#[test]
fn expanding_ids_equals_expanding_text() {
    let tok = tokenizer();
    let pad_id = tok.token_id("<|image_pad|>").unwrap();
    let counts = [4usize, 1, 6, 9];
    let text = std::fs::read_to_string(fixtures().join("render_cases.json")).unwrap();
    let cases: serde_json::Value = serde_json::from_str(&text).unwrap();
    let case = cases
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "multi_turn_images_in_several_turns")
        .unwrap();
    let conv = Conversation::from_json_value(&case["messages"], Path::new("/images")).unwrap();
    assert_eq!(conv.images().len(), counts.len());

    for name in TEMPLATES {
        let t = template(name);
        let prompt =
            build_prompt_ids(&t, &tok, &conv, pad_id, &counts, RenderOptions::reply()).unwrap();
        assert_eq!(prompt.image_token_counts, counts);

        let rendered = t.render(&conv, true).unwrap();
        let mut pieces = rendered.split("<|image_pad|>");
        let mut expanded = pieces.next().unwrap().to_string();
        for (piece, n) in pieces.zip(counts) {
            expanded.push_str(&"<|image_pad|>".repeat(n));
            expanded.push_str(piece);
        }
        assert_eq!(prompt.ids, tok.encode(&expanded).unwrap(), "{name}");
        assert_eq!(
            prompt.ids.iter().filter(|&&id| id == pad_id).count(),
            counts.iter().sum::<usize>()
        );
        assert_eq!(tok.decode(&prompt.ids, false).unwrap(), expanded);
    }
}

#[test]
fn single_turn_ids_have_the_expected_shape() {
    let tok = tokenizer();
    let id = |t: &str| tok.token_id(t).unwrap();
    let t = template("qwen3_vl");
    let prompt = build_prompt_ids(
        &t,
        &tok,
        &image_then_text("Describe this image."),
        id("<|image_pad|>"),
        &[3],
        RenderOptions::reply(),
    )
    .unwrap();
    let mut expected = vec![id("<|im_start|>")];
    expected.extend(tok.encode("user\n").unwrap());
    expected.push(id("<|vision_start|>"));
    expected.extend([id("<|image_pad|>"); 3]);
    expected.push(id("<|vision_end|>"));
    expected.extend(tok.encode("Describe this image.").unwrap());
    expected.push(id("<|im_end|>"));
    expected.extend(tok.encode("\n").unwrap());
    expected.push(id("<|im_start|>"));
    expected.extend(tok.encode("assistant\n").unwrap());
    assert_eq!(prompt.ids, expected);
}

#[test]
fn image_count_mismatch_is_reported() {
    let tok = tokenizer();
    let pad = tok.token_id("<|image_pad|>").unwrap();
    let t = template("qwen2_vl");
    let conv = image_then_text("Describe this image.");
    let e = build_prompt_ids(&t, &tok, &conv, pad, &[4, 4], RenderOptions::reply()).unwrap_err();
    assert!(
        matches!(
            e,
            PromptError::ImageCountMismatch {
                placeholders: 1,
                images: 2
            }
        ),
        "{e}"
    );
    let e = build_prompt_ids(&t, &tok, &conv, pad, &[], RenderOptions::reply()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the rendered prompt has 1 image placeholder but 0 images were given; give one image per image item of the conversation"
    );
}

#[test]
fn incremental_decoding_of_chinese_and_emoji() {
    let text = "图片里有一只猫 🐱，它在睡觉 😴。你好你好！好😀 👨‍👩‍👧 done";
    let model_tok = TextTokenizer::from_model_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/qwen2_vl"),
    )
    .unwrap();
    for tok in [tokenizer(), model_tok] {
        let ids = tok.encode(text).unwrap();
        assert!(ids.len() > text.chars().count());

        let mut dec = IncrementalDecoder::new(tok.clone(), true);
        let mut pieces = Vec::new();
        for &id in &ids {
            if let Some(piece) = dec.push(id).unwrap() {
                assert!(!piece.contains('\u{FFFD}'), "broken character in {piece:?}");
                assert!(!piece.is_empty());
                pieces.push(piece);
            }
        }
        if let Some(piece) = dec.finish().unwrap() {
            pieces.push(piece);
        }
        assert!(pieces.len() > 10, "text should stream in many pieces");
        assert_eq!(pieces.concat(), text);
        assert_eq!(pieces.concat(), tok.decode(&ids, true).unwrap());
        assert_eq!(dec.text(), text);
    }
}

#[test]
fn incremental_decoding_keeps_or_drops_special_tokens_like_decode() {
    let tok = tokenizer();
    let mut ids = tok
        .encode(
            "<|object_ref_start|>一只猫<|object_ref_end|><|box_start|>(10,20),(30,40)<|box_end|>",
        )
        .unwrap();
    ids.push(151_700); // an embedding padding row: not a token
    ids.push(tok.token_id("<|im_end|>").unwrap());
    for skip in [false, true] {
        let mut dec = IncrementalDecoder::new(tok.clone(), skip);
        let mut out = String::new();
        for &id in &ids {
            if let Some(p) = dec.push(id).unwrap() {
                out.push_str(&p);
            }
        }
        if let Some(p) = dec.finish().unwrap() {
            out.push_str(&p);
        }
        assert_eq!(out, tok.decode(&ids, skip).unwrap(), "skip={skip}");
    }
    assert_eq!(tok.decode(&ids, true).unwrap(), "一只猫(10,20),(30,40)");
}

#[test]
fn unknown_ids_decode_to_nothing() {
    let tok = tokenizer();
    assert_eq!(tok.decode(&[151_935, 152_063], false).unwrap(), "");
    let mut dec = IncrementalDecoder::new(tok, false);
    assert_eq!(dec.push(151_935).unwrap(), None);
    assert_eq!(dec.finish().unwrap(), None);
    assert_eq!(dec.text(), "");
}

#[test]
fn missing_tokenizer_json_says_what_to_do() {
    let dir = scratch_dir("no-tokenizer");
    let e = TextTokenizer::from_model_dir(&dir).unwrap_err();
    assert!(matches!(e, TokenizerError::Missing { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains(&dir.join("tokenizer.json").display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("Hugging Face repository"), "{msg}");
    assert!(!msg.contains('\n'));
}

/// Every transformers reference: the rendered prompt, the expanded prompt ids,
/// and the greedy continuations decoded in one go and streamed id by id.
#[test]
fn matches_transformers_references() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("reference"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 32);
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let reference: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let model_dir = root.join(reference["model"].as_str().unwrap());
        let template = ChatTemplate::from_model_dir(&model_dir).unwrap();
        let tok = TextTokenizer::from_model_dir(&model_dir).unwrap();
        let conv =
            Conversation::from_json_file(&root.join(reference["conversation"].as_str().unwrap()))
                .unwrap();

        // Rendered with the reference's thinking choice (absent: the template's default).
        let options = RenderOptions {
            add_generation_prompt: true,
            enable_thinking: reference
                .get("enable_thinking")
                .and_then(serde_json::Value::as_bool),
        };
        let text = template.render_with(&conv, options).unwrap();
        assert_eq!(text, reference["prompt_text"].as_str().unwrap(), "{name}");

        let counts: Vec<usize> = reference["image_grid_thw"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                let g: Vec<usize> = g
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as usize)
                    .collect();
                g[0] * g[1] * g[2] / 4
            })
            .collect();
        let pad = tok.token_id("<|image_pad|>").unwrap();
        let prompt = build_prompt_ids(&template, &tok, &conv, pad, &counts, options).unwrap();
        let expected: Vec<u32> = reference["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(prompt.ids, expected, "{name}");

        let stops = [
            tok.token_id("<|im_end|>").unwrap(),
            tok.token_id("<|endoftext|>").unwrap(),
        ];
        for key in ["greedy", "greedy_generation_config"] {
            let mut ids: Vec<u32> = reference[key]["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            if ids.last().is_some_and(|id| stops.contains(id)) {
                ids.pop();
            }
            let want = reference[key]["text"].as_str().unwrap();
            assert_eq!(tok.decode(&ids, false).unwrap(), want, "{name} {key}");
            let mut dec = IncrementalDecoder::new(tok.clone(), false);
            let mut streamed = String::new();
            for &id in &ids {
                if let Some(piece) = dec.push(id).unwrap() {
                    streamed.push_str(&piece);
                }
            }
            if let Some(piece) = dec.finish().unwrap() {
                streamed.push_str(&piece);
            }
            assert_eq!(streamed, want, "{name} {key} streamed");
        }
    }
}

#[test]
fn types_can_move_to_an_engine_thread() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ChatTemplate>();
    send_sync::<TextTokenizer>();
    send_sync::<IncrementalDecoder>();
    send_sync::<TemplateError>();
    send_sync::<TokenizerError>();
    send_sync::<PromptError>();
}
