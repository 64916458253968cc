//! The DICOM de-identification engine: PS3.15 Annex E, the Basic Application Level
//! Confidentiality Profile with the Retain Longitudinal Temporal Information with Modified
//! Dates Option, driven by Table E.1-1 ([`super::confidentiality_table`], generated from the
//! standard's table), applied while the file streams through.
//!
//! The data set is read element by element ([`super::part10`]) and written again in the same
//! transfer syntax:
//! - every attribute of the table is acted on at every depth of nested sequences: `X` removed,
//!   `Z` zero length, `D` a dummy value of its VR, `U` a replaced UID; combined codes resolve
//!   to removal where `X` is a choice, `Z/D` to zero length, and `X/Z/U*` (a sequence of
//!   references) to keeping the sequence with the UIDs inside it replaced;
//! - dates and date-times the option marks `C` are kept, shifted back by a per-subject number
//!   of days ([`shift_days`]); times of day (`TM`) are kept;
//! - every private attribute (odd group), group length, trailing padding and file meta
//!   attribute outside PS3.10 7.1's required set is removed;
//! - at the top level, Patient's Name and Patient ID become the subject pseudonym, and Patient
//!   Identity Removed, De-identification Method (+ Code Sequence) and Longitudinal Temporal
//!   Information Modified are set;
//! - Pixel Data is copied through in blocks, never held in memory; under a JPEG process
//!   transfer syntax each frame is walked by the JPEG allow-list instead (held in memory, at
//!   most 64 MiB), so no `APPn`, comment or appended data rides along in the pixels;
//! - Burned In Annotation is noted wherever it says `YES`, so the caller can withhold the
//!   image; top-level attributes must ascend by tag (PS3.5 7.1); values the engine reads are
//!   bounded, and replacing UIDs may not grow a file by more than 16 MiB.
//!
//! Sequences and items are re-written with undefined length, so nothing is buffered. Any
//! error aborts the copy: a partly processed file is never presented as de-identified.

use std::io::{Read, Write};

use dicom_core::VR;

use super::confidentiality_table::{EDITION, EXACT, PRIVATE, REPEATING};
use super::part10::{
    dictionary_vr, padded, Header, Part10Error, Part10Reader, Part10Writer, Syntax, ITEM,
    ITEM_DELIMITER, PIXEL_DATA_TAGS, SEQUENCE_DELIMITER, UNDEFINED_LENGTH,
};
use crate::pseudonym::PseudonymKey;

/// A basic-profile action code (PS3.15 E.3.1); combined codes name every choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    X,
    Z,
    D,
    U,
    XZ,
    XD,
    ZD,
    XZD,
    XZU,
}

/// One row of Table E.1-1: `tag & mask == tag` matches (mask `FFFFFFFF` for single tags).
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub tag: u32,
    pub mask: u32,
    pub basic: Action,
    /// The Retain Longitudinal Temporal Information with Modified Dates Option says `C`.
    pub modified_dates: bool,
    pub name: &'static str,
}

/// The table's rule for `tag`, if any.
pub fn rule(tag: u32) -> Option<&'static Rule> {
    EXACT
        .binary_search_by_key(&tag, |r| r.tag)
        .ok()
        .map(|i| &EXACT[i])
        .or_else(|| REPEATING.iter().find(|r| tag & r.mask == r.tag))
}

/// The version of these rules; de-identified copies are stored under it, so a copy made
/// under older rules is never served. Bump it whenever the output of this module changes.
pub const PROFILE_VERSION: u32 = 3;

/// De-identification Method (0012,0063): three LO values of at most 64 characters each,
/// naming the profile with the table's edition, the option, and these rules' version.
pub fn method() -> [String; 3] {
    [
        format!("PS3.15 {EDITION} Basic Application Level Confidentiality Profile"),
        "Retain Longitudinal Temporal Information Modified Dates Option".to_owned(),
        format!("medlabel de-identification profile version {PROFILE_VERSION}"),
    ]
}

/// Implementation Class UID (0002,0012) of the copies medlabel writes (a UUID-derived UID,
/// PS3.5 B.2).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.220196062339155066925012577117744421457";
/// Implementation Version Name (0002,0013).
pub const IMPLEMENTATION_VERSION_NAME: &str = "MEDLABEL_DEID_3";

/// The nesting depth of sequences beyond which a file is refused as corrupt.
const MAX_DEPTH: u32 = 32;
/// The longest value the engine reads into memory to interpret (UIDs, dates, the attributes
/// an upload is filed by, Burned In Annotation): longer ones are refused as corrupt.
const MAX_INTERPRETED_BYTES: u64 = 64 << 10;
/// How much replacing UIDs and dates may grow a file (each replaced UID grows by at most 44
/// bytes): a file of many tiny UIDs (`1\1\1...`) is refused rather than multiplied.
const MAX_GROWTH_BYTES: i64 = 16 << 20;
/// Burned In Annotation (0028,0301).
const BURNED_IN_ANNOTATION: u32 = 0x0028_0301;

