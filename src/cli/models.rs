//! `glimpse models`: the known models and which are already in the local
//! Hugging Face cache, with their size on disk.

use std::io::Write;
use std::path::Path;

use clap::Args;
use serde_json::{json, Value};

use super::output;

use crate::engine::estimate::stored_weights_bytes;
use crate::human::{gib, human_bytes};
use crate::model::{Family, ModelConfig, Quant};
use crate::session::hf_cache::{self, CachedRepo};
use crate::session::registry::{
    cards, thinking_words, ESTIMATE_CONTEXT_TOKENS, ESTIMATE_OVERHEAD_GIB,
};
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
            "{:<30} {:>7} {:>7} {:>9} {:>9} {:>9} {:>10}  {:<14}  IN CACHE",
            "MODEL", "PARAMS", "ACTIVE", "BF16", "Q8_0", "Q4K", "MEMORY", "THINKING"
        )?;
        for c in &self.cards {
            writeln!(
                out,
                "{:<30} {:>7} {:>7} {:>9} {:>9} {:>9} {:>10}  {:<14}  {}",
                c.id,
                format!("{:.2}B", c.parameters as f64 / 1e9),
                format!("{:.2}B", c.active_parameters as f64 / 1e9),
                format!("{:.1} GiB", c.bf16_gib),
                gib(weights_bytes(c, Quant::Q8_0)),
                gib(weights_bytes(c, Quant::Q4K)),
                format!("~{:.1} GiB", c.memory_gib),
                thinking_words(c.thinking),
                self.find(&c.id)
                    .map_or_else(|| "-".to_string(), cache_state)
            )?;
            let marker = if self.is_default(c) { " (default)" } else { "" };
            writeln!(out, "    {}{marker}", c.notes)?;
            if c.context_layers < c.layers {
                writeln!(
                    out,
                    "    {} of {} layers grow with the context; the others keep a fixed-size state",
                    c.context_layers, c.layers
                )?;
            }
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
            "\nACTIVE: parameters one token goes through (a mixture of experts uses a few of its experts).\nQ8_0, Q4K: the weights with --quant (the language model's linear layers quantised, the rest bf16).\nMEMORY: bf16 weights (every expert) + KV cache for {ESTIMATE_CONTEXT_TOKENS} tokens + {ESTIMATE_OVERHEAD_GIB} GiB; f32 on a CPU doubles the weights.\nTHINKING: what the checkpoint's template does; --thinking, /think and Alt+K switch the ones that can."
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

/// The card's weights in bf16 with the linear layers stored as `quant`.
fn weights_bytes(c: &ModelCard, quant: Quant) -> u64 {
    stored_weights_bytes(c.parameters, 2, c.linear_weights, quant)
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
        "weights_bytes": Quant::ALL.iter().map(|&q| {
            let name = if q == Quant::None { "bf16" } else { q.name() };
            (name.to_string(), json!(weights_bytes(c, q)))
        }).collect::<serde_json::Map<_, _>>(),
        "memory_gib": c.memory_gib,
        "context": c.context,
        "layers": c.layers,
        "context_layers": c.context_layers,
        "thinking": c.thinking,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_card_shows_its_weights_per_quant_type() {
        let listing = Listing {
            cache: Path::new("/nonexistent"),
            default_model: "",
            cards: cards(),
            cached: &[],
        };
        let mut table = Vec::new();
        listing.write_table(&mut table).unwrap();
        let table = String::from_utf8(table).unwrap();
        let json = listing.json();
        for (i, c) in listing.cards.iter().enumerate() {
            let (bf16, q8, q4) = (
                weights_bytes(c, Quant::None),
                weights_bytes(c, Quant::Q8_0),
                weights_bytes(c, Quant::Q4K),
            );
            assert_eq!(bf16, c.parameters * 2, "{}", c.id);
            assert!(q4 < q8 && q8 < bf16, "{}", c.id);
            let row = table.lines().find(|l| l.starts_with(&c.id)).unwrap();
            assert!(row.contains(&gib(q8)) && row.contains(&gib(q4)), "{row}");
            let sizes = &json["models"][i]["weights_bytes"];
            assert_eq!(sizes["bf16"], bf16);
            assert_eq!(sizes["q4k"], q4);
        }
    }
}
