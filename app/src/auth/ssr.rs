//! Server-only half of accounts: the user table, password hashing, and the
//! session records that say who someone is.

use super::{AccountEmail, GuestSummary, UserSummary, VerifyOutcome, Viewer};
use crate::error::{ApiError, ApiResult, FieldError, FieldProblem, Limit};
use crate::state::AppState;
use crate::throttle::Rule;
use crate::validate;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::ConnectInfo;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::OnceLock;
use tower_sessions::Session;

/// Session key of a signed-in user's identity.
const AUTH_KEY: &str = "auth";
/// Session key of a guest identity.
const GUEST_KEY: &str = "guest";
/// Session key of the last time activity pushed the idle deadline forward.
const SEEN_KEY: &str = "seen_ms";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionAuth {
    user_id: String,
    /// Must match `users.auth_version`; bumping that column ends every
    /// session made before (password change).
    auth_version: i64,
    signed_in_at_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionGuest {
    id: String,
    display_name: String,
    created_at_ms: i64,
}

/// The server's one clock (see `domain::clock`).
pub use domain::clock::now_ms;

/// Logs the cause and hands the client a bare "internal error".
pub fn internal(err: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %err, "internal error in a server function");
    ApiError::Internal
}

/// Gives the current response the HTTP status that matches `err`.
pub use crate::error::set_error_status;

/// Pushes an identified session's idle deadline forward, writing at most once
/// per `interval`. Called by the HTTP layer on page loads and server-function
/// calls (and, later, by live meetings), so activity keeps a session alive.
pub async fn touch_session(
    session: &Session,
    interval_ms: i64,
) -> Result<(), tower_sessions::session::Error> {
    if session.is_empty().await {
        return Ok(());
    }
    let now = now_ms();
    let seen = session.get::<i64>(SEEN_KEY).await?.unwrap_or(0);
    if now - seen >= interval_ms {
        session.insert(SEEN_KEY, now).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------- users table

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub password_hash: String,
    pub auth_version: i64,
    pub email_verified_at_ms: Option<i64>,
}

impl UserRow {
    pub(crate) fn summary(&self) -> UserSummary {
        UserSummary {
            id: self.id.clone(),
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            email: self.email.clone(),
            email_verified: self.verified_email().is_some(),
        }
    }

    /// The address, when its owner has proved it.
    pub fn verified_email(&self) -> Option<&str> {
        self.email_verified_at_ms.and(self.email.as_deref())
    }
}

const USER_COLUMNS: &str =
    "id, username, display_name, email, password_hash, auth_version, email_verified_at_ms";

pub async fn find_user_by_id(db: &sqlx::AnyPool, id: &str) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as::<_, UserRow>(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

pub async fn find_user_by_username(
    db: &sqlx::AnyPool,
    username: &str,
) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as::<_, UserRow>(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE username_key = $1"
    ))
    .bind(validate::username_key(username))
    .fetch_optional(db)
    .await
}

// ---------------------------------------------------------------- email verification
//
// An address typed at sign-up is a claim. It is proved by opening a link
// mailed to it (a random token; only its SHA-256 is stored, valid 24 hours,
// once). Until then it grants nothing and blocks nobody: addresses are
// unique only among verified ones, and when one account proves an address,
// other accounts' unproven claims on it are dropped, so whoever typed
// someone else's address first cannot lock the owner out.

/// How long a confirmation link works.
const VERIFICATION_LIFETIME_MS: i64 = 24 * 3600 * 1000;
/// A new link is mailed at most this often per account.
const RESEND_INTERVAL_MS: i64 = 60 * 1000;

