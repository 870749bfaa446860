//! Dashboard sessions: an opaque random token in a cookie, stored only as its SHA-256, with
//! an idle and an absolute expiry, and a per-session CSRF token.

use crate::ids::{random_base62, UserId};
use crate::people::hash_token;
use crate::time::UnixSeconds;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;

/// A session ends after this long without a request.
pub const IDLE_SECONDS: i64 = 12 * 3600;
/// A session ends this long after sign-in, however busy.
pub const ABSOLUTE_SECONDS: i64 = 7 * 24 * 3600;

/// The cookie value: 43 base62 characters (about 256 bits from the CSPRNG). Never printed.
pub struct SessionToken(SecretString);

impl SessionToken {
    pub fn generate() -> Self {
        Self(SecretString::from(random_base62(43)))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// What the database stores and looks the session up by.
    pub fn hash(&self) -> String {
        hash_token(self.expose())
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken([REDACTED])")
    }
}

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 (hex) of the cookie's token.
    pub token_hash: String,
    pub user_id: UserId,
    /// Sent back with every form and script request.
    pub csrf_token: String,
    pub created_at: UnixSeconds,
    pub last_seen_at: UnixSeconds,
    /// The absolute end.
    pub expires_at: UnixSeconds,
}

impl Session {
    /// A new session for `user`, returned with its (only) plaintext token.
    pub fn start(user_id: UserId, now: UnixSeconds) -> (SessionToken, Session) {
        let token = SessionToken::generate();
        let session = Session {
            token_hash: token.hash(),
            user_id,
            csrf_token: random_base62(43),
            created_at: now,
            last_seen_at: now,
            expires_at: now + ABSOLUTE_SECONDS,
        };
        (token, session)
    }

    /// Live: neither idle too long nor past its absolute end.
    pub fn is_live(&self, now: UnixSeconds) -> bool {
        now < self.expires_at && now < self.last_seen_at + IDLE_SECONDS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_or_old() {
        let (token, s) = Session::start(UserId::generate(), 1_000);
        assert_eq!(s.token_hash, hash_token(token.expose()));
        assert_eq!(format!("{token:?}"), "SessionToken([REDACTED])");
        assert!(s.is_live(1_000));
        assert!(!s.is_live(1_000 + IDLE_SECONDS));
        let mut busy = s.clone();
        busy.last_seen_at = 1_000 + ABSOLUTE_SECONDS - 10;
        assert!(busy.is_live(1_000 + ABSOLUTE_SECONDS - 1));
        assert!(!busy.is_live(1_000 + ABSOLUTE_SECONDS));
        assert_ne!(
            s.csrf_token,
            Session::start(UserId::generate(), 1).1.csrf_token
        );
    }
}
