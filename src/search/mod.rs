//! The in-memory index behind `GET /codes?q=` (API.md "Labels, diseases, codes"): every
//! active code's description cut into words, searched so that a query costs the same however
//! many codes it matches.
//!
//! - **Words** are an `fst` map (word -> word id), so a query word expands to its exact forms
//!   (itself, with or without a final `s`), to every word it begins (`pneu` -> `pneumonia`,
//!   ...) and to every word within Levenshtein distance 1 (words of 5-7 letters) or 2
//!   (8 or more), counting a transposition as one edit (`levenshtein_automata`'s DFA run
//!   over the fst).
//! - **Codes** are numbered in their *static* order: billable before category headers, then
//!   shorter descriptions, then by code. Each word's posting list holds its codes in that
//!   order, so the best codes of a word come first and a search stops after the codes a page
//!   needs instead of scoring every match.
//! - **Ranking**: an exact code (`J18.9`, `j189`, `486`); codes starting with the query
//!   (`S72.0`); then descriptions holding every query word (in any order), in four tiers:
//!   every word matched as typed and the description starting with one of them, every word
//!   matched as typed, and the same two with completed or misspelled words. Within a tier the
//!   first [`POOL`] codes are ordered by how few other words their description has (fillers
//!   such as "unspecified" or "initial encounter" not counted), then statically.
//! - **Synonyms** (`seeds/synonyms.tsv`) rewrite a query (`mi` -> `acute myocardial
//!   infarction`); a code matched through a rewriting counts as matched as typed.
//! - **Changes** since the index was built sit in an [`Overlay`] that every search consults.
//!
//! Memory: about 12 bytes per code and 4 bytes per (word, code) pair, roughly 8 MiB for the
//! 112k bundled ICD codes.

mod synonyms;
mod words;

pub use synonyms::Synonyms;
pub use words::words;

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::OnceLock;

use fst::{Automaton, IntoStreamer, Streamer};
use levenshtein_automata::{Distance, LevenshteinAutomatonBuilder, DFA, SINK_STATE};

/// How many codes of each tier are ordered by their number of other words.
pub const POOL: usize = 300;
/// A search ranks at most this many codes (pages beyond them are empty): a page costs the
/// same however deep it is.
pub const MAX_RANKED: usize = 1000;
/// A query uses at most this many words.
const MAX_WORDS: usize = 8;

/// One code as the index is built from it and as a change reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The database id.
    pub id: i64,
    /// The public id (`Code.id` in the API).
    pub uuid: String,
    /// The row's version; a change is newer when its version is higher.
    pub version: i32,
    pub system: String,
    pub code: String,
    pub description: String,
    pub billable: bool,
    pub is_active: bool,
}

/// Changes the index has not been rebuilt with: the newest state of each changed code. An
/// entry hides the code's indexed state, and matches (when active) by its own text.
#[derive(Debug, Default, Clone)]
pub struct Overlay {
    entries: HashMap<i64, Entry>,
}

impl Overlay {
    /// Records `entry` unless a newer state of it is recorded already.
    pub fn apply(&mut self, entry: Entry) {
        match self.entries.get(&entry.id) {
            Some(held) if held.version >= entry.version => {}
            _ => {
                self.entries.insert(entry.id, entry);
            }
        }
    }

    /// Drops the entries `index` already holds (at their version or later).
    pub fn prune(&mut self, index: &Index) {
        self.entries
            .retain(|id, entry| index.version_of(*id).is_none_or(|v| v < entry.version));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The version of code `id` the overlay holds, if any.
    pub fn version_of(&self, id: i64) -> Option<i32> {
        self.entries.get(&id).map(|e| e.version)
    }
}

/// A code in a page of results, as the API shows it (the index holds active codes only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub id: i64,
    pub uuid: String,
    pub system: String,
    pub code: String,
    pub description: String,
    pub billable: bool,
}

impl Hit {
    fn of(entry: &Entry) -> Hit {
        Hit {
            id: entry.id,
            uuid: entry.uuid.clone(),
            system: entry.system.clone(),
            code: entry.code.clone(),
            description: entry.description.clone(),
            billable: entry.billable,
        }
    }
}

/// Lists of `u32` per key, flat (compressed sparse rows).
#[derive(Debug, Default)]
struct Lists {
    starts: Vec<u32>,
    items: Vec<u32>,
}

impl Lists {
    /// From (key, item) pairs; each list comes out sorted and without repeats.
    fn from_pairs(keys: usize, mut pairs: Vec<(u32, u32)>) -> Lists {
        pairs.sort_unstable();
        pairs.dedup();
        let mut starts = vec![0u32; keys + 1];
        for (key, _) in &pairs {
            starts[*key as usize + 1] += 1;
        }
        for i in 0..keys {
            starts[i + 1] += starts[i];
        }
        Lists {
            starts,
            items: pairs.into_iter().map(|(_, item)| item).collect(),
        }
    }

    fn get(&self, key: u32) -> &[u32] {
        let key = key as usize;
        &self.items[self.starts[key] as usize..self.starts[key + 1] as usize]
    }
}

/// A set of word ids.
#[derive(Debug, Clone)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(size: usize) -> Bits {
        Bits(vec![0; size.div_ceil(64)])
    }
    fn insert(&mut self, word: u32) {
        self.0[word as usize / 64] |= 1 << (word % 64);
    }
    fn contains(&self, word: u32) -> bool {
        self.0
            .get(word as usize / 64)
            .is_some_and(|b| b & (1 << (word % 64)) != 0)
    }
}

