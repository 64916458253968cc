//! DICOM Part 10 reading with dicom-rs: the header up to the pixel data (never the pixels),
//! for dimensions and for filing the image under its patient, study and series (PS3.3 C.7.1.1
//! Patient Module, C.7.2.1 General Study, C.7.3.1 General Series, C.12.1 SOP Common).

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::OpenFileOptions;

use super::Dimensions;

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
}

/// Reads the header from the first bytes of a DICOM file (preamble included), stopping at
/// Pixel Data (7FE0,0010). `Err` when it cannot be parsed.
pub fn read_header(head: &[u8]) -> Result<DicomHeader, String> {
    let object = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .read_until(tags::PIXEL_DATA)
        .from_reader(head)
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
    Ok(DicomHeader {
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
    })
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
    let pixels: Vec<u8> = (0..rows as usize * columns as usize)
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
        let header = read_header(&file).unwrap();
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
        let plain = read_header(&synthetic_dicom(2, 2, 0, &[]).unwrap()).unwrap();
        assert_eq!(plain.patient_id, None);
        assert!(!plain.burned_in_annotation);
    }
}
