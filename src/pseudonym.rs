//! The pseudonym key and what is derived from it (API.md "Patients, studies and subjects").
//!
//! - A subject's pseudonym: `S-` + RFC 4648 base32 (upper case, no padding) of the first
//!   10 bytes (80 bits) of HMAC-SHA256 (RFC 2104) under the key, of the UTF-8 of
//!   `issuer + U+0000 + patient ID`: 16 characters. Without the key it cannot be computed from
//!   the patient ID; with the same key it is the same on every instance and after every restart.
//! - The key's fingerprint, recorded in the database so that a server started with another key
//!   refuses to run (every pseudonym would change silently otherwise). It is an HMAC of a fixed
//!   label, so it reveals nothing about the key.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The smallest accepted key, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// The length of a subject id: `S-` and 16 base32 characters.
pub const SUBJECT_ID_LEN: usize = 18;

/// The pseudonym key (its bytes never reach `Debug` output or logs).
#[derive(Clone)]
pub struct PseudonymKey(Vec<u8>);

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey([redacted])")
    }
}

impl PseudonymKey {
    /// A key of [`MIN_KEY_BYTES`] or more bytes; `Err` names the problem otherwise.
    pub fn new(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(format!(
                "must hold at least {MIN_KEY_BYTES} bytes, it holds {}",
                bytes.len()
            ));
        }
        Ok(PseudonymKey(bytes))
    }

    /// HMAC-SHA256 of `message` under the key (32 bytes).
    pub fn mac(&self, message: &[u8]) -> [u8; 32] {
        // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// The subject pseudonym of patient `patient_id` issued by `issuer` (`""` when none):
    /// `S-` + 16 base32 characters.
    pub fn subject_id(&self, issuer: &str, patient_id: &str) -> String {
        let mut message = Vec::with_capacity(issuer.len() + 1 + patient_id.len());
        message.extend_from_slice(issuer.as_bytes());
        message.push(0);
        message.extend_from_slice(patient_id.as_bytes());
        let digest = self.mac(&message);
        format!("S-{}", data_encoding::BASE32_NOPAD.encode(&digest[..10]))
    }

    /// A fingerprint of the key (32 hex digits) that tells keys apart without revealing them.
    pub fn fingerprint(&self) -> String {
        hex::encode(&self.mac(b"medlabel pseudonym key fingerprint v1")[..16])
    }
}

/// Whether `text` has the form of a subject id (`S-` and 16 base32 characters).
pub fn is_subject_id(text: &str) -> bool {
    text.len() == SUBJECT_ID_LEN
        && text.starts_with("S-")
        && data_encoding::BASE32_NOPAD
            .decode(&text.as_bytes()[2..])
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_ids_follow_the_contract_formula() {
        let key = PseudonymKey::new(vec![7u8; 32]).unwrap();
        let id = key.subject_id("HOSP", "12345");
        // Independently: HMAC-SHA256(key, "HOSP\0" "12345"), first 10 bytes, base32.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&[7u8; 32]).unwrap();
        mac.update(b"HOSP\x0012345");
        let digest = mac.finalize().into_bytes();
        assert_eq!(
            id,
            format!("S-{}", data_encoding::BASE32_NOPAD.encode(&digest[..10]))
        );
        assert_eq!(id.len(), SUBJECT_ID_LEN);
        assert!(is_subject_id(&id));
        assert_ne!(id, key.subject_id("", "12345"));
        assert_ne!(id, key.subject_id("HOSP1", "2345"), "the NUL separates");
        let other = PseudonymKey::new(vec![8u8; 32]).unwrap();
        assert_ne!(id, other.subject_id("HOSP", "12345"));
        assert_ne!(key.fingerprint(), other.fingerprint());
        assert!(!is_subject_id("S-abc") && !is_subject_id("S-0000000000000000"));
    }

    #[test]
    fn short_keys_are_refused_and_never_printed() {
        assert!(PseudonymKey::new(vec![1; 31]).is_err());
        let key = PseudonymKey::new(vec![b'k'; 40]).unwrap();
        assert_eq!(format!("{key:?}"), "PseudonymKey([redacted])");
    }
}
