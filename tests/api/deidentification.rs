//! What researchers download (API.md "De-identification"), driven over HTTP: a canary suite
//! planted from PS3.15 Table E.1-1 itself (read here from the JSON, not from the server's
//! generated table), at the top level and two levels deep inside three different sequences,
//! in three transfer syntaxes; the concrete leaks; UID consistency across files of a
//! study; what uploads refuse; and one build for concurrent first downloads.

use std::collections::{HashMap, HashSet};

use actix_web::http::StatusCode;
use dicom_core::dictionary::{DataDictionary as _, DataDictionaryEntry as _, VirtualVr};
use dicom_core::header::Header as _;
use dicom_core::value::{DataSetSequence, Value};
use dicom_core::{DataElement, Length, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, StandardDataDictionary};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;
use medlabel::auth::Role;

use crate::helpers::{TestApp, TestClient};

const SECONDARY_CAPTURE: &str = "1.2.840.10008.5.1.4.1.1.7";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";

/// One row of Table E.1-1 as the JSON gives it.
struct Row {
    tag: u32,
    basic: String,
    modified_dates: bool,
}

fn table() -> Vec<Row> {
    let json: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string("seeds/dicom-ps3.15-e1-1-2024b.json").unwrap(),
    )
    .unwrap();
    json.iter()
        .filter_map(|row| {
            let tag = row["tag"].as_str()?;
            let hex: String = tag.chars().filter(|c| c.is_ascii_hexdigit()).collect();
            if hex.len() != 8 || tag.contains('X') || tag.contains('x') {
                return None; // repeating groups and the private row: planted separately
            }
            Some(Row {
                tag: u32::from_str_radix(&hex, 16).ok()?,
                basic: row["basicProfile"].as_str()?.to_owned(),
                modified_dates: row["rtnLongModifDatesOpt"].as_str() == Some("C"),
            })
        })
        .collect()
}

/// What the contract says happens to an attribute of `vr` under `row`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Absent,
    Empty,
    Dummy,
    ReplacedUid,
    Shifted,
    Unchanged,
    KeptSequence,
}

fn expect(row: &Row, vr: VR) -> Expect {
    if row.modified_dates {
        match vr {
            VR::DA | VR::DT => return Expect::Shifted,
            VR::TM => return Expect::Unchanged,
            _ => {}
        }
    }
    match row.basic.as_str() {
        "X/Z/U*" if vr == VR::SQ => Expect::KeptSequence,
        "X/Z/U*" if vr == VR::UI => Expect::ReplacedUid,
        "U" | "D" if vr == VR::UI => Expect::ReplacedUid,
        "D" if vr == VR::SQ => Expect::Empty,
        "D" => Expect::Dummy,
        "Z" | "Z/D" => Expect::Empty,
        _ => Expect::Absent, // every code with X: removal is always allowed
    }
}

fn dictionary_vr(tag: u32) -> Option<VR> {
    match StandardDataDictionary
        .by_tag(Tag((tag >> 16) as u16, tag as u16))?
        .vr()
    {
        VirtualVr::Exact(VR::UN) => None,
        VirtualVr::Exact(vr) => Some(vr),
        VirtualVr::Xs => Some(VR::US),
        VirtualVr::Ox | VirtualVr::Px | VirtualVr::Lt => Some(VR::OW),
        _ => None,
    }
}

/// The three sequence paths (outer, inner) canaries are planted in, two levels deep: kept
/// sequences (not in the table, or `X/Z/U*`).
const PATHS: [(u32, u32); 3] = [
    (0x0008_1140, 0x0008_2112), // Referenced Image Sequence > Source Image Sequence
    (0x5200_9229, 0x0020_9111), // Shared Functional Groups > Frame Content Sequence
    (0x0008_1115, 0x0008_2218), // Referenced Series Sequence > Anatomic Region Sequence
];

/// A planted file and what was planted where.
struct Planted {
    file: Vec<u8>,
    /// (position: 0 top level, 1..=3 the paths; tag) -> (VR, planted value as text)
    values: HashMap<(usize, u32), (VR, String)>,
    /// Strings that must not appear anywhere in the copy.
    canaries: Vec<String>,
}

fn element(tag: u32, vr: VR, value: PrimitiveValue) -> DataElement<InMemDicomObject> {
    DataElement::new(Tag((tag >> 16) as u16, tag as u16), vr, value)
}

fn sequence(tag: u32, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(
        Tag((tag >> 16) as u16, tag as u16),
        VR::SQ,
        DataSetSequence::new(items, Length::UNDEFINED),
    )
}

/// A private block (creator and one value) holding `canary`.
fn private_block(object: &mut InMemDicomObject, canary: &str) {
    object.put(element(0x0011_0010, VR::LO, "ACME CANARY CO".into()));
    object.put(element(0x0011_1001, VR::LO, canary.into()));
}

