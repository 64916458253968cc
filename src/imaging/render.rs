//! Rendering frame 0 of a DICOM file as an 8-bit grey PNG, for dataset exports whose training
//! code reads pixels (COCO, YOLO). The pipeline is PS3.3 C.11 as `dicom-pixeldata` implements
//! it: the Modality LUT (Rescale Slope and Intercept, C.11.1), then the file's first VOI
//! window (Window Center and Width, C.11.2.1.2, with its VOI LUT Function), or, when the file
//! has no window, the full range of the rescaled values mapped to 0-255. MONOCHROME1 (minimum
//! is white) is inverted so that the PNG shows what a viewer shows. Colour frames (three
//! samples per pixel) become grey by the ITU-R BT.601 luma weights.
//!
//! [`render_first_frame_from`] reads a stream only up to the end of frame 0 (the attributes
//! before Pixel Data, bounded like an upload's header, and frame 0's bytes, bounded by
//! [`MAX_FRAME_BYTES`]), so a long multi-frame file costs one frame of memory.

use std::io::{BufReader, Read};

use dicom_core::value::PixelFragmentSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{FileDicomObject, InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::{ConvertOptions, PixelDecoder, VoiLutOption};

use super::part10::{
    Header, Part10Reader, Syntax, ITEM, ITEM_DELIMITER, SEQUENCE_DELIMITER, UNDEFINED_LENGTH,
};

/// The largest frame 0 read for rendering (bytes as stored): a 100-megapixel RGB frame of
/// 16-bit samples is 600 MB.
pub const MAX_FRAME_BYTES: u64 = 640 << 20;

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
    render_object(&object)
}

/// Renders frame 0 of the DICOM Part 10 stream `input` (preamble included) as
/// [`render_first_frame`] does, reading only the attributes before Pixel Data (at most
/// `max_header_bytes` of them) and frame 0 (at most [`MAX_FRAME_BYTES`]); the rest of the
/// stream is not read.
pub fn render_first_frame_from(
    input: impl Read,
    max_header_bytes: u64,
) -> Result<Rendered, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let object = first_frame_object(input, max_header_bytes)?;
        render_object(&object)
    }))
    .unwrap_or_else(|_| Err("the pixel data decoder failed".to_owned()))
}

/// Keeps a copy of what is read through it.
struct Recorder<R> {
    inner: R,
    recorded: Vec<u8>,
}

