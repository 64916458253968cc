//! Rendering frame 0 of a DICOM file as an 8-bit grey PNG, for dataset exports whose training
//! code reads pixels (COCO, YOLO). The pipeline is PS3.3 C.11 as `dicom-pixeldata` implements
//! it: the Modality LUT (Rescale Slope and Intercept, C.11.1), then the file's first VOI
//! window (Window Center and Width, C.11.2.1.2, with its VOI LUT Function), or, when the file
//! has no window, the full range of the rescaled values mapped to 0-255. MONOCHROME1 (minimum
//! is white) is inverted so that the PNG shows what a viewer shows. Colour frames (three
//! samples per pixel) become grey by the ITU-R BT.601 luma weights.
//!
//! The file is decoded in memory (dicom-rs reads the whole object): the caller bounds its
//! size.

use dicom_object::file::ReadPreamble;
use dicom_object::OpenFileOptions;
use dicom_pixeldata::{ConvertOptions, PixelDecoder, VoiLutOption};

/// A rendered frame: PNG bytes and the size in pixels.
pub struct Rendered {
    pub png: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Renders frame 0 of the DICOM Part 10 file `file` (preamble included). `Err` names what
/// could not be decoded (a transfer syntax without a decoder here, such as JPEG 2000;
/// missing pixel attributes; corrupt data; more than 16 bits per sample). A panic inside the
/// decoder is caught and is an `Err` too.
pub fn render_first_frame(file: &[u8]) -> Result<Rendered, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| render(file)))
        .unwrap_or_else(|_| Err("the pixel data decoder failed".to_owned()))
}

fn render(file: &[u8]) -> Result<Rendered, String> {
    let object = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .from_reader(file)
        .map_err(|e| format!("the file cannot be read ({e})"))?;
    let decoded = object
        .decode_pixel_data_frame(0)
        .map_err(|e| format!("the pixel data cannot be decoded ({e})"))?;
    let has_window = decoded
        .window()
        .map(|w| w.is_some_and(|w| !w.is_empty()))
        .unwrap_or(false);
    let voi = if has_window {
        VoiLutOption::First
    } else {
        VoiLutOption::Normalize
    };
    let options = ConvertOptions::new().with_voi_lut(voi);
    let (width, height) = (decoded.columns(), decoded.rows());
    let pixels = (width as usize) * (height as usize);
    let convert = |e: dicom_pixeldata::Error| format!("the pixel data cannot be converted ({e})");
    let mut grey: Vec<u8> = match (decoded.samples_per_pixel(), decoded.bits_stored()) {
        // dicom-pixeldata maps the window (or the full range) onto 0..2^n - 1, n the power
        // of two at or above Bits Stored: 8 bits as they are, 16 bits down to their high byte.
        (1, 1..=8) => decoded
            .to_vec_frame_with_options::<u8>(0, &options)
            .map_err(convert)?,
        (1, 9..=16) => decoded
            .to_vec_frame_with_options::<u16>(0, &options)
            .map_err(convert)?
            .into_iter()
            .map(|v| (v >> 8) as u8)
            .collect(),
        (3, bits @ 1..=16) => {
            let samples: Vec<u16> = decoded.to_vec_frame(0).map_err(convert)?;
            let shift = bits.saturating_sub(8);
            samples
                .chunks_exact(3)
                .map(|rgb| {
                    let [r, g, b] =
                        [rgb[0], rgb[1], rgb[2]].map(|v| u32::from(v >> shift).min(255));
                    ((299 * r + 587 * g + 114 * b + 500) / 1000) as u8
                })
                .collect()
        }
        (samples, bits) => {
            return Err(format!(
                "{samples} samples per pixel of {bits} bits are not rendered"
            ))
        }
    };
    if grey.len() < pixels {
        return Err(format!("{} values for {width}x{height} pixels", grey.len()));
    }
    grey.truncate(pixels);
    if decoded.photometric_interpretation().as_str() == "MONOCHROME1" {
        grey.iter_mut().for_each(|v| *v = 255 - *v);
    }
    let mut png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png, width, height);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .map_err(|e| format!("the PNG cannot be written ({e})"))?;
        writer
            .write_image_data(&grey)
            .map_err(|e| format!("the PNG cannot be written ({e})"))?;
    }
    Ok(Rendered { png, width, height })
}