/// What a copy is made for.
pub struct Profile<'a> {
    /// The pseudonym key: UIDs are replaced with HMACs under it.
    pub key: &'a PseudonymKey,
    /// The subject pseudonym that becomes Patient's Name and Patient ID; `None` leaves both
    /// empty (an image without a patient).
    pub subject_id: Option<&'a str>,
    /// Days every shifted date moves back ([`shift_days`]).
    pub shift_days: u32,
    /// The SOP Instance UID the image is filed under: Media Storage SOP Instance UID (0002,0003)
    /// becomes its replacement, so it equals the data set's new SOP Instance UID. `None` uses
    /// the file meta's own.
    pub sop_instance_uid: Option<&'a str>,
    /// The most bytes before the top-level Pixel Data, and the largest value read into memory.
    pub max_header_bytes: u64,
}

/// What a pass over the file found.
#[derive(Debug, Default)]
pub struct Walked {
    /// The top-level elements asked for in `capture`: (tag, VR, value bytes as in the file).
    pub captured: Vec<(u32, VR, Vec<u8>)>,
    /// The data set's encoding.
    pub syntax: Option<Syntax>,
    /// Some Burned In Annotation (0028,0301) the copy keeps, at any depth and in any VR, says
    /// `YES` (in any of its values).
    pub burned_in_annotation: bool,
    /// The length in bytes of the top-level Pixel Data when it is native (defined length).
    pub native_pixel_bytes: Option<u64>,
}

/// The replacement of a UID (PS3.15 E.3.1 `U`, as API.md fixes it): `2.25.` followed by the
/// decimal value of the first 16 bytes of HMAC-SHA256(key, the UID's ASCII text without
/// trailing padding), read as a big-endian unsigned integer (PS3.5 B.2).
pub fn replacement_uid(key: &PseudonymKey, uid: &str) -> String {
    let mac = key.mac(uid.trim_end_matches(['\0', ' ']).as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&mac[..16]);
    format!("2.25.{}", u128::from_be_bytes(first))
}

/// The days a subject's dates move back: 1 to 3,650, from the first 8 bytes of
/// HMAC-SHA256(key, "medlabel date shift" + U+0000 + basis) where basis is the subject
/// pseudonym (or, for a file without a patient, its Study Instance UID).
pub fn shift_days(key: &PseudonymKey, basis: &str) -> u32 {
    let mut message = b"medlabel date shift\0".to_vec();
    message.extend_from_slice(basis.as_bytes());
    let mac = key.mac(&message);
    let mut first = [0u8; 8];
    first.copy_from_slice(&mac[..8]);
    (u64::from_be_bytes(first) % 3650) as u32 + 1
}

