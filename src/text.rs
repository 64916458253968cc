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

/// Replaces known identifiers in free text with `[redacted]`: each term matched as a whole
/// word (no letter, digit or `_` directly before or after it, Unicode-aware), ignoring case.
/// Built once per patient with [`Redactor::new`]; `None` when there is nothing to redact.
#[derive(Debug, Clone)]
pub struct Redactor(regex::Regex);

/// What redacted text shows instead of an identifier.
pub const REDACTED: &str = "[redacted]";

impl Redactor {
    /// A redactor for `terms` (blank terms are ignored); longer terms are tried first, so
    /// `1980-03-12` is redacted whole rather than `1980` alone.
    pub fn new<I: IntoIterator<Item = String>>(terms: I) -> Option<Redactor> {
        let mut terms: Vec<String> = terms
            .into_iter()
            .map(|t| nfc(t.trim()))
            .filter(|t| !t.is_empty())
            .collect();
        if terms.is_empty() {
            return None;
        }
        terms.sort_by(|a, b| b.chars().count().cmp(&a.chars().count()).then(a.cmp(b)));
        terms.dedup();
        let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        let alternatives: Vec<String> = terms
            .iter()
            .map(|t| {
                let before = if is_word(t.chars().next()) { r"\b" } else { "" };
                let after = if is_word(t.chars().last()) { r"\b" } else { "" };
                format!("{before}{}{after}", regex::escape(t))
            })
            .collect();
        regex::RegexBuilder::new(&format!("(?:{})", alternatives.join("|")))
            .case_insensitive(true)
            .size_limit(1 << 22)
            .build()
            .ok()
            .map(Redactor)
    }

    /// `text` with every term replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        self.0.replace_all(&nfc(text), REDACTED).into_owned()
    }
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

    #[test]
    fn redaction_replaces_whole_words_ignoring_case() {
        let r = Redactor::new(
            [
                "Doe",
                "John",
                "PAT-0042",
                "19800312",
                "1980-03-12",
                "12/03/1980",
                "Ölçer",
            ]
            .map(String::from),
        )
        .unwrap();
        assert_eq!(
            r.redact("john DOE (pat-0042), born 12/03/1980 = 1980-03-12 = 19800312; ÖLÇER"),
            "[redacted] [redacted] ([redacted]), born [redacted] = [redacted] = [redacted]; [redacted]"
        );
        assert_eq!(
            r.redact("Johnson Doeth PAT-00421"),
            "Johnson Doeth PAT-00421"
        );
        assert_eq!(r.redact("nothing here"), "nothing here");
        assert!(Redactor::new(["  ".to_owned()]).is_none());
        let regex_chars = Redactor::new(["a.b*(".to_owned()]).unwrap();
        assert_eq!(regex_chars.redact("x a.b*( y axb"), "x [redacted] y axb");
    }
}
