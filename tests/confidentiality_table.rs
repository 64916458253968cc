//! `src/imaging/confidentiality_table.rs` is generated from the PS3.15 Table E.1-1 JSON in
//! `seeds/` by the generator below; this test fails when the committed file differs from what
//! the JSON gives. `MEDLABEL_REGENERATE=1 cargo test --test confidentiality_table` rewrites it.

use std::fmt::Write as _;

const SOURCE: &str = "seeds/dicom-ps3.15-e1-1-2024b.json";
const TARGET: &str = "src/imaging/confidentiality_table.rs";

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    name: String,
    tag: String,
    basic_profile: String,
    rtn_long_modif_dates_opt: Option<String>,
}

/// `(gggg,eeee)` with `X` for a repeating nibble, as (value, mask): `X` nibbles are 0 in both.
fn tag_and_mask(tag: &str) -> (u32, u32) {
    let digits: String = tag.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    assert_eq!(digits.len(), 8, "tag {tag}");
    let (mut value, mut mask) = (0u32, 0u32);
    for c in digits.chars() {
        let (v, m) = match c.to_digit(16) {
            Some(v) => (v, 0xF),
            None if c.eq_ignore_ascii_case(&'x') => (0, 0),
            None => panic!("tag {tag}"),
        };
        value = value << 4 | v;
        mask = mask << 4 | m;
    }
    (value, mask)
}

fn action(code: &str) -> &'static str {
    match code {
        "X" => "X",
        "Z" => "Z",
        "D" => "D",
        "U" => "U",
        "X/Z" => "XZ",
        "X/D" => "XD",
        "Z/D" => "ZD",
        "X/Z/D" => "XZD",
        "X/Z/U*" => "XZU",
        other => panic!("action code {other} is not one of PS3.15 E.3.1's basic profile codes"),
    }
}

fn generate() -> String {
    let json = std::fs::read_to_string(SOURCE).expect("read the PS3.15 table");
    let mut rows: Vec<Row> = serde_json::from_str(&json).expect("parse the PS3.15 table");
    // The row for private attributes, "(GGGG,EEEE) WHERE GGGG IS ODD", is a rule of its own.
    let private_at = rows
        .iter()
        .position(|r| r.tag.contains("IS ODD"))
        .expect("Table E.1-1 has a row for private attributes");
    let private = rows.remove(private_at);
    rows.sort_by_key(|r| tag_and_mask(&r.tag));
    let mut out = String::new();
    out.push_str(
        "//! PS3.15 Annex E Table E.1-1 (edition 2024b): every attribute the Basic Application\n\
         //! Level Confidentiality Profile acts on, with its basic-profile action and whether the\n\
         //! Retain Longitudinal Temporal Information with Modified Dates Option cleans it (`C`).\n\
         //!\n\
         //! Generated from `seeds/dicom-ps3.15-e1-1-2024b.json` by `tests/confidentiality_table.rs`\n\
         //! (`MEDLABEL_REGENERATE=1 cargo test --test confidentiality_table`). Do not edit.\n\n\
         use super::confidentiality::Action::{self, *};\n\
         use super::confidentiality::Rule;\n\n\
         /// The edition of PS3.15 the table comes from.\n\
         pub const EDITION: &str = \"2024b\";\n\n",
    );
    writeln!(
        out,
        "/// The action on private attributes (odd groups, private creators included).\n\
         pub const PRIVATE: Action = {};\n",
        action(&private.basic_profile)
    )
    .unwrap();
    let exact = rows
        .iter()
        .filter(|r| tag_and_mask(&r.tag).1 == u32::MAX)
        .count();
    writeln!(
        out,
        "/// Rules for single attributes, ascending by tag (binary-searchable).\n\
         #[rustfmt::skip]\n\
         pub static EXACT: [Rule; {exact}] = ["
    )
    .unwrap();
    let mut repeating = String::new();
    let mut count = 0;
    for row in &rows {
        let (tag, mask) = tag_and_mask(&row.tag);
        let line = format!(
            "    Rule {{ tag: 0x{tag:08X}, mask: 0x{mask:08X}, basic: {}, modified_dates: {}, name: {:?} }},\n",
            action(&row.basic_profile),
            row.rtn_long_modif_dates_opt.as_deref() == Some("C"),
            row.name,
        );
        if mask == u32::MAX {
            out.push_str(&line);
        } else {
            repeating.push_str(&line);
            count += 1;
        }
    }
    out.push_str("];\n\n");
    writeln!(
        out,
        "/// Rules for repeating groups (`50xx,xxxx`, `60xx,3000`, `60xx,4000`): a tag matches when\n\
         /// `tag & mask == rule.tag`.\n\
         #[rustfmt::skip]\n\
         pub static REPEATING: [Rule; {count}] = ["
    )
    .unwrap();
    out.push_str(&repeating);
    out.push_str("];\n");
    out
}

#[test]
fn the_confidentiality_table_is_generated_from_the_ps3_15_json() {
    let generated = generate();
    if std::env::var_os("MEDLABEL_REGENERATE").is_some() {
        std::fs::write(TARGET, &generated).expect("write the generated table");
    }
    let committed = std::fs::read_to_string(TARGET).unwrap_or_default();
    assert!(
        committed == generated,
        "{TARGET} is stale: run MEDLABEL_REGENERATE=1 cargo test --test confidentiality_table"
    );
    let json: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(SOURCE).unwrap()).unwrap();
    assert_eq!(json.len(), 621, "Table E.1-1 of 2024b has 621 attributes");
    assert_eq!(
        generated.matches("    Rule {").count() + 1,
        621,
        "and the private row"
    );
}