/// De-identifies the Part 10 file read from `input` into `output`. The top-level elements
/// whose tags are in `capture` (single-valued attributes, not sequences) are returned as they
/// were in the file. Errors: the file cannot be parsed ([`Part10Error::Corrupt`], `Io`), uses
/// an unsupported transfer syntax, has more than `max_header_bytes` before Pixel Data, or has
/// no Pixel Data ([`Part10Error::NotAnImage`]).
pub fn deidentify_dicom<R: Read, W: Write>(
    input: R,
    output: W,
    profile: &Profile<'_>,
    capture: &[u32],
) -> Result<Walked, Part10Error> {
    let mut reader = Part10Reader::new(input);
    reader.preamble()?;
    // File Meta Information (PS3.10 7.1): Explicit VR Little Endian, group 0002.
    let (mut class_uid, mut instance_uid, mut transfer_syntax) = (None, None, None);
    let first_tag = loop {
        let Some(tag) = reader.tag(Syntax::EXPLICIT_LITTLE)? else {
            return Err(Part10Error::NotAnImage);
        };
        if tag >> 16 != 0x0002 {
            break tag;
        }
        let header = reader.header_after(tag, Syntax::EXPLICIT_LITTLE)?;
        if header.length == UNDEFINED_LENGTH {
            return Err(Part10Error::Corrupt(
                "a file meta attribute has undefined length".into(),
            ));
        }
        let value = reader.value(header.length, 1 << 16)?;
        let text = || {
            String::from_utf8_lossy(&value)
                .trim_end_matches(['\0', ' '])
                .to_owned()
        };
        match tag {
            0x0002_0002 => class_uid = Some(text()),
            0x0002_0003 => instance_uid = Some(text()),
            0x0002_0010 => transfer_syntax = Some(text()),
            _ => {}
        }
    };
    let transfer_syntax = transfer_syntax
        .ok_or_else(|| Part10Error::Corrupt("the file meta has no Transfer Syntax UID".into()))?;
    let is_uid =
        |v: &str| (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if !class_uid.as_deref().is_some_and(is_uid) {
        return Err(Part10Error::Corrupt(
            "the file meta's Media Storage SOP Class UID (0002,0002) is missing or not a UID"
                .into(),
        ));
    }
    let syntax = Syntax::of(&transfer_syntax)?;
    let first_tag = if syntax.big_endian {
        // Read as little endian above: swap each half.
        u32::from(((first_tag >> 16) as u16).swap_bytes()) << 16
            | u32::from((first_tag as u16).swap_bytes())
    } else {
        first_tag
    };

    let mut writer = Part10Writer::new(output, syntax);
    let new_instance = profile
        .sop_instance_uid
        .or(instance_uid.as_deref())
        .map(|uid| replacement_uid(profile.key, uid))
        .unwrap_or_default();
    writer.file_meta(&[
        (0x0002_0001, VR::OB, vec![0, 1]),
        (
            0x0002_0002,
            VR::UI,
            padded(class_uid.as_deref().unwrap_or_default(), VR::UI),
        ),
        (0x0002_0003, VR::UI, padded(&new_instance, VR::UI)),
        (0x0002_0010, VR::UI, padded(&transfer_syntax, VR::UI)),
        (
            0x0002_0012,
            VR::UI,
            padded(IMPLEMENTATION_CLASS_UID, VR::UI),
        ),
        (
            0x0002_0013,
            VR::SH,
            padded(IMPLEMENTATION_VERSION_NAME, VR::SH),
        ),
    ])?;

    let inserts = top_level_inserts(profile, syntax)?;
    let mut engine = Engine {
        reader,
        writer,
        profile,
        capture,
        inserts,
        next_insert: 0,
        seen_pixels: false,
        walked: Walked {
            captured: Vec::new(),
            syntax: Some(syntax),
            burned_in_annotation: false,
            native_pixel_bytes: None,
        },
        growth: 0,
        jpeg_frames: JPEG_PROCESS_SYNTAXES.contains(&transfer_syntax.as_str()),
        number_of_frames: 1,
    };
    engine.top_level(syntax, first_tag)?;
    engine.writer.raw().flush()?;
    Ok(engine.walked)
}

/// The elements the top level gets (replacing the file's own), ascending by tag, encoded.
fn top_level_inserts(
    profile: &Profile<'_>,
    syntax: Syntax,
) -> std::io::Result<Vec<(u32, Vec<u8>)>> {
    let subject = profile.subject_id.unwrap_or_default();
    let mut out = Vec::new();
    let mut encode =
        |tag: u32, f: &dyn Fn(&mut Part10Writer<&mut Vec<u8>>) -> std::io::Result<()>| {
            let mut bytes = Vec::new();
            f(&mut Part10Writer::new(&mut bytes, syntax))?;
            out.push((tag, bytes));
            Ok::<_, std::io::Error>(())
        };
    encode(0x0010_0010, &|w| {
        w.element(0x0010_0010, VR::PN, &padded(subject, VR::PN))
    })?;
    encode(0x0010_0020, &|w| {
        w.element(0x0010_0020, VR::LO, &padded(subject, VR::LO))
    })?;
    encode(0x0012_0062, &|w| {
        w.element(0x0012_0062, VR::CS, &padded("YES", VR::CS))
    })?;
    encode(0x0012_0063, &|w| {
        w.element(0x0012_0063, VR::LO, &padded(&method().join("\\"), VR::LO))
    })?;
    // De-identification Method Code Sequence (PS3.16 CID 7050).
    encode(0x0012_0064, &|w| {
        w.header(0x0012_0064, VR::SQ, UNDEFINED_LENGTH)?;
        for (code, meaning) in [
            ("113100", "Basic Application Confidentiality Profile"),
            (
                "113107",
                "Retain Longitudinal Temporal Information Modified Dates Option",
            ),
        ] {
            w.item(ITEM, UNDEFINED_LENGTH)?;
            w.element(0x0008_0100, VR::SH, &padded(code, VR::SH))?;
            w.element(0x0008_0102, VR::SH, &padded("DCM", VR::SH))?;
            w.element(0x0008_0104, VR::LO, &padded(meaning, VR::LO))?;
            w.item(ITEM_DELIMITER, 0)?;
        }
        w.item(SEQUENCE_DELIMITER, 0)
    })?;
    encode(0x0028_0303, &|w| {
        w.element(0x0028_0303, VR::CS, &padded("MODIFIED", VR::CS))
    })?;
    Ok(out)
}

/// What happens to one element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Keep,
    Remove,
    Empty,
    Dummy,
    ReplaceUids,
    ShiftDates,
}

/// Where an element's value is: still in the stream, or already read (a captured element).
enum Source {
    Stream,
    Memory(Vec<u8>),
}

struct Engine<'a, R, W> {
    reader: Part10Reader<R>,
    writer: Part10Writer<W>,
    profile: &'a Profile<'a>,
    capture: &'a [u32],
    inserts: Vec<(u32, Vec<u8>)>,
    next_insert: usize,
    seen_pixels: bool,
    walked: Walked,
    /// Bytes replaced values added so far.
    growth: i64,
    /// The transfer syntax is a JPEG process (T.81): encapsulated frames are walked.
    jpeg_frames: bool,
    /// Number of Frames (0028,0008), 1 when absent.
    number_of_frames: u32,
}

/// The largest JPEG frame of an encapsulated DICOM (held in memory while it is walked).
const MAX_JPEG_FRAME_BYTES: usize = 64 << 20;

/// A buffer that refuses to grow beyond [`MAX_JPEG_FRAME_BYTES`].
struct LimitedBuffer(Vec<u8>);

