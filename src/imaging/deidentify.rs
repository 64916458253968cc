//! De-identified copies for researchers, made while the original streams (API.md
//! "De-identification"), and the structural checks uploads pass through, which are the same
//! walks writing nowhere:
//! - DICOM: [`super::confidentiality`] (PS3.15 Annex E, table-driven).
//! - PNG (ISO/IEC 15948, PNG 3rd edition section 5): every chunk's length and CRC-32 is
//!   checked; only the chunks needed to render are kept (`IHDR`, `PLTE`, `tRNS`, `gAMA`,
//!   `cHRM`, `sRGB`, `iCCP` with its profile name replaced by a fixed one, `sBIT`, `pHYs`,
//!   `IDAT`, `IEND`); nothing after `IEND`.
//! - JPEG (ITU-T T.81 Annex B): the marker structure is followed through the first `EOI`,
//!   scans included; only `SOI`, `APP0` JFIF without a thumbnail, `APP2` ICC profile, `APP14`
//!   Adobe, `DQT`, `DHT`, `DAC`, `DRI`, `DNL`, `SOFn`, `SOS` with its scan data and `EOI` are
//!   kept, wherever they occur; nothing after the first `EOI`.

use std::io::{self, BufRead, BufReader, Read, Write};

use super::confidentiality::{self, Profile};
use super::{Dimensions, ImageError, ImageKind};

/// Makes a researcher's copy of a `kind` file read from `input` into `output`. Errors mean
/// the copy is unusable and must not be served.
pub fn deidentify<R: Read, W: Write>(
    kind: ImageKind,
    input: R,
    output: W,
    profile: &Profile<'_>,
) -> Result<(), String> {
    match kind {
        ImageKind::Dicom => confidentiality::deidentify_dicom(input, output, profile, &[])
            .map(|_| ())
            .map_err(|e| e.to_string()),
        ImageKind::Png => png(input, output).map(|_| ()).map_err(|e| e.to_string()),
        ImageKind::Jpeg => jpeg(input, output).map(|_| ()).map_err(|e| e.to_string()),
    }
}

const PNG_SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";
/// The chunks a PNG needs to render (API.md).
const PNG_KEEP: [&[u8; 4]; 11] = [
    b"IHDR", b"PLTE", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"pHYs", b"IDAT",
    b"IEND",
];
/// The profile name every kept `iCCP` chunk gets (the original is free text).
const ICC_PROFILE_NAME: &[u8] = b"ICC profile";
/// The largest `iCCP` chunk accepted (it is read into memory to rename the profile).
const MAX_ICCP_BYTES: u32 = 16 << 20;

fn corrupt(kind: &'static str, message: impl Into<String>) -> ImageError {
    ImageError::Corrupt(kind, message.into())
}

fn io_error(kind: &'static str) -> impl Fn(io::Error) -> ImageError {
    move |e| match e.kind() {
        io::ErrorKind::UnexpectedEof => corrupt(kind, "it ends early"),
        _ => corrupt(kind, format!("it cannot be read ({e})")),
    }
}

