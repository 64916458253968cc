//! Dataset exports (API.md "Datasets: frozen, reproducible exports for machine learning"): a
//! ZIP archive written as a stream (`zip`'s stream writer: local headers with data
//! descriptors, no seeking), so it can go straight into an HTTP response or a file.
//!
//! - **Frozen.** Everything comes from the dataset's own tables (`models::datasets`) and from
//!   what never changes after upload (the image's file, size, subject, study, modality).
//! - **The same bytes every time.** Entries are written in a fixed order (images by internal
//!   id, annotations by id), every entry has the dataset's `created_at` as its time, Unix as
//!   its system and mode 0644; numbers are printed the same way on every run; nothing random
//!   is written. Images are the researcher's de-identified copies, a pure function of the
//!   original and the pseudonym key.
//! - **Memory does not grow with the dataset.** Images are read a page at a time and their
//!   bytes streamed through; the one thing kept per file, its SHA-256 for `dataset.json`, is
//!   spooled to a temporary file. (The ZIP central directory, written at the end, holds one
//!   short record per entry inside `zip`.) A DICOM rendered for COCO or YOLO is read again
//!   only up to the end of its frame 0 (`imaging::render::render_first_frame_from`), so a
//!   long multi-frame file costs one frame, and one frame is decoded at a time per instance
//!   however many exports run.
//! - **One image that cannot be rendered does not stop the export.** A DICOM whose frame 0
//!   cannot be rendered (a transfer syntax without a decoder here, such as JPEG 2000, or a
//!   frame larger than `imaging::render::MAX_FRAME_BYTES`) keeps its de-identified copy in `images/`, is left
//!   out of the COCO and YOLO files (they would name a file that is not there), and is listed
//!   with the reason in `dataset.json` under `not_rendered`.
//! - **Stops with its reader.** Writing runs on a blocking thread; when the writer it was
//!   given fails (a client disconnected), the export returns at its next write.
//!
//! Layout: `images/<image id>.<png|jpg|dcm>` (and `images/<image id>.png` rendered from a
//! DICOM for COCO and YOLO), then the format's files ([`formats`]), then `dataset.json`.

mod formats;

use std::io::{self, BufRead, BufWriter, Read, Seek, Write};
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::ObjectStoreExt as _;
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::db::Db;
use crate::imaging::ImageKind;
use crate::models::datasets::{self, Dataset, FrozenImage, FrozenLabel};
use crate::pseudonym::PseudonymKey;
use crate::state::AppState;
use crate::storage::deidentified::{deidentified_copy, CopySource};
use crate::storage::Storage;
use crate::views::datasets::DatasetResponse;

/// Held while a DICOM frame is decoded and rendered (see `image_files`).
static RENDERING: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

/// Images read from the database per query.
const PAGE: i64 = 500;

/// The formats training code reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Coco,
    Yolo,
    Csv,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Coco => "coco",
            Format::Yolo => "yolo",
            Format::Csv => "csv",
        }
    }

    pub fn from_name(name: &str) -> Option<Format> {
        [Format::Coco, Format::Yolo, Format::Csv]
            .into_iter()
            .find(|f| f.name() == name)
    }

    /// Whether the format's readers need pixels: DICOM is rendered to PNG for them.
    fn needs_pixels(self) -> bool {
        matches!(self, Format::Coco | Format::Yolo)
    }
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The writer failed: for an HTTP export, the client went away.
    #[error("writing the archive failed: {0}")]
    Io(#[from] io::Error),
    #[error("the archive could not be written: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("the database failed: {0}")]
    Database(String),
    #[error("image {image}: {message}")]
    Image { image: String, message: String },
}

impl From<diesel::result::Error> for ExportError {
    fn from(err: diesel::result::Error) -> Self {
        ExportError::Database(err.to_string())
    }
}

/// What an export reads: the database, the object store, the pseudonym key (the
/// de-identified copies) and the runtime the store's futures run on.
#[derive(Clone)]
pub struct Exporter {
    db: Db,
    storage: Storage,
    key: Arc<PseudonymKey>,
    max_dicom_header_bytes: u64,
    runtime: tokio::runtime::Handle,
}