/// Plants every single-tag attribute of the table at the top level and inside the three
/// paths' items, plus curve and overlay data and private blocks at every depth.
fn planted_file(run: &str, transfer_syntax: &str) -> Planted {
    let rows = table();
    let mut values = HashMap::new();
    let mut canaries = Vec::new();
    let path_tags: HashSet<u32> = PATHS.iter().flat_map(|(a, b)| [*a, *b]).collect();
    let mut fill = |object: &mut InMemDicomObject, position: usize| {
        for (i, row) in rows.iter().enumerate() {
            let group = row.tag >> 16;
            if group == 0x0000 || group == 0x0002 || path_tags.contains(&row.tag) {
                continue;
            }
            let Some(vr) = dictionary_vr(row.tag) else {
                continue;
            };
            let text = format!("CNRY{run}{i:03X}{position}");
            let date = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap()
                + chrono::Days::new((i % 300) as u64);
            let (value, shown) = match vr {
                VR::SQ => {
                    let mut item = InMemDicomObject::new_empty();
                    item.put(element(0x0010_0010, VR::PN, text.as_str().into()));
                    private_block(&mut item, &text);
                    canaries.push(text.clone());
                    object.put(sequence(row.tag, vec![item]));
                    values.insert((position, row.tag), (vr, text));
                    continue;
                }
                VR::UI => {
                    let uid = format!("1.2.826.0.1.3680043.10.{run}.{i}.{position}");
                    (PrimitiveValue::from(uid.as_str()), uid)
                }
                VR::DA => {
                    let d = date.format("%Y%m%d").to_string();
                    (PrimitiveValue::from(d.as_str()), d)
                }
                VR::DT => {
                    let d = date.format("%Y%m%d120000.5").to_string();
                    (PrimitiveValue::from(d.as_str()), d)
                }
                VR::TM => ("123456".into(), "123456".to_owned()),
                VR::AS => ("042Y".into(), "042Y".to_owned()),
                VR::DS => ("1.5".into(), "1.5".to_owned()),
                VR::IS => ("7".into(), "7".to_owned()),
                VR::US | VR::SS => (PrimitiveValue::from(vec![7u8, 0]), String::new()),
                VR::UL | VR::SL | VR::FL | VR::AT => {
                    (PrimitiveValue::from(vec![7u8, 0, 0, 0]), String::new())
                }
                VR::FD | VR::SV | VR::UV => (PrimitiveValue::from(vec![7u8; 8]), String::new()),
                VR::OB | VR::OW | VR::OD | VR::OF | VR::OL | VR::OV => {
                    canaries.push(text.clone());
                    (PrimitiveValue::from(text.as_bytes().to_vec()), text.clone())
                }
                _ => {
                    canaries.push(text.clone());
                    (PrimitiveValue::from(text.as_str()), text.clone())
                }
            };
            object.put(element(row.tag, vr, value));
            values.insert((position, row.tag), (vr, shown));
        }
        private_block(object, &format!("CNRYPRIV{run}{position}"));
        canaries.push(format!("CNRYPRIV{run}{position}"));
    };

    let mut top = InMemDicomObject::new_empty();
    fill(&mut top, 0);
    for (p, (outer, inner)) in PATHS.iter().enumerate() {
        let mut deep = InMemDicomObject::new_empty();
        fill(&mut deep, p + 1);
        let mut middle = InMemDicomObject::new_empty();
        private_block(&mut middle, &format!("CNRYMID{run}{p}"));
        middle.put(sequence(*inner, vec![deep]));
        top.put(sequence(*outer, vec![middle]));
    }
    canaries.extend((0..PATHS.len()).map(|p| format!("CNRYMID{run}{p}")));
    // Curve data (50xx,xxxx), overlay data and comments (60xx,3000 / 60xx,4000).
    for (tag, vr, value) in [
        (0x5000_3000u32, VR::OW, format!("CNRYCURVE{run}")),
        (0x6000_3000, VR::OW, format!("CNRYOVLY{run}0")),
        (0x6002_4000, VR::LT, format!("CNRYOVLYCOMMENT{run}")),
    ] {
        let primitive = match vr {
            VR::OW => PrimitiveValue::from(value.as_bytes().to_vec()),
            _ => PrimitiveValue::from(value.as_str()),
        };
        top.put(element(tag, vr, primitive));
        canaries.push(value);
    }
    top.put(element(0x0008_0016, VR::UI, SECONDARY_CAPTURE.into()));
    top.put(element(0x0008_0060, VR::CS, "OT".into()));
    for (tag, v) in [(0x0028_0010u32, 4u8), (0x0028_0011, 4), (0x0028_0002, 1)] {
        top.put(element(tag, VR::US, PrimitiveValue::from(vec![v, 0])));
    }
    top.put(element(0x0028_0004, VR::CS, "MONOCHROME2".into()));
    for tag in [0x0028_0100u32, 0x0028_0101] {
        top.put(element(tag, VR::US, PrimitiveValue::from(vec![8u8, 0])));
    }
    top.put(element(
        0x0028_0102,
        VR::US,
        PrimitiveValue::from(vec![7u8, 0]),
    ));
    top.put(element(
        0x0028_0103,
        VR::US,
        PrimitiveValue::from(vec![0u8, 0]),
    ));
    top.put(element(
        0x7FE0_0010,
        VR::OB,
        PrimitiveValue::from((0..16u8).collect::<Vec<_>>()),
    ));
    let sop = values[&(0, 0x0008_0018)].1.clone();
    let file = top
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(transfer_syntax)
                .media_storage_sop_class_uid(SECONDARY_CAPTURE)
                .media_storage_sop_instance_uid(sop.as_str())
                .source_application_entity_title("CNRYAE")
                .private_information_creator_uid("1.2.3.4")
                .private_information(format!("CNRYMETA{run}").into_bytes()),
        )
        .unwrap();
    canaries.push("CNRYAE".into());
    canaries.push(format!("CNRYMETA{run}"));
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).unwrap();
    Planted {
        file: bytes,
        values,
        canaries,
    }
}

fn read(bytes: &[u8]) -> dicom_object::DefaultDicomObject {
    dicom_object::OpenFileOptions::new()
        .read_preamble(dicom_object::file::ReadPreamble::Always)
        .from_reader(bytes)
        .expect("the copy reads as DICOM")
}

fn tag_of(tag: u32) -> Tag {
    Tag((tag >> 16) as u16, tag as u16)
}

