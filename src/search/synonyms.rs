//! The synonyms and abbreviations a query is expanded with (`seeds/synonyms.tsv`).

use std::collections::HashMap;
use std::sync::OnceLock;

use super::words::{is_stop_word, words};

/// Terms people type (`mi`, `heart attack`) and the words descriptions use for them
/// (`acute myocardial infarction`). A term may have several expansions.
#[derive(Debug, Default)]
pub struct Synonyms {
    expansions: HashMap<Vec<String>, Vec<Vec<String>>>,
    /// The most words in one term.
    longest: usize,
}

/// The words of a term that a query's lookup sees: its words without stop words (so
/// `water on the brain` finds the term `water on brain`).
pub fn content_words(text: &str) -> Vec<String> {
    let all = words(text);
    let kept: Vec<String> = all.iter().filter(|w| !is_stop_word(w)).cloned().collect();
    if kept.is_empty() {
        all
    } else {
        kept
    }
}

/// The file bundled in the binary.
const BUNDLED: &str = include_str!("../../seeds/synonyms.tsv");

/// A query has at most this many rewritings (its own words included).
pub const MAX_REWRITINGS: usize = 8;

impl Synonyms {
    /// Reads `term<TAB>expansion` lines; `#` starts a comment line, blank lines are skipped.
    /// Terms and expansions are cut into words as descriptions are.
    ///
    /// Errors: the 1-based number of a line without a tab or with an empty side.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut synonyms = Synonyms::default();
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (term, expansion) = line
                .split_once('\t')
                .ok_or_else(|| format!("line {}: no tab between term and expansion", number + 1))?;
            let (term, expansion) = (content_words(term), words(expansion));
            if term.is_empty() || expansion.is_empty() {
                return Err(format!("line {}: an empty term or expansion", number + 1));
            }
            synonyms.longest = synonyms.longest.max(term.len());
            let list = synonyms.expansions.entry(term).or_default();
            if !list.contains(&expansion) {
                list.push(expansion);
            }
        }
        Ok(synonyms)
    }

    /// The bundled list, parsed once (a unit test checks that it parses).
    pub fn bundled() -> &'static Synonyms {
        static PARSED: OnceLock<Synonyms> = OnceLock::new();
        PARSED.get_or_init(|| Synonyms::parse(BUNDLED).unwrap_or_default())
    }

    /// How many terms the list has.
    pub fn len(&self) -> usize {
        self.expansions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.expansions.is_empty()
    }

    /// `query` is a query's content words ([`content_words`]). Returns the query's words,
    /// then its rewritings: each term found in the query (longest first,
    /// left to right, not overlapping) replaced by each of its expansions, and, when several
    /// terms were found, all of them replaced by their first expansions. At most
    /// [`MAX_REWRITINGS`] in all.
    pub fn rewritings(&self, query: &[String]) -> Vec<Vec<String>> {
        let mut spans: Vec<(usize, usize, &Vec<Vec<String>>)> = Vec::new();
        let mut at = 0;
        while at < query.len() {
            let found = (1..=self.longest.min(query.len() - at))
                .rev()
                .find_map(|n| self.expansions.get(&query[at..at + n]).map(|e| (n, e)));
            match found {
                Some((n, expansions)) => {
                    spans.push((at, n, expansions));
                    at += n;
                }
                None => at += 1,
            }
        }
        let replace = |choices: &[(usize, usize, &Vec<String>)]| -> Vec<String> {
            let mut out = Vec::new();
            let mut at = 0;
            for (start, n, expansion) in choices {
                out.extend_from_slice(&query[at..*start]);
                out.extend(expansion.iter().cloned());
                at = start + n;
            }
            out.extend_from_slice(&query[at..]);
            out
        };
        let mut all = vec![query.to_vec()];
        for (start, n, expansions) in &spans {
            for expansion in expansions.iter() {
                all.push(replace(&[(*start, *n, expansion)]));
            }
        }
        if spans.len() > 1 {
            let firsts: Vec<_> = spans.iter().map(|(s, n, e)| (*s, *n, &e[0])).collect();
            all.push(replace(&firsts));
        }
        let mut unique: Vec<Vec<String>> = Vec::new();
        for rewriting in all {
            if !unique.contains(&rewriting) && unique.len() < MAX_REWRITINGS {
                unique.push(rewriting);
            }
        }
        unique
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(text: &str) -> Vec<String> {
        words(text)
    }

    #[test]
    fn the_bundled_list_parses_and_is_not_small() {
        let parsed = Synonyms::parse(BUNDLED).expect("seeds/synonyms.tsv parses");
        assert!(parsed.len() >= 200, "{} terms", parsed.len());
    }

    #[test]
    fn terms_are_replaced_longest_first() {
        let synonyms =
            Synonyms::parse("heart attack\tmyocardial infarction\nmi\tacute myocardial infarction\nattack\tepisode\n")
                .unwrap();
        assert_eq!(
            synonyms.rewritings(&w("old heart attack")),
            vec![w("old heart attack"), w("old myocardial infarction")]
        );
        assert_eq!(
            synonyms.rewritings(&w("mi")),
            vec![w("mi"), w("acute myocardial infarction")]
        );
        assert_eq!(synonyms.rewritings(&w("fracture")), vec![w("fracture")]);
        assert!(Synonyms::parse("no tab here\n").is_err());
    }
}
