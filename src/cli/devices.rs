//! `glimpse devices`: what glimpse sees of this machine's GPUs (or, without
//! one, its CPU), as the GPU pane shows it, or as JSON samples.

use std::io::Write;
use std::sync::mpsc;

use clap::Args;

use super::output;

use crate::gpu::pane::{pane_text, GpuView};
use crate::gpu::sampler::{HISTORY_LEN, PERIOD};
use crate::gpu::{NvmlMonitor, Sampler};

#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Samples to take, one a second (the pane's sparklines show them).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub samples: u64,
    /// Print every sample as one JSON line instead of the pane.
    #[arg(long)]
    pub json: bool,
    /// Width of the pane in columns.
    #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u16).range(40..=400))]
    pub width: u16,
}

pub fn run(args: DevicesArgs) -> anyhow::Result<i32> {
    let (tx, rx) = mpsc::channel();
    let sampler = Sampler::start_with(
        Box::new(NvmlMonitor::open()),
        PERIOD,
        HISTORY_LEN,
        move |s| {
            let _ = tx.send(s.clone());
        },
    );
    let mut out = output::stdout();
    for _ in 0..args.samples {
        let Ok(sample) = rx.recv() else { break };
        if args.json {
            // Leaving early drops the sampler, which stops its thread.
            writeln!(out, "{}", serde_json::to_string(&sample)?)?;
        }
    }
    let history = sampler.readings().history();
    sampler.stop();
    if !args.json {
        let view = GpuView::from_history(&history, None, None, None);
        for line in pane_text(&view, args.width) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(0)
}