impl Write for LimitedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_JPEG_FRAME_BYTES {
            return Err(std::io::Error::other("a JPEG frame is larger than 64 MiB"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// JPEG processes whose frames are ITU-T T.81 images: baseline, extended, lossless (PS3.5
/// A.4.1).
const JPEG_PROCESS_SYNTAXES: [&str; 4] = [
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
];
/// Number of Frames (0028,0008).
const NUMBER_OF_FRAMES: u32 = 0x0028_0008;
/// Extended Offset Table (7FE0,0001) and its Lengths (7FE0,0002): wrong once frames change.
const EXTENDED_OFFSET_TABLE: [u32; 2] = [0x7FE0_0001, 0x7FE0_0002];

impl<R: Read, W: Write> Engine<'_, R, W> {
    fn top_level(&mut self, syntax: Syntax, first_tag: u32) -> Result<(), Part10Error> {
        let mut tag = Some(first_tag);
        let mut previous = None;
        while let Some(current) = tag {
            // The element began 4 bytes back (its tag is read).
            self.check_header_bound(self.reader.position() - 4)?;
            in_order(&mut previous, current)?;
            if current >> 16 == 0xFFFE {
                return Err(Part10Error::Corrupt(
                    "an item or delimiter outside any sequence".into(),
                ));
            }
            let header = self.reader.header_after(current, syntax)?;
            // Inserted elements go where their tag belongs; one the file has is replaced.
            self.flush_inserts(|t| t < current)?;
            if self
                .inserts
                .get(self.next_insert)
                .is_some_and(|(t, _)| *t == current)
            {
                self.flush_inserts(|t| t <= current)?;
                match self.captures(&header, syntax)? {
                    true => {
                        let value = self.interpreted_value(&header)?;
                        self.walked
                            .captured
                            .push((header.tag, header.vr.unwrap_or(VR::UN), value));
                    }
                    false => self.skip_element(header, syntax, 0)?,
                }
            } else {
                self.element(header, syntax, 0, true)?;
            }
            tag = self.reader.tag(syntax)?;
        }
        self.flush_inserts(|_| true)?;
        if !self.seen_pixels {
            return Err(Part10Error::NotAnImage);
        }
        Ok(())
    }

    fn flush_inserts(&mut self, before: impl Fn(u32) -> bool) -> Result<(), Part10Error> {
        while let Some((tag, bytes)) = self.inserts.get(self.next_insert) {
            if !before(*tag) {
                break;
            }
            self.writer.raw().write_all(bytes)?;
            self.next_insert += 1;
        }
        Ok(())
    }

    /// The element starting at `start` must start within the header bound, unless Pixel Data
    /// has been seen.
    fn check_header_bound(&self, start: u64) -> Result<(), Part10Error> {
        if !self.seen_pixels && start > self.profile.max_header_bytes {
            return Err(Part10Error::HeaderTooLarge(self.profile.max_header_bytes));
        }
        Ok(())
    }

    /// A value the engine interprets, read into memory: at most [`MAX_INTERPRETED_BYTES`].
    fn interpreted_value(&mut self, header: &Header) -> Result<Vec<u8>, Part10Error> {
        if u64::from(header.length) > MAX_INTERPRETED_BYTES {
            return Err(Part10Error::Corrupt(format!(
                "({:04X},{:04X}) is longer than {} bytes",
                header.group(),
                header.element(),
                MAX_INTERPRETED_BYTES
            )));
        }
        self.reader.value(header.length, MAX_INTERPRETED_BYTES)
    }

    /// Whether a top-level element is one the caller asked to capture (a single value).
    fn captures(&self, header: &Header, syntax: Syntax) -> Result<bool, Part10Error> {
        Ok(self.capture.contains(&header.tag)
            && header.length != UNDEFINED_LENGTH
            && Self::items_syntax(header, syntax)?.is_none())
    }

    /// Whether the reader stands at `end`, the end of a defined-length item or sequence
    /// (`None`: undefined length, ended by a delimiter); `overrun` when it has passed it.
    fn reached(&self, end: Option<u64>, overrun: &str) -> Result<bool, Part10Error> {
        match end.map(|end| self.reader.position().cmp(&end)) {
            Some(std::cmp::Ordering::Equal) => Ok(true),
            Some(std::cmp::Ordering::Greater) => Err(Part10Error::Corrupt(overrun.into())),
            _ => Ok(false),
        }
    }

    /// The elements of one item, up to `end` (defined length) or its delimitation item.
    fn item(
        &mut self,
        syntax: Syntax,
        depth: u32,
        end: Option<u64>,
        emit: bool,
    ) -> Result<(), Part10Error> {
        loop {
            if self.reached(end, "an element runs past the end of its item")? {
                return Ok(());
            }
            self.check_header_bound(self.reader.position())?;
            let Some(tag) = self.reader.tag(syntax)? else {
                return Err(Part10Error::Corrupt(
                    "the file ends inside a sequence item".into(),
                ));
            };
            let header = self.reader.header_after(tag, syntax)?;
            if tag == ITEM_DELIMITER && end.is_none() {
                return Ok(());
            }
            if tag >> 16 == 0xFFFE {
                return Err(Part10Error::Corrupt(format!(
                    "an unexpected item tag (FFFE,{:04X}) inside an item",
                    tag & 0xFFFF
                )));
            }
            self.element(header, syntax, depth, emit)?;
        }
    }

    /// The syntax a sequence's items are read in: an explicit-VR `UN` sequence holds implicit
    /// VR little endian items (PS3.5 6.2.2).
    fn items_syntax(header: &Header, syntax: Syntax) -> Result<Option<Syntax>, Part10Error> {
        let undefined = header.length == UNDEFINED_LENGTH;
        if header.is_sequence() {
            return Ok(Some(syntax));
        }
        // A UN of undefined length is a sequence; so is a UN whose tag the dictionary knows
        // as one (its items were written by someone who did not know the tag).
        let un_sequence = undefined || dictionary_vr(header.tag) == VR::SQ;
        if syntax.explicit && header.vr == Some(VR::UN) && un_sequence {
            if syntax.big_endian {
                return Err(Part10Error::Corrupt(
                    "an undefined-length UN attribute in a big endian file".into(),
                ));
            }
            return Ok(Some(Syntax::IMPLICIT_LITTLE));
        }
        if !syntax.explicit && undefined && !PIXEL_DATA_TAGS.contains(&header.tag) {
            return Ok(Some(syntax));
        }
        Ok(None)
    }

    fn element(
        &mut self,
        header: Header,
        syntax: Syntax,
        depth: u32,
        emit: bool,
    ) -> Result<(), Part10Error> {
        if PIXEL_DATA_TAGS.contains(&header.tag) {
            if depth == 0 {
                self.seen_pixels = true;
                if header.tag == 0x7FE0_0010 && header.length != UNDEFINED_LENGTH {
                    self.walked.native_pixel_bytes = Some(u64::from(header.length));
                }
            }
            return self.pixels(header, syntax, emit);
        }
        if !emit {
            return self.skip_element(header, syntax, depth);
        }
        let items = Self::items_syntax(&header, syntax)?;
        let source = if depth == 0 && self.captures(&header, syntax)? {
            let value = self.interpreted_value(&header)?;
            self.walked
                .captured
                .push((header.tag, header.vr.unwrap_or(VR::UN), value.clone()));
            Source::Memory(value)
        } else if (header.tag == BURNED_IN_ANNOTATION || header.tag == NUMBER_OF_FRAMES)
            && items.is_none()
        {
            Source::Memory(self.interpreted_value(&header)?)
        } else {
            Source::Stream
        };
        if let (BURNED_IN_ANNOTATION, Source::Memory(value)) = (header.tag, &source) {
            let yes = String::from_utf8_lossy(value)
                .split('\\')
                .any(|v| v.trim_matches(['\0', ' ']).eq_ignore_ascii_case("YES"));
            self.walked.burned_in_annotation |= yes;
        }
        if let (NUMBER_OF_FRAMES, 0, Source::Memory(value)) = (header.tag, depth, &source) {
            let text = String::from_utf8_lossy(value);
            self.number_of_frames = text
                .trim_matches(['\0', ' '])
                .parse()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    Part10Error::Corrupt(format!("Number of Frames (0028,0008) is {text:?}"))
                })?;
        }
        if self.jpeg_frames && EXTENDED_OFFSET_TABLE.contains(&header.tag) {
            return self.skip_value(header, syntax, depth, source);
        }
        let vr = effective_vr(&header);
        match (decide(&header, items.is_some()), items) {
            (Decision::Remove, _) => self.skip_value(header, syntax, depth, source),
            (Decision::Keep, Some(inner)) => {
                self.writer.header(header.tag, VR::SQ, UNDEFINED_LENGTH)?;
                self.sequence(header, inner, depth, true)?;
                self.writer.item(SEQUENCE_DELIMITER, 0)?;
                Ok(())
            }
            (Decision::Empty | Decision::Dummy, Some(_)) => {
                self.writer.header(header.tag, VR::SQ, 0)?;
                self.skip_value(header, syntax, depth, source)
            }
            (_, Some(_)) => Err(Part10Error::Corrupt(
                "a sequence with a value action".into(),
            )),
            (Decision::Keep, None) => {
                if header.length == UNDEFINED_LENGTH {
                    return Err(Part10Error::Corrupt(format!(
                        "({:04X},{:04X}) has undefined length but is no sequence",
                        header.group(),
                        header.element()
                    )));
                }
                // Copied as it is, under the VR it came with.
                let written = header.vr.unwrap_or(VR::UN);
                self.writer.header(header.tag, written, header.length)?;
                match source {
                    Source::Memory(value) => self.writer.raw().write_all(&value)?,
                    Source::Stream => self
                        .reader
                        .copy(u64::from(header.length), self.writer.raw())?,
                }
                Ok(())
            }
            (Decision::Empty, None) => {
                self.writer.header(header.tag, vr, 0)?;
                self.skip_value(header, syntax, depth, source)
            }
            (Decision::Dummy, None) => {
                let dummy = dummy_value(vr);
                self.writer.element(header.tag, vr, &dummy)?;
                self.skip_value(header, syntax, depth, source)
            }
            (Decision::ReplaceUids | Decision::ShiftDates, None) => {
                let value = match source {
                    Source::Memory(value) => value,
                    Source::Stream => self.interpreted_value(&header)?,
                };
                let text = String::from_utf8_lossy(&value);
                let values = text.trim_end_matches(['\0', ' ']).split('\\');
                let replaced: Vec<String> = match vr {
                    VR::UI => values
                        .map(|uid| match uid.trim() {
                            "" => String::new(),
                            uid => replacement_uid(self.profile.key, uid),
                        })
                        .collect(),
                    VR::DA => values
                        .map(|d| shift_date(d.trim(), self.profile.shift_days))
                        .collect(),
                    _ => values
                        .map(|dt| shift_date_time(dt.trim(), self.profile.shift_days))
                        .collect(),
                };
                let replaced = padded(&replaced.join("\\"), vr);
                self.growth += replaced.len() as i64 - value.len() as i64;
                if self.growth > MAX_GROWTH_BYTES || replaced.len() > usize::from(u16::MAX) {
                    return Err(Part10Error::Corrupt(format!(
                        "({:04X},{:04X}) holds more UIDs or dates than can be replaced",
                        header.group(),
                        header.element()
                    )));
                }
                self.writer.element(header.tag, vr, &replaced)?;
                Ok(())
            }
        }
    }

