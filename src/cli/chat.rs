//! `glimpse` / `glimpse chat`: the full-screen chat on a local model. The
//! flags win; the config file fills what they leave out.

use std::path::{Path, PathBuf};

use clap::Args;

use super::ask::{parse_cap, CapArg};
use super::look::look;
use super::model_arg::ModelFlags;
use super::remote_arg::RemoteFlags;
use super::thinking_arg::ThinkingFlag;
use crate::conversation::Conversation;
use crate::engine::EngineOptions;
use crate::session::config::{Config, ImageProtocol};
use crate::session::store::{Session, SessionSettings};
use crate::session::SessionStore;
use crate::tui::colors::ColorDepth;
use crate::tui::presets::{builtin_presets, Preset};
use crate::tui::runtime::SessionOptions;
use crate::tui::ChatOptions;

#[derive(Debug, Default, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelFlags,
    #[command(flatten)]
    pub remote: RemoteFlags,
    /// How image previews are drawn: auto detects kitty, iTerm2 or sixel and
    /// falls back to Unicode half-blocks, which work in any terminal.
    #[arg(
        long = "image-protocol",
        value_name = "auto|kitty|iterm2|sixel|halfblocks"
    )]
    pub image_protocol: Option<ImageProtocol>,
    /// Limit the context below the model's maximum; the oldest turns are
    /// left out (with a notice) when the conversation outgrows it.
    #[arg(long = "max-context", value_name = "TOKENS", value_parser = crate::cli::model_arg::parse_max_context)]
    pub max_context: Option<usize>,
    /// Scale images whose long edge exceeds THRESHOLD down to TARGET px first
    /// ("THRESHOLD:TARGET", or "off"; default: the config's, else 2000:1920).
    #[arg(long = "long-edge-cap", value_parser = parse_cap)]
    pub long_edge_cap: Option<CapArg>,
    /// Continue a saved session (its id, or a unique start of it; without
    /// one, the latest). Without --model it runs on the session's model.
    #[arg(long, value_name = "ID", num_args = 0..=1, default_missing_value = "latest")]
    pub resume: Option<String>,
    /// Open the chat on a conversation file (a JSON list of messages in the
    /// transformers chat format, as `ask --conversation` reads), saved as a
    /// new session from the next question on; its answers' boxes are drawn.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub conversation: Option<PathBuf>,
    /// Colour theme: dark, light, high-contrast, gruvbox-dark, or one of
    /// your own in the config folder's themes/ (default: the config's, else dark).
    #[arg(long, value_name = "NAME")]
    pub theme: Option<String>,
    /// `/think on|off` and Alt+K switch it later; a preset's `thinking`
    /// applies when the preset is chosen.
    #[command(flatten)]
    pub thinking: ThinkingFlag,
}

/// The config's presets, in the config's order (the built-in three first, so
/// F1/F2/F3 and Alt+1/2/3 keep them). A table named like a built-in preset
/// changes only the fields it sets; what a preset of the user's leaves out is
/// left to the model's generation_config.json.
pub fn chat_presets(config: &Config) -> Vec<Preset> {
    if config.presets.is_empty() {
        return builtin_presets();
    }
    config.presets.clone()
}

/// The chat's options from the flags over the config; a bad config or an
/// unknown model stops here, before the screen opens.
pub fn chat_options(args: ChatArgs, config: &Config) -> anyhow::Result<ChatOptions> {
    let spec = args.model.spec(config);
    let long_edge_cap = match args.long_edge_cap {
        Some(cap) => cap.0,
        None => config.long_edge_cap,
    };
    let remote = args.remote.options(
        config,
        spec.clone(),
        long_edge_cap,
        crate::processor::image::AlphaMode::White,
    )?;
    // A model on a server is named as the server lists it: nothing to find
    // or download here.
    let (model_dir, download) = match &remote {
        Some(_) => (PathBuf::from(&spec), None),
        None => args.model.dir_or_download(config)?,
    };
    let store = SessionStore::open_default().map_err(|e| e.to_string());
    let look = look(config, args.theme.as_deref())?;
    let color_depth = ColorDepth::from_env().map_err(|e| anyhow::anyhow!(e))?;
    let presets = chat_presets(config);
    let start_preset = presets
        .iter()
        .position(|p| p.name == config.preset)
        .unwrap_or(0);
    Ok(ChatOptions {
        engine: EngineOptions {
            long_edge_cap,
            max_context: args.max_context,
            // The screen is up while the model loads: no lines on stderr.
            load_progress: None,
            ..args.model.engine_options(config, model_dir)
        },
        download,
        remote,
        image_protocol: args.image_protocol.unwrap_or(config.image_protocol),
        presets,
        start_preset,
        keymap: look.keymap,
        sessions: SessionOptions {
            store,
            model: spec,
            resume: None,
        },
        theme: look.theme,
        themes: look.themes,
        color_depth,
        thinking: config.thinking,
        thinking_start: args.thinking.thinking,
    })
}

pub fn run(mut args: ChatArgs) -> anyhow::Result<i32> {
    let config = Config::load()?;
    // A session that cannot be resumed, or a conversation file that cannot
    // be read, stops here, before the screen opens.
    let mut resume = match (args.resume.take(), args.conversation.take()) {
        (Some(id), _) => Some(SessionStore::open_default()?.load(&id)?),
        (None, Some(file)) => Some(session_from_file(&file, &args.model.spec(&config))?),
        (None, None) => None,
    };
    if let Some(session) = &mut resume {
        keep_thinking_flag(session, args.thinking.thinking);
    }
    if let (None, Some(session)) = (&args.model.spec, &resume) {
        args.model.spec = Some(session.model.clone());
    }
    let mut options = chat_options(args, &config)?;
    options.sessions.resume = resume;
    crate::tui::run(options)
}

