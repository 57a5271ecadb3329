//! The synthetic eval suite: the same seed draws the same files, and every
//! answer key agrees with what is in the pixels. The keys are checked by
//! reading the images back — finding boxes by colour, bars by height, and
//! text by matching the bitmap font cell by cell — never by asking the
//! generator.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use glimpse::eval::suite::{Expected, Suite, SuiteItem};
use glimpse::eval::synth::make_suite;
use glimpse::processor::font::{cell, Cell, ADVANCE, GLYPH_HEIGHT, GLYPH_WIDTH};
use image::{imageops, Rgb, RgbImage};

/// Every file under `root` by its path relative to `root`.
fn suite_files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(dir) = folders.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), bytes);
            }
        }
    }
    out
}

#[test]
fn the_same_seed_draws_byte_identical_files() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    make_suite(&a, 42, 12).unwrap();
    make_suite(&b, 42, 12).unwrap();
    let (fa, fb) = (suite_files(&a), suite_files(&b));
    assert!(fa.contains_key(Path::new("suite.jsonl")));
    assert!(fa.keys().filter(|p| p.starts_with("images")).count() >= 3);
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (path, bytes) in &fa {
        assert!(bytes == &fb[path], "{} differs", path.display());
    }

    let c = tmp.path().join("c");
    make_suite(&c, 43, 12).unwrap();
    assert_ne!(
        suite_files(&c)[Path::new("suite.jsonl")],
        fa[Path::new("suite.jsonl")],
        "another seed, another suite"
    );

    // A larger count keeps the scenes of the smaller one.
    let d = tmp.path().join("d");
    make_suite(&d, 42, 21).unwrap();
    let fd = suite_files(&d);
    for (path, bytes) in fa.iter().filter(|(p, _)| p.starts_with("images")) {
        assert!(fd.get(path) == Some(bytes), "{} changed", path.display());
    }
}

// ---- reading text back: the 5×7 font, cell by cell --------------------

/// The glyph bits of every printable character.
fn glyph_table() -> Vec<(char, [u8; 7])> {
    (0x21u8..0x7f)
        .map(char::from)
        .filter_map(|c| match cell(c) {
            Cell::Glyph(g) => Some((c, g)),
            Cell::Missing => None,
        })
        .collect()
}

