//! How facts are worded for people: an error chain as one line, byte counts
//! as KiB/MiB/GiB. Every front door (the chat, `ask`, `models`, the GPU pane)
//! says these the same way, so they live below all of them.

/// The whole error chain on one line, outermost first, without repeats.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}

pub const MIB: f64 = 1024.0 * 1024.0;
pub const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// `8.3 GiB`, `512.0 MiB`, `12 B`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `12.3 GiB`, or `456 MiB` under a GiB: memory as the GPU pane shows it.
pub fn gib(bytes: u64) -> String {
    if (bytes as f64) < GIB {
        format!("{:.0} MiB", bytes as f64 / MIB)
    } else {
        format!("{:.1} GiB", bytes as f64 / GIB)
    }
}

/// Bytes in MiB with one decimal, for a before → after comparison.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(8_875_631_616), "8.3 GiB");
        assert_eq!(gib(512 << 20), "512 MiB");
        assert_eq!(gib(3 << 30), "3.0 GiB");
        assert_eq!(mib(3 << 19), "1.5 MiB");
    }

    #[test]
    fn an_error_chain_is_one_line_without_repeats() {
        let e = anyhow::anyhow!("disk full\nretry later")
            .context("writing x.json")
            .context("saving the session");
        assert_eq!(
            one_line(&e),
            "saving the session: writing x.json: disk full retry later"
        );
    }
}
