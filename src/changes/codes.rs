//! Writes of codes (ICD-9-CM, ICD-10-CM, SNOMED CT): create, update or deactivate, revert.
//! A code is named by its system and code; its description and active flag change.

use super::{until_written, Change, Precondition};
use crate::db::DbConnection;
use crate::error::ApiError;
use crate::history::{Action, EntityType};
use crate::models::codes::{self, Code, CodeChanges, NewCode};
use crate::views::vocabulary::CodeResponse;

fn recorded(
    conn: &mut DbConnection,
    change: &Change,
    code: Code,
    action: Action,
) -> Result<Code, ApiError> {
    change.record(
        conn,
        EntityType::Code,
        &code.uuid,
        action,
        &CodeResponse::from(code.clone()),
    )?;
    Ok(code)
}

/// Adds a code; 409 when the system has it already.
pub fn create(conn: &mut DbConnection, change: &Change, new: &NewCode) -> Result<Code, ApiError> {
    if codes::find_code(conn, &new.system_id, &new.code).is_ok() {
        return Err(ApiError::Conflict(format!(
            "{} {} exists already",
            new.system_id, new.code
        )));
    }
    let created = codes::insert_code(conn, new)?;
    recorded(conn, change, created, Action::Create)
}

/// Changes code `system`/`code` as the client read it; deactivating it is its deletion.
pub fn update(
    conn: &mut DbConnection,
    change: &Change,
    (system, code): (&str, &str),
    precondition: &Precondition,
    changes: &CodeChanges<'_>,
) -> Result<Code, ApiError> {
    let action = if changes.is_active == Some(false) {
        Action::Delete
    } else {
        Action::Update
    };
    let deactivation = changes.is_active == Some(false) && changes.description.is_none();
    let updated = until_written(conn, |conn| {
        let current = codes::find_code(conn, system, code)?;
        precondition.check(current.version)?;
        if deactivation && !current.is_active {
            // Deactivating an inactive code changes nothing, as for labels and diseases.
            return Ok(Some(Err(current)));
        }
        Ok(codes::update_code(conn, current.id, current.version, changes)?.map(Ok))
    })?;
    match updated {
        Ok(updated) => recorded(conn, change, updated, action),
        Err(unchanged) => Ok(unchanged),
    }
}

/// Restores the code with public id `uuid` to a snapshot's description and active flag.
pub fn revert(
    conn: &mut DbConnection,
    change: &Change,
    uuid: &str,
    (system, code): (&str, &str),
    changes: &CodeChanges<'_>,
) -> Result<Code, ApiError> {
    let updated = until_written(conn, |conn| {
        let current = codes::find_code(conn, system, code)?;
        if current.uuid != uuid {
            return Err(ApiError::NotFound);
        }
        Ok(codes::update_code(
            conn,
            current.id,
            current.version,
            changes,
        )?)
    })?;
    recorded(conn, change, updated, Action::Revert)
}
