//! Who is calling: API keys, minted from the command line, sent as
//! `Authorization: Bearer farm_<kind>_<key id>.<secret>`.
//!
//! Only the SHA-256 of a key's secret is stored; a presented secret is hashed
//! and compared in constant time, so neither the database nor the time a
//! comparison takes gives the secret away. The secret is 256 random bits, so
//! a fast hash is enough (a slow password hash protects guessable secrets).
//! Verified keys are remembered for a few seconds, so a busy operator page
//! does not cost a database round trip per request; revoking a key takes
//! effect within that time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::store::{KeyRow, Store, StoreError};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// An outside seller: creates orders and sees only its own.
    Seller,
    /// A factory operator: the order list, taking and finishing orders.
    Operator,
    /// The CRM: status events.
    Crm,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Seller => "seller",
            KeyKind::Operator => "operator",
            KeyKind::Crm => "crm",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "seller" => Some(KeyKind::Seller),
            "operator" => Some(KeyKind::Operator),
            "crm" => Some(KeyKind::Crm),
            _ => None,
        }
    }
}

/// The caller of a request, once its key checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub kind: KeyKind,
    /// The seller's, operator's or CRM's name, as minted.
    pub name: String,
}

/// A valid key of a kind that may not do this; HTTP answers it 403.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotAllowed(pub String);

impl Principal {
    /// Refuses a caller whose key is of none of `kinds`.
    pub fn require(&self, kinds: &[KeyKind]) -> Result<(), NotAllowed> {
        if kinds.contains(&self.kind) {
            Ok(())
        } else {
            let wanted: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            Err(NotAllowed(format!(
                "this needs {} key; yours is {} key",
                with_article(&wanted.join(" or ")),
                with_article(self.kind.as_str())
            )))
        }
    }
}

fn with_article(word: &str) -> String {
    let article = if word.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    format!("{article} {word}")
}

/// A new key: the row to store and the token to hand out once.
#[derive(Debug)]
pub struct MintedKey {
    pub row: KeyRow,
    pub token: String,
}

/// Makes a key of `kind` for `name`.
pub fn mint(kind: KeyKind, name: &str, now_ms: i64) -> MintedKey {
    // uuid v4 draws from the operating system's CSPRNG: 122 random bits each.
    let key_id: String = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
    let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let row = KeyRow {
        key_id: key_id.clone(),
        kind: kind.as_str().to_string(),
        name: name.to_string(),
        secret_sha256: hex_sha256(secret.as_bytes()),
        created_at_ms: now_ms,
        revoked_at_ms: None,
    };
    MintedKey { row, token: format!("farm_{}_{key_id}.{secret}", kind.as_str()) }
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal, in time that depends only on the length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `farm_<kind>_<key id>.<secret>`, split.
fn parse_token(token: &str) -> Option<(KeyKind, &str, &str)> {
    let rest = token.strip_prefix("farm_")?;
    let (kind, rest) = rest.split_once('_')?;
    let (key_id, secret) = rest.split_once('.')?;
    let kind = KeyKind::parse(kind)?;
    let plausible = !key_id.is_empty() && !secret.is_empty() && key_id.len() <= 64 && secret.len() <= 256;
    plausible.then_some((kind, key_id, secret))
}

/// How long a verified key is trusted without asking the database again.
const REMEMBER_FOR: Duration = Duration::from_secs(10);

/// Checks tokens against the stored keys.
#[derive(Debug, Default)]
pub struct Verifier {
    remembered: Mutex<HashMap<String, (Principal, String, Instant)>>,
}

impl Verifier {
    pub async fn verify(&self, store: &Store, token: &str) -> Result<Option<Principal>, StoreError> {
        let Some((kind, key_id, secret)) = parse_token(token) else { return Ok(None) };
        let presented = hex_sha256(secret.as_bytes());
        if let Some((principal, hash, at)) = self.remembered.lock().expect("auth cache lock").get(key_id).cloned()
            && at.elapsed() < REMEMBER_FOR
        {
            return Ok(constant_time_eq(hash.as_bytes(), presented.as_bytes()).then_some(principal));
        }
        let Some(row) = store.key(key_id).await? else { return Ok(None) };
        let valid = row.revoked_at_ms.is_none()
            && row.kind == kind.as_str()
            && constant_time_eq(row.secret_sha256.as_bytes(), presented.as_bytes());
        if !valid {
            return Ok(None);
        }
        let principal = Principal { key_id: row.key_id.clone(), kind, name: row.name.clone() };
        let mut remembered = self.remembered.lock().expect("auth cache lock");
        if remembered.len() > 10_000 {
            remembered.clear();
        }
        remembered.insert(row.key_id, (principal.clone(), row.secret_sha256, Instant::now()));
        Ok(Some(principal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_parses_back_to_its_key_and_its_secret_hash() {
        let minted = mint(KeyKind::Operator, "Ada", 1);
        let (kind, key_id, secret) = parse_token(&minted.token).unwrap();
        assert_eq!((kind, key_id), (KeyKind::Operator, minted.row.key_id.as_str()));
        assert_eq!(hex_sha256(secret.as_bytes()), minted.row.secret_sha256);
        assert!(!minted.row.secret_sha256.contains(secret), "the secret is not stored");
        assert_ne!(mint(KeyKind::Operator, "Ada", 1).token, minted.token, "every key is new");
        for bad in ["", "farm_", "farm_seller_abc", "farm_admin_abc.def", "bearer farm_seller_a.b", "farm_seller_.x"] {
            assert!(parse_token(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn comparison_needs_every_byte() {
        assert!(constant_time_eq(b"abcd", b"abcd"));
        assert!(!constant_time_eq(b"abcd", b"abce"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
    }
}
