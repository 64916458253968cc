//! The format files of an export, each written as it is read (a page of images at a time).
//!
//! - `coco`: `annotations.json` (COCO object detection format: `images`, `annotations` of
//!   frame 0 with `bbox` `[x, y, width, height]`, `area`, `iscrowd` 0 and a `segmentation`
//!   polygon for every shape, points as 1-pixel boxes with `keypoints` `[x, y, 2]`,
//!   `categories` = the labels in name order with ids from 1) and `image_labels.csv` (the
//!   image-level diagnoses).
//! - `yolo`: `labels/<image id>.txt` for every image (one line per box, `class cx cy w h`, or
//!   polygon, `class x1 y1 ... xn yn`, of frame 0, coordinates normalised to 0-1 by the image
//!   size, 6 decimals; points are left out; an empty file for an image without any) and
//!   `data.yaml` (the class names by index).
//! - `csv`: `images.csv` and `annotations.csv` (every frame); null is an empty cell.
//!
//! COCO image and annotation ids are their positions in the archive, from 1; every COCO
//! image, annotation and category also carries its medlabel id as `medlabel_id`. A DICOM
//! whose PNG could not be made is left out of the COCO and YOLO files (see `super`).

use std::io::{self, Write};

use serde::Serialize;

use super::{Archive, Compression, ExportError, Frozen};
use crate::geometry::{Bounds, Geometry, Shape};
use crate::imaging::ImageKind;
use crate::models::datasets::{FrozenAnnotation, FrozenImage};

/// A frozen annotation's geometry, read back.
fn geometry(annotation: &FrozenAnnotation) -> Result<(Shape, Geometry), ExportError> {
    let broken = |message: String| ExportError::Image {
        image: annotation.uuid.clone(),
        message,
    };
    let shape = Shape::from_name(&annotation.shape)
        .ok_or_else(|| broken(format!("unknown shape {:?}", annotation.shape)))?;
    let geometry = Geometry::from_stored(shape, &annotation.geometry)
        .map_err(|e| broken(format!("stored geometry unreadable: {e}")))?;
    Ok((shape, geometry))
}

fn bounds(image: &FrozenImage) -> Bounds {
    Bounds {
        width: f64::from(image.width.unwrap_or(0)),
        height: f64::from(image.height.unwrap_or(0)),
    }
}

/// The file COCO and YOLO read for an image: the rendered PNG for a DICOM.
fn pixel_file(image: &FrozenImage) -> String {
    let extension = match ImageKind::from_content_type(&image.content_type) {
        Some(ImageKind::Jpeg) => "jpg",
        _ => "png",
    };
    format!("images/{}.{extension}", image.uuid)
}

fn json_error(e: serde_json::Error) -> io::Error {
    io::Error::other(e)
}

#[derive(Serialize)]
struct CocoImage<'a> {
    id: u64,
    file_name: String,
    width: Option<i32>,
    height: Option<i32>,
    medlabel_id: &'a str,
}

#[derive(Serialize)]
struct CocoAnnotation<'a> {
    id: u64,
    image_id: u64,
    category_id: usize,
    bbox: [f64; 4],
    area: f64,
    iscrowd: u8,
    segmentation: [Vec<f64>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    keypoints: Option<[f64; 3]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    num_keypoints: Option<u8>,
    medlabel_id: &'a str,
}

#[derive(Serialize)]
struct CocoCategory<'a> {
    id: usize,
    name: &'a str,
    supercategory: &'a str,
    medlabel_id: &'a str,
}

