//! Strict casts from bronze columns to typed silver columns.
//!
//! Bronze columns mostly hold literal JSON text in Arrow strings ("12.50",
//! "2024-09-01T10:00:00Z"). A flow casts them to the silver column's type, and a value that does
//! not convert is never turned into a NULL: [`cast_strict`] reports it as a [`CastFailure`] (its
//! row and its text) so the caller can quarantine the row with a reason naming the column and the
//! value. A NULL input is a NULL output and not a failure.
//!
//! The grammar accepted from strings is strict and never trims whitespace:
//!
//! | target | accepted text |
//! |---|---|
//! | STRING | anything (identity) |
//! | TINYINT, SMALLINT, INT, BIGINT | `-?[0-9]+`, within the type's range |
//! | FLOAT, DOUBLE | a JSON number, finite in the type |
//! | DECIMAL(p,s) | a JSON number, rounded half away from zero to `s` places, at most `p` digits |
//! | BOOLEAN | `true` or `false`, any case |
//! | DATE | `YYYY-MM-DD`, a real calendar date |
//! | TIMESTAMP, TIMESTAMP_NTZ | `YYYY-MM-DD[T ]hh:mm[:ss[.f{1,9}]]` then `Z`, `±hh`, `±hh:mm` or nothing |
//!
//! A JSON number is `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`. A timestamp without an
//! offset is UTC (TIMESTAMP) or the wall time as written (TIMESTAMP_NTZ); one with an offset is
//! converted to UTC for both. Fraction digits past microseconds are truncated.
//!
//! Typed (non-string) inputs go through Arrow's own cast, and each row Arrow turns into a NULL is
//! reported as a failure with the value as Arrow displays it.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanBuilder, PrimitiveArray, PrimitiveBuilder,
    StringBuilder, new_null_array,
};
use arrow::compute::{CastOptions, can_cast_types, cast_with_options};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimeUnit, TimestampMicrosecondType,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chrono::{Datelike, NaiveDate};
use strata_core::types::{UTC, type_name};

/// One value that did not cast.
#[derive(Debug, Clone, PartialEq)]
pub struct CastFailure {
    /// The row of the value in the input array.
    pub row: usize,
    /// The value as text: the string itself for string inputs, Arrow's display text otherwise.
    pub value: String,
}

/// The cast column (NULL where the input was NULL or the value failed) and the failures.
pub struct Casted {
    /// The cast column, of exactly the target type.
    pub array: ArrayRef,
    /// The values that did not cast, in row order.
    pub failures: Vec<CastFailure>,
}

/// The widest precision of a `Decimal128`.
const MAX_DECIMAL_PRECISION: u8 = 38;
/// Days from 0001-01-01 (day 1 of the common era in chrono's count) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;
const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// Is this target supported? (for validation before any data is read)
pub fn supported_target(target: &DataType) -> bool {
    match target {
        DataType::Utf8
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Float32
        | DataType::Float64
        | DataType::Boolean
        | DataType::Date32
        | DataType::Timestamp(TimeUnit::Microsecond, None) => true,
        DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) => tz.as_ref() == UTC,
        DataType::Decimal128(p, s) => {
            (1..=MAX_DECIMAL_PRECISION).contains(p) && *s >= 0 && i16::from(*s) <= i16::from(*p)
        }
        _ => false,
    }
}

/// Casts `values` to `target` strictly. Errors (Err(String)) only for an unsupported target type
/// or an unsupported input type, with a message naming the types.
pub fn cast_strict(values: &ArrayRef, target: &DataType) -> Result<Casted, String> {
    let input = values.data_type();
    if !supported_target(target) {
        return Err(format!(
            "cannot cast {} to {}: unsupported target type",
            display_type(input),
            display_type(target)
        ));
    }
    match input {
        DataType::Utf8 => cast_strings(values.as_string::<i32>().iter(), values, target),
        DataType::LargeUtf8 => cast_strings(values.as_string::<i64>().iter(), values, target),
        DataType::Utf8View => cast_strings(values.as_string_view().iter(), values, target),
        DataType::Null => Ok(Casted {
            array: new_null_array(target, values.len()),
            failures: Vec::new(),
        }),
        _ if input == target => Ok(Casted {
            array: Arc::clone(values),
            failures: Vec::new(),
        }),
        DataType::Dictionary(_, value_type) => {
            // Unpacking a dictionary into its values never fails; then cast the values.
            let unpacked = cast_with_options(values, value_type, &CastOptions::default())
                .map_err(|e| cannot_cast(input, target, &e.to_string()))?;
            cast_strict(&unpacked, target)
        }
        t if is_scalar(t) => cast_scalars(values, target),
        _ if *target == DataType::Utf8 => Ok(Casted {
            array: display_text(values, target)?,
            failures: Vec::new(),
        }),
        _ => Err(cannot_cast(input, target, "unsupported input type")),
    }
}

/// A type's name as users write it, with Arrow's name added where Strata's name alone would
/// hide why the type is not supported (a timestamp's unit or zone, a wide string).
fn display_type(t: &DataType) -> String {
    match t {
        DataType::Timestamp(..) | DataType::Date64 | DataType::LargeUtf8 | DataType::Utf8View => {
            format!("{} (Arrow {t})", type_name(t))
        }
        _ => type_name(t),
    }
}

fn cannot_cast(input: &DataType, target: &DataType, why: &str) -> String {
    format!(
        "cannot cast {} to {}: {why}",
        display_type(input),
        display_type(target)
    )
}

/// Typed inputs that go through Arrow's cast.
fn is_scalar(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
            | DataType::Boolean
            | DataType::Date32
            | DataType::Date64
            | DataType::Timestamp(..)
    )
}

