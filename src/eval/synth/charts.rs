//! Cross-modal logic: line and bar charts with known values, where the
//! answer needs reading the chart and a little arithmetic. "What is the
//! slope between 20 and 30 °C?", "which bar is tallest?"

use image::{Rgb, RgbImage};

use super::canvas::{fill, line, text_centred, text_right, Colour, BLACK};
use super::rng::Rng;
use super::{Question, Scene};
use crate::eval::suite::Expected;

pub const WIDTH: u32 = 640;
pub const HEIGHT: u32 = 420;
/// The plot area: value 0 sits on row `BASE`, each unit is `UNIT` pixels up.
const LEFT: i64 = 80;
const RIGHT: i64 = 610;
pub const BASE: i64 = 360;
pub const UNIT: i64 = 3;
/// Values run from 0 to this; gridlines every 10, labelled every 20.
const TOP_VALUE: i64 = 100;
const GRID: Colour = [215, 215, 215];
pub const LINE: Colour = [30, 90, 200];
pub const MARKER: Colour = [210, 60, 20];
pub const BAR: Colour = [40, 140, 150];

const QUANTITIES: [&str; 4] = ["REACTION RATE", "SOLUBILITY", "ENZYME ACTIVITY", "YIELD"];
const FRUITS: [&str; 8] = [
    "APPLE", "PEAR", "PLUM", "FIG", "KIWI", "LIME", "MANGO", "GRAPE",
];
const TOPICS: [&str; 3] = ["SALES", "STOCK", "ORDERS"];

fn row_of(value: i64) -> i64 {
    BASE - value * UNIT
}

/// White page, title, gridlines, the y axis with its labels.
fn axes(title: &str) -> RgbImage {
    let mut img = RgbImage::from_pixel(WIDTH, HEIGHT, Rgb([255, 255, 255]));
    text_centred(&mut img, WIDTH as i64 / 2, 22, 2, title, BLACK);
    for v in (10..=TOP_VALUE).step_by(10) {
        fill(&mut img, LEFT, row_of(v), RIGHT, row_of(v) + 1, GRID);
    }
    for v in (0..=TOP_VALUE).step_by(20) {
        text_right(&mut img, LEFT - 8, row_of(v), 2, &v.to_string(), BLACK);
    }
    fill(
        &mut img,
        LEFT - 2,
        row_of(TOP_VALUE) - 4,
        LEFT,
        BASE + 2,
        BLACK,
    );
    fill(&mut img, LEFT - 2, BASE, RIGHT, BASE + 2, BLACK);
    img
}

/// `count` distinct multiples of 5 between 10 and 95.
fn distinct_values(rng: &mut Rng, count: usize) -> Vec<i64> {
    let all: Vec<i64> = (2..=19).map(|k| k * 5).collect();
    rng.sample(&all, count)
}

