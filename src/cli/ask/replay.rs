//! `glimpse ask --replay`: the conversation's last message is the answer;
//! its boxes are placed with the image sizes the engine would use, without
//! loading the model.

use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;
use serde_json::json;

use super::answer::show_images;
use super::print::{report, Annotations};
use super::AskArgs;
use crate::cli::grounding;
use crate::cli::output;
use crate::cli::show::Shower;
use crate::conversation::{Conversation, Role};
use crate::engine::{describe_images, EngineOptions};

pub fn run(
    args: &AskArgs,
    options: &EngineOptions,
    conversation: &Conversation,
    shower: Option<&Shower>,
) -> anyhow::Result<i32> {
    let answer = match conversation.messages.last() {
        Some(m) if m.role == Role::Assistant => m.joined_text(),
        _ => bail!(
            "--replay takes the answer from the conversation's last message, \
             but that is not an assistant message; end the file with the answer to replay"
        ),
    };
    if let Some(out) = &args.annotate {
        grounding::check_annotate_target(out, conversation)?;
    }
    let paths: Vec<PathBuf> = conversation
        .images()
        .into_iter()
        .map(PathBuf::from)
        .collect();
    let (model_type, facts) = describe_images(options, &paths)?;
    let family = grounding::family_of(&model_type)?;
    let found = grounding::ground(
        &answer,
        family,
        &facts,
        options.long_edge_cap.as_ref(),
        conversation,
    );
    let annotations = Annotations::draw(args, conversation, &found, shower.is_some())?;
    let mut out = output::stdout();
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
            obj["annotated"] = json!(annotations.written);
        }
        writeln!(out, "{}", serde_json::to_string(&obj)?)?;
    } else {
        if let Some(shower) = shower {
            show_images(&mut out, shower, &facts, args.alpha)?;
        }
        writeln!(out, "{answer}")?;
        annotations.show(&mut out, shower, conversation, &found)?;
        report(&found, conversation, &annotations.written);
    }
    Ok(0)
}
