//! Times on the command line: instants given as unix seconds, RFC 3339 or "7d" (ago), durations
//! like "30d", and the renderings the output uses ("3 days ago", "2024-05-01T12:00:00Z").

use std::time::{SystemTime, UNIX_EPOCH};

const MINUTE: i64 = 60;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const WEEK: i64 = 7 * DAY;

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// An instant: `now`, unix seconds (`1714564800`), a date (`2024-05-01`, midnight UTC), RFC 3339
/// (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00+02:00`) or a relative time in the past (`7d`,
/// `12h`, `30m`, `2w`, `90s`, also written `-7d` or `7d ago`).
pub fn parse_instant(raw: &str, now: i64) -> Result<i64, String> {
    let s = raw.trim();
    if s.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<i64>()
            .map_err(|_| format!("'{raw}' is too large for unix seconds"));
    }
    let relative = s
        .strip_suffix(" ago")
        .or_else(|| s.strip_prefix('-'))
        .unwrap_or(s);
    if let Some(secs) = parse_unit_duration(relative) {
        return Ok(now - secs);
    }
    if s.len() >= 10 && s.as_bytes().get(4) == Some(&b'-') {
        return parse_rfc3339(s).ok_or_else(|| format!("'{raw}' is not a valid RFC 3339 time"));
    }
    Err(format!(
        "'{raw}' is not a time: use unix seconds (1714564800), RFC 3339 \
         (2024-05-01T12:00:00Z), a date (2024-05-01) or a relative time like 7d, 12h, 30m"
    ))
}

/// A duration in seconds: `3600`, `90s`, `30m`, `12h`, `30d`, `2w`.
pub fn parse_duration(raw: &str) -> Result<i64, String> {
    let s = raw.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<i64>()
            .map_err(|_| format!("'{raw}' is too many seconds"));
    }
    parse_unit_duration(s).ok_or_else(|| {
        format!("'{raw}' is not a duration: use seconds (3600) or 90s, 30m, 12h, 30d, 2w")
    })
}

fn parse_unit_duration(s: &str) -> Option<i64> {
    let unit = s.chars().last()?;
    let number = &s[..s.len() - unit.len_utf8()];
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = number.parse().ok()?;
    let scale = match unit {
        's' => 1,
        'm' => MINUTE,
        'h' => HOUR,
        'd' => DAY,
        'w' => WEEK,
        _ => return None,
    };
    n.checked_mul(scale)
}

fn digits(s: &str, range: std::ops::Range<usize>) -> Option<i64> {
    let part = s.get(range)?;
    if part.bytes().all(|b| b.is_ascii_digit()) {
        part.parse().ok()
    } else {
        None
    }
}

/// `YYYY-MM-DD` or `YYYY-MM-DD[T ]HH:MM[:SS[.frac]](Z|±HH:MM)`.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let (year, month, day) = (digits(s, 0..4)?, digits(s, 5..7)?, digits(s, 8..10)?);
    if b.get(7) != Some(&b'-') || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    if day > days_in_month(year, month) {
        return None;
    }
    let date = days_from_civil(year, month, day) * DAY;
    if s.len() == 10 {
        return Some(date);
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(13) != Some(&b':') {
        return None;
    }
    let (hour, minute) = (digits(s, 11..13)?, digits(s, 14..16)?);
    let mut i = 16;
    let mut second = 0;
    if b.get(i) == Some(&b':') {
        second = digits(s, 17..19)?;
        i = 19;
        if b.get(i) == Some(&b'.') {
            i += 1;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == s.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == s.len() && b.get(i + 3) == Some(&b':') => {
            let (oh, om) = (digits(s, i + 1..i + 3)?, digits(s, i + 4..i + 6)?);
            let magnitude = oh * HOUR + om * MINUTE;
            if *sign == b'+' {
                magnitude
            } else {
                -magnitude
            }
        }
        _ => return None,
    };
    Some(date + hour * HOUR + minute * MINUTE + second - offset)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// `2024-05-01T12:00:00Z`.
pub fn rfc3339(at: i64) -> String {
    let (y, m, d) = civil_from_days(at.div_euclid(DAY));
    let s = at.rem_euclid(DAY);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / HOUR,
        s % HOUR / MINUTE,
        s % MINUTE
    )
}

/// `2024-05-01 12:00` (UTC), for bucket boundaries.
pub fn short_utc(at: i64) -> String {
    let (y, m, d) = civil_from_days(at.div_euclid(DAY));
    let s = at.rem_euclid(DAY);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        s / HOUR,
        s % HOUR / MINUTE
    )
}

