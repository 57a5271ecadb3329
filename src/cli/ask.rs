//! `glimpse ask`: one question, or a whole conversation file, in; the answer
//! streamed to stdout, or one JSON object with `--json`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use anyhow::{bail, Context};
use clap::Args;
use serde_json::json;

use crate::conversation::{Content, Conversation, Message, Part, Role};
use crate::engine::{
    ContextPolicy, DeviceChoice, DtypeChoice, Engine, EngineOptions, Event, FinishReason, Request,
    SamplingOverrides,
};
use crate::processor::image::{AlphaMode, LongEdgeCap};

#[derive(Debug, Args)]
pub struct AskArgs {
    /// Local model directory (config.json, safetensors, tokenizer.json, ...).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
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
    /// auto, cpu or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// auto (bf16 on CUDA, f32 on CPU), f32, bf16 or f16.
    #[arg(long, default_value = "auto")]
    pub dtype: DtypeChoice,
    /// Limit the context below the model's maximum.
    #[arg(long = "max-context", value_name = "TOKENS")]
    pub max_context: Option<usize>,
    /// Scale images whose long edge exceeds THRESHOLD down to TARGET px first
    /// ("THRESHOLD:TARGET", or "off").
    #[arg(long = "long-edge-cap", default_value = "2000:1920", value_parser = parse_cap)]
    pub long_edge_cap: CapArg,
    /// Transparent images: composite on white, or drop the alpha channel as
    /// transformers' image loading does (for exact parity).
    #[arg(long, default_value = "white")]
    pub alpha: AlphaMode,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone)]
pub struct CapArg(pub Option<LongEdgeCap>);

pub(crate) fn parse_cap(s: &str) -> Result<CapArg, String> {
    if s == "off" {
        return Ok(CapArg(None));
    }
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("expected THRESHOLD:TARGET or off, got {s:?}"))?;
    let threshold: u32 = a.parse().map_err(|_| format!("bad threshold {a:?}"))?;
    let target: u32 = b.parse().map_err(|_| format!("bad target {b:?}"))?;
    if target == 0 || target > threshold {
        return Err("the target must be between 1 and the threshold".into());
    }
    Ok(CapArg(Some(LongEdgeCap { threshold, target })))
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

pub fn run(args: AskArgs) -> anyhow::Result<i32> {
    let conversation = build_conversation(&args)?;
    let options = EngineOptions {
        model_dir: args.model.clone(),
        device: args.device,
        dtype: args.dtype,
        long_edge_cap: args.long_edge_cap.0,
        max_context: args.max_context,
        alpha: args.alpha,
    };
    let engine = Engine::load(options)
        .with_context(|| format!("loading the model from {}", args.model.display()))?;
    let sampling = SamplingOverrides {
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        repetition_penalty: args.repetition_penalty,
        max_new_tokens: args.max_tokens,
        seed: args.seed,
    };

    let cancel = Arc::new(AtomicBool::new(false));
    install_ctrl_c(cancel.clone());
    let (reply, events) = mpsc::channel();
    engine.submit(Request {
        conversation,
        sampling,
        reply,
        cancel,
        context: ContextPolicy::Refuse,
    })?;

    let mut prompt_ids = Vec::new();
    let mut grids = Vec::new();
    let mut images = serde_json::Value::Null;
    let stdout = std::io::stdout();
    for event in events {
        match event {
            Event::Prompt {
                ids, images: facts, ..
            } => {
                prompt_ids = ids;
                grids = facts.iter().map(|f| f.grid_thw).collect();
                images = serde_json::to_value(&facts)?;
            }
            Event::VisionDone { .. } => {}
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
                if args.json {
                    let info = engine.info();
                    let obj = json!({
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
                    });
                    println!("{}", serde_json::to_string(&obj)?);
                } else {
                    println!();
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