#[cfg(test)]
mod tests {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::{tags, uids};
    use dicom_object::meta::FileMetaTableBuilder;
    use dicom_object::InMemDicomObject;

    /// A 4x1 MONOCHROME2 file of 16-bit samples (12 stored), with a window or none.
    fn sixteen_bit(values: [u16; 4], window: Option<(&str, &str)>, photometric: &str) -> Vec<u8> {
        let mut o = InMemDicomObject::new_empty();
        o.put(DataElement::new(
            tags::SOP_CLASS_UID,
            VR::UI,
            "1.2.840.10008.5.1.4.1.1.7",
        ));
        o.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, "2.25.1"));
        let us = |v: u16| PrimitiveValue::from(v);
        for (tag, v) in [
            (tags::ROWS, 1),
            (tags::COLUMNS, 4),
            (tags::SAMPLES_PER_PIXEL, 1),
            (tags::BITS_ALLOCATED, 16),
            (tags::BITS_STORED, 12),
            (tags::HIGH_BIT, 11),
            (tags::PIXEL_REPRESENTATION, 0),
        ] {
            o.put(DataElement::new(tag, VR::US, us(v)));
        }
        o.put(DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            photometric,
        ));
        o.put(DataElement::new(tags::RESCALE_SLOPE, VR::DS, "1"));
        o.put(DataElement::new(tags::RESCALE_INTERCEPT, VR::DS, "-1000"));
        if let Some((center, width)) = window {
            o.put(DataElement::new(tags::WINDOW_CENTER, VR::DS, center));
            o.put(DataElement::new(tags::WINDOW_WIDTH, VR::DS, width));
        }
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        o.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::from(bytes),
        ));
        let file = o
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                    .media_storage_sop_instance_uid("2.25.1"),
            )
            .unwrap();
        let mut out = Vec::new();
        file.write_all(&mut out).unwrap();
        out
    }

    fn pixels(png: &[u8]) -> Vec<u8> {
        let mut reader = png::Decoder::new(std::io::Cursor::new(png))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        buf.truncate(info.buffer_size());
        buf
    }

    #[test]
    fn sixteen_bit_frames_are_rescaled_then_windowed_to_eight_bits() {
        // Rescaled: -1000, 0, 40, 1000 HU; window 40/400 (soft tissue): -160..240.
        let file = sixteen_bit([0, 1000, 1040, 2000], Some(("40", "400")), "MONOCHROME2");
        let rendered = super::render_first_frame(&file).unwrap();
        assert_eq!((rendered.width, rendered.height), (4, 1));
        let grey = pixels(&rendered.png);
        assert_eq!(grey[0], 0, "below the window");
        assert_eq!(grey[3], 255, "above the window");
        // PS3.3 C.11.2.1.2.1: ((x - (c - 0.5)) / (w - 1) + 0.5) * 255 at x = 0 and x = 40.
        let expect = |x: f64| ((x - 39.5) / 399.0 + 0.5) * 255.0;
        assert!((f64::from(grey[1]) - expect(0.0)).abs() <= 1.0, "{grey:?}");
        assert!((f64::from(grey[2]) - expect(40.0)).abs() <= 1.0, "{grey:?}");
    }

    #[test]
    fn without_a_window_the_full_range_is_used_and_monochrome1_is_inverted() {
        let file = sixteen_bit([100, 200, 300, 500], None, "MONOCHROME2");
        let grey = pixels(&super::render_first_frame(&file).unwrap().png);
        assert_eq!((grey[0], grey[3]), (0, 255), "{grey:?}");
        assert!(grey[1] < grey[2]);
        let file = sixteen_bit([100, 200, 300, 500], None, "MONOCHROME1");
        let grey = pixels(&super::render_first_frame(&file).unwrap().png);
        assert_eq!((grey[0], grey[3]), (255, 0), "{grey:?}");
    }

    #[test]
    fn what_cannot_be_decoded_is_an_error_not_a_panic() {
        assert!(super::render_first_frame(b"not a dicom file").is_err());
        let mut file = sixteen_bit([1, 2, 3, 4], None, "MONOCHROME2");
        file.truncate(file.len() - 4);
        assert!(super::render_first_frame(&file).is_err());
    }
}
