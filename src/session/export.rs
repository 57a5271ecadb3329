//! A session as a Markdown document people can read, share or keep in notes:
//! roles as headings, images linked (relative to the document when possible),
//! the model and settings on top.

use std::path::{Component, Path, PathBuf};

use super::atomic::write_atomic;
use super::store::Session;
use crate::conversation::{Content, Part, Role};

/// How image links are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageLinks {
    /// Relative to this folder (where the document will live) when the image
    /// shares a root with it, absolute otherwise.
    RelativeTo(PathBuf),
    Absolute,
}

pub fn to_markdown(session: &Session, links: &ImageLinks) -> String {
    let mut out = format!("# {}\n\n", session.title());
    out.push_str(&format!("- Model: `{}`\n", session.model));
    if let Some(settings) = settings_line(session) {
        out.push_str(&format!("- Settings: {settings}\n"));
    }
    out.push_str(&format!("- Started: {}\n", session.created.human()));
    out.push_str(&format!("- Updated: {}\n", session.updated.human()));
    out.push_str(&format!("- Session: `{}`\n", session.id));
    for message in &session.conversation.messages {
        let heading = match message.role {
            Role::System => "System",
            Role::User => "User",
            Role::Assistant => "Assistant",
        };
        out.push_str(&format!("\n## {heading}\n\n"));
        let mut blocks: Vec<String> = Vec::new();
        if let Some(reasoning) = message
            .reasoning
            .as_deref()
            .filter(|r| !r.trim().is_empty())
        {
            // Collapsed by default where Markdown is rendered; the blank
            // lines let the reasoning's own Markdown render inside.
            blocks.push(format!(
                "<details>\n<summary>Reasoning</summary>\n\n{}\n\n</details>",
                reasoning.trim()
            ));
        }
        match &message.content {
            Content::Text(t) => blocks.push(t.trim_end().to_string()),
            Content::Parts(parts) => {
                for part in parts {
                    match part {
                        Part::Text(t) if t.trim().is_empty() => {}
                        Part::Text(t) => blocks.push(t.trim_end().to_string()),
                        Part::Image(path) => blocks.push(image_link(path, links)),
                    }
                }
            }
        }
        out.push_str(&blocks.join("\n\n"));
        out.push('\n');
    }
    out
}

/// Writes the document atomically, images linked relative to its folder.
pub fn write_markdown(session: &Session, path: &Path) -> std::io::Result<()> {
    let path = std::path::absolute(path)?;
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    write_atomic(
        &path,
        to_markdown(session, &ImageLinks::RelativeTo(dir)).as_bytes(),
    )
}

/// `glimpse-20250131-090500-3fa2c1.md`: a file name for the export of `session`.
pub fn default_file_name(session: &Session) -> String {
    format!("glimpse-{}.md", session.id)
}

fn settings_line(session: &Session) -> Option<String> {
    let s = &session.settings;
    let o = &s.sampling;
    let mut items: Vec<String> = Vec::new();
    if let Some(p) = &s.preset {
        items.push(format!("preset {p}"));
    }
    if let Some(t) = o.temperature {
        items.push(format!("temperature {t}"));
    }
    if let Some(m) = o.max_new_tokens {
        items.push(format!("max tokens {m}"));
    }
    if let Some(p) = o.top_p {
        items.push(format!("top-p {p}"));
    }
    if let Some(k) = o.top_k {
        items.push(format!("top-k {k}"));
    }
    if let Some(r) = o.repetition_penalty {
        items.push(format!("repetition penalty {r}"));
    }
    if let Some(seed) = o.seed {
        items.push(format!("seed {seed}"));
    }
    if let Some(d) = &s.device {
        items.push(format!("device {d}"));
    }
    if let Some(d) = &s.dtype {
        items.push(d.clone());
    }
    (!items.is_empty()).then(|| items.join(", "))
}

fn image_link(path: &Path, links: &ImageLinks) -> String {
    let target = match links {
        ImageLinks::RelativeTo(dir) => relative_path(path, dir).unwrap_or_else(|| path.into()),
        ImageLinks::Absolute => path.to_path_buf(),
    };
    let mut shown = target.to_string_lossy().replace('\\', "/");
    if shown.contains([' ', '(', ')', '<', '>']) {
        shown = format!("<{}>", shown.replace('<', "%3C").replace('>', "%3E"));
    }
    let alt = path
        .file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy()
        .replace('[', "\\[")
        .replace(']', "\\]");
    format!("![{alt}]({shown})")
}

/// `target` as seen from folder `base`; both must be absolute and share a root.
fn relative_path(target: &Path, base: &Path) -> Option<PathBuf> {
    if !target.is_absolute() || !base.is_absolute() {
        return None;
    }
    let t: Vec<Component> = target.components().collect();
    let b: Vec<Component> = base.components().collect();
    if t.first() != b.first() {
        return None;
    }
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut rel = PathBuf::new();
    for c in &b[common..] {
        match c {
            Component::Normal(_) => rel.push(".."),
            Component::CurDir => {}
            _ => return None,
        }
    }
    for c in &t[common..] {
        rel.push(c);
    }
    Some(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_walk_up_and_down() {
        let r = |t: &str, b: &str| relative_path(Path::new(t), Path::new(b));
        assert_eq!(r("/a/b/c.png", "/a/d"), Some("../b/c.png".into()));
        assert_eq!(r("/a/c.png", "/a"), Some("c.png".into()));
        assert_eq!(r("/x.png", "/a/b"), Some("../../x.png".into()));
        assert_eq!(r("x.png", "/a"), None);
    }

    #[test]
    fn awkward_file_names_stay_valid_links() {
        let l = image_link(Path::new("/p/my shelf (1).jpg"), &ImageLinks::Absolute);
        assert_eq!(l, "![my shelf (1).jpg](</p/my shelf (1).jpg>)");
        let l = image_link(Path::new("/p/[x].png"), &ImageLinks::Absolute);
        assert_eq!(l, "![\\[x\\].png](/p/[x].png)");
    }
}
