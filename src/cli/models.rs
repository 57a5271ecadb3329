//! `glimpse models`: the known models and which are already in the local
//! Hugging Face cache, with their size on disk.

use std::io::Write;
use std::path::Path;

use clap::Args;
use serde_json::{json, Value};

use super::output;

use crate::human::human_bytes;
use crate::model::{Family, ModelConfig};
use crate::session::hf_cache::{self, CachedRepo};
use crate::session::registry::{cards, ESTIMATE_CONTEXT_TOKENS, ESTIMATE_OVERHEAD_GIB};
use crate::session::{Config, HubOptions, ModelCard};

#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ModelsArgs) -> anyhow::Result<i32> {
    let options = HubOptions::from_env();
    let cache = &options.cache_dir;
    // A broken config should not hide the model list; say so and go on.
    let default_model = match Config::load() {
        Ok(c) => c.model,
        Err(e) => {
            eprintln!("warning: {e}");
            Config::default().model
        }
    };
    let cached = hf_cache::scan(cache);
    let listing = Listing {
        cache,
        default_model: &default_model,
        cards: cards(),
        cached: &cached,
    };
    let mut out = output::stdout();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&listing.json())?)?;
    } else {
        listing.write_table(&mut out)?;
    }
    Ok(0)
}

/// The model cards beside what the Hugging Face cache holds.
struct Listing<'a> {
    cache: &'a Path,
    default_model: &'a str,
    cards: Vec<ModelCard>,
    cached: &'a [CachedRepo],
}

impl Listing<'_> {
    fn find(&self, id: &str) -> Option<&CachedRepo> {
        self.cached.iter().find(|r| r.id.eq_ignore_ascii_case(id))
    }

    fn is_default(&self, card: &ModelCard) -> bool {
        card.id.eq_ignore_ascii_case(self.default_model)
    }

    /// Other runnable models in the cache: a supported model_type in config.json.
    fn others(&self) -> Vec<(&CachedRepo, Family)> {
        self.cached
            .iter()
            .filter(|r| !self.cards.iter().any(|c| c.id.eq_ignore_ascii_case(&r.id)))
            .filter_map(|r| Some((r, family_of(r.snapshot.as_deref()?)?)))
            .collect()
    }

    fn json(&self) -> Value {
        json!({
            "cache_dir": self.cache,
            "default_model": self.default_model,
            "models": self.cards.iter().map(|c| {
                let mut v = card_json(c);
                v["default"] = json!(self.is_default(c));
                v["cache"] = self.find(&c.id).map(cache_json).unwrap_or(Value::Null);
                v
            }).collect::<Vec<_>>(),
            "other_cached": self.others().iter().map(|(r, family)| {
                json!({"id": r.id, "family": family.model_type(), "cache": cache_json(r)})
            }).collect::<Vec<_>>(),
        })
    }

    fn write_table(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{:<30} {:>7} {:>7} {:>9} {:>10}  IN CACHE",
            "MODEL", "PARAMS", "ACTIVE", "BF16", "MEMORY"
        )?;
        for c in &self.cards {
            writeln!(
                out,
                "{:<30} {:>7} {:>7} {:>9} {:>10}  {}",
                c.id,
                format!("{:.2}B", c.parameters as f64 / 1e9),
                format!("{:.2}B", c.active_parameters as f64 / 1e9),
                format!("{:.1} GiB", c.bf16_gib),
                format!("~{:.1} GiB", c.memory_gib),
                self.find(&c.id)
                    .map_or_else(|| "-".to_string(), cache_state)
            )?;
            let marker = if self.is_default(c) { " (default)" } else { "" };
            writeln!(out, "    {}{marker}", c.notes)?;
        }
        let others = self.others();
        if !others.is_empty() {
            writeln!(out, "\nOther Qwen-VL models in the cache:")?;
            for (r, family) in &others {
                writeln!(
                    out,
                    "  {:<40} {:<11} {}",
                    r.id,
                    family.display_name(),
                    cache_state(r)
                )?;
            }
        }
        writeln!(
            out,
            "\nACTIVE: parameters one token goes through (a mixture of experts uses a few of its experts).\nMEMORY: bf16 weights (every expert) + KV cache for {ESTIMATE_CONTEXT_TOKENS} tokens + {ESTIMATE_OVERHEAD_GIB} GiB; f32 on a CPU doubles the weights."
        )?;
        writeln!(
            out,
            "Cache: {} (set HF_HUB_CACHE or HF_HOME to use another).",
            self.cache.display()
        )?;
        writeln!(
            out,
            "Use one with: glimpse ask --model <MODEL> ... (downloaded on first use)"
        )
    }
}

fn family_of(snapshot: &Path) -> Option<Family> {
    ModelConfig::from_model_dir(snapshot).ok().map(|c| c.family)
}

fn cache_state(r: &CachedRepo) -> String {
    if r.is_complete() {
        format!("{} complete", human_bytes(r.bytes))
    } else {
        format!(
            "{} partial (missing {})",
            human_bytes(r.bytes),
            r.missing.len()
        )
    }
}

fn card_json(c: &ModelCard) -> Value {
    json!({
        "id": c.id,
        "family": c.family.model_type(),
        "parameters": c.parameters,
        "active_parameters": c.active_parameters,
        "bf16_gib": c.bf16_gib,
        "memory_gib": c.memory_gib,
        "context": c.context,
        "notes": c.notes,
    })
}

fn cache_json(r: &CachedRepo) -> Value {
    json!({
        "path": r.dir,
        "snapshot": r.snapshot,
        "complete": r.is_complete(),
        "bytes": r.bytes,
        "missing": r.missing,
    })
}