impl<R: Read> Read for Recorder<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.recorded.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// The file's attributes up to Pixel Data, with Pixel Data holding frame 0 only (native
/// bytes, or the fragments of frame 0 of an encapsulated syntax) and Number of Frames 1.
fn first_frame_object(
    input: impl Read,
    max_header_bytes: u64,
) -> Result<FileDicomObject<InMemDicomObject>, String> {
    let broken = |e: super::part10::Part10Error| e.to_string();
    let mut recorder = Recorder {
        inner: BufReader::new(input),
        recorded: Vec::new(),
    };
    let mut reader = Part10Reader::new(&mut recorder);
    reader.preamble().map_err(broken)?;
    // File meta information: (0002,0000) gives its length (PS3.10 7.1).
    let group = reader
        .header(Syntax::EXPLICIT_LITTLE)
        .map_err(broken)?
        .filter(|h| h.tag == 0x0002_0000 && h.length == 4)
        .ok_or("the file meta information has no group length")?;
    let length = reader.value(group.length, 4).map_err(broken)?;
    let length = u32::from_le_bytes([length[0], length[1], length[2], length[3]]);
    let meta = reader.value(length, max_header_bytes).map_err(broken)?;
    let transfer_syntax = transfer_syntax(&meta)?;
    let syntax = Syntax::of(&transfer_syntax).map_err(broken)?;
    let pixel_data = loop {
        let start = reader.position();
        if start > max_header_bytes {
            return Err(format!("Pixel Data starts beyond {max_header_bytes} bytes"));
        }
        let header = reader
            .header(syntax)
            .map_err(broken)?
            .ok_or("the file has no Pixel Data")?;
        if header.tag == 0x7FE0_0010 {
            break (start, header);
        }
        skip_value(&mut reader, header, syntax, 0)?;
    };
    let (start, header) = pixel_data;
    let start = usize::try_from(start).map_err(|e| e.to_string())?;
    let mut object = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .from_reader(&reader_recorded(&mut reader)[..start])
        .map_err(|e| format!("the file cannot be read ({e})"))?;
    let number = |object: &FileDicomObject<InMemDicomObject>, tag| {
        object
            .element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_int::<u64>().ok())
            .unwrap_or(0)
    };
    let pixel = if header.length != UNDEFINED_LENGTH {
        let bits = number(&object, tags::BITS_ALLOCATED);
        let frame = (number(&object, tags::ROWS)
            * number(&object, tags::COLUMNS)
            * number(&object, tags::SAMPLES_PER_PIXEL)
            * bits)
            .div_ceil(8)
            .min(u64::from(header.length));
        let frame = u32::try_from(frame).map_err(|e| e.to_string())?;
        let mut bytes = reader.value(frame, MAX_FRAME_BYTES).map_err(broken)?;
        if syntax.big_endian && bits == 16 {
            // The in-memory object holds values in native (little endian) order.
            bytes.chunks_exact_mut(2).for_each(|pair| pair.swap(0, 1));
        }
        let vr = header.vr.unwrap_or(VR::OW);
        DataElement::new(tags::PIXEL_DATA, vr, PrimitiveValue::from(bytes))
    } else {
        let rle = transfer_syntax == "1.2.840.10008.1.2.5";
        let mut frame = Vec::new();
        let mut items = 0;
        loop {
            let item = reader
                .header(syntax)
                .map_err(broken)?
                .ok_or("the pixel data ends inside its items")?;
            if item.tag == SEQUENCE_DELIMITER {
                break;
            }
            if item.tag != ITEM {
                return Err("the encapsulated pixel data holds something else than items".into());
            }
            items += 1;
            if items == 1 {
                // The Basic Offset Table.
                reader.skip(u64::from(item.length)).map_err(broken)?;
                continue;
            }
            let limit = MAX_FRAME_BYTES.saturating_sub(frame.len() as u64);
            frame.extend(reader.value(item.length, limit).map_err(broken)?);
            // An RLE frame is one fragment (PS3.5 A.4.2); a JPEG-family frame ends with its
            // EOI (JPEG 2000: EOC), FFD9, before any padding.
            let trimmed = frame.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
            if rle || frame[..trimmed].ends_with(&[0xFF, 0xD9]) {
                break;
            }
        }
        DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PixelFragmentSequence::new_fragments(vec![frame]),
        )
    };
    object.put(pixel);
    if object
        .element_opt(tags::NUMBER_OF_FRAMES)
        .ok()
        .flatten()
        .is_some()
    {
        object.put(DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, "1"));
    }
    Ok(object)
}

fn reader_recorded<'a, R: Read>(reader: &'a mut Part10Reader<&mut Recorder<R>>) -> &'a [u8] {
    &reader.inner_mut().recorded
}

/// The Transfer Syntax UID (0002,0010) among the file meta elements `meta`.
fn transfer_syntax(meta: &[u8]) -> Result<String, String> {
    let mut reader = Part10Reader::new(meta);
    while let Some(header) = reader
        .header(Syntax::EXPLICIT_LITTLE)
        .map_err(|e| e.to_string())?
    {
        let value = reader
            .value(header.length, meta.len() as u64)
            .map_err(|e| e.to_string())?;
        if header.tag == 0x0002_0010 {
            return Ok(String::from_utf8_lossy(&value)
                .trim_end_matches(['\0', ' '])
                .to_owned());
        }
    }
    Err("the file meta information has no Transfer Syntax UID".into())
}

