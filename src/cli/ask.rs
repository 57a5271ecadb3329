//! `glimpse ask`: one question, or a whole conversation file, in; the answer
//! streamed to stdout, or one JSON object with `--json`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use anyhow::{bail, Context};
use clap::Args;
use serde_json::json;

use super::grounding;
use super::model_arg::{announce, config_kv_policy, load_with_readings, ModelFlags};
use crate::conversation::{Content, Conversation, Message, Part, Role};
use crate::engine::kv_policy::{parse_threshold, DEFAULT_THRESHOLD};
use crate::engine::{
    check_model_dir, describe_images, ContextPolicy, EngineOptions, Event, FinishReason,
    KvCachePolicy, Request, SamplingOverrides,
};
use crate::human::gib;
use crate::model::ModelConfig;
use crate::processor::grounding::Grounding;
use crate::processor::image::{load_image_with, AlphaMode, LongEdgeCap};
use crate::session::config::parse_long_edge_cap;
use crate::session::Config;

#[derive(Debug, Args)]
pub struct AskArgs {
    #[command(flatten)]
    pub model: ModelFlags,
    /// Attach an image to the question (repeat for several).
    #[arg(long = "image", value_name = "PATH")]
    pub images: Vec<PathBuf>,
    /// The question.
    #[arg(long, value_name = "TEXT")]
    pub prompt: Option<String>,
    /// A JSON list of messages in the transformers chat format; --image/--prompt
    /// add one more user turn after it.
    #[arg(long, value_name = "FILE")]
    pub conversation: Option<PathBuf>,
    /// System prompt (replaces the template's default).
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// 0 decodes greedily; default from the model's generation_config.json.
    #[arg(long)]
    pub temperature: Option<f64>,
    #[arg(long = "top-p")]
    pub top_p: Option<f64>,
    #[arg(long = "top-k")]
    pub top_k: Option<usize>,
    #[arg(long = "repetition-penalty")]
    pub repetition_penalty: Option<f32>,
    /// Most new tokens to generate.
    #[arg(long = "max-tokens")]
    pub max_tokens: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Context to reserve and allow (default: the model's, at most 32768).
    #[arg(long = "max-context", value_name = "TOKENS")]
    pub max_context: Option<usize>,
    /// KV cache: auto (the model's dtype, INT8 once device memory use reaches
    /// --kv-threshold), f16 (always the model's dtype) or int8.
    /// [default: the config's, else auto].
    #[arg(long = "kv-cache")]
    pub kv_cache: Option<KvCachePolicy>,
    /// Device memory use, in percent, at which `--kv-cache auto` turns to INT8.
    #[arg(long = "kv-threshold", value_name = "PERCENT", value_parser = parse_threshold)]
    pub kv_threshold: Option<f64>,
    /// Scale images whose long edge exceeds THRESHOLD down to TARGET px first
    /// ("THRESHOLD:TARGET", or "off") [default: the config's, else 2000:1920].
    #[arg(long = "long-edge-cap", value_parser = parse_cap)]
    pub long_edge_cap: Option<CapArg>,
    /// Transparent images: composite on white, or drop the alpha channel as
    /// transformers' image loading does (for exact parity).
    #[arg(long, default_value = "white")]
    pub alpha: AlphaMode,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    pub json: bool,
    /// Draw the boxes and points of the answer over a copy of the image and
    /// write it to OUT (.png or .jpg).
    #[arg(long, value_name = "OUT")]
    pub annotate: Option<PathBuf>,
    /// Ask the model to find THING and answer with boxes, phrased the way the
    /// model's family expects (instead of --prompt).
    #[arg(long, value_name = "THING", conflicts_with = "prompt")]
    pub locate: Option<String>,
    /// Do not run the model: take the last (assistant) message of
    /// --conversation as the answer, to list or draw its boxes again.
    #[arg(
        long,
        requires = "conversation",
        conflicts_with_all = ["prompt", "images", "locate"]
    )]
    pub replay: bool,
}

#[derive(Debug, Clone)]
pub struct CapArg(pub Option<LongEdgeCap>);