fn new_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn token_hash(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn verification_link(public_url: &str, token: &str) -> String {
    format!(
        "{}/verify-email?token={token}",
        public_url.trim_end_matches('/')
    )
}

/// Replaces the account's pending link with a new one and mails it. When
/// another account has already proved the address, its owner gets a note
/// instead (and the link is never sent): the caller's answer is the same
/// either way, so nobody learns whose address it is.
async fn issue_verification(state: &AppState, user_id: &str, email: &str) -> ApiResult<()> {
    let key = validate::email_key(email);
    let token = new_token();
    let now = now_ms();
    let mut tx = state.db.begin().await.map_err(internal)?;
    sqlx::query("DELETE FROM email_verifications WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(internal)?;
    sqlx::query(
        "INSERT INTO email_verifications (token_hash, user_id, email_key, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash(&token))
    .bind(user_id)
    .bind(&key)
    .bind(now)
    .bind(now + VERIFICATION_LIFETIME_MS)
    .execute(&mut *tx)
    .await
    .map_err(internal)?;
    let owner: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM users WHERE email_key = $1 AND email_verified_at_ms IS NOT NULL \
         AND id <> $2",
    )
    .bind(&key)
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    let mail = if owner.is_some() {
        crate::mail::address_in_use(email, &state.public_url)
    } else {
        crate::mail::verification(email, &verification_link(&state.public_url, &token))
    };
    crate::mail::send_later(&state.mailer, mail);
    Ok(())
}

/// Marks the address behind `token` verified for its account, dropping
/// other accounts' unproven claims on it. Unknown, expired and used tokens
/// all answer `Invalid`.
async fn redeem_verification(db: &sqlx::AnyPool, token: &str) -> ApiResult<VerifyOutcome> {
    // Tokens are 43 characters; anything far off is not one of ours.
    if token.is_empty() || token.len() > 128 {
        return Ok(VerifyOutcome::Invalid);
    }
    let now = now_ms();
    let mut tx = db.begin().await.map_err(internal)?;
    let pending: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT user_id, email_key, expires_at FROM email_verifications WHERE token_hash = $1",
    )
    .bind(token_hash(token))
    .fetch_optional(&mut *tx)
    .await
    .map_err(internal)?;
    let Some((user_id, key, expires_at)) = pending else {
        return Ok(VerifyOutcome::Invalid);
    };
    // Used once, whatever happens next.
    sqlx::query("DELETE FROM email_verifications WHERE token_hash = $1")
        .bind(token_hash(token))
        .execute(&mut *tx)
        .await
        .map_err(internal)?;
    if expires_at < now {
        tx.commit().await.map_err(internal)?;
        return Ok(VerifyOutcome::Invalid);
    }
    let updated = sqlx::query(
        "UPDATE users SET email_verified_at_ms = $1, updated_at = $1 \
         WHERE id = $2 AND email_key = $3 AND email_verified_at_ms IS NULL",
    )
    .bind(now)
    .bind(&user_id)
    .bind(&key)
    .execute(&mut *tx)
    .await;
    match updated {
        Ok(done) if done.rows_affected() == 1 => {}
        // The address changed since, or another account proved it first.
        Ok(_) => {
            tx.commit().await.map_err(internal)?;
            return Ok(VerifyOutcome::Invalid);
        }
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Ok(VerifyOutcome::Invalid);
        }
        Err(e) => return Err(internal(e)),
    }
    sqlx::query(
        "UPDATE users SET email = NULL, email_key = NULL, updated_at = $1 \
         WHERE email_key = $2 AND id <> $3 AND email_verified_at_ms IS NULL",
    )
    .bind(now)
    .bind(&key)
    .bind(&user_id)
    .execute(&mut *tx)
    .await
    .map_err(internal)?;
    sqlx::query("DELETE FROM email_verifications WHERE email_key = $1")
        .bind(&key)
        .execute(&mut *tx)
        .await
        .map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    tracing::info!(user_id = %user_id, "email address verified");
    Ok(VerifyOutcome::Verified)
}

// ---------------------------------------------------------------- passwords

fn hash_blocking(password: &str) -> Result<String, argon2::password_hash::Error> {
    use rand::RngCore;
    let mut salt_bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes)?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

