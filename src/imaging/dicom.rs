//! DICOM Part 10 reading with dicom-rs: the header up to the pixel data (never the pixels),
//! for dimensions and for filing the image under its patient, study and series (PS3.3 C.7.1.1
//! Patient Module, C.7.2.1 General Study, C.7.3.1 General Series, C.12.1 SOP Common).

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::OpenFileOptions;

use super::{Dimensions, ImageError};

/// What a DICOM header says about where the image belongs. Text values are trimmed of their
/// padding; empty values are `None`. Dates (DA, `YYYYMMDD`) are given as `YYYY-MM-DD`, and a
/// date that is not a valid calendar date is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DicomHeader {
    pub dimensions: Dimensions,
    /// Patient ID (0010,0020).
    pub patient_id: Option<String>,
    /// Issuer of Patient ID (0010,0021).
    pub issuer_of_patient_id: Option<String>,
    /// Patient's Name (0010,0010), as written (PN: `Family^Given^Middle^Prefix^Suffix`).
    pub patients_name: Option<String>,
    /// Patient's Birth Date (0010,0030).
    pub patients_birth_date: Option<String>,
    /// Patient's Sex (0010,0040).
    pub patients_sex: Option<String>,
    /// Study Instance UID (0020,000D).
    pub study_instance_uid: Option<String>,
    /// Study Date (0008,0020).
    pub study_date: Option<String>,
    /// Accession Number (0008,0050).
    pub accession_number: Option<String>,
    /// Study Description (0008,1030).
    pub study_description: Option<String>,
    /// Series Instance UID (0020,000E).
    pub series_instance_uid: Option<String>,
    /// Modality (0008,0060).
    pub modality: Option<String>,
    /// SOP Instance UID (0008,0018).
    pub sop_instance_uid: Option<String>,
    /// Burned In Annotation (0028,0301) is `YES`.
    pub burned_in_annotation: bool,
    /// Number of Frames (0028,0008) of a multi-frame image (PS3.3 C.7.6.6); `None` when absent.
    /// After [`check`], no more than native Pixel Data holds.
    pub number_of_frames: Option<u32>,
    /// Samples per Pixel (0028,0002) and Bits Allocated (0028,0100).
    pub samples_per_pixel: Option<u32>,
    pub bits_allocated: Option<u32>,
}

/// The top-level attributes an upload is filed by, read while the file streams.
const FILING_TAGS: [u32; 19] = [
    0x0008_0005, // Specific Character Set
    0x0008_0018, // SOP Instance UID
    0x0008_0020, // Study Date
    0x0008_0050, // Accession Number
    0x0008_0060, // Modality
    0x0008_1030, // Study Description
    0x0010_0010, // Patient's Name
    0x0010_0020, // Patient ID
    0x0010_0021, // Issuer of Patient ID
    0x0010_0030, // Patient's Birth Date
    0x0010_0040, // Patient's Sex
    0x0020_000D, // Study Instance UID
    0x0020_000E, // Series Instance UID
    0x0028_0002, // Samples per Pixel
    0x0028_0008, // Number of Frames
    0x0028_0010, // Rows
    0x0028_0011, // Columns
    0x0028_0100, // Bits Allocated
    0x0028_0301, // Burned In Annotation
];

