//! DICOM Part 10 files read and written one element at a time (PS3.10 section 7.1, PS3.5
//! section 7), so a file of any size passes through in bounded memory: element headers are
//! decoded here, values are read into memory only when the caller asks for them (bounded by a
//! limit), and otherwise skipped or copied through in small blocks.
//!
//! Supported transfer syntaxes (PS3.5 section 10 and Annex A): Implicit VR Little Endian,
//! Explicit VR Little Endian, Explicit VR Big Endian (retired), and every encapsulated
//! syntax (JPEG, JPEG-LS, JPEG 2000, HTJ2K, RLE, MPEG/HEVC, encapsulated uncompressed), whose
//! data sets are Explicit VR Little Endian. Deflated data sets are refused.

use std::io::{self, Read, Write};

use dicom_core::dictionary::{DataDictionary as _, DataDictionaryEntry as _, VirtualVr};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

/// Pixel Data (7FE0,0010), Float Pixel Data (7FE0,0008), Double Float Pixel Data (7FE0,0009).
pub const PIXEL_DATA_TAGS: [u32; 3] = [0x7FE0_0010, 0x7FE0_0008, 0x7FE0_0009];
/// Item (FFFE,E000), Item Delimitation Item (FFFE,E00D), Sequence Delimitation Item
/// (FFFE,E0DD) (PS3.5 section 7.5).
pub const ITEM: u32 = 0xFFFE_E000;
pub const ITEM_DELIMITER: u32 = 0xFFFE_E00D;
pub const SEQUENCE_DELIMITER: u32 = 0xFFFE_E0DD;
/// The length of an element or item delimited by a delimitation item.
pub const UNDEFINED_LENGTH: u32 = u32::MAX;

/// Why a Part 10 stream could not be read (or written).
#[derive(Debug, thiserror::Error)]
pub enum Part10Error {
    /// The stream ended inside an element, or reading failed.
    #[error("the DICOM file is truncated or unreadable: {0}")]
    Io(#[from] io::Error),
    /// The bytes break PS3.5's encoding rules.
    #[error("the DICOM file is corrupt: {0}")]
    Corrupt(String),
    /// A transfer syntax medlabel does not read (deflated, private or unknown).
    #[error(
        "the DICOM transfer syntax {0} is not supported (supported: implicit and explicit VR \
         little endian, explicit VR big endian, and encapsulated JPEG, JPEG-LS, JPEG 2000, \
         HTJ2K, RLE and MPEG; deflated data sets are not)"
    )]
    UnsupportedSyntax(String),
    /// Pixel Data starts further into the file than the header bound.
    #[error(
        "the DICOM header is too large: Pixel Data starts more than {0} bytes into the file \
         (MEDLABEL_MAX_DICOM_HEADER_BYTES)"
    )]
    HeaderTooLarge(u64),
    /// No Pixel Data at the top level: a structured report, presentation state, key object...
    #[error(
        "only DICOM image objects are accepted: this file has no Pixel Data (7FE0,0010) \
         (structured reports, presentation states and other non-image objects are refused)"
    )]
    NotAnImage,
}

/// How a data set is encoded (PS3.5 section 7.1 and Annex A).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syntax {
    /// Explicit VR (the VR is written in each element header).
    pub explicit: bool,
    /// Big endian (only Explicit VR Big Endian, PS3.5 A.3).
    pub big_endian: bool,
}

impl Syntax {
    pub const IMPLICIT_LITTLE: Syntax = Syntax {
        explicit: false,
        big_endian: false,
    };
    pub const EXPLICIT_LITTLE: Syntax = Syntax {
        explicit: true,
        big_endian: false,
    };
    pub const EXPLICIT_BIG: Syntax = Syntax {
        explicit: true,
        big_endian: true,
    };

    /// The encoding of the data set under a Transfer Syntax UID (trailing padding ignored).
    pub fn of(uid: &str) -> Result<Syntax, Part10Error> {
        let uid = uid.trim_end_matches(['\0', ' ']);
        match uid {
            "1.2.840.10008.1.2" => Ok(Syntax::IMPLICIT_LITTLE),
            "1.2.840.10008.1.2.1" | "1.2.840.10008.1.2.1.98" => Ok(Syntax::EXPLICIT_LITTLE),
            "1.2.840.10008.1.2.2" => Ok(Syntax::EXPLICIT_BIG),
            // Deflated Explicit VR Little Endian and JPIP Referenced Deflate.
            "1.2.840.10008.1.2.1.99" | "1.2.840.10008.1.2.4.95" => {
                Err(Part10Error::UnsupportedSyntax(uid.to_owned()))
            }
            // JPEG family, JPEG-LS, JPEG 2000, JPIP, MPEG-2/4, HEVC, HTJ2K (PS3.5 A.4); RLE.
            _ if uid
                .strip_prefix("1.2.840.10008.1.2.4.")
                .is_some_and(|rest| {
                    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
                }) =>
            {
                Ok(Syntax::EXPLICIT_LITTLE)
            }
            "1.2.840.10008.1.2.5" => Ok(Syntax::EXPLICIT_LITTLE),
            _ => Err(Part10Error::UnsupportedSyntax(uid.to_owned())),
        }
    }

