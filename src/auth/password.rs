//! Password hashing (argon2id, OWASP parameters) and the password policy.

use std::sync::OnceLock;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};

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

/// Checks a password against a stored PHC hash. A malformed hash never matches.
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the same work as [`verify_password`] for a user that does not exist, so that the
/// answer's timing does not tell whether a username is taken.
pub fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let hash = DUMMY
        .get_or_init(|| hash_password("medlabel dummy password for timing").unwrap_or_default());
    let _ = verify_password(hash, password);
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