/// The item (first one) an element at `position` is in.
fn item_at(object: &InMemDicomObject, position: usize) -> Option<&InMemDicomObject> {
    if position == 0 {
        return Some(object);
    }
    let (outer, inner) = PATHS[position - 1];
    let middle = object.element_opt(tag_of(outer)).ok()??.items()?.first()?;
    middle.element_opt(tag_of(inner)).ok()??.items()?.first()
}

/// Every tag at every depth.
fn all_tags(object: &InMemDicomObject, out: &mut Vec<Tag>) {
    for e in object.iter() {
        out.push(e.tag());
        if let Some(items) = e.items() {
            items.iter().for_each(|item| all_tags(item, out));
        }
    }
}

fn text(e: &dicom_object::mem::InMemElement) -> String {
    e.to_str()
        .map(|v| v.trim_end_matches(['\0', ' ']).to_owned())
        .unwrap_or_default()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `2.25.` + the decimal of the first 16 bytes of HMAC-SHA256(key, uid), as API.md says.
fn expected_uid(app: &TestApp, uid: &str) -> String {
    let mac = app.state.pseudonym_key.mac(uid.as_bytes());
    format!(
        "2.25.{}",
        u128::from_be_bytes(mac[..16].try_into().unwrap())
    )
}

async fn upload_and_copy(
    doctor: &TestClient,
    researcher: &TestClient,
    file: &[u8],
) -> (serde_json::Value, Vec<u8>) {
    let res = doctor.upload(file, "planted.dcm", None).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let id = res.body["id"].as_str().unwrap();
    let copy = researcher.get(&format!("/api/v1/images/{id}/file")).await;
    assert_eq!(copy.status, StatusCode::OK, "{}", copy.text);
    (res.body.clone(), copy.bytes.to_vec())
}

/// Checks one copy against what was planted; returns (attributes planted, leaks found) and
/// the date shift seen.
fn verify(app: &TestApp, planted: &Planted, subject: &str, copy: &[u8]) -> (usize, usize, i64) {
    let rows: HashMap<u32, Row> = table().into_iter().map(|r| (r.tag, r)).collect();
    let object = read(copy);
    let mut leaks = Vec::new();
    for canary in &planted.canaries {
        if contains(copy, canary.as_bytes()) {
            leaks.push(format!("canary {canary} is in the copy's bytes"));
        }
    }
    for ((position, tag), (_, value)) in &planted.values {
        let is_uid = planted.values[&(*position, *tag)].0 == VR::UI;
        if is_uid && contains(copy, value.as_bytes()) {
            leaks.push(format!("original UID {value} is in the copy"));
        }
    }
    let mut tags = Vec::new();
    all_tags(&object, &mut tags);
    if let Some(t) = tags.iter().find(|t| t.group() % 2 == 1) {
        leaks.push(format!("private {t} kept"));
    }
    if let Some(t) = tags.iter().find(|t| {
        t.group() & 0xFF00 == 0x5000
            || (t.group() & 0xFF00 == 0x6000 && [0x3000, 0x4000].contains(&t.element()))
    }) {
        leaks.push(format!("curve or overlay data {t} kept"));
    }
    let meta = object.meta();
    if meta.source_application_entity_title.is_some() || meta.private_information.is_some() {
        leaks.push("the file meta keeps Source AE Title or Private Information".into());
    }
    let top_level_inserts = [
        0x0010_0010u32,
        0x0010_0020,
        0x0012_0062,
        0x0012_0063,
        0x0012_0064,
    ];
    let mut shifts = HashSet::new();
    for ((position, tag), (vr, value)) in &planted.values {
        if *position == 0 && top_level_inserts.contains(tag) {
            continue;
        }
        let item = item_at(&object, *position)
            .unwrap_or_else(|| panic!("the path of position {position} is kept"));
        let found = item.element_opt(tag_of(*tag)).unwrap();
        let rule = &rows[tag];
        let expected = expect(rule, *vr);
        let problem = match (expected, found) {
            (Expect::Absent, None) => None,
            (Expect::Absent, Some(_)) => Some("present, must be removed".to_owned()),
            (_, None) => Some("removed, must be kept".to_owned()),
            (Expect::Empty, Some(e)) => {
                let empty = match e.items() {
                    Some(items) => items.is_empty(),
                    None => matches!(e.value(), Value::Primitive(PrimitiveValue::Empty)),
                };
                (!empty).then(|| format!("must be empty, is {:?}", text(e)))
            }
            (Expect::Dummy, Some(e)) => {
                let same = !value.is_empty() && text(e) == *value;
                same.then(|| "keeps its value, must be a dummy".to_owned())
            }
            (Expect::ReplacedUid, Some(e)) => {
                let want = expected_uid(app, value);
                (text(e) != want).then(|| format!("UID {} is not {want}", text(e)))
            }
            (Expect::Shifted, Some(e)) => {
                let got = text(e);
                let parse = |v: &str| chrono::NaiveDate::parse_from_str(&v[..8], "%Y%m%d").ok();
                match (parse(value), got.get(..8).and_then(|_| parse(&got))) {
                    (Some(before), Some(after)) => {
                        shifts.insert((before - after).num_days());
                        (got[8..] != value[8..]).then(|| "time of day changed".to_owned())
                    }
                    _ => Some(format!("date {got:?} is not a shifted {value:?}")),
                }
            }
            (Expect::Unchanged, Some(e)) => (text(e) != *value).then(|| "changed".to_owned()),
            (Expect::KeptSequence, Some(e)) => e
                .items()
                .is_none()
                .then(|| "is no longer a sequence".to_owned()),
        };
        if let Some(problem) = problem {
            leaks.push(format!("({:08X}) at position {position}: {problem}", tag));
        }
    }
    assert_eq!(shifts.len(), 1, "one date shift per subject: {shifts:?}");
    let shift = *shifts.iter().next().unwrap();
    assert!((1..=3650).contains(&shift), "shift {shift}");
    // The top level carries the subject and the profile's marks.
    let value = |tag| object.element(tag).map(text).unwrap_or_default();
    assert_eq!(value(tags::PATIENT_NAME), subject);
    assert_eq!(value(tags::PATIENT_ID), subject);
    assert_eq!(value(tags::PATIENT_IDENTITY_REMOVED), "YES");
    assert_eq!(
        value(tags::LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED),
        "MODIFIED"
    );
    assert!(value(tags::DEIDENTIFICATION_METHOD).contains("2024b"));
    let codes: Vec<(String, String)> = object
        .element(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()
        .iter()
        .map(|item| {
            (
                item.element(tags::CODE_VALUE).map(text).unwrap(),
                item.element(tags::CODING_SCHEME_DESIGNATOR)
                    .map(text)
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("113100".into(), "DCM".into()),
            ("113107".into(), "DCM".into())
        ]
    );
    assert_eq!(
        meta.media_storage_sop_instance_uid().trim_end_matches('\0'),
        value(tags::SOP_INSTANCE_UID),
        "the file meta follows the new SOP Instance UID"
    );
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    (
        planted.values.len() + planted.canaries.len(),
        leaks.len(),
        shift,
    )
}

#[actix_web::test]
async fn every_table_attribute_at_every_depth_in_every_syntax_is_de_identified() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    for (n, syntax) in [EXPLICIT_LE, IMPLICIT_LE, EXPLICIT_BE]
        .into_iter()
        .enumerate()
    {
        let run = format!("{}{n}", rand::random::<u16>() % 1000 + 1);
        let planted = planted_file(&run, syntax);
        let (image, copy) = upload_and_copy(&doctor, &researcher, &planted.file).await;
        assert_eq!(
            read(&copy).meta().transfer_syntax().trim_end_matches('\0'),
            syntax
        );
        let subject = image["subject_id"].as_str().unwrap();
        let (count, leaks, shift) = verify(&app, &planted, subject, &copy);
        eprintln!(
            "{syntax}: {count} attributes and canaries planted, {leaks} found in the copy; \
             dates shifted {shift} days"
        );
        // Pixel data is copied unchanged.
        let pixels = |bytes: &[u8]| {
            read(bytes)
                .element(tags::PIXEL_DATA)
                .unwrap()
                .to_bytes()
                .unwrap()
                .to_vec()
        };
        assert_eq!(pixels(&copy), pixels(&planted.file));
    }
}

/// A small image file in `transfer_syntax` with the attributes given (text values), and
/// pixel data as given (native bytes, or encapsulated fragments).
pub(crate) fn image_file(
    transfer_syntax: &str,
    attributes: &[(u32, VR, &str)],
    fragments: Option<Vec<Vec<u8>>>,
    extra: impl FnOnce(&mut InMemDicomObject),
) -> Vec<u8> {
    let mut object = InMemDicomObject::new_empty();
    object.put(element(0x0008_0016, VR::UI, SECONDARY_CAPTURE.into()));
    for (tag, vr, value) in attributes {
        object.put(element(*tag, *vr, (*value).into()));
    }
    for (tag, v) in [(0x0028_0010u32, 4u8), (0x0028_0011, 4), (0x0028_0002, 1)] {
        object.put(element(tag, VR::US, PrimitiveValue::from(vec![v, 0])));
    }
    object.put(element(0x0028_0004, VR::CS, "MONOCHROME2".into()));
    for (tag, v) in [
        (0x0028_0100u32, 8u8),
        (0x0028_0101, 8),
        (0x0028_0102, 7),
        (0x0028_0103, 0),
    ] {
        object.put(element(tag, VR::US, PrimitiveValue::from(vec![v, 0])));
    }
    match fragments {
        Some(fragments) => object.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            Value::<InMemDicomObject>::from(
                dicom_core::value::PixelFragmentSequence::new_fragments(fragments),
            ),
        )),
        None => object.put(element(
            0x7FE0_0010,
            VR::OB,
            PrimitiveValue::from((0..16u8).collect::<Vec<_>>()),
        )),
    };
    extra(&mut object);
    let sop = object.element(tags::SOP_INSTANCE_UID).map(text).unwrap();
    let file = object
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(transfer_syntax)
                .media_storage_sop_class_uid(SECONDARY_CAPTURE)
                .media_storage_sop_instance_uid(sop.as_str()),
        )
        .unwrap();
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).unwrap();
    bytes
}

