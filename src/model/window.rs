//! Qwen2.5-VL window attention: merged tokens are regrouped into square windows
//! (raster order of windows, raster order inside each), and most vision blocks
//! attend only within a window.

use super::rope_index::Grid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowPartition {
    /// Merged-token index (global, over all images) at each new position.
    pub order: Vec<u32>,
    /// `(start, len)` of each non-empty window, in patches.
    pub segments: Vec<(usize, usize)>,
}

impl WindowPartition {
    /// Where each merged token went: `inverse[order[j]] = j`.
    pub fn inverse_order(&self) -> Vec<u32> {
        let mut inv = vec![0u32; self.order.len()];
        for (j, &o) in self.order.iter().enumerate() {
            inv[o as usize] = j as u32;
        }
        inv
    }
}

/// `window` is the window side in merged tokens (112 px / 14 / 2 = 4).
pub fn window_partition(grids: &[Grid], merge: usize, window: usize) -> WindowPartition {
    let window = window.max(1);
    let unit = merge * merge;
    let mut order = Vec::new();
    let mut segments = Vec::new();
    let mut base = 0usize;
    let mut start = 0usize;
    for &[t, gh, gw] in grids {
        let (lh, lw) = (gh / merge, gw / merge);
        let (nwh, nww) = (lh.div_ceil(window), lw.div_ceil(window));
        for f in 0..t {
            for wy in 0..nwh {
                for wx in 0..nww {
                    let mut count = 0;
                    for y in wy * window..((wy + 1) * window).min(lh) {
                        for x in wx * window..((wx + 1) * window).min(lw) {
                            order.push((base + f * lh * lw + y * lw + x) as u32);
                            count += 1;
                        }
                    }
                    if count > 0 {
                        segments.push((start, count * unit));
                        start += count * unit;
                    }
                }
            }
        }
        base += t * lh * lw;
    }
    WindowPartition { order, segments }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cu(p: &WindowPartition) -> Vec<usize> {
        let mut v = vec![0];
        for &(s, l) in &p.segments {
            v.push(s + l);
        }
        v
    }

    #[test]
    fn reference_example_12_by_20_patches() {
        let p = window_partition(&[[1, 12, 20]], 2, 4);
        assert_eq!(cu(&p), [0, 64, 128, 160, 192, 224, 240]);
        assert_eq!(&p.order[..8], &[0, 1, 2, 3, 10, 11, 12, 13]);
        assert_eq!(&p.order[16..20], &[4, 5, 6, 7]);
        assert_eq!(&p.order[32..40], &[8, 9, 18, 19, 28, 29, 38, 39]);
        assert_eq!(&p.order[40..44], &[40, 41, 42, 43]);
        assert_eq!(&p.order[56..], &[48, 49, 58, 59]);
    }

    #[test]
    fn exact_multiples_have_no_empty_windows() {
        let p = window_partition(&[[1, 16, 16]], 2, 4);
        assert_eq!(cu(&p), [0, 64, 128, 192, 256]);
    }

    #[test]
    fn second_image_is_offset_and_inverse_restores_order() {
        let p = window_partition(&[[1, 4, 4], [1, 10, 2]], 2, 4);
        assert_eq!(&p.order[..4], &[0, 1, 2, 3]);
        assert_eq!(&p.order[4..], &[4, 5, 6, 7, 8]);
        let inv = p.inverse_order();
        for (j, &o) in p.order.iter().enumerate() {
            assert_eq!(inv[o as usize] as usize, j);
        }
    }
}