/// Reads one line of text drawn at `scale` whose ink (per `is_ink`) lies in
/// columns `x0..x1` and rows `y0..y1`; `None` when the cells do not all form
/// glyphs.
fn read_line(
    img: &RgbImage,
    (x0, y0, x1, y1): (u32, u32, u32, u32),
    scale: u32,
    is_ink: &dyn Fn([u8; 3]) -> bool,
) -> Option<String> {
    let ink = |x: u32, y: u32| x < img.width() && y < img.height() && is_ink(img.get_pixel(x, y).0);
    let inked: Vec<(u32, u32)> = (y0..y1)
        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
        .filter(|&(x, y)| ink(x, y))
        .collect();
    let left = inked.iter().map(|p| p.0).min()?;
    let right = inked.iter().map(|p| p.0).max()?;
    let top = inked.iter().map(|p| p.1).min()?;
    let table = glyph_table();
    // The first glyph may leave its first columns blank.
    'offset: for shift in 0..GLYPH_WIDTH {
        let Some(origin) = left.checked_sub(shift * scale) else {
            continue;
        };
        let mut text = String::new();
        let mut x = origin;
        while x <= right {
            let mut bits = [0u8; 7];
            for (row, b) in bits.iter_mut().enumerate() {
                for col in 0..GLYPH_WIDTH {
                    if ink(x + col * scale, top + row as u32 * scale) {
                        *b |= 1 << (GLYPH_WIDTH - 1 - col);
                    }
                }
            }
            if bits == [0; 7] {
                text.push(' ');
            } else {
                match table.iter().find(|(_, g)| *g == bits) {
                    Some((c, _)) => text.push(*c),
                    None => continue 'offset,
                }
            }
            x += ADVANCE * scale;
        }
        return Some(text.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    None
}

/// Runs of rows holding ink within columns `x0..x1`: `(first, end)`.
fn ink_rows(
    img: &RgbImage,
    x0: u32,
    x1: u32,
    y0: u32,
    y1: u32,
    is_ink: &dyn Fn([u8; 3]) -> bool,
) -> Vec<(u32, u32)> {
    let mut runs = Vec::new();
    let mut start = None;
    for y in y0..=y1 {
        let any = y < y1 && (x0..x1).any(|x| is_ink(img.get_pixel(x, y).0));
        match (any, start) {
            (true, None) => start = Some(y),
            (false, Some(s)) => {
                runs.push((s, y));
                start = None;
            }
            _ => {}
        }
    }
    runs
}

/// Each line of text in a region, read at the scale its height implies.
fn read_lines(
    img: &RgbImage,
    (x0, y0, x1, y1): (u32, u32, u32, u32),
    is_ink: &dyn Fn([u8; 3]) -> bool,
) -> Vec<(u32, String)> {
    ink_rows(img, x0, x1, y0, y1, is_ink)
        .into_iter()
        .filter_map(|(a, b)| {
            let scale = ((b - a) / GLYPH_HEIGHT).max(1);
            // Lines whose height is not a whole glyph (a dash, dots) are
            // read from their own top, which is fine for our lettering.
            read_line(img, (x0, a, x1, a + GLYPH_HEIGHT * scale), scale, is_ink)
                .map(|t| ((a + b) / 2, t))
        })
        .collect()
}

fn load(dir: &Path, item: &SuiteItem) -> RgbImage {
    image::open(dir.join(&item.images[0])).unwrap().to_rgb8()
}

fn generated(seed: u64, count: usize) -> (tempfile::TempDir, PathBuf, Vec<SuiteItem>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("suite");
    let made = make_suite(&dir, seed, count).unwrap();
    let suite = Suite::read(&made.suite).unwrap();
    assert_eq!(
        suite.problems().count(),
        0,
        "a generated suite reads back whole"
    );
    let items: Vec<SuiteItem> = suite.items().cloned().collect();
    assert_eq!(items, made.items, "the file says what was drawn");
    (tmp, dir, items)
}

// ---- spatial: shelves -------------------------------------------------

/// An item found on a shelf: its box, its label and its colour.
type FoundItem = ([u32; 4], String, [u8; 3]);

struct Shelf {
    /// Items by row (top first), each row left to right.
    rows: Vec<Vec<FoundItem>>,
}

/// Finds the items as connected regions of neither wall nor board colour.
fn read_shelf(img: &RgbImage) -> Shelf {
    let wall = img.get_pixel(0, 0).0;
    let board = (0..img.height())
        .map(|y| img.get_pixel(12, y).0)
        .find(|&c| c != wall)
        .expect("the shelf boards reach the left edge");
    let (w, h) = img.dimensions();
    let mut seen = vec![false; (w * h) as usize];
    let mut items = Vec::new();
    for start in 0..w * h {
        let (sx, sy) = (start % w, start / w);
        let c = img.get_pixel(sx, sy).0;
        if seen[start as usize] || c == wall || c == board {
            continue;
        }
        let mut stack = vec![(sx, sy)];
        seen[start as usize] = true;
        let (mut l, mut t, mut r, mut b) = (sx, sy, sx, sy);
        let mut colours: HashMap<[u8; 3], usize> = HashMap::new();
        while let Some((x, y)) = stack.pop() {
            (l, t, r, b) = (l.min(x), t.min(y), r.max(x), b.max(y));
            *colours.entry(img.get_pixel(x, y).0).or_default() += 1;
            for (dx, dy) in [(-1i64, 0i64), (1, 0), (0, -1), (0, 1)] {
                let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                    continue;
                }
                let i = (ny as u32 * w + nx as u32) as usize;
                let nc = img.get_pixel(nx as u32, ny as u32).0;
                if !seen[i] && nc != wall && nc != board {
                    seen[i] = true;
                    stack.push((nx as u32, ny as u32));
                }
            }
        }
        let fill = *colours.iter().max_by_key(|(_, n)| **n).unwrap().0;
        let label = read_line(img, (l, t, r + 1, b + 1), 2, &|p| p != fill)
            .expect("every item has a readable label");
        items.push(([l, t, r + 1, b + 1], label, fill));
    }
    // Items of a row stand on the same board.
    let mut rows: BTreeMap<u32, Vec<FoundItem>> = BTreeMap::new();
    for item in items {
        rows.entry(item.0[3]).or_default().push(item);
    }
    let rows = rows
        .into_values()
        .map(|mut row| {
            row.sort_by_key(|i| i.0[0]);
            row
        })
        .collect();
    Shelf { rows }
}

