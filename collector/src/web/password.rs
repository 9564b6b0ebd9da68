//! NOC users' passwords: Argon2id with a random 128-bit salt, stored as a PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$…`), verified in constant time by the argon2 crate. Hashing is
//! slow on purpose (≈ 20 MiB and tens of milliseconds): logins verify on [`verify_pooled`].

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Shortest password accepted for a NOC user.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted (bounds the hashing work an attacker can ask for).
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("a password needs at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("a password may have at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Checks a new password's length.
pub fn check_new(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

/// The PHC string of a new password (Argon2id, the crate's default parameters: OWASP's
/// m=19 MiB, t=2, p=1).
pub fn hash(password: &str) -> Result<String, PasswordError> {
    check_new(password)?;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PasswordError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the stored PHC string (a malformed one never matches).
pub fn verify(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// Threads that run login password checks. Checks never run on tokio's blocking pool: each
/// Argon2id check allocates ≈ 19 MiB, and the allocator keeps a freed block in the arena of the
/// thread that used it, so checks spread over hundreds of blocking threads keep hundreds of
/// blocks resident (a flood measured 204 MiB with only 2 checks at once). A fixed pool keeps
/// at most one block per thread; excess checks queue behind the login slots.
pub const VERIFY_THREADS: usize = 2;

type Job = Box<dyn FnOnce() + Send>;

fn verify_pool() -> Option<&'static std::sync::mpsc::Sender<Job>> {
    static POOL: std::sync::OnceLock<Option<std::sync::mpsc::Sender<Job>>> =
        std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..VERIFY_THREADS {
            let rx = rx.clone();
            let started = std::thread::Builder::new()
                .name(format!("password-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is released before the job runs.
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = started {
                log::error!("console: cannot start a password-check thread: {e}");
                return None;
            }
        }
        Some(tx)
    })
    .as_ref()
}

/// [`verify`] on the password-check threads; `guard` (e.g. the login slot) is dropped when the
/// check's memory is released. `false` when the pool cannot run it.
pub async fn verify_pooled(password: String, phc: String, guard: impl Send + 'static) -> bool {
    let Some(pool) = verify_pool() else {
        return false;
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let ok = verify(&password, &phc);
        drop(guard);
        let _ = tx.send(ok);
    });
    if pool.send(job).is_err() {
        return false;
    }
    rx.await.unwrap_or(false)
}

/// A PHC string that matches no password, verified when the user does not exist so that a
/// login takes as long for an unknown name as for a wrong password.
pub fn dummy_phc() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$SmHu1Ox8D6bJ6A0J4bd6V8pI9N3n6yQbQ7bTb3w0c0E"
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let phc = hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify("correct horse battery", &phc));
        assert!(!verify("correct horse batterx", &phc));
        assert!(!verify("x", "not a phc string"));
        assert_ne!(phc, hash("correct horse battery").unwrap(), "salted");
        assert!(matches!(hash("short"), Err(PasswordError::TooShort)));
        assert!(!verify("anything at all", dummy_phc()));
        // The dummy must be a real Argon2id hash with the default cost, or an unknown name
        // would fail fast (and cheap), telling which names exist.
        let dummy = PasswordHash::new(dummy_phc()).unwrap();
        let real = PasswordHash::new(&phc).unwrap();
        assert_eq!(dummy.params, real.params);
        assert_eq!(dummy.hash.map(|h| h.len()), real.hash.map(|h| h.len()));
    }
}