pub(crate) fn parse_cap(s: &str) -> Result<CapArg, String> {
    parse_long_edge_cap(s).map(CapArg)
}

/// The conversation the flags describe.
pub fn build_conversation(args: &AskArgs) -> anyhow::Result<Conversation> {
    let mut conv = match &args.conversation {
        Some(path) => Conversation::from_json_file(path)?,
        None => Conversation::new(),
    };
    if let Some(system) = &args.system {
        match conv.messages.first_mut() {
            Some(m) if m.role == Role::System => m.content = Content::Text(system.clone()),
            _ => conv
                .messages
                .insert(0, Message::text(Role::System, system.clone())),
        }
    }
    if !args.images.is_empty() || args.prompt.is_some() {
        let mut parts: Vec<Part> = args.images.iter().cloned().map(Part::Image).collect();
        if let Some(p) = &args.prompt {
            parts.push(Part::Text(p.clone()));
        }
        conv.push(Message::parts(Role::User, parts));
    }
    if !conv.messages.iter().any(|m| m.role == Role::User) {
        bail!("nothing to ask: give --prompt and/or --image, or --conversation FILE");
    }
    for path in conv.images() {
        if !path.is_file() {
            bail!(
                "image {} does not exist or is not a file; check the path",
                path.display()
            );
        }
    }
    Ok(conv)
}

/// `--kv-cache` with `--kv-threshold` folded in; the config file fills gaps.
fn kv_policy(args: &AskArgs, config: &Config) -> anyhow::Result<KvCachePolicy> {
    let from_config = config_kv_policy(config);
    Ok(
        match (args.kv_cache.unwrap_or(from_config), args.kv_threshold) {
            (KvCachePolicy::Auto { .. }, Some(threshold)) => KvCachePolicy::Auto { threshold },
            (_, Some(_)) => bail!("--kv-threshold only applies to --kv-cache auto"),
            (policy, None) => policy,
        },
    )
}

/// The model directory and engine settings, from the flags with the config
/// file's values filling the gaps. A hub id is resolved through the cache.
fn engine_options(args: &AskArgs) -> anyhow::Result<EngineOptions> {
    let config = Config::load()?;
    let model_dir = args.model.resolve_dir(&config)?;
    Ok(EngineOptions {
        long_edge_cap: match &args.long_edge_cap {
            Some(cap) => cap.0,
            None => config.long_edge_cap,
        },
        max_context: args.max_context,
        alpha: args.alpha,
        kv_cache: kv_policy(args, &config)?,
        ..args.model.engine_options(&config, model_dir)
    })
}

/// `--locate THING` becomes the question, in the model family's phrasing
/// (read from `config.json`, before the weights load).
fn apply_locate(args: &mut AskArgs, model_dir: &Path) -> anyhow::Result<()> {
    let Some(thing) = &args.locate else {
        return Ok(());
    };
    check_model_dir(model_dir)?;
    let config = ModelConfig::from_model_dir(model_dir)
        .with_context(|| format!("reading the model in {}", model_dir.display()))?;
    let family = grounding::family_of(config.family.model_type())?;
    let question = family
        .locate_prompt(thing)
        .context("--locate needs a description of what to find, e.g. --locate \"red car\"")?;
    args.prompt = Some(question);
    Ok(())
}

