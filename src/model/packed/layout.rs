//! The tiles: 16 output rows of one block of inputs, laid out so that one
//! 64-byte load holds 4 consecutive weights of each of the 16 rows, and the
//! conversions to and from ggml's blocks (exact both ways).
//!
//! ggml blocks (as candle stores them, row after row):
//! - q4k, 144 bytes per 256 values: f16 `d`, f16 `dmin`, 12 bytes of 6-bit
//!   scales and mins for 8 sub-blocks of 32, and 128 bytes of nibbles where
//!   32-byte chunk `c` holds values `64c + j` (low) and `64c + 32 + j` (high);
//!   a value is `d·scale·q − dmin·min`.
//! - q8_0, 34 bytes per 32 values: f16 `d` and 32 signed bytes; `d·q`.

use half::f16;
use rayon::prelude::*;

pub const TILE_ROWS: usize = 16;
/// Values per q4k block, and per quantisation block of the inputs.
pub const SUPER: usize = 256;
pub const Q8_0_BLOCK: usize = 32;
const Q4K_BYTES: usize = 144;
const Q8_0_BYTES: usize = 34;

/// 16 rows × 256 inputs of q4k.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TileQ4K {
    /// f16 bits, per row.
    pub d: [u16; TILE_ROWS],
    pub dmin: [u16; TILE_ROWS],
    /// Per sub-block of 32 inputs, per row: the 6-bit scale.
    pub scales: [[u8; TILE_ROWS]; 8],
    /// Per pair of sub-blocks, per row, the two 6-bit mins side by side (one
    /// 16-bit multiply-add applies both).
    pub mins: [[u8; TILE_ROWS * 2]; 4],
    /// For each group `g` of 8 inputs, for each row, 4 bytes: byte `j` holds
    /// input `8g + j` in its low nibble and `8g + j + 4` in its high one.
    pub qs: [u8; SUPER / 8 * TILE_ROWS * 4],
}

/// 16 rows × 32 inputs of q8_0.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TileQ8_0 {
    pub d: [u16; TILE_ROWS],
    /// For each group `g` of 4 inputs, for each row, its 4 values plus 128
    /// (the integer dot product takes unsigned weights).
    pub qs: [u8; Q8_0_BLOCK * TILE_ROWS],
}

const EMPTY_Q4K: TileQ4K = TileQ4K {
    d: [0; TILE_ROWS],
    dmin: [0; TILE_ROWS],
    scales: [[0; TILE_ROWS]; 8],
    mins: [[0; TILE_ROWS * 2]; 4],
    qs: [0; SUPER / 8 * TILE_ROWS * 4],
};

const EMPTY_Q8_0: TileQ8_0 = TileQ8_0 {
    d: [0; TILE_ROWS],
    qs: [0; Q8_0_BLOCK * TILE_ROWS],
};