#[derive(Debug, Clone, Copy)]
struct Doc {
    id: i64,
    /// Position in the static order over all systems.
    rank: u32,
    billable: bool,
    /// Characters in the description.
    length: u16,
    system: u8,
}

/// The index of one snapshot of the codes table.
pub struct Index {
    systems: Vec<String>,
    /// Each system's docs: a range of doc numbers.
    partitions: Vec<(u32, u32)>,
    docs: Vec<Doc>,
    /// Doc -> its code (a slice of `code_text`).
    code_ends: Vec<u32>,
    code_text: String,
    /// Doc -> its description (a slice of `description_text`).
    description_ends: Vec<u32>,
    description_text: String,
    /// Doc -> its UUID, as a number when its text is the canonical form, else in `odd_uuids`.
    uuids: Vec<u128>,
    odd_uuids: HashMap<u32, String>,
    words: fst::Map<Vec<u8>>,
    word_count: usize,
    /// Word -> the docs holding it.
    postings: Lists,
    /// Doc -> its words.
    doc_words: Lists,
    /// Doc -> the words it names only after "without" (what the code does *not* have).
    negated: Lists,
    first_word: Vec<u32>,
    fillers: Bits,
    /// Doc -> whether its description names the general code of its concept.
    general: Vec<bool>,
    /// System (partition number) then code key -> doc.
    codes: fst::Map<Vec<u8>>,
    /// (id, version, doc or `u32::MAX` when inactive) of every code read, sorted by id.
    versions: Vec<(i64, i32, u32)>,
    synonyms: &'static Synonyms,
}

/// A code's comparison key: upper case without dots (`j189` and `J18.9` are one code).
fn code_key(code: &str) -> String {
    code.chars()
        .filter(|c| *c != '.')
        .flat_map(char::to_uppercase)
        .collect()
}

/// The static order: billable first, then shorter descriptions, then by code and system.
fn static_order(a: (bool, usize, &str, &str), b: (bool, usize, &str, &str)) -> Ordering {
    b.0.cmp(&a.0)
        .then(a.1.cmp(&b.1))
        .then(a.2.cmp(b.2))
        .then(a.3.cmp(b.3))
}