fn verify_blocking(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A real argon2 hash of nothing anyone knows, verified against when the
/// username does not exist so both failures take the same time.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_blocking("moim: no such user, compare anyway").unwrap_or_default())
}

/// `permits`: the share of hashing this kind of request may use.
async fn hash_password(permits: &tokio::sync::Semaphore, password: String) -> ApiResult<String> {
    let _permit = permits.acquire().await.map_err(internal)?;
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(internal)?
        .map_err(internal)
}

/// `hash` None means "no such user": a dummy hash is checked instead and the
/// answer is always false.
async fn verify_password(
    state: &AppState,
    password: String,
    hash: Option<String>,
) -> ApiResult<bool> {
    let _permit = state.hashing_permits.acquire().await.map_err(internal)?;
    tokio::task::spawn_blocking(move || match hash {
        Some(hash) => verify_blocking(&password, &hash),
        None => {
            let _ = verify_blocking(&password, dummy_hash());
            false
        }
    })
    .await
    .map_err(internal)
}

// ---------------------------------------------------------------- requests

pub struct SignUpForm {
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub password: String,
}

fn collect<T>(results: &mut Vec<FieldError>, r: Result<T, FieldError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            results.push(e);
            None
        }
    }
}

/// One server-function call: the app state, the caller's session and
/// address.
pub struct RequestCx {
    state: AppState,
    session: Session,
    client: String,
}

impl RequestCx {
    pub async fn new() -> ApiResult<Self> {
        let state = AppState::from_context()?;
        let session = leptos_axum::extract::<Session>().await.map_err(internal)?;
        let headers = leptos::prelude::use_context::<http::request::Parts>()
            .map(|parts| parts.headers)
            .unwrap_or_default();
        let client = leptos_axum::extract::<ConnectInfo<SocketAddr>>()
            .await
            .map(|ConnectInfo(addr)| {
                crate::state::client_address(addr.ip(), &headers, &state.trusted_proxies)
                    .to_string()
            })
            .unwrap_or_else(|_| "unknown".to_string());
        Ok(Self {
            state,
            session,
            client,
        })
    }

    /// For handlers outside Leptos (the signaling WebSocket), which extract
    /// the session and address themselves.
    pub fn from_parts(state: AppState, session: Session, client: String) -> Self {
        Self {
            state,
            session,
            client,
        }
    }

    /// The session, for keeping it alive from a long-lived connection.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The caller's network address (for throttling).
    pub fn client(&self) -> &str {
        &self.client
    }

    /// Ends a mutating call: on success optionally redirects to a local
    /// path; on failure sets the HTTP status that matches the error.
    pub fn finish(&self, result: ApiResult<()>, next: Option<&str>) -> ApiResult<()> {
        match &result {
            Ok(()) => {
                if let Some(next) = next {
                    leptos_axum::redirect(&validate::safe_next(next));
                }
            }
            Err(err) => set_error_status(err),
        }
        result
    }

    fn session_error(err: tower_sessions::session::Error) -> ApiError {
        internal(err)
    }

    async fn end_session(&self) -> ApiResult<()> {
        self.session.flush().await.map_err(Self::session_error)
    }

    async fn session_auth(&self) -> ApiResult<Option<SessionAuth>> {
        self.session
            .get::<SessionAuth>(AUTH_KEY)
            .await
            .map_err(Self::session_error)
    }

    /// The user a session's `auth` names, checked against the absolute
    /// lifetime and the user's `auth_version`; a session failing either is
    /// ended (`Ok(None)`).
    async fn checked_user(&self, auth: SessionAuth, now: i64) -> ApiResult<Option<UserRow>> {
        let absolute_ms = self.state.auth.absolute_lifetime.as_millis() as i64;
        let user = if now - auth.signed_in_at_ms > absolute_ms {
            None
        } else {
            find_user_by_id(&self.state.db, &auth.user_id)
                .await
                .map_err(internal)?
        };
        match user {
            Some(user) if user.auth_version == auth.auth_version => Ok(Some(user)),
            _ => {
                self.end_session().await?;
                Ok(None)
            }
        }
    }

