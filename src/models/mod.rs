//! One file per table (or tight group of tables): the row struct, the insertable, the changes,
//! and the queries on it. Models see `DbConnection` and diesel only, never HTTP.

pub mod annotations;
pub mod api_tokens;
pub mod codes;
pub mod datasets;
pub mod diseases;
pub mod events;
pub mod groups;
pub mod history;
pub mod images;
pub mod labels;
pub mod login_failures;
pub mod patients;
pub mod sessions;
pub mod users;
pub mod vocabulary;

/// A new public identifier: UUID v7, time-ordered, so keyset pagination by it follows creation.
pub fn new_uuid() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A LIKE pattern matching name keys that contain `q`'s key ([`crate::text::fold_key`]),
/// wildcards escaped with `\`.
pub fn like_pattern(q: &str) -> String {
    let escaped = crate::text::fold_key(q)
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}