/// Walks a PNG from `input`, writing the chunks that render to `output`; its dimensions.
/// Errors: a chunk whose length runs past the end, a bad CRC, a first chunk other than a
/// 13-byte `IHDR`, no `IDAT`, no `IEND`.
pub fn png<R: Read, W: Write>(input: R, mut output: W) -> Result<Dimensions, ImageError> {
    let io = io_error("PNG");
    let mut input = BufReader::with_capacity(64 << 10, input);
    let mut signature = [0u8; 8];
    input.read_exact(&mut signature).map_err(&io)?;
    if &signature != PNG_SIGNATURE {
        return Err(corrupt("PNG", "no PNG signature"));
    }
    output.write_all(PNG_SIGNATURE).map_err(&io)?;
    let mut dimensions = None;
    let mut idat = false;
    loop {
        let mut header = [0u8; 8];
        input.read_exact(&mut header).map_err(&io)?;
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let kind: [u8; 4] = [header[4], header[5], header[6], header[7]];
        if length > i32::MAX as u32 || !kind.iter().all(u8::is_ascii_alphabetic) {
            return Err(corrupt("PNG", "a chunk header is malformed"));
        }
        if dimensions.is_none() && &kind != b"IHDR" {
            return Err(corrupt("PNG", "the first chunk is not IHDR"));
        }
        let keep = PNG_KEEP.contains(&&kind);
        if keep && !png_length_fits(&kind, length) {
            return Err(corrupt(
                "PNG",
                format!(
                    "a {} chunk of {length} bytes breaks its format",
                    String::from_utf8_lossy(&kind)
                ),
            ));
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&kind);
        if &kind == b"IHDR" || &kind == b"iCCP" {
            if (&kind == b"IHDR" && (length != 13 || dimensions.is_some()))
                || length > MAX_ICCP_BYTES
            {
                return Err(corrupt("PNG", "an IHDR or iCCP chunk is malformed"));
            }
            let mut data = vec![0u8; length as usize];
            input.read_exact(&mut data).map_err(&io)?;
            crc.update(&data);
            check_crc(&mut input, crc)?;
            if &kind == b"IHDR" {
                let width = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                let height = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
                dimensions = Some(Dimensions {
                    width: Some(width),
                    height: Some(height),
                });
            } else {
                // Profile name (1-79 bytes), NUL, compression method, compressed profile.
                let name_end = data
                    .iter()
                    .position(|b| *b == 0)
                    .filter(|at| (1..=79).contains(at))
                    .ok_or_else(|| corrupt("PNG", "the iCCP profile name is malformed"))?;
                data.splice(..name_end, ICC_PROFILE_NAME.iter().copied());
            }
            write_chunk(&mut output, &kind, &data).map_err(&io)?;
        } else {
            if keep {
                output.write_all(&header).map_err(&io)?;
            }
            let mut left = u64::from(length);
            while left > 0 {
                let block = input.fill_buf().map_err(&io)?;
                if block.is_empty() {
                    return Err(corrupt("PNG", "a chunk runs past the end of the file"));
                }
                let n = block.len().min(left as usize);
                crc.update(&block[..n]);
                if keep {
                    output.write_all(&block[..n]).map_err(&io)?;
                }
                input.consume(n);
                left -= n as u64;
            }
            let stored = check_crc(&mut input, crc)?;
            if keep {
                output.write_all(&stored).map_err(&io)?;
            }
        }
        match &kind {
            b"IDAT" => idat = true,
            b"IEND" if !idat => return Err(corrupt("PNG", "it has no IDAT chunk")),
            b"IEND" => break,
            _ => {}
        }
    }
    output.flush().map_err(&io)?;
    Ok(dimensions.unwrap_or_default())
}

/// Whether a kept chunk's length is one its format allows (PNG 3rd edition 11.2-11.3), so a
/// kept chunk cannot carry anything beyond what renders.
fn png_length_fits(kind: &[u8; 4], length: u32) -> bool {
    match kind {
        b"IHDR" => length == 13,
        b"IEND" => length == 0,
        b"gAMA" => length == 4,
        b"cHRM" => length == 32,
        b"sRGB" => length == 1,
        b"pHYs" => length == 9,
        b"sBIT" => (1..=4).contains(&length),
        b"PLTE" => length > 0 && length <= 768 && length.is_multiple_of(3),
        b"tRNS" => length <= 256,
        _ => true, // IDAT (image data), iCCP (checked when it is read)
    }
}

/// Reads a chunk's stored CRC and compares it with the computed one.
fn check_crc<R: Read>(input: &mut R, crc: crc32fast::Hasher) -> Result<[u8; 4], ImageError> {
    let mut stored = [0u8; 4];
    input.read_exact(&mut stored).map_err(io_error("PNG"))?;
    if u32::from_be_bytes(stored) != crc.finalize() {
        return Err(corrupt("PNG", "a chunk's CRC does not match its bytes"));
    }
    Ok(stored)
}

