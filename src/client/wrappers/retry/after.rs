//! `Retry-After` (RFC 9110 §10.2.3): a number of seconds, or an HTTP-date.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::proto::Headers;

/// The wait a response asks for with `Retry-After`, if it gives one that can be read.
///
/// A date is measured from the response's own `Date` when it has a valid one (so a clock
/// skew between server and client does not change the wait), else from `now`; a date in
/// the past asks for no wait. Negative numbers, fractions, garbage, and several fields that
/// disagree give `None` (the policy's backoff applies). Numbers too large for a `u64` read as
/// the largest wait, which the policy caps.
pub(crate) fn retry_after(headers: &Headers, now: SystemTime) -> Option<Duration> {
    let mut values = headers.get_all("retry-after");
    let first = values.next()?;
    if values.any(|v| v != first) {
        return None;
    }
    let text = std::str::from_utf8(first).ok()?.trim_matches([' ', '\t']);
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let secs = text.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs));
    }
    let at = http_date(text)?;
    let base = headers
        .get_str("date")
        .and_then(|d| http_date(d.trim()))
        .unwrap_or(now);
    Some(at.duration_since(base).unwrap_or(Duration::ZERO))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// An HTTP-date in any of its three forms (RFC 9110 §5.6.7): IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete RFC 850 form