pub(crate) fn unique_uid() -> String {
    format!("2.25.{}", uuid::Uuid::now_v7().as_u128())
}

#[actix_web::test]
async fn references_between_files_of_a_study_resolve_in_the_copies() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let (study, frame, sop_a) = (unique_uid(), unique_uid(), unique_uid());
    let patient = format!("MRN-{}", rand::random::<u32>());
    let common = |sop: &str, date: &'static str| -> Vec<(u32, VR, String)> {
        vec![
            (0x0008_0018, VR::UI, sop.to_owned()),
            (0x0008_0020, VR::DA, date.to_owned()),
            (0x0010_0010, VR::PN, "Doe^Jane".to_owned()),
            (0x0010_0020, VR::LO, patient.clone()),
            (0x0020_000D, VR::UI, study.clone()),
            (0x0020_000E, VR::UI, unique_uid()),
            (0x0020_0052, VR::UI, frame.clone()),
        ]
    };
    let a_attrs = common(&sop_a, "20240110");
    let a = image_file(
        EXPLICIT_LE,
        &a_attrs
            .iter()
            .map(|(t, v, s)| (*t, *v, s.as_str()))
            .collect::<Vec<_>>(),
        None,
        |_| {},
    );
    let b_attrs = common(&unique_uid(), "20240131");
    let sop_a_ref = sop_a.clone();
    let b = image_file(
        EXPLICIT_LE,
        &b_attrs
            .iter()
            .map(|(t, v, s)| (*t, *v, s.as_str()))
            .collect::<Vec<_>>(),
        None,
        move |object| {
            let mut reference = InMemDicomObject::new_empty();
            reference.put(element(0x0008_1150, VR::UI, SECONDARY_CAPTURE.into()));
            reference.put(element(0x0008_1155, VR::UI, sop_a_ref.as_str().into()));
            private_block(&mut reference, "CNRY-IN-REFERENCE");
            object.put(sequence(0x0008_1140, vec![reference]));
        },
    );
    let (_, copy_a) = upload_and_copy(&doctor, &researcher, &a).await;
    let (_, copy_b) = upload_and_copy(&doctor, &researcher, &b).await;
    let (a, b) = (read(&copy_a), read(&copy_b));
    let value = |o: &dicom_object::DefaultDicomObject, tag| o.element(tag).map(text).unwrap();
    let referenced = b
        .element(tags::REFERENCED_IMAGE_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()[0]
        .element(tags::REFERENCED_SOP_INSTANCE_UID)
        .map(text)
        .unwrap();
    assert_eq!(
        referenced,
        value(&a, tags::SOP_INSTANCE_UID),
        "the reference resolves"
    );
    assert_eq!(referenced, expected_uid(&app, &sop_a));
    for tag in [
        tags::STUDY_INSTANCE_UID,
        tags::FRAME_OF_REFERENCE_UID,
        tags::PATIENT_ID,
    ] {
        assert_eq!(
            value(&a, tag),
            value(&b, tag),
            "{tag} matches across the study"
        );
    }
    assert_eq!(
        value(&a, tags::STUDY_INSTANCE_UID),
        expected_uid(&app, &study)
    );
    let date =
        |o| chrono::NaiveDate::parse_from_str(&value(o, tags::STUDY_DATE), "%Y%m%d").unwrap();
    assert_eq!((date(&b) - date(&a)).num_days(), 21, "intervals are kept");
    assert!(!contains(&copy_b, b"CNRY-IN-REFERENCE"));
    assert!(!contains(&copy_a, sop_a.as_bytes()) && !contains(&copy_b, sop_a.as_bytes()));
}

