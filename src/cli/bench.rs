//! `glimpse bench`: time to first token, vision encoding, prefill, decode speed
//! and peak memory of the engine on one image, as medians over repeats after a
//! warm-up; with `--follow-up`, also a second question in the same
//! conversation and a regeneration of its answer, as the chat sends them.
//! The output fields match `bench/reference.py`, which times transformers the
//! same way, so the two can be compared as ratios.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;

use super::output;
use crate::conversation::{Conversation, Message, Part, Role};
use crate::engine::{
    DeviceChoice, DtypeChoice, Engine, EngineOptions, Event, ModelInfo, Quant, SamplingOverrides,
    Timings,
};
use crate::tui::transcript::scrub_placeholders;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Local model directory.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Image to describe.
    #[arg(long, value_name = "FILE", conflicts_with = "synthetic")]
    pub image: Option<PathBuf>,
    /// Draw a synthetic test image of this size instead, e.g. 1280x720.
    #[arg(long, value_name = "WxH", value_parser = parse_size)]
    pub synthetic: Option<(u32, u32)>,
    #[arg(long, default_value = "Describe this image in detail.")]
    pub prompt: String,
    /// After each timed answer, ask this in the same conversation, then
    /// regenerate that answer (Ctrl+R in the chat), timing both.
    #[arg(long = "follow-up", value_name = "PROMPT")]
    pub follow_up: Option<String>,
    /// Tokens generated per run; stop tokens are ignored so every run decodes
    /// exactly this many.
    #[arg(long = "new-tokens", default_value_t = 64)]
    pub new_tokens: usize,
    /// Timed runs after one untimed warm-up.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    #[arg(long, default_value = "auto")]
    pub dtype: DtypeChoice,
    /// Linear layers of the language model: none, q8_0, q6k, q5k or q4k.
    #[arg(long, default_value = "none")]
    pub quant: Quant,
    /// Quantise the vision tower's linear layers too.
    #[arg(long)]
    pub quant_vision: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("expected WIDTHxHEIGHT, got {s:?}"))?;
    let w: u32 = w.parse().map_err(|_| format!("bad width {w:?}"))?;
    let h: u32 = h.parse().map_err(|_| format!("bad height {h:?}"))?;
    if w == 0 || h == 0 || w > 8192 || h > 8192 {
        return Err("sizes must be between 1 and 8192".into());
    }
    Ok((w, h))
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub implementation: &'static str,
    pub model: PathBuf,
    pub model_type: String,
    pub device: String,
    pub dtype: String,
    pub quant: String,
    pub quant_vision: bool,
    /// How the load used the quantised-weights cache: off (float weights),
    /// hit, written (it was empty), rebuilt (it could not be used) or
    /// not_written.
    pub weight_cache: String,
    /// Bytes of the language model's linear layers and head as loaded.
    pub linear_bytes: u64,
    pub image_size: Option<[u32; 2]>,
    pub image_tokens: usize,
    pub prompt_tokens: usize,
    pub new_tokens: usize,
    pub repeats: usize,
    pub load_s: f64,
    #[serde(flatten)]
    pub times: Medians,
    /// The follow-up question (`--follow-up`), after the first answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<TurnReport>,
    /// The follow-up's answer asked again, as Ctrl+R does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regenerate: Option<TurnReport>,
    /// Peak resident memory of the process (CPU) in bytes.
    pub peak_memory_bytes: Option<u64>,
    pub peak_memory_kind: &'static str,
}

/// A later request in the same conversation: medians over the repeats.
#[derive(Debug, Clone, Serialize)]
pub struct TurnReport {
    pub prompt_tokens: usize,
    /// Leading prompt positions taken from the cache of the request before.
    pub reused_tokens: usize,
    #[serde(flatten)]
    pub times: Medians,
}

/// The stages of a request, medians over the timed runs.
#[derive(Debug, Clone, Serialize)]
pub struct Medians {
    pub vision_s: f64,
    pub prefill_s: f64,
    pub ttft_s: f64,
    pub decode_tok_s: f64,
}

