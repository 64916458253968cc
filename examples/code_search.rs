//! The code search index alone, in-process (no HTTP, no database): builds it over both
//! bundled lists, then prints the CPU time per query (mean of 200 searches for a page of 21)
//! and the top 5, or, with `--relevance`, the hits of `tests/relevance/queries.tsv`.
//!
//! `cargo run --release --example code_search -- [--system=icd-10] QUERY...`
//! `cargo run --release --example code_search -- --relevance`

use medlabel::search::{Entry, Index, Overlay};
use std::time::Instant;
fn main() {
    let mut entries = Vec::new();
    let mut id = 0;
    for (system, file) in [
        ("icd-10", "seeds/icd10cm-2025.tsv.gz"),
        ("icd-9", "seeds/icd9cm-v32.tsv.gz"),
    ] {
        let bytes = std::fs::read(file).unwrap();
        let mut gz = flate2::read::GzDecoder::new(&bytes[..]);
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut gz, &mut text).unwrap();
        let parsed = medlabel::codesets::parse_code_list(system, &text[..]).unwrap();
        for row in parsed.rows {
            id += 1;
            entries.push(Entry {
                id,
                uuid: uuid::Uuid::now_v7().to_string(),
                version: 1,
                system: row.system_id,
                code: row.code,
                description: row.description,
                billable: row.billable,
                is_active: true,
            });
        }
    }
    let t = Instant::now();
    let index = Index::build(entries);
    eprintln!("build {:?} docs {}", t.elapsed(), index.len());
    let overlay = Overlay::default();
    if std::env::args().nth(1).as_deref() == Some("--relevance") {
        let text = std::fs::read_to_string("tests/relevance/queries.tsv").unwrap();
        let mut stats: std::collections::BTreeMap<String, (usize, usize, usize)> =
            Default::default();
        let mut worst = 0f64;
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split('\t').collect();
            let (kind, system, q, expected) = (f[0], f[1], f[2], f[3]);
            let system = (!system.is_empty()).then_some(system);
            let t = Instant::now();
            let r = index.search(&overlay, q, system, 0, 21);
            let us = t.elapsed().as_secs_f64() * 1e6;
            if us > 300.0 {
                println!("SLOW {us:.0} us {q:?}");
            }
            worst = worst.max(us);
            let got: Vec<&str> = r.iter().map(|hit| hit.code.as_str()).collect();
            let exp: Vec<&str> = expected.split(',').collect();
            let e = stats.entry(kind.to_owned()).or_default();
            e.0 += 1;
            if got.first().is_some_and(|c| exp.contains(c)) {
                e.1 += 1;
            }
            if got.iter().take(5).any(|c| exp.contains(c)) {
                e.2 += 1;
            } else {
                println!(
                    "MISS {kind} {system:?} {q:?} want {expected}: {:?}",
                    got.iter()
                        .take(5)
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                );
            }
        }
        let (mut n, mut t1, mut t5) = (0, 0, 0);
        for (k, (a, b, c)) in &stats {
            println!("{k:14} {c}/{a} top5, {b} top1");
            n += a;
            t1 += b;
            t5 += c;
        }
        println!(
            "total {t5}/{n} top5 ({:.1}%), {t1} top1; worst {worst:.0} us",
            100.0 * t5 as f64 / n as f64
        );
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (system, queries) = if args
        .first()
        .map(|a| a.starts_with("--system="))
        .unwrap_or(false)
    {
        (Some(args[0][9..].to_owned()), args[1..].to_vec())
    } else {
        (None, args)
    };
    for q in queries {
        let t = Instant::now();
        let n = 200;
        let mut r = Vec::new();
        for _ in 0..n {
            r = index.search(&overlay, &q, system.as_deref(), 0, 21);
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!("{q:?}: {us:.1} us");
        for hit in r.iter().take(5) {
            println!("   {:10} {}", hit.code, hit.description);
        }
    }
}
