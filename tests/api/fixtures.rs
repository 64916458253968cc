//! Test files made here: real PNG, JPEG and DICOM images carrying canary values in every place
//! de-identification must clear, and multipart bodies.

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;

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
    let mut obj = InMemDicomObject::new_empty();
    obj.put(DataElement::new(
        tags::SOP_CLASS_UID,
        VR::UI,
        "1.2.840.10008.5.1.4.1.1.7",
    ));
    obj.put(DataElement::new(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        "1.2.826.0.1.3680043.2.1125.1.1",
    ));
    obj.put(DataElement::new(tags::MODALITY, VR::CS, "OT"));
    for (tag, vr) in DICOM_IDENTIFYING {
        let value = match vr {
            VR::DA => "19700101".to_owned(),
            VR::AS => "042Y".to_owned(),
            VR::CS => "O".to_owned(),
            _ => CANARY.to_owned(),
        };
        obj.put(DataElement::new(tag, vr, value));
    }
    // A private block with the canary.
    obj.put(DataElement::new(
        Tag(0x0009, 0x0010),
        VR::LO,
        "ACME PRIVATE",
    ));
    obj.put(DataElement::new(Tag(0x0009, 0x1001), VR::LO, CANARY));
    obj.put(DataElement::new(
        tags::ROWS,
        VR::US,
        PrimitiveValue::from(rows),
    ));
    obj.put(DataElement::new(
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(columns),
    ));
    obj.put(DataElement::new(
        tags::SAMPLES_PER_PIXEL,
        VR::US,
        PrimitiveValue::from(1_u16),
    ));
    obj.put(DataElement::new(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    ));
    obj.put(DataElement::new(
        tags::BITS_ALLOCATED,
        VR::US,
        PrimitiveValue::from(8_u16),
    ));
    obj.put(DataElement::new(
        tags::BITS_STORED,
        VR::US,
        PrimitiveValue::from(8_u16),
    ));
    obj.put(DataElement::new(
        tags::HIGH_BIT,
        VR::US,
        PrimitiveValue::from(7_u16),
    ));
    obj.put(DataElement::new(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0_u16),
    ));
    let pixels: Vec<u8> = (0..rows as usize * columns as usize)
        .map(|i| (i % 256) as u8)
        .collect();
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(pixels),
    ));
    let file = obj
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .unwrap();
    let mut out = Vec::new();
    file.write_all(&mut out).unwrap();
    out
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
