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
