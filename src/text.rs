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

/// Replaces known identifiers in free text with `[redacted]`: each term matched ignoring case
/// (in its written, full upper-case, full lower-case and case-folded forms, so `STRAUSS`
/// matches `Strauß` and `IŞIK` matches `Işık`), as a whole word (no letter, digit or `_`
/// directly before or after it, Unicode-aware), except in scripts written without spaces
/// between words (Han, Hiragana, Katakana, Thai), where a name is matched wherever it stands.
/// Built with [`Redactor::new`]; `None` when there is nothing to redact. When the terms cannot
/// be compiled (absurdly long ones), it fails closed: every text is redacted whole.
#[derive(Debug, Clone)]
pub enum Redactor {
    Terms(regex::Regex),
    Everything,
}

/// What redacted text shows instead of an identifier.
pub const REDACTED: &str = "[redacted]";

impl Redactor {
    /// A redactor for `terms` (blank terms are ignored); longer terms are tried first, so
    /// `1980-03-12` is redacted whole rather than `1980` alone.
    pub fn new<I: IntoIterator<Item = String>>(terms: I) -> Option<Redactor> {
        let mapper = CaseMapperBorrowed::new();
        let root = icu_locale_core::LanguageIdentifier::UNKNOWN;
        let mut forms: Vec<String> = Vec::new();
        for term in terms {
            let term = nfc(term.trim());
            if term.is_empty() {
                continue;
            }
            let upper = nfc(&mapper.uppercase_to_string(&term, &root));
            let lower = nfc(&mapper.lowercase_to_string(&term, &root));
            let dotless = |t: &str| t.replace('İ', "I").replace('ı', "i");
            forms.extend([dotless(&term), dotless(&upper), fold_key(&term)]);
            forms.extend([term, upper, lower]);
        }
        if forms.is_empty() {
            return None;
        }
        forms.sort_by(|a, b| b.chars().count().cmp(&a.chars().count()).then(a.cmp(b)));
        forms.dedup();
        let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        let alternatives: Vec<String> = forms
            .iter()
            .map(|t| {
                let spaced = !t.chars().any(unspaced_script);
                let before = if spaced && is_word(t.chars().next()) {
                    r"\b"
                } else {
                    ""
                };
                let after = if spaced && is_word(t.chars().last()) {
                    r"\b"
                } else {
                    ""
                };
                format!("{before}{}{after}", regex::escape(t))
            })
            .collect();
        let built = regex::RegexBuilder::new(&format!("(?:{})", alternatives.join("|")))
            .case_insensitive(true)
            .size_limit(1 << 22)
            .build();
        Some(match built {
            Ok(regex) => Redactor::Terms(regex),
            Err(_) => Redactor::Everything,
        })
    }

    /// `text` with every term replaced by [`REDACTED`] (all of it, failing closed).
    pub fn redact(&self, text: &str) -> String {
        match self {
            Redactor::Terms(regex) => regex.replace_all(&nfc(text), REDACTED).into_owned(),
            Redactor::Everything => REDACTED.to_owned(),
        }
    }
}

/// Whether `c` belongs to a script whose names stand in text without word boundaries: written
/// without spaces between words (Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar), or with
/// particles attached to the name (Hangul: `김민준님의`).
fn unspaced_script(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0EFF          // Thai, Lao
        | 0x1000..=0x109F        // Myanmar
        | 0x1100..=0x11FF        // Hangul Jamo
        | 0x3130..=0x318F        // Hangul Compatibility Jamo
        | 0xAC00..=0xD7AF        // Hangul syllables
        | 0x1780..=0x17FF        // Khmer
        | 0x3040..=0x30FF        // Hiragana, Katakana
        | 0x3400..=0x4DBF        // CJK Extension A
        | 0x4E00..=0x9FFF        // CJK Unified Ideographs
        | 0xF900..=0xFAFF        // CJK Compatibility Ideographs
        | 0x20000..=0x3134F) // CJK Extensions B-G
}