impl Index {
    /// Builds the index of the active `entries` (inactive ones only count for versions),
    /// with the bundled synonyms.
    pub fn build(entries: Vec<Entry>) -> Index {
        let mut versions: Vec<(i64, i32, u32)> = entries
            .iter()
            .map(|e| (e.id, e.version, u32::MAX))
            .collect();
        versions.sort_unstable();
        let mut entries: Vec<Entry> = entries.into_iter().filter(|e| e.is_active).collect();
        let mut systems: Vec<String> = entries.iter().map(|e| e.system.clone()).collect();
        systems.sort();
        systems.dedup();
        let lengths: Vec<usize> = entries
            .iter()
            .map(|e| e.description.chars().count())
            .collect();
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&entries[a], &entries[b]);
            static_order(
                (x.billable, lengths[a], &x.code, &x.system),
                (y.billable, lengths[b], &y.code, &y.system),
            )
        });
        let mut rank = vec![0u32; entries.len()];
        for (position, &i) in order.iter().enumerate() {
            rank[i] = position as u32;
        }
        let system_of = |e: &Entry| systems.binary_search(&e.system).unwrap_or(0) as u8;
        // Doc numbers: by system, then static rank.
        let mut layout: Vec<usize> = (0..entries.len()).collect();
        layout.sort_by_key(|&i| (system_of(&entries[i]), rank[i]));
        let mut docs = Vec::with_capacity(entries.len());
        // Each doc's words as provisional ids (in order of first appearance), flat.
        let mut provisional: HashMap<String, u32> = HashMap::new();
        let (mut flat, mut flat_ends) = (Vec::<u32>::new(), Vec::with_capacity(entries.len()));
        let mut general = Vec::with_capacity(entries.len());
        let mut negated_pairs: Vec<(u32, u32)> = Vec::new();
        let (mut code_text, mut code_ends) = (String::new(), Vec::with_capacity(entries.len()));
        let (mut description_text, mut description_ends) =
            (String::new(), Vec::with_capacity(entries.len()));
        let mut uuids = Vec::with_capacity(entries.len());
        let mut odd_uuids = HashMap::new();
        for &i in &layout {
            let entry = &mut entries[i];
            docs.push(Doc {
                id: entry.id,
                rank: rank[i],
                billable: entry.billable,
                length: lengths[i].min(u16::MAX as usize) as u16,
                system: system_of(entry),
            });
            code_text.push_str(&entry.code);
            code_ends.push(code_text.len() as u32);
            description_text.push_str(&entry.description);
            description_ends.push(description_text.len() as u32);
            let doc = docs.len() as u32 - 1;
            match uuid::Uuid::parse_str(&entry.uuid) {
                Ok(parsed) if parsed.to_string() == entry.uuid => uuids.push(parsed.as_u128()),
                _ => {
                    uuids.push(0);
                    odd_uuids.insert(doc, std::mem::take(&mut entry.uuid));
                }
            }
            if let Ok(at) = versions.binary_search_by_key(&entry.id, |v| v.0) {
                versions[at].2 = doc;
            }
            let list = words(&std::mem::take(&mut entry.description));
            general.push(words::is_general(&list));
            for word in words::negated(&list) {
                let next = provisional.len() as u32;
                negated_pairs.push((
                    docs.len() as u32 - 1,
                    *provisional.entry(word).or_insert(next),
                ));
            }
            for word in list {
                let next = provisional.len() as u32;
                flat.push(*provisional.entry(word).or_insert(next));
            }
            flat_ends.push(flat.len() as u32);
        }
        drop(entries);
        let mut partitions = vec![(0u32, 0u32); systems.len()];
        for (number, doc) in docs.iter().enumerate() {
            let part = &mut partitions[doc.system as usize];
            if part.1 == 0 {
                part.0 = number as u32;
            }
            part.1 = number as u32 + 1;
        }

        // Word ids in the vocabulary's sorted order (the fst's).
        let mut vocabulary: Vec<(String, u32)> = provisional.into_iter().collect();
        vocabulary.sort_unstable();
        let mut final_id = vec![0u32; vocabulary.len()];
        for (n, (_, provisional)) in vocabulary.iter().enumerate() {
            final_id[*provisional as usize] = n as u32;
        }
        let word_map = fst::Map::from_iter(
            vocabulary
                .iter()
                .enumerate()
                .map(|(n, (w, _))| (w.as_bytes(), n as u64)),
        )
        .expect("sorted, unique words");
        let mut fillers = Bits::new(vocabulary.len());
        for (n, (word, _)) in vocabulary.iter().enumerate() {
            if words::is_filler(word) {
                fillers.insert(n as u32);
            }
        }
        let word_count = vocabulary.len();
        drop(vocabulary);

        let mut postings = Vec::with_capacity(flat.len());
        let mut first_word = Vec::with_capacity(docs.len());
        let mut start = 0;
        for (doc, &end) in flat_ends.iter().enumerate() {
            let list = &flat[start..end as usize];
            for &word in list {
                postings.push((final_id[word as usize], doc as u32));
            }
            first_word.push(list.first().map_or(u32::MAX, |&w| final_id[w as usize]));
            start = end as usize;
        }
        drop((flat, flat_ends));
        let doc_words = Lists::from_pairs(
            docs.len(),
            postings.iter().map(|&(word, doc)| (doc, word)).collect(),
        );
        let postings = Lists::from_pairs(word_count, postings);
        let negated = Lists::from_pairs(
            docs.len(),
            negated_pairs
                .into_iter()
                .map(|(doc, word)| (doc, final_id[word as usize]))
                .collect(),
        );

        let mut code_keys: Vec<(Vec<u8>, u64)> = docs
            .iter()
            .enumerate()
            .map(|(n, doc)| {
                let start = if n == 0 { 0 } else { code_ends[n - 1] as usize };
                let mut key = vec![doc.system];
                key.extend_from_slice(
                    code_key(&code_text[start..code_ends[n] as usize]).as_bytes(),
                );
                (key, n as u64)
            })
            .collect();
        code_keys.sort();
        code_keys.dedup_by(|a, b| a.0 == b.0);
        let codes = fst::Map::from_iter(code_keys).expect("sorted, unique code keys");
        fuzzy_builders();

        description_text.shrink_to_fit();
        code_text.shrink_to_fit();
        Index {
            systems,
            partitions,
            docs,
            code_ends,
            code_text,
            description_ends,
            description_text,
            uuids,
            odd_uuids,
            words: word_map,
            word_count,
            postings,
            doc_words,
            negated,
            first_word,
            fillers,
            general,
            codes,
            versions,
            synonyms: Synonyms::bundled(),
        }
    }

    /// How many active codes the index holds.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// The version of code `id` when the index was built (active or not).
    pub fn version_of(&self, id: i64) -> Option<i32> {
        self.versions
            .binary_search_by_key(&id, |v| v.0)
            .ok()
            .map(|at| self.versions[at].1)
    }

    /// The hit of indexed doc `doc`.
    fn hit(&self, doc: u32) -> Hit {
        let d = &self.docs[doc as usize];
        let n = doc as usize;
        let from = if n == 0 {
            0
        } else {
            self.description_ends[n - 1] as usize
        };
        Hit {
            id: d.id,
            uuid: match self.odd_uuids.get(&doc) {
                Some(text) => text.clone(),
                None => uuid::Uuid::from_u128(self.uuids[n]).to_string(),
            },
            system: self.systems[d.system as usize].clone(),
            code: self.code(doc).to_owned(),
            description: self.description_text[from..self.description_ends[n] as usize].to_owned(),
            billable: d.billable,
        }
    }

    fn code(&self, doc: u32) -> &str {
        let n = doc as usize;
        let start = if n == 0 {
            0
        } else {
            self.code_ends[n - 1] as usize
        };
        &self.code_text[start..self.code_ends[n] as usize]
    }

    /// The codes at `offset..offset + limit` of the ranking of `query` (see the module
    /// documentation), in `system` or all systems, with `overlay`'s changes applied. An
    /// unknown system has no codes.
    pub fn search(
        &self,
        overlay: &Overlay,
        query: &str,
        system: Option<&str>,
        offset: usize,
        limit: usize,
    ) -> Vec<Hit> {
        let need = offset.saturating_add(limit).min(MAX_RANKED);
        let parts: Vec<u8> = match system {
            Some(wanted) => self
                .systems
                .iter()
                .position(|s| s == wanted)
                .map(|p| vec![p as u8])
                .unwrap_or_default(),
            None => (0..self.systems.len() as u8).collect(),
        };
        let overlaid: Vec<&Entry> = overlay
            .entries
            .values()
            .filter(|e| e.is_active && system.is_none_or(|s| s == e.system))
            .collect();
        let hidden = |doc: u32| {
            !overlay.entries.is_empty() && overlay.entries.contains_key(&self.docs[doc as usize].id)
        };
        let mut plan = self.code_plan(query);
        let mut ranked: Vec<i64> = Vec::new();
        let mut seen: HashSet<i64> = HashSet::new();
        fn push(ranked: &mut Vec<i64>, seen: &mut HashSet<i64>, id: i64) {
            if seen.insert(id) {
                ranked.push(id);
            }
        }

        // Exact code, then codes starting with the query.
        if let Some(key) = &plan.code_key {
            for &part in &parts {
                let mut exact = vec![part];
                exact.extend_from_slice(key.as_bytes());
                if let Some(doc) = self.codes.get(&exact) {
                    if !hidden(doc as u32) && plan.code_fits(self.code(doc as u32), true) {
                        push(&mut ranked, &mut seen, self.docs[doc as usize].id);
                    }
                }
            }
            for entry in &overlaid {
                if code_key(&entry.code) == *key && plan.code_fits(&entry.code, true) {
                    push(&mut ranked, &mut seen, entry.id);
                }
            }
            // Each system's codes starting with the key (its own range of the fst), merged.
            let mut prefixed: Vec<(String, u8, i64)> = Vec::new();
            for &part in &parts {
                // The partition number is one byte below 0x80, so this is valid UTF-8.
                let start = format!("{}{key}", char::from(part));
                let mut stream = self
                    .codes
                    .search(fst::automaton::Str::new(&start).starts_with())
                    .into_stream();
                let mut taken = 0;
                while let Some((bytes, doc)) = stream.next() {
                    if taken >= need {
                        break;
                    }
                    let text = &bytes[1..];
                    if hidden(doc as u32)
                        || text == key.as_bytes()
                        || !plan.code_fits(self.code(doc as u32), false)
                    {
                        continue;
                    }
                    taken += 1;
                    let text = String::from_utf8_lossy(text).into_owned();
                    prefixed.push((text, part, self.docs[doc as usize].id));
                }
            }
            for entry in &overlaid {
                let entry_key = code_key(&entry.code);
                if entry_key.starts_with(key.as_str())
                    && entry_key != *key
                    && plan.code_fits(&entry.code, false)
                {
                    let part = self.systems.iter().position(|s| *s == entry.system);
                    prefixed.push((entry_key, part.unwrap_or(usize::MAX) as u8, entry.id));
                }
            }
            prefixed.sort();
            for (_, _, id) in prefixed.into_iter().take(need) {
                push(&mut ranked, &mut seen, id);
            }
        }

        // Descriptions, tier by tier.
        if ranked.len() < need {
            // The words only when the codes did not fill the page (`a`, `e`: they do).
            plan.alternatives = self.word_alternatives(query);
        }
        if !plan.alternatives.is_empty() {
            for tier in 0..2u8 {
                if ranked.len() >= need {
                    break;
                }
                let want = need - ranked.len();
                // (score, static key, id) of this tier's first codes, all systems merged.
                let mut found: Vec<(i32, Static<'_>, i64)> = Vec::new();
                for &part in &parts {
                    let range = self.partitions[part as usize];
                    let need = want.max(POOL) + seen.len();
                    for (doc, extra) in self.collect(&plan, tier, range, need, &hidden) {
                        let d = &self.docs[doc as usize];
                        if seen.contains(&d.id) {
                            continue;
                        }
                        found.push((extra, Static::Indexed(doc), d.id));
                    }
                }
                found.sort_by(|a, b| a.1.cmp_with(&b.1, self));
                found.truncate(want.max(POOL));
                for entry in &overlaid {
                    if seen.contains(&entry.id) {
                        continue;
                    }
                    let text = words(&entry.description);
                    if let Some((t, extra)) = plan.judge_text(&text) {
                        if t == tier {
                            found.push((extra, Static::Entry(entry), entry.id));
                        }
                    }
                }
                let pool = found.len().min(POOL);
                found[..pool].sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp_with(&b.1, self)));
                for (_, _, id) in found {
                    push(&mut ranked, &mut seen, id);
                }
            }
        }
        ranked
            .into_iter()
            .skip(offset)
            .take(limit)
            .filter_map(|id| match overlay.entries.get(&id) {
                Some(entry) => Some(Hit::of(entry)),
                None => {
                    let at = self.versions.binary_search_by_key(&id, |v| v.0).ok()?;
                    Some(self.hit(self.versions[at].2))
                }
            })
            .collect()
    }

    /// The first `need` docs of `tier` in `range`, in static order, with their scores.
    fn collect(
        &self,
        plan: &Plan,
        tier: u8,
        range: (u32, u32),
        need: usize,
        hidden: &dyn Fn(u32) -> bool,
    ) -> Vec<(u32, i32)> {
        // The lists whose union holds every doc of the tier.
        let mut lists: Vec<&[u32]> = Vec::new();
        let exact = tier == 0;
        for alternative in &plan.alternatives {
            // A word the vocabulary does not have (only an overlay entry can hold it).
            if alternative
                .iter()
                .any(|clause| clause.words(exact).is_empty())
            {
                continue;
            }
            let size = |words: &[u32]| -> usize {
                words.iter().map(|&w| self.postings.get(w).len()).sum()
            };
            // Tier 0: the docs holding the rarest clause as typed. Tier 1: a doc there misses
            // some clause as typed but holds one of its completions or near words, so the
            // docs holding any clause's completions or near words (usually few).
            let approximate: Vec<Vec<u32>> = alternative
                .iter()
                .map(|c| {
                    c.all
                        .iter()
                        .copied()
                        .filter(|w| c.exact.binary_search(w).is_err())
                        .collect()
                })
                .collect();
            let approximate_size: usize = approximate.iter().map(|w| size(w)).sum();
            let rarest = alternative
                .iter()
                .map(|c| c.words(exact))
                .min_by_key(|w| size(w))
                .unwrap_or_default();
            if exact || size(rarest) <= approximate_size {
                lists.extend(rarest.iter().map(|&w| self.postings.get(w)));
            } else {
                for words in &approximate {
                    lists.extend(words.iter().map(|&w| self.postings.get(w)));
                }
            }
        }
        let mut heap: BinaryHeap<Reverse<(u32, usize)>> = BinaryHeap::new();
        let mut cursors: Vec<&[u32]> = Vec::with_capacity(lists.len());
        for list in lists {
            let from = list.partition_point(|&d| d < range.0);
            let to = list.partition_point(|&d| d < range.1);
            let list = &list[from..to];
            if let Some(&first) = list.first() {
                heap.push(Reverse((first, cursors.len())));
                cursors.push(list);
            }
        }
        let mut out = Vec::new();
        let mut last = None;
        while let Some(Reverse((doc, list))) = heap.pop() {
            let rest = &cursors[list][1..];
            cursors[list] = rest;
            if let Some(&next) = rest.first() {
                heap.push(Reverse((next, list)));
            }
            if last == Some(doc) {
                continue;
            }
            last = Some(doc);
            if hidden(doc) {
                continue;
            }
            if let Some((t, extra)) = self.judge(plan, doc) {
                if t == tier {
                    out.push((doc, extra));
                    if out.len() >= need {
                        break;
                    }
                }
            }
        }
        out
    }

    /// The best (tier, other words) of an indexed doc under `plan`; `None` when it does not
    /// hold every word of any rewriting.
    fn judge(&self, plan: &Plan, doc: u32) -> Option<(u8, i32)> {
        let words = self.doc_words.get(doc);
        let first = self.first_word[doc as usize];
        let negated = self.negated.get(doc);
        plan.judge(
            words.iter().copied(),
            first,
            self.general[doc as usize],
            |clause, &word, exact| clause.has(word, exact),
            |&word| self.fillers.contains(word) || negated.contains(&word),
        )
    }

    /// The code part of a query's plan (its alternatives come from [`Index::word_alternatives`]).
    fn code_plan(&self, query: &str) -> Plan {
        // Compatibility forms folded (full-width `Ｊ１８．９`), surrounding punctuation off
        // (`(J18.9)`, `J18.9;`).
        let folded = words::compatible(query);
        let trimmed = folded.trim_matches(|c: char| !c.is_alphanumeric() && c != '.');
        let code_key = (!trimmed.is_empty()
            && trimmed.chars().count() <= 16
            && trimmed
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.')
            && trimmed.chars().any(|c| c.is_ascii_alphanumeric()))
        .then(|| code_key(trimmed));
        let code_text = trimmed.contains('.').then(|| trimmed.to_uppercase());
        Plan {
            code_key,
            code_text,
            alternatives: Vec::new(),
        }
    }

    /// The query's rewritings, each a list of clauses that a description must all match: its
    /// words expanded against the vocabulary.
    fn word_alternatives(&self, query: &str) -> Vec<Vec<Clause>> {
        let mut typed = synonyms::content_words(query);
        // A word typed twice asks for nothing more.
        let mut once = HashSet::new();
        typed.retain(|w| once.insert(w.clone()));
        typed.truncate(16);
        // The query as typed and, when some words are misspelled, as corrected; each with its
        // rewritings by the synonyms.
        // Misspelled typed words, with their near words, found once.
        let near: HashMap<String, Near> = typed
            .iter()
            .filter_map(|w| self.near(w).map(|n| (w.clone(), n)))
            .collect();
        let corrected: Vec<String> = typed
            .iter()
            .map(|word| {
                near.get(word)
                    .and_then(|n| self.correction(n))
                    .unwrap_or_else(|| word.clone())
            })
            .collect();
        let mut rewritings = self.synonyms.rewritings(&typed);
        if corrected != typed {
            for rewriting in self.synonyms.rewritings(&corrected) {
                if !rewritings.contains(&rewriting) {
                    rewritings.push(rewriting);
                }
            }
        }
        rewritings.truncate(synonyms::MAX_REWRITINGS);
        let mut clauses: HashMap<String, Clause> = HashMap::new();
        let mut alternatives = Vec::new();
        for mut words in rewritings {
            words.dedup();
            words.truncate(MAX_WORDS);
            let alternative: Vec<Clause> = words
                .iter()
                .map(|word| {
                    clauses
                        .entry(word.clone())
                        .or_insert_with(|| self.clause(word, typed.contains(word), near.get(word)))
                        .clone()
                })
                .collect();
            alternatives.push(alternative);
        }
        alternatives
    }

    /// The vocabulary word a misspelled query word most likely stands for: when the word is
    /// neither in the vocabulary nor the start of a word there, the nearest word within its
    /// edit distance, the most frequent of equally near ones.
    fn correction(&self, near: &Near) -> Option<String> {
        near.words
            .iter()
            .min_by_key(|(id, distance, _)| (*distance, Reverse(self.postings.get(*id).len())))
            .map(|(_, _, text)| text.clone())
    }

    /// The near words of a word that is neither in the vocabulary nor the start of a word
    /// there (a misspelling); `None` for a known word or one too short to correct.
    fn near(&self, word: &str) -> Option<Near> {
        if self.is_known(word) {
            return None;
        }
        let dfa = fuzzy_dfa(word)?;
        let mut words = Vec::new();
        let mut stream = self.words.search(Fuzzy(&dfa)).into_stream();
        while let Some((bytes, id)) = stream.next() {
            if let Distance::Exact(distance) = dfa.eval(bytes) {
                words.push((
                    id as u32,
                    distance,
                    String::from_utf8_lossy(bytes).into_owned(),
                ));
            }
        }
        Some(Near {
            dfa: std::sync::Arc::new(dfa),
            words,
        })
    }

    /// Whether `word` is in the vocabulary as typed or begins a word there.
    fn is_known(&self, word: &str) -> bool {
        exact_forms(word).iter().any(|f| self.words.contains_key(f))
            || self
                .words
                .search(fst::automaton::Str::new(word).starts_with())
                .into_stream()
                .next()
                .is_some()
    }

    /// The clause of `word`: its exact forms and, for a word the user typed (`typed`), the
    /// words it begins and, when it is misspelled, the words within its edit distance.
    /// Words from a synonym's expansion are spelt right and whole: exact forms only.
    fn clause(&self, word: &str, typed: bool, near: Option<&Near>) -> Clause {
        let mut exact: Vec<u32> = exact_forms(word)
            .iter()
            .filter_map(|form| self.words.get(form).map(|id| id as u32))
            .collect();
        exact.sort_unstable();
        exact.dedup();
        let mut all = exact.clone();
        let mut fuzzy = None;
        if typed {
            let mut stream = self
                .words
                .search(fst::automaton::Str::new(word).starts_with())
                .into_stream();
            while let Some((_, id)) = stream.next() {
                all.push(id as u32);
            }
            if let Some(near) = near {
                all.extend(near.words.iter().map(|(id, _, _)| *id));
                fuzzy = Some(std::sync::Arc::clone(&near.dfa));
            }
        }
        all.sort_unstable();
        all.dedup();
        let mut exact_bits = Bits::new(self.word_count);
        let mut all_bits = Bits::new(self.word_count);
        for &id in &exact {
            exact_bits.insert(id);
        }
        for &id in &all {
            all_bits.insert(id);
        }
        Clause {
            text: word.to_owned(),
            typed,
            fuzzy,
            exact,
            all,
            exact_bits,
            all_bits,
        }
    }
}

