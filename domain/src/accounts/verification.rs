//! Proof of an email address.
//!
//! An address typed at sign-up is a claim. It is proved by opening a link
//! mailed to it (a random token; only its SHA-256 is stored, valid 24 hours,
//! once). Until then it grants nothing and blocks nobody: addresses are
//! unique only among verified ones, and when one account proves an address,
//! other accounts' unproven claims on it are dropped, so whoever typed
//! someone else's address first cannot lock the owner out.

use sqlx::AnyPool;

/// How long a confirmation link works.
pub const LIFETIME_MS: i64 = 24 * 3600 * 1000;
/// A new link is mailed at most this often per account.
pub const RESEND_INTERVAL_MS: i64 = 60 * 1000;

/// A random token for a link (43 URL-safe characters).
pub fn new_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a random token, hex: what is stored in its place (the
/// tokens carry 256 random bits, so nothing needs slowing down).
pub fn token_hash(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn link(public_url: &str, token: &str) -> String {
    format!(
        "{}/verify-email?token={token}",
        public_url.trim_end_matches('/')
    )
}

/// Replaces the account's pending link with `token`. Returns whether
/// another account has already proved the address (then its owner gets a
/// note instead of the link; the caller answers the same either way, so
/// nobody learns whose address it is).
pub async fn replace_pending(
    db: &AnyPool,
    user_id: &str,
    email_key: &str,
    token: &str,
    now_ms: i64,
) -> sqlx::Result<bool> {
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM email_verifications WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO email_verifications (token_hash, user_id, email_key, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash(token))
    .bind(user_id)
    .bind(email_key)
    .bind(now_ms)
    .bind(now_ms + LIFETIME_MS)
    .execute(&mut *tx)
    .await?;
    let owner: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM users WHERE email_key = $1 AND email_verified_at_ms IS NOT NULL \
         AND id <> $2",
    )
    .bind(email_key)
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(owner.is_some())
}

/// When the account's last link was made, if any.
pub async fn last_issued(db: &AnyPool, user_id: &str) -> sqlx::Result<Option<i64>> {
    let (last,): (Option<i64>,) =
        sqlx::query_as("SELECT MAX(created_at) FROM email_verifications WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(db)
            .await?;
    Ok(last)
}

/// Marks the address behind `token` verified for its account, dropping
/// other accounts' unproven claims on it; returns the account. Unknown,
/// expired and used tokens, and addresses changed or proved by another
/// account since, all answer `None`.
pub async fn redeem(db: &AnyPool, token: &str, now_ms: i64) -> sqlx::Result<Option<String>> {
    // Tokens are 43 characters; anything far off is not one of ours.
    if token.is_empty() || token.len() > 128 {
        return Ok(None);
    }
    let mut tx = db.begin().await?;
    let pending: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT user_id, email_key, expires_at FROM email_verifications WHERE token_hash = $1",
    )
    .bind(token_hash(token))
    .fetch_optional(&mut *tx)
    .await?;
    let Some((user_id, key, expires_at)) = pending else {
        return Ok(None);
    };
    // Used once, whatever happens next.
    sqlx::query("DELETE FROM email_verifications WHERE token_hash = $1")
        .bind(token_hash(token))
        .execute(&mut *tx)
        .await?;
    if expires_at < now_ms {
        tx.commit().await?;
        return Ok(None);
    }
    let updated = sqlx::query(
        "UPDATE users SET email_verified_at_ms = $1, updated_at = $1 \
         WHERE id = $2 AND email_key = $3 AND email_verified_at_ms IS NULL",
    )
    .bind(now_ms)
    .bind(&user_id)
    .bind(&key)
    .execute(&mut *tx)
    .await;
    match updated {
        Ok(done) if done.rows_affected() == 1 => {}
        // The address changed since, or another account proved it first.
        Ok(_) => {
            tx.commit().await?;
            return Ok(None);
        }
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(None),
        Err(e) => return Err(e),
    }
    sqlx::query(
        "UPDATE users SET email = NULL, email_key = NULL, updated_at = $1 \
         WHERE email_key = $2 AND id <> $3 AND email_verified_at_ms IS NULL",
    )
    .bind(now_ms)
    .bind(&key)
    .bind(&user_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM email_verifications WHERE email_key = $1")
        .bind(&key)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(user_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_url_safe_and_stored_only_as_a_hash() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }

    #[test]
    fn a_link_joins_the_public_address_without_a_double_slash() {
        assert_eq!(
            link("https://meet.example/", "t"),
            "https://meet.example/verify-email?token=t"
        );
    }
}
