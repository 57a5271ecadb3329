//! OCR questions: receipts printed small, rotated, in low contrast or
//! speckled with noise. "What is the total on this receipt?"

use image::{imageops, Rgb, RgbImage};

use super::canvas::{fill, speckle, text, text_centred, Colour};
use super::rng::Rng;
use super::{Question, Scene};
use crate::eval::suite::Expected;
use crate::processor::font::ADVANCE;

/// Characters per receipt line.
const COLUMNS: i64 = 24;
/// Line pitch in font cells: 7 for the glyph, 3 between lines.
const LINE_CELLS: i64 = 10;

const STORES: [&str; 6] = [
    "CORNER MART",
    "FRESH FOODS",
    "CITY DELI",
    "GREEN GROCER",
    "HARBOR MARKET",
    "SUNNY STORE",
];

const GOODS: [&str; 14] = [
    "MILK",
    "BREAD",
    "EGGS 12",
    "APPLES",
    "COFFEE",
    "BUTTER",
    "CHEESE",
    "PASTA",
    "TOMATOES",
    "RICE 1KG",
    "OLIVE OIL",
    "YOGURT",
    "BANANAS",
    "ORANGE JUICE",
];

/// Letters and digits that cannot be mistaken for one another (no O/0, I/1).
const CODE_CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// Prices are whole cents, so sums are exact.
fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

pub fn scene(rng: &mut Rng) -> Scene {
    // Drawn from `rng` in a fixed order (look, receipt, noise, questions), so
    // a seed always makes the same suite.
    let look = Look::draw(rng);
    let receipt = Receipt::draw(rng);
    let (image, tags) = look.apply(print_receipt(&receipt, &look), rng);
    Scene {
        image,
        questions: questions(&receipt, tags, rng),
    }
}

/// How hard the receipt is to read.
struct Look {
    small: bool,
    low_contrast: bool,
    noisy: bool,
    /// Quarter turns clockwise.
    turns: i64,
}

impl Look {
    fn draw(rng: &mut Rng) -> Look {
        let small = rng.chance(0.4);
        let low_contrast = rng.chance(0.3);
        let noisy = rng.chance(0.3);
        let turns = if rng.chance(0.3) { rng.range(1, 3) } else { 0 };
        Look {
            small,
            low_contrast,
            noisy,
            turns,
        }
    }

    /// Pixels per font cell.
    fn scale(&self) -> i64 {
        if self.small {
            1
        } else {
            2
        }
    }

    fn paper_and_ink(&self) -> (Colour, Colour) {
        if self.low_contrast {
            ([206, 204, 198], [158, 156, 150])
        } else {
            ([250, 248, 240], [30, 30, 30])
        }
    }

    /// Noise and rotation over the printed receipt, and the tags naming them.
    fn apply(&self, mut img: RgbImage, rng: &mut Rng) -> (RgbImage, Vec<String>) {
        let mut tags = Vec::new();
        if self.small {
            tags.push("small".to_string());
        }
        if self.low_contrast {
            tags.push("low-contrast".to_string());
        }
        if self.noisy {
            speckle(&mut img, rng, 0.04);
            tags.push("noisy".to_string());
        }
        let img = match self.turns {
            1 => imageops::rotate90(&img),
            2 => imageops::rotate180(&img),
            3 => imageops::rotate270(&img),
            _ => img,
        };
        if self.turns > 0 {
            tags.push(format!("rotated-{}", self.turns * 90));
        }
        (img, tags)
    }
}

/// What is printed on the receipt.
struct Receipt {
    store: &'static str,
    goods: Vec<&'static str>,
    /// In cents, so sums are exact.
    prices: Vec<i64>,
    total: i64,
    code: String,
}

