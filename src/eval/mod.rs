//! `glimpse eval`: scoring a model on a suite of image questions.
//!
//! * [`suite`] reads the JSONL suite, reporting broken lines by number.
//! * [`matching`] decides whether a reply is correct, one rule per `match`.
//! * [`results`] keeps the answers on disk as they come, for resuming.
//! * [`report`] tallies them per category, as JSON and Markdown.
//! * [`synth`] draws a synthetic suite with exact answer keys.
//!
//! Running the questions through the engine is the command line's part
//! (`cli::eval`); everything here is independent of the model.

pub mod matching;
pub mod report;
pub mod results;
pub mod suite;
pub mod synth;