/// Checks a whole DICOM Part 10 file as it streams from `input` and reads its header. The
/// check is the walk a researcher's copy takes ([`super::confidentiality`]), writing nowhere,
/// so every file accepted can be de-identified. Errors: see [`super::part10::Part10Error`];
/// a value the image is filed by that breaks its VR's rules (PS3.5 6.2) is `Corrupt`.
pub fn check<R: std::io::Read>(input: R, max_header_bytes: u64) -> Result<DicomHeader, ImageError> {
    use super::confidentiality::{deidentify_dicom, Profile};
    use super::part10::{Part10Writer, Syntax};
    let key = crate::pseudonym::PseudonymKey::new(vec![0; 32]).map_err(|e| {
        ImageError::Corrupt("DICOM", e) // unreachable: the key has 32 bytes
    })?;
    let profile = Profile {
        key: &key,
        subject_id: None,
        shift_days: 1,
        sop_instance_uid: None,
        max_header_bytes,
    };
    let walked = deidentify_dicom(input, std::io::sink(), &profile, &FILING_TAGS)?;
    // The filing attributes, re-encoded as a small Explicit VR Little Endian file for
    // dicom-rs, which decodes their character sets.
    let big_endian = walked.syntax.is_some_and(|s| s.big_endian);
    let mut file = Vec::new();
    let mut writer = Part10Writer::new(&mut file, Syntax::EXPLICIT_LITTLE);
    let write = |writer: &mut Part10Writer<&mut Vec<u8>>| -> std::io::Result<()> {
        writer.file_meta(&[
            (0x0002_0001, dicom_core::VR::OB, vec![0, 1]),
            (0x0002_0002, dicom_core::VR::UI, b"1.2\0".to_vec()),
            (0x0002_0003, dicom_core::VR::UI, b"1.2\0".to_vec()),
            (
                0x0002_0010,
                dicom_core::VR::UI,
                super::part10::padded("1.2.840.10008.1.2.1", dicom_core::VR::UI),
            ),
        ])?;
        for (tag, vr, value) in &walked.captured {
            let mut value = value.clone();
            if big_endian && matches!(vr, dicom_core::VR::US | dicom_core::VR::SS) {
                value.chunks_exact_mut(2).for_each(|pair| pair.swap(0, 1));
            }
            writer.element(*tag, *vr, &value)?;
        }
        Ok(())
    };
    write(&mut writer).map_err(|e| ImageError::Corrupt("DICOM", e.to_string()))?;
    let mut header = read_header(&file).map_err(|e| ImageError::Corrupt("DICOM", e))?;
    // YES in any Burned In Annotation the copy would keep (any VR, any depth, any value).
    header.burned_in_annotation |= walked.burned_in_annotation;
    // Frames are what native Pixel Data holds, not more than Number of Frames declares (a
    // file claiming a million frames with one stored takes annotations on frame 0 only).
    if let (Some(declared), Some(bytes)) = (header.number_of_frames, walked.native_pixel_bytes) {
        let frame = [
            header.dimensions.width,
            header.dimensions.height,
            header.samples_per_pixel,
            header.bits_allocated,
        ]
        .into_iter()
        .try_fold(1u64, |product, n| Some(product * u64::from(n?)))
        .map(|bits| bits.div_ceil(8))
        .filter(|bytes| *bytes > 0);
        if let Some(frame) = frame {
            let held = u32::try_from(bytes / frame).unwrap_or(u32::MAX).max(1);
            header.number_of_frames = Some(declared.min(held));
        }
    }
    Ok(header)
}

/// Reads the header of a DICOM file held in memory (preamble included), stopping at Pixel
/// Data (7FE0,0010). `Err` when it cannot be parsed, or a value the image is filed by breaks
/// its VR's rules (PS3.5 6.2).
pub fn read_header(file: &[u8]) -> Result<DicomHeader, String> {
    let object = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .read_until(tags::PIXEL_DATA)
        .from_reader(file)
        .map_err(|e| format!("the header cannot be read ({e})"))?;
    let number = |tag| {
        object
            .element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_int::<u32>().ok())
    };
    let text = |tag: Tag| {
        object
            .element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_str().ok())
            .map(|v| crate::text::nfc(v.trim_matches(|c: char| c == ' ' || c == '\0')))
            .filter(|v| !v.is_empty())
    };
    let date = |tag: Tag| text(tag).and_then(|v| iso_date(&v));
    let header = DicomHeader {
        dimensions: Dimensions {
            width: number(tags::COLUMNS),
            height: number(tags::ROWS),
        },
        patient_id: text(tags::PATIENT_ID),
        issuer_of_patient_id: text(tags::ISSUER_OF_PATIENT_ID),
        patients_name: text(tags::PATIENT_NAME),
        patients_birth_date: date(tags::PATIENT_BIRTH_DATE),
        patients_sex: text(tags::PATIENT_SEX),
        study_instance_uid: text(tags::STUDY_INSTANCE_UID),
        study_date: date(tags::STUDY_DATE),
        accession_number: text(tags::ACCESSION_NUMBER),
        study_description: text(tags::STUDY_DESCRIPTION),
        series_instance_uid: text(tags::SERIES_INSTANCE_UID),
        modality: text(tags::MODALITY),
        sop_instance_uid: text(tags::SOP_INSTANCE_UID),
        burned_in_annotation: text(tags::BURNED_IN_ANNOTATION)
            .is_some_and(|v| v.eq_ignore_ascii_case("YES")),
        number_of_frames: number(tags::NUMBER_OF_FRAMES).filter(|n| *n > 0),
        samples_per_pixel: number(tags::SAMPLES_PER_PIXEL),
        bits_allocated: number(tags::BITS_ALLOCATED),
    };
    check_values(&header)?;
    Ok(header)
}

