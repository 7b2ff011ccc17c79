//! How values are bound through sqlx's `Any` driver where its own encoding
//! is not enough: enums stored as text columns (statuses, lanes, failure
//! kinds), with one encode and decode for all of them (a value is bound as
//! itself and read back typed, and a stored word this build does not know is
//! a decode error naming it, never a silent default); and nullable floats
//! ([`Float`]), which the driver would type wrongly on PostgreSQL.

use sqlx::any::{AnyTypeInfo, AnyValueRef};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Any, Database, Decode, Encode, Type};

/// An enum kept in a text column under fixed words.
pub trait TextColumn: Sized + Copy {
    /// What a value is, for the error on a word that names none.
    const WHAT: &'static str;
    /// The word it is stored as.
    fn word(self) -> &'static str;
    /// The value a stored word names.
    fn from_word(word: &str) -> Option<Self>;
}

/// A [`TextColumn`] value as sqlx binds and reads it. A wrapper, so enums
/// of other crates (the scheduler's lanes and failure kinds) are stored the
/// same way as this crate's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text<T>(pub T);

impl<T: TextColumn> Type<Any> for Text<T> {
    fn type_info() -> AnyTypeInfo {
        <String as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <String as Type<Any>>::compatible(ty)
    }
}

impl<T: TextColumn> Encode<'_, Any> for Text<T> {
    fn encode_by_ref(&self, buf: &mut <Any as Database>::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <String as Encode<'_, Any>>::encode(self.0.word().to_string(), buf)
    }
}

impl<'r, T: TextColumn> Decode<'r, Any> for Text<T> {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        let word = <&str as Decode<'r, Any>>::decode(value)?;
        T::from_word(word).map(Text).ok_or_else(|| format!("`{word}` is not {}", T::WHAT).into())
    }
}

/// A nullable `f64` to bind. sqlx 0.9.0's `Any` driver sends a NULL `f64`
/// to PostgreSQL as a `float4` (the `Real` and `Double` arms of
/// `AnyArguments::convert_into` are swapped, transact-rs/sqlx#4284). A
/// statement is prepared once per connection with the types of its first
/// run, so one first run with a NULL (an order of parts has no size) makes
/// every later run of it with a number (`float8`) fail with "incorrect
/// binary data format". A NULL bound through `Float` goes as sqlx sends a
/// NULL `f32`, which the same swap types `float8`. The store test
/// `a_nullable_float_binds_as_null_and_as_a_number_on_one_connection` fails
/// the day sqlx mends the swap, and this goes back to a plain `Option<f64>`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Float(pub Option<f64>);

impl Type<Any> for Float {
    fn type_info() -> AnyTypeInfo {
        <f64 as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <f64 as Type<Any>>::compatible(ty)
    }
}

impl Encode<'_, Any> for Float {
    fn encode_by_ref(&self, buf: &mut <Any as Database>::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
        match self.0 {
            Some(value) => <f64 as Encode<'_, Any>>::encode(value, buf),
            None => <Option<f32> as Encode<'_, Any>>::encode(None, buf),
        }
    }
}

impl TextColumn for scheduler::Lane {
    const WHAT: &'static str = "a lane";

    fn word(self) -> &'static str {
        self.as_str()
    }

    fn from_word(word: &str) -> Option<Self> {
        Self::parse(word)
    }
}

impl TextColumn for scheduler::FailureKind {
    const WHAT: &'static str = "a failure kind";

    fn word(self) -> &'static str {
        self.as_str()
    }

    /// A kind a newer worker stored, unknown to this build, reads as
    /// `Other`: its message still says what happened.
    fn from_word(word: &str) -> Option<Self> {
        Some(Self::parse(word))
    }
}

impl TextColumn for super::JobStatus {
    const WHAT: &'static str = "a job status";

    fn word(self) -> &'static str {
        self.as_str()
    }

    fn from_word(word: &str) -> Option<Self> {
        Self::parse(word)
    }
}

impl TextColumn for crate::orders::status::OrderStatus {
    const WHAT: &'static str = "an order status";

    fn word(self) -> &'static str {
        self.as_str()
    }

    fn from_word(word: &str) -> Option<Self> {
        Self::parse(word)
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::*;
    use crate::orders::status::OrderStatus;

    #[tokio::test]
    async fn a_stored_word_reads_back_typed_and_an_unknown_one_is_an_error_naming_it() {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect("sqlite::memory:").await.unwrap();
        let row = sqlx::query("SELECT $1 AS status, 'SHIPPED_TWICE' AS odd, 'fast' AS lane, 'from_the_future' AS kind")
            .bind(Text(OrderStatus::PricingFailed))
            .fetch_one(&pool)
            .await
            .unwrap();
        let Text(status) = row.try_get::<Text<OrderStatus>, _>("status").unwrap();
        assert_eq!(status, OrderStatus::PricingFailed);
        let error = row.try_get::<Text<OrderStatus>, _>("odd").unwrap_err().to_string();
        assert!(error.contains("`SHIPPED_TWICE` is not an order status"), "{error}");
        assert_eq!(row.try_get::<Text<scheduler::Lane>, _>("lane").unwrap(), Text(scheduler::Lane::Fast));
        assert!(row.try_get::<Text<scheduler::Lane>, _>("odd").is_err());
        // A newer worker's failure kind is kept as `Other`, not refused.
        let Text(kind) = row.try_get::<Text<scheduler::FailureKind>, _>("kind").unwrap();
        assert_eq!(kind, scheduler::FailureKind::Other);
    }
}
