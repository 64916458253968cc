//! The contract's text rules, computed in Rust so that SQLite and PostgreSQL agree exactly:
//! - stored text is in Unicode NFC (UAX #15);
//! - names that are unique "ignoring case" are compared by their *key*: NFC, then full Unicode
//!   case folding (Unicode `CaseFolding.txt`, statuses C and F), then NFC again (folding can
//!   decompose), so `Ölçer`/`ÖLÇER` and a composed/decomposed `Ménière` have one key;
//! - names are refused when blank, or when they hold characters that make two names look alike
//!   or hide text: controls (including NUL) and default-ignorable characters (zero-width
//!   characters, bidirectional controls, Hangul fillers, variation selectors, tags).
//!
//! NFC and case folding come from ICU4X (`icu_normalizer`, `icu_casemap`).

use icu_casemap::CaseMapperBorrowed;
use icu_normalizer::ComposingNormalizerBorrowed;
use icu_properties::props::DefaultIgnorableCodePoint;
use icu_properties::CodePointSetData;

/// `text` in Unicode Normalization Form C.
pub fn nfc(text: &str) -> String {
    ComposingNormalizerBorrowed::new_nfc()
        .normalize(text)
        .into_owned()
}

/// The comparison key of a name: NFC, full case folding, NFC again. ASCII text (NFC already,
/// and folded by lower-casing) takes a fast path.
pub fn fold_key(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    let folded = CaseMapperBorrowed::new()
        .fold_string(&nfc(text))
        .into_owned();
    nfc(&folded)
}

/// Characters that render as nothing (Unicode `Default_Ignorable_Code_Point`, UAX #44): zero-
/// width spaces and joiners, bidirectional controls, the soft hyphen, variation selectors,
/// tag characters, the Hangul fillers and their kin. Two names differing only by them look the
/// same, and a name of them looks blank, so names refuse them.
fn is_invisible(c: char) -> bool {
    CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
}

/// Why a username is refused, as a field error message; `None` when it is acceptable.
/// Usernames: 1 to 150 letters, digits and `@ . + - _` (what other systems accept too),
/// judged in NFC (a letter typed as base + combining mark counts as the one letter), and no
/// character [`name_problem`] refuses.
pub fn username_problem(username: &str) -> Option<&'static str> {
    let username = nfc(username);
    if let Some(problem) = name_problem(&username) {
        return Some(problem);
    }
    let ok = (1..=150).contains(&username.chars().count())
        && username
            .chars()
            .all(|c| c.is_alphanumeric() || "@.+-_".contains(c));
    (!ok).then_some("must be 1 to 150 letters, digits or @ . + - _")
}

/// Why a name is refused, as a field error message; `None` when it is acceptable.
pub fn name_problem(name: &str) -> Option<&'static str> {
    if name.trim().is_empty() {
        return Some("must not be blank");
    }
    if name.contains('\0') {
        return Some("must not contain NUL characters");
    }
    if name.chars().any(char::is_control) {
        return Some("must not contain control characters");
    }
    if name.chars().any(is_invisible) {
        return Some(
            "must not contain invisible characters (zero-width, bidirectional controls, fillers)",
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_case_and_normalisation_form() {
        assert_eq!(fold_key("Ölçer"), fold_key("ÖLÇER"));
        assert_eq!(fold_key("Ärztin"), fold_key("ärztin"));
        assert_eq!(fold_key("ZOË"), fold_key("Zoë"));
        assert_eq!(fold_key("ÉLODIE"), fold_key("élodie"));
        // composed U+00E9 and decomposed e + U+0301
        assert_eq!(
            fold_key("M\u{e9}ni\u{e8}re"),
            fold_key("Me\u{301}nie\u{300}re")
        );
        // full folding: ß = ss, ſ = s
        assert_eq!(fold_key("STRASSE"), fold_key("straße"));
        assert_eq!(fold_key("ſecret"), "secret");
        assert_ne!(fold_key("Zoe"), fold_key("Zoë"));
    }

    #[test]
    fn nfc_composes() {
        assert_eq!(nfc("e\u{301}"), "\u{e9}");
    }

    #[test]
    fn invisible_and_blank_names_are_refused() {
        for bad in [
            "",
            "   ",
            "\t",
            "a\u{200B}b",
            "x\u{202E}y",
            "a\0b",
            "a\nb",
            "\u{FEFF}x",
        ] {
            assert!(name_problem(bad).is_some(), "{bad:?}");
        }
        for good in ["Pneumonia", "Ménière", "Ölçer", "dr.house", "ZOË"] {
            assert_eq!(name_problem(good), None, "{good}");
        }
    }
}