/// `annotations.json` and `image_labels.csv`.
pub(super) fn coco<W: Write>(
    frozen: &Frozen<'_>,
    archive: &mut Archive<W>,
) -> Result<(), ExportError> {
    let mut result = Ok(());
    archive.entry("annotations.json", Compression::Deflated, 0, |out| {
        let info = serde_json::json!({
            "description": frozen.dataset.name,
            "version": frozen.dataset.uuid,
            "date_created": crate::views::rfc3339_text(&frozen.dataset.created_at),
            "contributor": "medlabel",
        });
        write!(out, "{{\"info\":")?;
        serde_json::to_writer(&mut *out, &info).map_err(json_error)?;
        write!(out, ",\"licenses\":[],\"images\":[")?;
        let mut position = 0u64;
        result = frozen.each_page(|page, _, _| {
            for image in page.iter().filter(|i| frozen.lists(i)) {
                position += 1;
                if position > 1 {
                    out.write_all(b",")?;
                }
                let entry = CocoImage {
                    id: position,
                    file_name: pixel_file(image),
                    width: image.width,
                    height: image.height,
                    medlabel_id: &image.uuid,
                };
                serde_json::to_writer(&mut *out, &entry).map_err(json_error)?;
            }
            Ok(())
        });
        if result.is_err() {
            return Ok(());
        }
        write!(out, "],\"annotations\":[")?;
        let (mut position, mut written) = (0u64, 0u64);
        result = frozen.each_page(|page, _, annotations| {
            // COCO image ids: positions among the images listed.
            let mut listed = std::collections::HashMap::new();
            for image in page.iter().filter(|i| frozen.lists(i)) {
                position += 1;
                listed.insert(image.id, (position, image));
            }
            for annotation in annotations.iter().filter(|a| a.frame == 0) {
                let Some(&(image_id, image)) = listed.get(&annotation.image_id) else {
                    continue;
                };
                let (shape, geometry) = geometry(annotation)?;
                let bounds = bounds(image);
                let category = frozen.label_index(annotation.label_id).unwrap_or(0) + 1;
                written += 1;
                if written > 1 {
                    out.write_all(b",")?;
                }
                let keypoints = match geometry {
                    Geometry::Point(p) => Some([p.x, p.y, 2.0]),
                    _ => None,
                };
                let entry = CocoAnnotation {
                    id: written,
                    image_id,
                    category_id: category,
                    bbox: geometry.bbox(bounds),
                    area: geometry.area(),
                    iscrowd: 0,
                    segmentation: [geometry.outline(bounds)],
                    keypoints,
                    num_keypoints: (shape == Shape::Point).then_some(1),
                    medlabel_id: &annotation.uuid,
                };
                serde_json::to_writer(&mut *out, &entry).map_err(json_error)?;
            }
            Ok(())
        });
        if result.is_err() {
            return Ok(());
        }
        write!(out, "],\"categories\":[")?;
        for (i, label) in frozen.labels.iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            let entry = CocoCategory {
                id: i + 1,
                name: &label.name,
                supercategory: "label",
                medlabel_id: &label.uuid,
            };
            serde_json::to_writer(&mut *out, &entry).map_err(json_error)?;
        }
        writeln!(out, "]}}")
    })?;
    result?;
    csv_entry(archive, "image_labels.csv", |csv| {
        csv.write_record(["image_id", "label_id", "label_name"])?;
        frozen.each_page(|page, diagnoses, _| {
            for image in page {
                for label in frozen.labels {
                    if diagnoses
                        .get(&image.id)
                        .is_some_and(|d| d.contains(&label.id))
                    {
                        csv.write_record([image.uuid.as_str(), &label.uuid, &label.name])?;
                    }
                }
            }
            Ok(())
        })
    })
}

