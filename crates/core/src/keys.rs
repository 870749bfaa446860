//! The API key format.
//!
//! ```text
//! sk-proj-   kQ3b9XzV1mT0aP7c   <36 base62 secret chars>   <6 base62 CRC32>
//! prefix     public id (16)      ≥ 214 bits of CSPRNG        checksum of everything before it
//! ```
//!
//! * The prefix names the kind: `sk-admin-`, `sk-proj-`, `sk-svcacct-`.
//! * The public id is not secret: the key's API id is `key_<public id>`, and the store finds the
//!   key by it through an index.
//! * The CRC32 lets us reject a mistyped or made-up key without touching the database.
//! * Only a hash of the whole key is stored: HMAC-SHA-256 under a server pepper when one is
//!   configured, plain SHA-256 otherwise. Hashes are compared in constant time.
//!
//! Secret scanners can match every Keyplane key with
//! [`SECRET_SCANNER_REGEX`]: `sk-(?:admin|proj|svcacct)-[0-9A-Za-z]{58}\b`.

use crate::ids::{random_base62, BASE62};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

pub const PUBLIC_ID_LEN: usize = 16;
pub const SECRET_LEN: usize = 36;
pub const CHECKSUM_LEN: usize = 6;
const BODY_LEN: usize = PUBLIC_ID_LEN + SECRET_LEN + CHECKSUM_LEN;

/// Documented pattern for secret scanners (GitHub push protection, gitleaks, trufflehog).
pub const SECRET_SCANNER_REGEX: &str = r"sk-(?:admin|proj|svcacct)-[0-9A-Za-z]{58}\b";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// `sk-admin-`: the Admin API (`/v1/organization/*`).
    Admin,
    /// `sk-proj-`: a user's key for one project.
    Project,
    /// `sk-svcacct-`: a service account's key for one project.
    ServiceAccount,
}

impl KeyKind {
    pub const ALL: [KeyKind; 3] = [KeyKind::Admin, KeyKind::Project, KeyKind::ServiceAccount];

    pub fn prefix(self) -> &'static str {
        match self {
            KeyKind::Admin => "sk-admin-",
            KeyKind::Project => "sk-proj-",
            KeyKind::ServiceAccount => "sk-svcacct-",
        }
    }

    /// The value stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Admin => "admin",
            KeyKind::Project => "project",
            KeyKind::ServiceAccount => "service_account",
        }
    }

    pub fn from_db(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// How error messages name a key of this kind.
    pub fn description(self) -> &'static str {
        match self {
            KeyKind::Admin => "an admin key (sk-admin-…)",
            KeyKind::Project => "a project key (sk-proj-…)",
            KeyKind::ServiceAccount => "a service account key (sk-svcacct-…)",
        }
    }
}

/// The API id of a key: `key_` + its public id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    pub const PREFIX: &'static str = "key_";

    fn from_public_id(public_id: &str) -> Self {
        // Not `format!`: this runs for every request a key makes.
        let mut id = String::with_capacity(Self::PREFIX.len() + public_id.len());
        id.push_str(Self::PREFIX);
        id.push_str(public_id);
        Self(id)
    }

    /// Parses a client-supplied `key_…` id.
    pub fn parse(s: &str) -> Result<Self, crate::DomainError> {
        let ok = s.strip_prefix(Self::PREFIX).is_some_and(|p| {
            p.len() == PUBLIC_ID_LEN && p.bytes().all(|b| b.is_ascii_alphanumeric())
        });
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(crate::DomainError::not_found("API key", s))
        }
    }

    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key's plaintext. Exists only between generation and the create response.
pub struct PlaintextKey(SecretString);

impl PlaintextKey {
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for PlaintextKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlaintextKey([REDACTED])")
    }
}

/// Everything about a new key that may be stored: never the plaintext.
#[derive(Debug, Clone)]
pub struct KeyMaterial {
    pub kind: KeyKind,
    pub id: KeyId,
    pub hash: KeyHash,
    pub redacted_value: String,
}

/// A syntactically valid key with a correct checksum. It may still be unknown or revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    pub kind: KeyKind,
    pub public_id: &'a str,
    raw: &'a str,
}