/// The values medlabel files by, against their VR's length and character rules (PS3.5
/// Table 6.2-1): LO 64 characters, SH and CS 16, UI 64 of digits and dots, PN 64 per component
/// group; single-valued (no `\`), no control characters (ESC aside in names, for ISO 2022
/// character sets); IDs also without invisible characters, so two IDs that look the same are
/// the same.
fn check_values(h: &DicomHeader) -> Result<(), String> {
    let rules: [(&str, &Option<String>, usize, Kind); 10] = [
        ("Patient ID (0010,0020)", &h.patient_id, 64, Kind::Id),
        (
            "Issuer of Patient ID (0010,0021)",
            &h.issuer_of_patient_id,
            64,
            Kind::Id,
        ),
        (
            "Patient's Name (0010,0010)",
            &h.patients_name,
            3 * 64 + 2,
            Kind::Name,
        ),
        ("Patient's Sex (0010,0040)", &h.patients_sex, 16, Kind::Text),
        (
            "Study Instance UID (0020,000D)",
            &h.study_instance_uid,
            64,
            Kind::Uid,
        ),
        (
            "Accession Number (0008,0050)",
            &h.accession_number,
            16,
            Kind::Id,
        ),
        (
            "Study Description (0008,1030)",
            &h.study_description,
            64,
            Kind::Text,
        ),
        (
            "Series Instance UID (0020,000E)",
            &h.series_instance_uid,
            64,
            Kind::Uid,
        ),
        ("Modality (0008,0060)", &h.modality, 16, Kind::Text),
        (
            "SOP Instance UID (0008,0018)",
            &h.sop_instance_uid,
            64,
            Kind::Uid,
        ),
    ];
    for (attribute, value, max, kind) in rules {
        let Some(value) = value else { continue };
        if value.chars().count() > max {
            return Err(format!("{attribute} is longer than {max} characters"));
        }
        if value.contains('\\') {
            return Err(format!("{attribute} must hold one value"));
        }
        let bad = match kind {
            Kind::Uid => !value.chars().all(|c| c.is_ascii_digit() || c == '.'),
            Kind::Name => {
                value.split('=').any(|group| group.chars().count() > 64)
                    || value.chars().any(|c| c.is_control() && c != '\u{1b}')
                    || crate::text::has_invisible(value)
            }
            Kind::Text => value.chars().any(char::is_control),
            Kind::Id => crate::text::name_problem(value).is_some(),
        };
        if bad {
            return Err(format!(
                "{attribute} holds characters its value may not hold"
            ));
        }
    }
    Ok(())
}

/// Which character rule a value follows.
#[derive(Clone, Copy)]
enum Kind {
    /// Digits and dots (UI).
    Uid,
    /// A person name (PN): no control characters but ESC.
    Name,
    /// Text (LO, SH, CS): no control characters.
    Text,
    /// An identifier: no control or invisible characters either.
    Id,
}

