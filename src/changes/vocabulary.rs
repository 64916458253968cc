//! Writes of the vocabulary: labels and diseases, through one set of functions over
//! [`Term`]. A term's name is unique among active terms (409); its links (a label's diseases,
//! a disease's codes) must name active entities (422 naming every one that does not); a
//! deactivated term keeps its links and past uses, and its name may be reused.

use diesel::QueryResult;
use serde::Serialize;

use super::{until_written, Change, Precondition};
use crate::codesets::normalise_code;
use crate::db::DbConnection;
use crate::error::ApiError;
use crate::history::{Action, EntityType};
use crate::models::codes;
use crate::models::diseases::{self, Disease};
use crate::models::labels::Label;
use crate::models::vocabulary::{TermChanges, TermTable};
use crate::views::vocabulary::{
    disease_responses, label_responses, DiseaseResponse, LabelResponse,
};

/// A vocabulary table as the change functions use it (and handlers, which move terms to a
/// blocking thread: hence `Send + 'static`).
pub trait Term: TermTable + Send + 'static {
    /// How a client names a linked entity (a disease's UUID; a code's system and code).
    type LinkRef: Send + 'static;
    type Response: Serialize + Send + 'static;
    const ENTITY: EntityType;
    /// `label`, `disease`: for messages.
    const NOUN: &'static str;

    /// The internal ids of the active entities `refs` name; 422 naming every one that does
    /// not exist or is inactive.
    fn resolve_links(conn: &mut DbConnection, refs: &[Self::LinkRef])
        -> Result<Vec<i64>, ApiError>;

    /// The responses for some rows (a constant number of queries).
    fn responses(conn: &mut DbConnection, rows: Vec<Self>) -> QueryResult<Vec<Self::Response>>;

    /// A response's public id.
    fn response_id(response: &Self::Response) -> &str;
}

impl Term for Label {
    type LinkRef = String;
    type Response = LabelResponse;
    const ENTITY: EntityType = EntityType::Label;
    const NOUN: &'static str = "label";

    fn resolve_links(conn: &mut DbConnection, uuids: &[String]) -> Result<Vec<i64>, ApiError> {
        let wanted: Vec<String> = uuids
            .iter()
            .filter_map(|u| uuid::Uuid::parse_str(u).ok())
            .map(|u| u.to_string())
            .collect();
        let found = diseases::find_many(conn, &wanted)?;
        let active = |u: &String| {
            found.iter().any(|d: &Disease| {
                d.is_active && uuid::Uuid::parse_str(u).is_ok_and(|p| p.to_string() == d.uuid)
            })
        };
        let missing: Vec<String> = uuids
            .iter()
            .filter(|u| !active(u))
            .map(|u| format!("{u} is not an active disease"))
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::Validation(
                [("disease_ids".to_owned(), missing)].into_iter().collect(),
            ));
        }
        Ok(found.into_iter().map(|d| d.id).collect())
    }

    fn responses(conn: &mut DbConnection, rows: Vec<Self>) -> QueryResult<Vec<LabelResponse>> {
        label_responses(conn, rows)
    }

    fn response_id(response: &LabelResponse) -> &str {
        &response.id
    }
}

impl Term for Disease {
    /// `(system, code)`, e.g. `("icd-10", "J18.9")`.
    type LinkRef = (String, String);
    type Response = DiseaseResponse;
    const ENTITY: EntityType = EntityType::Disease;
    const NOUN: &'static str = "disease";

    fn resolve_links(
        conn: &mut DbConnection,
        refs: &[(String, String)],
    ) -> Result<Vec<i64>, ApiError> {
        let mut ids = Vec::new();
        let mut missing = Vec::new();
        for (system, code) in refs {
            let found = normalise_code(system, code)
                .ok()
                .and_then(|code| codes::find_code(conn, system, &code).ok())
                .filter(|c| c.is_active);
            match found {
                Some(c) if !ids.contains(&c.id) => ids.push(c.id),
                Some(_) => {}
                None => missing.push(format!("{system}:{code} does not exist")),
            }
        }
        if missing.is_empty() {
            Ok(ids)
        } else {
            Err(ApiError::Validation(
                [("codes".to_owned(), missing)].into_iter().collect(),
            ))
        }
    }

    fn responses(conn: &mut DbConnection, rows: Vec<Self>) -> QueryResult<Vec<DiseaseResponse>> {
        disease_responses(conn, rows)
    }

    fn response_id(response: &DiseaseResponse) -> &str {
        &response.id
    }
}

/// A term's state as a create or a revert sets it.
#[derive(Debug, Clone)]
pub struct TermState<L> {
    pub name: String,
    pub description: Option<String>,
    pub is_active: bool,
    pub links: Vec<L>,
}