impl ParsedKey<'_> {
    pub fn id(&self) -> KeyId {
        KeyId::from_public_id(self.public_id)
    }

    pub fn raw(&self) -> &str {
        self.raw
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("the key does not start with sk-admin-, sk-proj- or sk-svcacct-")]
    UnknownPrefix,
    #[error("the key has the wrong length or characters")]
    Malformed,
    #[error("the key's checksum does not match")]
    BadChecksum,
}

/// Checks a presented key's shape and checksum. No I/O, no allocation.
pub fn parse(raw: &str) -> Result<ParsedKey<'_>, KeyFormatError> {
    let kind = KeyKind::ALL
        .into_iter()
        .find(|k| raw.starts_with(k.prefix()))
        .ok_or(KeyFormatError::UnknownPrefix)?;
    let body = &raw[kind.prefix().len()..];
    if body.len() != BODY_LEN || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(KeyFormatError::Malformed);
    }
    let (signed, checksum) = raw.split_at(raw.len() - CHECKSUM_LEN);
    if encode_checksum(signed) != *checksum.as_bytes() {
        return Err(KeyFormatError::BadChecksum);
    }
    Ok(ParsedKey {
        kind,
        public_id: &body[..PUBLIC_ID_LEN],
        raw,
    })
}

fn encode_checksum(signed: &str) -> [u8; CHECKSUM_LEN] {
    let mut n = u64::from(crc32fast::hash(signed.as_bytes()));
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// `sk-proj-...wxyz`: the prefix and the last four characters, as OpenAI's dashboard shows keys.
pub fn redact(raw: &str, kind: KeyKind) -> String {
    let tail: String = raw
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{}...{tail}", kind.prefix())
}

/// How an unrecognised credential appears in an error message: enough to tell which key the
/// client sent, never enough to use it (`sk-proj-****…wxyz`, like OpenAI's messages).
pub fn mask_for_display(raw: &str) -> String {
    let chars: Vec<char> = raw.chars().filter(|c| !c.is_control()).collect();
    if chars.len() < 16 {
        return "***".to_owned();
    }
    let head: String = chars[..8].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// A stored key hash (32 bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(out))
    }

    /// Constant-time comparison.
    pub fn matches(&self, other: &KeyHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(..)")
    }
}