impl Exporter {
    /// An exporter over the state's database and store; `runtime` drives the store (the
    /// caller's runtime; its thread must keep running while the export does).
    pub fn new(state: &AppState, runtime: tokio::runtime::Handle) -> Self {
        Exporter {
            db: state.db.clone(),
            storage: state.storage.clone(),
            key: state.pseudonym_key.clone(),
            max_dicom_header_bytes: state.settings.max_dicom_header_bytes,
            runtime,
        }
    }

    /// Writes the archive of `dataset` (answered as `response`) in `format` to `out`, calling
    /// `progress` after each image's files. Blocking: run it on a blocking thread. Returns
    /// `out` after the archive's last byte.
    pub fn write<W: Write>(
        &self,
        dataset: &Dataset,
        response: &DatasetResponse,
        format: Format,
        out: W,
        progress: &mut dyn FnMut(),
    ) -> Result<W, ExportError> {
        let labels = self.with_db(|conn| datasets::labels_of(conn, &[dataset.id]))?;
        let labels = labels.get(&dataset.id).cloned().unwrap_or_default();
        let mut archive = Archive::new(out, dataset)?;
        let mut not_rendered = std::collections::BTreeMap::new();
        self.each_page(dataset, |page| {
            for image in page {
                if let Some(reason) = self.image_files(&mut archive, image, format)? {
                    tracing::warn!(image = %image.uuid, reason, "a DICOM of an export is not rendered");
                    not_rendered.insert(image.id, (image.uuid.clone(), reason));
                }
                progress();
            }
            Ok(())
        })?;
        let frozen = Frozen {
            exporter: self,
            dataset,
            labels: &labels,
            not_rendered: &not_rendered,
        };
        match format {
            Format::Coco => formats::coco(&frozen, &mut archive)?,
            Format::Yolo => formats::yolo(&frozen, &mut archive)?,
            Format::Csv => formats::csv(&frozen, &mut archive)?,
        }
        let not_rendered = not_rendered.into_values().collect();
        archive.finish(response, format, not_rendered)
    }

    fn with_db<T>(
        &self,
        f: impl FnOnce(&mut crate::db::DbConnection) -> diesel::QueryResult<T>,
    ) -> Result<T, ExportError> {
        let mut conn = self
            .db
            .get()
            .map_err(|e| ExportError::Database(format!("{e:#}")))?;
        Ok(f(&mut conn)?)
    }

    /// Calls `f` with each page of the dataset's images, in archive order.
    fn each_page(
        &self,
        dataset: &Dataset,
        mut f: impl FnMut(&[FrozenImage]) -> Result<(), ExportError>,
    ) -> Result<(), ExportError> {
        let mut after = 0;
        loop {
            let page = self.with_db(|conn| datasets::images_page(conn, dataset.id, after, PAGE))?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = last.id;
            f(&page)?;
            if (page.len() as i64) < PAGE {
                return Ok(());
            }
        }
    }

