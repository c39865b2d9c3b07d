//! Timestamp literals as Strata reads them: an instant; no zone means UTC.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::error::{Error, Result};

/// Parses `2024-09-01 12:00:00[.fff][Z|±hh:mm]`, the same with `T`, or a date (midnight UTC).
pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%dT%H:%M:%S%.f%#z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(t, fmt) {
            return Ok(dt.with_timezone(&Utc));
        }
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(dt.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    Err(Error::InvalidInput(format!(
        "'{text}' is not a timestamp: write for example '2024-09-01 12:00:00' (UTC) or \
         '2024-09-01T12:00:00+02:00'"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        let a = parse_timestamp("2024-09-01 12:00:00").unwrap();
        assert_eq!(a.to_rfc3339(), "2024-09-01T12:00:00+00:00");
        assert_eq!(parse_timestamp("2024-09-01T14:00:00+02:00").unwrap(), a);
        assert_eq!(parse_timestamp("2024-09-01 12:00:00Z").unwrap(), a);
        assert_eq!(
            parse_timestamp("2024-09-01").unwrap().to_rfc3339(),
            "2024-09-01T00:00:00+00:00"
        );
        assert!(parse_timestamp("yesterday").is_err());
    }
}