/// `--thinking` given now wins over the choice a session was saved with.
fn keep_thinking_flag(session: &mut Session, flag: Option<bool>) {
    if flag.is_some() {
        session.settings.thinking = flag;
    }
}

/// A new session holding the conversation of `file`.
pub fn session_from_file(file: &Path, model: &str) -> anyhow::Result<Session> {
    // Its errors name the file already.
    let conversation = Conversation::from_json_file(file)?;
    Ok(Session::from_conversation(
        model,
        SessionSettings::default(),
        conversation,
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::engine::{DeviceChoice, DtypeChoice, KvCachePolicy};

    const MODEL: &str = "tests/fixtures/models/qwen2_vl";

    fn config(toml: &str) -> Config {
        Config::from_toml_str(toml, Path::new("config.toml")).unwrap()
    }

    #[test]
    fn a_thinking_flag_wins_over_the_resumed_sessions_choice() {
        let mut session = Session::new("m", SessionSettings::default());
        session.settings.thinking = Some(false);
        keep_thinking_flag(&mut session, None);
        assert_eq!(session.settings.thinking, Some(false));
        keep_thinking_flag(&mut session, Some(true));
        assert_eq!(session.settings.thinking, Some(true));
    }

    #[test]
    fn the_config_fills_what_the_flags_leave_out() {
        let c = config(&format!(
            "model = \"{MODEL}\"\ndevice = \"cpu\"\ndtype = \"f32\"\npreset = \"quick\"\n\
             image_protocol = \"halfblocks\"\nlong_edge_cap = \"off\"\n\
             [kv_cache]\npolicy = \"int8\"\n\
             [presets.ocr]\ntemperature = 0\nmax_tokens = 2048\n\
             [keys]\nregenerate = \"f5\"\n"
        ));
        let o = chat_options(ChatArgs::default(), &c).unwrap();
        assert_eq!(o.engine.model_dir, Path::new(MODEL));
        assert_eq!(o.engine.device, DeviceChoice::Cpu);
        assert_eq!(o.engine.dtype, DtypeChoice::F32);
        assert_eq!(o.engine.long_edge_cap, None);
        assert_eq!(o.engine.kv_cache, KvCachePolicy::Int8);
        assert_eq!(o.image_protocol, ImageProtocol::Halfblocks);
        let names: Vec<&str> = o.presets.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names[..3], ["diagnostic", "creative", "quick"]);
        assert!(names.contains(&"ocr"));
        assert_eq!(o.presets[o.start_preset].name, "quick");
        assert_eq!(
            o.keymap
                .first_label(crate::tui::keymap::Action::Regenerate)
                .as_deref(),
            Some("F5")
        );

        // Flags win.
        let args = ChatArgs {
            model: ModelFlags {
                device: Some(DeviceChoice::Auto),
                ..ModelFlags::default()
            },
            image_protocol: Some(ImageProtocol::Kitty),
            ..ChatArgs::default()
        };
        let o = chat_options(args, &c).unwrap();
        assert_eq!(o.engine.device, DeviceChoice::Auto);
        assert_eq!(o.image_protocol, ImageProtocol::Kitty);
    }

    #[test]
    fn the_theme_comes_from_the_flag_else_the_config() {
        let c = config(&format!("model = \"{MODEL}\"\ntheme = \"light\"\n"));
        let o = chat_options(ChatArgs::default(), &c).unwrap();
        assert_eq!(o.theme.name, "light");
        assert!(o.themes.iter().any(|t| t.name == "gruvbox-dark"));
        let args = ChatArgs {
            theme: Some("high-contrast".into()),
            ..ChatArgs::default()
        };
        assert_eq!(chat_options(args, &c).unwrap().theme.name, "high-contrast");
        let c = config(&format!("model = \"{MODEL}\"\ntheme = \"nope\"\n"));
        let Err(e) = chat_options(ChatArgs::default(), &c) else {
            panic!("an unknown theme is refused");
        };
        let e = e.to_string();
        assert!(
            e.starts_with(
                "config.toml, line 2, column 9: unknown theme `nope`; the themes are dark, light, high-contrast, gruvbox-dark"
            ),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_action_in_keys_is_one_line_before_the_screen_opens() {
        let c = config(&format!("model = \"{MODEL}\"\n[keys]\nsned = \"enter\"\n"));
        let Err(e) = chat_options(ChatArgs::default(), &c) else {
            panic!("an unknown action is refused");
        };
        let e = e.to_string();
        assert!(
            e.starts_with("config.toml, line 3, column 1: unknown action `sned`"),
            "{e}"
        );
        assert!(!e.contains('\n'));
    }

    #[test]
    fn a_conversation_file_becomes_a_new_session_with_its_images_recorded() {
        let file = Path::new("tests/fixtures/conversations/two_images.json");
        let s = session_from_file(file, MODEL).unwrap();
        assert_eq!(s.model, MODEL);
        assert_eq!(s.images.len(), 2);
        assert!(s
            .images
            .iter()
            .all(|r| r.path.is_absolute() && r.sha256.is_some()));
        assert!(s
            .check_images()
            .iter()
            .all(|(_, state)| *state == crate::session::store::ImageState::Unchanged));

        let err = session_from_file(Path::new("no/such.json"), MODEL).unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("no/such.json") && !message.contains('\n'),
            "{message}"
        );
    }
}