#[actix_web::test]
async fn encapsulated_pixel_data_is_copied_or_cleaned_frame_by_frame() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let attributes = |sop: &str| {
        vec![
            (0x0008_0018u32, VR::UI, sop.to_owned()),
            (0x0010_0010, VR::PN, "CNRY^ENCAPSULATED".to_owned()),
            (0x0010_0020, VR::LO, "CNRY-ENC-1".to_owned()),
            (0x0028_0008, VR::IS, "2".to_owned()),
        ]
    };
    let borrow = |a: &[(u32, VR, String)]| -> Vec<(u32, VR, String)> { a.to_vec() };
    // RLE: fragments are copied as they are.
    let fragments = vec![vec![0xAB; 64], vec![0xCD; 4000]];
    let rle = borrow(&attributes(&unique_uid()));
    let file = image_file(
        "1.2.840.10008.1.2.5",
        &rle.iter()
            .map(|(t, v, s)| (*t, *v, s.as_str()))
            .collect::<Vec<_>>(),
        Some(fragments.clone()),
        |o| private_block(o, "CNRY-ENC-PRIVATE"),
    );
    let (_, copy) = upload_and_copy(&doctor, &researcher, &file).await;
    assert!(!contains(&copy, b"CNRY"));
    let object = read(&copy);
    assert_eq!(
        object.meta().transfer_syntax().trim_end_matches('\0'),
        "1.2.840.10008.1.2.5"
    );
    let pixel = object.element(tags::PIXEL_DATA).unwrap();
    assert_eq!(pixel.value().fragments().unwrap(), fragments.as_slice());

    // JPEG: two frames, each carrying a comment and EXIF, the second split over two
    // fragments, and a JPEG with an artist appended after the last: each frame is cleaned by
    // the JPEG allow-list and becomes one fragment; nothing else is kept.
    let frame = crate::fixtures::jpeg(8, 8);
    let mut appended = vec![0xFF, 0xD8, 0xFF, 0xFE, 0x00, 0x10];
    appended.extend_from_slice(b"CNRY ARTIST JPG");
    appended.extend_from_slice(&frame[2..]);
    let split = frame.len() / 2;
    let mut last = frame[split..].to_vec();
    last.extend_from_slice(&appended);
    if last.len() % 2 == 1 {
        last.push(0);
    }
    let mut first = frame.clone();
    if first.len() % 2 == 1 {
        first.push(0);
    }
    let mut middle = frame[..split].to_vec();
    if middle.len() % 2 == 1 {
        middle.pop();
        last.insert(0, frame[split - 1]);
    }
    let jpeg = borrow(&attributes(&unique_uid()));
    let file = image_file(
        JPEG_BASELINE,
        &jpeg
            .iter()
            .map(|(t, v, s)| (*t, *v, s.as_str()))
            .collect::<Vec<_>>(),
        Some(vec![first, middle, last]),
        |_| {},
    );
    let (_, copy) = upload_and_copy(&doctor, &researcher, &file).await;
    assert!(!contains(&copy, b"CNRY") && !contains(&copy, crate::fixtures::CANARY.as_bytes()));
    let object = read(&copy);
    let fragments = object
        .element(tags::PIXEL_DATA)
        .unwrap()
        .value()
        .fragments()
        .unwrap()
        .to_vec();
    assert_eq!(fragments.len(), 2, "one fragment per frame");
    let mut clean = Vec::new();
    medlabel::imaging::deidentify::jpeg(frame.as_slice(), &mut clean).unwrap();
    for fragment in &fragments {
        assert_eq!(
            &fragment[..clean.len()],
            clean.as_slice(),
            "the frame, cleaned"
        );
        assert!(fragment.len() - clean.len() <= 1, "padding only");
    }
}

