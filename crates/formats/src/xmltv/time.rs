//! XMLTV times: `YYYYMMDDhhmmss ±HHMM`.
//!
//! The merge never rewrites times (they are copied as written, offset and
//! all); this reading exists for callers that need the instant, such as a
//! "now and next" view or tests that check offsets survived.

/// An XMLTV time read as an instant plus the offset it was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    /// Seconds since the Unix epoch (UTC). A time without offset is taken as UTC.
    pub unix: i64,
    /// The offset as written, in minutes east of UTC (`+0530` → 330,
    /// `-0330` → -210); `None` when the time has none.
    pub offset_minutes: Option<i32>,
}

/// Reads an XMLTV time. The date may be cut short after the day, hour or
/// minute (the rest is zero); the offset is `+HHMM`, `-HHMM`, `+HH:MM`, `Z`,
/// `UTC` or `GMT`, or absent. `None` for anything else.
pub fn parse_time(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if !(8..=14).contains(&digits) || digits % 2 != 0 {
        return None;
    }
    let (stamp, rest) = s.split_at(digits);
    let num = |from: usize| -> Option<i64> {
        match stamp.get(from..from + 2) {
            Some(d) => d.parse().ok(),
            None => Some(0),
        }
    };
    let year: i64 = stamp[..4].parse().ok()?;
    let (month, day) = (num(4)?, num(6)?);
    let (hour, minute, second) = (num(8)?, num(10)?, num(12)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let offset_minutes = parse_offset(rest.trim())?;
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    // A day the month does not have (Feb 30) is junk, not the next month.
    let date = time::Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    let days = i64::from(
        date.to_julian_day() - time::Date::from_calendar_date(1970, time::Month::January, 1).ok()?.to_julian_day(),
    );
    let local = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(Timestamp { unix: local - i64::from(offset_minutes.unwrap_or(0)) * 60, offset_minutes })
}

/// `Some(None)` for no offset, `Some(Some(minutes))` for a valid one, `None`
/// for junk.
fn parse_offset(s: &str) -> Option<Option<i32>> {
    if s.is_empty() {
        return Some(None);
    }
    if ["Z", "UTC", "GMT"].iter().any(|z| s.eq_ignore_ascii_case(z)) {
        return Some(Some(0));
    }
    let sign = match s.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let body: String = s[1..].chars().filter(|c| *c != ':').collect();
    if body.len() != 4 || !body.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = body[..2].parse().ok()?;
    let minutes: i32 = body[2..].parse().ok()?;
    if hours > 14 || minutes > 59 {
        return None;
    }
    Some(Some(sign * (hours * 60 + minutes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_of_all_kinds() {
        let utc = parse_time("20221129000000 +0000").unwrap();
        assert_eq!(utc, Timestamp { unix: 1_669_680_000, offset_minutes: Some(0) });
        let t = parse_time("20221129000000 -0300").unwrap();
        assert_eq!((t.unix - utc.unix, t.offset_minutes), (3 * 3600, Some(-180)));
        let t = parse_time("20221129000000 +0530").unwrap();
        assert_eq!((t.unix - utc.unix, t.offset_minutes), (-(5 * 3600 + 1800), Some(330)));
        let t = parse_time("20221129000000 -0330").unwrap();
        assert_eq!(t.offset_minutes, Some(-210));
        let t = parse_time("20221129000000 +05:45").unwrap();
        assert_eq!(t.offset_minutes, Some(345));
        assert_eq!(parse_time("20221129000000").unwrap(), Timestamp { unix: utc.unix, offset_minutes: None });
        assert_eq!(parse_time("20221129000000 Z").unwrap().offset_minutes, Some(0));
        assert_eq!(parse_time("202211290000").unwrap().unix, utc.unix);
        assert_eq!(parse_time("20221129").unwrap().unix, utc.unix);
    }

    #[test]
    fn junk_is_none() {
        for bad in ["", "2022", "2022112900000", "20221329000000", "20221129250000", "20221129000000 +5", "x", "+0100"]
        {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn calendar() {
        assert_eq!(parse_time("19700101000000").unwrap().unix, 0);
        assert_eq!(parse_time("20000301").unwrap().unix, 11_017 * 86_400);
        assert_eq!(parse_time("19691231").unwrap().unix, -86_400);
        assert_eq!(parse_time("20240229120000 +0000").unwrap().unix, 1_709_208_000);
        // Days a month does not have.
        assert_eq!(parse_time("20230229120000 +0000"), None);
        assert_eq!(parse_time("20240431"), None);
    }
}
