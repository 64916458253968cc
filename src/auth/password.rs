//! Password hashing (argon2id, OWASP parameters) and the password policy.
//!
//! Request handlers hash and verify through [`hash_async`] and [`verify_async`], which run on a
//! small dedicated pool of threads. Each pool thread owns its argon2 working memory (19 MiB) and
//! reuses it, so that (a) memory for hashing is bounded however many logins arrive at once, and
//! (b) every verification costs the same whichever hash it checks: login timing does not tell
//! whether a username exists.

use std::sync::{mpsc, Arc, Mutex, OnceLock};

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// OWASP's first recommended argon2id setting: 19 MiB, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;

pub const MIN_LENGTH: usize = 12;
pub const MAX_LENGTH: usize = 256;

static COMMON_PASSWORDS: &str = include_str!("../../seeds/common-passwords.txt");

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None)
        .expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
}

/// Checks a password against a stored PHC hash (with the parameters the hash names). A
/// malformed hash never matches.
pub fn verify_password(hash: &str, password: &str) -> bool {
    verify_with_memory(hash, password, &mut Vec::new())
}

/// Verification into caller-owned working memory, grown to the hash's memory cost once.
fn verify_with_memory(hash: &str, password: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    if parsed.algorithm != argon2::ARGON2ID_IDENT {
        return false;
    }
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut output = vec![0u8; expected.len()];
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let computed = argon2.hash_password_into_with_memory(
        password.as_bytes(),
        salt,
        &mut output,
        &mut memory[..blocks],
    );
    // `Output` compares in constant time.
    computed.is_ok() && argon2::password_hash::Output::new(&output).is_ok_and(|out| out == expected)
}

/// A hash with the service's parameters that no password matches in practice: checked for
/// unknown users so that their login costs the same as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&generate_password()).unwrap_or_default())
}

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// The hashing threads, started on first use; each keeps its argon2 memory between jobs.
fn pool() -> &'static mpsc::Sender<Job> {
    static POOL: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 4);
        for i in 0..threads {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    let mut memory = Vec::new();
                    loop {
                        let job = match queue.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(err) = spawned {
                tracing::error!(error = %err, "could not start a password hashing thread");
            }
        }
        jobs
    })
}

async fn on_pool<T: Send + 'static>(
    f: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
) -> anyhow::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    pool()
        .send(Box::new(move |memory| {
            let _ = tx.send(f(memory));
        }))
        .map_err(|_| anyhow::anyhow!("the password hashing pool has stopped"))?;
    rx.await
        .map_err(|_| anyhow::anyhow!("a password hashing job failed"))
}

/// Verifies on the hashing pool. `None` for the hash means "unknown user": the dummy hash is
/// checked instead, and the answer is false.
pub async fn verify_async(hash: Option<String>, password: String) -> anyhow::Result<bool> {
    on_pool(move |memory| match hash {
        Some(hash) => verify_with_memory(&hash, &password, memory),
        None => {
            let _ = verify_with_memory(dummy_hash(), &password, memory);
            false
        }
    })
    .await
}

/// Hashes on the hashing pool.
pub async fn hash_async(password: String) -> anyhow::Result<String> {
    on_pool(move |_| hash_password(&password)).await?
}

/// The policy: 12 to 256 characters (never truncated), not the username, not a common password.
/// Returns the message for `errors.password` when the password is refused.
pub fn check_policy(password: &str, username: &str) -> Result<(), String> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(format!("must be at least {MIN_LENGTH} characters long"));
    }
    if length > MAX_LENGTH {
        return Err(format!("must be at most {MAX_LENGTH} characters long"));
    }
    let lowered = password.to_lowercase();
    if lowered == username.to_lowercase() {
        return Err("must not be the username".into());
    }
    if COMMON_PASSWORDS.lines().any(|common| common == lowered) {
        return Err("is too common".into());
    }
    Ok(())
}

/// A random password that passes the policy (for generated accounts), 24 characters.
pub fn generate_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 24)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_uses_argon2id_with_owasp_parameters_and_verifies() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse batterY"));
        assert!(!verify_password("not a hash", "x"));
        let weaker = {
            let params = Params::new(8, 1, 1, None).unwrap();
            let salt = SaltString::generate(&mut OsRng);
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(b"pw", &salt)
                .unwrap()
                .to_string()
        };
        assert!(
            verify_password(&weaker, "pw"),
            "hashes keep verifying with the parameters they name"
        );
    }

    #[actix_web::test]
    async fn the_pool_hashes_and_verifies_and_unknown_users_never_match() {
        let hash = hash_async("correct horse battery".into()).await.unwrap();
        assert!(
            verify_async(Some(hash.clone()), "correct horse battery".into())
                .await
                .unwrap()
        );
        assert!(!verify_async(Some(hash), "wrong".into()).await.unwrap());
        assert!(!verify_async(None, "anything".into()).await.unwrap());
    }

    #[test]
    fn policy_refuses_short_long_username_and_common_passwords() {
        assert!(check_policy("short", "alice").is_err());
        assert!(check_policy(&"x".repeat(257), "alice").is_err());
        assert!(
            check_policy(&"é".repeat(256), "alice").is_ok(),
            "length counts characters, not bytes"
        );
        assert!(check_policy("Alice-The-Doctor", "alice-the-doctor").is_err());
        assert!(check_policy("123456789012", "alice").is_err());
        assert!(check_policy("PasswordPassword", "alice").is_err());
        assert!(check_policy("a sound long passphrase", "alice").is_ok());
        assert!(check_policy(&generate_password(), "alice").is_ok());
    }
}