fn ordinal_number(word: &str) -> usize {
    ["first", "second", "third", "fourth", "fifth"]
        .iter()
        .position(|w| *w == word)
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("not an ordinal: {word}"))
}

/// The item a label question points at, from its wording.
fn pointed_at(question: &str, shelf: &Shelf) -> String {
    let words: Vec<&str> = question
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let rows = shelf.rows.len();
    let cols = shelf.rows[0].len();
    let (r, c) = if question.starts_with("What is printed on the item in row") {
        let numbers: Vec<usize> = words.iter().filter_map(|w| w.parse().ok()).collect();
        (numbers[0] - 1, numbers[1] - 1)
    } else {
        let shelf_n = ordinal_number(words[words.iter().position(|w| *w == "shelf").unwrap() - 1]);
        let item_n = ordinal_number(words[words.iter().position(|w| *w == "item").unwrap() - 1]);
        if question.contains("from the top") {
            (shelf_n - 1, item_n - 1)
        } else {
            (rows - shelf_n, cols - item_n)
        }
    };
    shelf.rows[r][c].1.clone()
}

fn colour_is(name: &str, [r, g, b]: [u8; 3]) -> bool {
    let (r, g, b) = (r as i32, g as i32, b as i32);
    match name {
        "red" => r > 150 && g < 100 && b < 100,
        "green" => g > r + 50 && g > b + 50,
        "blue" => b > r + 100 && b > g + 100,
        "yellow" => r > 200 && g > 170 && b < 100,
        "orange" => r > 200 && (100..180).contains(&g) && b < 80,
        "purple" => r > 100 && b > 150 && g < 100,
        _ => panic!("unknown colour {name}"),
    }
}

#[test]
fn shelf_answers_match_the_drawn_items() {
    let (_tmp, dir, items) = generated(5, 60);
    let mut checked: HashMap<&str, usize> = HashMap::new();
    for item in items.iter().filter(|i| i.category == "spatial") {
        let shelf = read_shelf(&load(&dir, item));
        assert!(shelf.rows.len() >= 2 && shelf.rows.iter().all(|r| r.len() == shelf.rows[0].len()));
        let find = |label: &str| {
            shelf
                .rows
                .iter()
                .flatten()
                .find(|i| i.1 == label)
                .unwrap_or_else(|| panic!("{}: no item labelled {label}", item.id))
        };
        let label_in = |q: &str| {
            q.split("labelled ")
                .nth(1)
                .unwrap()
                .split([' ', '?'])
                .next()
                .unwrap()
                .to_string()
        };
        match &item.expected {
            Expected::Normalized(answer) => {
                assert_eq!(&pointed_at(&item.question, &shelf), answer, "{}", item.id);
                *checked.entry("label").or_default() += 1;
            }
            Expected::Bbox { bbox, .. } => {
                let found = find(&label_in(&item.question)).0.map(f64::from);
                assert_eq!(&found, bbox, "{}", item.id);
                *checked.entry("bbox").or_default() += 1;
            }
            Expected::Choice { choices, answer } => {
                let fill = find(&label_in(&item.question)).2;
                for (i, name) in choices.iter().enumerate() {
                    assert_eq!(colour_is(name, fill), i == *answer, "{}: {name}", item.id);
                }
                *checked.entry("colour").or_default() += 1;
            }
            other => panic!("unexpected spatial key {other:?}"),
        }
    }
    assert!(
        checked["label"] >= 10 && checked.contains_key("bbox"),
        "{checked:?}"
    );
}