/// A DA value (`YYYYMMDD`, PS3.5 6.2) as `YYYY-MM-DD`; `None` unless it is a calendar date.
pub fn iso_date(value: &str) -> Option<String> {
    chrono::NaiveDate::parse_from_str(value, "%Y%m%d")
        .ok()
        .filter(|_| value.len() == 8)
        .map(|d| d.format("%Y-%m-%d").to_string())
}

/// A small, valid DICOM Part 10 file (Secondary Capture, 8-bit monochrome, explicit VR little
/// endian) with `rows` x `columns` pixels derived from `shade`, and the extra attributes given.
/// For demo data and tests: medlabel itself never creates clinical images.
pub fn synthetic_dicom(
    rows: u16,
    columns: u16,
    shade: u8,
    attributes: &[(dicom_core::Tag, dicom_core::VR, String)],
) -> anyhow::Result<Vec<u8>> {
    synthetic_frames(rows, columns, 1, shade, attributes)
}

/// Like [`synthetic_dicom`], with `frames` frames of Pixel Data (Number of Frames is what
/// `attributes` say, if anything: a test may declare more than it stores).
pub fn synthetic_frames(
    rows: u16,
    columns: u16,
    frames: usize,
    shade: u8,
    attributes: &[(dicom_core::Tag, dicom_core::VR, String)],
) -> anyhow::Result<Vec<u8>> {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::uids;
    use dicom_object::meta::FileMetaTableBuilder;
    use dicom_object::InMemDicomObject;

    let mut obj = InMemDicomObject::new_empty();
    let instance = attributes
        .iter()
        .find(|(tag, _, _)| *tag == tags::SOP_INSTANCE_UID)
        .map(|(_, _, v)| v.clone())
        .unwrap_or_else(|| format!("2.25.{}", uuid::Uuid::now_v7().as_u128()));
    obj.put(DataElement::new(
        tags::SOP_CLASS_UID,
        VR::UI,
        "1.2.840.10008.5.1.4.1.1.7",
    ));
    obj.put(DataElement::new(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        instance.as_str(),
    ));
    if !attributes.iter().any(|(tag, _, _)| *tag == tags::MODALITY) {
        obj.put(DataElement::new(tags::MODALITY, VR::CS, "OT"));
    }
    for (tag, vr, value) in attributes
        .iter()
        .filter(|(t, _, _)| *t != tags::SOP_INSTANCE_UID)
    {
        obj.put(DataElement::new(*tag, *vr, value.as_str()));
    }
    let u16_value = |v: u16| PrimitiveValue::from(v);
    obj.put(DataElement::new(tags::ROWS, VR::US, u16_value(rows)));
    obj.put(DataElement::new(tags::COLUMNS, VR::US, u16_value(columns)));
    obj.put(DataElement::new(
        tags::SAMPLES_PER_PIXEL,
        VR::US,
        u16_value(1),
    ));
    obj.put(DataElement::new(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    ));
    obj.put(DataElement::new(tags::BITS_ALLOCATED, VR::US, u16_value(8)));
    obj.put(DataElement::new(tags::BITS_STORED, VR::US, u16_value(8)));
    obj.put(DataElement::new(tags::HIGH_BIT, VR::US, u16_value(7)));
    obj.put(DataElement::new(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        u16_value(0),
    ));
    let pixels: Vec<u8> = (0..rows as usize * columns as usize * frames)
        .map(|i| (i as u8).wrapping_add(shade))
        .collect();
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(pixels),
    ));
    let file = obj.with_meta(
        FileMetaTableBuilder::new()
            .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
            .media_storage_sop_instance_uid(instance.as_str()),
    )?;
    let mut out = Vec::new();
    file.write_all(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::VR;

    #[test]
    fn the_header_names_patient_study_series_and_instance() {
        let file = synthetic_dicom(
            4,
            6,
            0,
            &[
                (tags::PATIENT_ID, VR::LO, "PAT-0042 ".into()),
                (tags::ISSUER_OF_PATIENT_ID, VR::LO, "HOSP".into()),
                (tags::PATIENT_NAME, VR::PN, "Doe^John".into()),
                (tags::PATIENT_BIRTH_DATE, VR::DA, "19800312".into()),
                (tags::PATIENT_SEX, VR::CS, "M".into()),
                (tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3".into()),
                (tags::STUDY_DATE, VR::DA, "20260230".into()),
                (tags::ACCESSION_NUMBER, VR::SH, "ACC1".into()),
                (tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.4".into()),
                (tags::MODALITY, VR::CS, "CT".into()),
                (tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4.5".into()),
                (tags::BURNED_IN_ANNOTATION, VR::CS, "YES".into()),
            ],
        )
        .unwrap();
        let header = check(file.as_slice(), 1 << 20).unwrap();
        assert_eq!(header.patient_id.as_deref(), Some("PAT-0042"));
        assert_eq!(header.issuer_of_patient_id.as_deref(), Some("HOSP"));
        assert_eq!(header.patients_name.as_deref(), Some("Doe^John"));
        assert_eq!(header.patients_birth_date.as_deref(), Some("1980-03-12"));
        assert_eq!(header.patients_sex.as_deref(), Some("M"));
        assert_eq!(header.study_instance_uid.as_deref(), Some("1.2.3"));
        assert_eq!(header.study_date, None, "30 February is no date");
        assert_eq!(header.accession_number.as_deref(), Some("ACC1"));
        assert_eq!(header.series_instance_uid.as_deref(), Some("1.2.3.4"));
        assert_eq!(header.modality.as_deref(), Some("CT"));
        assert_eq!(header.sop_instance_uid.as_deref(), Some("1.2.3.4.5"));
        assert!(header.burned_in_annotation);
        assert_eq!(header.dimensions.width, Some(6));
        let plain = check(synthetic_dicom(2, 2, 0, &[]).unwrap().as_slice(), 1 << 20).unwrap();
        assert_eq!(plain.patient_id, None);
        assert!(!plain.burned_in_annotation);
        // A file cut short is refused, before or inside Pixel Data.
        assert!(check(&file[..200], 1 << 20).is_err());
        assert!(check(&file[..file.len() - 4], 1 << 20).is_err());
        // The bound is on where Pixel Data starts: exactly there is accepted, a byte less not.
        let pixel_data_at = file.len() - (12 + 24);
        assert_eq!(
            &file[pixel_data_at..pixel_data_at + 4],
            &[0xE0, 0x7F, 0x10, 0x00]
        );
        assert!(check(file.as_slice(), pixel_data_at as u64).is_ok());
        assert!(matches!(
            check(file.as_slice(), pixel_data_at as u64 - 1),
            Err(ImageError::HeaderTooLarge(_))
        ));
    }

    #[test]
    fn values_that_break_their_vr_are_refused() {
        for (tag, vr, value) in [
            (tags::PATIENT_ID, VR::LO, "x".repeat(65)),
            (tags::PATIENT_ID, VR::LO, "A\\B".to_owned()),
            (tags::PATIENT_ID, VR::LO, "A\u{200B}B".to_owned()),
            (tags::PATIENT_ID, VR::LO, "A\tB".to_owned()),
            (tags::STUDY_INSTANCE_UID, VR::UI, "1.2.x".to_owned()),
            (
                tags::SOP_INSTANCE_UID,
                VR::UI,
                format!("1.{}", "2".repeat(80)),
            ),
            (tags::MODALITY, VR::CS, "M".repeat(17)),
            (tags::PATIENT_NAME, VR::PN, "N".repeat(300)),
            (tags::PATIENT_NAME, VR::PN, format!("{}^A", "N".repeat(70))),
            (tags::PATIENT_NAME, VR::PN, "Mül\u{200B}ler^Anna".to_owned()),
        ] {
            let utf8 = (
                tags::SPECIFIC_CHARACTER_SET,
                VR::CS,
                "ISO_IR 192".to_owned(),
            );
            let file = synthetic_dicom(2, 2, 0, &[utf8, (tag, vr, value.clone())]).unwrap();
            assert!(check(file.as_slice(), 1 << 20).is_err(), "{tag} {value:?}");
        }
    }
}