#[actix_web::test]
async fn uploads_refuse_non_images_unsupported_syntaxes_and_oversized_headers() {
    let app = TestApp::spawn_with(&[("MEDLABEL_MAX_DICOM_HEADER_BYTES", "65536")]).await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let before = app.stored_objects().await;
    // A structured report: a content tree with names, no Pixel Data.
    let mut report = InMemDicomObject::new_empty();
    report.put(element(
        0x0008_0016,
        VR::UI,
        "1.2.840.10008.5.1.4.1.1.88.22".into(),
    ));
    let sop = unique_uid();
    report.put(element(0x0008_0018, VR::UI, sop.as_str().into()));
    let mut content = InMemDicomObject::new_empty();
    content.put(element(0x0040_A123, VR::PN, "Doe^Jane".into()));
    report.put(sequence(0x0040_A730, vec![content]));
    let report = report
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(EXPLICIT_LE)
                .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.88.22")
                .media_storage_sop_instance_uid(sop.as_str()),
        )
        .unwrap();
    let mut sr = Vec::new();
    report.write_all(&mut sr).unwrap();
    let res = doctor.upload(&sr, "report.dcm", None).await;
    let problem = res.problem(415);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("only DICOM image objects"),
        "{}",
        res.text
    );

    // Deflated Explicit VR Little Endian: the meta names it (the data set is not read).
    let mut deflated = image_file(
        EXPLICIT_LE,
        &[(0x0008_0018, VR::UI, &unique_uid())],
        None,
        |_| {},
    );
    deflated = {
        let object = read(&deflated);
        let mut meta = object.meta().clone();
        meta.transfer_syntax = "1.2.840.10008.1.2.1.99\0".into();
        meta.update_information_group_length();
        let mut out = vec![0u8; 128];
        out.extend_from_slice(b"DICM");
        meta.write(&mut out).unwrap();
        out.extend_from_slice(b"\x78\x9c not really deflate");
        out
    };
    let res = doctor.upload(&deflated, "deflated.dcm", None).await;
    let problem = res.problem(415);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("transfer syntax"),
        "{}",
        res.text
    );

    // Attributes before Pixel Data above the configured bound: 413; below it: accepted.
    let big = |bytes: usize| {
        image_file(
            EXPLICIT_LE,
            &[(0x0008_0018, VR::UI, &unique_uid())],
            None,
            move |o| {
                o.put(element(0x0009_0010, VR::LO, "ACME".into()));
                o.put(element(
                    0x0009_1001,
                    VR::UN,
                    PrimitiveValue::from(vec![b'x'; bytes]),
                ));
            },
        )
    };
    let res = doctor.upload(&big(100_000), "big.dcm", None).await;
    let problem = res.problem(413);
    assert!(
        problem["detail"].as_str().unwrap().contains("65536"),
        "{}",
        res.text
    );

    // PNG and JPEG are checked by their structure.
    let png = crate::fixtures::png(4, 4);
    let mut html = png[..33].to_vec();
    html.extend_from_slice(b"<html><script>alert(1)</script></html>");
    html.extend_from_slice(&png[png.len() - 12..]);
    let mut bad_crc = png.clone();
    let n = bad_crc.len();
    bad_crc[n - 14] ^= 0x55;
    let jpeg = crate::fixtures::jpeg(8, 8);
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    let sof_len = usize::from(u16::from_be_bytes([jpeg[sof + 2], jpeg[sof + 3]]));
    let mut random = jpeg[..sof + 2 + sof_len].to_vec();
    random.extend_from_slice(b"random bytes that are no marker \xFF\xD9");
    for (name, bytes) in [
        ("html.png", html),
        ("crc.png", bad_crc),
        ("random.jpg", random),
    ] {
        let res = doctor.upload(&bytes, name, None).await;
        assert!(
            [415, 422].contains(&res.status.as_u16()),
            "{name}: {} {}",
            res.status,
            res.text
        );
    }
    assert_eq!(
        app.stored_objects().await,
        before,
        "nothing refused was stored"
    );

    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let (_, copy) = upload_and_copy(&doctor, &researcher, &big(3 << 20)).await;
    assert!(copy.len() < 1 << 20, "the large private element is removed");
}

#[actix_web::test]
async fn concurrent_first_downloads_build_one_copy_and_get_the_same_bytes() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let file = image_file(
        EXPLICIT_LE,
        &[
            (0x0008_0018, VR::UI, &unique_uid()),
            (0x0010_0020, VR::LO, "MRN-FLIGHT"),
        ],
        None,
        |o| {
            o.put(element(
                0x7FE0_0010,
                VR::OB,
                PrimitiveValue::from(vec![9u8; 4 << 20]),
            ));
        },
    );
    let id = doctor.upload(&file, "flight.dcm", None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/images/{id}/file");
    let answers = futures_util::future::join_all((0..16).map(|_| researcher.get(&path))).await;
    let first = &answers[0].bytes;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert_eq!(&answer.bytes, first, "every request gets the same copy");
    }
    assert_eq!(app.state.storage.copy_flights().started(), 1, "one build");
    let copies: Vec<String> = app
        .stored_objects()
        .await
        .into_iter()
        .filter(|k| k.starts_with("deidentified/"))
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
}