// ---- OCR: receipts ----------------------------------------------------

#[test]
fn receipt_answers_match_the_printed_lines() {
    let (_tmp, dir, items) = generated(7, 90);
    let mut checked = 0;
    let mut distortions: HashMap<String, usize> = HashMap::new();
    for item in items.iter().filter(|i| i.category == "ocr") {
        for t in &item.tags {
            *distortions.entry(t.clone()).or_default() += 1;
        }
        if item.tags.iter().any(|t| t == "noisy") {
            continue;
        }
        let mut img = load(&dir, item);
        if item.tags.iter().any(|t| t == "rotated-90") {
            img = imageops::rotate270(&img);
        } else if item.tags.iter().any(|t| t == "rotated-180") {
            img = imageops::rotate180(&img);
        } else if item.tags.iter().any(|t| t == "rotated-270") {
            img = imageops::rotate90(&img);
        }
        let desk = img.get_pixel(0, 0).0;
        let paper = img.get_pixel(img.width() / 2, 41).0;
        let is_ink = |p: [u8; 3]| p != desk && p != paper;
        let lines: Vec<String> = read_lines(&img, (0, 0, img.width(), img.height()), &is_ink)
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        assert!(lines.len() >= 6, "{}: {lines:?}", item.id);
        let money = |line: &str| -> f64 { line.rsplit(' ').next().unwrap().parse().unwrap() };
        let total_line = lines.iter().find(|l| l.starts_with("TOTAL ")).unwrap();
        let prices: f64 = lines[1..]
            .iter()
            .take_while(|l| !l.starts_with("TOTAL"))
            .map(|l| money(l))
            .sum();
        assert!(
            (prices - money(total_line)).abs() < 1e-6,
            "{}: the total adds up",
            item.id
        );
        match &item.expected {
            Expected::Number { value, .. } if item.id.ends_with("-total") => {
                assert!((money(total_line) - value).abs() < 1e-9, "{}", item.id);
            }
            Expected::Number { value, .. } => {
                let name = item.question.strip_prefix("How much does ").unwrap();
                let name = name.split(" cost").next().unwrap();
                let line = lines
                    .iter()
                    .find(|l| l.starts_with(&format!("{name} ")))
                    .unwrap();
                assert!((money(line) - value).abs() < 1e-9, "{}", item.id);
            }
            Expected::Normalized(store) => assert_eq!(&lines[0], store, "{}", item.id),
            Expected::Exact(code) => {
                let line = lines.last().unwrap();
                assert_eq!(line, &format!("REF {code}"), "{}", item.id);
            }
            other => panic!("unexpected OCR key {other:?}"),
        }
        checked += 1;
    }
    assert!(checked >= 10, "checked {checked}");
    for tag in ["small", "low-contrast", "noisy"] {
        assert!(
            distortions.contains_key(tag),
            "some receipts are {tag}: {distortions:?}"
        );
    }
    assert!(distortions.keys().any(|t| t.starts_with("rotated-")));
}

// ---- logic: charts ----------------------------------------------------

struct Chart {
    img: RgbImage,
    /// The x axis: its first row, and value 0's row from the tick labels.
    axis_row: u32,
    zero_row: f64,
    px_per_unit: f64,
}

const BLACK_MAX: u8 = 60;

fn is_black(p: [u8; 3]) -> bool {
    p.iter().all(|&c| c <= BLACK_MAX)
}