/// (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`). The day of
/// the week must be a real name but is not checked against the date.
pub(crate) fn http_date(text: &str) -> Option<SystemTime> {
    if text.len() > 64 {
        return None;
    }
    let (weekday, rest) = text.split_once([',', ' '])?;
    let rest = rest.trim_start();
    let (day, month, year, clock) = if text.as_bytes()[weekday.len()] == b',' {
        let fields: Vec<&str> = rest.split(' ').collect();
        match fields[..] {
            // IMF-fixdate.
            [day, month, year, clock, "GMT"] if DAYS.contains(&weekday) && year.len() == 4 => {
                (day, month, number(year)?, clock)
            }
            // RFC 850: a two-digit year, read as the most recent one that is not in the
            // future (1970 to 2069: the epoch bounds it below anyway).
            [date, clock, "GMT"] if LONG_DAYS.contains(&weekday) => {
                let mut parts = date.split('-');
                let (day, month, yy) = (parts.next()?, parts.next()?, parts.next()?);
                if parts.next().is_some() || yy.len() != 2 {
                    return None;
                }
                let yy = number(yy)?;
                (
                    day,
                    month,
                    if yy < 70 { 2000 + yy } else { 1900 + yy },
                    clock,
                )
            }
            _ => return None,
        }
    } else {
        // asctime: the day is padded with a space to two characters.
        let fields: Vec<&str> = rest.split(' ').filter(|f| !f.is_empty()).collect();
        match fields[..] {
            [month, day, clock, year] if DAYS.contains(&weekday) && year.len() == 4 => {
                (day, month, number(year)?, clock)
            }
            _ => return None,
        }
    };
    if day.is_empty() || day.len() > 2 {
        return None;
    }
    let day = number(day)?;
    let month = MONTHS.iter().position(|m| *m == month)? as u64 + 1;
    let mut hms = clock.split(':');
    let (h, m, s) = (hms.next()?, hms.next()?, hms.next()?);
    if hms.next().is_some() || [h, m, s].iter().any(|f| f.len() != 2) {
        return None;
    }
    let (h, m, s) = (number(h)?, number(m)?, number(s)?);
    if !(1970..=9999).contains(&year) || day == 0 || day > days_in(month, year) {
        return None;
    }
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = days_since_epoch(year, month, day);
    let secs = days * 86_400 + h * 3600 + m * 60 + s;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Digits only (no sign, no spaces), as a number.
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 4 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in(month: u64, year: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to this date (year at least 1970).
fn days_since_epoch(year: u64, month: u64, day: u64) -> u64 {
    let years: u64 = (1970..year)
        .map(|y| if is_leap(y) { 366 } else { 365 })
        .sum();
    let months: u64 = (1..month).map(|m| days_in(m, year)).sum();
    years + months + day - 1
}

/// `time` as an IMF-fixdate (for tests and for servers written in tests).
#[cfg(test)]
pub(crate) fn format_http_date(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let (mut days, rem) = (secs / 86_400, secs % 86_400);
    let weekday = DAYS[((days + 3) % 7) as usize];
    let mut year = 1970;
    loop {
        let n = if is_leap(year) { 366 } else { 365 };
        if days < n {
            break;
        }
        days -= n;
        year += 1;
    }
    let mut month = 1;
    while days >= days_in(month, year) {
        days -= days_in(month, year);
        month += 1;
    }
    format!(
        "{weekday}, {:02} {} {year} {:02}:{:02}:{:02} GMT",
        days + 1,
        MONTHS[month as usize - 1],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn the_three_date_forms_agree() {
        // RFC 9110's example: 784111777.
        for text in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(http_date(text), Some(at(784_111_777)), "{text}");
        }
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(at(0)));
        assert_eq!(
            http_date("Tue, 29 Feb 2028 23:59:59 GMT"),
            Some(at(1_835_481_599))
        );
        for secs in [
            0,
            784_111_777,
            1_835_481_599,
            4_102_444_800,
            253_402_300_799,
        ] {
            assert_eq!(http_date(&format_http_date(at(secs))), Some(at(secs)));
        }
    }

    #[test]
    fn hostile_dates_are_refused() {
        for text in [
            "",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 6 Nov 1994 08:49:37 GMT x",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 29 Feb 1900 08:49:37 GMT",
            "Sun, 00 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, 06 Nov 99999 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37:01 GMT",
            "Sun, -6 Nov 1994 08:49:37 GMT",
            "Sun, 06 November 1994 08:49:37 GMT",
            "Funday, 06-Nov-94 08:49:37 GMT",
            "Sun, 06-Nov-94 08:49:37 GMT",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Sun Nov  6 08:49:37",
            "Sun Nov 6 08:49:37 94",
            "Sunday",
            ",",
            "Sun, 06 Nov 1994 08:49:37 GMT\u{0}",
            &"Sun, 06 Nov 1994 08:49:37 GMT ".repeat(10),
        ] {
            assert_eq!(http_date(text), None, "{text:?}");
        }
    }

    fn headers(fields: &[(&str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (k, v) in fields {
            h.append(k, v.as_bytes());
        }
        h
    }

    #[test]
    fn seconds_and_dates_give_waits() {
        let now = at(1_000_000_000);
        let wait = |fields: &[(&str, &str)]| retry_after(&headers(fields), now);
        assert_eq!(wait(&[]), None);
        assert_eq!(wait(&[("Retry-After", "0")]), Some(Duration::ZERO));
        assert_eq!(
            wait(&[("Retry-After", " 120 ")]),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            wait(&[("Retry-After", "99999999999999999999999999")]),
            Some(Duration::from_secs(u64::MAX))
        );
        for bad in ["-5", "1.5", "5s", "", "0x10", "+3", "\u{0663}", "soon"] {
            assert_eq!(wait(&[("Retry-After", bad)]), None, "{bad:?}");
        }
        // Two fields that disagree are ignored; two that agree count once.
        assert_eq!(wait(&[("Retry-After", "1"), ("Retry-After", "2")]), None);
        assert_eq!(
            wait(&[("Retry-After", "3"), ("Retry-After", "3")]),
            Some(Duration::from_secs(3))
        );
        let later = format_http_date(at(1_000_000_030));
        assert_eq!(
            wait(&[("Retry-After", &later)]),
            Some(Duration::from_secs(30))
        );
        // A date in the past asks for no wait.
        let past = format_http_date(at(999_000_000));
        assert_eq!(wait(&[("Retry-After", &past)]), Some(Duration::ZERO));
        // Measured from the server's Date when it has one: a skewed clock does not matter.
        let date = format_http_date(at(2_000_000_000));
        let target = format_http_date(at(2_000_000_005));
        assert_eq!(
            wait(&[("Date", &date), ("Retry-After", &target)]),
            Some(Duration::from_secs(5))
        );
        // An unreadable Date falls back to the local clock.
        assert_eq!(
            wait(&[("Date", "yesterday"), ("Retry-After", &later)]),
            Some(Duration::from_secs(30))
        );
    }
}