fn write_chunk<W: Write>(output: &mut W, kind: &[u8; 4], data: &[u8]) -> io::Result<()> {
    let length = u32::try_from(data.len()).map_err(io::Error::other)?;
    output.write_all(&length.to_be_bytes())?;
    output.write_all(kind)?;
    output.write_all(data)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    output.write_all(&crc.finalize().to_be_bytes())
}

fn byte<R: Read>(input: &mut R) -> Result<u8, ImageError> {
    let mut b = [0u8; 1];
    input.read_exact(&mut b).map_err(io_error("JPEG"))?;
    Ok(b[0])
}

/// Walks a JPEG from `input` through its first `EOI`, writing the segments that render to
/// `output`; its dimensions (from the frame header). Errors: no `SOI`, anything but a marker
/// where one must be, a segment or scan running past the end, a second `SOI`, a scan before
/// any frame header, no scan.
pub fn jpeg<R: Read, W: Write>(input: R, output: W) -> Result<Dimensions, ImageError> {
    jpeg_stream(&mut BufReader::with_capacity(64 << 10, input), output)
}

/// [`jpeg`] on a buffered reader, which is left just after the first `EOI` (for a stream of
/// several images, such as the frames of an encapsulated DICOM).
pub fn jpeg_stream<R: BufRead, W: Write>(
    input: &mut R,
    mut output: W,
) -> Result<Dimensions, ImageError> {
    let io = io_error("JPEG");
    let mut input = input;
    // The image starts at its SOI. A file starts there (its type was decided by it); a frame
    // of an encapsulated DICOM may follow the padding of the fragment before, which is dropped.
    let mut previous = 0u8;
    loop {
        let current = byte(&mut input)?;
        if previous == 0xFF && current == 0xD8 {
            break;
        }
        previous = current;
    }
    output.write_all(&[0xFF, 0xD8]).map_err(&io)?;
    let mut dimensions: Option<Dimensions> = None;
    let mut scans = 0usize;
    // A marker already read (the one that ended a scan).
    let mut pending: Option<u8> = None;
    loop {
        let kind = match pending.take() {
            Some(kind) => kind,
            None => {
                if byte(&mut input)? != 0xFF {
                    return Err(corrupt("JPEG", "a marker was expected"));
                }
                let mut kind = byte(&mut input)?;
                while kind == 0xFF {
                    kind = byte(&mut input)?; // fill bytes (T.81 B.1.1.2)
                }
                kind
            }
        };
        match kind {
            0xD9 if scans == 0 => return Err(corrupt("JPEG", "it ends before any scan")),
            0xD9 => {
                output.write_all(&[0xFF, 0xD9]).map_err(&io)?;
                output.flush().map_err(&io)?;
                return Ok(dimensions.unwrap_or_default());
            }
            0xD8 => return Err(corrupt("JPEG", "a second SOI inside the image")),
            // TEM and RSTn carry nothing outside a scan.
            0x01 | 0xD0..=0xD7 => continue,
            0x00 => return Err(corrupt("JPEG", "a marker was expected")),
            _ => {}
        }
        let length = u16::from_be_bytes([byte(&mut input)?, byte(&mut input)?]);
        if length < 2 {
            return Err(corrupt("JPEG", "a segment length is below 2"));
        }
        let mut data = vec![0u8; usize::from(length) - 2];
        input.read_exact(&mut data).map_err(&io)?;
        if !jpeg_segment_fits(kind, &data) {
            return Err(corrupt(
                "JPEG",
                format!("a segment FF{kind:02X} breaks its format"),
            ));
        }
        let segment = |out: &mut W, data: &[u8]| -> io::Result<()> {
            out.write_all(&[0xFF, kind])?;
            out.write_all(&(data.len() as u16 + 2).to_be_bytes())?;
            out.write_all(data)
        };
        match kind {
            // SOFn (C0-CF but DHT C4, JPG C8, DAC CC): precision, height, width, components.
            0xC0..=0xCF if !matches!(kind, 0xC4 | 0xC8 | 0xCC) => {
                if data.len() < 6 {
                    return Err(corrupt("JPEG", "a frame header is too short"));
                }
                dimensions = Some(Dimensions {
                    height: Some(u32::from(u16::from_be_bytes([data[1], data[2]]))),
                    width: Some(u32::from(u16::from_be_bytes([data[3], data[4]]))),
                });
                segment(&mut output, &data).map_err(&io)?;
            }
            0xC4 | 0xCC | 0xDB | 0xDC | 0xDD => segment(&mut output, &data).map_err(&io)?,
            // JFIF: version, units and densities; no thumbnail.
            0xE0 if data.starts_with(b"JFIF\0") && data.len() >= 14 => {
                let mut jfif = data[..12].to_vec();
                jfif.extend_from_slice(&[0, 0]);
                segment(&mut output, &jfif).map_err(&io)?;
            }
            0xE2 if data.starts_with(b"ICC_PROFILE\0") => {
                segment(&mut output, &data).map_err(&io)?
            }
            // Adobe: "Adobe", version, two flag words and the colour transform (12 bytes).
            0xEE if data.starts_with(b"Adobe") && data.len() >= 12 => {
                segment(&mut output, &data[..12]).map_err(&io)?
            }
            0xDA => {
                if dimensions.is_none() {
                    return Err(corrupt("JPEG", "a scan comes before any frame header"));
                }
                segment(&mut output, &data).map_err(&io)?;
                pending = Some(scan(&mut input, &mut output)?);
                scans += 1;
            }
            // Every other APPn, COM, JPGn, and anything else: dropped.
            _ => {}
        }
    }
}