fn f16_bits(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

/// The scale and min of sub-block `j` from ggml's 12 packed bytes.
fn scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// The inverse of [`scale_min`] over all 8 sub-blocks.
fn pack_scale_min(scales: [u8; 8], mins: [u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..4 {
        s[j] = scales[j] | ((scales[j + 4] >> 4) << 6);
        s[j + 4] = mins[j] | ((mins[j + 4] >> 4) << 6);
        s[j + 8] = (scales[j + 4] & 0x0F) | ((mins[j + 4] & 0x0F) << 4);
    }
    s
}

/// q4k nibbles in input order, from a block's 128 bytes.
fn q4k_values(qs: &[u8]) -> [u8; SUPER] {
    let mut v = [0u8; SUPER];
    for c in 0..4 {
        for j in 0..32 {
            let byte = qs[c * 32 + j];
            v[c * 64 + j] = byte & 0x0F;
            v[c * 64 + 32 + j] = byte >> 4;
        }
    }
    v
}

/// One row's values of a q4k tile, in input order.
fn tile_q4k_values(tile: &TileQ4K, r: usize) -> [u8; SUPER] {
    let mut v = [0u8; SUPER];
    for g in 0..SUPER / 8 {
        for j in 0..4 {
            let byte = tile.qs[(g * TILE_ROWS + r) * 4 + j];
            v[g * 8 + j] = byte & 0x0F;
            v[g * 8 + j + 4] = byte >> 4;
        }
    }
    v
}

fn min_at(tile: &mut TileQ4K, sub: usize, r: usize) -> &mut u8 {
    &mut tile.mins[sub / 2][r * 2 + sub % 2]
}

pub fn pack_q4k(blocks: &[u8], outputs: usize, inputs: usize) -> Vec<TileQ4K> {
    let per_row = inputs / SUPER;
    assert_eq!(
        blocks.len(),
        outputs * per_row * Q4K_BYTES,
        "q4k blocks for the shape"
    );
    let mut tiles = vec![EMPTY_Q4K; outputs / TILE_ROWS * per_row];
    tiles
        .par_chunks_mut(per_row)
        .enumerate()
        .for_each(|(s, strip)| {
            for r in 0..TILE_ROWS {
                let row = &blocks[(s * TILE_ROWS + r) * per_row * Q4K_BYTES..];
                for (b, tile) in strip.iter_mut().enumerate() {
                    let blk = &row[b * Q4K_BYTES..(b + 1) * Q4K_BYTES];
                    tile.d[r] = f16_bits(&blk[0..2]);
                    tile.dmin[r] = f16_bits(&blk[2..4]);
                    for j in 0..8 {
                        let (sc, mn) = scale_min(j, &blk[4..16]);
                        tile.scales[j][r] = sc;
                        *min_at(tile, j, r) = mn;
                    }
                    let v = q4k_values(&blk[16..]);
                    for g in 0..SUPER / 8 {
                        for j in 0..4 {
                            tile.qs[(g * TILE_ROWS + r) * 4 + j] =
                                v[g * 8 + j] | (v[g * 8 + j + 4] << 4);
                        }
                    }
                }
            }
        });
    tiles
}

pub fn unpack_q4k(tiles: &[TileQ4K], outputs: usize, inputs: usize) -> Vec<u8> {
    let per_row = inputs / SUPER;
    let mut out = vec![0u8; outputs * per_row * Q4K_BYTES];
    out.par_chunks_mut(per_row * Q4K_BYTES)
        .enumerate()
        .for_each(|(row, dst)| {
            let (s, r) = (row / TILE_ROWS, row % TILE_ROWS);
            for (b, blk) in dst.chunks_mut(Q4K_BYTES).enumerate() {
                let tile = &tiles[s * per_row + b];
                blk[0..2].copy_from_slice(&tile.d[r].to_le_bytes());
                blk[2..4].copy_from_slice(&tile.dmin[r].to_le_bytes());
                let scales = std::array::from_fn(|j| tile.scales[j][r]);
                let mins = std::array::from_fn(|j| tile.mins[j / 2][r * 2 + j % 2]);
                blk[4..16].copy_from_slice(&pack_scale_min(scales, mins));
                let v = tile_q4k_values(tile, r);
                for c in 0..4 {
                    for j in 0..32 {
                        blk[16 + c * 32 + j] = v[c * 64 + j] | (v[c * 64 + 32 + j] << 4);
                    }
                }
            }
        });
    out
}

/// Row `row` widened to f32 as ggml's dequantisation computes it.
pub fn row_q4k(tiles: &[TileQ4K], inputs: usize, row: usize, dst: &mut [f32]) {
    let per_row = inputs / SUPER;
    let (s, r) = (row / TILE_ROWS, row % TILE_ROWS);
    for (b, out) in dst.chunks_mut(SUPER).enumerate() {
        let tile = &tiles[s * per_row + b];
        let d = f16::from_bits(tile.d[r]).to_f32();
        let dmin = f16::from_bits(tile.dmin[r]).to_f32();
        let v = tile_q4k_values(tile, r);
        for (j, (out, v)) in out.chunks_mut(32).zip(v.chunks(32)).enumerate() {
            let scale = d * tile.scales[j][r] as f32;
            let min = dmin * tile.mins[j / 2][r * 2 + j % 2] as f32;
            for (o, &q) in out.iter_mut().zip(v) {
                *o = scale * q as f32 - min;
            }
        }
    }
}

pub fn pack_q8_0(blocks: &[u8], outputs: usize, inputs: usize) -> Vec<TileQ8_0> {
    let per_row = inputs / Q8_0_BLOCK;
    assert_eq!(
        blocks.len(),
        outputs * per_row * Q8_0_BYTES,
        "q8_0 blocks for the shape"
    );
    let mut tiles = vec![EMPTY_Q8_0; outputs / TILE_ROWS * per_row];
    tiles
        .par_chunks_mut(per_row)
        .enumerate()
        .for_each(|(s, strip)| {
            for r in 0..TILE_ROWS {
                let row = &blocks[(s * TILE_ROWS + r) * per_row * Q8_0_BYTES..];
                for (b, tile) in strip.iter_mut().enumerate() {
                    let blk = &row[b * Q8_0_BYTES..(b + 1) * Q8_0_BYTES];
                    tile.d[r] = f16_bits(&blk[0..2]);
                    for g in 0..Q8_0_BLOCK / 4 {
                        for j in 0..4 {
                            tile.qs[(g * TILE_ROWS + r) * 4 + j] = blk[2 + g * 4 + j] ^ 0x80;
                        }
                    }
                }
            }
        });
    tiles
}

pub fn unpack_q8_0(tiles: &[TileQ8_0], outputs: usize, inputs: usize) -> Vec<u8> {
    let per_row = inputs / Q8_0_BLOCK;
    let mut out = vec![0u8; outputs * per_row * Q8_0_BYTES];
    out.par_chunks_mut(per_row * Q8_0_BYTES)
        .enumerate()
        .for_each(|(row, dst)| {
            let (s, r) = (row / TILE_ROWS, row % TILE_ROWS);
            for (b, blk) in dst.chunks_mut(Q8_0_BYTES).enumerate() {
                let tile = &tiles[s * per_row + b];
                blk[0..2].copy_from_slice(&tile.d[r].to_le_bytes());
                for g in 0..Q8_0_BLOCK / 4 {
                    for j in 0..4 {
                        blk[2 + g * 4 + j] = tile.qs[(g * TILE_ROWS + r) * 4 + j] ^ 0x80;
                    }
                }
            }
        });
    out
}

pub fn row_q8_0(tiles: &[TileQ8_0], inputs: usize, row: usize, dst: &mut [f32]) {
    let per_row = inputs / Q8_0_BLOCK;
    let (s, r) = (row / TILE_ROWS, row % TILE_ROWS);
    for (b, out) in dst.chunks_mut(Q8_0_BLOCK).enumerate() {
        let tile = &tiles[s * per_row + b];
        let d = f16::from_bits(tile.d[r]).to_f32();
        for (g, out) in out.chunks_mut(4).enumerate() {
            for (j, o) in out.iter_mut().enumerate() {
                let q = (tile.qs[(g * TILE_ROWS + r) * 4 + j] ^ 0x80) as i8;
                *o = d * q as f32;
            }
        }
    }
}
