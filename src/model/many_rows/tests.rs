use super::*;

/// Deterministic values in [-1, 1).
fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

/// The product in f64, and each output's sum of absolute terms (what an
/// f32 sum's rounding scales with).
fn reference(x: &[f32], rows: usize, w: &[f32], outputs: usize) -> (Vec<f64>, Vec<f64>) {
    let inputs = x.len() / rows;
    let mut y = vec![0f64; rows * outputs];
    let mut size = vec![0f64; rows * outputs];
    for r in 0..rows {
        for o in 0..outputs {
            for k in 0..inputs {
                let t = x[r * inputs + k] as f64 * w[o * inputs + k] as f64;
                y[r * outputs + o] += t;
                size[r * outputs + o] += t.abs();
            }
        }
    }
    (y, size)
}

/// A `rows × inputs` matrix transposed.
fn columns(m: &[f32], rows: usize) -> Vec<f32> {
    let inputs = m.len() / rows;
    (0..inputs * rows)
        .map(|i| m[(i % rows) * inputs + i / rows])
        .collect()
}

fn check(rows: usize, inputs: usize, outputs: usize, max_copied: usize) {
    let x = random(rows * inputs, (rows * 31 + inputs) as u64);
    let w = random(outputs * inputs, (outputs * 7 + inputs) as u64);
    let (xt, wt) = (columns(&x, rows), columns(&w, outputs));
    let (want, size) = reference(&x, rows, &w, outputs);
    for (x, w, threads) in [
        (Matrix::Rows(&x), Matrix::Rows(&w), Threads::Pool),
        (Matrix::Columns(&xt), Matrix::Columns(&wt), Threads::Caller),
        (Matrix::Rows(&x), Matrix::Columns(&wt), Threads::Pool),
    ] {
        let mut y = vec![f32::NAN; rows * outputs];
        product_copying_at_most(x, rows, w, outputs, &mut y, threads, max_copied);
        compare(&y, &want, &size, (rows, inputs, outputs));
    }
}

fn compare(y: &[f32], want: &[f64], size: &[f64], (rows, inputs, outputs): (usize, usize, usize)) {
    for (i, ((got, want), size)) in y.iter().zip(want).zip(size).enumerate() {
        let err = (*got as f64 - want).abs();
        assert!(
            err <= 1e-5 * size + 1e-30,
            "{rows}×{inputs}→{outputs}: y[{}][{}] = {got}, want {want}",
            i / outputs,
            i % outputs
        );
    }
}

#[test]
fn products_of_every_edge_shape_match_a_plain_sum() {
    if !available() {
        return;
    }
    // Rows around the 12-row panel, outputs around the 32-output panel and
    // its 16-lane halves, inputs around the 16-wide transpose and the
    // 256-input block, blocks of y (96 × 256) whole and partial.
    for rows in [1, 5, 12, 13, 97, 200] {
        for inputs in [1, 7, 16, 33, 256, 300, 513] {
            for outputs in [1, 15, 16, 17, 32, 45, 64, 257, 300] {
                check(rows, inputs, outputs, MAX_COPIED_WEIGHTS);
            }
        }
    }
}

#[test]
fn wide_matrices_are_copied_a_part_at_a_time() {
    if !available() {
        return;
    }
    // A cap of a few thousand weights: each part is one block of outputs,
    // and the last part is short.
    check(30, 40, 600, 4000);
    check(7, 300, 1000, 1);
}

#[test]
fn a_nan_in_the_input_reaches_its_row_only() {
    if !available() {
        return;
    }
    let (rows, inputs, outputs) = (20, 64, 40);
    let mut x = random(rows * inputs, 3);
    x[5 * inputs + 9] = f32::NAN;
    let w = random(outputs * inputs, 4);
    let mut y = vec![0f32; rows * outputs];
    product(
        Matrix::Rows(&x),
        rows,
        Matrix::Rows(&w),
        outputs,
        &mut y,
        Threads::Pool,
    );
    for (r, row) in y.chunks(outputs).enumerate() {
        assert_eq!(row.iter().all(|v| v.is_nan()), r == 5, "row {r}");
        assert!(r == 5 || row.iter().all(|v| v.is_finite()), "row {r}");
    }
}

fn check_panels(rows: usize, inputs: usize, outputs: usize) {
    let x = random(rows * inputs, (rows * 13 + inputs) as u64);
    let w = random(outputs * inputs, (outputs * 5 + inputs) as u64);
    let (want, size) = reference(&x, rows, &w, outputs);
    let panels = WeightPanels::new(&w, outputs, inputs);
    assert_eq!(panels.to_rows(), w, "the panels hold the matrix");
    let y = WeightPanels::products(&[&panels], &x, rows).remove(0);
    compare(&y, &want, &size, (rows, inputs, outputs));

    // With a bias, which every row's sums start from.
    let bias = random(outputs, outputs as u64 + 3);
    let panels = panels.with_bias(bias.clone());
    let y = WeightPanels::products(&[&panels], &x, rows).remove(0);
    let biased = |v: &[f64], f: fn(f64) -> f64| -> Vec<f64> {
        let b = bias.iter().cycle().map(|&b| f(b as f64));
        v.iter().zip(b).map(|(v, b)| v + b).collect()
    };
    let (want, size) = (biased(&want, |b| b), biased(&size, f64::abs));
    compare(&y, &want, &size, (rows, inputs, outputs));
}

#[test]
fn weights_in_panels_give_the_plain_sum_at_every_edge_shape() {
    if !available() {
        return;
    }
    // Rows of every tile height (1 and 2 sum runs of inputs apart), and
    // past one block of 16 panels; inputs around the 256-input block and
    // runs that do not split evenly; outputs around the 32-output panel and
    // past one block of 8 panels.
    for rows in [1, 2, 3, 11, 12, 13, 25, 200] {
        for inputs in [1, 3, 16, 255, 257, 513] {
            for outputs in [1, 17, 32, 45, 300] {
                check_panels(rows, inputs, outputs);
            }
        }
    }
}

#[test]
fn several_matrices_over_one_input_give_what_each_gives_alone() {
    if !available() {
        return;
    }
    let (rows, inputs) = (40, 300);
    let x = random(rows * inputs, 9);
    let mats: Vec<WeightPanels> = [64, 17, 300]
        .iter()
        .enumerate()
        .map(|(i, &outputs)| {
            WeightPanels::new(&random(outputs * inputs, i as u64), outputs, inputs)
        })
        .collect();
    let refs: Vec<&WeightPanels> = mats.iter().collect();
    let together = WeightPanels::products(&refs, &x, rows);
    for (m, y) in mats.iter().zip(&together) {
        assert_eq!(&WeightPanels::products(&[m], &x, rows)[0], y);
    }
}

#[test]
fn no_rows_or_no_inputs_give_an_empty_product_or_the_bias() {
    if !available() {
        return;
    }
    let panels = WeightPanels::new(&random(40 * 8, 1), 40, 8);
    assert!(WeightPanels::products(&[&panels], &[], 0)[0].is_empty());
    let empty = WeightPanels::new(&[], 40, 0);
    assert_eq!(WeightPanels::products(&[&empty], &[], 3)[0], vec![0.0; 120]);
    let bias = random(40, 2);
    let empty = empty.with_bias(bias.clone());
    assert_eq!(WeightPanels::products(&[&empty], &[], 3)[0], bias.repeat(3));
}