/// Whether a segment that is kept holds exactly what its format says (T.81 B.2.2-B.2.4,
/// B.2.3, B.2.4.1-B.2.4.4), so nothing can ride along in a kept segment.
fn jpeg_segment_fits(kind: u8, data: &[u8]) -> bool {
    match kind {
        // SOFn: P, Y, X, Nf, then 3 bytes per component.
        0xC0..=0xCF if !matches!(kind, 0xC4 | 0xC8 | 0xCC) => {
            data.len() >= 6 && data.len() == 6 + 3 * usize::from(data[5])
        }
        // SOS: Ns, 2 bytes per component, Ss, Se, Ah/Al.
        0xDA => !data.is_empty() && data.len() == 1 + 2 * usize::from(data[0]) + 3,
        // DRI: Ri. DNL: NL.
        0xDD | 0xDC => data.len() == 2,
        // DAC: Tc/Tb and Cs pairs.
        0xCC => data.len().is_multiple_of(2),
        // DQT: Pq/Tq, then 64 values of 1 or 2 bytes, repeated.
        0xDB => {
            let mut at = 0;
            while at < data.len() {
                at += 1 + if data[at] >> 4 == 0 { 64 } else { 128 };
            }
            at == data.len() && !data.is_empty()
        }
        // DHT: Tc/Th, 16 counts, then as many symbol values, repeated.
        0xC4 => {
            let mut at = 0;
            while at < data.len() {
                let Some(counts) = data.get(at + 1..at + 17) else {
                    return false;
                };
                at += 17 + counts.iter().map(|c| usize::from(*c)).sum::<usize>();
            }
            at == data.len() && !data.is_empty()
        }
        _ => true, // APPn and COM are dropped or cut to their fixed parts
    }
}

