//! Theme files as users write them: every file in `fixtures/themes/valid`
//! loads; every file in `fixtures/themes/invalid` is refused with the file,
//! the line and the valid choices, as its `# expect-line: N` and
//! `# expect: TEXT` comments say.

use std::path::{Path, PathBuf};

use glimpse::tui::theme::Theme;
use glimpse::tui::theme_file::{available_in, parse_theme, pick, ThemeError};
use ratatui::style::{Color, Modifier, Style};

mod common;

fn fixtures(kind: &str) -> Vec<PathBuf> {
    common::toml_fixtures("themes", kind)
}

fn load(path: &Path) -> Result<Theme, ThemeError> {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.file_stem().unwrap().to_string_lossy();
    parse_theme(&name, &text, path)
}

#[test]
fn every_valid_theme_file_loads() {
    for path in fixtures("valid") {
        if let Err(e) = load(&path) {
            panic!("{}: {e}", path.display());
        }
    }
    let partial = load(&fixtures("valid")[1]).unwrap();
    assert_eq!(partial.name, "partial");
    assert_eq!(partial.dim, Style::new().fg(Color::Indexed(244)));
    assert_eq!(
        partial.heading,
        Style::new()
            .fg(Color::LightYellow)
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    );
    assert_eq!(partial.syntax_theme, "Solarized (dark)");
    assert_eq!(
        partial.text,
        Theme::default().text,
        "left out: the dark theme's"
    );
}

#[test]
fn every_invalid_theme_file_names_its_line_and_the_valid_choices() {
    for path in fixtures("invalid") {
        let err = load(&path).expect_err(&path.display().to_string());
        let line = match &err {
            ThemeError::Invalid { line, .. } => Some(*line),
            _ => None,
        };
        common::check_expected_error(&path, &err.to_string(), line);
    }
}

#[test]
fn a_bad_theme_in_the_users_folder_only_matters_when_chosen() {
    let dir = tempfile::tempdir().unwrap();
    for path in fixtures("invalid").iter().take(2) {
        std::fs::copy(path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let themes = available_in(Some(dir.path()));
    assert!(pick(&themes, "gruvbox-dark").is_ok());
    let e = pick(&themes, "bad_colour_name").unwrap_err().to_string();
    assert!(e.contains("bad_colour_name.toml, line 4"), "{e}");
}
