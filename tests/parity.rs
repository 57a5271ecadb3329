//! Parity with Hugging Face transformers on tiny random-weight models of all
//! families. The reference outputs were recorded by
//! `tests/fixtures/generate.py` (transformers 5.17, f32, eager attention) and
//! are committed, so these tests need no Python.

mod common;

use candle_core::{DType, Device, Tensor};
use common::*;
use glimpse::engine::{
    DeviceChoice, DtypeChoice, Engine, EngineOptions, Event, FinishReason, SamplingOverrides,
};
use glimpse::model::config::MropeLayout;
use glimpse::model::{Ablations, MoeAblations, VlModel};
use glimpse::processor::image::AlphaMode;

/// Logits within this relative error of the reference (max-abs / max-abs).
/// f32 logits agree with torch's to about 1e-4 relative; the last digits
/// depend on the summation order of the CPU's matrix kernels (AVX2 or
/// AVX-512 lanes), so the bound leaves that much room. Every ablation below
/// moves the logits by more than a hundred times this.
const LOGITS_TOL: f32 = 2e-4;

fn first_logits(p: &Prepared, positions: &[[i64; 3]], images: bool) -> Vec<f32> {
    let vision = if images {
        p.pixel_values()
            .map(|px| p.model.encode_images(&px, &p.grids()).unwrap())
    } else {
        None
    };
    let mut cache = p.model.new_cache();
    p.model
        .forward(&p.ids, positions, vision.as_ref(), &mut cache)
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn every_family_and_conversation_has_a_reference() {
    let refs = Reference::all();
    for family in fixture_families() {
        let n = refs
            .iter()
            .filter(|r| r.json["family"] == family.as_str())
            .count();
        assert!(n >= 5, "{family}: only {n} reference cases");
    }
}

#[test]
fn prompt_ids_and_grids_match_transformers() {
    for r in Reference::all() {
        let p = prepare(&r);
        assert_eq!(p.grids(), r.grids(), "{}: image_grid_thw", r.name);
        assert_eq!(p.ids, r.u32s("input_ids"), "{}: input ids", r.name);
    }
}

#[test]
fn pixel_values_match_transformers() {
    for r in Reference::all() {
        let p = prepare(&r);
        match p.pixel_values() {
            None => assert!(r.json["pixel_values"].is_null(), "{}", r.name),
            Some(px) => check_stats(
                &format!("{} pixel_values", r.name),
                &px,
                &r.json["pixel_values"],
                1e-5,
            ),
        }
    }
}

#[test]
fn position_ids_match_transformers() {
    for r in Reference::all() {
        let p = prepare(&r);
        let pos = p.positions();
        let want = &r.json["position_ids"];
        for axis in 0..3 {
            let got: Vec<i64> = pos.positions.iter().map(|t| t[axis]).collect();
            let exp: Vec<i64> = want[axis]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect();
            assert_eq!(got, exp, "{}: position axis {axis}", r.name);
        }
        assert_eq!(
            pos.delta,
            r.json["rope_delta"].as_i64().unwrap(),
            "{}: rope delta",
            r.name
        );
    }
}

#[test]
fn vision_tower_outputs_match_transformers() {
    for r in Reference::all() {
        let p = prepare(&r);
        let Some(px) = p.pixel_values() else { continue };
        let out = p.model.encode_images(&px, &p.grids()).unwrap();
        check_stats(
            &format!("{} image_embeds", r.name),
            &out.embeds,
            &r.json["image_embeds"],
            1e-4,
        );
        let ds = r.json["deepstack"].as_array().unwrap();
        assert_eq!(
            out.deepstack.len(),
            ds.len(),
            "{}: deepstack levels",
            r.name
        );
        for (k, (t, stats)) in out.deepstack.iter().zip(ds).enumerate() {
            check_stats(&format!("{} deepstack[{k}]", r.name), t, stats, 1e-4);
        }
    }
}

#[test]
fn vision_attention_in_small_row_blocks_gives_the_same_features() {
    let r = Reference::by_name("qwen2_vl__system_prompt");
    let mut p = prepare(&r);
    // A few query rows per block instead of whole images.
    p.model.set_vision_attention_block(2 * 7 * 240);
    let out = p
        .model
        .encode_images(&p.pixel_values().unwrap(), &p.grids())
        .unwrap();
    check_stats(
        "blocked image_embeds",
        &out.embeds,
        &r.json["image_embeds"],
        1e-4,
    );
}

#[test]
fn first_step_logits_match_transformers() {
    for r in Reference::all() {
        let p = prepare(&r);
        let got = first_logits(&p, &p.positions().positions, true);
        let want = as_f32s(&r.json["first_logits"]);
        let err = rel_err(&got, &want);
        assert!(
            err < LOGITS_TOL,
            "{}: first-step logits rel err {err:e}",
            r.name
        );
    }
}

fn engine_for(r: &Reference) -> Engine {
    let mut options = EngineOptions::new(r.model_dir());
    options.device = DeviceChoice::Cpu;
    options.dtype = DtypeChoice::F32;
    options.long_edge_cap = None;
    // transformers drops the alpha channel of transparent images.
    options.alpha = AlphaMode::Drop;
    Engine::load(options).unwrap()
}

fn run_to_done(
    engine: &Engine,
    r: &Reference,
    conv: glimpse::conversation::Conversation,
    o: SamplingOverrides,
) -> (Vec<u32>, Vec<u32>, (String, String), FinishReason) {
    let rx = ask_like(engine, r, conv, o);
    let mut prompt = vec![];
    for ev in rx {
        match ev {
            Event::Prompt { ids, .. } => prompt = ids,
            Event::Done {
                tokens,
                text,
                reasoning,
                finish_reason,
                ..
            } => return (prompt, tokens, (reasoning, text), finish_reason),
            Event::Error(e) => panic!("engine error: {e}"),
            _ => {}
        }
    }
    panic!("no Done event")
}

/// A reference's decoded text as (reasoning, answer): before `</think>`
/// when the prompt left a `<think>` block open, trimmed as the engine trims.
fn reference_split(r: &Reference, whole: &str, prompt: &[u32]) -> (String, String) {
    let tokenizer =
        glimpse::processor::tokenizer::TextTokenizer::from_model_dir(&r.model_dir()).unwrap();
    let markers = glimpse::processor::reasoning::ThinkTokens::of(&tokenizer);
    if !markers.is_some_and(|m| m.prompt_opens(prompt)) {
        return (String::new(), whole.to_string());
    }
    match whole.split_once("</think>") {
        Some((reasoning, answer)) => (reasoning.trim().into(), answer.trim_start().into()),
        None => (whole.trim().into(), String::new()),
    }
}

#[test]
fn greedy_tokens_match_transformers_through_the_engine() {
    for r in Reference::all() {
        let engine = engine_for(&r);
        for (key, penalty) in [("greedy", Some(1.0)), ("greedy_generation_config", None)] {
            let o = SamplingOverrides {
                temperature: Some(0.0),
                repetition_penalty: penalty,
                max_new_tokens: Some(24),
                ..Default::default()
            };
            let (prompt, tokens, split, finish) = run_to_done(&engine, &r, r.conversation(), o);
            assert_eq!(prompt, r.u32s("input_ids"), "{}: prompt", r.name);
            let want = as_u32s(&r.json[key]["tokens"]);
            assert_eq!(tokens, want, "{}: {key} tokens", r.name);
            // transformers decodes reasoning and answer as one text; the
            // engine keeps them apart, split where the text says.
            let whole = r.json[key]["text"].as_str().unwrap();
            assert_eq!(
                split,
                reference_split(&r, whole, &prompt),
                "{}: {key} text",
                r.name
            );
            let expected_finish = if want.len() < 24 {
                FinishReason::Stop
            } else {
                FinishReason::Length
            };
            assert_eq!(finish, expected_finish, "{}: {key} finish reason", r.name);
        }
    }
}

#[test]
fn a_second_turn_reuses_the_cache_and_still_matches() {
    // Ask the first turn of the two-turn conversation, then the whole
    // conversation on the same engine: the prefix is reused from the cache.
    for family in fixture_families() {
        let r = Reference::by_name(&format!("{family}__two_turns"));
        let engine = engine_for(&r);
        let full = r.conversation();
        let first = glimpse::conversation::Conversation {
            messages: full.messages[..1].to_vec(),
        };
        let greedy = || SamplingOverrides {
            temperature: Some(0.0),
            repetition_penalty: Some(1.0),
            max_new_tokens: Some(24),
            ..Default::default()
        };
        run_to_done(&engine, &r, first, greedy());
        let rx = ask_like(&engine, &r, full, greedy());
        let mut cached = 0;
        let mut tokens = vec![];
        for ev in rx {
            match ev {
                Event::Prompt { cached_tokens, .. } => cached = cached_tokens,
                Event::Done { tokens: t, .. } => tokens = t,
                Event::Error(e) => panic!("{e}"),
                _ => {}
            }
        }
        assert!(
            cached > 10,
            "{family}: expected the first turn to be reused, got {cached}"
        );
        assert_eq!(
            tokens,
            as_u32s(&r.json["greedy"]["tokens"]),
            "{family}: tokens after reuse"
        );
    }
}

// The tests below show that the parity checks above would catch the classic
// porting mistakes: each one breaks a mechanism and expects the logits to move
// far outside the tolerance.

fn moved(r: &Reference, got: &[f32]) -> f32 {
    rel_err(got, &as_f32s(&r.json["first_logits"]))
}

#[test]
fn one_dimensional_positions_would_be_caught() {
    for family in fixture_families() {
        let r = Reference::by_name(&format!("{family}__single_image"));
        let p = prepare(&r);
        let flat: Vec<[i64; 3]> = (0..p.ids.len() as i64).map(|i| [i, i, i]).collect();
        let err = moved(&r, &first_logits(&p, &flat, true));
        assert!(
            err > 100.0 * LOGITS_TOL,
            "{family}: 1-D positions only moved logits by {err:e}"
        );
    }
}

#[test]
fn a_dropped_image_would_be_caught() {
    for family in fixture_families() {
        let r = Reference::by_name(&format!("{family}__two_images"));
        let p = prepare(&r);
        let px = p.pixel_values().unwrap();
        let mut out = p.model.encode_images(&px, &p.grids()).unwrap();
        // Replace the second image's features with zeros.
        let n0 = glimpse::model::rope_index::image_token_count(p.grids()[0], 2);
        let keep = out.embeds.narrow(0, 0, n0).unwrap();
        let rest = out.embeds.dim(0).unwrap() - n0;
        let zeros =
            Tensor::zeros((rest, out.embeds.dim(1).unwrap()), DType::F32, &Device::Cpu).unwrap();
        out.embeds = Tensor::cat(&[&keep, &zeros], 0).unwrap();
        let mut cache = p.model.new_cache();
        let got: Vec<f32> = p
            .model
            .forward(&p.ids, &p.positions().positions, Some(&out), &mut cache)
            .unwrap()
            .to_vec1()
            .unwrap();
        let err = moved(&r, &got);
        assert!(
            err > 100.0 * LOGITS_TOL,
            "{family}: dropping an image only moved logits by {err:e}"
        );
    }
}

#[test]
fn the_wrong_rope_layout_would_be_caught() {
    for (family, wrong) in [
        ("qwen3_vl", MropeLayout::Chunked),
        ("qwen2_vl", MropeLayout::Interleaved),
    ] {
        let r = Reference::by_name(&format!("{family}__single_image"));
        let mut p = prepare(&r);
        p.model.ablate(Ablations {
            rope_layout: Some(wrong),
            ..Default::default()
        });
        let err = moved(&r, &first_logits(&p, &p.positions().positions, true));
        assert!(
            err > 100.0 * LOGITS_TOL,
            "{family}: {wrong:?} layout only moved logits by {err:e}"
        );
    }
}

#[test]
fn full_attention_instead_of_windows_would_be_caught() {
    let r = Reference::by_name("qwen2_5_vl__system_prompt");
    let mut p = prepare(&r);
    p.model.ablate(Ablations {
        full_vision_attention: true,
        ..Default::default()
    });
    let err = moved(&r, &first_logits(&p, &p.positions().positions, true));
    assert!(
        err > 100.0 * LOGITS_TOL,
        "window attention ablation only moved logits by {err:e}"
    );
}

#[test]
fn a_missing_deepstack_would_be_caught() {
    let r = Reference::by_name("qwen3_vl__single_image");
    let p = prepare(&r);
    let px = p.pixel_values().unwrap();
    let mut out = p.model.encode_images(&px, &p.grids()).unwrap();
    out.deepstack.clear();
    let mut cache = p.model.new_cache();
    let got: Vec<f32> = p
        .model
        .forward(&p.ids, &p.positions().positions, Some(&out), &mut cache)
        .unwrap()
        .to_vec1()
        .unwrap();
    let err = moved(&r, &got);
    assert!(
        err > 100.0 * LOGITS_TOL,
        "dropping DeepStack only moved logits by {err:e}"
    );
}

// Qwen3.5's linear-attention layers carry a convolution state and a
// recurrent state from one forward pass to the next. Feeding a prompt in
// pieces (a chunked prefill, then single tokens on the recurrent path, as in
// decoding) must give the logits of the whole prompt at once; the ablations
// below show that dropping either state, the attention output gate or the
// `1 + weight` of the norms moves them far.

/// The logits after feeding all but the last `tail` prompt tokens at once,
/// then those one at a time.
fn logits_in_pieces(p: &Prepared, tail: usize) -> Vec<f32> {
    let positions = p.positions().positions;
    let n = p.ids.len() - tail;
    let vision = p
        .pixel_values()
        .map(|px| p.model.encode_images(&px, &p.grids()).unwrap());
    let mut cache = p.model.new_cache();
    let mut logits = p
        .model
        .forward(&p.ids[..n], &positions[..n], vision.as_ref(), &mut cache)
        .unwrap();
    for i in n..p.ids.len() {
        logits = p
            .model
            .forward(&p.ids[i..=i], &positions[i..=i], None, &mut cache)
            .unwrap();
    }
    logits.to_vec1().unwrap()
}

#[test]
fn qwen3_5_states_carry_across_pieces_of_a_prompt() {
    for name in [
        "qwen3_5__two_turns",
        "qwen3_5__text_only",
        "qwen3_5_moe__two_turns",
    ] {
        let r = Reference::by_name(name);
        let p = prepare(&r);
        let err = moved(&r, &logits_in_pieces(&p, 6));
        assert!(err < LOGITS_TOL, "{name}: pieces rel err {err:e}");
    }
}

fn qwen3_5_ablation_moves(ablation: glimpse::model::TextAblations, in_pieces: bool) -> f32 {
    let r = Reference::by_name("qwen3_5__two_turns");
    let mut p = prepare(&r);
    p.model.ablate(Ablations {
        text: ablation,
        ..Default::default()
    });
    let got = if in_pieces {
        logits_in_pieces(&p, 6)
    } else {
        first_logits(&p, &p.positions().positions, true)
    };
    moved(&r, &got)
}

#[test]
fn a_wrong_conv_state_would_be_caught() {
    let mut a = glimpse::model::TextAblations::default();
    a.delta_net.forget_conv_state = true;
    let err = qwen3_5_ablation_moves(a, true);
    assert!(
        err > 100.0 * LOGITS_TOL,
        "a zero conv state only moved logits by {err:e}"
    );
}

#[test]
fn a_recurrent_state_not_carried_would_be_caught() {
    let mut a = glimpse::model::TextAblations::default();
    a.delta_net.forget_recurrent_state = true;
    let err = qwen3_5_ablation_moves(a, true);
    assert!(
        err > 100.0 * LOGITS_TOL,
        "a recurrent state not carried only moved logits by {err:e}"
    );
}

#[test]
fn a_missing_output_gate_would_be_caught() {
    let a = glimpse::model::TextAblations {
        no_output_gate: true,
        ..Default::default()
    };
    let err = qwen3_5_ablation_moves(a, false);
    assert!(
        err > 100.0 * LOGITS_TOL,
        "dropping the output gate only moved logits by {err:e}"
    );
}

#[test]
fn norm_weights_without_one_plus_would_be_caught() {
    let a = glimpse::model::TextAblations {
        stored_norm_weights: true,
        ..Default::default()
    };
    let err = qwen3_5_ablation_moves(a, false);
    assert!(
        err > 100.0 * LOGITS_TOL,
        "weight instead of 1 + weight only moved logits by {err:e}"
    );
}

// Mixture of experts: the prompt's tokens go to their experts in groups and
// each decoding step through its own top-k, so feeding a prompt in pieces
// must give the logits of the whole; routing, the shared expert's gate, the
// fused experts' layout and the dense layers each move the logits far when
// got wrong.

#[test]
fn experts_chosen_per_piece_give_the_logits_of_the_whole_prompt() {
    for name in ["qwen3_vl_moe__two_images", "qwen3_vl_moe__text_only"] {
        let r = Reference::by_name(name);
        let p = prepare(&r);
        let err = moved(&r, &logits_in_pieces(&p, 6));
        assert!(err < LOGITS_TOL, "{name}: pieces rel err {err:e}");
    }
}

fn moe_ablation_moves(name: &str, ablations: Ablations) -> f32 {
    let r = Reference::by_name(name);
    let model = VlModel::load_ablated(&r.model_dir(), &Device::Cpu, DType::F32, ablations).unwrap();
    let p = Prepared {
        model,
        ..prepare(&r)
    };
    moved(&r, &first_logits(&p, &p.positions().positions, true))
}

fn moe(a: MoeAblations) -> Ablations {
    Ablations {
        text: glimpse::model::TextAblations {
            moe: a,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn routing_without_renormalisation_would_be_caught() {
    for name in ["qwen3_vl_moe__single_image", "qwen3_5_moe__two_turns"] {
        let a = moe(MoeAblations {
            unnormalised_routing: true,
            ..Default::default()
        });
        let err = moe_ablation_moves(name, a);
        assert!(
            err > 100.0 * LOGITS_TOL,
            "{name}: unnormalised routing only moved logits by {err:e}"
        );
    }
}

#[test]
fn a_missing_shared_expert_gate_would_be_caught() {
    let a = moe(MoeAblations {
        ungated_shared_expert: true,
        ..Default::default()
    });
    let err = moe_ablation_moves("qwen3_5_moe__two_turns", a);
    assert!(
        err > 100.0 * LOGITS_TOL,
        "an ungated shared expert only moved logits by {err:e}"
    );
}

#[test]
fn fused_experts_read_without_their_transpose_would_be_caught() {
    let a = moe(MoeAblations {
        fused_experts_untransposed: true,
        ..Default::default()
    });
    let err = moe_ablation_moves("qwen3_vl_moe__single_image", a);
    assert!(
        err > 100.0 * LOGITS_TOL,
        "untransposed fused experts only moved logits by {err:e}"
    );
}

#[test]
fn a_dense_layer_treated_as_sparse_would_be_caught() {
    // The fixture keeps layer 1 dense through mlp_only_layers; a reader that
    // ignores it looks for experts the checkpoint does not have.
    let r = Reference::by_name("qwen3_vl_moe__single_image");
    let dir = std::env::temp_dir().join(format!("glimpse-moe-dense-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(r.model_dir()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["text_config"]["mlp_only_layers"],
        serde_json::json!([1])
    );
    config["text_config"]["mlp_only_layers"] = serde_json::json!([]);
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let err = VlModel::load(&dir, &Device::Cpu, DType::F32)
        .err()
        .map(|e| e.to_string());
    std::fs::remove_dir_all(&dir).unwrap();
    let err = err.expect("a dense layer loaded as a sparse one");
    assert!(err.contains("layers.1.mlp") && !err.contains('\n'), "{err}");
}

/// Cached prompt tokens, whether the vision tower ran, and the answer.
fn ask_and_watch(
    engine: &Engine,
    r: &Reference,
    conversation: glimpse::conversation::Conversation,
) -> (usize, bool, Vec<u32>) {
    let greedy = SamplingOverrides {
        temperature: Some(0.0),
        repetition_penalty: Some(1.0),
        max_new_tokens: Some(24),
        ..Default::default()
    };
    let (mut cached, mut vision, mut tokens) = (0, false, vec![]);
    for ev in ask_like(engine, r, conversation, greedy) {
        match ev {
            Event::Prompt { cached_tokens, .. } => cached = cached_tokens,
            Event::VisionDone { .. } => vision = true,
            Event::Done { tokens: t, .. } => tokens = t,
            Event::Error(e) => panic!("{e}"),
            _ => {}
        }
    }
    (cached, vision, tokens)
}

#[test]
fn qwen3_5_follow_ups_and_regenerations_reuse_the_recurrent_states() {
    for name in [
        "qwen3_5__two_turns",
        "qwen3_5__two_turns__thinking",
        "qwen3_5_moe__two_turns",
    ] {
        let r = Reference::by_name(name);
        let engine = engine_for(&r);
        let full = r.conversation();
        let first = glimpse::conversation::Conversation {
            messages: full.messages[..1].to_vec(),
        };
        let prompt = r.u32s("input_ids");
        // The earlier turns, up to the end of the last question: all but the
        // opened reply ("<|im_start|>assistant\n" and the thinking block).
        let im_start = prompt[0];
        let reply_opened = prompt.iter().rposition(|&id| id == im_start).unwrap();
        let want = as_u32s(&r.json["greedy"]["tokens"]);

        ask_and_watch(&engine, &r, first);
        let (cached, _, tokens) = ask_and_watch(&engine, &r, full.clone());
        assert!(cached > 10, "{name}: follow-up reused only {cached} tokens");
        assert_eq!(tokens, want, "{name}: follow-up tokens");

        // Regenerating: the same prompt again.
        let (cached, vision, tokens) = ask_and_watch(&engine, &r, full);
        assert_eq!(cached, reply_opened, "{name}: regeneration reuse");
        assert!(!vision, "{name}: the vision tower ran again");
        assert_eq!(tokens, want, "{name}: regenerated tokens");
    }
}
