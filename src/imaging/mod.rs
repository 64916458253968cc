//! What an uploaded file is, decided by its bytes: PNG, JPEG or DICOM Part 10. An upload is
//! checked as it streams ([`check`]): the whole structure is walked (PNG chunks and CRCs, JPEG
//! markers through `EOI`, every DICOM element), dimensions come from the header (PNG IHDR,
//! JPEG SOF, DICOM Rows/Columns) without decoding pixels, and a declared size above
//! [`MAX_PIXELS`] is refused (no decompression bombs).

pub mod confidentiality;
mod confidentiality_table;
pub mod deidentify;
pub mod dicom;
pub mod part10;
pub mod render;

use std::io::Read;

/// The largest image accepted, in declared pixels (100 megapixels).
pub const MAX_PIXELS: u64 = 100_000_000;
/// How many leading bytes decide the type (DICOM's `DICM` sits at offset 128).
pub const SNIFF_BYTES: usize = 132;

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

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

/// Why an upload is not an acceptable image. `Unsupported`, `NotAnImage` and
/// `UnsupportedEncoding` are 415; `HeaderTooLarge` is 413; the rest 422 on `file`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("the file is not a PNG, JPEG or DICOM (Part 10) image")]
    Unsupported,
    #[error("the {0} file is truncated or corrupt: {1}")]
    Corrupt(&'static str, String),
    #[error("the image declares {0} pixels; at most 100 megapixels are accepted")]
    TooManyPixels(u64),
    /// A DICOM object without pixels (a structured report, a presentation state...).
    #[error("{0}")]
    NotAnImage(String),
    /// A DICOM transfer syntax that is not read (deflated, private).
    #[error("{0}")]
    UnsupportedEncoding(String),
    /// A DICOM header larger than the configured bound.
    #[error("{0}")]
    HeaderTooLarge(String),
}

impl From<part10::Part10Error> for ImageError {
    fn from(err: part10::Part10Error) -> Self {
        use part10::Part10Error;
        match err {
            Part10Error::NotAnImage => ImageError::NotAnImage(err.to_string()),
            Part10Error::UnsupportedSyntax(_) => ImageError::UnsupportedEncoding(err.to_string()),
            Part10Error::HeaderTooLarge(_) => ImageError::HeaderTooLarge(err.to_string()),
            Part10Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                ImageError::Corrupt("DICOM", "it ends inside an element".into())
            }
            Part10Error::Io(e) => ImageError::Corrupt("DICOM", e.to_string()),
            Part10Error::Corrupt(message) => ImageError::Corrupt("DICOM", message),
        }
    }
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

/// What checking an upload found: its dimensions, and for DICOM its header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inspected {
    pub dimensions: Dimensions,
    pub dicom: Option<dicom::DicomHeader>,
}

/// Checks a whole `kind` file read from `input` (to its end): the structure must be sound
/// (the walk a researcher's copy takes, writing nowhere), and the declared size within
/// [`MAX_PIXELS`]. `max_dicom_header_bytes` bounds a DICOM file's attributes before Pixel
/// Data.
pub fn check<R: Read>(
    kind: ImageKind,
    mut input: R,
    max_dicom_header_bytes: u64,
) -> Result<Inspected, ImageError> {
    let mut header = None;
    let dims = match kind {
        ImageKind::Png => deidentify::png(&mut input, std::io::sink())?,
        ImageKind::Jpeg => deidentify::jpeg(&mut input, std::io::sink())?,
        ImageKind::Dicom => {
            let read = dicom::check(&mut input, max_dicom_header_bytes)?;
            let dimensions = read.dimensions;
            header = Some(read);
            dimensions
        }
    };
    // What follows a PNG's IEND or a JPEG's first EOI (phones append secondary images there)
    // is accepted and never reaches a researcher; it is read so the whole upload is consumed.
    std::io::copy(&mut input, &mut std::io::sink())
        .map_err(|e| ImageError::Corrupt("image", e.to_string()))?;
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

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut ihdr = width.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut v = PNG_SIGNATURE.to_vec();
        for (kind, data) in [(b"IHDR", ihdr.as_slice()), (b"IDAT", b"x"), (b"IEND", b"")] {
            v.extend_from_slice(&(data.len() as u32).to_be_bytes());
            v.extend_from_slice(kind);
            v.extend_from_slice(data);
            let mut crc = crc32fast::Hasher::new();
            crc.update(kind);
            crc.update(data);
            v.extend_from_slice(&crc.finalize().to_be_bytes());
        }
        v
    }

    #[test]
    fn declared_pixel_floods_and_truncation_are_refused() {
        assert_eq!(
            check(ImageKind::Png, png(20_000, 20_000).as_slice(), 1 << 20),
            Err(ImageError::TooManyPixels(400_000_000))
        );
        let ok = png(640, 480);
        assert_eq!(
            check(ImageKind::Png, ok.as_slice(), 1 << 20).map(|i| i.dimensions),
            Ok(Dimensions {
                width: Some(640),
                height: Some(480)
            })
        );
        assert!(matches!(
            check(ImageKind::Png, &ok[..ok.len() - 3], 1 << 20),
            Err(ImageError::Corrupt(..))
        ));
    }
}
