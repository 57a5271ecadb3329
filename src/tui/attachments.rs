//! Image attachments before they are sent: what the model will make of an
//! image (its size after resizing and its token count), pasted paths, and
//! path completion for `/image` and the attach prompt.

use std::path::{Path, PathBuf};

use crate::processor::resize::smart_resize;
use crate::processor::vision_input::VisionPreprocessConfig;

/// An image as the model will see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageBudget {
    pub width: u32,
    pub height: u32,
    pub tokens: usize,
}

/// The model size and image-token count of a `width × height` image (after
/// any long-edge cap), by the model's own resize rule.
pub fn image_budget(
    config: &VisionPreprocessConfig,
    width: u32,
    height: u32,
) -> Result<ImageBudget, String> {
    let (h, w) = smart_resize(
        height,
        width,
        config.factor(),
        config.min_pixels,
        config.max_pixels,
    )
    .map_err(|e| e.to_string())?;
    let patch = config.patch_size as u32;
    let merge = config.merge_size.max(1);
    let tokens = ((h / patch) as usize * (w / patch) as usize) / (merge * merge);
    Ok(ImageBudget {
        width: w,
        height: h,
        tokens,
    })
}

/// File extensions glimpse treats as images when a path is pasted.
pub const IMAGE_EXTENSIONS: [&str; 9] = [
    "png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff", "jfif",
];

pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Expands a leading `~/` to the home directory.
pub fn expand_home(raw: &str) -> PathBuf {
    if let Some(rest) = raw.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return Path::new(&home).join(rest);
        }
    }
    PathBuf::from(raw)
}

/// Splits pasted text the way a shell would: quotes, backslash escapes, and
/// `file://` URIs with %-escapes (what terminals paste when a file is dropped).
pub fn split_pasted(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_item = false;
    let mut chars = text.trim().chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_item = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    in_item = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if in_item {
                    items.push(std::mem::take(&mut cur));
                    in_item = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_item = true;
            }
        }
    }
    if in_item {
        items.push(cur);
    }
    items.into_iter().map(|s| uri_to_path(&s)).collect()
}

fn uri_to_path(s: &str) -> String {
    let Some(rest) = s.strip_prefix("file://") else {
        return s.to_string();
    };
    // file://host/path: keep the path.
    let path = if rest.starts_with('/') {
        rest
    } else {
        rest.find('/').map(|i| &rest[i..]).unwrap_or(rest)
    };
    percent_decode(path)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The image paths in a paste, when the paste is nothing but paths of
/// existing image files; `None` means "treat it as text".
pub fn pasted_image_paths(text: &str) -> Option<Vec<PathBuf>> {
    if text.trim().is_empty() || text.trim().lines().count() > 32 {
        return None;
    }
    let paths: Vec<PathBuf> = split_pasted(text).iter().map(|s| expand_home(s)).collect();
    let all_images =
        !paths.is_empty() && paths.iter().all(|p| has_image_extension(p) && p.is_file());
    all_images.then_some(paths)
}

/// The outcome of pressing Tab on a partial path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The fragment extended as far as all candidates agree.
    pub completed: String,
    /// Names that still match, when more than one does (for display).
    pub candidates: Vec<String>,
}

/// Completes `fragment` against the file system. Directories end in `/`;
/// hidden files are offered only when the fragment's name starts with `.`.
pub fn complete_path(fragment: &str) -> Completion {
    let (dir_part, name_part) = match fragment.rfind('/') {
        Some(i) => (&fragment[..=i], &fragment[i + 1..]),
        None => ("", fragment),
    };
    let dir = if dir_part.is_empty() {
        PathBuf::from(".")
    } else {
        expand_home(dir_part)
    };
    let mut matches: Vec<(String, bool)> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let is_dir = e.path().is_dir();
                    (name.starts_with(name_part)
                        && (!name.starts_with('.') || name_part.starts_with('.')))
                    .then_some((name, is_dir))
                })
                .collect()
        })
        .unwrap_or_default();
    matches.sort();
    match matches.len() {
        0 => Completion {
            completed: fragment.to_string(),
            candidates: Vec::new(),
        },
        1 => {
            let (name, is_dir) = &matches[0];
            Completion {
                completed: format!("{dir_part}{name}{}", if *is_dir { "/" } else { "" }),
                candidates: Vec::new(),
            }
        }
        _ => {
            let first = &matches[0].0;
            let mut common = first.len();
            for (m, _) in &matches[1..] {
                common = common.min(
                    first
                        .char_indices()
                        .zip(m.chars())
                        .take_while(|((_, a), b)| a == b)
                        .last()
                        .map(|((i, a), _)| i + a.len_utf8())
                        .unwrap_or(0),
                );
            }
            Completion {
                completed: format!("{dir_part}{}", &first[..common]),
                candidates: matches
                    .iter()
                    .map(|(n, d)| format!("{n}{}", if *d { "/" } else { "" }))
                    .collect(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/images/");

    #[test]
    fn budget_follows_the_model_resize_rule() {
        let cfg = VisionPreprocessConfig::qwen2_vl_defaults();
        // 333×211 rounds to 336×224 at factor 28: 24×16 patches, 96 tokens.
        let b = image_budget(&cfg, 333, 211).unwrap();
        assert_eq!((b.width, b.height, b.tokens), (336, 224, 96));
        let q3 = VisionPreprocessConfig::qwen3_vl_defaults();
        let b = image_budget(&q3, 333, 211).unwrap();
        assert_eq!(b.width % 32, 0);
        assert!(image_budget(&cfg, 1000, 2).is_err());
    }

    #[test]
    fn pasted_paths_are_unquoted_and_unescaped() {
        assert_eq!(
            split_pasted("'/a b/c.png' /d\\ e.jpg"),
            ["/a b/c.png", "/d e.jpg"]
        );
        assert_eq!(split_pasted("file:///tmp/x%20y.png\n"), ["/tmp/x y.png"]);
        assert_eq!(split_pasted("\"/q\\\"x.png\""), ["/q\"x.png"]);
    }

    #[test]
    fn only_pastes_of_existing_image_files_attach() {
        let one = format!("{FIXTURES}scene_333x211.png");
        let two = format!("'{FIXTURES}checker_200x150.png' {one}");
        assert_eq!(pasted_image_paths(&one).unwrap().len(), 1);
        assert_eq!(pasted_image_paths(&two).unwrap().len(), 2);
        assert!(pasted_image_paths("what is in scene.png?").is_none());
        assert!(pasted_image_paths(&format!("{FIXTURES}missing.png")).is_none());
        assert!(pasted_image_paths(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).is_none());
    }

    #[test]
    fn tab_completes_unique_names_and_common_prefixes() {
        let c = complete_path(&format!("{FIXTURES}sce"));
        assert_eq!(c.completed, format!("{FIXTURES}scene_333x211.png"));
        assert!(c.candidates.is_empty());
        let c = complete_path(FIXTURES);
        assert!(c.candidates.len() >= 6, "{c:?}");
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ima");
        assert_eq!(complete_path(dir).completed, format!("{dir}ges/"));
    }
}