/// Where a candidate stands in the static order: an indexed doc (compared by rank), or an
/// overlay entry (compared with indexed docs field by field).
enum Static<'a> {
    Indexed(u32),
    Entry(&'a Entry),
}

impl Static<'_> {
    fn key<'i>(&'i self, index: &'i Index) -> (bool, usize, &'i str, &'i str) {
        match self {
            Static::Indexed(doc) => {
                let d = &index.docs[*doc as usize];
                (
                    d.billable,
                    d.length as usize,
                    index.code(*doc),
                    index.systems[d.system as usize].as_str(),
                )
            }
            Static::Entry(e) => (
                e.billable,
                e.description.chars().count(),
                e.code.as_str(),
                e.system.as_str(),
            ),
        }
    }

    fn cmp_with(&self, other: &Static<'_>, index: &Index) -> Ordering {
        match (self, other) {
            (Static::Indexed(a), Static::Indexed(b)) => index.docs[*a as usize]
                .rank
                .cmp(&index.docs[*b as usize].rank),
            _ => static_order(self.key(index), other.key(index)),
        }
    }
}

/// The words a query word matches as typed: itself, its plural or singular by a final `s`
/// (`fracture` / `fractures`), and its stem without a final `d` or `ed` (`fractured`,
/// `burned`).
fn exact_forms(word: &str) -> Vec<String> {
    let mut forms = vec![word.to_owned(), format!("{word}s")];
    for suffix in ["s", "d", "ed"] {
        if let Some(stem) = word.strip_suffix(suffix) {
            if stem.chars().count() >= 3 {
                forms.push(stem.to_owned());
            }
        }
    }
    forms
}