pub fn run(mut args: AskArgs) -> anyhow::Result<i32> {
    let options = engine_options(&args)?;
    if args.replay {
        return replay(args, options);
    }
    apply_locate(&mut args, &options.model_dir)?;
    let conversation = build_conversation(&args)?;
    if args.locate.is_some() && conversation.images().is_empty() {
        bail!("--locate needs an image to look in; add one with --image");
    }
    if let Some(out) = &args.annotate {
        grounding::check_annotate_target(out, &conversation)?;
    }
    // A broken image is reported before the model loads, in one line.
    for path in conversation.images() {
        load_image_with(path, options.long_edge_cap.as_ref(), options.alpha)?;
    }
    let cap = options.long_edge_cap;
    let kv_cache = options.kv_cache;
    let (engine, _sampler) = load_with_readings(options)?;
    // Where the model runs is said once the question is accepted, so that a
    // refused question stays a single error line.
    let announce = || announce(engine.info());
    let mut kv_switch = serde_json::Value::Null;
    let sampling = SamplingOverrides {
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        repetition_penalty: args.repetition_penalty,
        max_new_tokens: args.max_tokens,
        seed: args.seed,
        ignore_eos: false,
    };

    let cancel = Arc::new(AtomicBool::new(false));
    install_ctrl_c(cancel.clone());
    let (reply, events) = mpsc::channel();
    engine.submit(Request {
        conversation: conversation.clone(),
        sampling,
        reply,
        cancel,
        context: ContextPolicy::Refuse,
    })?;

    let mut prompt_ids = Vec::new();
    let mut grids = Vec::new();
    let mut images = serde_json::Value::Null;
    let mut facts = Vec::new();
    let stdout = std::io::stdout();
    for event in events {
        match event {
            Event::Prompt {
                ids,
                images: prompt_images,
                ..
            } => {
                announce();
                prompt_ids = ids;
                grids = prompt_images.iter().map(|f| f.grid_thw).collect();
                images = serde_json::to_value(&prompt_images)?;
                facts = prompt_images;
            }
            Event::VisionDone { .. } => {}
            Event::KvCacheConverted {
                memory_fraction,
                bytes_before,
                bytes_after,
                ..
            } => {
                eprintln!(
                    "glimpse: device memory use reached {:.0} % — KV cache now INT8 ({} → {})",
                    memory_fraction * 100.0,
                    gib(bytes_before as u64),
                    gib(bytes_after as u64)
                );
                kv_switch = json!({
                    "memory_fraction": memory_fraction,
                    "bytes_before": bytes_before,
                    "bytes_after": bytes_after,
                });
            }
            Event::Token { text, .. } => {
                if !args.json && !text.is_empty() {
                    let mut out = stdout.lock();
                    out.write_all(text.as_bytes())?;
                    out.flush()?;
                }
            }
            Event::Error(msg) => bail!(msg),
            Event::Done {
                finish_reason,
                tokens,
                text,
                timings,
            } => {
                let info = engine.info();
                let found = match grounding::family_of(&info.model_type) {
                    Ok(family) => {
                        grounding::ground(&text, family, &facts, cap.as_ref(), &conversation)
                    }
                    Err(e) => Grounding {
                        detections: Vec::new(),
                        warnings: vec![e.to_string()],
                    },
                };
                if !args.json {
                    println!();
                }
                let annotated = match &args.annotate {
                    Some(out) => {
                        grounding::write_annotations(out, &conversation, &found, args.alpha)?
                    }
                    None => Vec::new(),
                };
                if args.json {
                    let mut obj = json!({
                        "prompt_tokens": prompt_ids,
                        "image_grid_thw": grids,
                        "tokens": tokens,
                        "text": text,
                        "finish_reason": finish_reason.as_str(),
                        "timings": timings,
                        "model": {
                            "dir": info.dir,
                            "model_type": info.model_type,
                            "device": info.device,
                            "dtype": info.dtype,
                        },
                        "images": images,
                        "detections": grounding::detections_json(&found),
                        "detection_warnings": found.warnings,
                        "memory_estimate": info.memory_estimate,
                        "kv_cache": {
                            "policy": policy_name(kv_cache),
                            "format": engine.kv_cache_label(),
                            "converted": kv_switch,
                        },
                    });
                    if args.annotate.is_some() {
                        obj["annotated"] = json!(annotated);
                    }
                    println!("{}", serde_json::to_string(&obj)?);
                } else if args.annotate.is_some() || args.locate.is_some() {
                    report(&found, &conversation, &annotated);
                }
                return Ok(if finish_reason == FinishReason::Cancelled {
                    130
                } else {
                    0
                });
            }
        }
    }
    bail!("the engine stopped without finishing the answer")
}

