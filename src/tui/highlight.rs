//! Syntax highlighting of code blocks with syntect's bundled grammars
//! (pure-Rust regex engine, so nothing native to build).

use std::sync::OnceLock;

use ratatui::style::{Color, Style};
use ratatui::text::Span;
use syntect::easy::HighlightLines;
use syntect::highlighting::ThemeSet;
use syntect::parsing::SyntaxSet;
use syntect::util::LinesWithEndings;

struct Assets {
    syntaxes: SyntaxSet,
    themes: ThemeSet,
}

// Loading the bundled grammars takes a noticeable moment: do it once, when
// the first code block appears.
fn assets() -> &'static Assets {
    static ASSETS: OnceLock<Assets> = OnceLock::new();
    ASSETS.get_or_init(|| Assets {
        syntaxes: SyntaxSet::load_defaults_newlines(),
        themes: ThemeSet::load_defaults(),
    })
}

/// One `Vec<Span>` per line of `code`. Unknown languages (and an empty tag)
/// come back in `fallback` style, unhighlighted.
pub fn highlight(code: &str, lang: &str, theme: &str, fallback: Style) -> Vec<Vec<Span<'static>>> {
    let cleaned: String = code
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect();
    let code = cleaned.as_str();
    let plain = || {
        code.lines()
            .map(|l| vec![Span::styled(l.replace('\t', "    "), fallback)])
            .collect()
    };
    let token = lang.split([' ', ',', '{']).next().unwrap_or("").trim();
    if token.is_empty() {
        return plain();
    }
    let a = assets();
    let (Some(syntax), Some(theme)) = (
        a.syntaxes.find_syntax_by_token(token),
        a.themes.themes.get(theme),
    ) else {
        return plain();
    };
    let mut h = HighlightLines::new(syntax, theme);
    let mut out = Vec::new();
    for line in LinesWithEndings::from(code) {
        let Ok(ranges) = h.highlight_line(line, &a.syntaxes) else {
            return plain();
        };
        let spans = ranges
            .into_iter()
            .filter_map(|(style, text)| {
                let text = text.trim_end_matches(['\n', '\r']).replace('\t', "    ");
                (!text.is_empty()).then(|| {
                    let c = style.foreground;
                    Span::styled(text, fallback.fg(Color::Rgb(c.r, c.g, c.b)))
                })
            })
            .collect();
        out.push(spans);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_languages_get_colours_and_unknown_ones_stay_plain() {
        let rust = highlight(
            "fn main() {}\nlet x = 1;",
            "rust",
            "base16-ocean.dark",
            Style::new(),
        );
        assert_eq!(rust.len(), 2);
        let colours: Vec<_> = rust[0].iter().filter_map(|s| s.style.fg).collect();
        assert!(colours.len() > 1, "{rust:?}");
        let text: String = rust[0].iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(text, "fn main() {}");

        let plain = highlight(
            "a\tb",
            "no-such-language",
            "base16-ocean.dark",
            Style::new(),
        );
        assert_eq!(plain, vec![vec![Span::raw("a    b")]]);
    }
}