/// Levenshtein automaton builders for distance 1 and 2, a transposition counting as one edit
/// (built once: the distance-2 table takes a few milliseconds).
fn fuzzy_builders() -> &'static [LevenshteinAutomatonBuilder; 2] {
    static BUILDERS: OnceLock<[LevenshteinAutomatonBuilder; 2]> = OnceLock::new();
    BUILDERS.get_or_init(|| {
        [
            LevenshteinAutomatonBuilder::new(1, true),
            LevenshteinAutomatonBuilder::new(2, true),
        ]
    })
}

/// The automaton of the words within the edit distance `word` allows: 1 for 5-7 letters,
/// 2 for 8 or more, none for shorter words or words with digits.
fn fuzzy_dfa(word: &str) -> Option<DFA> {
    if !word.chars().all(char::is_alphabetic) {
        return None;
    }
    match word.chars().count() {
        0..=4 => None,
        5..=7 => Some(fuzzy_builders()[0].build_dfa(word)),
        _ => Some(fuzzy_builders()[1].build_dfa(word)),
    }
}

/// A Levenshtein DFA as an `fst` automaton.
struct Fuzzy<'a>(&'a DFA);

impl Automaton for Fuzzy<'_> {
    type State = u32;
    fn start(&self) -> u32 {
        self.0.initial_state()
    }
    fn is_match(&self, state: &u32) -> bool {
        matches!(self.0.distance(*state), Distance::Exact(_))
    }
    fn can_match(&self, state: &u32) -> bool {
        *state != SINK_STATE
    }
    fn accept(&self, state: &u32, byte: u8) -> u32 {
        self.0.transition(*state, byte)
    }
}

