//! What outlives one run: the user's config, saved conversations, the model
//! registry, and finding models in (or downloading them into) the Hugging Face
//! cache.

pub mod atomic;
pub mod config;
pub mod digest;
pub mod download;
pub mod export;
pub mod folder_lock;
pub mod hf_cache;
pub mod hub;
pub mod keyspec;
pub mod paths;
pub mod registry;
pub mod store;
pub mod timestamp;
pub mod turns;

pub use config::{Config, ConfigError, Preset, DEFAULT_MODEL};
pub use download::HubDownload;
pub use hub::{
    plan_model, resolve_model, DownloadEvent, HubError, HubOptions, ModelPlan, ModelSource,
    ResolvedModel,
};
pub use registry::ModelCard;
pub use store::{Saved, Session, SessionSettings, SessionStore, StoreError};