/// The identifiers a file or an upload form gives for its patient, as redaction terms: each
/// part of the name of two or more letters (PN components split at `^`, `=`, spaces and
/// commas, hyphenated and apostrophised parts also piece by piece), the patient ID, the
/// accession number, and the birth date (`YYYY-MM-DD`) as `YYYYMMDD`, `YYYY-MM-DD` and
/// `DD/MM/YYYY` (API.md "Patients, studies and subjects").
pub fn identifier_terms(
    name: Option<&str>,
    patient_id: Option<&str>,
    birth_date: Option<&str>,
    accession_number: Option<&str>,
) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    terms.extend(patient_id.map(str::to_owned));
    terms.extend(accession_number.map(str::to_owned));
    let letters = |s: &str| s.chars().filter(|c| c.is_alphabetic()).count();
    for part in name
        .unwrap_or_default()
        .split(|c: char| c == '^' || c == '=' || c == ',' || c.is_whitespace())
    {
        if letters(part) >= 2 {
            terms.push(part.to_owned());
        }
        // "Smith-Jones", "O'Brien": each piece on its own too.
        let pieces: Vec<&str> = part.split(|c: char| !c.is_alphabetic()).collect();
        if pieces.len() > 1 {
            terms.extend(
                pieces
                    .into_iter()
                    .filter(|s| letters(s) >= 2)
                    .map(str::to_owned),
            );
        }
    }
    // Names in scripts written without spaces stand whole in text (`王伟`, family name first):
    // each name group's components joined are a term too, even when each part is one letter.
    for group in name.unwrap_or_default().split('=') {
        if group.chars().any(unspaced_script) {
            let joined: String = group.split('^').collect();
            if joined.chars().count() >= 2 {
                terms.push(joined);
            }
        }
    }
    if let Some(date) =
        birth_date.and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    {
        terms.push(date.format("%Y%m%d").to_string());
        terms.push(date.format("%Y-%m-%d").to_string());
        terms.push(date.format("%d/%m/%Y").to_string());
    }
    terms.retain(|t| !t.trim().is_empty());
    terms.sort();
    terms.dedup();
    terms
}

/// Characters that render as nothing (Unicode `Default_Ignorable_Code_Point`, UAX #44): zero-
/// width spaces and joiners, bidirectional controls, the soft hyphen, variation selectors,
/// tag characters, the Hangul fillers and their kin. Two names differing only by them look the
/// same, and a name of them looks blank, so names refuse them.
fn is_invisible(c: char) -> bool {
    CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
}

/// Whether `text` holds a character that renders as nothing (see `is_invisible`).
pub fn has_invisible(text: &str) -> bool {
    text.chars().any(is_invisible)
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
    fn redaction_matches_full_case_forms_unspaced_scripts_and_fails_closed() {
        let r =
            Redactor::new(["Strauß", "Işık", "İlker", "山田", "Ægir"].map(String::from)).unwrap();
        assert_eq!(
            r.redact("STRAUSS strauss IŞIK ILKER ilker 山田太郎さん ÆGIR"),
            "[redacted] [redacted] [redacted] [redacted] [redacted] [redacted]太郎さん [redacted]"
        );
        assert_eq!(r.redact("Straussberg"), "Straussberg");
        let cjk = Redactor::new(identifier_terms(Some("王^伟"), None, None, None)).unwrap();
        assert_eq!(cjk.redact("王伟的胸部CT"), "[redacted]的胸部CT");
        let korean = Redactor::new(identifier_terms(Some("김^민준"), None, None, None)).unwrap();
        assert_eq!(korean.redact("김민준님의 CT"), "[redacted]님의 CT");
        let huge = Redactor::new(["x".repeat(200_000)]).unwrap();
        assert_eq!(huge.redact("anything at all"), REDACTED);
    }

    #[test]
    fn identifier_terms_cover_name_parts_ids_and_birth_date_forms() {
        let terms = identifier_terms(
            Some("Smith-Jones^Anna^B^^Dr"),
            Some("PAT-7"),
            Some("1980-03-12"),
            Some("ACC9"),
        );
        for t in [
            "PAT-7",
            "Smith-Jones",
            "Smith",
            "Jones",
            "Anna",
            "Dr",
            "19800312",
            "1980-03-12",
            "12/03/1980",
            "ACC9",
        ] {
            assert!(terms.iter().any(|x| x == t), "{t} in {terms:?}");
        }
        assert!(
            !terms.iter().any(|x| x == "B"),
            "one letter is not a name part"
        );
        assert!(identifier_terms(None, None, Some("not a date"), None).is_empty());
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
