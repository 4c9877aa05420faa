//! Personal API tokens: made on the profile page, shown once, kept only as
//! a hash, revocable, each with a scope.

use sqlx::AnyPool;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    /// Read meetings, participants and transcripts.
    Read,
    /// Read, and create, change and cancel meetings.
    Manage,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Manage => "manage",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "read" => Some(Self::Read),
            "manage" => Some(Self::Manage),
            _ => None,
        }
    }
}

/// Every token starts with this, so a leaked one is recognisable (secret
/// scanners, logs).
pub const TOKEN_PREFIX: &str = "moim_";
/// Active tokens one account may hold.
pub const TOKENS_PER_USER: i64 = 20;
/// How often `last_used_at_ms` is written for a busy token.
const LAST_USED_EVERY_MS: i64 = 60_000;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub scope: String,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
}

impl TokenRow {
    pub fn scope(&self) -> TokenScope {
        // The column's CHECK allows only the two.
        TokenScope::parse(&self.scope).unwrap_or(TokenScope::Read)
    }
}

/// A new token: what the person is shown once, and its hash.
pub fn new_token() -> (String, String) {
    let token = format!("{TOKEN_PREFIX}{}", super::verification::new_token());
    let hash = token_hash(&token);
    (token, hash)
}

/// Stored in a token's place, as for mailed links: a look-up is one
/// indexed query.
pub use super::verification::token_hash;

/// Why a token was not made.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("this account has {TOKENS_PER_USER} tokens; revoke one first")]
    TooMany,
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

/// Stores a new token for `user_id`; returns its row and the token itself
/// (never stored, never shown again).
pub async fn create(
    db: &AnyPool,
    user_id: &str,
    name: &str,
    scope: TokenScope,
    now_ms: i64,
) -> Result<(TokenRow, String), CreateError> {
    let active: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM api_tokens WHERE user_id = $1 AND revoked_at_ms IS NULL",
    )
    .bind(user_id)
    .fetch_one(db)
    .await?;
    if active >= TOKENS_PER_USER {
        return Err(CreateError::TooMany);
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (token, hash) = new_token();
    sqlx::query(
        "INSERT INTO api_tokens (id, user_id, name, token_hash, scope, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(user_id)
    .bind(name)
    .bind(&hash)
    .bind(scope.as_str())
    .bind(now_ms)
    .execute(db)
    .await?;
    let row = TokenRow {
        id,
        user_id: user_id.to_string(),
        name: name.to_string(),
        scope: scope.as_str().to_string(),
        created_at_ms: now_ms,
        last_used_at_ms: None,
    };
    Ok((row, token))
}

const TOKEN_COLUMNS: &str = "id, user_id, name, scope, created_at_ms, last_used_at_ms";

/// The account's tokens that still work, newest first.
pub async fn list(db: &AnyPool, user_id: &str) -> sqlx::Result<Vec<TokenRow>> {
    sqlx::query_as(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens \
         WHERE user_id = $1 AND revoked_at_ms IS NULL ORDER BY created_at_ms DESC, id"
    ))
    .bind(user_id)
    .fetch_all(db)
    .await
}

/// Revokes one of the account's tokens; `false` if it has no such token.
pub async fn revoke(db: &AnyPool, user_id: &str, id: &str, now_ms: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE api_tokens SET revoked_at_ms = $1 \
         WHERE id = $2 AND user_id = $3 AND revoked_at_ms IS NULL",
    )
    .bind(now_ms)
    .bind(id)
    .bind(user_id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Revokes every token of the account (a password change); returns how
/// many.
pub async fn revoke_all(db: &AnyPool, user_id: &str, now_ms: i64) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE api_tokens SET revoked_at_ms = $1 WHERE user_id = $2 AND revoked_at_ms IS NULL",
    )
    .bind(now_ms)
    .bind(user_id)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// The live token `token` is, if any, noting its use.
pub async fn authenticate(
    db: &AnyPool,
    token: &str,
    now_ms: i64,
) -> sqlx::Result<Option<TokenRow>> {
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 100 {
        return Ok(None);
    }
    let row: Option<TokenRow> = sqlx::query_as(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1 AND revoked_at_ms IS NULL"
    ))
    .bind(token_hash(token))
    .fetch_optional(db)
    .await?;
    if let Some(row) = &row {
        if row
            .last_used_at_ms
            .is_none_or(|at| now_ms - at >= LAST_USED_EVERY_MS)
        {
            sqlx::query("UPDATE api_tokens SET last_used_at_ms = $1 WHERE id = $2")
                .bind(now_ms)
                .bind(&row.id)
                .execute(db)
                .await?;
        }
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_hashed() {
        let (one, one_hash) = new_token();
        let (two, _) = new_token();
        assert!(one.starts_with(TOKEN_PREFIX));
        assert_ne!(one, two);
        assert_eq!(one.len(), TOKEN_PREFIX.len() + 43);
        assert_eq!(one_hash, token_hash(&one));
        assert_eq!(one_hash.len(), 64);
        assert!(!one_hash.contains(&one[TOKEN_PREFIX.len()..]));
    }

    #[test]
    fn scopes_read_back() {
        for scope in [TokenScope::Read, TokenScope::Manage] {
            assert_eq!(TokenScope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(TokenScope::parse("admin"), None);
    }
}
