//! Freezing a dataset (API.md "Datasets: frozen, reproducible exports for machine learning"):
//! in one transaction, the images a filter selects (as `GET /images` selects them for a
//! researcher, never an image withheld from researchers), their diagnoses, their live
//! annotations (each at its version) and the labels these use (with their names then) are
//! copied into the dataset's tables. Later changes of any of them do not change the dataset.
//! Datasets are not edited, so they have no history; creating one is audited like every
//! request.

use crate::auth::CurrentUser;
use crate::db::DbConnection;
use crate::error::ApiError;
use crate::models::datasets;
use crate::models::images::{self, ImageFilter};
use crate::views::datasets::{dataset_response, DatasetResponse};

/// How many images are read per query while freezing.
const PAGE: i64 = 1000;

/// A new dataset: its name, description, the filter as given (stored, JSON) and the images
/// it selects (resolved to internal ids by the caller; `not_withheld` is forced here).
pub struct NewDataset<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub filter_json: &'a str,
    pub selection: ImageFilter,
}

/// Creates and freezes a dataset, in the caller's transaction.
pub fn create(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    new: NewDataset<'_>,
) -> Result<DatasetResponse, ApiError> {
    let dataset = datasets::insert_dataset(
        conn,
        &crate::text::nfc(new.name),
        new.description.map(crate::text::nfc).as_deref(),
        new.filter_json,
        caller.id,
    )?;
    let filter = ImageFilter {
        not_withheld: true,
        ..new.selection
    };
    let mut after: Option<String> = None;
    loop {
        let page = images::list_images(conn, &filter, after.as_deref(), PAGE)?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = Some(last.uuid.clone());
        let rows: Vec<(i64, i32)> = page.iter().map(|(i, _)| (i.id, i.version)).collect();
        datasets::add_images(conn, dataset.id, &rows)?;
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    datasets::freeze(conn, dataset.id)?;
    let dataset = datasets::find(conn, &dataset.uuid)?;
    Ok(dataset_response(conn, dataset)?)
}