/// `labels/<image id>.txt` for every image, and `data.yaml`.
pub(super) fn yolo<W: Write>(
    frozen: &Frozen<'_>,
    archive: &mut Archive<W>,
) -> Result<(), ExportError> {
    frozen.each_page(|page, _, annotations| {
        for image in page.iter().filter(|i| frozen.lists(i)) {
            let bounds = bounds(image);
            let mut lines = String::new();
            for annotation in annotations
                .iter()
                .filter(|a| a.image_id == image.id && a.frame == 0)
            {
                let (_, geometry) = geometry(annotation)?;
                let class = frozen.label_index(annotation.label_id).unwrap_or(0);
                let (w, h) = (bounds.width, bounds.height);
                let numbers: Vec<f64> = match &geometry {
                    Geometry::Box(b) => vec![
                        (b.x + b.width / 2.0) / w,
                        (b.y + b.height / 2.0) / h,
                        b.width / w,
                        b.height / h,
                    ],
                    Geometry::Polygon(p) => {
                        p.points.iter().flat_map(|[x, y]| [x / w, y / h]).collect()
                    }
                    Geometry::Point(_) => continue,
                };
                lines.push_str(&class.to_string());
                for n in numbers {
                    lines.push_str(&format!(" {:.6}", n.clamp(0.0, 1.0)));
                }
                lines.push('\n');
            }
            let path = format!("labels/{}.txt", image.uuid);
            archive.entry(&path, Compression::Deflated, lines.len() as u64, |out| {
                out.write_all(lines.as_bytes())
            })?;
        }
        Ok(())
    })?;
    let mut yaml = format!(
        "# medlabel dataset {} ({}): YOLO classes by index\npath: .\ntrain: images\nval: images\nnc: {}\nnames:\n",
        frozen.dataset.uuid,
        serde_json::to_string(&frozen.dataset.name).unwrap_or_default(),
        frozen.labels.len()
    );
    for (i, label) in frozen.labels.iter().enumerate() {
        // A JSON string is a YAML double-quoted scalar.
        let name = serde_json::to_string(&label.name).unwrap_or_default();
        yaml.push_str(&format!("  {i}: {name}\n"));
    }
    archive.entry(
        "data.yaml",
        Compression::Deflated,
        yaml.len() as u64,
        |out| out.write_all(yaml.as_bytes()),
    )
}

/// `images.csv` and `annotations.csv`.
pub(super) fn csv<W: Write>(
    frozen: &Frozen<'_>,
    archive: &mut Archive<W>,
) -> Result<(), ExportError> {
    csv_entry(archive, "images.csv", |csv| {
        csv.write_record([
            "image_id",
            "subject_id",
            "study_id",
            "modality",
            "width",
            "height",
            "content_type",
            "labels",
        ])?;
        frozen.each_page(|page, diagnoses, _| {
            for image in page {
                let labels: Vec<&str> = frozen
                    .labels
                    .iter()
                    .filter(|l| diagnoses.get(&image.id).is_some_and(|d| d.contains(&l.id)))
                    .map(|l| l.name.as_str())
                    .collect();
                let number = |n: Option<i32>| n.map(|n| n.to_string()).unwrap_or_default();
                csv.write_record([
                    image.uuid.as_str(),
                    image.subject_id.as_deref().unwrap_or_default(),
                    image.study_uuid.as_deref().unwrap_or_default(),
                    image.modality.as_deref().unwrap_or_default(),
                    &number(image.width),
                    &number(image.height),
                    &image.content_type,
                    &labels.join(";"),
                ])?;
            }
            Ok(())
        })
    })?;
    csv_entry(archive, "annotations.csv", |csv| {
        csv.write_record([
            "annotation_id",
            "image_id",
            "label_name",
            "shape",
            "geometry",
            "frame",
        ])?;
        frozen.each_page(|page, _, annotations| {
            for annotation in annotations {
                let Some(image) = page.iter().find(|i| i.id == annotation.image_id) else {
                    continue;
                };
                let label = frozen
                    .labels
                    .iter()
                    .find(|l| l.id == annotation.label_id)
                    .map(|l| l.name.as_str())
                    .unwrap_or_default();
                csv.write_record([
                    annotation.uuid.as_str(),
                    &image.uuid,
                    label,
                    &annotation.shape,
                    &annotation.geometry,
                    &annotation.frame.to_string(),
                ])?;
            }
            Ok(())
        })
    })
}

/// One CSV entry (RFC 4180, `csv`'s writer), written by `rows`.
fn csv_entry<W: Write>(
    archive: &mut Archive<W>,
    path: &str,
    rows: impl FnOnce(&mut csv::Writer<&mut dyn Write>) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let mut result = Ok(());
    archive.entry(path, Compression::Deflated, 0, |out| {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(out);
        result = rows(&mut writer);
        writer.flush()
    })?;
    result
}

impl From<csv::Error> for ExportError {
    fn from(err: csv::Error) -> Self {
        match err.into_kind() {
            csv::ErrorKind::Io(e) => ExportError::Io(e),
            other => ExportError::Io(io::Error::other(format!("{other:?}"))),
        }
    }
}
