//! Human passwords: Argon2id (the `argon2` crate's defaults, OWASP's minimum), hashed and
//! verified on the blocking pool so a slow hash never stalls the async workers.

use crate::error::ApiError;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use keyplane_core::people::Password;
use secrecy::{ExposeSecret, SecretString};

/// The PHC string (`$argon2id$v=19$…`) of `password`.
pub async fn hash(password: Password) -> Result<String, ApiError> {
    let secret = SecretString::from(password.expose().to_owned());
    tokio::task::spawn_blocking(move || hash_now(secret.expose_secret()))
        .await
        .map_err(|e| ApiError::Internal(format!("password hashing task failed: {e}")))?
}

/// Synchronous hashing, for `keyplane init` (no request is waiting).
pub fn hash_now(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(format!("cannot hash a password: {e}")))
}

/// True when `password` matches `stored`. With `stored = None` (an unknown user) a dummy hash
/// is verified instead, so the answer takes as long either way.
pub async fn verify(stored: Option<String>, password: Password) -> bool {
    let secret = SecretString::from(password.expose().to_owned());
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let matches = PasswordHash::new(&phc).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(secret.expose_secret().as_bytes(), &parsed)
                .is_ok()
        });
        known && matches
    })
    .await
    .unwrap_or(false)
}

/// An Argon2id hash of a random password nobody knows, with the default parameters.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$gZiV/M1gPc22ElAH/Jh1Hw$CWOrkoo7oJBQ/iyh7uJ0LO2aLEfrHwTWllSAxT0zRno";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let phc = hash(Password::parse("correct horse battery").unwrap())
            .await
            .unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(
            verify(
                Some(phc.clone()),
                Password::parse("correct horse battery").unwrap()
            )
            .await
        );
        assert!(!verify(Some(phc), Password::parse("wrong horse battery").unwrap()).await);
        assert!(!verify(None, Password::parse("correct horse battery").unwrap()).await);
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
