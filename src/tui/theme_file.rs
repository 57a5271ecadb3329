//! Themes as TOML files: the built-in ones (`themes/*.toml`, compiled in) and
//! the user's own in `<config dir>/themes/NAME.toml`, which add to them or
//! replace one of the same name. A bad file is reported like a bad config
//! file: the file, the line, and what would be valid.

use std::path::{Path, PathBuf};

use ratatui::style::{Color, Modifier, Style};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::theme::{Theme, SYNTAX_THEMES};
use crate::session::config::{line_column, with_suggestion};
use crate::session::paths;

/// The themes glimpse ships with, in the order Alt+T goes through them.
pub const BUILTIN: [(&str, &str); 4] = [
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    (
        "gruvbox-dark",
        include_str!("../../themes/gruvbox-dark.toml"),
    ),
];

/// Colour names a theme may use, besides `#rrggbb` and 0–255.
pub const COLOR_NAMES: [&str; 17] = [
    "reset",
    "black",
    "red",
    "green",
    "yellow",
    "blue",
    "magenta",
    "cyan",
    "gray",
    "dark-gray",
    "light-red",
    "light-green",
    "light-yellow",
    "light-blue",
    "light-magenta",
    "light-cyan",
    "white",
];

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThemeError {
    #[error("cannot read theme file {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("{}, line {line}, column {column}: {message}; fix it or remove the file", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("unknown theme `{name}`; the themes are {}{}", names.join(", "), user_dir_hint(dir.as_deref()))]
    Unknown {
        name: String,
        names: Vec<String>,
        dir: Option<PathBuf>,
    },
}

fn user_dir_hint(dir: Option<&Path>) -> String {
    match dir {
        Some(d) => format!(" (your own go in {}/NAME.toml)", d.display()),
        None => String::new(),
    }
}

/// A theme by name, or why it cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub struct ThemeChoice {
    pub name: String,
    pub theme: Result<Theme, ThemeError>,
}

/// Parses theme text; `name` is the theme's name, `path` names the file in
/// messages. Styles the file leaves out are the default (dark) theme's.
pub fn parse_theme(name: &str, text: &str, path: &Path) -> Result<Theme, ThemeError> {
    let invalid = |span: Option<std::ops::Range<usize>>, message: String| {
        let (line, column) = line_column(text, span.map_or(0, |s| s.start));
        ThemeError::Invalid {
            path: path.to_path_buf(),
            line,
            column,
            message: with_suggestion(&message),
        }
    };
    let mut raw: RawTheme =
        toml::from_str(text).map_err(|e| invalid(e.span(), e.message().to_string()))?;
    let mut theme = Theme {
        name: name.to_string(),
        ..Theme::default()
    };
    if let Some(syntax) = raw.syntax_theme.take() {
        let wanted = syntax.get_ref();
        match SYNTAX_THEMES.iter().find(|s| *s == wanted) {
            Some(s) => theme.syntax_theme = s,
            None => {
                let choices: Vec<String> = SYNTAX_THEMES.iter().map(|s| format!("`{s}`")).collect();
                return Err(invalid(
                    Some(syntax.span()),
                    format!(
                        "unknown syntax_theme `{wanted}`, expected one of {}",
                        choices.join(", ")
                    ),
                ));
            }
        }
    }
    raw.apply(&mut theme);
    Ok(theme)
}

/// The built-in themes.
pub fn builtin() -> Vec<ThemeChoice> {
    BUILTIN
        .iter()
        .map(|(name, text)| ThemeChoice {
            name: name.to_string(),
            theme: parse_theme(name, text, Path::new(&format!("themes/{name}.toml"))),
        })
        .collect()
}

