//! Position triples (t, h, w) for a prompt: transformers' `get_rope_index`.
//!
//! Text tokens advance all three axes together; the placeholder run of an image
//! gets the merged-grid coordinates of each token, offset by the position where
//! the image starts, and the text after it resumes at `start + max(H', W')`.
//! The algorithm is prefix-stable, so positions of a conversation that grows turn
//! by turn can be computed over the full token list and the tail taken.

/// One `[t, h, w]` row of `image_grid_thw`, in patches.
pub type Grid = [usize; 3];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RopePositions {
    /// One `[t, h, w]` triple per token.
    pub positions: Vec<[i64; 3]>,
    /// Added to a token's absolute index to get its position during decoding.
    pub delta: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RopeIndexError {
    #[error("the prompt has more image placeholders than images")]
    TooFewImages,
    #[error("image {index} expects {expected} placeholder tokens but the prompt has {found}")]
    PlaceholderCount {
        index: usize,
        expected: usize,
        found: usize,
    },
    #[error("{given} images were given but the prompt has placeholders for {used}")]
    UnusedImages { given: usize, used: usize },
    #[error("image grid {grid:?} is not divisible by the merge size {merge}")]
    BadGrid { grid: Grid, merge: usize },
}

/// Number of placeholder tokens an image with this patch grid takes.
pub fn image_token_count(grid: Grid, merge: usize) -> usize {
    grid[0] * (grid[1] / merge) * (grid[2] / merge)
}

pub fn rope_index(
    ids: &[u32],
    image_token_id: u32,
    grids: &[Grid],
    merge: usize,
) -> Result<RopePositions, RopeIndexError> {
    let mut positions = Vec::with_capacity(ids.len());
    let mut cur: i64 = 0;
    let mut next_image = 0usize;
    let mut i = 0usize;
    while i < ids.len() {
        if ids[i] != image_token_id {
            positions.push([cur, cur, cur]);
            cur += 1;
            i += 1;
            continue;
        }
        let grid = *grids.get(next_image).ok_or(RopeIndexError::TooFewImages)?;
        if grid[1] % merge != 0 || grid[2] % merge != 0 {
            return Err(RopeIndexError::BadGrid { grid, merge });
        }
        let (t, hh, ww) = (grid[0], grid[1] / merge, grid[2] / merge);
        let expected = t * hh * ww;
        let run = ids[i..]
            .iter()
            .take_while(|&&id| id == image_token_id)
            .count();
        if run < expected {
            return Err(RopeIndexError::PlaceholderCount {
                index: next_image,
                expected,
                found: run,
            });
        }
        for ti in 0..t {
            for hi in 0..hh {
                for wi in 0..ww {
                    positions.push([cur + ti as i64, cur + hi as i64, cur + wi as i64]);
                }
            }
        }
        // transformers resumes text at "largest position so far + 1".
        let largest = (t.max(hh).max(ww)) as i64;
        cur += largest;
        i += expected;
        next_image += 1;
    }
    if next_image != grids.len() {
        return Err(RopeIndexError::UnusedImages {
            given: grids.len(),
            used: next_image,
        });
    }
    let max_pos = positions
        .iter()
        .flat_map(|p| p.iter().copied())
        .max()
        .unwrap_or(-1);
    let delta = max_pos + 1 - ids.len() as i64;
    Ok(RopePositions { positions, delta })
}

/// Position of a token appended at absolute index `index` after the prompt.
pub fn decode_position(index: usize, delta: i64) -> [i64; 3] {
    let p = index as i64 + delta;
    [p, p, p]
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMG: u32 = 99;

    #[test]
    fn worked_example_from_the_reference() {
        // 4 text tokens, one image of grid [1,4,6] (2×3 merged), 3 text tokens.
        let ids = [1, 2, 3, 4, IMG, IMG, IMG, IMG, IMG, IMG, 5, 6, 7];
        let r = rope_index(&ids, IMG, &[[1, 4, 6]], 2).unwrap();
        let t: Vec<i64> = r.positions.iter().map(|p| p[0]).collect();
        let h: Vec<i64> = r.positions.iter().map(|p| p[1]).collect();
        let w: Vec<i64> = r.positions.iter().map(|p| p[2]).collect();
        assert_eq!(t, [0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 7, 8, 9]);
        assert_eq!(h, [0, 1, 2, 3, 4, 4, 4, 5, 5, 5, 7, 8, 9]);
        assert_eq!(w, [0, 1, 2, 3, 4, 5, 6, 4, 5, 6, 7, 8, 9]);
        assert_eq!(r.delta, -3);
        assert_eq!(decode_position(13, r.delta), [10, 10, 10]);
    }

    #[test]
    fn text_only_is_plain_counting() {
        let r = rope_index(&[5, 6, 7], IMG, &[], 2).unwrap();
        assert_eq!(r.positions, vec![[0, 0, 0], [1, 1, 1], [2, 2, 2]]);
        assert_eq!(r.delta, 0);
    }

    #[test]
    fn adjacent_images_are_split_by_their_grids() {
        let ids = [1, IMG, IMG, IMG, 2];
        let r = rope_index(&ids, IMG, &[[1, 2, 2], [1, 4, 2]], 2).unwrap();
        assert_eq!(r.positions[1], [1, 1, 1]);
        assert_eq!(r.positions[2], [2, 2, 2]);
        assert_eq!(r.positions[3], [2, 3, 2]);
        assert_eq!(r.positions[4], [4, 4, 4]);
    }

    #[test]
    fn prefix_stable_for_growing_conversations() {
        let full = [1, IMG, IMG, IMG, IMG, 2, 3, IMG, 4];
        let grids = [[1, 4, 4], [1, 2, 2]];
        let whole = rope_index(&full, IMG, &grids, 2).unwrap();
        let prefix = rope_index(&full[..6], IMG, &grids[..1], 2).unwrap();
        assert_eq!(&whole.positions[..6], &prefix.positions[..]);
    }

    #[test]
    fn mismatched_placeholders_are_errors() {
        assert_eq!(
            rope_index(&[IMG, IMG], IMG, &[[1, 4, 4]], 2),
            Err(RopeIndexError::PlaceholderCount {
                index: 0,
                expected: 4,
                found: 2
            })
        );
        assert_eq!(
            rope_index(&[IMG], IMG, &[], 2),
            Err(RopeIndexError::TooFewImages)
        );
        assert!(matches!(
            rope_index(&[1], IMG, &[[1, 2, 2]], 2),
            Err(RopeIndexError::UnusedImages { .. })
        ));
    }
}
