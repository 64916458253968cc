//! What an uploaded file is, decided by its bytes: PNG, JPEG or DICOM Part 10. Dimensions come
//! from the header (PNG IHDR, JPEG SOF, DICOM Rows/Columns) without decoding pixels, and a
//! declared size above [`MAX_PIXELS`] is refused (no decompression bombs).

pub mod deidentify;
pub mod dicom;

/// The largest image accepted, in declared pixels (100 megapixels).
pub const MAX_PIXELS: u64 = 100_000_000;
/// How many leading bytes decide the type (DICOM's `DICM` sits at offset 128).
pub const SNIFF_BYTES: usize = 132;
/// How many leading bytes are kept for reading the header (EXIF blocks before a JPEG's SOF
/// can be large; DICOM headers rarely exceed a few KiB).
pub const HEAD_BYTES: usize = 1 << 20;

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
const PNG_IEND: &[u8] = b"IEND\xAE\x42\x60\x82";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Png,
    Jpeg,
    Dicom,
}

impl ImageKind {
    pub fn content_type(self) -> &'static str {
        match self {
            ImageKind::Png => "image/png",
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Dicom => "application/dicom",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ImageKind::Png => "png",
            ImageKind::Jpeg => "jpg",
            ImageKind::Dicom => "dcm",
        }
    }

    pub fn from_content_type(content_type: &str) -> Option<ImageKind> {
        [ImageKind::Png, ImageKind::Jpeg, ImageKind::Dicom]
            .into_iter()
            .find(|k| k.content_type() == content_type)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("the file is not a PNG, JPEG or DICOM (Part 10) image")]
    Unsupported,
    #[error("the {0} file is truncated or corrupt: {1}")]
    Corrupt(&'static str, String),
    #[error("the image declares {0} pixels; at most 100 megapixels are accepted")]
    TooManyPixels(u64),
}

/// The type of a file from its first bytes (at least [`SNIFF_BYTES`] unless the file is shorter).
pub fn sniff(head: &[u8]) -> Option<ImageKind> {
    if head.starts_with(PNG_SIGNATURE) {
        Some(ImageKind::Png)
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageKind::Jpeg)
    } else if head.len() >= SNIFF_BYTES && &head[128..132] == b"DICM" {
        Some(ImageKind::Dicom)
    } else {
        None
    }
}

/// Width and height, where known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dimensions {
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// What inspecting an upload found: its dimensions, and for DICOM its header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inspected {
    pub dimensions: Dimensions,
    pub dicom: Option<dicom::DicomHeader>,
}

/// Checks a complete upload from its first bytes (`head`, up to [`HEAD_BYTES`]) and last bytes
/// (`tail`): the header must parse, the file must end as its format ends, and the declared size
/// must stay within [`MAX_PIXELS`].
/// `complete` says whether `head` holds the whole file.
pub fn inspect(
    kind: ImageKind,
    head: &[u8],
    tail: &[u8],
    complete: bool,
) -> Result<Inspected, ImageError> {
    let mut header = None;
    let dims = match kind {
        ImageKind::Png | ImageKind::Jpeg => {
            let name = if kind == ImageKind::Png {
                "PNG"
            } else {
                "JPEG"
            };
            let ends_well = match kind {
                ImageKind::Png => tail.ends_with(PNG_IEND),
                _ => tail.windows(2).any(|w| w == [0xFF, 0xD9]),
            };
            if !ends_well {
                return Err(ImageError::Corrupt(
                    name,
                    "it does not end where the format ends".into(),
                ));
            }
            let size = imagesize::blob_size(head).map_err(|e| {
                ImageError::Corrupt(name, format!("the header cannot be read ({e})"))
            })?;
            Dimensions {
                width: Some(size.width as u32),
                height: Some(size.height as u32),
            }
        }
        ImageKind::Dicom => {
            let read =
                dicom::read_header(head, complete).map_err(|e| ImageError::Corrupt("DICOM", e))?;
            let dimensions = read.dimensions;
            header = Some(read);
            dimensions
        }
    };
    if let (Some(w), Some(h)) = (dims.width, dims.height) {
        let pixels = u64::from(w) * u64::from(h);
        if pixels > MAX_PIXELS {
            return Err(ImageError::TooManyPixels(pixels));
        }
        if pixels == 0 {
            return Err(ImageError::Corrupt(
                "image",
                "it declares zero pixels".into(),
            ));
        }
    }
    Ok(Inspected {
        dimensions: dims,
        dicom: header,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_decided_by_content() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Some(ImageKind::Png));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(ImageKind::Jpeg));
        let mut dicom = vec![0u8; 128];
        dicom.extend_from_slice(b"DICM");
        assert_eq!(sniff(&dicom), Some(ImageKind::Dicom));
        assert_eq!(sniff(b"<svg xmlns='http://www.w3.org/2000/svg'/>"), None);
        assert_eq!(sniff(b"<html>"), None);
        assert_eq!(sniff(b""), None);
    }

    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut v = PNG_SIGNATURE.to_vec();
        v.extend_from_slice(&13u32.to_be_bytes());
        v.extend_from_slice(b"IHDR");
        v.extend_from_slice(&width.to_be_bytes());
        v.extend_from_slice(&height.to_be_bytes());
        v.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
        v
    }

    #[test]
    fn declared_pixel_floods_and_truncation_are_refused() {
        let head = png_header(20_000, 20_000);
        assert_eq!(
            inspect(ImageKind::Png, &head, PNG_IEND, true),
            Err(ImageError::TooManyPixels(400_000_000))
        );
        let ok = png_header(640, 480);
        assert_eq!(
            inspect(ImageKind::Png, &ok, PNG_IEND, true).map(|i| i.dimensions),
            Ok(Dimensions {
                width: Some(640),
                height: Some(480)
            })
        );
        assert!(matches!(
            inspect(ImageKind::Png, &ok, b"truncated", true),
            Err(ImageError::Corrupt(..))
        ));
    }
}
