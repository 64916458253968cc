//! DICOM Part 10 reading with dicom-rs: the header up to the pixel data, for dimensions.

use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::OpenFileOptions;

use super::Dimensions;

/// Rows and Columns from the first bytes of a DICOM file (preamble included).
pub fn read_dimensions(head: &[u8]) -> Result<Dimensions, String> {
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
    Ok(Dimensions {
        width: number(tags::COLUMNS),
        height: number(tags::ROWS),
    })
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
    let instance = format!("2.25.{}", uuid::Uuid::now_v7().as_u128());
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
    obj.put(DataElement::new(tags::MODALITY, VR::CS, "OT"));
    for (tag, vr, value) in attributes {
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
    let file = obj
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))?;
    let mut out = Vec::new();
    file.write_all(&mut out)?;
    Ok(out)
}