    fn skip_value(
        &mut self,
        header: Header,
        syntax: Syntax,
        depth: u32,
        source: Source,
    ) -> Result<(), Part10Error> {
        match source {
            Source::Memory(_) => Ok(()),
            Source::Stream => self.skip_element(header, syntax, depth),
        }
    }

    /// Reads past an element's value, walking a sequence's structure (nothing is written).
    fn skip_element(
        &mut self,
        header: Header,
        syntax: Syntax,
        depth: u32,
    ) -> Result<(), Part10Error> {
        if PIXEL_DATA_TAGS.contains(&header.tag) {
            return self.pixels(header, syntax, false);
        }
        if let Some(inner) = Self::items_syntax(&header, syntax)? {
            return self.sequence(header, inner, depth, false);
        }
        if header.length == UNDEFINED_LENGTH {
            return Err(Part10Error::Corrupt(format!(
                "({:04X},{:04X}) has undefined length but is no sequence",
                header.group(),
                header.element()
            )));
        }
        self.reader.skip(u64::from(header.length))
    }

    /// A sequence's items (the sequence header is written by the caller).
    fn sequence(
        &mut self,
        header: Header,
        syntax: Syntax,
        depth: u32,
        emit: bool,
    ) -> Result<(), Part10Error> {
        if depth + 1 > MAX_DEPTH {
            return Err(Part10Error::Corrupt(format!(
                "sequences are nested deeper than {MAX_DEPTH} levels"
            )));
        }
        let end = (header.length != UNDEFINED_LENGTH)
            .then(|| self.reader.position() + u64::from(header.length));
        loop {
            if self.reached(end, "an item runs past the end of its sequence")? {
                return Ok(());
            }
            let Some(tag) = self.reader.tag(syntax)? else {
                return Err(Part10Error::Corrupt(
                    "the file ends inside a sequence".into(),
                ));
            };
            let item = self.reader.header_after(tag, syntax)?;
            match tag {
                SEQUENCE_DELIMITER if end.is_none() => return Ok(()),
                ITEM => {
                    let item_end = (item.length != UNDEFINED_LENGTH)
                        .then(|| self.reader.position() + u64::from(item.length));
                    if emit {
                        self.writer.item(ITEM, UNDEFINED_LENGTH)?;
                    }
                    self.item(syntax, depth + 1, item_end, emit)?;
                    if emit {
                        self.writer.item(ITEM_DELIMITER, 0)?;
                    }
                }
                _ => {
                    return Err(Part10Error::Corrupt(format!(
                        "({:04X},{:04X}) where a sequence item must be",
                        tag >> 16,
                        tag & 0xFFFF
                    )))
                }
            }
        }
    }