impl Receipt {
    fn draw(rng: &mut Rng) -> Receipt {
        let store = *rng.pick(&STORES);
        let lines_bought = rng.range(3, 6) as usize;
        let goods: Vec<&'static str> = rng.sample(&GOODS, lines_bought);
        let prices: Vec<i64> = goods.iter().map(|_| rng.range(49, 1999)).collect();
        let total: i64 = prices.iter().sum();
        let code: String = (0..7)
            .map(|i| {
                if i == 3 {
                    '-'
                } else {
                    char::from(*rng.pick(CODE_CHARS))
                }
            })
            .collect();
        Receipt {
            store,
            goods,
            prices,
            total,
            code,
        }
    }

    /// Name and price columns: a blank line, the goods, a blank line, the
    /// total, a blank line.
    fn lines(&self) -> Vec<(String, String)> {
        let mut lines: Vec<(String, String)> = vec![(String::new(), String::new())];
        for (g, p) in self.goods.iter().zip(&self.prices) {
            lines.push((g.to_string(), money(*p)));
        }
        lines.push((String::new(), String::new()));
        lines.push(("TOTAL".into(), money(self.total)));
        lines.push((String::new(), String::new()));
        lines
    }
}

/// The receipt on paper on a desk: the store's name, the lines, the code.
fn print_receipt(receipt: &Receipt, look: &Look) -> RgbImage {
    let (paper, ink) = look.paper_and_ink();
    let lines = receipt.lines();
    let cell = look.scale();
    let size = cell as u32;
    let pad = 8 * cell;
    let paper_w = COLUMNS * ADVANCE as i64 * cell - cell + 2 * pad;
    // Store name, the lines above, the code.
    let paper_h = (lines.len() as i64 + 2) * LINE_CELLS * cell + 2 * pad;
    let desk = 40;
    let (w, h) = (paper_w + 2 * desk, paper_h + 2 * desk);
    let mut img = RgbImage::from_pixel(w as u32, h as u32, Rgb([92, 70, 52]));
    fill(&mut img, desk, desk, desk + paper_w, desk + paper_h, paper);
    let left = desk + pad;
    let right = desk + paper_w - pad;
    let line_top = |n: i64| desk + pad + n * LINE_CELLS * cell;
    let centre = desk + paper_w / 2;
    text_centred(
        &mut img,
        centre,
        line_top(0) + 7 * cell / 2,
        size,
        receipt.store,
        ink,
    );
    for (n, (name, price)) in lines.iter().enumerate() {
        let y = line_top(n as i64 + 1);
        text(&mut img, left, y, size, name, ink);
        let price_w = (price.chars().count() as i64 * ADVANCE as i64 - 1) * cell;
        text(&mut img, right - price_w, y, size, price, ink);
    }
    let code = format!("REF {}", receipt.code);
    text(
        &mut img,
        left,
        line_top(lines.len() as i64 + 1),
        size,
        &code,
        ink,
    );
    img
}

/// The total, and half the time one more question: a price, the store or
/// the reference code.
fn questions(receipt: &Receipt, tags: Vec<String>, rng: &mut Rng) -> Vec<Question> {
    let number = "Answer with the number only.";
    let mut questions = vec![Question {
        key: "total",
        question: format!("What is the total on this receipt? {number}"),
        expected: Expected::Number {
            value: receipt.total as f64 / 100.0,
            tolerance: 0.005,
        },
        tags: tags.clone(),
    }];
    if !rng.chance(0.5) {
        return questions;
    }
    questions.push(match rng.below(3) {
        0 => {
            let i = rng.below(receipt.goods.len() as u64) as usize;
            Question {
                key: "price",
                question: format!(
                    "How much does {} cost on this receipt? {number}",
                    receipt.goods[i]
                ),
                expected: Expected::Number {
                    value: receipt.prices[i] as f64 / 100.0,
                    tolerance: 0.005,
                },
                tags,
            }
        }
        1 => Question {
            key: "store",
            question: "What is the name of the store printed at the top of this receipt?".into(),
            expected: Expected::Normalized(receipt.store.to_string()),
            tags,
        },
        _ => Question {
            key: "code",
            question: "What is the reference code printed after REF at the bottom of this receipt? Answer with the code exactly as printed.".into(),
            expected: Expected::Exact(receipt.code.clone()),
            tags,
        },
    });
    questions
}