/// "just now", "5 minutes ago", "3 days ago", "in 2 hours".
pub fn relative(at: i64, now: i64) -> String {
    let delta = now - at;
    let span = delta.abs();
    if span < 5 {
        return "just now".to_owned();
    }
    let (n, unit) = if span < MINUTE {
        (span, "second")
    } else if span < HOUR {
        (span / MINUTE, "minute")
    } else if span < DAY {
        (span / HOUR, "hour")
    } else if span < 90 * DAY {
        // Days up to ~3 months: "expires in 45 days" says more than "in 1 month".
        (span / DAY, "day")
    } else if span < 365 * DAY {
        (span / (30 * DAY), "month")
    } else {
        (span / (365 * DAY), "year")
    };
    let plural = if n == 1 { "" } else { "s" };
    if delta > 0 {
        format!("{n} {unit}{plural} ago")
    } else {
        format!("in {n} {unit}{plural}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_714_564_800; // 2024-05-01T12:00:00Z

    #[test]
    fn instants_in_every_accepted_form() {
        assert_eq!(parse_instant("1700000000", NOW), Ok(1_700_000_000));
        assert_eq!(parse_instant("now", NOW), Ok(NOW));
        assert_eq!(parse_instant("7d", NOW), Ok(NOW - 7 * DAY));
        assert_eq!(parse_instant("-12h", NOW), Ok(NOW - 12 * HOUR));
        assert_eq!(parse_instant("30m ago", NOW), Ok(NOW - 30 * MINUTE));
        assert_eq!(parse_instant("2w", NOW), Ok(NOW - 14 * DAY));
        assert_eq!(parse_instant("2024-05-01T12:00:00Z", NOW), Ok(NOW));
        assert_eq!(parse_instant("2024-05-01T14:00:00+02:00", NOW), Ok(NOW));
        assert_eq!(parse_instant("2024-05-01T11:30:00.250-00:30", NOW), Ok(NOW));
        assert_eq!(parse_instant("2024-05-01 12:00Z", NOW), Ok(NOW));
        assert_eq!(parse_instant("2024-05-01", NOW), Ok(NOW - 12 * HOUR));
        assert_eq!(parse_instant("1970-01-01T00:00:00Z", NOW), Ok(0));
    }

    #[test]
    fn bad_instants_are_rejected() {
        for bad in [
            "",
            "yesterday",
            "7x",
            "d",
            "2024-13-01",
            "2024-02-30",
            "2024-05-01T25:00:00Z",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:00+0200",
        ] {
            assert!(parse_instant(bad, NOW).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3600"), Ok(3600));
        assert_eq!(parse_duration("30d"), Ok(30 * DAY));
        assert_eq!(parse_duration("1w"), Ok(WEEK));
        assert!(parse_duration("-1d").is_err());
        assert!(parse_duration("1y").is_err());
    }

    #[test]
    fn renderings() {
        assert_eq!(rfc3339(NOW), "2024-05-01T12:00:00Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(short_utc(NOW + 59), "2024-05-01 12:00");
        assert_eq!(relative(NOW, NOW), "just now");
        assert_eq!(relative(NOW - 3 * DAY, NOW), "3 days ago");
        assert_eq!(relative(NOW - HOUR, NOW), "1 hour ago");
        assert_eq!(relative(NOW + 2 * DAY + 5, NOW), "in 2 days");
        assert_eq!(relative(NOW - 400 * DAY, NOW), "1 year ago");
        assert_eq!(relative(NOW + 30 * DAY, NOW), "in 30 days");
        assert_eq!(relative(NOW - 120 * DAY, NOW), "4 months ago");
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000, -1, 0, 1, 11_016, 19_844, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
