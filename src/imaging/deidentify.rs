//! De-identified copies for researchers.
//!
//! - DICOM: the Basic Application Level Confidentiality Profile (PS3.15 2023b, Annex E) as it
//!   applies to a single file: the identifying attributes below are removed or emptied, every
//!   private (odd-group) attribute is removed, and Patient Identity Removed (0012,0062) = `YES`
//!   with De-identification Method (0012,0063) naming the profile.
//! - PNG: text and metadata chunks (`tEXt`, `zTXt`, `iTXt`, `eXIf`, `tIME`) are dropped.
//! - JPEG: APP1 (EXIF, XMP), APP13 (IPTC/Photoshop) and COM segments are dropped; APP0 (JFIF),
//!   APP2 (ICC colour profile) and APP14 (Adobe colour transform) are kept, and the scan data
//!   is copied unchanged.

use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::OpenFileOptions;

use super::ImageKind;

/// Attributes the profile removes ("X") or empties ("Z"/"D" where emptiness is valid).
const DICOM_REMOVE: &[Tag] = &[
    tags::PATIENT_NAME,
    tags::PATIENT_ID,
    tags::PATIENT_BIRTH_DATE,
    tags::PATIENT_BIRTH_TIME,
    tags::PATIENT_SEX,
    tags::PATIENT_AGE,
    tags::PATIENT_SIZE,
    tags::PATIENT_WEIGHT,
    tags::PATIENT_ADDRESS,
    tags::PATIENT_TELEPHONE_NUMBERS,
    tags::PATIENT_MOTHER_BIRTH_NAME,
    Tag(0x0010, 0x1000), // Other Patient IDs (retired, still identifying)
    tags::OTHER_PATIENT_NAMES,
    tags::OTHER_PATIENT_I_DS_SEQUENCE,
    tags::PATIENT_BIRTH_NAME,
    Tag(0x0010, 0x1090), // Medical Record Locator (retired)
    Tag(0x0010, 0x2160), // Ethnic Group (retired)
    tags::OCCUPATION,
    tags::ADDITIONAL_PATIENT_HISTORY,
    tags::PATIENT_COMMENTS,
    tags::MILITARY_RANK,
    tags::BRANCH_OF_SERVICE,
    tags::COUNTRY_OF_RESIDENCE,
    tags::REGION_OF_RESIDENCE,
    tags::ISSUER_OF_PATIENT_ID,
    tags::ACCESSION_NUMBER,
    tags::INSTITUTION_NAME,
    tags::INSTITUTION_ADDRESS,
    tags::INSTITUTIONAL_DEPARTMENT_NAME,
    tags::STATION_NAME,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::REFERRING_PHYSICIAN_ADDRESS,
    tags::REFERRING_PHYSICIAN_TELEPHONE_NUMBERS,
    tags::PERFORMING_PHYSICIAN_NAME,
    tags::NAME_OF_PHYSICIANS_READING_STUDY,
    tags::PHYSICIANS_OF_RECORD,
    tags::OPERATORS_NAME,
    tags::REQUESTING_PHYSICIAN,
    tags::STUDY_DESCRIPTION,
    tags::SERIES_DESCRIPTION,
    tags::STUDY_ID,
    tags::REQUEST_ATTRIBUTES_SEQUENCE,
    tags::DEVICE_SERIAL_NUMBER,
    tags::PROTOCOL_NAME,
    tags::IMAGE_COMMENTS,
    tags::DERIVATION_DESCRIPTION,
    tags::ADMITTING_DIAGNOSES_DESCRIPTION,
    tags::PERFORMED_PROCEDURE_STEP_DESCRIPTION,
    tags::PERFORMED_PROCEDURE_STEP_ID,
    tags::SCHEDULED_PROCEDURE_STEP_DESCRIPTION,
    tags::REQUESTED_PROCEDURE_DESCRIPTION,
    tags::CONTENT_CREATOR_NAME,
];

/// Makes a researcher's copy of a stored file.
pub fn deidentify(kind: ImageKind, bytes: &[u8]) -> Result<Vec<u8>, String> {
    match kind {
        ImageKind::Dicom => deidentify_dicom(bytes),
        ImageKind::Png => strip_png(bytes),
        ImageKind::Jpeg => strip_jpeg(bytes),
    }
}