/// Skips the value of the element `header` names, walking a sequence (or UN of undefined
/// length) of undefined length item by item (PS3.5 7.5).
fn skip_value<R: Read>(
    reader: &mut Part10Reader<R>,
    header: Header,
    syntax: Syntax,
    depth: usize,
) -> Result<(), String> {
    let broken = |e: super::part10::Part10Error| e.to_string();
    if header.length != UNDEFINED_LENGTH {
        return reader.skip(u64::from(header.length)).map_err(broken);
    }
    if depth > 64 {
        return Err("sequences are nested too deeply".into());
    }
    // An undefined-length UN is a sequence in Implicit VR Little Endian (PS3.5 6.2.2).
    let syntax = if header.vr == Some(VR::UN) {
        Syntax::IMPLICIT_LITTLE
    } else {
        syntax
    };
    loop {
        let item = reader
            .header(syntax)
            .map_err(broken)?
            .ok_or("the file ends inside a sequence")?;
        match item.tag {
            SEQUENCE_DELIMITER => return Ok(()),
            ITEM if item.length != UNDEFINED_LENGTH => {
                reader.skip(u64::from(item.length)).map_err(broken)?
            }
            ITEM => loop {
                let element = reader
                    .header(syntax)
                    .map_err(broken)?
                    .ok_or("the file ends inside an item")?;
                if element.tag == ITEM_DELIMITER {
                    break;
                }
                skip_value(reader, element, syntax, depth + 1)?;
            },
            _ => return Err("a sequence holds something else than items".into()),
        }
    }
}

