//! The end of `glimpse ask`: the answer's boxes and points placed on the
//! images, drawn (`--annotate`, and `--show` with `--locate`), and the
//! result printed: one JSON object, or the annotated images on stdout and
//! the list of what was found on stderr.

use std::io::Write;
use std::path::PathBuf;

use image::RgbImage;
use serde_json::{json, Value};

use super::answer::Answer;
use super::AskArgs;
use crate::cli::grounding;
use crate::cli::output;
use crate::cli::show::{annotated_caption, Shower};
use crate::conversation::Conversation;
use crate::engine::kv_policy::DEFAULT_THRESHOLD;
use crate::engine::{Engine, FinishReason, KvCachePolicy};
use crate::processor::grounding::Grounding;
use crate::processor::image::LongEdgeCap;
use crate::remote::Remote;

/// What answered, and the settings it answered under.
pub struct Live<'a> {
    pub backend: Answerer<'a>,
    pub cap: Option<LongEdgeCap>,
}

/// The engine here, or a server.
pub enum Answerer<'a> {
    Local {
        engine: &'a Engine,
        kv_cache: KvCachePolicy,
    },
    Remote(&'a Remote),
}

impl Live<'_> {
    /// The family's `model_type`, when known.
    fn model_type(&self) -> Option<&str> {
        match &self.backend {
            Answerer::Local { engine, .. } => Some(&engine.info().model_type),
            Answerer::Remote(remote) => remote.model_type(),
        }
    }
}

/// Finishes a live answer (already streamed, unless `--json`); returns the
/// exit code: 130 when Ctrl-C stopped it.
pub fn answer(
    args: &AskArgs,
    live: &Live,
    conversation: &Conversation,
    answer: Answer,
    out: &mut output::Stdout,
    shower: Option<&Shower>,
) -> anyhow::Result<i32> {
    let family = match live.model_type() {
        Some(model_type) => grounding::family_of(model_type),
        None => Err(anyhow::anyhow!(
            "the server's model name does not tell its family; pass --family to place boxes"
        )),
    };
    let found = match family {
        Ok(family) => grounding::ground(
            &answer.text,
            family,
            &answer.images,
            live.cap.as_ref(),
            conversation,
        ),
        Err(e) => Grounding {
            detections: Vec::new(),
            warnings: vec![e.to_string()],
        },
    };
    if !args.json {
        writeln!(out)?;
    }
    let annotations = Annotations::draw(args, conversation, &found, shower.is_some())?;
    let code = match answer.finish_reason {
        FinishReason::Cancelled => 130,
        FinishReason::Dropped(cause) => {
            let hint = cause.hint().map(|h| format!("; {h}")).unwrap_or_default();
            eprintln!(
                "glimpse: {}; the partial answer is kept{hint}",
                cause.describe()
            );
            1
        }
        FinishReason::Stop | FinishReason::Length => 0,
    };
    if args.json {
        let obj = live_json(args, live, answer, &found, &annotations.written);
        writeln!(out, "{}", serde_json::to_string(&obj)?)?;
    } else if args.annotate.is_some() || args.locate.is_some() {
        annotations.show(out, shower, conversation, &found)?;
        report(&found, conversation, &annotations.written);
    }
    Ok(code)
}

/// The `--json` object of a live answer.
fn live_json(
    args: &AskArgs,
    live: &Live,
    answer: Answer,
    found: &Grounding,
    annotated: &[PathBuf],
) -> Value {
    let grids: Vec<[usize; 3]> = answer.images.iter().map(|f| f.grid_thw).collect();
    let mut obj = json!({
        "prompt_tokens": answer.prompt_ids,
        "image_grid_thw": grids,
        "tokens": answer.tokens,
        "text": answer.text,
        "reasoning": answer.reasoning,
        "reasoning_tokens": answer.reasoning_tokens,
        "finish_reason": answer.finish_reason.as_str(),
        "timings": answer.timings,
        "images": answer.images,
        "detections": grounding::detections_json(found),
        "detection_warnings": found.warnings,
    });
    match &live.backend {
        Answerer::Local { engine, kv_cache } => {
            let info = engine.info();
            obj["model"] = json!({
                "dir": info.dir,
                "model_type": info.model_type,
                "device": info.device,
                "dtype": info.dtype,
                "thinking": info.thinking,
            });
            obj["memory_estimate"] = json!(info.memory_estimate);
            obj["kv_cache"] = json!({
                "policy": policy_name(*kv_cache),
                "format": engine.kv_cache_label(),
                "converted": answer.kv_switch,
            });
        }
        Answerer::Remote(remote) => {
            obj["model"] = json!({
                "server": remote.server(),
                "name": remote.model(),
                "model_type": remote.model_type(),
            });
        }
    }
    if args.annotate.is_some() {
        obj["annotated"] = json!(annotated);
    }
    obj
}

fn policy_name(p: KvCachePolicy) -> String {
    match p {
        KvCachePolicy::Auto { threshold } if threshold == DEFAULT_THRESHOLD => "auto".into(),
        KvCachePolicy::Auto { threshold } => format!("auto ({:.0} %)", threshold * 100.0),
        KvCachePolicy::Model => "f16".into(),
        KvCachePolicy::Int8 => "int8".into(),
    }
}

/// The images with the answer's boxes and points drawn, and the files
/// `--annotate` wrote.
pub struct Annotations {
    drawn: Vec<(usize, RgbImage)>,
    pub written: Vec<PathBuf>,
}

impl Annotations {
    /// Draws when `--annotate` writes the result or `--show` shows what
    /// `--locate` found.
    pub fn draw(
        args: &AskArgs,
        conversation: &Conversation,
        found: &Grounding,
        shown: bool,
    ) -> anyhow::Result<Annotations> {
        let wanted = args.annotate.is_some() || (shown && args.locate.is_some());
        let drawn = if wanted {
            grounding::annotated_images(conversation, found, args.alpha)?
        } else {
            Vec::new()
        };
        let written = match &args.annotate {
            Some(out) => grounding::write_annotations(out, &drawn)?,
            None => Vec::new(),
        };
        Ok(Annotations { drawn, written })
    }

    /// With `--show`, each drawn image and what was drawn on it.
    pub fn show(
        &self,
        out: &mut impl Write,
        shower: Option<&Shower>,
        conversation: &Conversation,
        found: &Grounding,
    ) -> anyhow::Result<()> {
        let Some(shower) = shower else {
            return Ok(());
        };
        let paths = conversation.images();
        for (image, pixels) in &self.drawn {
            let marks = found
                .detections
                .iter()
                .filter(|d| d.image == *image)
                .count();
            let caption = annotated_caption(paths[*image], marks);
            shower.captioned(out, pixels.clone(), &caption)?;
        }
        Ok(())
    }
}

/// The detections, warnings and written files, on stderr.
pub fn report(found: &Grounding, conversation: &Conversation, annotated: &[PathBuf]) {
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