/// A misspelled query word's automaton and the vocabulary words within its edit distance:
/// (word id, distance, word).
struct Near {
    dfa: std::sync::Arc<DFA>,
    words: Vec<(u32, u8, String)>,
}

/// One query word and the vocabulary words it matches.
#[derive(Clone)]
struct Clause {
    text: String,
    /// Whether completions (and, misspelled, near words) count: a word the user typed.
    typed: bool,
    fuzzy: Option<std::sync::Arc<DFA>>,
    /// Word ids matched as typed, sorted.
    exact: Vec<u32>,
    /// Word ids matched at all (as typed, completed, or within the edit distance), sorted.
    all: Vec<u32>,
    exact_bits: Bits,
    all_bits: Bits,
}

impl Clause {
    fn words(&self, exact: bool) -> &[u32] {
        if exact {
            &self.exact
        } else {
            &self.all
        }
    }

    fn has(&self, word: u32, exact: bool) -> bool {
        if exact {
            self.exact_bits.contains(word)
        } else {
            self.all_bits.contains(word)
        }
    }

    /// The same test on a word that may not be in the vocabulary (overlay entries).
    fn has_text(&self, word: &str, exact: bool) -> bool {
        let as_typed = exact_forms(&self.text).iter().any(|f| f == word);
        as_typed
            || (!exact
                && self.typed
                && (word.starts_with(self.text.as_str())
                    || self
                        .fuzzy
                        .as_ref()
                        .is_some_and(|dfa| matches!(dfa.eval(word), Distance::Exact(_)))))
    }
}