    /// Encapsulated JPEG (ITU-T T.81) frames: their fragments read as one stream, each of the
    /// Number of Frames images walked by the JPEG allow-list ([`super::deidentify::jpeg_stream`],
    /// so no APPn, COM or appended data rides along in the pixels) and written as one fragment
    /// of its own, after an empty Basic Offset Table (PS3.5 A.4). Whatever follows the last
    /// frame is dropped.
    fn jpeg_fragments(&mut self, header: Header, syntax: Syntax) -> Result<(), Part10Error> {
        self.writer.header(header.tag, VR::OB, UNDEFINED_LENGTH)?;
        // The Basic Offset Table (first item): offsets change, so it is written empty.
        match self.reader.header(syntax)? {
            Some(table) if table.tag == ITEM && table.length != UNDEFINED_LENGTH => {
                self.reader.skip(u64::from(table.length))?
            }
            _ => {
                return Err(Part10Error::Corrupt(
                    "encapsulated Pixel Data does not start with its offset table".into(),
                ))
            }
        }
        self.writer.item(ITEM, 0)?;
        let mut fragments = std::io::BufReader::with_capacity(
            64 << 10,
            Fragments {
                reader: &mut self.reader,
                syntax,
                left_in_item: 0,
                done: false,
            },
        );
        for frame in 0..self.number_of_frames {
            let mut image = LimitedBuffer(Vec::new());
            super::deidentify::jpeg_stream(&mut fragments, &mut image).map_err(|e| {
                Part10Error::Corrupt(format!(
                    "frame {} of the encapsulated Pixel Data: {e}",
                    frame + 1
                ))
            })?;
            let mut image = image.0;
            if image.len() % 2 == 1 {
                image.push(0); // fragments have even length (PS3.5 A.4)
            }
            let length = u32::try_from(image.len())
                .map_err(|_| Part10Error::Corrupt("a JPEG frame is too long".into()))?;
            self.writer.item(ITEM, length)?;
            self.writer.raw().write_all(&image)?;
        }
        std::io::copy(&mut fragments, &mut std::io::sink())?;
        self.writer.item(SEQUENCE_DELIMITER, 0)?;
        Ok(())
    }