#[actix_web::test]
async fn png_and_jpeg_copies_keep_only_what_renders() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    // A PNG with a caBX chunk naming an author (and a private chunk) before IEND.
    let png = crate::fixtures::png(6, 6);
    let chunk = |kind: &[u8; 4], data: &[u8]| {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(data);
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        c.extend_from_slice(&crc.finalize().to_be_bytes());
        c
    };
    let mut authored = png[..png.len() - 12].to_vec();
    authored.extend(chunk(b"caBX", b"c2pa author: Dr CNRY Author"));
    authored.extend(chunk(b"prVt", b"CNRY private"));
    authored.extend_from_slice(&png[png.len() - 12..]);
    // A JPEG with a second complete JPEG (EXIF artist) appended after its EOI.
    let mut appended = crate::fixtures::jpeg(8, 8);
    let mut second = vec![0xFF, 0xD8, 0xFF, 0xE1];
    let exif = b"Exif\0\0Artist: CNRY Artist";
    second.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
    second.extend_from_slice(exif);
    second.extend_from_slice(&crate::fixtures::jpeg(4, 4)[2..]);
    appended.extend_from_slice(&second);
    for (name, bytes) in [("authored.png", authored), ("appended.jpg", appended)] {
        let id = doctor.upload(&bytes, name, None).await.body["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let copy = researcher.get(&format!("/api/v1/images/{id}/file")).await;
        assert_eq!(copy.status, StatusCode::OK, "{name}: {}", copy.text);
        assert!(
            !contains(&copy.bytes, b"CNRY") && !contains(&copy.bytes, b"CANARY"),
            "{name}"
        );
        if name.ends_with(".jpg") {
            let eoi = copy
                .bytes
                .windows(2)
                .position(|w| w == [0xFF, 0xD9])
                .unwrap();
            assert_eq!(eoi + 2, copy.bytes.len(), "nothing after the first EOI");
        } else {
            assert!(copy.bytes.ends_with(b"IEND\xAE\x42\x60\x82"));
            let decode = |bytes: &[u8]| {
                let mut reader = png::Decoder::new(std::io::Cursor::new(bytes.to_vec()))
                    .read_info()
                    .unwrap();
                let mut buf = vec![0; reader.output_buffer_size().unwrap()];
                reader.next_frame(&mut buf).unwrap();
                buf
            };
            assert_eq!(
                decode(&copy.bytes),
                decode(&bytes),
                "the pixels are the same"
            );
        }
    }
}

