//! Password hashing (argon2, off the async threads) and checking in equal
//! time whether or not the account exists.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::sync::OnceLock;
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("hashing failed: {0}")]
    Hash(String),
    #[error("the hashing pool is gone")]
    Pool,
}

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

/// Hashes `password`; `permits` is the share of hashing this kind of
/// request may use (sign-ups must not starve sign-ins).
pub async fn hash(permits: &Semaphore, password: String) -> Result<String, PasswordError> {
    let _permit = permits.acquire().await.map_err(|_| PasswordError::Pool)?;
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(|_| PasswordError::Pool)?
        .map_err(|err| PasswordError::Hash(err.to_string()))
}

/// Whether `password` matches `hash`. `hash` None means "no such user": a
/// dummy hash is checked instead and the answer is always false.
pub async fn verify(
    permits: &Semaphore,
    password: String,
    hash: Option<String>,
) -> Result<bool, PasswordError> {
    let _permit = permits.acquire().await.map_err(|_| PasswordError::Pool)?;
    tokio::task::spawn_blocking(move || match hash {
        Some(hash) => verify_blocking(&password, &hash),
        None => {
            let _ = verify_blocking(&password, dummy_hash());
            false
        }
    })
    .await
    .map_err(|_| PasswordError::Pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only_and_no_user_never_verifies() {
        let permits = Semaphore::new(1);
        let hashed = hash(&permits, "correct horse".into()).await.expect("hash");
        assert!(
            verify(&permits, "correct horse".into(), Some(hashed.clone()))
                .await
                .expect("verify")
        );
        assert!(!verify(&permits, "wrong".into(), Some(hashed))
            .await
            .expect("verify"));
        assert!(
            !verify(&permits, "moim: no such user, compare anyway".into(), None)
                .await
                .expect("verify")
        );
    }
}