/// Copies a scan's entropy-coded data up to the next marker that is neither stuffing (`FF 00`)
/// nor a restart marker (`FF D0`-`FF D7`), either possibly after fill bytes (T.81 B.1.1.5);
/// returns that marker's code.
fn scan<R: BufRead, W: Write>(input: &mut R, output: &mut W) -> Result<u8, ImageError> {
    let io = io_error("JPEG");
    loop {
        let block = input.fill_buf().map_err(&io)?;
        if block.is_empty() {
            return Err(corrupt("JPEG", "a scan runs past the end of the file"));
        }
        match block.iter().position(|b| *b == 0xFF) {
            None => {
                let n = block.len();
                output.write_all(block).map_err(&io)?;
                input.consume(n);
            }
            Some(at) => {
                output.write_all(&block[..at]).map_err(&io)?;
                input.consume(at + 1);
                let mut fill = 0usize;
                let mut follower = byte(input)?;
                while follower == 0xFF {
                    fill += 1;
                    follower = byte(input)?;
                }
                if follower == 0x00 || (0xD0..=0xD7).contains(&follower) {
                    output.write_all(&vec![0xFF; fill + 1]).map_err(&io)?;
                    output.write_all(&[follower]).map_err(&io)?;
                } else {
                    return Ok(follower);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip_png(bytes: &[u8]) -> Result<Vec<u8>, ImageError> {
        let mut out = Vec::new();
        png(bytes, &mut out)?;
        Ok(out)
    }

    fn strip_jpeg(bytes: &[u8]) -> Result<Vec<u8>, ImageError> {
        let mut out = Vec::new();
        jpeg(bytes, &mut out)?;
        Ok(out)
    }

    /// A PNG chunk (length, type, data, CRC).
    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut c = Vec::new();
        write_chunk(&mut c, kind, data).unwrap();
        c
    }

    fn ihdr() -> Vec<u8> {
        chunk(b"IHDR", &[0, 0, 0, 2, 0, 0, 0, 3, 8, 0, 0, 0, 0])
    }

    #[test]
    fn png_keeps_only_what_renders_and_nothing_after_iend() {
        let mut png = PNG_SIGNATURE.to_vec();
        png.extend(ihdr());
        png.extend(chunk(b"tEXt", b"Author\0Dr Canary"));
        png.extend(chunk(b"prVt", b"canary private"));
        png.extend(chunk(b"pHYs", &[0; 9]));
        png.extend(chunk(b"caBX", b"canary c2pa"));
        png.extend(chunk(b"IDAT", b"pixels"));
        png.extend(chunk(b"iTXt", b"XML:com.adobe.xmp\0canary"));
        png.extend(chunk(b"IEND", b""));
        png.extend(chunk(b"prVt", b"PATIENT canary after IEND"));
        let out = strip_png(&png).unwrap();
        let mut expected = PNG_SIGNATURE.to_vec();
        expected.extend(ihdr());
        expected.extend(chunk(b"pHYs", &[0; 9]));
        expected.extend(chunk(b"IDAT", b"pixels"));
        expected.extend(chunk(b"IEND", b""));
        assert_eq!(out, expected);
    }

    #[test]
    fn png_iccp_profile_names_are_replaced() {
        let mut png = PNG_SIGNATURE.to_vec();
        png.extend(ihdr());
        png.extend(chunk(b"iCCP", b"Dr Canary's monitor\0\0profile"));
        png.extend(chunk(b"IDAT", b"pixels"));
        png.extend(chunk(b"IEND", b""));
        let out = strip_png(&png).unwrap();
        assert!(!String::from_utf8_lossy(&out).contains("Canary"));
        let renamed = chunk(b"iCCP", b"ICC profile\0\0profile");
        assert!(out.windows(renamed.len()).any(|w| w == renamed.as_slice()));
    }

    #[test]
    fn malformed_pngs_are_refused() {
        let good = [
            PNG_SIGNATURE.to_vec(),
            ihdr(),
            chunk(b"IDAT", b"x"),
            chunk(b"IEND", b""),
        ]
        .concat();
        assert!(strip_png(&good).is_ok());
        let mut bad_crc = good.clone();
        let at = bad_crc.len() - 14; // inside IDAT's CRC
        bad_crc[at] ^= 1;
        let html = [
            PNG_SIGNATURE.to_vec(),
            ihdr(),
            b"<html><script>alert(1)</script></html>".to_vec(),
            chunk(b"IEND", b""),
        ]
        .concat();
        let no_idat = [PNG_SIGNATURE.to_vec(), ihdr(), chunk(b"IEND", b"")].concat();
        let past_end = [
            PNG_SIGNATURE.to_vec(),
            ihdr(),
            vec![0, 0, 1, 0],
            b"IDAT".to_vec(),
        ]
        .concat();
        let no_ihdr = [
            PNG_SIGNATURE.to_vec(),
            chunk(b"IDAT", b"x"),
            chunk(b"IEND", b""),
        ]
        .concat();
        for (name, bytes) in [
            ("crc", bad_crc),
            ("html", html),
            ("no idat", no_idat),
            ("past end", past_end),
            ("no ihdr", no_ihdr),
            ("no iend", good[..good.len() - 12].to_vec()),
        ] {
            assert!(strip_png(&bytes).is_err(), "{name}");
        }
    }

    /// A scan header: one component, spectral selection 0-63.
    const SOS: &[u8] = b"\x01\x01\x00\x00\x3F\x00";

    /// A quantisation table (8-bit, table 0).
    fn dqt() -> Vec<u8> {
        [vec![0u8], vec![1u8; 64]].concat()
    }

    /// A Huffman table with one code of length 1.
    fn dht() -> Vec<u8> {
        let mut t = vec![0u8, 1];
        t.extend_from_slice(&[0u8; 15]);
        t.push(5);
        t
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
        jpeg.extend(segment(0xDB, &dqt()));
        jpeg.extend(segment(0xC0, b"\x08\0\x01\0\x01\x01\x01\x11\0"));
        jpeg.extend(segment(0xDA, SOS));
        jpeg.extend_from_slice(&[0x12, 0x34, 0xFF, 0xD9]);
        let out = strip_jpeg(&jpeg).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("canary") && !text.contains("cnr"), "{text}");
        let mut expected = vec![0xFF, 0xD8];
        expected.extend(segment(0xE0, b"JFIF\0\x01\x02\x00\x00\x48\x00\x48\x00\x00"));
        expected.extend(segment(0xE2, b"ICC_PROFILE\0\x01\x01profile"));
        expected.extend(segment(0xEE, b"Adobe\0\x64\0\0\0\0\x01"));
        expected.extend(segment(0xDB, &dqt()));
        expected.extend(segment(0xC0, b"\x08\0\x01\0\x01\x01\x01\x11\0"));
        expected.extend(segment(0xDA, SOS));
        expected.extend_from_slice(&[0x12, 0x34, 0xFF, 0xD9]);
        assert_eq!(out, expected);
    }

    #[test]
    fn jpeg_scans_keep_fill_bytes_before_restart_markers_and_a_second_soi_is_refused() {
        let mut jpeg = vec![0xFF, 0xD8];
        jpeg.extend(segment(0xC0, b"\x08\0\x01\0\x01\x01\x01\x11\0"));
        jpeg.extend(segment(0xDA, SOS));
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
        // A frame header followed by random bytes, and a scan before any frame: refused.
        let mut random = vec![0xFF, 0xD8];
        random.extend(segment(0xC0, b"\x08\0\x01\0\x01\x01\x01\x11\0"));
        random.extend_from_slice(b"random bytes, not a marker\xFF\xD9");
        assert!(strip_jpeg(&random).is_err());
        let mut no_frame = vec![0xFF, 0xD8];
        no_frame.extend(segment(0xDA, SOS));
        no_frame.extend_from_slice(&[0x12, 0xFF, 0xD9]);
        assert!(strip_jpeg(&no_frame).is_err());
    }

    #[test]
    fn kept_segments_and_chunks_carry_only_their_format() {
        let frame = segment(0xC0, b"\x08\0\x01\0\x01\x01\x01\x11\0");
        for (name, extra) in [
            (
                "DQT with text",
                segment(0xDB, &[dqt(), b"CNRY".to_vec()].concat()),
            ),
            (
                "DHT with text",
                segment(0xC4, &[dht(), b"CNRY".to_vec()].concat()),
            ),
            ("DRI with text", segment(0xDD, b"\0\x10CNRY")),
        ] {
            let mut jpeg = vec![0xFF, 0xD8];
            jpeg.extend(extra);
            jpeg.extend(frame.clone());
            jpeg.extend(segment(0xDA, SOS));
            jpeg.extend_from_slice(&[0x12, 0xFF, 0xD9]);
            assert!(strip_jpeg(&jpeg).is_err(), "{name}");
        }
        let mut sof_tail = vec![0xFF, 0xD8];
        sof_tail.extend(segment(0xC0, b"\x08\0\x01\0\x01\x01\x01\x11\0CNRY"));
        assert!(strip_jpeg(&sof_tail).is_err(), "SOF with text");
        for (name, extra) in [
            (
                "pHYs with text",
                chunk(b"pHYs", &[[0u8; 9].as_slice(), b"CNRY"].concat()),
            ),
            ("gAMA with text", chunk(b"gAMA", b"\0\0\0\x01CNRY")),
        ] {
            let png = [
                PNG_SIGNATURE.to_vec(),
                ihdr(),
                extra,
                chunk(b"IDAT", b"x"),
                chunk(b"IEND", b""),
            ]
            .concat();
            assert!(strip_png(&png).is_err(), "{name}");
        }
        let iend_with_data = [
            PNG_SIGNATURE.to_vec(),
            ihdr(),
            chunk(b"IDAT", b"x"),
            chunk(b"IEND", b"CNRY"),
        ]
        .concat();
        assert!(strip_png(&iend_with_data).is_err(), "IEND with data");
    }

    #[test]
    fn jpeg_bytes_after_the_first_eoi_and_metadata_between_scans_are_dropped() {
        // A progressive image: two scans with a table and a comment between them, stuffed
        // bytes and a restart marker inside the scans; then a second image with identifying
        // metadata appended after the first EOI.
        let mut jpeg = vec![0xFF, 0xD8];
        jpeg.extend(segment(0xC2, b"\x08\x00\x04\x00\x04\x01\x01\x11\x00"));
        jpeg.extend(segment(0xDA, SOS));
        jpeg.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56]);
        jpeg.extend(segment(0xC4, &dht()));
        jpeg.extend(segment(0xFE, b"canary between scans"));
        jpeg.extend(segment(0xE1, b"Exif\0\0canary between scans"));
        jpeg.extend(segment(0xDA, SOS));
        jpeg.extend_from_slice(&[0x78, 0xFF, 0xD9]);
        let image = jpeg.clone();
        jpeg.extend_from_slice(&[0xFF, 0xD8]);
        jpeg.extend(segment(0xE1, b"Exif\0\0PATIENT canary"));
        jpeg.extend_from_slice(&[0xFF, 0xD9]);
        let out = strip_jpeg(&jpeg).unwrap();
        assert!(!String::from_utf8_lossy(&out).contains("canary"));
        let mut without = image.clone();
        for dropped in [
            segment(0xFE, b"canary between scans"),
            segment(0xE1, b"Exif\0\0canary between scans"),
        ] {
            let at = without
                .windows(dropped.len())
                .position(|w| w == dropped.as_slice())
                .unwrap();
            without.drain(at..at + dropped.len());
        }
        assert_eq!(out, without, "the image itself is kept byte for byte");
        assert!(
            strip_jpeg(&image[..image.len() - 2]).is_err(),
            "no EOI: refused"
        );
    }
}
