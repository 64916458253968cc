//! `GET /images/{id}/file`: the stored bytes, streamed, with `Range` (RFC 9110 section 14)
//! and `If-None-Match`/`If-Range` on the file's SHA-256 ETag. Callers who see the image
//! de-identified get its de-identified copy ([`crate::storage::deidentified`]).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::TryStreamExt as _;
use object_store::path::Path;
use object_store::{GetOptions, GetRange};

use super::BinaryFile;
use crate::api::parse_id;
use crate::auth::policy::ImageView;
use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::imaging::ImageKind;
use crate::models::images::Image;
use crate::state::AppState;
use crate::storage::deidentified::{deidentified_copy, CopySource};
use crate::views::images::find_visible;

/// What a `Range` header (RFC 9110 section 14.2, parsed by `http-range-header`) asks of a
/// representation of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// Serve the whole representation (200): no `Range`, another unit, an invalid or
    /// rejected range set (which a server may ignore), or several ranges (no multipart
    /// answers are made).
    Whole,
    /// Serve these bytes (206), `first..=last`.
    Part(u64, u64),
    /// No range of the set overlaps the representation (416).
    Unsatisfiable,
}

fn range_request(header: Option<&str>, size: u64) -> RangeRequest {
    use http_range_header::RangeUnsatisfiableError;
    let Some(value) = header else {
        return RangeRequest::Whole;
    };
    let validated =
        http_range_header::parse_range_header(value.trim()).and_then(|set| set.validate(size));
    match validated {
        Ok(ranges) => match ranges.as_slice() {
            [one] => RangeRequest::Part(*one.start(), *one.end()),
            _ => RangeRequest::Whole,
        },
        Err(RangeUnsatisfiableError::Unsatisfiable) => RangeRequest::Unsatisfiable,
        Err(_) => RangeRequest::Whole,
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/images/{id}/file",
    tag = "images",
    operation_id = "download_image",
    summary = "The image file (de-identified for researchers); Range and If-None-Match supported",
    params(
        ("id" = String, Path, description = "The entity's UUID")
    ),
    responses(
        (status = 200, description = "The bytes", content((BinaryFile = "application/octet-stream"), (BinaryFile = "image/png"), (BinaryFile = "image/jpeg"), (BinaryFile = "application/dicom"))),
        (status = 206, description = "The requested range", content((BinaryFile = "application/octet-stream"))),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 416, description = "Range not satisfiable", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
pub async fn download_image(
    state: web::Data<AppState>,
    caller: CurrentUser,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let (image, view, filing) = state
        .db
        .query(move |conn| {
            let (image, view) = find_visible(conn, &caller, &id)?;
            let filing = match view {
                ImageView::Full => None,
                ImageView::Deidentified => Some(copy_filing(conn, &image)?),
            };
            Ok((image, view, filing))
        })
        .await?;
    let kind = ImageKind::from_content_type(&image.content_type).ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "stored image has unknown type {}",
            image.content_type
        ))
    })?;
    let (location, sha, size) = match view {
        ImageView::Full => (
            Path::from(image.object_key.as_str()),
            image.sha256.clone(),
            image.size_bytes as u64,
        ),
        ImageView::Deidentified => {
            if image.burned_in_annotation {
                return Err(ApiError::Withheld(
                    "this file is withheld from researchers: its Burned In Annotation \
                     (0028,0301) is YES, so its pixels may show identifying text"
                        .into(),
                ));
            }
            let (subject_id, study_instance_uid) = filing.unwrap_or_default();
            let source = CopySource::of(
                &image.object_key,
                kind,
                &image.uuid,
                subject_id,
                study_instance_uid,
                image.sop_instance_uid.clone(),
            );
            let copy = deidentified_copy(
                &state.storage,
                state.pseudonym_key.clone(),
                source,
                state.settings.max_dicom_header_bytes,
            )
            .await?;
            (copy.location, copy.sha256, copy.size)
        }
    };
    let tag = format!("\"{sha}\"");
    let disposition = format!(
        "attachment; filename=\"{}.{}\"",
        image.uuid,
        kind.extension()
    );

    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim() == "*"
                || v.split(',')
                    .any(|t| t.trim().trim_start_matches("W/") == tag)
        });
    if not_modified {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, tag))
            .finish());
    }

    // RFC 9110 section 13.1.5: with `If-Range`, the range is served only while the
    // representation is the one the client names, by a strong ETag; a weak tag, a date (no
    // Last-Modified is sent) or another tag gets the whole file.
    let range_applies = req
        .headers()
        .get(header::IF_RANGE)
        .is_none_or(|v| v.to_str().is_ok_and(|v| v.trim() == tag));
    let range_header = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| range_applies);
    let range = match range_request(range_header, size) {
        RangeRequest::Whole => None,
        RangeRequest::Part(first, last) => Some((first, last)),
        RangeRequest::Unsatisfiable => {
            let problem = crate::error::Problem::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range-not-satisfiable",
                format!("the file has {size} bytes"),
            );
            let mut res = problem.response();
            if let Ok(value) = header::HeaderValue::from_str(&format!("bytes */{size}")) {
                res.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return Ok(res);
        }
    };
    let options = GetOptions {
        range: range.map(|(start, end)| GetRange::Bounded(start..end + 1)),
        ..Default::default()
    };
    let result = state.storage.store().get_opts(&location, options).await?;
    let sent = metrics::counter!(crate::telemetry::DOWNLOAD_BYTES);
    let stream = result
        .into_stream()
        .inspect_ok(move |chunk| sent.increment(chunk.len() as u64))
        .map_err(|e| actix_web::error::ErrorServiceUnavailable(e.to_string()));
    let mut res = match range {
        Some((start, end)) => {
            let mut res = HttpResponse::PartialContent();
            res.insert_header((header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}")));
            res.no_chunking(end - start + 1);
            res
        }
        None => {
            let mut res = HttpResponse::Ok();
            res.no_chunking(size);
            res
        }
    };
    Ok(res
        .insert_header((header::CONTENT_TYPE, kind.content_type()))
        .insert_header((header::ETAG, tag))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CONTENT_DISPOSITION, disposition))
        .streaming(stream))
}

