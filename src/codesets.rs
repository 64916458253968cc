//! Code sets: the formats of ICD-9-CM, ICD-10-CM and SNOMED CT codes, reading code list files
//! (TSV, optionally gzipped, with a header row), and loading the bundled ICD lists.

use std::io::{BufRead, BufReader, Read};
use std::sync::LazyLock;

use anyhow::Context as _;
use regex::Regex;

use crate::db::DbConnection;
use crate::models::codes::{self, NewCode};

/// The bundled lists (US government code sets, public domain), compiled into the binary.
pub const BUNDLED: [(&str, &[u8]); 2] = [
    ("icd-10", include_bytes!("../seeds/icd10cm-2025.tsv.gz")),
    ("icd-9", include_bytes!("../seeds/icd9cm-v32.tsv.gz")),
];

static ICD10: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$").expect("valid regex"));
static ICD9: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([0-9]{3}(\.[0-9]{1,2})?|V[0-9]{2}(\.[0-9]{1,2})?|E[0-9]{3}(\.[0-9])?)$")
        .expect("valid regex")
});

/// Whether `system` is one medlabel knows.
pub fn known_system(system: &str) -> bool {
    codes::SYSTEMS.iter().any(|(id, _, _)| *id == system)
}

/// The canonical form of a code (ICD codes upper-case) if its format is valid for the system.
pub fn normalise_code(system: &str, code: &str) -> Result<String, String> {
    let code = code.trim().to_uppercase();
    let ok = match system {
        "icd-10" => ICD10.is_match(&code),
        "icd-9" => ICD9.is_match(&code),
        "snomed-ct" => {
            (6..=18).contains(&code.len())
                && code.bytes().all(|b| b.is_ascii_digit())
                && verhoeff_valid(&code)
        }
        _ => {
            return Err(format!(
                "unknown code system {system:?}; systems are icd-9, icd-10, snomed-ct"
            ))
        }
    };
    if ok {
        Ok(code)
    } else {
        Err(match system {
            "icd-10" => format!("{code:?} is not an ICD-10-CM code (like J18.9 or S72.001A)"),
            "icd-9" => {
                format!("{code:?} is not an ICD-9-CM code (like 486, 250.00, V45.81, E880.9)")
            }
            _ => format!(
                "{code:?} is not a SNOMED CT id (6 to 18 digits with a valid Verhoeff check digit)"
            ),
        })
    }
}

/// The Verhoeff check (SNOMED CT identifiers end with a Verhoeff check digit).
pub fn verhoeff_valid(digits: &str) -> bool {
    const D: [[u8; 10]; 10] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const P: [[u8; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    let mut c = 0u8;
    for (i, b) in digits.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        c = D[c as usize][P[i % 8][(b - b'0') as usize] as usize];
    }
    c == 0
}

/// What reading a code list file gave.
#[derive(Debug, Default)]
pub struct ParsedCodes {
    pub rows: Vec<NewCode>,
    /// Lines whose code does not have the system's format (line number, code).
    pub rejected: Vec<(usize, String)>,
}

/// Reads a TSV (or gzipped TSV) code list with a header row: a `code` column, a
/// `long_description` column (or, without one, `description`), optional `short_description`
/// and `billable` (0/1, default 1).
pub fn parse_code_list(system: &str, input: impl Read) -> anyhow::Result<ParsedCodes> {
    if !known_system(system) {
        anyhow::bail!("unknown code system {system:?}; systems are icd-9, icd-10, snomed-ct");
    }
    let mut reader = BufReader::new(input);
    let gzipped = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn BufRead> = if gzipped {
        Box::new(BufReader::new(flate2::read::GzDecoder::new(reader)))
    } else {
        Box::new(reader)
    };
    let mut lines = reader.lines();
    let header = lines.next().context("the file is empty")??;
    let columns: Vec<String> = header
        .split('\t')
        .map(|c| c.trim().to_lowercase())
        .collect();
    let find = |name: &str| columns.iter().position(|c| c == name);
    let code_col = find("code").context("the header has no `code` column")?;
    let desc_col = find("long_description")
        .or_else(|| find("description"))
        .context("the header has no `long_description` or `description` column")?;
    let billable_col = find("billable");

    let mut parsed = ParsedCodes::default();
    for (index, line) in lines.enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let raw_code = fields.get(code_col).copied().unwrap_or_default();
        let description = fields.get(desc_col).copied().unwrap_or_default().trim();
        let code = match normalise_code(system, raw_code) {
            Ok(code) if !description.is_empty() => code,
            _ => {
                parsed.rejected.push((index + 2, raw_code.to_owned()));
                continue;
            }
        };
        let billable = billable_col
            .and_then(|c| fields.get(c))
            .is_none_or(|v| v.trim() != "0");
        parsed
            .rows
            .push(NewCode::new(system, &code, description, billable));
    }
    Ok(parsed)
}

