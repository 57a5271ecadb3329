//! Spatial questions: shelves of labelled boxes in rows and columns. "What
//! is printed on the item in row 3, column 2?", "what colour is ...?",
//! "give the bounding box of the item labelled TEA".

use image::RgbImage;

use super::canvas::{fill, ink_for, text_centred, Colour};
use super::rng::Rng;
use super::{ordinal, Question, Scene};
use crate::eval::suite::{choice_letter, Expected};
use crate::processor::font::text_size;

pub const WIDTH: u32 = 640;
pub const HEIGHT: u32 = 480;
const MARGIN: i64 = 20;
const BOARD: i64 = 10;
const WALL: Colour = [236, 232, 222];
pub const BOARD_COLOUR: Colour = [128, 84, 42];
const LABEL_SCALE: u32 = 2;

/// Item colours and the names questions use for them.
pub const COLOURS: [(&str, Colour); 6] = [
    ("red", [200, 40, 40]),
    ("green", [40, 150, 60]),
    ("blue", [40, 80, 200]),
    ("yellow", [230, 200, 40]),
    ("orange", [240, 140, 30]),
    ("purple", [130, 60, 170]),
];

const WORDS: [&str; 30] = [
    "TEA", "SOAP", "RICE", "MILK", "SALT", "JAM", "OATS", "CORN", "BEANS", "HONEY", "FLOUR",
    "SUGAR", "PASTA", "SOUP", "NUTS", "COCOA", "MINT", "LIME", "PLUM", "KIWI", "PEAS", "TUNA",
    "EGGS", "BREAD", "CHIPS", "SODA", "GUM", "YEAST", "OLIVES", "LEMON",
];

struct Item {
    label: &'static str,
    colour: usize,
    /// Left, top, right, bottom in pixels; right and bottom exclusive.
    rect: [i64; 4],
}

pub fn scene(rng: &mut Rng) -> Scene {
    let rows = rng.range(2, 4) as usize;
    let cols = rng.range(3, 5) as usize;
    let labels = rng.sample(&WORDS, rows * cols);
    let band = (HEIGHT as i64 - 2 * MARGIN) / rows as i64;
    let slot = (WIDTH as i64 - 2 * MARGIN) / cols as i64;
    let mut img = RgbImage::from_pixel(WIDTH, HEIGHT, image::Rgb(WALL));
    let mut items: Vec<Vec<Item>> = Vec::new();
    for r in 0..rows {
        let board_top = MARGIN + (r as i64 + 1) * band - BOARD;
        fill(
            &mut img,
            MARGIN / 2,
            board_top,
            WIDTH as i64 - MARGIN / 2,
            board_top + BOARD,
            BOARD_COLOUR,
        );
        let mut row = Vec::new();
        for c in 0..cols {
            let label = labels[r * cols + c];
            let text_w = text_size(label, LABEL_SCALE).0 as i64;
            let min_w = (text_w + 12).max(slot * 55 / 100);
            let w = rng.range(min_w, (slot * 88 / 100).max(min_w));
            let h = rng.range((band - BOARD) * 45 / 100, (band - BOARD) * 80 / 100);
            // A gap of at least 3 px on both sides keeps neighbours apart.
            let left = MARGIN + c as i64 * slot + 3 + rng.range(0, slot - w - 6);
            let rect = [left, board_top - h, left + w, board_top];
            let colour = rng.below(COLOURS.len() as u64) as usize;
            let fill_colour = COLOURS[colour].1;
            fill(&mut img, rect[0], rect[1], rect[2], rect[3], fill_colour);
            text_centred(
                &mut img,
                (rect[0] + rect[2]) / 2,
                (rect[1] + rect[3]) / 2,
                LABEL_SCALE,
                label,
                ink_for(fill_colour),
            );
            row.push(Item {
                label,
                colour,
                rect,
            });
        }
        items.push(row);
    }

    let mut questions = vec![label_question(rng, &items)];
    if rng.chance(0.35) {
        let item = &items[rng.below(rows as u64) as usize][rng.below(cols as u64) as usize];
        let [l, t, r, b] = item.rect.map(|v| v as f64);
        questions.push(Question {
            key: "bbox",
            question: format!(
                "Locate the item labelled {} and output its bounding box in JSON format.",
                item.label
            ),
            expected: Expected::Bbox {
                bbox: [l, t, r, b],
                iou: 0.5,
            },
            tags: vec![],
        });
    }
    if rng.chance(0.25) {
        let item = &items[rng.below(rows as u64) as usize][rng.below(cols as u64) as usize];
        let mut options: Vec<usize> = (0..COLOURS.len()).filter(|&c| c != item.colour).collect();
        rng.shuffle(&mut options);
        options.truncate(3);
        options.push(item.colour);
        rng.shuffle(&mut options);
        let choices: Vec<String> = options.iter().map(|&c| COLOURS[c].0.to_string()).collect();
        let listed: Vec<String> = choices
            .iter()
            .enumerate()
            .map(|(i, c)| format!("({}) {c}", choice_letter(i)))
            .collect();
        questions.push(Question {
            key: "colour",
            question: format!(
                "What colour is the item labelled {}? {}. Answer with the letter.",
                item.label,
                listed.join(" ")
            ),
            expected: Expected::Choice {
                answer: options.iter().position(|&c| c == item.colour).unwrap_or(0),
                choices,
            },
            tags: vec![],
        });
    }
    Scene {
        image: img,
        questions,
    }
}

/// "What is on the item in row r, column c?", counted from one of the four
/// corners.
fn label_question(rng: &mut Rng, items: &[Vec<Item>]) -> Question {
    let (rows, cols) = (items.len(), items[0].len());
    let r = rng.below(rows as u64) as usize;
    let c = rng.below(cols as u64) as usize;
    let question = match rng.below(3) {
        0 => format!(
            "What is printed on the item in row {}, column {}? Rows are counted from the top, columns from the left. Answer with the word only.",
            r + 1,
            c + 1
        ),
        1 => format!(
            "Look at the {} shelf from the top. What word is printed on the {} item from the left? Answer with the word only.",
            ordinal(r + 1),
            ordinal(c + 1)
        ),
        _ => format!(
            "Look at the {} shelf from the bottom. What word is printed on the {} item from the right? Answer with the word only.",
            ordinal(rows - r),
            ordinal(cols - c)
        ),
    };
    Question {
        key: "label",
        question,
        expected: Expected::Normalized(items[r][c].label.to_string()),
        tags: vec![],
    }
}
