//! The sessions' memory and rows: checked sessions remembered for a few
//! seconds, each key's recent sign-ins, and the `web_sessions` SQL. The
//! cookie and the routes are `session`'s.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::Row;

use crate::auth::{KeyKind, Principal};
use crate::store::{Store, StoreError};

/// How long a checked session is trusted without reading its row again:
/// a sign-out on another replica, or a revoked key, takes effect within it.
const REMEMBER_FOR: Duration = Duration::from_secs(5);

/// A session as its row holds it.
#[derive(Debug, Clone)]
pub(super) struct SessionRow {
    pub(super) principal: Principal,
    pub(super) csrf_token: String,
    pub(super) expires_at_ms: i64,
}

/// Checked sessions, remembered for a few seconds, and each key's recent
/// sign-ins.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    remembered: Mutex<HashMap<String, (SessionRow, Instant)>>,
    sign_ins: Mutex<HashMap<String, (Instant, u32)>>,
}

/// One minute: the window sign-ins are counted in.
const SIGN_IN_WINDOW: Duration = Duration::from_secs(60);

/// Keys whose sign-in windows are kept before the ended ones are dropped.
const SIGN_IN_KEYS_KEPT: usize = 10_000;

impl Sessions {
    /// Counts a sign-in of `key_id`; the seconds to wait when the key has
    /// had `per_minute` already in its current minute. Every sign-in writes
    /// a row, so a flood of them would take the database's write lock from
    /// everyone else.
    pub(super) fn admit_sign_in(&self, key_id: &str, per_minute: u32, now: Instant) -> Result<(), u64> {
        let mut sign_ins = self.sign_ins.lock().expect("sign-in count lock");
        if sign_ins.len() >= SIGN_IN_KEYS_KEPT {
            sign_ins.retain(|_, (start, _)| now.duration_since(*start) < SIGN_IN_WINDOW);
        }
        let (start, count) = sign_ins.entry(key_id.to_string()).or_insert((now, 0));
        if now.duration_since(*start) >= SIGN_IN_WINDOW {
            (*start, *count) = (now, 0);
        }
        if *count >= per_minute {
            return Err(SIGN_IN_WINDOW.saturating_sub(now.duration_since(*start)).as_secs().max(1));
        }
        *count += 1;
        Ok(())
    }

    pub(super) async fn lookup(
        &self,
        store: &Store,
        token_sha256: &str,
        now: i64,
    ) -> Result<Option<SessionRow>, StoreError> {
        let remembered = self.remembered.lock().expect("session cache lock").get(token_sha256).cloned();
        if let Some((row, at)) = remembered
            && at.elapsed() < REMEMBER_FOR
        {
            return Ok((row.expires_at_ms > now).then_some(row));
        }
        let row = store.live_session(token_sha256, now).await?;
        let mut remembered = self.remembered.lock().expect("session cache lock");
        match &row {
            Some(row) => {
                if remembered.len() > 10_000 {
                    remembered.clear();
                }
                remembered.insert(token_sha256.to_string(), (row.clone(), Instant::now()));
            }
            None => {
                remembered.remove(token_sha256);
            }
        }
        Ok(row)
    }

    pub(super) fn forget(&self, token_sha256: &str) {
        self.remembered.lock().expect("session cache lock").remove(token_sha256);
    }
}

impl Store {
    /// Stores a new session; beyond `max_per_key` live sessions of its key,
    /// the oldest are ended.
    pub(super) async fn insert_session(
        &self,
        token_sha256: &str,
        row: &SessionRow,
        now: i64,
        max_per_key: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO web_sessions (token_sha256, key_id, csrf_token, created_at_ms, expires_at_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_sha256)
        .bind(&row.principal.key_id)
        .bind(&row.csrf_token)
        .bind(now)
        .bind(row.expires_at_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE web_sessions SET revoked_at_ms = $2 \
             WHERE key_id = $1 AND revoked_at_ms IS NULL AND expires_at_ms > $2 \
               AND (SELECT COUNT(*) FROM web_sessions n \
                    WHERE n.key_id = $1 AND n.revoked_at_ms IS NULL AND n.expires_at_ms > $2 \
                      AND (n.created_at_ms > web_sessions.created_at_ms \
                           OR (n.created_at_ms = web_sessions.created_at_ms \
                               AND n.token_sha256 > web_sessions.token_sha256))) >= $3",
        )
        .bind(&row.principal.key_id)
        .bind(now)
        .bind(max_per_key.max(1))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The session, if it has not expired, been ended or lost its key.
    pub(super) async fn live_session(&self, token_sha256: &str, now: i64) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(
            "SELECT s.csrf_token, s.expires_at_ms, k.key_id, k.kind, k.name FROM web_sessions s \
             JOIN api_keys k ON k.key_id = s.key_id \
             WHERE s.token_sha256 = $1 AND s.revoked_at_ms IS NULL AND s.expires_at_ms > $2 \
               AND k.revoked_at_ms IS NULL",
        )
        .bind(token_sha256)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let kind: String = row.try_get("kind")?;
        let Some(kind) = KeyKind::parse(&kind) else { return Ok(None) };
        Ok(Some(SessionRow {
            principal: Principal { key_id: row.try_get("key_id")?, kind, name: row.try_get("name")? },
            csrf_token: row.try_get("csrf_token")?,
            expires_at_ms: row.try_get("expires_at_ms")?,
        }))
    }

    pub(super) async fn revoke_session(&self, token_sha256: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE web_sessions SET revoked_at_ms = $2 WHERE token_sha256 = $1 AND revoked_at_ms IS NULL")
            .bind(token_sha256)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn delete_sessions_before(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM web_sessions WHERE expires_at_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_signs_in_a_bounded_number_of_times_a_minute() {
        let sessions = Sessions::default();
        let start = Instant::now();
        assert_eq!(sessions.admit_sign_in("ada", 2, start), Ok(()));
        assert_eq!(sessions.admit_sign_in("ada", 2, start + Duration::from_secs(1)), Ok(()));
        assert_eq!(sessions.admit_sign_in("ada", 2, start + Duration::from_secs(15)), Err(45), "wait for the window");
        assert_eq!(sessions.admit_sign_in("bob", 2, start + Duration::from_secs(15)), Ok(()), "another key");
        assert_eq!(sessions.admit_sign_in("ada", 2, start + Duration::from_secs(60)), Ok(()), "a new minute");
    }
}