    /// Pixel Data: a defined-length value copied (or skipped) in blocks, or encapsulated
    /// fragments (PS3.5 A.4), each an item of defined length, up to the sequence delimiter.
    fn pixels(&mut self, header: Header, syntax: Syntax, emit: bool) -> Result<(), Part10Error> {
        if emit && self.jpeg_frames && header.length == UNDEFINED_LENGTH {
            return self.jpeg_fragments(header, syntax);
        }
        let vr = header.vr.unwrap_or(VR::OW);
        if header.length != UNDEFINED_LENGTH {
            if emit {
                self.writer.header(header.tag, vr, header.length)?;
                self.reader
                    .copy(u64::from(header.length), self.writer.raw())?;
            } else {
                self.reader.skip(u64::from(header.length))?;
            }
            return Ok(());
        }
        if emit {
            self.writer.header(header.tag, VR::OB, UNDEFINED_LENGTH)?;
        }
        loop {
            let Some(tag) = self.reader.tag(syntax)? else {
                return Err(Part10Error::Corrupt(
                    "the file ends inside Pixel Data".into(),
                ));
            };
            let item = self.reader.header_after(tag, syntax)?;
            match tag {
                ITEM if item.length != UNDEFINED_LENGTH => {
                    if emit {
                        self.writer.item(ITEM, item.length)?;
                        self.reader
                            .copy(u64::from(item.length), self.writer.raw())?;
                    } else {
                        self.reader.skip(u64::from(item.length))?;
                    }
                }
                SEQUENCE_DELIMITER => {
                    if emit {
                        self.writer.item(SEQUENCE_DELIMITER, 0)?;
                    }
                    return Ok(());
                }
                _ => {
                    return Err(Part10Error::Corrupt(
                        "encapsulated Pixel Data holds something other than fragments".into(),
                    ))
                }
            }
        }
    }
}

/// The VR an element's value is judged by: its own, or for an explicit `UN` (a tag its
/// writer did not know) the data dictionary's, since the value bytes are the same.
fn effective_vr(header: &Header) -> VR {
    match header.vr {
        Some(VR::UN) | None => match dictionary_vr(header.tag) {
            VR::SQ => VR::UN,
            known => known,
        },
        Some(vr) => vr,
    }
}

/// Attributes of the top-level data set ascend by tag, each once (PS3.5 7.1): a repeated or
/// misplaced one is refused (which of two values would a reader believe, and where would the
/// inserted attributes go?). Inside sequence items every element is judged on its own, so
/// order does not matter there and is not enforced.
fn in_order(previous: &mut Option<u32>, tag: u32) -> Result<(), Part10Error> {
    if previous.is_some_and(|p| tag <= p) {
        return Err(Part10Error::Corrupt(format!(
            "({:04X},{:04X}) is out of order or repeated (attributes must ascend by tag, PS3.5 7.1)",
            tag >> 16,
            tag & 0xFFFF
        )));
    }
    *previous = Some(tag);
    Ok(())
}

/// The bytes of encapsulated fragments one after the other (their item headers read on the
/// way), up to the sequence delimiter: the stream of JPEG images a frame may span fragments of.
struct Fragments<'a, R> {
    reader: &'a mut Part10Reader<R>,
    syntax: Syntax,
    left_in_item: u64,
    done: bool,
}

impl<R: Read> Read for Fragments<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.left_in_item == 0 {
            if self.done {
                return Ok(0);
            }
            let next = self
                .reader
                .header(self.syntax)
                .map_err(std::io::Error::other)?;
            match next {
                Some(item) if item.tag == ITEM && item.length != UNDEFINED_LENGTH => {
                    self.left_in_item = u64::from(item.length);
                }
                Some(item) if item.tag == SEQUENCE_DELIMITER => self.done = true,
                _ => {
                    return Err(std::io::Error::other(
                        "encapsulated Pixel Data holds something other than fragments",
                    ))
                }
            }
        }
        let n = buf.len().min(self.left_in_item as usize);
        self.reader
            .fill(&mut buf[..n])
            .map_err(std::io::Error::other)?;
        self.left_in_item -= n as u64;
        Ok(n)
    }
}

/// The table's action for one element, resolved (see the module documentation).
fn decide(header: &Header, is_sequence: bool) -> Decision {
    let (group, element) = (header.group(), header.element());
    if group % 2 == 1 {
        // Private attributes and their creators: the table's row for them says X.
        debug_assert_eq!(PRIVATE, Action::X);
        return Decision::Remove;
    }
    if element == 0 || group == 0x0000 || group == 0x0002 || header.tag == 0xFFFC_FFFC {
        // Group lengths (retired, and wrong once attributes go), command attributes (PS3.7,
        // never part of a stored object) and file meta attributes misplaced in the data set,
        // Data Set Trailing Padding.
        return Decision::Remove;
    }
    let vr = effective_vr(header);
    let Some(rule) = rule(header.tag) else {
        return Decision::Keep;
    };
    if rule.modified_dates && !is_sequence {
        match vr {
            VR::DA | VR::DT => return Decision::ShiftDates,
            VR::TM => return Decision::Keep,
            _ => {}
        }
    }
    match rule.basic {
        Action::X | Action::XZ | Action::XD | Action::XZD => Decision::Remove,
        Action::Z | Action::ZD => Decision::Empty,
        Action::D if vr == VR::UI => Decision::ReplaceUids,
        Action::D => Decision::Dummy,
        Action::U if vr == VR::UI => Decision::ReplaceUids,
        Action::U => Decision::Remove,
        Action::XZU if is_sequence => Decision::Keep,
        Action::XZU if vr == VR::UI => Decision::ReplaceUids,
        Action::XZU => Decision::Remove,
    }
}

