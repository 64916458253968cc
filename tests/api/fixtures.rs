//! Test files made here: real PNG, JPEG and DICOM images carrying canary values in every place
//! de-identification must clear, and multipart bodies.

use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;

/// The value planted in every identifying field.
pub const CANARY: &str = "CANARY-7f3a";

pub fn png(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder
            .add_text_chunk("Author".into(), CANARY.into())
            .unwrap();
        encoder
            .add_itxt_chunk("Comment".into(), format!("patient {CANARY}"))
            .unwrap();
        let mut writer = encoder.write_header().unwrap();
        let pixels: Vec<u8> = (0..width * height * 3).map(|i| (i % 251) as u8).collect();
        writer.write_image_data(&pixels).unwrap();
    }
    out
}

pub fn jpeg(width: u16, height: u16) -> Vec<u8> {
    let mut plain = Vec::new();
    let pixels: Vec<u8> = (0..width as u32 * height as u32 * 3)
        .map(|i| (i % 253) as u8)
        .collect();
    jpeg_encoder::Encoder::new(&mut plain, 80)
        .encode(&pixels, width, height, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    // Plant EXIF (APP1) and a comment (COM) right after SOI.
    let segment = |kind: u8, data: &[u8]| {
        let mut s = vec![0xFF, kind];
        s.extend_from_slice(&((data.len() + 2) as u16).to_be_bytes());
        s.extend_from_slice(data);
        s
    };
    let mut out = plain[..2].to_vec();
    out.extend(segment(
        0xE1,
        format!("Exif\0\0{CANARY} GPS 51.5N").as_bytes(),
    ));
    out.extend(segment(0xFE, format!("patient {CANARY}").as_bytes()));
    out.extend_from_slice(&plain[2..]);
    out
}

/// The identifying attributes the contract names, each planted with the canary.
pub const DICOM_IDENTIFYING: [(Tag, VR); 16] = [
    (tags::PATIENT_NAME, VR::PN),
    (tags::PATIENT_ID, VR::LO),
    (tags::PATIENT_BIRTH_DATE, VR::DA),
    (tags::PATIENT_SEX, VR::CS),
    (tags::PATIENT_AGE, VR::AS),
    (tags::PATIENT_ADDRESS, VR::LO),
    (Tag(0x0010, 0x1000), VR::LO), // Other Patient IDs
    (tags::ACCESSION_NUMBER, VR::SH),
    (tags::INSTITUTION_NAME, VR::LO),
    (tags::REFERRING_PHYSICIAN_NAME, VR::PN),
    (tags::PERFORMING_PHYSICIAN_NAME, VR::PN),
    (tags::NAME_OF_PHYSICIANS_READING_STUDY, VR::PN),
    (tags::OPERATORS_NAME, VR::PN),
    (tags::STUDY_DESCRIPTION, VR::LO),
    (tags::SERIES_DESCRIPTION, VR::LO),
    (tags::INSTITUTION_ADDRESS, VR::ST),
];

pub fn dicom(rows: u16, columns: u16) -> Vec<u8> {
    let mut attributes: Vec<(Tag, VR, String)> = DICOM_IDENTIFYING
        .iter()
        .map(|(tag, vr)| {
            let value = match vr {
                VR::DA => "19700101".to_owned(),
                VR::AS => "042Y".to_owned(),
                VR::CS => "O".to_owned(),
                _ => CANARY.to_owned(),
            };
            (*tag, *vr, value)
        })
        .collect();
    // A private block with the canary.
    attributes.push((Tag(0x0009, 0x0010), VR::LO, "ACME PRIVATE".to_owned()));
    attributes.push((Tag(0x0009, 0x1001), VR::LO, CANARY.to_owned()));
    medlabel::imaging::dicom::synthetic_dicom(rows, columns, 0, &attributes).unwrap()
}

/// A multipart/form-data body: (content type header, body).
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = format!("medlabel-test-{}", uuid::Uuid::now_v7().simple());
    let mut body = Vec::new();
    for (name, filename, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
