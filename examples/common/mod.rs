//! Timing shared by the examples.

use std::time::Instant;

/// The best time of `f` in milliseconds, over runs for half a second after
/// one to warm up.
pub fn best_ms(mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::INFINITY;
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < 0.5 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    best
}
