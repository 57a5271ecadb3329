//! The synthetic suite: procedurally drawn images with exact answer keys,
//! in three categories —
//!
//! * `spatial`: shelves of labelled items in rows and columns;
//! * `ocr`: receipts printed small, rotated, in low contrast or with noise;
//! * `logic`: line and bar charts whose answers need reading and arithmetic.
//!
//! Everything follows from the seed (see [`rng`]); each scene has a
//! generator of its own derived from the seed, its category and its number,
//! so a larger `count` keeps the scenes of a smaller one.

mod canvas;
mod charts;
mod receipts;
pub mod rng;
mod shelves;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use image::RgbImage;

use super::suite::{Expected, SuiteItem};
use crate::session::atomic::write_atomic;
use rng::Rng;

/// Questions in a suite made without `--count`.
pub const DEFAULT_COUNT: usize = 300;
pub const SUITE_FILE: &str = "suite.jsonl";
pub const IMAGES_DIR: &str = "images";

/// The categories, in the order their questions alternate in the suite.
pub const CATEGORIES: [&str; 3] = ["spatial", "ocr", "logic"];

/// One drawn image and the questions it answers.
pub struct Scene {
    pub image: RgbImage,
    pub questions: Vec<Question>,
}

pub struct Question {
    /// What is asked, for the id (`label`, `total`, `slope`, ...).
    pub key: &'static str,
    pub question: String,
    pub expected: Expected,
    pub tags: Vec<String>,
}

/// The `index`-th scene of a category.
fn draw(category: usize, seed: u64, index: usize) -> Scene {
    let mut rng = Rng::for_part(seed, category as u64, index as u64);
    match category {
        0 => shelves::scene(&mut rng),
        1 => receipts::scene(&mut rng),
        _ => {
            if index.is_multiple_of(2) {
                charts::line_chart(&mut rng)
            } else {
                charts::bar_chart(&mut rng)
            }
        }
    }
}

/// "first" ... "tenth", then "11th".
pub fn ordinal(n: usize) -> String {
    const WORDS: [&str; 10] = [
        "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
        "tenth",
    ];
    match n {
        1..=10 => WORDS[n - 1].to_string(),
        _ => format!("{n}th"),
    }
}

/// What [`make_suite`] wrote.
#[derive(Debug)]
pub struct MadeSuite {
    pub suite: PathBuf,
    pub items: Vec<SuiteItem>,
    pub images: usize,
}

/// Draws `count` questions from `seed` into `dir` (which must be new or
/// empty): `dir/suite.jsonl` and `dir/images/*.png`. Categories take turns,
/// so the first questions of the suite cover all three.
pub fn make_suite(dir: &Path, seed: u64, count: usize) -> anyhow::Result<MadeSuite> {
    if count == 0 {
        bail!("--count must be at least 1");
    }
    if dir.exists() {
        let mut entries =
            std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} is not empty; --make-suite writes into a new or empty folder",
                dir.display()
            );
        }
    }
    let images_dir = dir.join(IMAGES_DIR);
    std::fs::create_dir_all(&images_dir)
        .with_context(|| format!("creating {}", images_dir.display()))?;

    // Each category's share, the first ones taking the remainder.
    let shares: Vec<usize> = (0..CATEGORIES.len())
        .map(|c| count / CATEGORIES.len() + usize::from(c < count % CATEGORIES.len()))
        .collect();
    let mut per_category: Vec<Vec<SuiteItem>> = vec![Vec::new(); CATEGORIES.len()];
    let mut images = 0;
    for (c, &share) in shares.iter().enumerate() {
        let mut index = 0;
        while per_category[c].len() < share {
            let scene = draw(c, seed, index);
            let name = format!("{IMAGES_DIR}/{}-{:04}.png", CATEGORIES[c], index + 1);
            let path = dir.join(&name);
            scene
                .image
                .save_with_format(&path, image::ImageFormat::Png)
                .with_context(|| format!("writing {}", path.display()))?;
            images += 1;
            for q in scene.questions {
                if per_category[c].len() == share {
                    break;
                }
                per_category[c].push(SuiteItem {
                    line: 0,
                    id: format!("{}-{:04}-{}", CATEGORIES[c], index + 1, q.key),
                    category: CATEGORIES[c].to_string(),
                    images: vec![name.clone()],
                    paths: vec![path.clone()],
                    question: q.question,
                    expected: q.expected,
                    tags: q.tags,
                });
            }
            index += 1;
        }
    }

    let mut items = Vec::with_capacity(count);
    let mut queues: Vec<std::vec::IntoIter<SuiteItem>> =
        per_category.into_iter().map(Vec::into_iter).collect();
    while items.len() < count {
        for queue in &mut queues {
            if let Some(mut item) = queue.next() {
                item.line = items.len() + 1;
                items.push(item);
            }
        }
    }
    let mut text = String::new();
    for item in &items {
        text.push_str(&item.to_json_line());
        text.push('\n');
    }
    let suite = dir.join(SUITE_FILE);
    write_atomic(&suite, text.as_bytes())
        .with_context(|| format!("writing {}", suite.display()))?;
    Ok(MadeSuite {
        suite,
        items,
        images,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_take_turns_and_share_the_count() {
        let dir = tempfile::tempdir().unwrap();
        let made = make_suite(&dir.path().join("s"), 1, 7).unwrap();
        let cats: Vec<&str> = made.items.iter().map(|i| i.category.as_str()).collect();
        assert_eq!(
            cats,
            ["spatial", "ocr", "logic", "spatial", "ocr", "logic", "spatial"]
        );
        let lines: Vec<usize> = made.items.iter().map(|i| i.line).collect();
        assert_eq!(lines, (1..=7).collect::<Vec<_>>());
        assert!(made.images >= 3 && made.images <= 7);
    }

    #[test]
    fn a_folder_with_files_in_it_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let e = make_suite(dir.path(), 1, 3).unwrap_err().to_string();
        assert!(e.contains("not empty"), "{e}");
        assert!(make_suite(&dir.path().join("new"), 1, 0).is_err());
    }

    #[test]
    fn ordinals_read_as_words() {
        assert_eq!(ordinal(1), "first");
        assert_eq!(ordinal(3), "third");
        assert_eq!(ordinal(12), "12th");
    }
}