    pub async fn viewer(&self) -> ApiResult<Option<Viewer>> {
        let now = now_ms();
        if let Some(auth) = self.session_auth().await? {
            let user = self.checked_user(auth, now).await?;
            return Ok(user.map(|user| Viewer::User(user.summary())));
        }
        let absolute_ms = self.state.auth.absolute_lifetime.as_millis() as i64;
        let guest = self
            .session
            .get::<SessionGuest>(GUEST_KEY)
            .await
            .map_err(Self::session_error)?;
        match guest {
            Some(guest) if now - guest.created_at_ms <= absolute_ms => {
                Ok(Some(Viewer::Guest(GuestSummary {
                    id: guest.id,
                    display_name: guest.display_name,
                })))
            }
            Some(_) => {
                self.end_session().await?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// The signed-in user, or `Unauthenticated` (guests included).
    pub async fn signed_in_user(&self) -> ApiResult<UserRow> {
        match self.session_auth().await? {
            Some(auth) => self.checked_user(auth, now_ms()).await?,
            None => None,
        }
        .ok_or(ApiError::Unauthenticated)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// A fresh session id (no fixation), the guest identity dropped.
    async fn establish_user_session(&self, user: &UserRow) -> ApiResult<()> {
        self.session.cycle_id().await.map_err(Self::session_error)?;
        self.session
            .remove::<SessionGuest>(GUEST_KEY)
            .await
            .map_err(Self::session_error)?;
        let now = now_ms();
        let auth = SessionAuth {
            user_id: user.id.clone(),
            auth_version: user.auth_version,
            signed_in_at_ms: now,
        };
        self.session
            .insert(AUTH_KEY, auth)
            .await
            .map_err(Self::session_error)?;
        self.session
            .insert(SEEN_KEY, now)
            .await
            .map_err(Self::session_error)?;
        Ok(())
    }

    pub async fn sign_up(&self, form: SignUpForm) -> ApiResult<()> {
        // Counted before anything else: each try costs a hash, and taken
        // names must not be probed at speed either.
        self.limit("sign-up", self.state.actions.sign_ups, Limit::SignUps)
            .await?;
        let mut errors = Vec::new();
        let username = collect(&mut errors, validate::username("username", &form.username));
        let display_name = collect(
            &mut errors,
            validate::display_name("display_name", &form.display_name),
        );
        let email = collect(&mut errors, validate::optional_email("email", &form.email));
        collect(
            &mut errors,
            validate::new_password("password", &form.password),
        );
        let db = &self.state.db;
        if let Some(username) = &username {
            if find_user_by_username(db, username)
                .await
                .map_err(internal)?
                .is_some()
            {
                errors.push(FieldError::new("username", FieldProblem::UsernameTaken));
            }
        }
        // No check that the address is free: it is stored unproven and
        // blocks nobody, and saying "taken" would tell a stranger whose
        // address it is. Usernames are public handles, so "taken" there
        // reveals nothing that is not already visible.
        let (Some(username), Some(display_name), Some(email), true) =
            (username, display_name, email, errors.is_empty())
        else {
            return Err(ApiError::Invalid(errors));
        };

        let password_hash = hash_password(&self.state.sign_up_permits, form.password).await?;
        let now = now_ms();
        let user = UserRow {
            id: uuid::Uuid::new_v4().simple().to_string(),
            username,
            display_name,
            email,
            password_hash,
            auth_version: 1,
            email_verified_at_ms: None,
        };
        let inserted = sqlx::query(
            "INSERT INTO users (id, username, username_key, display_name, email, email_key, \
             password_hash, auth_version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&user.id)
        .bind(&user.username)
        .bind(validate::username_key(&user.username))
        .bind(&user.display_name)
        .bind(user.email.clone())
        .bind(user.email.as_deref().map(validate::email_key))
        .bind(&user.password_hash)
        .bind(user.auth_version)
        .bind(now)
        .bind(now)
        .execute(db)
        .await;
        match inserted {
            Ok(_) => {}
            // Two sign-ups raced past the check above: the unique index
            // decides (only usernames are unique here; addresses are stored
            // unverified, and only verified ones are unique).
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(ApiError::Invalid(vec![FieldError::new(
                    "username",
                    FieldProblem::UsernameTaken,
                )]));
            }
            Err(e) => return Err(internal(e)),
        }
        tracing::info!(user_id = %user.id, "account created");
        if let Some(email) = &user.email {
            issue_verification(&self.state, &user.id, email).await?;
        }
        self.establish_user_session(&user).await
    }

    pub async fn email_status(&self) -> ApiResult<AccountEmail> {
        let user = self.signed_in_user().await?;
        Ok(AccountEmail {
            verified: user.verified_email().is_some(),
            email: user.email,
            mail_configured: self.state.mailer.is_configured(),
        })
    }

    /// A new confirmation link for the account's unproven address, at most
    /// once a minute (the last link's age, in the database, so every
    /// instance agrees).
    pub async fn resend_verification(&self) -> ApiResult<()> {
        let user = self.signed_in_user().await?;
        let Some(email) = user.email.as_deref() else {
            return Err(ApiError::Invalid(vec![FieldError::new(
                "email",
                FieldProblem::Required,
            )]));
        };
        if user.email_verified_at_ms.is_some() {
            return Ok(());
        }
        let (last,): (Option<i64>,) =
            sqlx::query_as("SELECT MAX(created_at) FROM email_verifications WHERE user_id = $1")
                .bind(&user.id)
                .fetch_one(&self.state.db)
                .await
                .map_err(internal)?;
        let since = now_ms() - last.unwrap_or(0);
        if since < RESEND_INTERVAL_MS {
            let wait_ms = RESEND_INTERVAL_MS - since;
            return Err(ApiError::TooManyAttempts {
                retry_after_secs: (wait_ms as u64).div_ceil(1000).max(1),
            });
        }
        issue_verification(&self.state, &user.id, email).await
    }

    pub async fn verify_email(&self, token: &str) -> ApiResult<VerifyOutcome> {
        redeem_verification(&self.state.db, token.trim()).await
    }

    pub async fn sign_in(&self, username: &str, password: &str) -> ApiResult<()> {
        let mut errors = Vec::new();
        if username.trim().is_empty() {
            errors.push(FieldError::new("username", FieldProblem::Required));
        }
        if password.is_empty() {
            errors.push(FieldError::new("password", FieldProblem::Required));
        }
        if username.chars().count() > 256 || password.chars().count() > validate::PASSWORD_MAX {
            // Nobody has such credentials; answer like any other failure.
            return Err(ApiError::BadCredentials);
        }
        if !errors.is_empty() {
            return Err(ApiError::Invalid(errors));
        }
        let account = validate::username_key(username);
        let throttle = &self.state.login_throttle;
        if let Err(retry_after) = throttle.check(&account, &self.client).await {
            return Err(ApiError::TooManyAttempts {
                retry_after_secs: retry_after.as_secs().max(1),
            });
        }
        let user = find_user_by_username(&self.state.db, username)
            .await
            .map_err(internal)?;
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let valid = verify_password(&self.state, password.to_string(), hash).await?;
        match user {
            Some(user) if valid => {
                throttle.record_success(&account, &self.client).await;
                tracing::info!(user_id = %user.id, "signed in");
                self.establish_user_session(&user).await
            }
            _ => {
                throttle.record_failure(&account, &self.client).await;
                tracing::info!(client = %self.client, "failed sign-in");
                Err(ApiError::BadCredentials)
            }
        }
    }

    /// Counts one `what` for this client address; `Limited` once the rule
    /// is used up.
    pub async fn limit(&self, what: &str, rule: Rule, kind: Limit) -> ApiResult<()> {
        let key = format!("{what}:{}", crate::throttle::client_key(&self.client));
        let decision = self.state.limiter.hit(&key, rule).await;
        if decision.allowed {
            return Ok(());
        }
        tracing::info!(client = %self.client, what, "limit reached");
        Err(ApiError::Limited {
            what: kind,
            retry_after_secs: decision.retry_secs(),
        })
    }

    pub async fn sign_out(&self) -> ApiResult<()> {
        self.end_session().await
    }

    pub async fn continue_as_guest(&self, display_name: &str) -> ApiResult<()> {
        let display_name = validate::display_name("display_name", display_name)
            .map_err(|e| ApiError::Invalid(vec![e]))?;
        if let Some(Viewer::User(_)) = self.viewer().await? {
            // A signed-in person is already somebody; no second identity.
            return Err(ApiError::Forbidden);
        }
        let existing = self
            .session
            .get::<SessionGuest>(GUEST_KEY)
            .await
            .map_err(Self::session_error)?;
        let guest = match existing {
            Some(guest) => SessionGuest {
                display_name,
                ..guest
            },
            None => {
                // Each new guest is a session row: bounded per address.
                self.limit("guest", self.state.actions.guests, Limit::Guests)
                    .await?;
                self.session.cycle_id().await.map_err(Self::session_error)?;
                SessionGuest {
                    id: format!("guest-{}", uuid::Uuid::new_v4().simple()),
                    display_name,
                    created_at_ms: now_ms(),
                }
            }
        };
        self.session
            .insert(GUEST_KEY, guest)
            .await
            .map_err(Self::session_error)?;
        self.session
            .insert(SEEN_KEY, now_ms())
            .await
            .map_err(Self::session_error)
    }

    pub async fn update_display_name(&self, display_name: &str) -> ApiResult<()> {
        let user = self.signed_in_user().await?;
        let display_name = validate::display_name("display_name", display_name)
            .map_err(|e| ApiError::Invalid(vec![e]))?;
        sqlx::query("UPDATE users SET display_name = $1, updated_at = $2 WHERE id = $3")
            .bind(display_name)
            .bind(now_ms())
            .bind(&user.id)
            .execute(&self.state.db)
            .await
            .map_err(internal)?;
        Ok(())
    }

    pub async fn change_password(&self, current: &str, new: &str) -> ApiResult<()> {
        let user = self.signed_in_user().await?;
        validate::new_password("new_password", new).map_err(|e| ApiError::Invalid(vec![e]))?;
        let throttle = &self.state.login_throttle;
        let account = validate::username_key(&user.username);
        if let Err(retry_after) = throttle.check(&account, &self.client).await {
            return Err(ApiError::TooManyAttempts {
                retry_after_secs: retry_after.as_secs().max(1),
            });
        }
        let valid = verify_password(
            &self.state,
            current.to_string(),
            Some(user.password_hash.clone()),
        )
        .await?;
        if !valid {
            throttle.record_failure(&account, &self.client).await;
            return Err(ApiError::Invalid(vec![FieldError::new(
                "current_password",
                FieldProblem::WrongCurrentPassword,
            )]));
        }
        let password_hash = hash_password(&self.state.hashing_permits, new.to_string()).await?;
        let new_version = user.auth_version + 1;
        sqlx::query(
            "UPDATE users SET password_hash = $1, auth_version = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(password_hash)
        .bind(new_version)
        .bind(now_ms())
        .bind(&user.id)
        .execute(&self.state.db)
        .await
        .map_err(internal)?;
        tracing::info!(user_id = %user.id, "password changed; other sessions ended");
        // This session carries on under a new id with the new version.
        let updated = UserRow {
            auth_version: new_version,
            ..user
        };
        self.establish_user_session(&updated).await
    }
}
