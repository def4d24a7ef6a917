//! Durations as written in Annexa objects: `90d`, `12h`, `1h30m`, `2w`.
//!
//! Hand-written on purpose: jiff's "friendly" format parses a `SignedDuration` only in units up
//! to hours (`90d` and `2w` are errors there; a `Span` needs a relative date or a
//! days-are-24-hours marker), and it accepts forms Annexa refuses and its CRDs do not document
//! (`1.5h`, `2 hrs 30 mins`, ISO 8601 `PT2H`, negative spans); its printer writes `1h 30m` and
//! has no day unit for a `SignedDuration`. The grammar here is the one the CRD fields document,
//! and jiff's `SignedDuration` carries the value.

use jiff::SignedDuration;

/// Parses a duration made of `<number><unit>` parts, units `w`, `d`, `h`, `m`, `s`.
/// Returns a message naming what is wrong on failure.
pub fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    if text.is_empty() {
        return Err("empty duration".to_string());
    }
    let mut total: i64 = 0;
    let mut number: Option<i64> = None;
    for ch in text.chars() {
        if let Some(digit) = ch.to_digit(10) {
            let n = number.unwrap_or(0);
            number = Some(
                n.checked_mul(10)
                    .and_then(|n| n.checked_add(i64::from(digit)))
                    .ok_or_else(|| format!("duration {text:?} is too large"))?,
            );
            continue;
        }
        let unit: i64 = match ch {
            'w' => 7 * 86_400,
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => {
                return Err(format!(
                    "duration {text:?} has unknown unit {ch:?} (use w, d, h, m or s, e.g. 90d or 1h30m)"
                ));
            }
        };
        let n = number
            .take()
            .ok_or_else(|| format!("duration {text:?} has a unit without a number"))?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| format!("duration {text:?} is too large"))?;
    }
    if number.is_some() {
        return Err(format!(
            "duration {text:?} ends without a unit (use w, d, h, m or s, e.g. 90d)"
        ));
    }
    Ok(SignedDuration::from_secs(total))
}

/// Formats a duration the way users write it (`7d`, `1h30m`).
pub fn format_duration(duration: SignedDuration) -> String {
    let mut secs = duration.as_secs();
    if secs == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compound_durations() {
        assert_eq!(parse_duration("90d").unwrap().as_secs(), 90 * 86_400);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5_400);
        assert_eq!(parse_duration("2w").unwrap().as_secs(), 14 * 86_400);
        assert_eq!(format_duration(parse_duration("1h30m").unwrap()), "1h30m");
    }

    #[test]
    fn rejects_malformed_durations() {
        for bad in ["", "d", "10", "10x", "99999999999999999999d", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