fn deidentify_dicom(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut object = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .from_reader(bytes)
        .map_err(|e| format!("reading DICOM: {e}"))?;
    for tag in DICOM_REMOVE {
        object.remove_element(*tag);
    }
    let private: Vec<Tag> = object.tags().filter(|t| t.group() % 2 == 1).collect();
    for tag in private {
        object.remove_element(tag);
    }
    object.put_str(tags::PATIENT_IDENTITY_REMOVED, VR::CS, "YES");
    object.put_str(
        tags::DEIDENTIFICATION_METHOD,
        VR::LO,
        "PS3.15 Basic Application Level Confidentiality Profile",
    );
    let mut out = Vec::with_capacity(bytes.len());
    object
        .write_all(&mut out)
        .map_err(|e| format!("writing DICOM: {e}"))?;
    Ok(out)
}

fn strip_png(bytes: &[u8]) -> Result<Vec<u8>, String> {
    const DROP: [&[u8; 4]; 5] = [b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"];
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(bytes.get(..8).ok_or("PNG too short")?);
    let mut at = 8;
    while at < bytes.len() {
        let header = bytes.get(at..at + 8).ok_or("truncated PNG chunk header")?;
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let end = at + 12 + length;
        let chunk = bytes.get(at..end).ok_or("truncated PNG chunk")?;
        if !DROP.iter().any(|t| &header[4..8] == *t) {
            out.extend_from_slice(chunk);
        }
        at = end;
    }
    Ok(out)
}

fn strip_jpeg(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(bytes.get(..2).ok_or("JPEG too short")?);
    let mut at = 2;
    loop {
        let marker = bytes.get(at..at + 2).ok_or("truncated JPEG marker")?;
        if marker[0] != 0xFF {
            return Err("JPEG marker expected".into());
        }
        let kind = marker[1];
        if kind == 0xFF {
            at += 1; // fill byte
            continue;
        }
        // Markers without a length: TEM and RSTn; EOI ends the file.
        if kind == 0x01 || (0xD0..=0xD7).contains(&kind) {
            out.extend_from_slice(marker);
            at += 2;
            continue;
        }
        if kind == 0xD9 {
            out.extend_from_slice(marker);
            return Ok(out);
        }
        let len_bytes = bytes.get(at + 2..at + 4).ok_or("truncated JPEG segment")?;
        let length = u16::from_be_bytes([len_bytes[0], len_bytes[1]]) as usize;
        let end = at + 2 + length;
        let segment = bytes.get(at..end).ok_or("truncated JPEG segment")?;
        let metadata = kind == 0xE1
            || kind == 0xED
            || kind == 0xFE
            || (0xE3..=0xEC).contains(&kind)
            || kind == 0xEF;
        if kind == 0xDA {
            // Start of scan: the entropy-coded data and everything after it is image data.
            out.extend_from_slice(&bytes[at..]);
            return Ok(out);
        }
        if !metadata {
            out.extend_from_slice(segment);
        }
        at = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_text_chunks_are_dropped_and_image_chunks_kept() {
        let chunk = |kind: &[u8; 4], data: &[u8]| {
            let mut c = (data.len() as u32).to_be_bytes().to_vec();
            c.extend_from_slice(kind);
            c.extend_from_slice(data);
            c.extend_from_slice(&[0, 0, 0, 0]);
            c
        };
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(chunk(b"IHDR", &[0; 13]));
        png.extend(chunk(b"tEXt", b"Author\0Dr Canary"));
        png.extend(chunk(b"IDAT", b"pixels"));
        png.extend(chunk(b"iTXt", b"XML:com.adobe.xmp\0canary"));
        png.extend(chunk(b"IEND", b""));
        let out = strip_png(&png).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("Canary") && !text.contains("canary"));
        assert!(text.contains("IHDR") && text.contains("IDAT") && text.contains("IEND"));
    }

    #[test]
    fn jpeg_exif_xmp_and_comments_are_dropped() {
        let segment = |kind: u8, data: &[u8]| {
            let mut s = vec![0xFF, kind];
            s.extend_from_slice(&((data.len() + 2) as u16).to_be_bytes());
            s.extend_from_slice(data);
            s
        };
        let mut jpeg = vec![0xFF, 0xD8];
        jpeg.extend(segment(0xE0, b"JFIF\0\x01\x01"));
        jpeg.extend(segment(0xE1, b"Exif\0\0canary-gps"));
        jpeg.extend(segment(0xFE, b"canary comment"));
        jpeg.extend(segment(0xDA, b"\x01\x01\x00"));
        jpeg.extend_from_slice(&[0x12, 0x34, 0xFF, 0xD9]);
        let out = strip_jpeg(&jpeg).unwrap();
        assert!(!String::from_utf8_lossy(&out).contains("canary"));
        assert!(out.ends_with(&[0x12, 0x34, 0xFF, 0xD9]));
        assert!(String::from_utf8_lossy(&out).contains("JFIF"));
    }
}
