//! The gRPC `grpc-timeout` header: how long the caller is prepared to wait.

use std::time::Duration;

/// The deadline a request carries in `grpc-timeout`, if well-formed.
pub fn requested(headers: &http::HeaderMap) -> Option<Duration> {
    parse(headers.get("grpc-timeout")?.to_str().ok()?)
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
pub fn parse(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Formats `deadline` as a `grpc-timeout` value in milliseconds.
pub fn format(deadline: Duration) -> String {
    format!("{}m", deadline.as_millis().clamp(1, 99_999_999))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_parses_and_garbage_is_ignored() {
        for (raw, expected) in [
            ("2S", Duration::from_secs(2)),
            ("150m", Duration::from_millis(150)),
            ("1H", Duration::from_secs(3600)),
            ("3M", Duration::from_secs(180)),
            ("500u", Duration::from_micros(500)),
            ("7n", Duration::from_nanos(7)),
        ] {
            assert_eq!(parse(raw), Some(expected), "{raw}");
        }
        for bad in ["", "S", "12X", "-1S", "123456789S"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(
            parse(&format(Duration::from_millis(1500))),
            Some(Duration::from_millis(1500))
        );
    }
}