/// Imports parsed codes (only those not present yet); returns how many were added.
pub fn import(
    conn: &mut DbConnection,
    parsed: &ParsedCodes,
    progress: impl FnMut(usize),
) -> anyhow::Result<usize> {
    codes::ensure_code_systems(conn)?;
    Ok(codes::import_codes(conn, &parsed.rows, progress)?)
}

/// Loads each bundled list whose system has no codes yet; returns (system, added) per import.
pub fn import_bundled_if_absent(
    conn: &mut DbConnection,
) -> anyhow::Result<Vec<(&'static str, usize)>> {
    codes::ensure_code_systems(conn)?;
    let mut done = Vec::new();
    for (system, bytes) in BUNDLED {
        if codes::count_codes(conn, system)? == 0 {
            let parsed = parse_code_list(system, bytes)?;
            done.push((system, import(conn, &parsed, |_| {})?));
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_lists_parse_completely() {
        for (system, bytes) in BUNDLED {
            let parsed = parse_code_list(system, bytes).unwrap();
            assert!(parsed.rows.len() > 10_000, "{system}");
            assert!(
                parsed.rejected.is_empty(),
                "{system}: {:?}",
                &parsed.rejected[..parsed.rejected.len().min(5)]
            );
        }
    }

    #[test]
    fn plain_tsv_with_description_column_parses() {
        let tsv = "code\tdescription\tbillable\nJ18.9\tPneumonia, unspecified organism\t1\nJ18\tPneumonia\t0\nnot-a-code\tx\t1\n";
        let parsed = parse_code_list("icd-10", tsv.as_bytes()).unwrap();
        assert_eq!(parsed.rows.len(), 2);
        assert!(!parsed.rows[1].billable);
        assert_eq!(parsed.rejected, vec![(4, "not-a-code".to_owned())]);
    }

    #[test]
    fn formats_are_validated_per_system() {
        for (system, code) in [
            ("icd-10", "J18.9"),
            ("icd-10", "s72.001a"),
            ("icd-10", "A00"),
            ("icd-9", "486"),
            ("icd-9", "250.00"),
            ("icd-9", "V45.81"),
            ("icd-9", "E880.9"),
            ("snomed-ct", "22298006"),
            ("snomed-ct", "233604007"),
        ] {
            assert!(normalise_code(system, code).is_ok(), "{system} {code}");
        }
        for (system, code) in [
            ("icd-10", "J18.99999"),
            ("icd-10", "18.9"),
            ("icd-9", "48"),
            ("icd-9", "V4.5"),
            ("icd-9", "E88.09"),
            ("snomed-ct", "22298007"),
            ("snomed-ct", "12345"),
            ("loinc", "1234-5"),
        ] {
            assert!(normalise_code(system, code).is_err(), "{system} {code}");
        }
        assert_eq!(normalise_code("icd-10", " s72.001a ").unwrap(), "S72.001A");
    }
}