    fn u16(self, b: [u8; 2]) -> u16 {
        if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    fn u32(self, b: [u8; 4]) -> u32 {
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    fn u16_bytes(self, v: u16) -> [u8; 2] {
        if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    fn u32_bytes(self, v: u32) -> [u8; 4] {
        if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
}

/// An element's (or item's) header: tag as `gggg_eeee`, VR (from the file when explicit, from
/// the data dictionary when implicit; `None` for items and delimiters), value length in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub tag: u32,
    pub vr: Option<VR>,
    pub length: u32,
}

impl Header {
    pub fn group(&self) -> u16 {
        (self.tag >> 16) as u16
    }

    pub fn element(&self) -> u16 {
        self.tag as u16
    }

    pub fn is_sequence(&self) -> bool {
        self.vr == Some(VR::SQ)
    }
}

/// Whether an explicit-VR header of `vr` has a 4-byte length (PS3.5 Table 7.1-1).
fn has_long_length(vr: VR) -> bool {
    matches!(
        vr,
        VR::OB
            | VR::OD
            | VR::OF
            | VR::OL
            | VR::OV
            | VR::OW
            | VR::SQ
            | VR::SV
            | VR::UC
            | VR::UN
            | VR::UR
            | VR::UT
            | VR::UV
    )
}

/// The VR of `tag` in the standard data dictionary, for implicit-VR data sets (PS3.6); `UN`
/// when the dictionary does not know it. Group lengths are UL and private creators LO.
pub fn dictionary_vr(tag: u32) -> VR {
    let (group, element) = ((tag >> 16) as u16, tag as u16);
    if element == 0 {
        return VR::UL;
    }
    if group % 2 == 1 && (0x0010..=0x00FF).contains(&element) {
        return VR::LO;
    }
    match StandardDataDictionary
        .by_tag(Tag(group, element))
        .map(|e| e.vr())
    {
        Some(VirtualVr::Exact(vr)) => vr,
        Some(VirtualVr::Xs) => VR::US,
        Some(VirtualVr::Ox | VirtualVr::Px | VirtualVr::Lt) => VR::OW,
        _ => VR::UN,
    }
}

/// Reads element headers and values from a Part 10 stream, counting the bytes read.
pub struct Part10Reader<R> {
    inner: R,
    position: u64,
}

impl<R: Read> Part10Reader<R> {
    pub fn new(inner: R) -> Self {
        Part10Reader { inner, position: 0 }
    }

    /// The stream being read.
    pub fn inner_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Bytes read so far (the offset in the file).
    pub fn position(&self) -> u64 {
        self.position
    }

    fn exact<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.inner.read_exact(&mut buf)?;
        self.position += N as u64;
        Ok(buf)
    }

    /// The 128-byte preamble and `DICM` (PS3.10 section 7.1), discarded.
    pub fn preamble(&mut self) -> Result<(), Part10Error> {
        self.skip(128)?;
        if &self.exact::<4>()? != b"DICM" {
            return Err(Part10Error::Corrupt("no DICM prefix at offset 128".into()));
        }
        Ok(())
    }

    /// The next tag, or `None` at a clean end of the stream (between elements).
    pub fn tag(&mut self, syntax: Syntax) -> Result<Option<u32>, Part10Error> {
        let mut first = [0u8; 1];
        loop {
            match self.inner.read(&mut first) {
                Ok(0) => return Ok(None),
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
        self.position += 1;
        let rest = self.exact::<3>()?;
        let bytes = [first[0], rest[0], rest[1], rest[2]];
        let group = syntax.u16([bytes[0], bytes[1]]);
        let element = syntax.u16([bytes[2], bytes[3]]);
        Ok(Some(u32::from(group) << 16 | u32::from(element)))
    }

    /// The rest of the header of the element whose tag was just read.
    pub fn header_after(&mut self, tag: u32, syntax: Syntax) -> Result<Header, Part10Error> {
        if tag >> 16 == 0xFFFE {
            let length = syntax.u32(self.exact::<4>()?);
            return Ok(Header {
                tag,
                vr: None,
                length,
            });
        }
        if !syntax.explicit {
            let length = syntax.u32(self.exact::<4>()?);
            return Ok(Header {
                tag,
                vr: Some(dictionary_vr(tag)),
                length,
            });
        }
        let code = self.exact::<2>()?;
        let vr = VR::from_binary(code).ok_or_else(|| {
            Part10Error::Corrupt(format!(
                "({:04X},{:04X}) has no valid VR ({:?})",
                tag >> 16,
                tag & 0xFFFF,
                String::from_utf8_lossy(&code)
            ))
        })?;
        let length = if has_long_length(vr) {
            self.exact::<2>()?;
            syntax.u32(self.exact::<4>()?)
        } else {
            u32::from(syntax.u16(self.exact::<2>()?))
        };
        Ok(Header {
            tag,
            vr: Some(vr),
            length,
        })
    }

    /// The whole header of the next element, or `None` at a clean end of the stream.
    pub fn header(&mut self, syntax: Syntax) -> Result<Option<Header>, Part10Error> {
        match self.tag(syntax)? {
            Some(tag) => self.header_after(tag, syntax).map(Some),
            None => Ok(None),
        }
    }

    /// A value of `length` bytes, read into memory; refused above `limit` bytes.
    pub fn value(&mut self, length: u32, limit: u64) -> Result<Vec<u8>, Part10Error> {
        if u64::from(length) > limit {
            return Err(Part10Error::Corrupt(format!(
                "a value of {length} bytes is longer than the {limit} bytes allowed here"
            )));
        }
        let mut value = vec![0u8; length as usize];
        self.inner.read_exact(&mut value)?;
        self.position += u64::from(length);
        Ok(value)
    }

    /// Fills `buf` from the stream.
    pub fn fill(&mut self, buf: &mut [u8]) -> Result<(), Part10Error> {
        self.inner.read_exact(buf)?;
        self.position += buf.len() as u64;
        Ok(())
    }

    /// Skips `length` bytes.
    pub fn skip(&mut self, length: u64) -> Result<(), Part10Error> {
        self.copy(length, &mut io::sink())
    }

    /// Copies `length` bytes to `out` in small blocks.
    pub fn copy(&mut self, length: u64, out: &mut dyn Write) -> Result<(), Part10Error> {
        let copied = io::copy(&mut (&mut self.inner).take(length), out)?;
        self.position += copied;
        if copied < length {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        Ok(())
    }

    /// Reads what is left, to the end of the stream (discarded).
    pub fn drain(&mut self) -> Result<(), Part10Error> {
        self.position += io::copy(&mut self.inner, &mut io::sink())?;
        Ok(())
    }
}

/// Writes elements in one transfer syntax. Sequences and items are always written with
/// undefined length and delimitation items (PS3.5 section 7.5), so nothing needs to be known
/// about their contents in advance.
pub struct Part10Writer<W> {
    out: W,
    syntax: Syntax,
}

impl<W: Write> Part10Writer<W> {
    pub fn new(out: W, syntax: Syntax) -> Self {
        Part10Writer { out, syntax }
    }

    pub fn syntax(&self) -> Syntax {
        self.syntax
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    /// The preamble (128 zero bytes), `DICM` and the File Meta Information group (always
    /// Explicit VR Little Endian), with its group length (0002,0000) computed.
    pub fn file_meta(&mut self, elements: &[(u32, VR, Vec<u8>)]) -> io::Result<()> {
        let mut group = Vec::new();
        {
            let mut meta = Part10Writer::new(&mut group, Syntax::EXPLICIT_LITTLE);
            for (tag, vr, value) in elements {
                meta.element(*tag, *vr, value)?;
            }
        }
        self.out.write_all(&[0u8; 128])?;
        self.out.write_all(b"DICM")?;
        let mut meta = Part10Writer::new(&mut self.out, Syntax::EXPLICIT_LITTLE);
        let length = u32::try_from(group.len())
            .map_err(|_| io::Error::other("the file meta group is too long"))?;
        meta.element(0x0002_0000, VR::UL, &length.to_le_bytes())?;
        self.out.write_all(&group)
    }

    /// An element header with the given value length.
    pub fn header(&mut self, tag: u32, vr: VR, length: u32) -> io::Result<()> {
        let s = self.syntax;
        self.out.write_all(&s.u16_bytes((tag >> 16) as u16))?;
        self.out.write_all(&s.u16_bytes(tag as u16))?;
        if !s.explicit {
            return self.out.write_all(&s.u32_bytes(length));
        }
        self.out.write_all(&vr.to_bytes())?;
        if has_long_length(vr) {
            self.out.write_all(&[0, 0])?;
            self.out.write_all(&s.u32_bytes(length))
        } else {
            let short = u16::try_from(length).map_err(|_| {
                io::Error::other(format!(
                    "a {vr:?} value of {length} bytes cannot be written"
                ))
            })?;
            self.out.write_all(&s.u16_bytes(short))
        }
    }

    /// A whole element. The value must already be of even length (padded for its VR).
    pub fn element(&mut self, tag: u32, vr: VR, value: &[u8]) -> io::Result<()> {
        let length = u32::try_from(value.len()).map_err(|_| io::Error::other("value too long"))?;
        self.header(tag, vr, length)?;
        self.out.write_all(value)
    }

    /// An item or delimitation item header (FFFE,xxxx) with its length.
    pub fn item(&mut self, tag: u32, length: u32) -> io::Result<()> {
        let s = self.syntax;
        self.out.write_all(&s.u16_bytes((tag >> 16) as u16))?;
        self.out.write_all(&s.u16_bytes(tag as u16))?;
        self.out.write_all(&s.u32_bytes(length))
    }

    /// Raw bytes (a value being copied through).
    pub fn raw(&mut self) -> &mut W {
        &mut self.out
    }
}

/// `text` padded to even length as PS3.5 section 6.2 says: UI with NUL, other text with a
/// space.
pub fn padded(text: &str, vr: VR) -> Vec<u8> {
    let mut value = text.as_bytes().to_vec();
    if value.len() % 2 == 1 {
        value.push(if vr == VR::UI { 0 } else { b' ' });
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_read_back_in_every_syntax() {
        for syntax in [
            Syntax::IMPLICIT_LITTLE,
            Syntax::EXPLICIT_LITTLE,
            Syntax::EXPLICIT_BIG,
        ] {
            let mut bytes = Vec::new();
            let mut w = Part10Writer::new(&mut bytes, syntax);
            w.element(0x0010_0020, VR::LO, b"PAT1").unwrap();
            w.header(0x0008_1140, VR::SQ, UNDEFINED_LENGTH).unwrap();
            w.item(ITEM, UNDEFINED_LENGTH).unwrap();
            w.item(ITEM_DELIMITER, 0).unwrap();
            w.item(SEQUENCE_DELIMITER, 0).unwrap();
            w.element(0x7FE0_0010, VR::OW, &[1, 2, 3, 4]).unwrap();
            let mut r = Part10Reader::new(bytes.as_slice());
            let h = r.header(syntax).unwrap().unwrap();
            assert_eq!((h.tag, h.vr, h.length), (0x0010_0020, Some(VR::LO), 4));
            assert_eq!(r.value(4, 100).unwrap(), b"PAT1");
            let h = r.header(syntax).unwrap().unwrap();
            assert!(
                h.is_sequence() && h.length == UNDEFINED_LENGTH,
                "{syntax:?}"
            );
            assert_eq!(r.header(syntax).unwrap().unwrap().tag, ITEM);
            assert_eq!(r.header(syntax).unwrap().unwrap().tag, ITEM_DELIMITER);
            assert_eq!(r.header(syntax).unwrap().unwrap().tag, SEQUENCE_DELIMITER);
            let h = r.header(syntax).unwrap().unwrap();
            assert_eq!((h.tag, h.length), (0x7FE0_0010, 4));
            assert!(r.value(4, 3).is_err(), "over the limit");
        }
    }

    #[test]
    fn transfer_syntaxes_are_known_or_refused() {
        assert_eq!(
            Syntax::of("1.2.840.10008.1.2\0").unwrap(),
            Syntax::IMPLICIT_LITTLE
        );
        assert_eq!(
            Syntax::of("1.2.840.10008.1.2.4.50").unwrap(),
            Syntax::EXPLICIT_LITTLE
        );
        assert_eq!(
            Syntax::of("1.2.840.10008.1.2.5").unwrap(),
            Syntax::EXPLICIT_LITTLE
        );
        assert_eq!(
            Syntax::of("1.2.840.10008.1.2.2").unwrap(),
            Syntax::EXPLICIT_BIG
        );
        for refused in [
            "1.2.840.10008.1.2.1.99",
            "1.2.3.4",
            "",
            "1.2.840.10008.1.2.4.",
        ] {
            assert!(matches!(
                Syntax::of(refused),
                Err(Part10Error::UnsupportedSyntax(_))
            ));
        }
    }
}