fn read_chart(img: RgbImage) -> Chart {
    let (w, h) = img.dimensions();
    // The y axis is the column with the most black, the x axis the row.
    let axis_col = (0..w)
        .max_by_key(|&x| (0..h).filter(|&y| is_black(img.get_pixel(x, y).0)).count())
        .unwrap();
    let axis_row = (0..h)
        .max_by_key(|&y| (0..w).filter(|&x| is_black(img.get_pixel(x, y).0)).count())
        .unwrap();
    let axis_row = (0..=axis_row)
        .rev()
        .take_while(|&y| is_black(img.get_pixel(axis_col + 20, y).0))
        .last()
        .unwrap();
    let ticks: Vec<(f64, f64)> = read_lines(&img, (0, 40, axis_col - 3, h), &is_black)
        .into_iter()
        .map(|(row, t)| (row as f64, t.parse::<f64>().unwrap()))
        .collect();
    assert!(ticks.len() >= 5, "{ticks:?}");
    let (first, last) = (ticks[0], ticks[ticks.len() - 1]);
    let px_per_unit = (last.0 - first.0) / (first.1 - last.1);
    let zero_row = last.0 + last.1 * px_per_unit;
    Chart {
        img,
        axis_row,
        zero_row,
        px_per_unit,
    }
}

impl Chart {
    fn value_at(&self, row: f64) -> f64 {
        (self.zero_row - row) / self.px_per_unit
    }

    /// The text under the x axis around column `cx`.
    fn label_below(&self, cx: u32) -> String {
        let region = (cx - 40, self.axis_row + 3, cx + 40, self.axis_row + 30);
        let lines = read_lines(&self.img, region, &is_black);
        lines[0].1.clone()
    }

    /// Connected runs of `colour` along a row: `(first column, end)`.
    fn runs_in_row(&self, row: u32, colour: [u8; 3]) -> Vec<(u32, u32)> {
        let mut runs = Vec::new();
        let mut start = None;
        for x in 0..=self.img.width() {
            let on = x < self.img.width() && self.img.get_pixel(x, row).0 == colour;
            match (on, start) {
                (true, None) => start = Some(x),
                (false, Some(s)) => {
                    runs.push((s, x));
                    start = None;
                }
                _ => {}
            }
        }
        runs
    }
}

/// The most common colour that is neither white, grey nor black.
fn main_colour(img: &RgbImage, skip: &[[u8; 3]]) -> [u8; 3] {
    let mut counts: HashMap<[u8; 3], usize> = HashMap::new();
    for p in img.pixels() {
        let [r, g, b] = p.0;
        let grey = r.abs_diff(g) < 10 && g.abs_diff(b) < 10;
        if !grey && !skip.contains(&p.0) {
            *counts.entry(p.0).or_default() += 1;
        }
    }
    *counts.iter().max_by_key(|(_, n)| **n).unwrap().0
}

