//! Checks image loading and bicubic resizing against Pillow, bit for bit.
//!
//! The reference data lives in `tests/fixtures/resize/` and is produced by
//! `generate_reference.py` there: small PNG images in several modes and, for
//! each, SHA-256 digests of what Pillow returns when it flattens the image to
//! RGB on white and when it resizes it with `Image.BICUBIC`.

use std::path::{Path, PathBuf};

use glimpse::processor::image::{load_image, LongEdgeCap};
use glimpse::processor::resize::resize_bicubic;
use image::RgbImage;
use serde_json::Value;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/resize")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("reference.json"))
        .expect("reference.json is readable");
    serde_json::from_str(&text).expect("reference.json is valid JSON")
}

fn u32_of(v: &Value, key: &str) -> u32 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} missing")) as u32
}

/// Compares the sample pixels `[[x, y, [r, g, b]], …]` recorded by Pillow.
fn check_samples(img: &RgbImage, samples: &Value, what: &str) {
    for s in samples.as_array().expect("samples list") {
        let (x, y) = (s[0].as_u64().unwrap() as u32, s[1].as_u64().unwrap() as u32);
        let expected: Vec<u8> = s[2]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
        assert_eq!(
            img.get_pixel(x, y).0.to_vec(),
            expected,
            "{what}: pixel ({x}, {y})"
        );
    }
}

#[test]
fn loading_matches_pillow_flattened_on_white() {
    let reference = reference();
    let images = reference["images"].as_array().unwrap();
    assert!(images.len() >= 8);
    for entry in images {
        let file = entry["file"].as_str().unwrap();
        let decoded =
            load_image(&fixture_dir().join(file), None).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            decoded.rgb.dimensions(),
            (u32_of(entry, "width"), u32_of(entry, "height")),
            "{file}"
        );
        assert_eq!(
            (decoded.original_width, decoded.original_height),
            decoded.rgb.dimensions()
        );
        check_samples(&decoded.rgb, &entry["rgb_samples"], file);
        assert_eq!(
            sha256_hex(decoded.rgb.as_raw()),
            entry["rgb_sha256"].as_str().unwrap(),
            "{file} ({} mode) flattened to RGB",
            entry["mode"]
        );
    }
}

#[test]
fn bicubic_resize_matches_pillow_for_every_reference_size() {
    let reference = reference();
    let mut checked = 0;
    for entry in reference["images"].as_array().unwrap() {
        let file = entry["file"].as_str().unwrap();
        let source = load_image(&fixture_dir().join(file), None).unwrap().rgb;
        for case in entry["resize"].as_array().unwrap() {
            let (w, h) = (u32_of(case, "width"), u32_of(case, "height"));
            let what = format!("{file} {}x{} -> {w}x{h}", source.width(), source.height());
            let out = resize_bicubic(&source, w, h);
            assert_eq!(out.dimensions(), (w, h), "{what}");
            check_samples(&out, &case["samples"], &what);
            assert_eq!(
                sha256_hex(out.as_raw()),
                case["sha256"].as_str().unwrap(),
                "{what}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 150, "only {checked} cases checked");
}

#[test]
fn long_edge_cap_matches_pillow_resize_and_keeps_the_original_size() {
    let reference = reference();
    let mut checked = 0;
    for entry in reference["images"].as_array().unwrap() {
        let Some(cap) = entry.get("cap") else {
            continue;
        };
        let file = entry["file"].as_str().unwrap();
        let limit = LongEdgeCap {
            threshold: u32_of(cap, "threshold"),
            target: u32_of(cap, "target"),
        };
        let decoded = load_image(&fixture_dir().join(file), Some(&limit)).unwrap();
        assert_eq!(
            decoded.rgb.dimensions(),
            (u32_of(cap, "width"), u32_of(cap, "height")),
            "{file}"
        );
        assert_eq!(
            (decoded.original_width, decoded.original_height),
            (u32_of(entry, "width"), u32_of(entry, "height")),
            "{file}"
        );
        assert_eq!(
            sha256_hex(decoded.rgb.as_raw()),
            cap["sha256"].as_str().unwrap(),
            "{file} capped"
        );
        checked += 1;
    }
    assert!(checked >= 3);
}

/// SHA-256 (FIPS 180-4), enough to compare pixel buffers with the digests
/// Python's hashlib wrote.
fn sha256_hex(data: &[u8]) -> String {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());

    for block in message.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (state, v) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *state = state.wrapping_add(v);
        }
    }
    h.iter().map(|v| format!("{v:08x}")).collect()
}

#[test]
fn sha256_matches_known_digests() {
    assert_eq!(
        sha256_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    // Longer than one 64-byte block.
    assert_eq!(
        sha256_hex(&[b'a'; 200]),
        "c2a908d98f5df987ade41b5fce213067efbcc21ef2240212a41e54b5e7c28ae5"
    );
}
