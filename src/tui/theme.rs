//! Every style the chat screen uses, in one place. The built-in `dark` theme
//! file (`themes/dark.toml`) says the same as `Theme::default`; other themes
//! are read by `theme_file`.

use ratatui::style::{Color, Modifier, Style};

/// The syntect themes code blocks can be highlighted with.
pub const SYNTAX_THEMES: [&str; 7] = [
    "base16-ocean.dark",
    "base16-eighties.dark",
    "base16-mocha.dark",
    "base16-ocean.light",
    "InspiredGitHub",
    "Solarized (dark)",
    "Solarized (light)",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    /// The theme's name, shown in the status line.
    pub name: String,
    /// Plain text of the conversation.
    pub text: Style,
    /// Secondary text: stats, hints, placeholders.
    pub dim: Style,
    /// "You" above a question.
    pub user_label: Style,
    /// The model's name above an answer.
    pub assistant_label: Style,
    /// A question's own text.
    pub user_text: Style,
    pub notice: Style,
    pub warning: Style,
    pub error: Style,
    pub heading: Style,
    pub emphasis: Style,
    pub strong: Style,
    pub inline_code: Style,
    pub code_block: Style,
    pub link: Style,
    pub quote: Style,
    pub table_border: Style,
    pub border: Style,
    pub border_focused: Style,
    pub title: Style,
    pub chip: Style,
    pub chip_pending: Style,
    pub status: Style,
    pub status_accent: Style,
    pub help_key: Style,
    pub spinner: Style,
    /// Name of the syntect theme used for code blocks.
    pub syntax_theme: &'static str,
}

impl Default for Theme {
    fn default() -> Self {
        let fg = Color::Reset;
        Theme {
            name: "dark".into(),
            text: Style::new().fg(fg),
            dim: Style::new().fg(Color::DarkGray),
            user_label: Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            assistant_label: Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD),
            user_text: Style::new().fg(fg),
            notice: Style::new().fg(Color::Blue),
            warning: Style::new().fg(Color::Yellow),
            error: Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            heading: Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            emphasis: Style::new().add_modifier(Modifier::ITALIC),
            strong: Style::new().add_modifier(Modifier::BOLD),
            inline_code: Style::new().fg(Color::Green),
            code_block: Style::new().fg(Color::Gray),
            link: Style::new()
                .fg(Color::Blue)
                .add_modifier(Modifier::UNDERLINED),
            quote: Style::new().fg(Color::Gray).add_modifier(Modifier::ITALIC),
            table_border: Style::new().fg(Color::DarkGray),
            border: Style::new().fg(Color::DarkGray),
            border_focused: Style::new().fg(Color::Cyan),
            title: Style::new().add_modifier(Modifier::BOLD),
            chip: Style::new().fg(Color::Black).bg(Color::Cyan),
            chip_pending: Style::new().fg(Color::Black).bg(Color::DarkGray),
            status: Style::new().fg(Color::White).bg(Color::DarkGray),
            status_accent: Style::new()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
            help_key: Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            spinner: Style::new().fg(Color::Magenta),
            syntax_theme: "base16-ocean.dark",
        }
    }
}