pub fn line_chart(rng: &mut Rng) -> Scene {
    let quantity = *rng.pick(&QUANTITIES);
    let labelled = rng.chance(0.5);
    let start = 10 * rng.range(0, 2);
    let temps: Vec<i64> = (0..6).map(|i| start + 10 * i).collect();
    // A walk in steps of 5 that stays inside the axis.
    let mut values = vec![5 * rng.range(2, 18)];
    for _ in 1..temps.len() {
        let prev = *values.last().unwrap_or(&50);
        values.push((prev + 5 * rng.range(-4, 4)).clamp(5, 95));
    }
    let mut img = axes(&format!("{quantity} VS TEMPERATURE"));
    let x_of = |i: usize| LEFT + 40 + i as i64 * 90;
    for (i, t) in temps.iter().enumerate() {
        text_centred(&mut img, x_of(i), BASE + 18, 2, &t.to_string(), BLACK);
    }
    text_centred(
        &mut img,
        (LEFT + RIGHT) / 2,
        BASE + 44,
        2,
        "TEMPERATURE (C)",
        BLACK,
    );
    for i in 1..temps.len() {
        line(
            &mut img,
            (x_of(i - 1), row_of(values[i - 1])),
            (x_of(i), row_of(values[i])),
            3,
            LINE,
        );
    }
    for (i, v) in values.iter().enumerate() {
        let (x, y) = (x_of(i), row_of(*v));
        fill(&mut img, x - 4, y - 4, x + 5, y + 5, MARKER);
        if labelled {
            text_centred(&mut img, x, y - 16, 2, &v.to_string(), BLACK);
        }
    }

    let tags = if labelled {
        vec!["labelled".to_string()]
    } else {
        vec![]
    };
    let span = if rng.chance(0.5) { 1 } else { 2 };
    let a = rng.below((temps.len() - span) as u64) as usize;
    let b = a + span;
    let slope = (values[b] - values[a]) as f64 / (temps[b] - temps[a]) as f64;
    let mut questions = vec![Question {
        key: "slope",
        question: format!(
            "What is the slope of the line between {} and {} °C, in units per °C? Answer with a number.",
            temps[a], temps[b]
        ),
        expected: Expected::Number {
            value: slope,
            // Unlabelled values are read off gridlines 10 apart.
            tolerance: if labelled { 0.01 } else { 0.25 },
        },
        tags: tags.clone(),
    }];
    let top = values.iter().max().copied().unwrap_or(0);
    if rng.chance(0.4) && values.iter().filter(|&&v| v == top).count() == 1 {
        let i = values.iter().position(|&v| v == top).unwrap_or(0);
        questions.push(Question {
            key: "peak",
            question:
                "At which temperature is the value highest? Answer with the temperature in °C only."
                    .into(),
            expected: Expected::Number {
                value: temps[i] as f64,
                tolerance: 0.0,
            },
            tags,
        });
    }
    Scene {
        image: img,
        questions,
    }
}

pub fn bar_chart(rng: &mut Rng) -> Scene {
    let n = rng.range(4, 6) as usize;
    let labels = rng.sample(&FRUITS, n);
    let values = distinct_values(rng, n);
    let labelled = rng.chance(0.5);
    let topic = *rng.pick(&TOPICS);
    let mut img = axes(&format!("{topic} BY FRUIT"));
    let pitch = (RIGHT - LEFT) / n as i64;
    let bar_w = 50;
    for (i, (label, v)) in labels.iter().zip(&values).enumerate() {
        let cx = LEFT + pitch * i as i64 + pitch / 2;
        fill(
            &mut img,
            cx - bar_w / 2,
            row_of(*v),
            cx + bar_w / 2,
            BASE,
            BAR,
        );
        text_centred(&mut img, cx, BASE + 18, 2, label, BLACK);
        if labelled {
            text_centred(&mut img, cx, row_of(*v) - 12, 2, &v.to_string(), BLACK);
        }
    }
    let tags = if labelled {
        vec!["labelled".to_string()]
    } else {
        vec![]
    };
    let by_value = |want_max: bool| {
        let pick = if want_max {
            values.iter().enumerate().max_by_key(|(_, v)| **v)
        } else {
            values.iter().enumerate().min_by_key(|(_, v)| **v)
        };
        labels[pick.map_or(0, |(i, _)| i)]
    };
    let tallest = rng.chance(0.6);
    let mut questions = vec![Question {
        key: if tallest { "tallest" } else { "shortest" },
        question: format!(
            "Which bar is the {}? Answer with its label only.",
            if tallest { "tallest" } else { "shortest" }
        ),
        expected: Expected::Normalized(by_value(tallest).to_string()),
        tags: tags.clone(),
    }];
    if rng.chance(0.6) {
        let picked = rng.sample(&(0..n).collect::<Vec<_>>(), 2);
        let (i, j) = (picked[0], picked[1]);
        questions.push(if rng.chance(0.5) {
            Question {
                key: "value",
                question: format!(
                    "What is the value of the {} bar? Answer with a number.",
                    labels[i]
                ),
                expected: Expected::Number {
                    value: values[i] as f64,
                    tolerance: if labelled { 0.0 } else { 2.5 },
                },
                tags,
            }
        } else {
            let (hi, lo) = if values[i] > values[j] { (i, j) } else { (j, i) };
            Question {
                key: "difference",
                question: format!(
                    "How much greater is the value of {} than the value of {}? Answer with a number.",
                    labels[hi], labels[lo]
                ),
                expected: Expected::Number {
                    value: (values[hi] - values[lo]) as f64,
                    tolerance: if labelled { 0.0 } else { 5.0 },
                },
                tags,
            }
        });
    }
    Scene {
        image: img,
        questions,
    }
}