/// A fixed, non-empty dummy value of `vr` (PS3.15 E.3.1 `D`), even length; binary ones are
/// zeros, which read the same in either byte order.
fn dummy_value(vr: VR) -> Vec<u8> {
    let text = |t: &str| padded(t, vr);
    let zeros = |n: usize| vec![0u8; n];
    match vr {
        VR::AE | VR::CS | VR::LO | VR::LT | VR::PN | VR::SH | VR::ST | VR::UC | VR::UT => {
            text("ANONYMIZED")
        }
        VR::AS => text("000Y"),
        VR::DA => text("19000101"),
        VR::DT => text("19000101000000"),
        VR::TM => text("000000"),
        VR::DS | VR::IS => text("0"),
        VR::UR => text("urn:x-anonymized"),
        VR::UI => text("2.25.0"),
        VR::US | VR::SS => zeros(2),
        VR::UL | VR::SL | VR::FL | VR::AT | VR::OF | VR::OL => zeros(4),
        VR::FD | VR::SV | VR::UV | VR::OD | VR::OV => zeros(8),
        _ => zeros(2),
    }
}

/// A DA value (`YYYYMMDD`) moved back `days`; empty when it is not a calendar date.
fn shift_date(value: &str, days: u32) -> String {
    if value.len() != 8 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return String::new();
    }
    chrono::NaiveDate::parse_from_str(value, "%Y%m%d")
        .ok()
        .and_then(|d| d.checked_sub_days(chrono::Days::new(u64::from(days))))
        .map(|d| d.format("%Y%m%d").to_string())
        .filter(|d| d.len() == 8)
        .unwrap_or_default()
}

/// Whether `rest` is what a DT value may hold after its date (PS3.5 Table 6.2-1): `HH`,
/// `HHMM`, `HHMMSS` or `HHMMSS.F` to `.FFFFFF`, then optionally `+ZZXX` or `-ZZXX`.
fn is_time_and_offset(rest: &str) -> bool {
    let (time, offset) = match rest.find(['+', '-']) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let (whole, fraction) = match time.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (time, None),
    };
    let digits = |v: &str| v.bytes().all(|b| b.is_ascii_digit());
    digits(whole)
        && [0, 2, 4, 6].contains(&whole.len())
        && fraction.is_none_or(|f| whole.len() == 6 && (1..=6).contains(&f.len()) && digits(f))
        && offset.is_none_or(|o| o.len() == 4 && digits(o))
}

/// A DT value (`YYYYMMDDHHMMSS.FFFFFF&ZZXX`) with its date moved back `days` and the time of
/// day and offset kept; empty when it holds no whole date (`YYYY` or `YYYYMM` alone).
fn shift_date_time(value: &str, days: u32) -> String {
    match (value.get(..8), value.get(8..)) {
        (Some(date), Some(rest)) if is_time_and_offset(rest) => {
            let shifted = shift_date(date, days);
            if shifted.is_empty() {
                String::new()
            } else {
                shifted + rest
            }
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_finds_single_and_repeating_tags() {
        assert!(EXACT.windows(2).all(|w| w[0].tag < w[1].tag));
        assert_eq!(rule(0x0010_0010).map(|r| r.basic), Some(Action::Z));
        assert_eq!(rule(0x0008_0018).map(|r| r.basic), Some(Action::U));
        assert_eq!(
            rule(0x5012_3000).map(|r| r.basic),
            Some(Action::X),
            "curve data"
        );
        assert_eq!(
            rule(0x6002_3000).map(|r| r.basic),
            Some(Action::X),
            "overlay data"
        );
        assert!(rule(0x6002_0010).is_none(), "overlay rows are kept");
        assert!(rule(0x0028_0010).is_none(), "Rows is not in the table");
    }

    #[test]
    fn method_values_fit_lo() {
        let method = method();
        assert!(method.iter().all(|m| m.len() <= 64 && !m.contains('\\')));
        assert!(method[0].contains("2024b"));
        assert!(method[2].ends_with(&PROFILE_VERSION.to_string()));
        assert!(IMPLEMENTATION_VERSION_NAME.len() <= 16);
        assert!(IMPLEMENTATION_VERSION_NAME.ends_with(&PROFILE_VERSION.to_string()));
    }

    #[test]
    fn uids_and_dates_follow_their_formulas() {
        let key = PseudonymKey::new(vec![7u8; 32]).unwrap();
        let uid = replacement_uid(&key, "1.2.3.4\0");
        assert_eq!(uid, replacement_uid(&key, "1.2.3.4"));
        let mac = key.mac(b"1.2.3.4");
        let expected = u128::from_be_bytes(mac[..16].try_into().unwrap());
        assert_eq!(uid, format!("2.25.{expected}"));
        assert!(uid.len() <= 64);
        let days = shift_days(&key, "S-AAAAAAAAAAAAAAAA");
        assert!((1..=3650).contains(&days));
        assert_eq!(shift_date("20240301", 1), "20240229");
        assert_eq!(shift_date("20240230", 1), "", "no such date");
        assert_eq!(shift_date("2024", 1), "");
        assert_eq!(
            shift_date_time("20240301103000.5+0100", 1),
            "20240229103000.5+0100"
        );
        assert_eq!(shift_date_time("202403", 1), "");
    }
}
