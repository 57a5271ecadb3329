//! `glimpse ask`: one question, or a whole conversation file, in; the answer
//! streamed to stdout, or one JSON object with `--json`; with `--show`, the
//! images drawn before it.

mod answer;
mod print;
mod replay;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;

use super::grounding;
use super::model_arg::{announce, config_kv_policy, load_with_readings, ModelFlags};
use super::output;
use super::remote_arg::RemoteFlags;
use super::sampling_arg::SamplingFlags;
use super::show::Shower;
use super::thinking_arg::{self, ThinkingFlag};
use crate::conversation::{Content, Conversation, Message, Part, Role};
use crate::engine::kv_policy::parse_threshold;
use crate::engine::{check_model_dir, Backend, EngineOptions, KvCachePolicy, SamplingOverrides};
use crate::model::ModelConfig;
use crate::processor::image::{load_image_with, AlphaMode, LongEdgeCap};
use crate::session::config::{parse_long_edge_cap, ImageProtocol};
use crate::session::digest::why_not_a_file;
use crate::session::Config;

#[derive(Debug, Args)]
pub struct AskArgs {
    #[command(flatten)]
    pub model: ModelFlags,
    #[command(flatten)]
    pub remote: RemoteFlags,
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
    #[command(flatten)]
    pub sampling: SamplingFlags,
    #[command(flatten)]
    pub thinking: ThinkingFlag,
    /// Do not print a thinking model's reasoning (it goes to stderr, dimmed,
    /// otherwise; `--json` has it in `reasoning`).
    #[arg(long = "hide-thinking")]
    pub hide_thinking: bool,
    /// Context to reserve and allow (default: the model's, at most 32768).
    #[arg(long = "max-context", value_name = "TOKENS", value_parser = crate::cli::model_arg::parse_max_context)]
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
    /// Draw the images in the terminal before the answer, each with its size,
    /// the size the model sees and its image tokens; with --annotate or
    /// --locate, the annotated image after it. Only on a terminal, unless
    /// --image-protocol is given.
    #[arg(long)]
    pub show: bool,
    /// How --show draws: auto detects kitty, iTerm2 or sixel and falls back
    /// to Unicode half-blocks. Given, images are drawn even when stdout is
    /// not a terminal (e.g. piped into `less -R`) [default: the config's].
    #[arg(
        long = "image-protocol",
        value_name = "auto|kitty|iterm2|sixel|halfblocks"
    )]
    pub image_protocol: Option<ImageProtocol>,
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
        if let Some(why) = why_not_a_file(path) {
            bail!("image {}: {why}; check the path", path.display());
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
fn engine_options(args: &AskArgs, config: &Config) -> anyhow::Result<EngineOptions> {
    let model_dir = args.model.resolve_dir(config)?;
    Ok(EngineOptions {
        long_edge_cap: match &args.long_edge_cap {
            Some(cap) => cap.0,
            None => config.long_edge_cap,
        },
        max_context: args.max_context,
        alpha: args.alpha,
        kv_cache: kv_policy(args, config)?,
        ..args.model.engine_options(config, model_dir)
    })
}

/// `--locate THING` becomes the question, in the model family's phrasing
/// (read from `config.json`, before the weights load).
fn apply_locate(args: &mut AskArgs, model_dir: &Path) -> anyhow::Result<()> {
    if args.locate.is_none() {
        return Ok(());
    }
    check_model_dir(model_dir)?;
    let config = ModelConfig::from_model_dir(model_dir)
        .with_context(|| format!("reading the model in {}", model_dir.display()))?;
    locate_as(args, config.family.model_type())
}

/// `--locate THING` phrased for the family `model_type`.
fn locate_as(args: &mut AskArgs, model_type: &str) -> anyhow::Result<()> {
    let Some(thing) = &args.locate else {
        return Ok(());
    };
    let family = grounding::family_of(model_type)?;
    let question = family
        .locate_prompt(thing)
        .context("--locate needs a description of what to find, e.g. --locate \"red car\"")?;
    args.prompt = Some(question);
    Ok(())
}

pub fn run(mut args: AskArgs) -> anyhow::Result<i32> {
    check_show_flags(&args)?;
    let sampling = args.sampling.over(SamplingOverrides::default())?;
    let config = Config::load()?;
    if args.remote.server(&config).is_some() {
        return run_remote(args, sampling, &config);
    }
    args.remote.refuse_without_server()?;
    let options = engine_options(&args, &config)?;
    if args.replay {
        let conversation = build_conversation(&args)?;
        let shower = shower(&args, &config);
        return replay::run(&args, &options, &conversation, shower.as_ref());
    }
    let conversation = prepare(&mut args, &options)?;
    // The terminal is asked which protocol it speaks now, before anything
    // else is written to it.
    let shower = shower(&args, &config);
    let (engine, _sampler) = load_with_readings(options.clone())?;
    let live = print::Live {
        backend: print::Answerer::Local {
            engine: &engine,
            kv_cache: options.kv_cache,
        },
        cap: options.long_edge_cap,
    };
    let thinking =
        thinking_arg::for_engine(engine.info().thinking, args.thinking.or(config.thinking));
    let said = || announce(engine.info());
    let asked = Asked {
        conversation,
        sampling,
        thinking,
    };
    ask_and_print(&args, &live, &engine, &said, asked, shower)
}

/// What to ask, whichever backend answers.
struct Asked {
    conversation: Conversation,
    sampling: SamplingOverrides,
    thinking: Option<bool>,
}

/// Asks through `backend`, streams the answer, and prints the result the
/// same way whichever backend answered.
fn ask_and_print(
    args: &AskArgs,
    live: &print::Live,
    backend: &dyn Backend,
    announce: &dyn Fn(),
    asked: Asked,
    shower: Option<Shower>,
) -> anyhow::Result<i32> {
    let Asked {
        conversation,
        sampling,
        thinking,
    } = asked;
    let mut out = output::stdout();
    let mut stream = answer::Stream {
        out: &mut out,
        json: args.json,
        shower: shower.as_ref(),
        alpha: args.alpha,
        show_reasoning: !args.hide_thinking,
        reasoning_open: false,
    };
    let answer = answer::ask(
        backend,
        announce,
        conversation.clone(),
        sampling,
        thinking,
        &mut stream,
    )?;
    print::answer(args, live, &conversation, answer, &mut out, shower.as_ref())
}

/// `ask --server`: the same question and output, answered by a server.
fn run_remote(
    mut args: AskArgs,
    sampling: SamplingOverrides,
    config: &Config,
) -> anyhow::Result<i32> {
    if args.replay {
        bail!("--replay reads the answer from the conversation file and asks no server; leave out --server");
    }
    let cap = match &args.long_edge_cap {
        Some(cap) => cap.0,
        None => config.long_edge_cap,
    };
    let Some(remote) = args
        .remote
        .connect(config, args.model.spec(config), cap, args.alpha)?
    else {
        bail!("no server to ask; pass --server URL");
    };
    if args.locate.is_some() {
        let model_type = remote.model_type().map(str::to_string).context(
            "--locate needs the model's family, which its name on the server does not tell; add --family",
        )?;
        locate_as(&mut args, &model_type)?;
    }
    let conversation = check_question(&args, cap)?;
    let shower = shower(&args, config);
    let live = print::Live {
        backend: print::Answerer::Remote(&remote),
        cap,
    };
    let said = || eprintln!("glimpse: {} at {}", remote.model(), remote.server());
    let asked = Asked {
        conversation,
        sampling,
        // The server's template decides what it can do with the choice.
        thinking: args.thinking.or(config.thinking),
    };
    ask_and_print(&args, &live, &remote, &said, asked, shower)
}

/// `--show` and `--json` both want stdout; `--image-protocol` only says how
/// `--show` draws.
fn check_show_flags(args: &AskArgs) -> anyhow::Result<()> {
    if args.show && args.json {
        bail!("--show draws images on stdout, where --json writes its JSON object; leave out one of them");
    }
    if args.image_protocol.is_some() && !args.show {
        bail!("--image-protocol says how --show draws images; add --show");
    }
    Ok(())
}

/// How `--show` draws on this stdout, if at all.
fn shower(args: &AskArgs, config: &Config) -> Option<Shower> {
    if !args.show {
        return None;
    }
    Shower::for_stdout(args.image_protocol, config.image_protocol)
}

/// The question to ask, checked before the model loads: `--locate` phrased
/// for the model's family, the files `--annotate` and the images need.
fn prepare(args: &mut AskArgs, options: &EngineOptions) -> anyhow::Result<Conversation> {
    apply_locate(args, &options.model_dir)?;
    check_question(args, options.long_edge_cap)
}

/// The conversation, with `--locate` and `--annotate` checked and every
/// image decoded once, so a broken one is one line before anything runs.
fn check_question(args: &AskArgs, cap: Option<LongEdgeCap>) -> anyhow::Result<Conversation> {
    let conversation = build_conversation(args)?;
    if args.locate.is_some() && conversation.images().is_empty() {
        bail!("--locate needs an image to look in; add one with --image");
    }
    if let Some(out) = &args.annotate {
        grounding::check_annotate_target(out, &conversation)?;
    }
    for path in conversation.images() {
        load_image_with(path, cap.as_ref(), args.alpha)?;
    }
    Ok(conversation)
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