/// The subject pseudonym and Study Instance UID of an image's filing (either may be absent).
fn copy_filing(
    conn: &mut crate::db::DbConnection,
    image: &Image,
) -> diesel::QueryResult<(Option<String>, Option<String>)> {
    use crate::models::patients::{patients_by_ids, studies_by_ids};
    let subject = match image.patient_id {
        Some(id) => patients_by_ids(conn, &[id])?
            .remove(&id)
            .map(|p| p.subject_id),
        None => None,
    };
    let study = match image.study_id {
        Some(id) => studies_by_ids(conn, &[id])?
            .remove(&id)
            .map(|s| s.study_instance_uid),
        None => None,
    };
    Ok((subject, study))
}

#[cfg(test)]
mod tests {
    use super::{range_request, RangeRequest::*};

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(range_request(None, 100), Whole);
        assert_eq!(range_request(Some("bytes=0-9"), 100), Part(0, 9));
        assert_eq!(range_request(Some("bytes=90-"), 100), Part(90, 99));
        assert_eq!(range_request(Some("bytes=-10"), 100), Part(90, 99));
        assert_eq!(range_request(Some("bytes=-1000"), 100), Part(0, 99));
        assert_eq!(range_request(Some("bytes=50-500"), 100), Part(50, 99));
        assert_eq!(range_request(Some("bytes=0-1,5-6"), 100), Whole);
        assert_eq!(range_request(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(range_request(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(range_request(Some("bytes=0-0"), 0), Unsatisfiable);
        // Overflowing numbers are just very large: the range ends at the last byte.
        assert_eq!(
            range_request(Some("bytes=0-99999999999999999999999"), 100),
            Part(0, 99)
        );
        assert_eq!(
            range_request(Some("bytes=99999999999999999999999-"), 100),
            Unsatisfiable
        );
        // Invalid or rejected sets and other units are ignored.
        for ignored in [
            "bytes=9-3",
            "bytes=x-y",
            "items=0-1",
            "bytes=",
            "bytes=0-5,3-8",
        ] {
            assert_eq!(range_request(Some(ignored), 100), Whole, "{ignored}");
        }
    }
}