    /// The stored object at `location`, as a blocking reader of its bytes.
    fn open(&self, location: &object_store::path::Path) -> object_store::Result<StoreReader<'_>> {
        let stream = self
            .runtime
            .block_on(self.storage.store().get(location))?
            .into_stream();
        Ok(StoreReader {
            runtime: &self.runtime,
            stream,
            current: actix_web::web::Bytes::new(),
        })
    }

    /// `images/<id>.<ext>`: the de-identified copy, streamed from the store; for a DICOM in
    /// a format that needs pixels, also `images/<id>.png`. Returns why that PNG could not be
    /// made, if it could not.
    fn image_files<W: Write>(
        &self,
        archive: &mut Archive<W>,
        image: &FrozenImage,
        format: Format,
    ) -> Result<Option<String>, ExportError> {
        let failed = |message: String| ExportError::Image {
            image: image.uuid.clone(),
            message,
        };
        let kind = ImageKind::from_content_type(&image.content_type)
            .ok_or_else(|| failed(format!("unknown content type {}", image.content_type)))?;
        let source = CopySource::of(
            &image.object_key,
            kind,
            &image.uuid,
            image.subject_id.clone(),
            image.study_instance_uid.clone(),
            image.sop_instance_uid.clone(),
        );
        let copy = self
            .runtime
            .block_on(deidentified_copy(
                &self.storage,
                self.key.clone(),
                source,
                self.max_dicom_header_bytes,
            ))
            .map_err(|e| failed(e.to_string()))?;
        let mut stored = self
            .open(&copy.location)
            .map_err(|e| failed(e.to_string()))?;
        let path = format!("images/{}.{}", image.uuid, kind.extension());
        archive.entry(&path, Compression::Stored, copy.size, |out| {
            io::copy(&mut stored, out).map(drop)
        })?;
        if kind != ImageKind::Dicom || !format.needs_pixels() {
            return Ok(None);
        }
        // Read again, up to the end of frame 0.
        let copy = self
            .open(&copy.location)
            .map_err(|e| failed(e.to_string()))?;
        // One frame decoded at a time in this instance: concurrent exports of large frames
        // wait here instead of multiplying the memory a decode takes.
        let rendered = {
            let _one_at_a_time = RENDERING.lock();
            crate::imaging::render::render_first_frame_from(copy, self.max_dicom_header_bytes)
        };
        match rendered {
            Ok(rendered) => {
                let path = format!("images/{}.png", image.uuid);
                archive.entry(
                    &path,
                    Compression::Stored,
                    rendered.png.len() as u64,
                    |out| out.write_all(&rendered.png),
                )?;
                Ok(None)
            }
            Err(reason) => Ok(Some(format!("frame 0 cannot be rendered: {reason}"))),
        }
    }
}

/// A blocking reader of a stored object's byte stream (the export runs on a blocking thread).
struct StoreReader<'a> {
    runtime: &'a tokio::runtime::Handle,
    stream: futures_util::stream::BoxStream<'static, object_store::Result<actix_web::web::Bytes>>,
    current: actix_web::web::Bytes,
}

impl Read for StoreReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.runtime.block_on(self.stream.next()) {
                Some(chunk) => self.current = chunk.map_err(io::Error::other)?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// What the format writers read: the dataset's frozen images (a page at a time), their
/// diagnoses and annotations, and its labels in name order.
pub(crate) struct Frozen<'a> {
    exporter: &'a Exporter,
    dataset: &'a Dataset,
    labels: &'a [FrozenLabel],
    /// The images whose PNG could not be made (by internal id): not in COCO or YOLO files.
    not_rendered: &'a std::collections::BTreeMap<i64, (String, String)>,
}

impl Frozen<'_> {
    /// Calls `f` with each page of images, with their diagnoses (label ids) and annotations.
    fn each_page(
        &self,
        mut f: impl FnMut(
            &[FrozenImage],
            &Diagnoses,
            &[datasets::FrozenAnnotation],
        ) -> Result<(), ExportError>,
    ) -> Result<(), ExportError> {
        let dataset = self.dataset.id;
        self.exporter.each_page(self.dataset, |page| {
            let ids: Vec<i64> = page.iter().map(|i| i.id).collect();
            let (diagnoses, annotations) = self.exporter.with_db(|conn| {
                Ok((
                    datasets::diagnoses_of(conn, dataset, &ids)?,
                    datasets::annotations_of(conn, dataset, &ids)?,
                ))
            })?;
            f(page, &diagnoses, &annotations)
        })
    }

    /// Whether the format files list `image` (every image, but a DICOM not rendered).
    fn lists(&self, image: &FrozenImage) -> bool {
        !self.not_rendered.contains_key(&image.id)
    }

    /// The position of label `id` in name order (YOLO class index; COCO category id - 1).
    fn label_index(&self, id: i64) -> Option<usize> {
        self.labels.iter().position(|l| l.id == id)
    }
}

type Diagnoses = std::collections::HashMap<i64, Vec<i64>>;