/// The built-in themes, then the user's from `dir` (a file named like a
/// built-in one replaces it in place).
pub fn available_in(dir: Option<&Path>) -> Vec<ThemeChoice> {
    let mut themes = builtin();
    let Some(dir) = dir else {
        return themes;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return themes;
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
        .collect();
    files.sort();
    for path in files {
        let Some(name) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
            continue;
        };
        let theme = match std::fs::read_to_string(&path) {
            Ok(text) => parse_theme(&name, &text, &path),
            Err(e) => Err(ThemeError::Read {
                path: path.clone(),
                reason: e.to_string(),
            }),
        };
        let choice = ThemeChoice { name, theme };
        match themes.iter_mut().find(|t| t.name == choice.name) {
            Some(slot) => *slot = choice,
            None => themes.push(choice),
        }
    }
    themes
}

/// The built-in themes and those in the user's config folder.
pub fn available() -> Vec<ThemeChoice> {
    available_in(paths::themes_dir().as_deref())
}

/// The theme called `name` among `themes`, or why it cannot be had.
pub fn pick(themes: &[ThemeChoice], name: &str) -> Result<Theme, ThemeError> {
    match themes.iter().find(|t| t.name == name) {
        Some(choice) => choice.theme.clone(),
        None => Err(ThemeError::Unknown {
            name: name.to_string(),
            names: themes.iter().map(|t| t.name.clone()).collect(),
            dir: paths::themes_dir(),
        }),
    }
}

/// Parses `red`, `light-blue`, `#fabd2f` (a name may use `_` for `-`).
pub fn parse_color(s: &str) -> Result<Color, String> {
    if let Some(hex) = s.strip_prefix('#') {
        let ok = hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        if !ok {
            return Err(format!(
                "`{s}` is not a colour: write #rrggbb with six hex digits"
            ));
        }
        let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digits");
        return Ok(Color::Rgb(channel(0), channel(2), channel(4)));
    }
    let name = s.trim().to_ascii_lowercase().replace('_', "-");
    let color = match name.as_str() {
        "reset" | "default" => Color::Reset,
        "black" => Color::Black,
        "red" => Color::Red,
        "green" => Color::Green,
        "yellow" => Color::Yellow,
        "blue" => Color::Blue,
        "magenta" => Color::Magenta,
        "cyan" => Color::Cyan,
        "gray" | "grey" => Color::Gray,
        "dark-gray" | "dark-grey" | "darkgray" => Color::DarkGray,
        "light-red" => Color::LightRed,
        "light-green" => Color::LightGreen,
        "light-yellow" => Color::LightYellow,
        "light-blue" => Color::LightBlue,
        "light-magenta" => Color::LightMagenta,
        "light-cyan" => Color::LightCyan,
        "white" => Color::White,
        _ => {
            let names: Vec<String> = COLOR_NAMES.iter().map(|n| format!("`{n}`")).collect();
            return Err(format!(
                "unknown colour `{s}`, expected one of {}, \"#rrggbb\" or a number 0 to 255",
                names.join(", ")
            ));
        }
    };
    Ok(color)
}

/// A colour as a theme writes it: a name, `#rrggbb`, or an xterm index.
#[derive(Debug, Clone, Copy)]
struct ColorValue(Color);

