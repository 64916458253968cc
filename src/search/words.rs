//! How code descriptions and queries are cut into words, and which words say little.

use icu_normalizer::{ComposingNormalizerBorrowed, DecomposingNormalizerBorrowed};

/// The words of `text`: lower case, accents removed (`Ménière` -> `meniere`), split at
/// every character that is not a letter or a digit, with the possessive `'s` dropped
/// (`Alzheimer's` -> `alzheimer`).
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    // Whether the word being read started right after an apostrophe.
    let (mut possessive, mut after_apostrophe) = (false, false);
    for c in fold(text).chars().chain([' ']) {
        if c.is_alphanumeric() {
            if current.is_empty() {
                possessive = after_apostrophe;
            }
            current.push(c);
        } else {
            let possessive_s = possessive && current == "s";
            if !current.is_empty() && !possessive_s {
                out.push(std::mem::take(&mut current));
            }
            current.clear();
        }
        after_apostrophe = matches!(c, '\'' | '\u{2019}');
    }
    out
}

/// `text` in Unicode Normalization Form KC: compatibility characters (full-width letters and
/// digits, ligatures) as their plain forms (UAX #15).
pub fn compatible(text: &str) -> String {
    if text.is_ascii() {
        return text.to_owned();
    }
    ComposingNormalizerBorrowed::new_nfkc()
        .normalize(text)
        .into_owned()
}

/// Case-folded without accents (Unicode full case folding, then canonical decomposition with
/// the combining marks dropped).
fn fold(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    // Compatibility forms (`ｐｎｅｕ`), then full case folding (`Straße` -> `strasse`, `ﬁ` ->
    // `fi`), then the accents off.
    DecomposingNormalizerBorrowed::new_nfd()
        .normalize(&crate::text::fold_key(&compatible(text)))
        .chars()
        .filter(|c| !('\u{300}'..='\u{36f}').contains(c))
        .collect()
}

/// Words left out of a query (when it has others): connecting words that descriptions
/// mostly do not repeat the way people type them ("pain in the chest").
pub fn is_stop_word(word: &str) -> bool {
    matches!(
        word,
        "a" | "an"
            | "and"
            | "as"
            | "at"
            | "by"
            | "for"
            | "from"
            | "in"
            | "is"
            | "of"
            | "on"
            | "or"
            | "the"
            | "to"
            | "with"
    )
}

/// Words of a description that do not make it more specific than the query: connecting
/// words and the qualifiers of the general code ("unspecified", "without complications",
/// "initial encounter"). A description with fewer *other* words is closer to the query.
pub fn is_filler(word: &str) -> bool {
    is_stop_word(word)
        || matches!(
            word,
            "without"
                | "due"
                | "not"
                | "unspecified"
                | "uncomplicated"
                | "complication"
                | "complications"
                | "mention"
                | "organism"
                | "site"
                | "primary"
                | "closed"
                | "specified"
                | "initial"
                | "encounter"
                | "stated"
                | "nos"
        )
}

/// Whether a description (its words) names the general code of its concept: "unspecified",
/// "not specified", "NOS", or "without complications" / "without mention of complication".
pub fn is_general(words: &[String]) -> bool {
    words.iter().any(|w| w == "unspecified" || w == "nos")
        || words
            .windows(2)
            .any(|p| p[0] == "not" && p[1] == "specified")
        || (words.iter().any(|w| w == "without")
            && words
                .iter()
                .any(|w| w == "complication" || w == "complications"))
}

/// The words a description names only after its first "without" ("Unspecified dementia,
/// unspecified severity, without behavioral disturbance, ... and anxiety"): what the code
/// does not have, so they do not make it more specific.
pub fn negated(words: &[String]) -> Vec<String> {
    let Some(at) = words.iter().position(|w| w == "without") else {
        return Vec::new();
    };
    let (before, after) = words.split_at(at);
    let mut negated: Vec<String> = after[1..]
        .iter()
        .filter(|w| !before.contains(w))
        .cloned()
        .collect();
    negated.sort();
    negated.dedup();
    negated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_fold_case_accents_and_possessives() {
        assert_eq!(
            words("Active Ménière's disease, cochlear"),
            ["active", "meniere", "disease", "cochlear"]
        );
        assert_eq!(
            words("Type 2 diabetes mellitus"),
            ["type", "2", "diabetes", "mellitus"]
        );
        assert_eq!(words("Alzheimer’s disease"), ["alzheimer", "disease"]);
        assert_eq!(words("  ,, "), Vec::<String>::new());
        assert_eq!(words("o'clock"), ["o", "clock"]);
        assert_eq!(
            words("STRASSE Straße ﬁbrose"),
            ["strasse", "strasse", "fibrose"]
        );
    }
}