/// How an entry is stored: images as they are (PNG, JPEG and most DICOM gain little from
/// deflate), text deflated.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Compression {
    Stored,
    Deflated,
}

/// The archive being written, and the SHA-256 of every entry (spooled to a temporary file
/// for `dataset.json`).
pub(crate) struct Archive<W: Write> {
    zip: ZipWriter<zip::write::StreamWriter<W>>,
    options: SimpleFileOptions,
    hashes: BufWriter<std::fs::File>,
}

impl<W: Write> Archive<W> {
    fn new(out: W, dataset: &Dataset) -> Result<Self, ExportError> {
        use chrono::{Datelike, Timelike};
        let at = dataset.created_at;
        let time = zip::DateTime::from_date_and_time(
            u16::try_from(at.year()).unwrap_or(1980),
            at.month() as u8,
            at.day() as u8,
            at.hour() as u8,
            at.minute() as u8,
            at.second() as u8,
        )
        .unwrap_or_default();
        let options = SimpleFileOptions::default()
            .last_modified_time(time)
            .system(zip::System::Unix)
            .unix_permissions(0o644);
        Ok(Archive {
            zip: ZipWriter::new_stream(out),
            options,
            hashes: BufWriter::new(tempfile::tempfile()?),
        })
    }

    /// Writes one entry: `body` writes its bytes (`size` of them, when known; it decides
    /// whether the entry needs ZIP64).
    pub(crate) fn entry(
        &mut self,
        path: &str,
        compression: Compression,
        size: u64,
        body: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), ExportError> {
        let method = match compression {
            Compression::Stored => CompressionMethod::Stored,
            Compression::Deflated => CompressionMethod::Deflated,
        };
        let options = self
            .options
            .compression_method(method)
            .large_file(size >= u64::from(u32::MAX));
        self.zip.start_file(path, options)?;
        let mut hashing = Hashing {
            inner: &mut self.zip,
            hasher: Sha256::new(),
        };
        body(&mut hashing)?;
        let sha = hex::encode(hashing.hasher.finalize());
        writeln!(self.hashes, "{path}\t{sha}")?;
        Ok(())
    }

    /// Writes `dataset.json` (the dataset, the format, when it was frozen, and the SHA-256 of
    /// every other entry) and the central directory; returns the writer.
    fn finish(
        mut self,
        response: &DatasetResponse,
        format: Format,
        not_rendered: Vec<(String, String)>,
    ) -> Result<W, ExportError> {
        let mut hashes = self.hashes.into_inner().map_err(|e| e.into_error())?;
        hashes.rewind()?;
        let options = self.options.compression_method(CompressionMethod::Deflated);
        self.zip.start_file("dataset.json", options)?;
        #[derive(serde::Serialize)]
        struct Head<'a> {
            dataset: &'a DatasetResponse,
            format: &'a str,
            frozen_at: String,
            /// Image id -> why its DICOM was not rendered (only when some were not).
            #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
            not_rendered: std::collections::BTreeMap<String, String>,
        }
        let head = Head {
            dataset: response,
            format: format.name(),
            frozen_at: crate::views::rfc3339_text(&response.created_at),
            not_rendered: not_rendered.into_iter().collect(),
        };
        let head = serde_json::to_string(&head).map_err(io::Error::other)?;
        // The object without its closing brace, then "files".
        self.zip.write_all(&head.as_bytes()[..head.len() - 1])?;
        self.zip.write_all(br#","files":{"#)?;
        for (i, line) in io::BufReader::new(hashes).lines().enumerate() {
            let line = line?;
            let (path, sha) = line.split_once('\t').unwrap_or((&line, ""));
            if i > 0 {
                self.zip.write_all(b",")?;
            }
            serde_json::to_writer(&mut self.zip, path).map_err(io::Error::other)?;
            write!(self.zip, ":\"{sha}\"")?;
        }
        self.zip.write_all(b"}}\n")?;
        let mut out = self.zip.finish()?.into_inner();
        out.flush()?;
        Ok(out)
    }
}

/// A writer that hashes what passes through it.
struct Hashing<'a, W: Write> {
    inner: &'a mut W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