/// Typed input to a supported target through Arrow's safe cast; each non-null input Arrow turns
/// into a NULL is a failure.
fn cast_scalars(values: &ArrayRef, target: &DataType) -> Result<Casted, String> {
    let input = values.data_type();
    if *target == DataType::Utf8 {
        return Ok(Casted {
            array: display_text(values, target)?,
            failures: Vec::new(),
        });
    }
    if !can_cast_types(input, target) {
        return Err(cannot_cast(
            input,
            target,
            "no conversion between these types",
        ));
    }
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    let array = cast_with_options(values, target, &options)
        .map_err(|e| cannot_cast(input, target, &e.to_string()))?;
    let mut failures = Vec::new();
    if array.null_count() > values.null_count() {
        let formatter = ArrayFormatter::try_new(values.as_ref(), &FormatOptions::default())
            .map_err(|e| cannot_cast(input, target, &e.to_string()))?;
        for row in 0..values.len() {
            if values.is_valid(row) && array.is_null(row) {
                failures.push(CastFailure {
                    row,
                    value: formatter.value(row).to_string(),
                });
            }
        }
    }
    Ok(Casted { array, failures })
}

/// Any array as STRING: each value's Arrow display text, NULL for NULL.
fn display_text(values: &ArrayRef, target: &DataType) -> Result<ArrayRef, String> {
    let formatter = ArrayFormatter::try_new(values.as_ref(), &FormatOptions::default())
        .map_err(|e| cannot_cast(values.data_type(), target, &e.to_string()))?;
    let mut builder = StringBuilder::with_capacity(values.len(), values.len() * 8);
    for row in 0..values.len() {
        if values.is_valid(row) {
            builder.append_value(formatter.value(row).to_string());
        } else {
            builder.append_null();
        }
    }
    Ok(Arc::new(builder.finish()))
}

/// Strings (of any Arrow string layout) to `target`, which is supported.
fn cast_strings<'a>(
    strings: impl Iterator<Item = Option<&'a str>>,
    values: &ArrayRef,
    target: &DataType,
) -> Result<Casted, String> {
    let len = values.len();
    let mut failures = Vec::new();
    let array: ArrayRef = match target {
        DataType::Utf8 if values.data_type() == target => Arc::clone(values),
        DataType::Utf8 => cast_with_options(values, target, &CastOptions::default())
            .map_err(|e| cannot_cast(values.data_type(), target, &e.to_string()))?,
        DataType::Int8 => Arc::new(parse_primitive::<Int8Type>(
            strings,
            len,
            &mut failures,
            parse_int,
        )),
        DataType::Int16 => Arc::new(parse_primitive::<Int16Type>(
            strings,
            len,
            &mut failures,
            parse_int,
        )),
        DataType::Int32 => Arc::new(parse_primitive::<Int32Type>(
            strings,
            len,
            &mut failures,
            parse_int,
        )),
        DataType::Int64 => Arc::new(parse_primitive::<Int64Type>(
            strings,
            len,
            &mut failures,
            parse_int,
        )),
        DataType::Float32 => Arc::new(parse_primitive::<Float32Type>(
            strings,
            len,
            &mut failures,
            |s| parse_float::<f32>(s).filter(|v| v.is_finite()),
        )),
        DataType::Float64 => Arc::new(parse_primitive::<Float64Type>(
            strings,
            len,
            &mut failures,
            |s| parse_float::<f64>(s).filter(|v| v.is_finite()),
        )),
        DataType::Decimal128(precision, scale) => Arc::new(
            parse_primitive::<Decimal128Type>(strings, len, &mut failures, |s| {
                parse_decimal(s, *precision, *scale)
            })
            .with_precision_and_scale(*precision, *scale)
            .map_err(|e| cannot_cast(values.data_type(), target, &e.to_string()))?,
        ),
        DataType::Boolean => {
            let mut builder = BooleanBuilder::with_capacity(len);
            for (row, value) in strings.enumerate() {
                match value {
                    None => builder.append_null(),
                    Some(s) => match parse_bool(s) {
                        Some(b) => builder.append_value(b),
                        None => {
                            failures.push(failure(row, s));
                            builder.append_null();
                        }
                    },
                }
            }
            Arc::new(builder.finish())
        }
        DataType::Date32 => Arc::new(parse_primitive::<Date32Type>(
            strings,
            len,
            &mut failures,
            parse_date32,
        )),
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            let array = parse_primitive::<TimestampMicrosecondType>(
                strings,
                len,
                &mut failures,
                parse_timestamp_micros,
            );
            match tz {
                Some(tz) => Arc::new(array.with_timezone(Arc::clone(tz))),
                None => Arc::new(array),
            }
        }
        _ => {
            return Err(cannot_cast(
                values.data_type(),
                target,
                "unsupported target type",
            ));
        }
    };
    Ok(Casted { array, failures })
}

fn failure(row: usize, value: &str) -> CastFailure {
    CastFailure {
        row,
        value: value.to_string(),
    }
}

/// Parses each string with `parse`; a string it refuses is a failure and a NULL.
fn parse_primitive<'a, T: ArrowPrimitiveType>(
    strings: impl Iterator<Item = Option<&'a str>>,
    len: usize,
    failures: &mut Vec<CastFailure>,
    parse: impl Fn(&str) -> Option<T::Native>,
) -> PrimitiveArray<T> {
    let mut builder = PrimitiveBuilder::<T>::with_capacity(len);
    for (row, value) in strings.enumerate() {
        match value {
            None => builder.append_null(),
            Some(s) => match parse(s) {
                Some(v) => builder.append_value(v),
                None => {
                    failures.push(failure(row, s));
                    builder.append_null();
                }
            },
        }
    }
    builder.finish()
}

/// `-?[0-9]+` within `T`'s range.
fn parse_int<T: std::str::FromStr>(s: &str) -> Option<T> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // The text is now `-?[0-9]+`, which Rust's integer parser reads exactly, range-checked.
    s.parse().ok()
}