/// A query, planned: its code key and its rewritings, each a list of clauses all of which a
/// description must match.
struct Plan {
    code_key: Option<String>,
    /// The query in upper case when it is a code written with its dot: it must match as
    /// written (`E880.9` is ICD-9's, not ICD-10's `E88.09`, though their keys agree).
    code_text: Option<String>,
    alternatives: Vec<Vec<Clause>>,
}

impl Plan {
    /// Whether `code` (found by its key) is the typed code (`exact`) or starts with it.
    fn code_fits(&self, code: &str, exact: bool) -> bool {
        match &self.code_text {
            None => true,
            Some(text) => {
                let code = code.to_uppercase();
                if exact {
                    code == *text
                } else {
                    code.starts_with(text.as_str())
                }
            }
        }
    }

    /// The best (tier, score) of a description's words under any rewriting: tier 0 when
    /// every clause matches as typed, 1 with completions and misspellings; the score (lower
    /// is better) counts two for each other word the description has (fillers and what it
    /// names after "without" not counted),
    /// minus two when it names the general code ([`words::is_general`]) and one when it starts
    /// with a query word.
    fn judge<W>(
        &self,
        words: impl Iterator<Item = W> + Clone,
        first: W,
        general: bool,
        has: impl Fn(&Clause, &W, bool) -> bool,
        filler: impl Fn(&W) -> bool,
    ) -> Option<(u8, i32)> {
        let mut best: Option<(u8, i32)> = None;
        for alternative in &self.alternatives {
            let mut all_exact = true;
            let mut matched = true;
            for clause in alternative {
                if words.clone().any(|w| has(clause, &w, true)) {
                    continue;
                }
                all_exact = false;
                if !words.clone().any(|w| has(clause, &w, false)) {
                    matched = false;
                    break;
                }
            }
            if !matched {
                continue;
            }
            let starts = alternative
                .iter()
                .any(|clause| has(clause, &first, all_exact));
            let extra = words
                .clone()
                .filter(|w| !filler(w) && !alternative.iter().any(|c| has(c, w, false)))
                .count()
                .min(1000) as i32;
            let score = 2 * extra - 2 * i32::from(general) - i32::from(starts);
            let judged = (u8::from(!all_exact), score);
            if best.is_none_or(|b| judged < b) {
                best = Some(judged);
            }
        }
        best
    }