/// Generates and hashes keys; holds the optional server pepper.
pub struct KeyHasher {
    pepper: Option<SecretSlice<u8>>,
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyHasher")
            .field("pepper", &self.pepper.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

impl KeyHasher {
    pub fn new(pepper: Option<SecretSlice<u8>>) -> Self {
        Self { pepper }
    }

    pub fn hash(&self, raw: &str) -> KeyHash {
        match &self.pepper {
            Some(pepper) => {
                // HMAC accepts keys of any length, so this cannot fail.
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(pepper.expose_secret())
                    .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
                mac.update(raw.as_bytes());
                KeyHash(mac.finalize().into_bytes().into())
            }
            None => KeyHash(Sha256::digest(raw.as_bytes()).into()),
        }
    }

    /// A fresh key of `kind`: the plaintext (shown once) and what may be stored.
    pub fn generate(&self, kind: KeyKind) -> (PlaintextKey, KeyMaterial) {
        let public_id = random_base62(PUBLIC_ID_LEN);
        let signed = format!("{}{public_id}{}", kind.prefix(), random_base62(SECRET_LEN));
        let checksum = encode_checksum(&signed);
        let mut raw = signed;
        raw.extend(checksum.iter().map(|&b| b as char));
        let material = KeyMaterial {
            kind,
            id: KeyId::from_public_id(&public_id),
            hash: self.hash(&raw),
            redacted_value: redact(&raw, kind),
        };
        (PlaintextKey(SecretString::from(raw)), material)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> KeyHasher {
        KeyHasher::new(None)
    }

    #[test]
    fn generated_keys_parse_with_their_kind_and_id() {
        for kind in KeyKind::ALL {
            let (plain, material) = hasher().generate(kind);
            let parsed = parse(plain.expose()).expect("generated key parses");
            assert_eq!(parsed.kind, kind);
            assert_eq!(parsed.id(), material.id);
            assert!(plain.expose().starts_with(kind.prefix()));
            assert_eq!(plain.expose().len(), kind.prefix().len() + BODY_LEN);
        }
    }

    #[test]
    fn secret_part_carries_at_least_190_bits() {
        let bits = SECRET_LEN as f64 * 62f64.log2();
        // The redacted value shows four checksum characters (< 24 bits about the secret).
        assert!(bits - 24.0 >= 190.0, "{bits}");
    }

    #[test]
    fn any_single_character_change_fails_the_checksum() {
        let (plain, _) = hasher().generate(KeyKind::Project);
        let raw = plain.expose();
        for i in KeyKind::Project.prefix().len()..raw.len() {
            let mut bytes = raw.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(bytes).expect("ascii");
            assert!(
                parse(&changed).is_err(),
                "changed position {i} still parses"
            );
        }
    }

    #[test]
    fn malformed_keys_are_rejected_without_panicking() {
        let (plain, _) = hasher().generate(KeyKind::Admin);
        let raw = plain.expose();
        assert_eq!(parse(""), Err(KeyFormatError::UnknownPrefix));
        assert_eq!(parse("sk-abc"), Err(KeyFormatError::UnknownPrefix));
        assert_eq!(parse("sk-proj-"), Err(KeyFormatError::Malformed));
        assert_eq!(parse(&raw[..raw.len() - 1]), Err(KeyFormatError::Malformed));
        assert_eq!(parse(&format!("{raw}x")), Err(KeyFormatError::Malformed));
        assert_eq!(
            parse(&format!("sk-proj-{}", "é".repeat(29))),
            Err(KeyFormatError::Malformed)
        );
        // Same body under another kind's prefix: the checksum covers the prefix.
        let swapped = raw.replacen("sk-admin-", "sk-proj-", 1);
        assert_eq!(parse(&swapped), Err(KeyFormatError::BadChecksum));
    }

    #[test]
    fn scanner_regex_shape_matches_generated_keys() {
        // The regex says: prefix, then exactly 58 base62 characters.
        for kind in KeyKind::ALL {
            let (plain, _) = hasher().generate(kind);
            let body = &plain.expose()[kind.prefix().len()..];
            assert_eq!(body.len(), 58);
            assert!(body.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
        assert!(SECRET_SCANNER_REGEX.contains("{58}"));
    }

    #[test]
    fn hashing_is_stable_and_peppered_hashes_differ() {
        let (plain, material) = hasher().generate(KeyKind::Project);
        assert!(hasher().hash(plain.expose()).matches(&material.hash));
        let peppered = KeyHasher::new(Some(SecretSlice::from(b"pepper".to_vec())));
        assert!(!peppered.hash(plain.expose()).matches(&material.hash));
        assert!(peppered
            .hash(plain.expose())
            .matches(&peppered.hash(plain.expose())));
        assert_eq!(
            KeyHash::from_hex(&material.hash.to_hex()).map(|h| h.matches(&material.hash)),
            Some(true)
        );
        assert!(KeyHash::from_hex("zz").is_none());
    }

    #[test]
    fn redaction_and_masking_never_reveal_the_secret() {
        let (plain, material) = hasher().generate(KeyKind::ServiceAccount);
        let raw = plain.expose();
        assert!(material.redacted_value.starts_with("sk-svcacct-..."));
        assert!(raw.ends_with(&material.redacted_value["sk-svcacct-...".len()..]));
        let secret = &raw[KeyKind::ServiceAccount.prefix().len() + PUBLIC_ID_LEN..][..SECRET_LEN];
        assert!(!material.redacted_value.contains(&secret[..8]));
        let masked = mask_for_display(raw);
        assert!(!masked.contains(&secret[..8]));
        assert_eq!(mask_for_display("short"), "***");
    }

    #[test]
    fn debug_output_is_redacted() {
        let (plain, material) = hasher().generate(KeyKind::Project);
        assert_eq!(format!("{plain:?}"), "PlaintextKey([REDACTED])");
        assert!(!format!("{material:?}").contains(plain.expose()));
        let peppered = KeyHasher::new(Some(SecretSlice::from(b"pepper".to_vec())));
        assert!(!format!("{peppered:?}").contains("pepper\""));
    }

    #[test]
    fn key_ids_parse() {
        let (_, material) = hasher().generate(KeyKind::Project);
        assert_eq!(KeyId::parse(material.id.as_str()), Ok(material.id.clone()));
        assert!(KeyId::parse("key_short").is_err());
        assert!(KeyId::parse("proj_0123456789abcdef").is_err());
    }
}