/// Renders frame 0 of a parsed object.
fn render_object(object: &FileDicomObject<InMemDicomObject>) -> Result<Rendered, String> {
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
        frames(
            &[values],
            window,
            photometric,
            uids::EXPLICIT_VR_LITTLE_ENDIAN,
        )
    }

    /// Like [`sixteen_bit`], with several frames, a sequence before Pixel Data, in a syntax.
    fn frames(
        frames: &[[u16; 4]],
        window: Option<(&str, &str)>,
        photometric: &str,
        syntax: &str,
    ) -> Vec<u8> {
        let values: Vec<u16> = frames.iter().flatten().copied().collect();
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
        if frames.len() > 1 {
            let count = frames.len().to_string();
            o.put(DataElement::new(
                tags::NUMBER_OF_FRAMES,
                VR::IS,
                count.as_str(),
            ));
        }
        let mut item = InMemDicomObject::new_empty();
        item.put(DataElement::new(tags::CODE_VALUE, VR::SH, "113100"));
        o.put(DataElement::new(
            tags::ANATOMIC_REGION_SEQUENCE,
            VR::SQ,
            dicom_core::value::DataSetSequence::from(vec![item]),
        ));
        o.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(values.into()),
        ));
        let file = o
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(syntax)
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

    /// The researcher's copy of `file`: what exports render (sequences of undefined length).
    fn copy(file: &[u8]) -> Vec<u8> {
        let key = crate::pseudonym::PseudonymKey::new(vec![7; 32]).unwrap();
        let profile = crate::imaging::confidentiality::Profile {
            key: &key,
            subject_id: None,
            shift_days: 1,
            sop_instance_uid: None,
            max_header_bytes: 1 << 20,
        };
        let mut out = Vec::new();
        crate::imaging::confidentiality::deidentify_dicom(file, &mut out, &profile, &[]).unwrap();
        out
    }

    /// Counts the bytes read through it.
    struct Counted<'a>(&'a [u8], std::rc::Rc<std::cell::Cell<usize>>);

    impl std::io::Read for Counted<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1.set(self.1.get() + n);
            Ok(n)
        }
    }

    #[test]
    fn frame_zero_is_rendered_from_a_stream_read_no_further_than_frame_zero() {
        let many: Vec<[u16; 4]> = (0..20_000u16).map(|i| [i % 4096, 7, 9, 4000]).collect();
        for syntax in [
            uids::EXPLICIT_VR_LITTLE_ENDIAN,
            uids::IMPLICIT_VR_LITTLE_ENDIAN,
            "1.2.840.10008.1.2.2", // Explicit VR Big Endian (retired)
        ] {
            let file = copy(&frames(
                &many,
                Some(("2000", "4000")),
                "MONOCHROME2",
                syntax,
            ));
            let whole = pixels(&super::render_first_frame(&file).unwrap().png);
            let read = std::rc::Rc::new(std::cell::Cell::new(0));
            let streamed =
                super::render_first_frame_from(Counted(&file, read.clone()), 1 << 20).unwrap();
            assert_eq!(pixels(&streamed.png), whole, "{syntax}");
            assert!(
                read.get() < 64 << 10,
                "{syntax}: read {} of {}",
                read.get(),
                file.len()
            );
        }
        // A single frame (no Number of Frames) and a window-less MONOCHROME1 read the same.
        let file = copy(&sixteen_bit([100, 200, 300, 500], None, "MONOCHROME1"));
        let streamed = super::render_first_frame_from(&file[..], 1 << 20).unwrap();
        let whole = super::render_first_frame(&file).unwrap();
        assert_eq!(pixels(&streamed.png), pixels(&whole.png));
        assert_eq!(pixels(&streamed.png)[0], 255);
    }

    #[test]
    fn an_encapsulated_jpeg_frame_is_rendered_from_its_fragments() {
        use dicom_core::value::PixelFragmentSequence;
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 100)
            .encode(
                &[10, 20, 30, 40, 50, 60, 70, 80],
                4,
                2,
                jpeg_encoder::ColorType::Luma,
            )
            .unwrap();
        let mut o = InMemDicomObject::new_empty();
        o.put(DataElement::new(
            tags::SOP_CLASS_UID,
            VR::UI,
            "1.2.840.10008.5.1.4.1.1.7",
        ));
        o.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, "2.25.2"));
        for (tag, v) in [
            (tags::ROWS, 2u16),
            (tags::COLUMNS, 4),
            (tags::SAMPLES_PER_PIXEL, 1),
            (tags::BITS_ALLOCATED, 8),
            (tags::BITS_STORED, 8),
            (tags::HIGH_BIT, 7),
            (tags::PIXEL_REPRESENTATION, 0),
        ] {
            o.put(DataElement::new(tag, VR::US, PrimitiveValue::from(v)));
        }
        o.put(DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            "MONOCHROME2",
        ));
        o.put(DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, "2"));
        // Frame 0 split over two fragments; frame 1 a third.
        // Fragments have even lengths (PS3.5 A.4): padded with a zero after the EOI.
        let even = |mut f: Vec<u8>| {
            if f.len() % 2 == 1 {
                f.push(0);
            }
            f
        };
        let split = jpeg.len() / 4 * 2;
        let (a, b) = jpeg.split_at(split);
        let fragments = vec![a.to_vec(), even(b.to_vec()), even(jpeg.clone())];
        o.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PixelFragmentSequence::new_fragments(fragments),
        ));
        let file = o
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(uids::JPEG_BASELINE8_BIT)
                    .media_storage_sop_instance_uid("2.25.2"),
            )
            .unwrap();
        let mut bytes = Vec::new();
        file.write_all(&mut bytes).unwrap();
        let rendered = super::render_first_frame_from(&copy(&bytes)[..], 1 << 20).unwrap();
        assert_eq!((rendered.width, rendered.height), (4, 2));
        let grey = pixels(&rendered.png);
        assert!(grey.windows(2).take(3).all(|w| w[0] <= w[1]), "{grey:?}");
        assert!(grey[3] > grey[0] + 20, "{grey:?}");
    }

    #[test]
    fn what_cannot_be_decoded_is_an_error_not_a_panic() {
        assert!(super::render_first_frame_from(&b"not a dicom file"[..], 1 << 20).is_err());
        assert!(super::render_first_frame(b"not a dicom file").is_err());
        let mut file = sixteen_bit([1, 2, 3, 4], None, "MONOCHROME2");
        file.truncate(file.len() - 4);
        assert!(super::render_first_frame(&file).is_err());
    }
}
