//! What a username and a password must be, and how passwords are kept:
//! Argon2id, with the cost the config gives; a stored hash carries its own
//! parameters, so raising the cost does not lock anyone out.

use std::sync::OnceLock;

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version, password_hash::SaltString,
};
use common::{
    bus::{RemoteError, RemoteErrorKind},
    config::{PasswordHashing, PasswordPolicy},
};
use ruma::{OwnedUserId, ServerName, UserId};

/// The user id for a requested localpart, or why it cannot be one.
/// Usernames are case-insensitive: they are lowercased first.
pub fn new_user_id(localpart: &str, server_name: &ServerName) -> Result<OwnedUserId, RemoteError> {
    let localpart = localpart.to_lowercase();
    let invalid = |why: &str| Err(RemoteError::new(RemoteErrorKind::InvalidUsername, why));
    if localpart.is_empty() {
        return invalid("The username is empty");
    }
    if !localpart.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'=' | b'-' | b'/' | b'+')) {
        return invalid("A username may only contain a-z, 0-9, and . _ = - / +");
    }
    if localpart.bytes().all(|b| b.is_ascii_digit()) {
        return invalid("Numeric usernames are reserved for guest accounts");
    }
    if localpart.starts_with('_') {
        return invalid("Usernames starting with '_' are reserved for application services");
    }
    let user_id = format!("@{localpart}:{server_name}");
    if user_id.len() > 255 {
        return invalid("The user id would be longer than 255 bytes");
    }
    UserId::parse(user_id).or_else(|_| invalid("Not a valid username"))
}

/// The local user a login names: a localpart or a full user id of this server.
pub fn login_user_id(user: &str, server_name: &ServerName) -> Option<OwnedUserId> {
    let user = user.trim();
    if user.starts_with('@') {
        let parsed = UserId::parse(user).ok()?;
        if parsed.server_name() != server_name {
            return None;
        }
        UserId::parse(format!("@{}:{server_name}", parsed.localpart().to_lowercase())).ok()
    } else {
        UserId::parse(format!("@{}:{server_name}", user.to_lowercase())).ok()
    }
}

pub fn check_policy(password: &str, policy: &PasswordPolicy) -> Result<(), RemoteError> {
    let weak = |why: &str| Err(RemoteError::new(RemoteErrorKind::WeakPassword, why));
    if password.chars().count() < policy.min_length {
        return weak(&format!("The password must be at least {} characters long", policy.min_length));
    }
    if policy.require_digit && !password.chars().any(|c| c.is_ascii_digit()) {
        return weak("The password must contain a digit");
    }
    if policy.require_symbol && !password.chars().any(|c| !c.is_alphanumeric()) {
        return weak("The password must contain a symbol");
    }
    if policy.require_lowercase && !password.chars().any(char::is_lowercase) {
        return weak("The password must contain a lowercase letter");
    }
    if policy.require_uppercase && !password.chars().any(char::is_uppercase) {
        return weak("The password must contain an uppercase letter");
    }
    Ok(())
}

/// Hashes a password with the configured cost, off the async threads.
pub async fn hash(password: String, cost: &PasswordHashing) -> anyhow::Result<String> {
    let params = Params::new(cost.memory_kib, cost.iterations, 1, None)
        .map_err(|e| anyhow::anyhow!("password hashing parameters: {e}"))?;
    tokio::task::spawn_blocking(move || {
        let salt_bytes: [u8; 16] = rand::random();
        let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
        let hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
        Ok(hash.to_string())
    })
    .await?
}

/// Whether `password` matches `stored`. With no stored hash (an unknown
/// user) a hash is still checked, so that timing does not tell which
/// usernames exist.
pub async fn verify(password: String, stored: Option<String>, cost: &PasswordHashing) -> anyhow::Result<bool> {
    static DECOY: OnceLock<String> = OnceLock::new();
    let known = stored.is_some();
    let stored = match stored {
        Some(stored) => stored,
        None => match DECOY.get() {
            Some(decoy) => decoy.clone(),
            None => {
                let decoy = hash("not anyone's password".to_owned(), cost).await?;
                DECOY.get_or_init(|| decoy).clone()
            }
        },
    };
    tokio::task::spawn_blocking(move || {
        let parsed =
            PasswordHash::new(&stored).map_err(|e| anyhow::anyhow!("a stored password hash is unreadable: {e}"))?;
        Ok(known && Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> &'static ServerName {
        <&ServerName>::try_from("example.org").unwrap()
    }

    #[test]
    fn usernames() {
        assert_eq!(new_user_id("Alice", server()).unwrap().as_str(), "@alice:example.org");
        for bad in ["", "al ice", "al:ice", "1234", "_bridge", "é", &"a".repeat(250)] {
            let err = new_user_id(bad, server()).unwrap_err();
            assert_eq!(err.kind, RemoteErrorKind::InvalidUsername, "{bad}");
        }
        assert!(new_user_id("a.b_c=d-e/f+g9", server()).is_ok());
    }

    #[test]
    fn login_names() {
        assert_eq!(login_user_id("Bob", server()).unwrap().as_str(), "@bob:example.org");
        assert_eq!(login_user_id("@Bob:example.org", server()).unwrap().as_str(), "@bob:example.org");
        assert!(login_user_id("@bob:elsewhere.org", server()).is_none());
    }

    #[test]
    fn policy() {
        let mut policy = PasswordPolicy::default();
        assert!(check_policy("short", &policy).is_err());
        assert!(check_policy("long enough", &policy).is_ok());
        policy.require_digit = true;
        policy.require_uppercase = true;
        assert!(check_policy("long enough", &policy).is_err());
        assert!(check_policy("Long enough 1", &policy).is_ok());
    }

    #[tokio::test]
    async fn hashes_verify_with_their_own_parameters() {
        let cheap = PasswordHashing { memory_kib: 8, iterations: 1 };
        let stored = hash("secret words".into(), &cheap).await.unwrap();
        let dearer = PasswordHashing { memory_kib: 64, iterations: 2 };
        assert!(verify("secret words".into(), Some(stored.clone()), &dearer).await.unwrap());
        assert!(!verify("other words".into(), Some(stored), &dearer).await.unwrap());
        assert!(!verify("secret words".into(), None, &cheap).await.unwrap());
    }
}