#[actix_web::test]
async fn a_file_the_engine_cannot_process_fails_the_download_and_stores_no_copy() {
    use object_store::ObjectStoreExt as _;
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let file = image_file(
        EXPLICIT_LE,
        &[(0x0008_0018, VR::UI, &unique_uid())],
        None,
        |_| {},
    );
    let id = doctor.upload(&file, "x.dcm", None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The stored original is damaged behind the server's back (a storage fault): its last
    // element now runs past the end of the file.
    let key = app
        .stored_objects()
        .await
        .into_iter()
        .find(|k| k.starts_with("images/"))
        .unwrap();
    let cut = file[..file.len() - 6].to_vec();
    app.state
        .storage
        .store()
        .put(&key.as_str().into(), cut.into())
        .await
        .unwrap();
    let res = researcher.get(&format!("/api/v1/images/{id}/file")).await;
    res.problem(500);
    assert!(!res.text.contains("YES"));
    assert!(
        app.stored_objects()
            .await
            .iter()
            .all(|k| !k.starts_with("deidentified/")),
        "no copy, partial or whole, is stored"
    );
}

#[actix_web::test]
async fn a_sequence_written_as_un_is_de_identified_like_any_sequence() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    // Related Series Sequence (0008,1250) as UN of defined length: its item in implicit VR
    // little endian (PS3.5 6.2.2), holding a name, a private block and a reference.
    let implicit = |group: u16, element: u16, value: &[u8]| {
        let mut e = group.to_le_bytes().to_vec();
        e.extend_from_slice(&element.to_le_bytes());
        e.extend_from_slice(&(value.len() as u32).to_le_bytes());
        e.extend_from_slice(value);
        e
    };
    let referenced = unique_uid();
    let mut uid = referenced.clone().into_bytes();
    if uid.len() % 2 == 1 {
        uid.push(0);
    }
    let body = [
        implicit(0x0008, 0x0092, b"CNRY-UN-ADDRESS "),
        implicit(0x0008, 0x1155, &uid),
        implicit(0x0010, 0x0010, b"CNRY^UNNAME "),
        implicit(0x0019, 0x0010, b"ACME"),
        implicit(0x0019, 0x1001, b"CNRY-UN-PRIVATE "),
    ]
    .concat();
    let mut item = vec![0xFE, 0xFF, 0x00, 0xE0];
    item.extend_from_slice(&(body.len() as u32).to_le_bytes());
    item.extend_from_slice(&body);
    let file = image_file(
        EXPLICIT_LE,
        &[
            (0x0008_0018, VR::UI, &unique_uid()),
            (0x0010_0020, VR::LO, "MRN-UN-1"),
        ],
        None,
        move |o| {
            o.put(element(0x0008_1250, VR::UN, PrimitiveValue::from(item)));
        },
    );
    let (_, copy) = upload_and_copy(&doctor, &researcher, &file).await;
    assert!(
        !contains(&copy, b"CNRY"),
        "nothing planted in the UN sequence survives"
    );
    assert!(!contains(&copy, referenced.as_bytes()));
    let object = read(&copy);
    let item = &object
        .element(tags::RELATED_SERIES_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()[0];
    assert_eq!(
        item.element(tags::REFERENCED_SOP_INSTANCE_UID)
            .map(text)
            .unwrap(),
        expected_uid(&app, &referenced)
    );
    assert!(item.element(tags::REFERRING_PHYSICIAN_ADDRESS).is_err());
}

/// A Part 10 file written element by element as given (any order, duplicates allowed), with
/// 16 bytes of native Pixel Data last unless `elements` holds some.
fn raw_file(transfer_syntax: &str, class: &str, elements: &[(u32, VR, Vec<u8>)]) -> Vec<u8> {
    use medlabel::imaging::part10::{padded, Part10Writer, Syntax};
    let mut out = Vec::new();
    let mut w = Part10Writer::new(&mut out, Syntax::of(transfer_syntax).unwrap());
    let sop = unique_uid();
    w.file_meta(&[
        (0x0002_0001, VR::OB, vec![0, 1]),
        (0x0002_0002, VR::UI, class.as_bytes().to_vec()),
        (0x0002_0003, VR::UI, padded(&sop, VR::UI)),
        (0x0002_0010, VR::UI, padded(transfer_syntax, VR::UI)),
    ])
    .unwrap();
    w.element(0x0008_0016, VR::UI, &padded(SECONDARY_CAPTURE, VR::UI))
        .unwrap();
    w.element(0x0008_0018, VR::UI, &padded(&sop, VR::UI))
        .unwrap();
    for (tag, vr, value) in elements {
        w.element(*tag, *vr, value).unwrap();
    }
    if !elements.iter().any(|(t, _, _)| *t == 0x7FE0_0010) {
        w.element(0x7FE0_0010, VR::OB, &[7u8; 16]).unwrap();
    }
    out
}

#[actix_web::test]
async fn crafted_dicom_is_refused_or_cleaned_never_passed_through() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let sc = SECONDARY_CAPTURE;
    let burned = |value: &[u8], vr: VR| (0x0028_0301u32, vr, value.to_vec());
    // Refused at upload (422 on `file`): repeated or misplaced attributes, a UID list built to
    // multiply the copy, a file meta class that is not a UID.
    let ones = "1\\".repeat(20_000) + "1";
    for (name, file) in [
        (
            "repeated",
            raw_file(
                EXPLICIT_LE,
                sc,
                &[burned(b"YES ", VR::CS), burned(b"NO", VR::CS)],
            ),
        ),
        (
            "out of order",
            raw_file(
                EXPLICIT_LE,
                sc,
                &[
                    (0x0010_0030, VR::DA, b"19800101".to_vec()),
                    (0x0010_0010, VR::PN, b"Doe^Jane".to_vec()),
                ],
            ),
        ),
        (
            "uid bomb",
            raw_file(
                IMPLICIT_LE,
                sc,
                &[(0x0008_0014, VR::UI, ones.clone().into_bytes())],
            ),
        ),
        ("meta class", raw_file(EXPLICIT_LE, "CNRY^DOE^JOHN ", &[])),
    ] {
        let res = doctor.upload(&file, "crafted.dcm", None).await;
        assert_eq!(res.status.as_u16(), 422, "{name}: {}", res.text);
    }
    // Burned In Annotation YES in any VR, any value, or inside a kept sequence: withheld.
    let mut functional_group = InMemDicomObject::new_empty();
    functional_group.put(element(0x0028_0301, VR::CS, "YES".into()));
    let nested = image_file(
        EXPLICIT_LE,
        &[(0x0008_0018, VR::UI, &unique_uid())],
        None,
        |o| {
            o.put(sequence(0x5200_9229, vec![functional_group]));
        },
    );
    for (name, file) in [
        ("UN", raw_file(EXPLICIT_LE, sc, &[burned(b"YES ", VR::UN)])),
        (
            "multi-valued",
            raw_file(EXPLICIT_LE, sc, &[burned(b"NO\\YES", VR::CS)]),
        ),
        ("nested", nested),
    ] {
        let res = doctor.upload(&file, "burned.dcm", None).await;
        assert_eq!(res.status, StatusCode::CREATED, "{name}: {}", res.text);
        let id = res.body["id"].as_str().unwrap();
        let seen = researcher.get(&format!("/api/v1/images/{id}")).await;
        assert_eq!(seen.body["withheld"], true, "{name}");
        let file = researcher.get(&format!("/api/v1/images/{id}/file")).await;
        assert!(file.problem(403)["type"]
            .as_str()
            .unwrap()
            .ends_with("/withheld"));
    }
    // Free text after a date-time's date, and command attributes: not in the copy.
    let file = raw_file(
        EXPLICIT_LE,
        sc,
        &[(0x0008_002A, VR::DT, b"20240101120000CNRY DOE MRN".to_vec())],
    );
    let (_, copy) = upload_and_copy(&doctor, &researcher, &file).await;
    assert!(!contains(&copy, b"CNRY"));
    let command = raw_file(
        EXPLICIT_LE,
        sc,
        &[(0x0000_0902, VR::LO, b"CNRY ERROR COMMENTS ".to_vec())],
    );
    // (0000,0902) sorts before (0008,0016): write it first by hand.
    let at = command
        .windows(4)
        .position(|w| w == [0x00, 0x00, 0x02, 0x09])
        .unwrap();
    let end = at + 8 + 20;
    let meta_end = command
        .windows(4)
        .position(|w| w == [0x08, 0x00, 0x16, 0x00])
        .unwrap();
    let reordered = [
        &command[..meta_end],
        &command[at..end],
        &command[meta_end..at],
        &command[end..],
    ]
    .concat();
    let (_, copy) = upload_and_copy(&doctor, &researcher, &reordered).await;
    assert!(!contains(&copy, b"CNRY"));
}
