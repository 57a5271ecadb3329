//! glimpse: a terminal client for Qwen-VL vision-language models, running the
//! model itself on candle.
//!
//! Layers, inside out: `model` (tensors in, logits out), `processor` (images,
//! chat template, tokens), `engine` (a loaded model on its own thread),
//! `session` (config, saved conversations, model registry, hub cache), `cli`;
//! beside them `eval`, the scoring and synthetic suite of `glimpse eval`.

pub mod calendar;
pub mod cli;
pub mod conversation;
pub mod engine;
pub mod eval;
pub mod gpu;
pub mod human;
pub mod model;
pub mod processor;
pub mod remote;
pub mod serve;
pub mod session;
pub mod tui;