/// A JSON number parsed by Rust's float parser (which reads every JSON number correctly rounded).
fn parse_float<F: std::str::FromStr>(s: &str) -> Option<F> {
    scan_number(s.as_bytes())?;
    s.parse().ok()
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// The parts of a JSON number `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
struct Number<'a> {
    negative: bool,
    /// The integer digits (no leading zero unless it is the single "0").
    int: &'a [u8],
    /// The fraction digits, empty without a fraction.
    frac: &'a [u8],
    exp_negative: bool,
    /// The exponent digits (any number of them, leading zeros allowed), empty without one.
    exp: &'a [u8],
}

/// The index of the first byte at or after `i` that is not an ASCII digit.
fn skip_digits(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// Splits a JSON number into its parts, or None when `b` is not exactly one JSON number.
fn scan_number(b: &[u8]) -> Option<Number<'_>> {
    let mut i = 0;
    let negative = b.first() == Some(&b'-');
    if negative {
        i += 1;
    }
    let int_start = i;
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = skip_digits(b, i + 1),
        _ => return None,
    }
    let int = &b[int_start..i];
    let mut frac: &[u8] = &[];
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = skip_digits(b, start);
        if i == start {
            return None;
        }
        frac = &b[start..i];
    }
    let mut exp_negative = false;
    let mut exp: &[u8] = &[];
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        match b.get(i) {
            Some(b'-') => {
                exp_negative = true;
                i += 1;
            }
            Some(b'+') => i += 1,
            _ => {}
        }
        let start = i;
        i = skip_digits(b, start);
        if i == start {
            return None;
        }
        exp = &b[start..i];
    }
    (i == b.len()).then_some(Number {
        negative,
        int,
        frac,
        exp_negative,
        exp,
    })
}

/// A JSON number as the unscaled value of DECIMAL(precision, scale): exact, rounded half away
/// from zero to `scale` places, None when it needs more than `precision` digits.
///
/// Works on the digits alone (never through a float), and never allocates: the exponent
/// saturates, so a huge exponent is refused (or rounds to zero) at once.
fn parse_decimal(s: &str, precision: u8, scale: i8) -> Option<i128> {
    let n = scan_number(s.as_bytes())?;
    let mut exp: i64 = 0;
    for &d in n.exp {
        exp = exp.saturating_mul(10).saturating_add(i64::from(d - b'0'));
    }
    if n.exp_negative {
        exp = -exp;
    }
    // The number is digits(int ++ frac) * 10^(exp - frac.len()); scaled, * 10^shift.
    let frac_len = i64::try_from(n.frac.len()).unwrap_or(i64::MAX);
    let shift = exp
        .saturating_sub(frac_len)
        .saturating_add(i64::from(scale));

    let digit = |i: usize| -> u8 {
        let d = if i < n.int.len() {
            n.int[i]
        } else {
            n.frac[i - n.int.len()]
        };
        d - b'0'
    };
    let total = n.int.len() + n.frac.len();
    let leading_zeros = (0..total).take_while(|&i| digit(i) == 0).count();
    let significant = total - leading_zeros;
    if significant == 0 {
        return Some(0);
    }
    let sig = |i: usize| digit(leading_zeros + i);
    let precision_digits = usize::from(precision);
    let accumulate =
        |count: usize| -> i128 { (0..count).fold(0i128, |acc, i| acc * 10 + i128::from(sig(i))) };

    let magnitude = if shift >= 0 {
        // Every digit is kept, followed by `shift` zeros.
        let zeros = usize::try_from(shift).ok()?;
        if significant > precision_digits || zeros > precision_digits - significant {
            return None;
        }
        accumulate(significant) * 10i128.pow(u32::try_from(zeros).ok()?)
    } else {
        // The last `dropped` digits go; the first of them decides the rounding.
        let dropped = usize::try_from(shift.unsigned_abs()).unwrap_or(usize::MAX);
        if dropped > significant {
            // Below a tenth of the last place: rounds to zero.
            0
        } else {
            let kept = significant - dropped;
            if kept > precision_digits {
                return None;
            }
            let rounded_up = sig(kept) >= 5;
            accumulate(kept) + i128::from(rounded_up)
        }
    };
    if magnitude >= 10i128.pow(u32::from(precision)) {
        return None;
    }
    Some(if n.negative { -magnitude } else { magnitude })
}

/// Two ASCII digits at `b[i..i + 2]` as a number.
fn two_digits(b: &[u8], i: usize) -> Option<u32> {
    match b.get(i..i + 2)? {
        [a @ b'0'..=b'9', c @ b'0'..=b'9'] => Some(u32::from(a - b'0') * 10 + u32::from(c - b'0')),
        _ => None,
    }
}

/// Exactly `YYYY-MM-DD`, a real calendar date.
fn parse_date(b: &[u8]) -> Option<NaiveDate> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = two_digits(b, 0)? * 100 + two_digits(b, 2)?;
    let month = two_digits(b, 5)?;
    let day = two_digits(b, 8)?;
    NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)
}

/// Days from 1970-01-01.
fn epoch_days(date: NaiveDate) -> i64 {
    i64::from(date.num_days_from_ce()) - UNIX_EPOCH_DAYS_FROM_CE
}

fn parse_date32(s: &str) -> Option<i32> {
    i32::try_from(epoch_days(parse_date(s.as_bytes())?)).ok()
}