/// What an update changes (`None`: unchanged).
#[derive(Debug, Clone)]
pub struct TermUpdate<L> {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub links: Option<Vec<L>>,
}

/// The response for `row` and its version.
pub fn response<T: Term>(conn: &mut DbConnection, row: T) -> Result<(T::Response, i32), ApiError> {
    let version = row.version();
    let response = T::responses(conn, vec![row])?
        .pop()
        .ok_or(ApiError::NotFound)?;
    Ok((response, version))
}

/// The response for `row` after `action`, recorded in its history.
fn recorded<T: Term>(
    conn: &mut DbConnection,
    change: &Change,
    row: T,
    action: Action,
) -> Result<(T::Response, i32), ApiError> {
    let (response, version) = response(conn, row)?;
    change.record(
        conn,
        T::ENTITY,
        T::response_id(&response),
        action,
        &response,
    )?;
    Ok((response, version))
}

/// Creates a term (name trimmed) with its links; returns its response and version.
pub fn create<T: Term>(
    conn: &mut DbConnection,
    change: &Change,
    new: &TermState<T::LinkRef>,
) -> Result<(T::Response, i32), ApiError> {
    let name = new.name.trim();
    let links = T::resolve_links(conn, &new.links)?;
    if T::name_taken(conn, name, None)? {
        return Err(ApiError::Conflict(format!(
            "a {} named {name:?} exists already",
            T::NOUN
        )));
    }
    let row = T::insert(conn, name, new.description.as_deref(), change.user_id)?;
    T::set_links(conn, row.id(), &links)?;
    recorded(conn, change, row, Action::Create)
}

/// Changes term `uuid` as the client read it (`precondition`).
pub fn update<T: Term>(
    conn: &mut DbConnection,
    change: &Change,
    uuid: &str,
    precondition: &Precondition,
    update: &TermUpdate<T::LinkRef>,
) -> Result<(T::Response, i32), ApiError> {
    let row = until_written(conn, |conn| {
        let current = T::find(conn, uuid)?;
        precondition.check(current.version())?;
        let name = update.name.as_deref().map(str::trim);
        if let Some(name) = name {
            if current.is_active() && T::name_taken(conn, name, Some(current.id()))? {
                return Err(ApiError::Conflict(format!(
                    "a {} named {name:?} exists already",
                    T::NOUN
                )));
            }
        }
        let links = update
            .links
            .as_deref()
            .map(|refs| T::resolve_links(conn, refs))
            .transpose()?;
        let changes = TermChanges {
            name,
            description: update.description.as_ref().map(Option::as_deref),
            is_active: None,
        };
        let Some(row) = T::update(conn, current.id(), current.version(), &changes)? else {
            return Ok(None);
        };
        if let Some(links) = links {
            T::set_links(conn, row.id(), &links)?;
        }
        Ok(Some(row))
    })?;
    recorded(conn, change, row, Action::Update)
}

/// Deactivates term `uuid` (`DELETE`); deactivating an inactive term changes nothing.
pub fn deactivate<T: Term>(
    conn: &mut DbConnection,
    change: &Change,
    uuid: &str,
    precondition: &Precondition,
) -> Result<(), ApiError> {
    let changes = TermChanges {
        is_active: Some(false),
        ..Default::default()
    };
    let row = until_written(conn, |conn| {
        let current = T::find(conn, uuid)?;
        precondition.check(current.version())?;
        if !current.is_active() {
            return Ok(Some(None));
        }
        Ok(T::update(conn, current.id(), current.version(), &changes)?.map(Some))
    })?;
    if let Some(row) = row {
        recorded(conn, change, row, Action::Delete)?;
    }
    Ok(())
}

/// Restores term `uuid` to `state` (a history snapshot), under the rules of a direct write:
/// an active name must be free (409), every link must be active now (422).
pub fn revert<T: Term>(
    conn: &mut DbConnection,
    change: &Change,
    uuid: &str,
    state: &TermState<T::LinkRef>,
) -> Result<(T::Response, i32), ApiError> {
    let name = state.name.as_str();
    let changes = TermChanges {
        name: Some(name),
        description: Some(state.description.as_deref()),
        is_active: Some(state.is_active),
    };
    let row = until_written(conn, |conn| {
        let current = T::find(conn, uuid)?;
        if state.is_active && T::name_taken(conn, name, Some(current.id()))? {
            return Err(ApiError::Conflict(format!(
                "an active {} is named {name:?} now",
                T::NOUN
            )));
        }
        let links = T::resolve_links(conn, &state.links)?;
        let Some(row) = T::update(conn, current.id(), current.version(), &changes)? else {
            return Ok(None);
        };
        T::set_links(conn, row.id(), &links)?;
        Ok(Some(row))
    })?;
    recorded(conn, change, row, Action::Revert)
}
