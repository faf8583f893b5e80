//! What a username and a password must be, and how passwords are kept:
//! Argon2id, with the cost the config gives; a stored hash carries its own
//! parameters, so raising the cost does not lock anyone out.

use std::{
    cell::RefCell,
    num::NonZero,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex, OnceLock, mpsc},
};

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::{Output, ParamsString, Salt, SaltString},
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

/// A hash or a verification, to run on a hasher thread.
type Job = Box<dyn FnOnce() + Send>;

/// Where hashes and verifications are queued. Each needs `memory_kib` (19 MiB
/// by default) while it runs, so they run on a fixed set of threads, one per
/// CPU, and a login storm waits in the queue rather than taking memory with
/// it. Each thread keeps its Argon2 memory from one hash to the next
/// ([`with_memory`]), so memory peaks, and stays, at hashers × cost.
fn hashers() -> &'static mpsc::Sender<Job> {
    static HASHERS: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    HASHERS.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..std::thread::available_parallelism().map_or(1, NonZero::get) {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("password-hasher-{n}"))
                .spawn(move || {
                    loop {
                        // The guard goes at the end of the statement: one thread waits, the others queue for the lock.
                        let job = receiver.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok(job) = job else { return };
                        // A panicking job fails its own caller only.
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                    }
                })
                .expect("cannot start a password hasher thread");
        }
        sender
    })
}

/// Argon2 of `password` with these parameters, in the calling thread's
/// memory. Freed and allocated again for every hash, as `Argon2::hash_password`
/// does, that memory is not reused by glibc's malloc: a thread's arena grew by
/// the cost with each hash, up to some 150 MiB per thread.
fn with_memory<'a>(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: Salt<'a>,
) -> anyhow::Result<PasswordHash<'a>> {
    thread_local! {
        static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
    }
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = MEMORY.with_borrow_mut(|memory| {
        if memory.len() < params.block_count() {
            memory.resize(params.block_count(), Block::new());
        }
        Output::init_with(output_len, |out| {
            argon2.hash_password_into_with_memory(password, salt_bytes, out, &mut memory[..]).map_err(Into::into)
        })
    });
    let output = output.map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
    Ok(PasswordHash {
        algorithm: algorithm.ident(),
        version: Some(version.into()),
        params: ParamsString::try_from(&params).map_err(|e| anyhow::anyhow!("password hashing parameters: {e}"))?,
        salt: Some(salt),
        hash: Some(output),
    })
}

/// Runs `work` on a hasher thread, once one is free; not at all when the
/// caller has gone away by then (a client that gave up costs no hash).
async fn on_hasher<T: Send + 'static>(work: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        if !done.is_closed() {
            let _ = done.send(work());
        }
    });
    hashers().send(job).map_err(|_| anyhow::anyhow!("the password hashers have stopped"))?;
    result.await.map_err(|_| anyhow::anyhow!("a password hasher failed"))?
}

/// Hashes a password with the configured cost, on a hasher thread.
pub async fn hash(password: String, cost: &PasswordHashing) -> anyhow::Result<String> {
    let params = Params::new(cost.memory_kib, cost.iterations, 1, None)
        .map_err(|e| anyhow::anyhow!("password hashing parameters: {e}"))?;
    on_hasher(move || {
        let salt_bytes: [u8; 16] = rand::random();
        let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
        let hash = with_memory(Algorithm::Argon2id, Version::V0x13, params, password.as_bytes(), salt.as_salt())?;
        Ok(hash.to_string())
    })
    .await
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
    on_hasher(move || {
        let parsed =
            PasswordHash::new(&stored).map_err(|e| anyhow::anyhow!("a stored password hash is unreadable: {e}"))?;
        let (Some(salt), Some(expected)) = (parsed.salt, &parsed.hash) else { return Ok(false) };
        // The stored hash's own algorithm, version and parameters, as
        // `PasswordVerifier` takes them; a hash of another kind matches nothing.
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else { return Ok(false) };
        let Ok(version) = parsed.version.map_or(Ok(Version::default()), Version::try_from) else { return Ok(false) };
        let Ok(params) = Params::try_from(&parsed) else { return Ok(false) };
        let computed = with_memory(algorithm, version, params, password.as_bytes(), salt)?;
        // `Output`'s comparison takes constant time.
        Ok(known && computed.hash.as_ref() == Some(expected))
    })
    .await
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_hashes_run_at_once_than_there_are_hashers() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static RUNNING: AtomicUsize = AtomicUsize::new(0);
        static MOST: AtomicUsize = AtomicUsize::new(0);
        let jobs: Vec<_> = (0..32)
            .map(|_| {
                tokio::spawn(on_hasher(|| {
                    let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
                    MOST.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    RUNNING.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                }))
            })
            .collect();
        for job in jobs {
            job.await.unwrap().unwrap();
        }
        let hashers = std::thread::available_parallelism().map_or(1, NonZero::get);
        assert!(MOST.load(Ordering::SeqCst) <= hashers, "{} at once", MOST.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn hashes_are_argon2s_own() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let cheap = PasswordHashing { memory_kib: 8, iterations: 1 };
        let ours = hash("secret words".into(), &cheap).await.unwrap();
        assert!(Argon2::default().verify_password(b"secret words", &PasswordHash::new(&ours).unwrap()).is_ok());
        let salt = SaltString::encode_b64(&[7; 16]).unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(16, 2, 1, None).unwrap())
            .hash_password(b"secret words", &salt)
            .unwrap()
            .to_string();
        assert!(verify("secret words".into(), Some(theirs.clone()), &cheap).await.unwrap());
        assert!(!verify("other words".into(), Some(theirs), &cheap).await.unwrap());
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x10, Params::new(8, 1, 1, None).unwrap())
            .hash_password(b"secret words", &salt)
            .unwrap()
            .to_string();
        assert!(verify("secret words".into(), Some(argon2i), &cheap).await.unwrap());
        let other_kind = "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
        assert!(!verify("secret words".into(), Some(other_kind.into()), &cheap).await.unwrap());
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
