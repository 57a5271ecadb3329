//! How long a server may stay silent before its answer is given up: a
//! connection can stay open while the server sends nothing (a stuck engine,
//! a proxy that lost the other side), and the answer must not wait forever.

use std::time::Duration;

/// The longest silences a stream may have. Before the first token the
/// server may be queueing the request and reading a long prompt with images
/// (minutes for the largest models on a busy server); once tokens flow, a
/// gap of half a minute means something is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleLimits {
    /// From sending the request to the first token.
    pub first_token: Duration,
    /// After the first token, between any two pieces of the stream.
    pub between_tokens: Duration,
}

impl Default for IdleLimits {
    fn default() -> Self {
        IdleLimits {
            first_token: Duration::from_secs(120),
            between_tokens: Duration::from_secs(30),
        }
    }
}

impl IdleLimits {
    /// `"FIRST:BETWEEN"` or one number for both, in seconds (fractions
    /// allowed), e.g. `"120:30"`, `"300"`, `"0.5:0.5"`.
    pub fn parse(text: &str) -> Result<IdleLimits, String> {
        let (first, between) = match text.split_once(':') {
            Some((a, b)) => (a, b),
            None => (text, text),
        };
        Ok(IdleLimits {
            first_token: seconds(first, text)?,
            between_tokens: seconds(between, text)?,
        })
    }

    /// The limit in force: before the first token, or after it.
    pub fn limit(&self, first_token_seen: bool) -> Duration {
        if first_token_seen {
            self.between_tokens
        } else {
            self.first_token
        }
    }
}

fn seconds(part: &str, whole: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "the idle timeout {whole:?} is not FIRST:BETWEEN in seconds (e.g. \"120:30\") or one number of seconds for both"
        )
    };
    let secs: f64 = part.trim().parse().map_err(|_| bad())?;
    // Whole milliseconds, so the limit reads back as it was written.
    let ms = (secs * 1000.0).round();
    if !(1.0..=86_400_000.0).contains(&ms) {
        return Err(format!(
            "the idle timeout {whole:?} must be at least 0.001 s and at most a day (86400 s)"
        ));
    }
    Ok(Duration::from_millis(ms as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_number_sets_both_limits_and_two_set_each() {
        let both = IdleLimits::parse("300").unwrap();
        assert_eq!(both.first_token, Duration::from_secs(300));
        assert_eq!(both.between_tokens, Duration::from_secs(300));
        let each = IdleLimits::parse("0.5:2").unwrap();
        assert_eq!(each.limit(false), Duration::from_millis(500));
        assert_eq!(each.limit(true), Duration::from_secs(2));
        assert_eq!(IdleLimits::parse("120:30").unwrap(), IdleLimits::default());
    }

    #[test]
    fn nonsense_and_zero_are_refused_with_the_form_to_use() {
        assert!(IdleLimits::parse("soon")
            .unwrap_err()
            .contains("FIRST:BETWEEN"));
        assert!(IdleLimits::parse("10:")
            .unwrap_err()
            .contains("FIRST:BETWEEN"));
        assert!(IdleLimits::parse("0")
            .unwrap_err()
            .contains("at least 0.001 s"));
        assert!(IdleLimits::parse("NaN")
            .unwrap_err()
            .contains("at least 0.001 s"));
        assert_eq!(
            IdleLimits::parse("0.6").unwrap().first_token,
            Duration::from_millis(600)
        );
        assert!(IdleLimits::parse("1e9")
            .unwrap_err()
            .contains("at most a day"));
    }
}
