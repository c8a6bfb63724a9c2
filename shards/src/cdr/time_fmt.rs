//! RFC 3339 UTC timestamps from unix milliseconds and back, without a date
//! crate (Howard Hinnant's civil-from-days algorithm).

/// `2026-11-23T23:12:05.123Z` for unix milliseconds (years past 9999 wrap:
/// the field is four digits wide). Written digit by digit: every CDR has
/// four of these, and `format!` cost more than the rest of the record.
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let mut out = *b"0000-00-00T00:00:00.000Z";
    put_digits(&mut out[0..4], y.unsigned_abs());
    put_digits(&mut out[5..7], u64::from(m));
    put_digits(&mut out[8..10], u64::from(d));
    put_digits(&mut out[11..13], rem / 3600);
    put_digits(&mut out[14..16], (rem / 60) % 60);
    put_digits(&mut out[17..19], rem % 60);
    put_digits(&mut out[20..23], unix_ms % 1000);
    out.iter().map(|&b| char::from(b)).collect()
}

/// Writes the low `field.len()` decimal digits of `n`, zero-padded.
fn put_digits(field: &mut [u8], mut n: u64) {
    for slot in field.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// `YYYYMMDD` of unix milliseconds (recording and archive folders).
pub fn yyyymmdd(unix_ms: u64) -> String {
    let (y, m, d) = civil_from_days((unix_ms / 1000 / 86_400) as i64);
    format!("{y:04}{m:02}{d:02}")
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)` or a plain unix-seconds
/// number into unix milliseconds.
pub fn parse_time(text: &str) -> Option<u64> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<u64>().ok().map(|s| s.saturating_mul(1000));
    }
    let b = t.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<u32>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &t[19..];
    let mut ms = 0u64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            return None;
        }
        let mut padded = digits.clone();
        padded.truncate(3);
        while padded.len() < 3 {
            padded.push('0');
        }
        ms = padded.parse().ok()?;
        rest = &frac[digits.len()..];
    }
    let offset_secs: i64 = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let oh: i64 = o[1..3].parse().ok()?;
            let om: i64 = o[4..6].parse().ok()?;
            let v = oh * 3600 + om * 60;
            if o.starts_with('+') {
                v
            } else {
                -v
            }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(y), mo, d);
    let secs =
        days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s) - offset_secs;
    u64::try_from(secs).ok().map(|s| s * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_795_475_525_123), "2026-11-23T23:12:05.123Z");
        assert_eq!(yyyymmdd(1_795_475_525_123), "20261123");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        for ms in [0, 951_782_400_000, 1_795_475_525_123, 4_102_444_800_999] {
            assert_eq!(parse_time(&rfc3339_ms(ms)), Some(ms));
        }
        assert_eq!(parse_time("1795475525"), Some(1_795_475_525_000));
        assert_eq!(
            parse_time("2026-11-24T00:12:05+01:00"),
            Some(1_795_475_525_000)
        );
        assert_eq!(parse_time("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time(""), None);
    }

    #[test]
    fn digit_by_digit_matches_format_across_the_four_digit_years() {
        let reference = |unix_ms: u64| {
            let secs = unix_ms / 1000;
            let (y, m, d) = civil_from_days((secs / 86_400) as i64);
            let rem = secs % 86_400;
            format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
                rem / 3600,
                (rem / 60) % 60,
                rem % 60,
                unix_ms % 1000
            )
        };
        // 9999-12-31T23:59:59.999Z is the last instant four digits hold.
        let last = 253_402_300_799_999u64;
        let mut ms = 0u64;
        while ms <= last {
            assert_eq!(rfc3339_ms(ms), reference(ms), "{ms}");
            ms += 7_777_777_777 + ms % 997;
        }
        assert_eq!(rfc3339_ms(last), "9999-12-31T23:59:59.999Z");
    }
}