impl<'de> Deserialize<'de> for ColorValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ColorValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a colour name, \"#rrggbb\" or a number 0 to 255")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ColorValue, E> {
                parse_color(s).map(ColorValue).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<ColorValue, E> {
                u8::try_from(n)
                    .map(|i| ColorValue(Color::Indexed(i)))
                    .map_err(|_| E::custom(format!("colour index {n} is out of range 0 to 255")))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<ColorValue, E> {
                self.visit_i64(i64::try_from(n).unwrap_or(i64::MAX))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStyle {
    fg: Option<ColorValue>,
    bg: Option<ColorValue>,
    #[serde(default)]
    bold: bool,
    #[serde(default)]
    italic: bool,
    #[serde(default)]
    underline: bool,
}

impl RawStyle {
    fn style(&self) -> Style {
        let mut style = Style::new();
        if let Some(c) = self.fg {
            style = style.fg(c.0);
        }
        if let Some(c) = self.bg {
            style = style.bg(c.0);
        }
        for (on, m) in [
            (self.bold, Modifier::BOLD),
            (self.italic, Modifier::ITALIC),
            (self.underline, Modifier::UNDERLINED),
        ] {
            if on {
                style = style.add_modifier(m);
            }
        }
        style
    }
}

// One optional table per style of `Theme`; serde's "unknown field" message
// then lists every style name.
macro_rules! theme_styles {
    ($($field:ident),* $(,)?) => {
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RawTheme {
            syntax_theme: Option<Spanned<String>>,
            $($field: Option<RawStyle>,)*
        }

        impl RawTheme {
            fn apply(self, theme: &mut Theme) {
                $(if let Some(s) = &self.$field {
                    theme.$field = s.style();
                })*
            }
        }

        /// The style names a theme file may set.
        pub const STYLE_NAMES: &[&str] = &[$(stringify!($field)),*];
    };
}

theme_styles!(
    text,
    dim,
    user_label,
    assistant_label,
    user_text,
    notice,
    warning,
    error,
    heading,
    emphasis,
    strong,
    inline_code,
    code_block,
    link,
    quote,
    table_border,
    border,
    border_focused,
    title,
    chip,
    chip_pending,
    status,
    status_accent,
    help_key,
    spinner,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dark_file_is_the_default_theme() {
        let dark = builtin().remove(0);
        assert_eq!(dark.name, "dark");
        assert_eq!(dark.theme.unwrap(), Theme::default());
    }

    #[test]
    fn every_builtin_theme_parses_and_sets_every_style() {
        for (name, text) in BUILTIN {
            let theme = parse_theme(name, text, Path::new("x.toml"));
            assert!(theme.is_ok(), "{name}: {theme:?}");
            let table: toml::Table = text.parse().unwrap();
            for style in STYLE_NAMES {
                assert!(table.contains_key(*style), "{name} leaves out {style}");
            }
            assert!(table.contains_key("syntax_theme"), "{name}");
        }
    }

    #[test]
    fn colours_are_names_hex_or_indexes() {
        assert_eq!(parse_color("light_blue"), Ok(Color::LightBlue));
        assert_eq!(parse_color("Dark-Gray"), Ok(Color::DarkGray));
        assert_eq!(parse_color("#fabd2f"), Ok(Color::Rgb(0xfa, 0xbd, 0x2f)));
        assert!(parse_color("#fab").unwrap_err().contains("six hex digits"));
        let e = parse_color("purple").unwrap_err();
        assert!(
            e.contains("`light-magenta`") && e.contains("0 to 255"),
            "{e}"
        );
        let t = parse_theme("t", "dim = { fg = 244, bg = 0 }", Path::new("t.toml")).unwrap();
        assert_eq!(
            t.dim,
            Style::new().fg(Color::Indexed(244)).bg(Color::Indexed(0))
        );
    }

    #[test]
    fn a_users_theme_replaces_a_builtin_of_its_name_and_adds_others() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dark.toml"), "text = { fg = \"red\" }\n").unwrap();
        std::fs::write(dir.path().join("mine.toml"), "dim = { fg = 8 }\n").unwrap();
        std::fs::write(dir.path().join("broken.toml"), "dim = { fg = \"nope\" }\n").unwrap();
        let themes = available_in(Some(dir.path()));
        let names: Vec<&str> = themes.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "dark",
                "light",
                "high-contrast",
                "gruvbox-dark",
                "broken",
                "mine"
            ]
        );
        assert_eq!(
            pick(&themes, "dark").unwrap().text,
            Style::new().fg(Color::Red)
        );
        assert_eq!(pick(&themes, "mine").unwrap().name, "mine");
        let e = pick(&themes, "broken").unwrap_err().to_string();
        assert!(e.contains("broken.toml, line 1, column"), "{e}");
        let e = pick(&themes, "solarized").unwrap_err().to_string();
        assert!(
            e.starts_with("unknown theme `solarized`; the themes are dark, light"),
            "{e}"
        );
    }
}