fn policy_name(p: KvCachePolicy) -> String {
    match p {
        KvCachePolicy::Auto { threshold } if threshold == DEFAULT_THRESHOLD => "auto".into(),
        KvCachePolicy::Auto { threshold } => format!("auto ({:.0} %)", threshold * 100.0),
        KvCachePolicy::Model => "f16".into(),
        KvCachePolicy::Int8 => "int8".into(),
    }
}

/// `--replay`: the conversation's last message is the answer; its boxes are
/// placed with the image sizes the engine would use, without loading the
/// model.
fn replay(args: AskArgs, options: EngineOptions) -> anyhow::Result<i32> {
    let conversation = build_conversation(&args)?;
    let answer = match conversation.messages.last() {
        Some(m) if m.role == Role::Assistant => m.joined_text(),
        _ => bail!(
            "--replay takes the answer from the conversation's last message, \
             but that is not an assistant message; end the file with the answer to replay"
        ),
    };
    if let Some(out) = &args.annotate {
        grounding::check_annotate_target(out, &conversation)?;
    }
    let paths: Vec<PathBuf> = conversation
        .images()
        .into_iter()
        .map(PathBuf::from)
        .collect();
    let (model_type, facts) = describe_images(&options, &paths)?;
    let family = grounding::family_of(&model_type)?;
    let found = grounding::ground(
        &answer,
        family,
        &facts,
        options.long_edge_cap.as_ref(),
        &conversation,
    );
    let annotated = match &args.annotate {
        Some(out) => grounding::write_annotations(out, &conversation, &found, args.alpha)?,
        None => Vec::new(),
    };
    if args.json {
        let mut obj = json!({
            "replayed": true,
            "text": answer,
            "model": {"dir": options.model_dir, "model_type": model_type},
            "images": facts,
            "detections": grounding::detections_json(&found),
            "detection_warnings": found.warnings,
        });
        if args.annotate.is_some() {
            obj["annotated"] = json!(annotated);
        }
        println!("{}", serde_json::to_string(&obj)?);
    } else {
        println!("{answer}");
        report(&found, &conversation, &annotated);
    }
    Ok(0)
}

/// The detections, warnings and written files, on stderr.
fn report(found: &Grounding, conversation: &Conversation, annotated: &[PathBuf]) {
    let paths = conversation.images();
    let mut err = std::io::stderr().lock();
    if found.detections.is_empty() {
        let _ = writeln!(err, "no boxes or points in the answer");
    }
    for line in grounding::summary(found, &paths) {
        let _ = writeln!(err, "{line}");
    }
    for path in annotated {
        let _ = writeln!(err, "wrote {}", path.display());
    }
}

/// First Ctrl-C asks the engine to stop after the current token; a second one
/// leaves at once.
fn install_ctrl_c(cancel: Arc<AtomicBool>) {
    let _ = ctrlc::set_handler(move || {
        if cancel.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        ask: AskArgs,
    }

    #[test]
    fn prompt_and_images_form_one_user_turn_after_the_system_prompt() {
        let w = Wrap::parse_from([
            "x",
            "--model",
            "m",
            "--prompt",
            "Hi",
            "--system",
            "Be brief.",
        ]);
        let c = build_conversation(&w.ask).unwrap();
        assert_eq!(c.messages.len(), 2);
        assert_eq!(c.messages[0].role, Role::System);
        assert_eq!(c.messages[1].joined_text(), "Hi");
    }

    #[test]
    fn missing_question_and_missing_image_are_clear_errors() {
        let w = Wrap::parse_from(["x", "--model", "m"]);
        let e = build_conversation(&w.ask).unwrap_err().to_string();
        assert!(e.contains("nothing to ask"), "{e}");
        let w = Wrap::parse_from(["x", "--model", "m", "--image", "/no/such.png"]);
        let e = build_conversation(&w.ask).unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn long_edge_cap_flag() {
        assert!(parse_cap("off").unwrap().0.is_none());
        let c = parse_cap("3000:2048").unwrap().0.unwrap();
        assert_eq!((c.threshold, c.target), (3000, 2048));
        assert!(parse_cap("10:20").is_err());
    }
}