/// `YYYY-MM-DD[T ]hh:mm[:ss[.f{1,9}]]` then `Z`, `±hh`, `±hh:mm` or nothing, as
/// microseconds since the epoch in UTC (an absent offset counts as UTC, which for
/// TIMESTAMP_NTZ keeps the wall time as written).
fn parse_timestamp_micros(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let date = parse_date(b.get(..10)?)?;
    if !matches!(b.get(10), Some(b'T' | b' ')) || b.get(13) != Some(&b':') {
        return None;
    }
    let hour = two_digits(b, 11)?;
    let minute = two_digits(b, 14)?;
    let mut i = 16;
    let mut second = 0;
    let mut micros: u32 = 0;
    if b.get(i) == Some(&b':') {
        second = two_digits(b, i + 1)?;
        i += 3;
        if b.get(i) == Some(&b'.') {
            let start = i + 1;
            i = skip_digits(b, start);
            let digits = i - start;
            if !(1..=9).contains(&digits) {
                return None;
            }
            // Digits past microseconds are truncated; fewer than six are padded.
            for &d in b[start..i].iter().take(6) {
                micros = micros * 10 + u32::from(d - b'0');
            }
            for _ in digits..6 {
                micros *= 10;
            }
        }
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let offset_seconds: i64 = match b.get(i) {
        None => 0,
        Some(b'Z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) => {
            let rest = &b[i + 1..];
            let (hours, minutes) = match rest.len() {
                2 => (two_digits(rest, 0)?, 0),
                5 if rest[2] == b':' => (two_digits(rest, 0)?, two_digits(rest, 3)?),
                _ => return None,
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = i64::from(hours * 3600 + minutes * 60);
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    let seconds_of_day = i64::from(hour * 3600 + minute * 60 + second) - offset_seconds;
    Some(epoch_days(date) * MICROS_PER_DAY + seconds_of_day * MICROS_PER_SECOND + i64::from(micros))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        BinaryArray, DictionaryArray, Float64Array, Int32Array, Int64Array, LargeStringArray,
        NullArray, StringArray, StringViewArray, StructArray, TimestampNanosecondArray,
    };
    use arrow::datatypes::{Field, Fields};
    use chrono::{NaiveDateTime, NaiveTime};

    fn strings(values: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(values.to_vec()))
    }

    fn one(target: &DataType, s: &str) -> Casted {
        cast_strict(&strings(&[Some(s)]), target).expect("supported cast")
    }

    /// Each input casts without failure; returns the arrays.
    fn accept(target: &DataType, s: &str) -> ArrayRef {
        let c = one(target, s);
        assert!(c.failures.is_empty(), "{s:?} to {target}: {:?}", c.failures);
        assert_eq!(c.array.data_type(), target);
        assert!(c.array.is_valid(0), "{s:?} to {target} is NULL");
        c.array
    }

    /// Each input is one failure at row 0 with its own text, and a NULL.
    fn reject(target: &DataType, inputs: &[&str]) {
        for s in inputs {
            let c = one(target, s);
            assert_eq!(
                c.failures,
                vec![CastFailure {
                    row: 0,
                    value: s.to_string()
                }],
                "{s:?} to {target} should fail"
            );
            assert!(c.array.is_null(0));
            assert_eq!(c.array.data_type(), target);
        }
    }

    fn int64(s: &str) -> i64 {
        accept(&DataType::Int64, s)
            .as_primitive::<Int64Type>()
            .value(0)
    }

    fn float64(s: &str) -> f64 {
        accept(&DataType::Float64, s)
            .as_primitive::<Float64Type>()
            .value(0)
    }

    fn decimal(s: &str, p: u8, sc: i8) -> i128 {
        accept(&DataType::Decimal128(p, sc), s)
            .as_primitive::<Decimal128Type>()
            .value(0)
    }

    fn utc() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
    }

    fn ntz() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, None)
    }

    fn ts(target: &DataType, s: &str) -> i64 {
        accept(target, s)
            .as_primitive::<TimestampMicrosecondType>()
            .value(0)
    }

    /// Microseconds since the epoch of a UTC wall time, by chrono.
    fn micros(date: &str, h: u32, m: u32, sec: u32, us: u32) -> i64 {
        let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
        NaiveDateTime::new(d, NaiveTime::from_hms_micro_opt(h, m, sec, us).unwrap())
            .and_utc()
            .timestamp_micros()
    }

    #[test]
    fn integers_accept() {
        assert_eq!(int64("0"), 0);
        assert_eq!(int64("-0"), 0);
        assert_eq!(int64("42"), 42);
        assert_eq!(int64("007"), 7);
        assert_eq!(int64("-9223372036854775808"), i64::MIN);
        assert_eq!(int64("9223372036854775807"), i64::MAX);
        let a = accept(&DataType::Int8, "-128");
        assert_eq!(a.as_primitive::<Int8Type>().value(0), -128);
        let a = accept(&DataType::Int16, "32767");
        assert_eq!(a.as_primitive::<Int16Type>().value(0), 32767);
        let a = accept(&DataType::Int32, "-2147483648");
        assert_eq!(a.as_primitive::<Int32Type>().value(0), i32::MIN);
    }

    #[test]
    fn integers_reject() {
        let bad = [
            "", "-", "+1", " 12", "12 ", "1.0", "1e3", "--1", "0x10", "1_000", "١", "12a", "- 1",
        ];
        for t in [
            DataType::Int8,
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
        ] {
            reject(&t, &bad);
        }
        reject(&DataType::Int8, &["128", "-129"]);
        reject(&DataType::Int16, &["32768"]);
        reject(&DataType::Int32, &["2147483648"]);
        reject(
            &DataType::Int64,
            &["9223372036854775808", "-9223372036854775809"],
        );
    }

    #[test]
    fn floats_accept() {
        assert_eq!(float64("12.50"), 12.5);
        assert_eq!(float64("0"), 0.0);
        assert!(float64("-0").is_sign_negative());
        assert_eq!(float64("-0.5e-3"), -0.0005);
        assert_eq!(float64("1E5"), 100_000.0);
        assert_eq!(float64("1e+2"), 100.0);
        assert_eq!(float64("1e-400"), 0.0);
        assert_eq!(float64("1.7976931348623157e308"), f64::MAX);
        let a = accept(&DataType::Float32, "3.4e38");
        assert_eq!(a.as_primitive::<Float32Type>().value(0), 3.4e38_f32);
        let a = accept(&DataType::Float32, "0.1");
        assert_eq!(a.as_primitive::<Float32Type>().value(0), 0.1_f32);
    }

    #[test]
    fn floats_reject() {
        let bad = [
            "NaN",
            "nan",
            "Infinity",
            "-Infinity",
            "inf",
            ".5",
            "5.",
            "01",
            "-01",
            "+1",
            " 1",
            "1 ",
            "",
            "-",
            "1e",
            "1e+",
            "1.e5",
            "0x1p3",
            "1,5",
            "1e400",
            "-1e400",
        ];
        reject(&DataType::Float64, &bad);
        reject(&DataType::Float32, &bad);
        reject(&DataType::Float32, &["1e39", "-3.5e38"]);
    }

    #[test]
    fn decimals_exact() {
        assert_eq!(decimal("12.50", 18, 4), 125_000);
        assert_eq!(decimal("0", 18, 4), 0);
        assert_eq!(decimal("-0", 18, 4), 0);
        assert_eq!(decimal("-12", 18, 4), -120_000);
        assert_eq!(decimal("1.5e2", 10, 2), 15_000);
        assert_eq!(decimal("1.5E+2", 10, 2), 15_000);
        assert_eq!(decimal("12345e-2", 5, 2), 12_345);
        assert_eq!(decimal("1.0e00000000000000000000000002", 5, 0), 100);
        assert_eq!(decimal("100e-2", 3, 2), 100);
        assert_eq!(
            decimal(
                "0.00000000000000000000000000000000000000000000012e46",
                10,
                2
            ),
            120
        );
        // 0.1 is exact, unlike through f64.
        assert_eq!(decimal("0.1", 38, 37), 10i128.pow(36));
        let nines = "9".repeat(38);
        assert_eq!(decimal(&nines, 38, 0), 10i128.pow(38) - 1);
        assert_eq!(decimal(&format!("-{nines}"), 38, 0), 1 - 10i128.pow(38));
        assert_eq!(
            decimal("0.99999999999999999999999999999999999999", 38, 38),
            10i128.pow(38) - 1
        );
    }

    #[test]
    fn decimals_round_half_away_from_zero() {
        assert_eq!(decimal("0.00005", 18, 4), 1);
        assert_eq!(decimal("-0.00005", 18, 4), -1);
        assert_eq!(decimal("0.00004999", 18, 4), 0);
        assert_eq!(decimal("-0.00004999", 18, 4), 0);
        assert_eq!(decimal("1.23444", 18, 4), 12_344);
        assert_eq!(decimal("1.23445", 18, 4), 12_345);
        assert_eq!(decimal("-1.23445", 18, 4), -12_345);
        assert_eq!(decimal("1.234449999999", 18, 4), 12_344);
        assert_eq!(decimal("2.5", 5, 0), 3);
        assert_eq!(decimal("-2.5", 5, 0), -3);
        assert_eq!(decimal("0.5", 1, 0), 1);
        assert_eq!(decimal("0.05", 5, 0), 0);
        assert_eq!(decimal("1.5e-1", 5, 1), 2);
        assert_eq!(decimal("-25e-1", 5, 0), -3);
        assert_eq!(decimal("9.99995", 6, 4), 100_000);
    }

    #[test]
    fn decimals_precision_overflow() {
        assert_eq!(decimal("999.99", 5, 2), 99_999);
        assert_eq!(decimal("999.994", 5, 2), 99_999);
        assert_eq!(decimal("-999.994", 5, 2), -99_999);
        let t = DataType::Decimal128(5, 2);
        reject(
            &t,
            &["1000", "-1000", "999.995", "-999.995", "1e3", "123456e-2"],
        );
        reject(&DataType::Decimal128(1, 0), &["9.5", "10"]);
        reject(
            &DataType::Decimal128(38, 0),
            &[&"9".repeat(39), &format!("{}.5", "9".repeat(38))],
        );
        reject(
            &DataType::Decimal128(38, 38),
            &["1", "0.999999999999999999999999999999999999995"],
        );
        assert_eq!(decimal("12345678901234.5", 18, 4), 123_456_789_012_345_000);
        reject(
            &DataType::Decimal128(18, 4),
            &["123456789012345", "99999999999999.99995"],
        );
    }

    #[test]
    fn decimals_huge_exponents() {
        let t = DataType::Decimal128(18, 4);
        let start = std::time::Instant::now();
        reject(
            &t,
            &[
                "1e999999999",
                "1e999999999999999999999999999999",
                "-1.5E999999999",
            ],
        );
        assert_eq!(decimal("0e999999", 18, 4), 0);
        assert_eq!(decimal("0.000e999999999999999999999", 18, 4), 0);
        assert_eq!(decimal("1e-999999999", 18, 4), 0);
        assert_eq!(decimal("-7e-999999999999999999999999999", 18, 4), 0);
        assert!(start.elapsed().as_secs() < 2);
    }

    #[test]
    fn decimals_reject_grammar() {
        reject(
            &DataType::Decimal128(18, 4),
            &[
                "NaN", "Infinity", ".5", "5.", "01", "", " 1", "1 ", "1,5", "+1", "1e", "$1",
                "1.2.3",
            ],
        );
    }

    #[test]
    fn booleans() {
        for (s, want) in [
            ("true", true),
            ("TRUE", true),
            ("True", true),
            ("false", false),
            ("False", false),
            ("fAlSe", false),
        ] {
            assert_eq!(accept(&DataType::Boolean, s).as_boolean().value(0), want);
        }
        reject(
            &DataType::Boolean,
            &[
                "1", "0", "yes", "no", "t", "f", " true", "true ", "", "truee", "null",
            ],
        );
    }

    #[test]
    fn dates() {
        let day = |s: &str| {
            accept(&DataType::Date32, s)
                .as_primitive::<Date32Type>()
                .value(0)
        };
        assert_eq!(day("1970-01-01"), 0);
        assert_eq!(day("1969-12-31"), -1);
        assert_eq!(day("2024-09-01"), 19_967);
        assert_eq!(day("2024-02-29"), 19_782);
        assert_eq!(day("0001-01-01"), -719_162);
        assert_eq!(day("9999-12-31"), 2_932_896);
        reject(
            &DataType::Date32,
            &[
                "2024-02-30",
                "2023-02-29",
                "2024-13-01",
                "2024-00-10",
                "2024-01-00",
                "2024-9-1",
                "2024-09-01T00:00:00",
                "2024-09-01 ",
                " 2024-09-01",
                "20240901",
                "2024/09/01",
                "",
                "+2024-09-01",
            ],
        );
    }

    #[test]
    fn timestamps_utc() {
        let t = utc();
        let ten = micros("2024-09-01", 10, 0, 0, 0);
        assert_eq!(ts(&t, "2024-09-01T10:00:00Z"), ten);
        assert_eq!(ts(&t, "2024-09-01 10:00:00"), ten);
        assert_eq!(ts(&t, "2024-09-01T10:00"), ten);
        assert_eq!(ts(&t, "2024-09-01T10:00Z"), ten);
        assert_eq!(ts(&t, "2024-09-01T10:00:00.000Z"), ten);
        assert_eq!(ts(&t, "1970-01-01T00:00:00Z"), 0);
        assert_eq!(ts(&t, "1969-12-31T23:59:59.5Z"), -500_000);
        assert_eq!(
            ts(&t, "2024-09-01T23:59:59.999999Z"),
            micros("2024-09-01", 23, 59, 59, 999_999)
        );
        // The array carries exactly the zone "UTC".
        let a = accept(&t, "2024-09-01T10:00:00Z");
        assert_eq!(
            a.as_primitive::<TimestampMicrosecondType>().timezone(),
            Some("UTC")
        );
    }

    #[test]
    fn timestamp_offsets() {
        let t = utc();
        let ten = micros("2024-09-01", 10, 0, 0, 0);
        assert_eq!(ts(&t, "2024-09-01T15:30:00+05:30"), ten);
        // the grammar is `Z` or `±hh[:mm]`: `±hhmm` and a lowercase `z` are failures
        reject(&t, &["2024-09-01T15:30:00+0530", "2024-09-01T10:00:00z"]);
        assert_eq!(ts(&t, "2024-09-01T15:00:00+05"), ten);
        assert_eq!(ts(&t, "2024-09-01T02:00:00-08:00"), ten);
        assert_eq!(ts(&t, "2024-09-01T02:00-08"), ten);
        assert_eq!(ts(&t, "2024-09-01T10:00:00+00:00"), ten);
        assert_eq!(ts(&t, "2024-09-01T10:00:00-00:00"), ten);
        // Crossing midnight and a date boundary.
        assert_eq!(
            ts(&t, "2024-09-01T01:00:00+05:00"),
            micros("2024-08-31", 20, 0, 0, 0)
        );
        assert_eq!(
            ts(&t, "2024-02-29T23:30:00-23:59"),
            micros("2024-03-01", 23, 29, 0, 0)
        );
    }

    #[test]
    fn timestamp_fractions() {
        let t = utc();
        let base = micros("2024-09-01", 10, 0, 0, 0);
        assert_eq!(ts(&t, "2024-09-01T10:00:00.1234567Z"), base + 123_456);
        assert_eq!(ts(&t, "2024-09-01T10:00:00.123456789Z"), base + 123_456);
        assert_eq!(ts(&t, "2024-09-01T10:00:00.999999999Z"), base + 999_999);
        assert_eq!(ts(&t, "2024-09-01T10:00:00.5"), base + 500_000);
        assert_eq!(ts(&t, "2024-09-01T10:00:00.05+00:00"), base + 50_000);
        assert_eq!(ts(&t, "2024-09-01T10:00:00.123456"), base + 123_456);
    }

    #[test]
    fn timestamps_reject() {
        let bad = [
            "2024-09-01",
            "2024-09-01T",
            "2024-09-01T10",
            "2024-09-01T10:0",
            "2024-09-01T24:00:00",
            "2024-09-01T10:60",
            "2024-09-01T10:00:60",
            "2024-09-01T10:00:00.",
            "2024-09-01T10:00:00.1234567890",
            "2024-09-01T10:00.5",
            "2024-09-01T10:00:00+24:00",
            "2024-09-01T10:00:00+05:60",
            "2024-09-01T10:00:00+5",
            "2024-09-01T10:00:00+05:3",
            "2024-09-01T10:00:00+053",
            "2024-09-01T10:00:00+05:30Z",
            "2024-09-01T10:00:00ZZ",
            "2024-09-01T10:00:00 Z",
            "2024-09-01T10:00:00UTC",
            " 2024-09-01T10:00:00Z",
            "2024-09-01T10:00:00Z ",
            "2024-02-30T00:00:00",
            "2024-09-01t10:00",
            "2024-09-01_10:00",
            "2024-09-01T1:00:00",
            "2024-09-01T10:00:00.12a",
            "",
            "2024-09-01T10:00:00+05:30:00",
        ];
        reject(&utc(), &bad);
        reject(&ntz(), &bad);
    }

    #[test]
    fn timestamps_ntz() {
        let t = ntz();
        let ten = micros("2024-09-01", 10, 0, 0, 0);
        assert_eq!(ts(&t, "2024-09-01T10:00:00"), ten);
        assert_eq!(ts(&t, "2024-09-01 10:00"), ten);
        assert_eq!(ts(&t, "2024-09-01T10:00:00Z"), ten);
        assert_eq!(ts(&t, "2024-09-01T15:30:00+05:30"), ten);
        assert_eq!(ts(&t, "2024-09-01T10:00:00.1234567"), ten + 123_456);
        let a = accept(&t, "2024-09-01T10:00:00");
        assert_eq!(
            a.as_primitive::<TimestampMicrosecondType>().timezone(),
            None
        );
    }

    #[test]
    fn null_is_not_a_failure() {
        let input = strings(&[Some("1"), None, Some("x"), None, Some("3")]);
        let c = cast_strict(&input, &DataType::Int64).unwrap();
        assert_eq!(
            c.failures,
            vec![CastFailure {
                row: 2,
                value: "x".into()
            }]
        );
        let a = c.array.as_primitive::<Int64Type>();
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            vec![Some(1), None, None, None, Some(3)]
        );
        let all_null = strings(&[None, None]);
        for t in [
            DataType::Utf8,
            DataType::Int32,
            DataType::Float64,
            DataType::Decimal128(10, 2),
            DataType::Boolean,
            DataType::Date32,
            utc(),
            ntz(),
        ] {
            let c = cast_strict(&all_null, &t).unwrap();
            assert!(c.failures.is_empty());
            assert_eq!(c.array.data_type(), &t);
            assert_eq!(c.array.null_count(), 2);
        }
    }

    #[test]
    fn failure_rows_and_values() {
        let input = strings(&[
            Some("1.5"),
            Some(" 2"),
            None,
            Some("abc"),
            Some("2.25"),
            Some(""),
            Some("1e999"),
        ]);
        let c = cast_strict(&input, &DataType::Decimal128(10, 2)).unwrap();
        let want: Vec<CastFailure> = [(1, " 2"), (3, "abc"), (5, ""), (6, "1e999")]
            .into_iter()
            .map(|(row, value)| CastFailure {
                row,
                value: value.into(),
            })
            .collect();
        assert_eq!(c.failures, want);
        let a = c.array.as_primitive::<Decimal128Type>();
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            vec![Some(150), None, None, None, Some(225), None, None]
        );
        assert_eq!(a.data_type(), &DataType::Decimal128(10, 2));
    }

    #[test]
    fn string_identity() {
        let input = strings(&[Some(" anything "), None, Some("")]);
        let c = cast_strict(&input, &DataType::Utf8).unwrap();
        assert!(c.failures.is_empty());
        assert!(Arc::ptr_eq(&c.array, &input));
    }

    #[test]
    fn large_and_view_strings() {
        let values = vec![Some("12"), None, Some("x1"), Some("-3")];
        let inputs: Vec<ArrayRef> = vec![
            Arc::new(LargeStringArray::from(values.clone())),
            Arc::new(StringViewArray::from(values.clone())),
        ];
        for input in inputs {
            let c = cast_strict(&input, &DataType::Int32).unwrap();
            assert_eq!(
                c.failures,
                vec![CastFailure {
                    row: 2,
                    value: "x1".into()
                }]
            );
            assert_eq!(
                c.array
                    .as_primitive::<Int32Type>()
                    .iter()
                    .collect::<Vec<_>>(),
                vec![Some(12), None, None, Some(-3)]
            );
            let c = cast_strict(&input, &DataType::Utf8).unwrap();
            assert!(c.failures.is_empty());
            assert_eq!(c.array.data_type(), &DataType::Utf8);
            assert_eq!(
                c.array.as_string::<i32>().iter().collect::<Vec<_>>(),
                values
            );
            let c = cast_strict(&input, &utc()).unwrap();
            assert_eq!(c.failures.len(), 3);
        }
        let view: ArrayRef = Arc::new(StringViewArray::from(vec![
            Some("a string longer than twelve bytes"),
            Some("2024-09-01T10:00:00+05:30"),
        ]));
        let c = cast_strict(&view, &utc()).unwrap();
        assert_eq!(
            c.failures,
            vec![CastFailure {
                row: 0,
                value: "a string longer than twelve bytes".into()
            }]
        );
        assert_eq!(
            c.array.as_primitive::<TimestampMicrosecondType>().value(1),
            micros("2024-09-01", 4, 30, 0, 0)
        );
    }

    #[test]
    fn dictionary_of_strings() {
        let dict: DictionaryArray<Int32Type> = vec![Some("1"), Some("bad"), None, Some("1")]
            .into_iter()
            .collect();
        let input: ArrayRef = Arc::new(dict);
        let c = cast_strict(&input, &DataType::Int64).unwrap();
        assert_eq!(
            c.failures,
            vec![CastFailure {
                row: 1,
                value: "bad".into()
            }]
        );
        assert_eq!(
            c.array
                .as_primitive::<Int64Type>()
                .iter()
                .collect::<Vec<_>>(),
            vec![Some(1), None, None, Some(1)]
        );
    }

    #[test]
    fn same_type_is_unchanged() {
        let input: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None]));
        let c = cast_strict(&input, &DataType::Int64).unwrap();
        assert!(c.failures.is_empty());
        assert!(Arc::ptr_eq(&c.array, &input));
    }

    #[test]
    fn typed_inputs_through_arrow() {
        let input: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), Some(300), None, Some(-5)]));
        let c = cast_strict(&input, &DataType::Int8).unwrap();
        assert_eq!(
            c.failures,
            vec![CastFailure {
                row: 1,
                value: "300".into()
            }]
        );
        assert_eq!(
            c.array
                .as_primitive::<Int8Type>()
                .iter()
                .collect::<Vec<_>>(),
            vec![Some(1), None, None, Some(-5)]
        );

        let input: ArrayRef = Arc::new(Float64Array::from(vec![Some(1.5), Some(f64::NAN), None]));
        let c = cast_strict(&input, &DataType::Decimal128(5, 2)).unwrap();
        assert_eq!(
            c.failures,
            vec![CastFailure {
                row: 1,
                value: "NaN".into()
            }]
        );
        assert_eq!(c.array.as_primitive::<Decimal128Type>().value(0), 150);

        let input: ArrayRef = Arc::new(
            PrimitiveArray::<Decimal128Type>::from(vec![Some(1234), Some(99)])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        );
        let c = cast_strict(&input, &DataType::Decimal128(3, 2)).unwrap();
        assert_eq!(
            c.failures,
            vec![CastFailure {
                row: 0,
                value: "12.34".into()
            }]
        );
        assert_eq!(c.array.as_primitive::<Decimal128Type>().value(1), 99);

        let input: ArrayRef = Arc::new(Int32Array::from(vec![Some(7), None]));
        let c = cast_strict(&input, &DataType::Utf8).unwrap();
        assert!(c.failures.is_empty());
        assert_eq!(
            c.array.as_string::<i32>().iter().collect::<Vec<_>>(),
            vec![Some("7"), None]
        );
    }

    #[test]
    fn timestamps_of_other_units_and_zones() {
        let ns = 1_725_184_800_123_456_789_i64; // 2024-09-01T10:00:00.123456789Z
        let input: ArrayRef =
            Arc::new(TimestampNanosecondArray::from(vec![Some(ns), None]).with_timezone("+00:00"));
        let c = cast_strict(&input, &utc()).unwrap();
        assert!(c.failures.is_empty());
        assert_eq!(c.array.data_type(), &utc());
        assert_eq!(
            c.array.as_primitive::<TimestampMicrosecondType>().value(0),
            micros("2024-09-01", 10, 0, 0, 123_456)
        );
        let c = cast_strict(&input, &ntz()).unwrap();
        assert_eq!(c.array.data_type(), &ntz());
        let c = cast_strict(&input, &DataType::Utf8).unwrap();
        assert!(
            c.array
                .as_string::<i32>()
                .value(0)
                .starts_with("2024-09-01T10:00:00.123456789")
        );
    }

    #[test]
    fn null_type_input() {
        let input: ArrayRef = Arc::new(NullArray::new(3));
        for t in [
            DataType::Int64,
            DataType::Utf8,
            utc(),
            DataType::Decimal128(10, 2),
        ] {
            let c = cast_strict(&input, &t).unwrap();
            assert!(c.failures.is_empty());
            assert_eq!(c.array.data_type(), &t);
            assert_eq!(c.array.len(), 3);
            assert_eq!(c.array.null_count(), 3);
        }
    }

    #[test]
    fn other_inputs() {
        let fields = Fields::from(vec![Field::new("a", DataType::Int32, true)]);
        let child: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), Some(2)]));
        let input: ArrayRef = Arc::new(StructArray::new(fields, vec![child], None));
        let c = cast_strict(&input, &DataType::Utf8).unwrap();
        assert!(c.failures.is_empty());
        assert_eq!(c.array.as_string::<i32>().value(0), "{a: 1}");
        let err = cast_strict(&input, &DataType::Int64).err().unwrap();
        assert!(
            err.contains("STRUCT<a: INT>") && err.contains("BIGINT"),
            "{err}"
        );

        let input: ArrayRef = Arc::new(BinaryArray::from(vec![Some(&b"ab"[..]), None]));
        let c = cast_strict(&input, &DataType::Utf8).unwrap();
        assert_eq!(
            c.array.as_string::<i32>().iter().collect::<Vec<_>>(),
            vec![Some("6162"), None]
        );
        let err = cast_strict(&input, &DataType::Decimal128(18, 4))
            .err()
            .unwrap();
        assert!(
            err.contains("BINARY") && err.contains("DECIMAL(18,4)"),
            "{err}"
        );
    }

    #[test]
    fn unsupported_targets() {
        for t in [
            DataType::Utf8,
            DataType::Int8,
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
            DataType::Float32,
            DataType::Float64,
            DataType::Boolean,
            DataType::Date32,
            DataType::Decimal128(1, 0),
            DataType::Decimal128(38, 38),
            DataType::Decimal128(18, 4),
            utc(),
            ntz(),
        ] {
            assert!(supported_target(&t), "{t}");
        }
        let list = DataType::List(Arc::new(Field::new("element", DataType::Int64, true)));
        for t in [
            DataType::Decimal128(10, 12),
            DataType::Decimal128(0, 0),
            DataType::Decimal128(10, -2),
            DataType::Timestamp(TimeUnit::Second, Some(UTC.into())),
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            DataType::LargeUtf8,
            DataType::Utf8View,
            DataType::Binary,
            DataType::UInt64,
            DataType::Date64,
            list.clone(),
        ] {
            assert!(!supported_target(&t), "{t}");
        }
        let input = strings(&[Some("1")]);
        let err = cast_strict(&input, &list).err().unwrap();
        assert!(
            err.contains("STRING") && err.contains("ARRAY<BIGINT>"),
            "{err}"
        );
        let err = cast_strict(&input, &DataType::Decimal128(10, 12))
            .err()
            .unwrap();
        assert!(err.contains("DECIMAL(10,12)"), "{err}");
    }

    #[test]
    fn incompatible_typed_input() {
        let input: ArrayRef = Arc::new(arrow::array::BooleanArray::from(vec![Some(true)]));
        let err = cast_strict(&input, &DataType::Date32).err().unwrap();
        assert!(err.contains("BOOLEAN") && err.contains("DATE"), "{err}");
    }
}