    fn judge_text(&self, words: &[String]) -> Option<(u8, i32)> {
        let first = words.first()?;
        let mut unique: Vec<&String> = words.iter().collect();
        unique.sort();
        unique.dedup();
        let negated = words::negated(words);
        self.judge(
            unique.iter().copied(),
            first,
            words::is_general(words),
            |clause, word, exact| clause.has_text(word, exact),
            |word| words::is_filler(word) || negated.contains(word),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i64, system: &str, code: &str, description: &str, billable: bool) -> Entry {
        Entry {
            id,
            uuid: format!("00000000-0000-7000-8000-{id:012}"),
            version: 1,
            system: system.into(),
            code: code.into(),
            description: description.into(),
            billable,
            is_active: true,
        }
    }

    fn sample() -> Index {
        Index::build(vec![
            entry(1, "icd-10", "J18", "Pneumonia, unspecified organism", false),
            entry(
                2,
                "icd-10",
                "J18.9",
                "Pneumonia, unspecified organism",
                true,
            ),
            entry(
                3,
                "icd-10",
                "J13",
                "Pneumonia due to Streptococcus pneumoniae",
                true,
            ),
            entry(
                4,
                "icd-10",
                "J18.1",
                "Lobar pneumonia, unspecified organism",
                true,
            ),
            entry(5, "icd-9", "486", "Pneumonia, organism unspecified", true),
            entry(
                6,
                "icd-10",
                "I21.9",
                "Acute myocardial infarction, unspecified",
                true,
            ),
            entry(
                7,
                "icd-10",
                "Y37.2",
                "Military operations involving other explosions",
                true,
            ),
            entry(
                8,
                "icd-10",
                "E11.9",
                "Type 2 diabetes mellitus without complications",
                true,
            ),
        ])
    }

    fn codes(index: &Index, overlay: &Overlay, q: &str, system: Option<&str>) -> Vec<i64> {
        let hits = index.search(overlay, q, system, 0, 10);
        for hit in &hits {
            assert_eq!(hit.uuid, format!("00000000-0000-7000-8000-{:012}", hit.id));
        }
        hits.iter().map(|h| h.id).collect()
    }

    #[test]
    fn ranks_codes_then_descriptions_by_tier_and_generality() {
        let index = sample();
        let none = Overlay::default();
        assert_eq!(codes(&index, &none, "j18.9", None)[0], 2);
        assert_eq!(codes(&index, &none, "J18", None)[..3], [1, 4, 2]);
        let pneumonia = codes(&index, &none, "pneumonia", Some("icd-10"));
        assert_eq!(pneumonia[0], 2, "{pneumonia:?}");
        assert!(!pneumonia.contains(&5));
        assert_eq!(codes(&index, &none, "organism pneumonia lobar", None), [4]);
        assert_eq!(codes(&index, &none, "pnemonia", Some("icd-9")), [5]);
        assert_eq!(
            codes(&index, &none, "pneumonia pneumonia", None),
            codes(&index, &none, "pneumonia", None)
        );
        assert_eq!(codes(&index, &none, "j1", Some("icd-9")), Vec::<i64>::new());
        assert_eq!(codes(&index, &none, "diabetis type", None), [8]);
        assert!(codes(&index, &none, "nothing like it", None).is_empty());
        assert!(codes(&index, &none, "pneumonia", Some("snomed-ct")).is_empty());
    }

    #[test]
    fn a_code_written_with_its_dot_matches_as_written() {
        let index = Index::build(vec![
            entry(
                1,
                "icd-9",
                "E880.9",
                "Accidental fall on or from other stairs or steps",
                true,
            ),
            entry(
                2,
                "icd-10",
                "E88.09",
                "Other disorders of plasma-protein metabolism",
                true,
            ),
        ]);
        let none = Overlay::default();
        assert_eq!(codes(&index, &none, "E880.9", None), [1]);
        assert_eq!(codes(&index, &none, "e88.09", None), [2]);
        assert_eq!(
            codes(&index, &none, "E8809", None).len(),
            2,
            "no dot: either"
        );
        assert_eq!(codes(&index, &none, "E88.", None), [2]);
        assert_eq!(codes(&index, &none, "(E880.9);", None), [1]);
        assert_eq!(codes(&index, &none, "Ｅ８８．０９", None), [2]);
    }

    #[test]
    fn a_search_ranks_at_most_max_ranked_codes() {
        let many: Vec<Entry> = (0..MAX_RANKED as i64 + 50)
            .map(|n| entry(n + 1, "icd-10", &format!("Z{n:05}"), "Common finding", true))
            .collect();
        let index = Index::build(many);
        let none = Overlay::default();
        assert_eq!(index.search(&none, "common", None, 0, 100).len(), 100);
        assert_eq!(
            index
                .search(&none, "common", None, MAX_RANKED - 10, 100)
                .len(),
            10
        );
        assert!(index
            .search(&none, "common", None, MAX_RANKED, 100)
            .is_empty());
        assert!(index
            .search(&none, "common", None, usize::MAX, 100)
            .is_empty());
    }

    #[test]
    fn pages_do_not_overlap() {
        let index = sample();
        let none = Overlay::default();
        let all = index.search(&none, "pneumonia", None, 0, 10);
        let first = index.search(&none, "pneumonia", None, 0, 2);
        let second = index.search(&none, "pneumonia", None, 2, 10);
        assert_eq!(all[0].description, "Pneumonia, organism unspecified");
        assert_eq!(
            (all[0].code.as_str(), all[0].system.as_str()),
            ("486", "icd-9")
        );
        assert_eq!([first, second].concat(), all);
    }

    #[test]
    fn the_overlay_adds_renames_and_hides() {
        let index = sample();
        let mut overlay = Overlay::default();
        overlay.apply(Entry {
            version: 2,
            description: "Renamed entirely".into(),
            ..entry(7, "icd-10", "Y37.2", "", true)
        });
        overlay.apply(entry(
            9,
            "snomed-ct",
            "22298006",
            "Myocardial infarction",
            true,
        ));
        overlay.apply(Entry {
            version: 2,
            is_active: false,
            ..entry(
                2,
                "icd-10",
                "J18.9",
                "Pneumonia, unspecified organism",
                true,
            )
        });
        assert!(codes(&index, &overlay, "military", None).is_empty());
        assert_eq!(codes(&index, &overlay, "renamed", None), [7]);
        assert_eq!(
            codes(&index, &overlay, "myocardial", Some("snomed-ct")),
            [9]
        );
        assert!(!codes(&index, &overlay, "pneumonia", None).contains(&2));
        assert!(codes(&index, &overlay, "J18.9", None).is_empty());
        // An older state never replaces a newer one; a rebuilt index prunes what it holds.
        overlay.apply(entry(7, "icd-10", "Y37.2", "Military", true));
        assert_eq!(codes(&index, &overlay, "renamed", None), [7]);
        let mut rebuilt = sample().versions;
        rebuilt.iter_mut().for_each(|v| v.1 = 2);
        let newer = Index {
            versions: rebuilt,
            ..sample()
        };
        overlay.prune(&newer);
        assert_eq!(overlay.len(), 1);
    }
}
