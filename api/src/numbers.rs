//! Numbers as clients write them, read the same way on HTTP and on the
//! queue: JSON has one number type, so a count may arrive as `3.0`.

/// Reads a count that JSON Schema calls an integer: `3` and also `3.0`
/// (JSON has one number type, and clients that think in floats send the
/// latter). A fraction, a negative or a value past `u32` is refused.
pub(crate) fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let number = <serde_json::Number as serde::Deserialize>::deserialize(deserializer)?;
    if let Some(n) = number.as_u64() {
        return u32::try_from(n).map_err(|_| serde::de::Error::custom(format!("{n} is too large")));
    }
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => Ok(f as u32),
        _ => Err(serde::de::Error::custom(format!("expected a whole number, got {number}"))),
    }
}

/// A signed integer that may be written as `7.0` (see [`whole_number`]).
pub(crate) fn whole_i64<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let number = <serde_json::Number as serde::Deserialize>::deserialize(deserializer)?;
    if let Some(n) = number.as_i64() {
        return Ok(n);
    }
    match number.as_f64() {
        // A float at ±2^63 may be an integer past i64 rounded onto the
        // boundary, so the boundary itself is refused too.
        Some(f) if f.fract() == 0.0 && f > -(2f64.powi(63)) && f < 2f64.powi(63) => Ok(f as i64),
        _ => Err(serde::de::Error::custom(format!("expected a whole number, got {number}"))),
    }
}

/// An optional [`whole_i64`].
pub(crate) fn optional_whole_i64<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole_i64")] i64);
    Ok(<Option<Whole> as serde::Deserialize>::deserialize(deserializer)?.map(|w| w.0))
}

/// [`whole_number`], or 1 when absent.
pub(crate) fn one() -> u32 {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_may_be_written_as_floats() {
        #[derive(serde::Deserialize)]
        struct Q {
            #[serde(deserialize_with = "whole_number")]
            quantity: u32,
        }
        let read = |text: &str| serde_json::from_str::<Q>(text).map(|q| q.quantity);
        assert_eq!(read(r#"{"quantity": 3}"#).unwrap(), 3);
        assert_eq!(read(r#"{"quantity": 3.0}"#).unwrap(), 3);
        #[derive(serde::Deserialize)]
        struct T {
            #[serde(deserialize_with = "whole_i64")]
            at: i64,
        }
        let at = |text: &str| serde_json::from_str::<T>(text).map(|t| t.at);
        assert_eq!(at(r#"{"at": -5.0}"#).unwrap(), -5);
        assert!(at(r#"{"at": -9223372036854775809}"#).is_err(), "past i64 is refused, not rounded");
        for bad in [r#"{"quantity": 3.5}"#, r#"{"quantity": -1}"#, r#"{"quantity": 1e12}"#, r#"{"quantity": "3"}"#] {
            assert!(read(bad).is_err(), "{bad} must be refused");
        }
    }
}