#[test]
fn chart_answers_match_the_plotted_values() {
    let (_tmp, dir, items) = generated(11, 60);
    let (mut bars_checked, mut lines_checked) = (0, 0);
    for item in items.iter().filter(|i| i.category == "logic") {
        let chart = read_chart(load(&dir, item));
        let tolerance_free = |expected: &Expected| match expected {
            Expected::Number { value, .. } => *value,
            other => panic!("expected a number, got {other:?}"),
        };
        if item.question.contains("slope") || item.question.contains("temperature") {
            // A line chart: markers are squares of their own colour.
            let line_colour = main_colour(&chart.img, &[]);
            let marker = main_colour(&chart.img, &[line_colour]);
            let mut points: BTreeMap<i64, f64> = BTreeMap::new();
            for y in 0..chart.img.height() {
                for (a, b) in chart.runs_in_row(y, marker) {
                    // The middle row of a 9×9 marker.
                    let above = y >= 4 && chart.img.get_pixel(a, y - 4).0 == marker;
                    let below = chart.img.get_pixel(a, y + 4).0 == marker
                        && chart.img.get_pixel(a, y + 5).0 != marker;
                    if b - a == 9 && above && below {
                        let t: i64 = chart.label_below((a + b) / 2).parse().unwrap();
                        points.insert(t, chart.value_at(y as f64));
                    }
                }
            }
            assert_eq!(points.len(), 6, "{}: {points:?}", item.id);
            let want = tolerance_free(&item.expected);
            if item.question.contains("slope") {
                let temps: Vec<i64> = item
                    .question
                    .split(' ')
                    .filter_map(|w| w.parse().ok())
                    .collect();
                let (a, b) = (temps[0], temps[1]);
                let slope = (points[&b] - points[&a]) / (b - a) as f64;
                assert!(
                    (slope - want).abs() < 1e-9,
                    "{}: {slope} vs {want}",
                    item.id
                );
            } else {
                let peak = points
                    .iter()
                    .max_by(|x, y| x.1.total_cmp(y.1))
                    .map(|(t, _)| *t as f64)
                    .unwrap();
                assert_eq!(peak, want, "{}", item.id);
            }
            lines_checked += 1;
        } else {
            // A bar chart: bars stand on the x axis.
            let bar = main_colour(&chart.img, &[]);
            let mut bars: Vec<(String, f64)> = Vec::new();
            for (a, b) in chart.runs_in_row(chart.axis_row - 1, bar) {
                let cx = (a + b) / 2;
                let top = (0..chart.axis_row)
                    .find(|&y| chart.img.get_pixel(cx, y).0 == bar)
                    .unwrap();
                bars.push((chart.label_below(cx), chart.value_at(top as f64)));
            }
            assert!((4..=6).contains(&bars.len()), "{}: {bars:?}", item.id);
            let value_of = |label: &str| bars.iter().find(|b| b.0 == label).unwrap().1;
            let words: Vec<&str> = item.question.split([' ', '?']).collect();
            match &item.expected {
                Expected::Normalized(label) => {
                    let extreme = if item.question.contains("tallest") {
                        bars.iter().max_by(|x, y| x.1.total_cmp(&y.1))
                    } else {
                        bars.iter().min_by(|x, y| x.1.total_cmp(&y.1))
                    };
                    assert_eq!(&extreme.unwrap().0, label, "{}", item.id);
                }
                Expected::Number { value, .. } if item.question.contains("greater") => {
                    let of: Vec<&str> = words
                        .windows(2)
                        .filter(|w| w[0] == "of")
                        .map(|w| w[1])
                        .collect();
                    let diff = value_of(of[0]) - value_of(of[1]);
                    assert!((diff - value).abs() < 1e-9, "{}", item.id);
                }
                Expected::Number { value, .. } => {
                    let label = words[words.iter().position(|w| *w == "bar").unwrap() - 1];
                    assert!(
                        (value_of(label) - value).abs() < 1e-9,
                        "{}: {label}",
                        item.id
                    );
                }
                other => panic!("unexpected chart key {other:?}"),
            }
            bars_checked += 1;
        }
    }
    assert!(
        bars_checked >= 5 && lines_checked >= 5,
        "{bars_checked} bar, {lines_checked} line questions"
    );
}

#[test]
fn the_font_reader_reads_what_the_font_draws() {
    let mut img = RgbImage::from_pixel(200, 40, Rgb([255, 255, 255]));
    glimpse::processor::font::draw_text(&mut img, 7, 5, 2, "TOTAL 12.50", [0, 0, 0]);
    let lines = read_lines(&img, (0, 0, 200, 40), &is_black);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].1, "TOTAL 12.50");
    let mut img = RgbImage::from_pixel(60, 20, Rgb([255, 255, 255]));
    glimpse::processor::font::draw_text(&mut img, 3, 3, 1, "1-7", [0, 0, 0]);
    assert_eq!(read_lines(&img, (0, 0, 60, 20), &is_black)[0].1, "1-7");
}