/// A deterministic test card: gradients, bars and a grid, so the image is
/// neither flat nor noise.
pub fn synthetic_image(width: u32, height: u32) -> image::RgbImage {
    image::RgbImage::from_fn(width, height, |x, y| {
        let fx = x as f32 / width as f32;
        let fy = y as f32 / height as f32;
        let bar = ((x * 8 / width.max(1)) % 2) as u8 * 60;
        let grid = if x % 64 == 0 || y % 64 == 0 { 255 } else { 0 };
        image::Rgb([
            ((fx * 255.0) as u8).saturating_add(bar) | grid,
            ((fy * 255.0) as u8) | grid,
            (((1.0 - fx) * fy * 255.0) as u8) | grid,
        ])
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Peak resident set size of this process, from /proc (Linux only).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

struct SyntheticFile(PathBuf);

impl Drop for SyntheticFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub fn run(args: BenchArgs) -> anyhow::Result<i32> {
    if args.repeats == 0 || args.new_tokens == 0 {
        bail!("--repeats and --new-tokens must be at least 1");
    }
    if args
        .follow_up
        .as_deref()
        .is_some_and(|q| q.trim().is_empty())
    {
        bail!("--follow-up needs a question to ask after the first answer");
    }
    // Removed when the run ends.
    let synthetic = match args.synthetic {
        Some((w, h)) if args.image.is_none() => Some(SyntheticFile::write(w, h)?),
        _ => None,
    };
    let image = args
        .image
        .clone()
        .or_else(|| synthetic.as_ref().map(|f| f.0.clone()));
    let engine = Engine::load(EngineOptions {
        device: args.device,
        dtype: args.dtype,
        quant: args.quant,
        quant_vision: args.quant_vision,
        weight_cache: crate::session::paths::weights_cache_dir(),
        load_progress: Some(super::model_arg::stderr_load_progress()),
        ..EngineOptions::new(&args.model)
    })
    .with_context(|| format!("loading the model from {}", args.model.display()))?;
    let measured = measure(&engine, question(image, &args.prompt), &args)?;
    let report = BenchReport::new(&args, engine.info(), measured);
    let mut out = output::stdout();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        print_human(&mut out, &report, &args.model)?;
    }
    Ok(0)
}

impl SyntheticFile {
    /// The engine takes image paths: a synthetic card goes to a temporary PNG.
    fn write(width: u32, height: u32) -> anyhow::Result<SyntheticFile> {
        let path = std::env::temp_dir().join(format!(
            "glimpse-bench-{}-{width}x{height}.png",
            std::process::id()
        ));
        synthetic_image(width, height)
            .save(&path)
            .with_context(|| format!("writing the synthetic image {}", path.display()))?;
        Ok(SyntheticFile(path))
    }
}

/// One user turn: the image, if any, and the prompt.
fn question(image: Option<PathBuf>, prompt: &str) -> Conversation {
    let mut parts: Vec<Part> = image.into_iter().map(Part::Image).collect();
    parts.push(Part::Text(prompt.to_string()));
    Conversation {
        messages: vec![Message::parts(Role::User, parts)],
    }
}

/// One request as the engine answered it.
struct Run {
    timings: Timings,
    prompt_tokens: usize,
    reused_tokens: usize,
    image_tokens: usize,
    image_size: Option<[u32; 2]>,
    text: String,
    reasoning: String,
}

/// Runs of the timed repeats: first answers, and where asked, follow-ups and
/// their regenerations.
#[derive(Default)]
struct Measured {
    first: Vec<Run>,
    follow_up: Vec<Run>,
    regenerate: Vec<Run>,
}

/// One untimed warm-up, then `--repeats` timed runs from a cold cache, each
/// decoding exactly `--new-tokens` tokens greedily.
fn measure(
    engine: &Engine,
    conversation: Conversation,
    args: &BenchArgs,
) -> anyhow::Result<Measured> {
    let sampling = SamplingOverrides {
        temperature: Some(0.0),
        repetition_penalty: Some(1.0),
        max_new_tokens: Some(args.new_tokens),
        ignore_eos: true,
        ..Default::default()
    };
    let mut measured = Measured::default();
    for i in 0..=args.repeats {
        engine.reset()?;
        let first = run_once(engine, &conversation, &sampling, args.new_tokens)?;
        let later = match &args.follow_up {
            Some(prompt) => {
                let next = follow_up(&conversation, &first, prompt);
                let answer = run_once(engine, &next, &sampling, args.new_tokens)?;
                // What Ctrl+R sends: the conversation up to the last question.
                let again = run_once(engine, &next, &sampling, args.new_tokens)?;
                Some((answer, again))
            }
            None => None,
        };
        if i > 0 {
            measured.first.push(first);
            if let Some((answer, again)) = later {
                measured.follow_up.push(answer);
                measured.regenerate.push(again);
            }
        }
    }
    Ok(measured)
}

/// The conversation with `first`'s answer and the follow-up question, as the
/// chat sends them: reasoning beside the answer, vision markers left out.
fn follow_up(conversation: &Conversation, first: &Run, prompt: &str) -> Conversation {
    let mut next = conversation.clone();
    next.push(
        Message::text(Role::Assistant, scrub_placeholders(&first.text))
            .with_reasoning(&scrub_placeholders(&first.reasoning)),
    );
    next.push(Message::parts(
        Role::User,
        vec![Part::Text(prompt.to_string())],
    ));
    next
}

/// Asks `conversation` and waits for the whole answer.
fn run_once(
    engine: &Engine,
    conversation: &Conversation,
    sampling: &SamplingOverrides,
    new_tokens: usize,
) -> anyhow::Result<Run> {
    let (rx, _cancel) = engine.ask(conversation.clone(), sampling.clone())?;
    let mut run = Run {
        timings: Timings::default(),
        prompt_tokens: 0,
        reused_tokens: 0,
        image_tokens: 0,
        image_size: None,
        text: String::new(),
        reasoning: String::new(),
    };
    for ev in rx {
        match ev {
            Event::Prompt {
                ids,
                images,
                cached_tokens,
                ..
            } => {
                run.prompt_tokens = ids.len();
                run.reused_tokens = cached_tokens;
                run.image_tokens = images.iter().map(|f| f.tokens).sum();
                run.image_size = images.first().map(|f| f.original_size);
            }
            Event::Error(e) => bail!(e),
            Event::Done {
                timings,
                tokens,
                text,
                reasoning,
                ..
            } => {
                if tokens.len() != new_tokens {
                    bail!(
                        "generated {} tokens instead of {new_tokens}; the context is too small for the benchmark; lower --new-tokens",
                        tokens.len(),
                    );
                }
                run.timings = timings;
                run.text = text;
                run.reasoning = reasoning;
                return Ok(run);
            }
            _ => {}
        }
    }
    bail!("the engine stopped before the answer was done")
}

impl Medians {
    fn of(runs: &[Run]) -> Medians {
        let median_of =
            |f: fn(&Timings) -> f64| median(runs.iter().map(|r| f(&r.timings)).collect());
        Medians {
            vision_s: median_of(|t| t.vision_s),
            prefill_s: median_of(|t| t.prefill_s),
            ttft_s: median_of(|t| t.ttft_s),
            decode_tok_s: median_of(|t| t.decode_tok_s),
        }
    }
}

impl TurnReport {
    /// Medians of the runs; `None` when there are none.
    fn of(runs: &[Run]) -> Option<TurnReport> {
        let last = runs.last()?;
        Some(TurnReport {
            prompt_tokens: last.prompt_tokens,
            reused_tokens: last.reused_tokens,
            times: Medians::of(runs),
        })
    }
}

impl BenchReport {
    /// Medians of the timed runs.
    fn new(args: &BenchArgs, info: &ModelInfo, measured: Measured) -> BenchReport {
        let first = &measured.first;
        let prompt = first.last();
        BenchReport {
            implementation: "glimpse",
            model: args.model.clone(),
            model_type: info.model_type.clone(),
            device: info.device.clone(),
            dtype: info.dtype.clone(),
            quant: info.quant.clone(),
            quant_vision: info.quant_vision,
            weight_cache: info.weight_cache.clone(),
            linear_bytes: info.linear_bytes,
            image_size: prompt.and_then(|r| r.image_size),
            image_tokens: prompt.map_or(0, |r| r.image_tokens),
            prompt_tokens: prompt.map_or(0, |r| r.prompt_tokens),
            new_tokens: args.new_tokens,
            repeats: args.repeats,
            load_s: info.load_s,
            times: Medians::of(first),
            follow_up: TurnReport::of(&measured.follow_up),
            regenerate: TurnReport::of(&measured.regenerate),
            peak_memory_bytes: peak_rss_bytes(),
            peak_memory_kind: "process_rss",
        }
    }
}

fn print_human(out: &mut impl Write, r: &BenchReport, model: &Path) -> std::io::Result<()> {
    writeln!(
        out,
        "model        {} ({}, {} {}{})",
        model.display(),
        r.model_type,
        r.device,
        r.dtype,
        if r.quant == "none" {
            String::new()
        } else {
            format!(" + {}", r.quant)
        }
    )?;
    if let Some([w, h]) = r.image_size {
        writeln!(out, "image        {w}×{h} → {} tokens", r.image_tokens)?;
    }
    writeln!(
        out,
        "prompt       {} tokens, {} new tokens, median of {}",
        r.prompt_tokens, r.new_tokens, r.repeats
    )?;
    writeln!(out, "load         {:.3} s", r.load_s)?;
    writeln!(out, "vision       {:.1} ms", r.times.vision_s * 1e3)?;
    writeln!(out, "prefill      {:.1} ms", r.times.prefill_s * 1e3)?;
    writeln!(out, "first token  {:.1} ms", r.times.ttft_s * 1e3)?;
    writeln!(out, "decode       {:.1} tokens/s", r.times.decode_tok_s)?;
    for (name, turn) in [("follow-up", &r.follow_up), ("regenerate", &r.regenerate)] {
        if let Some(t) = turn {
            writeln!(
                out,
                "{name:<12} {} tokens ({} reused): first token {:.1} ms, prefill {:.1} ms, vision {:.1} ms",
                t.prompt_tokens,
                t.reused_tokens,
                t.times.ttft_s * 1e3,
                t.times.prefill_s * 1e3,
                t.times.vision_s * 1e3
            )?;
        }
    }
    if let Some(b) = r.peak_memory_bytes {
        writeln!(
            out,
            "peak memory  {:.2} GiB ({})",
            b as f64 / (1u64 << 30) as f64,
            r.peak_memory_kind
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_flag_and_median() {
        assert_eq!(parse_size("1280x720"), Ok((1280, 720)));
        assert!(parse_size("1280").is_err());
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn synthetic_image_is_deterministic() {
        assert_eq!(synthetic_image(97, 31), synthetic_image(97, 31));
    }
}
