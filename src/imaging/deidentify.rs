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

/// A PNG with only the chunks needed to render it (API.md): `IHDR`, `PLTE`, `tRNS`, `gAMA`,
/// `cHRM`, `sRGB`, `iCCP`, `sBIT`, `pHYs`, `IDAT`, `IEND`; nothing after `IEND`.
fn strip_png(bytes: &[u8]) -> Result<Vec<u8>, String> {
    const KEEP: [&[u8; 4]; 11] = [
        b"IHDR", b"PLTE", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"pHYs", b"IDAT",
        b"IEND",
    ];
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(bytes.get(..8).ok_or("PNG too short")?);
    let mut at = 8;
    loop {
        let header = bytes.get(at..at + 8).ok_or("truncated PNG chunk header")?;
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let end = at + 12 + length;
        let chunk = bytes.get(at..end).ok_or("truncated PNG chunk")?;
        let kind = &header[4..8];
        if KEEP.iter().any(|k| kind == *k) {
            out.extend_from_slice(chunk);
        }
        if kind == b"IEND" {
            return Ok(out);
        }
        at = end;
    }
}

/// A JPEG with only the segments needed to render it (API.md; ITU-T T.81 annex B): `SOI`,
/// `APP0` JFIF without its thumbnail, `APP2` ICC profile, `APP14` Adobe (its 12 bytes), `DQT`,
/// `DHT`, `DRI`, `DAC`, `DNL`, `SOFn`, `SOS` with its scan data, `EOI`, wherever they occur (between
/// the scans of a progressive image too); nothing after the first `EOI`. A second `SOI`, or
/// a marker where one must be, is refused (the copy is not made) rather than guessed at.
fn strip_jpeg(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(bytes.len());
    if bytes.get(..2) != Some(&[0xFF, 0xD8]) {
        return Err("JPEG must start with SOI".into());
    }
    out.extend_from_slice(&[0xFF, 0xD8]);
    let mut at = 2;
    loop {
        let marker = bytes.get(at..at + 2).ok_or("truncated JPEG marker")?;
        if marker[0] != 0xFF {
            return Err("JPEG marker expected".into());
        }
        let kind = marker[1];
        match kind {
            0xFF => {
                at += 1; // fill byte
                continue;
            }
            0xD9 => {
                out.extend_from_slice(marker);
                return Ok(out);
            }
            0xD8 => return Err("a second SOI inside the JPEG".into()),
            // TEM and RSTn have no length; outside a scan they carry nothing.
            0x01 | 0xD0..=0xD7 => {
                at += 2;
                continue;
            }
            _ => {}
        }
        let len_bytes = bytes.get(at + 2..at + 4).ok_or("truncated JPEG segment")?;
        let length = u16::from_be_bytes([len_bytes[0], len_bytes[1]]) as usize;
        if length < 2 {
            return Err("JPEG segment length below 2".into());
        }
        let end = at + 2 + length;
        let segment = bytes.get(at..end).ok_or("truncated JPEG segment")?;
        let data = &segment[4..];
        match kind {
            // SOFn (not DHT C4, JPG C8, DAC CC), DHT, DAC, DQT, DNL, DRI.
            0xC0..=0xCF | 0xDB | 0xDC | 0xDD => out.extend_from_slice(segment),
            // JFIF: version, units and densities; the thumbnail dimensions set to 0 and the
            // thumbnail itself dropped.
            0xE0 if data.starts_with(b"JFIF\0") && data.len() >= 14 => {
                out.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x10]);
                out.extend_from_slice(&data[..12]);
                out.extend_from_slice(&[0, 0]);
            }
            0xE2 if data.starts_with(b"ICC_PROFILE\0") => out.extend_from_slice(segment),
            // Adobe: "Adobe", version, two flag words and the colour transform (12 bytes).
            0xEE if data.starts_with(b"Adobe") && data.len() >= 12 => {
                out.extend_from_slice(&[0xFF, 0xEE, 0x00, 0x0E]);
                out.extend_from_slice(&data[..12]);
            }
            0xDA => {
                // Start of scan: its header, then the entropy-coded data up to the next marker
                // (a 0xFF that is not stuffing `FF 00` or a restart marker `FF D0`-`FF D7`,
                // either possibly after fill bytes `FF`; T.81 section B.1.1.5). Parsing goes on
                // from there: a progressive image has more segments and scans.
                out.extend_from_slice(segment);
                let mut next = end;
                loop {
                    let byte = *bytes.get(next).ok_or("truncated JPEG scan")?;
                    if byte == 0xFF {
                        let mut follower_at = next + 1;
                        while bytes.get(follower_at) == Some(&0xFF) {
                            follower_at += 1;
                        }
                        let follower = *bytes.get(follower_at).ok_or("truncated JPEG scan")?;
                        if follower == 0x00 || (0xD0..=0xD7).contains(&follower) {
                            next = follower_at + 1;
                            continue;
                        }
                        break;
                    }
                    next += 1;
                }
                out.extend_from_slice(&bytes[end..next]);
                at = next;
                continue;
            }
            // Every other APPn, COM, JPGn and anything else: dropped.
            _ => {}
        }
        at = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_text_chunks_are_dropped_and_image_chunks_kept() {
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

    /// A PNG chunk (length, type, data, a CRC the stripper does not check).
    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(data);
        c.extend_from_slice(&[0, 0, 0, 0]);
        c
    }

    /// A JPEG marker segment with its length.
    fn segment(kind: u8, data: &[u8]) -> Vec<u8> {
        let mut s = vec![0xFF, kind];
        s.extend_from_slice(&((data.len() + 2) as u16).to_be_bytes());
        s.extend_from_slice(data);
        s
    }

    #[test]
    fn jpeg_keeps_only_what_renders() {
        // JFIF with a 1 x 1 thumbnail (3 bytes of "canary" pixels).
        let mut jfif = b"JFIF\0\x01\x02\x00\x00\x48\x00\x48\x01\x01".to_vec();
        jfif.extend_from_slice(b"cnr");
        let mut jpeg = vec![0xFF, 0xD8];
        jpeg.extend(segment(0xE0, &jfif));
        jpeg.extend(segment(0xE0, b"JFXX\0\x10canary thumbnail"));
        jpeg.extend(segment(0xE0, b"canary plain text"));
        jpeg.extend(segment(0xE1, b"Exif\0\0canary-gps"));
        jpeg.extend(segment(0xE2, b"ICC_PROFILE\0\x01\x01profile"));
        jpeg.extend(segment(0xE2, b"MPF\0canary"));
        jpeg.extend(segment(0xE2, b"FPXR\0canary"));
        jpeg.extend(segment(0xEE, b"Adobe\0\x64\0\0\0\0\x01canary extra"));
        jpeg.extend(segment(0xF1, b"canary JPG1"));
        jpeg.extend(segment(0xFE, b"canary comment"));
        jpeg.extend(segment(0xDB, b"\0quant"));
        jpeg.extend(segment(0xC0, b"\x08\0\x01\0\x01\x01\x01\x11\0"));
        jpeg.extend(segment(0xDA, b"\x01\x01\x00"));
        jpeg.extend_from_slice(&[0x12, 0x34, 0xFF, 0xD9]);
        let out = strip_jpeg(&jpeg).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("canary") && !text.contains("cnr"), "{text}");
        let mut expected = vec![0xFF, 0xD8];
        expected.extend(segment(0xE0, b"JFIF\0\x01\x02\x00\x00\x48\x00\x48\x00\x00"));
        expected.extend(segment(0xE2, b"ICC_PROFILE\0\x01\x01profile"));
        expected.extend(segment(0xEE, b"Adobe\0\x64\0\0\0\0\x01"));
        expected.extend(segment(0xDB, b"\0quant"));
        expected.extend(segment(0xC0, b"\x08\0\x01\0\x01\x01\x01\x11\0"));
        expected.extend(segment(0xDA, b"\x01\x01\x00"));
        expected.extend_from_slice(&[0x12, 0x34, 0xFF, 0xD9]);
        assert_eq!(out, expected);
    }

    #[test]
    fn jpeg_scans_keep_fill_bytes_before_restart_markers_and_a_second_soi_is_refused() {
        let mut jpeg = vec![0xFF, 0xD8];
        jpeg.extend(segment(0xC0, b"\x08\0\x01\0\x01\x01\x01\x11\0"));
        jpeg.extend(segment(0xDA, b"\x01\x01\x00"));
        jpeg.extend_from_slice(&[0x12, 0xFF, 0xFF, 0xD0, 0x34, 0xFF, 0xFF, 0xFF, 0xD1, 0x56]);
        jpeg.extend_from_slice(&[0xFF, 0xFF, 0xD9]);
        let out = strip_jpeg(&jpeg).unwrap();
        assert!(out
            .ends_with(&[0x12, 0xFF, 0xFF, 0xD0, 0x34, 0xFF, 0xFF, 0xFF, 0xD1, 0x56, 0xFF, 0xD9]));

        // A scan cut short by a second image: refused, never copied with its metadata.
        let mut crafted = jpeg[..jpeg.len() - 3].to_vec();
        crafted.extend_from_slice(&[0xFF, 0xD8]);
        crafted.extend(segment(0xE1, b"Exif\0\0PATIENT canary"));
        crafted.extend_from_slice(&[0xFF, 0xD9]);
        assert!(strip_jpeg(&crafted).is_err());
    }

    #[test]
    fn png_keeps_only_what_renders_and_nothing_after_iend() {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(chunk(b"IHDR", &[0; 13]));
        png.extend(chunk(b"prVt", b"canary private"));
        png.extend(chunk(b"pHYs", &[0; 9]));
        png.extend(chunk(b"IDAT", b"pixels"));
        png.extend(chunk(b"IEND", b""));
        let rendered = [&png[..8], &png[8..33], &png[59..]].concat();
        png.extend(chunk(b"prVt", b"PATIENT canary after IEND"));
        let out = strip_png(&png).unwrap();
        assert!(!String::from_utf8_lossy(&out).contains("canary"));
        assert_eq!(out, rendered);
    }

    #[test]
    fn jpeg_bytes_after_the_first_eoi_and_metadata_between_scans_are_dropped() {
        // A progressive image: two scans with a table and a comment between them, stuffed
        // bytes and a restart marker inside the scans; then a second image with identifying
        // metadata appended after the first EOI.
        let mut jpeg = vec![0xFF, 0xD8];
        jpeg.extend(segment(0xC2, b"\x08\x00\x04\x00\x04\x01\x01\x11\x00"));
        jpeg.extend(segment(0xDA, b"\x01\x01\x00"));
        jpeg.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56]);
        jpeg.extend(segment(0xC4, b"\x00table"));
        jpeg.extend(segment(0xFE, b"canary between scans"));
        jpeg.extend(segment(0xDA, b"\x01\x01\x00"));
        jpeg.extend_from_slice(&[0x78, 0xFF, 0xD9]);
        let image = jpeg.clone();
        jpeg.extend_from_slice(&[0xFF, 0xD8]);
        jpeg.extend(segment(0xE1, b"Exif\0\0PATIENT canary"));
        jpeg.extend_from_slice(&[0xFF, 0xD9]);
        let out = strip_jpeg(&jpeg).unwrap();
        assert!(!String::from_utf8_lossy(&out).contains("canary"));
        let without_comment: Vec<u8> = {
            let comment = segment(0xFE, b"canary between scans");
            let at = image
                .windows(comment.len())
                .position(|w| w == comment.as_slice())
                .unwrap();
            [&image[..at], &image[at + comment.len()..]].concat()
        };
        assert_eq!(
            out, without_comment,
            "the image itself is kept byte for byte"
        );
        assert!(
            strip_jpeg(&image[..image.len() - 2]).is_err(),
            "no EOI: refused"
        );
    }
}
