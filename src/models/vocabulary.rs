//! Labels and diseases are both vocabulary terms: a name unique among active terms (ignoring
//! case and Unicode normalisation, through `name_key`), a description, an active flag, a row
//! version, and a set of links to other terms (a label to the diseases it stands for, a
//! disease to its codes). [`term_table!`] writes the row type and the queries once for both
//! tables; `labels.rs` and `diseases.rs` name the tables.

/// What an update changes (`None`: unchanged). `description: Some(None)` clears it.
#[derive(Debug, Clone, Copy, Default)]
pub struct TermChanges<'a> {
    pub name: Option<&'a str>,
    pub description: Option<Option<&'a str>>,
    pub is_active: Option<bool>,
}

/// The queries both vocabulary tables answer, for code written once for both (the change
/// functions in `changes::vocabulary`). Implemented by [`term_table!`].
pub trait TermTable: Sized {
    fn id(&self) -> i64;
    fn uuid(&self) -> &str;
    fn name(&self) -> &str;
    fn version(&self) -> i32;
    fn is_active(&self) -> bool;
    fn insert(
        conn: &mut crate::db::DbConnection,
        name: &str,
        description: Option<&str>,
        created_by: i64,
    ) -> diesel::QueryResult<Self>;
    fn find(conn: &mut crate::db::DbConnection, uuid: &str) -> diesel::QueryResult<Self>;
    fn name_taken(
        conn: &mut crate::db::DbConnection,
        name: &str,
        except: Option<i64>,
    ) -> diesel::QueryResult<bool>;
    fn update(
        conn: &mut crate::db::DbConnection,
        id: i64,
        version: i32,
        changes: &TermChanges<'_>,
    ) -> diesel::QueryResult<Option<Self>>;
    fn set_links(
        conn: &mut crate::db::DbConnection,
        id: i64,
        target_ids: &[i64],
    ) -> diesel::QueryResult<()>;
}

/// The row type and queries of one vocabulary table:
///
/// `term_table!(Row, table, link_table.owner_column -> target_column, TargetRow, target_table,
/// order of linked rows)`.
///
/// Generates `Row` and `insert`, `find`, `find_many`, `find_by_ids`, `name_taken`, `update`,
/// `set_links`, `links_of` and `list`. Names are stored in NFC with their folded key
/// ([`crate::text`]).
macro_rules! term_table {
    ($Row:ident, $table:ident, $links:ident . $owner:ident -> $target:ident, $Target:ty, $target_table:ident, $order:expr) => {
        use std::collections::HashMap;

        use chrono::NaiveDateTime;
        use diesel::prelude::*;

        use super::vocabulary::TermChanges;
        use super::{like_pattern, new_uuid};
        use crate::db::schema::{$links, $table, $target_table};
        use crate::db::{now, DbConnection};

        #[derive(Debug, Clone, Queryable, Selectable)]
        #[diesel(table_name = $table)]
        pub struct $Row {
            pub id: i64,
            pub uuid: String,
            pub name: String,
            pub description: Option<String>,
            pub created_by: i64,
            pub is_active: bool,
            pub version: i32,
            pub created_at: NaiveDateTime,
            pub updated_at: NaiveDateTime,
        }

        /// Inserts an active term at version 1.
        pub fn insert(
            conn: &mut DbConnection,
            name: &str,
            description: Option<&str>,
            created_by: i64,
        ) -> QueryResult<$Row> {
            let (uuid, at) = (new_uuid(), now());
            diesel::insert_into($table::table)
                .values((
                    $table::uuid.eq(&uuid),
                    $table::name.eq(crate::text::nfc(name)),
                    $table::name_key.eq(crate::text::fold_key(name)),
                    $table::description.eq(description.map(crate::text::nfc)),
                    $table::created_by.eq(created_by),
                    $table::is_active.eq(true),
                    $table::version.eq(1),
                    $table::created_at.eq(at),
                    $table::updated_at.eq(at),
                ))
                .execute(conn)?;
            find(conn, &uuid)
        }

        /// The term with this public id, active or not.
        pub fn find(conn: &mut DbConnection, uuid: &str) -> QueryResult<$Row> {
            $table::table
                .filter($table::uuid.eq(uuid))
                .select($Row::as_select())
                .first(conn)
        }

        /// The terms with these public ids (unknown ones are left out).
        pub fn find_many(conn: &mut DbConnection, uuids: &[String]) -> QueryResult<Vec<$Row>> {
            $table::table
                .filter($table::uuid.eq_any(uuids))
                .select($Row::as_select())
                .load(conn)
        }

        /// The terms with these internal ids.
        pub fn find_by_ids(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<Vec<$Row>> {
            $table::table
                .filter($table::id.eq_any(ids))
                .select($Row::as_select())
                .load(conn)
        }

        /// Whether an active term other than `except` has this name, ignoring case.
        pub fn name_taken(
            conn: &mut DbConnection,
            name: &str,
            except: Option<i64>,
        ) -> QueryResult<bool> {
            let mut query = $table::table
                .filter($table::name_key.eq(crate::text::fold_key(name)))
                .filter($table::is_active)
                .select($table::id)
                .into_boxed();
            if let Some(id) = except {
                query = query.filter($table::id.ne(id));
            }
            Ok(query.first::<i64>(conn).optional()?.is_some())
        }

        /// Applies `changes` when the row is still at `version`; `None` when another change
        /// came first.
        pub fn update(
            conn: &mut DbConnection,
            id: i64,
            version: i32,
            changes: &TermChanges<'_>,
        ) -> QueryResult<Option<$Row>> {
            let target = $table::table
                .filter($table::id.eq(id))
                .filter($table::version.eq(version));
            let updated = diesel::update(target)
                .set((
                    changes.name.map(|n| $table::name.eq(crate::text::nfc(n))),
                    changes
                        .name
                        .map(|n| $table::name_key.eq(crate::text::fold_key(n))),
                    changes
                        .description
                        .map(|d| $table::description.eq(d.map(crate::text::nfc))),
                    changes.is_active.map(|a| $table::is_active.eq(a)),
                    $table::version.eq(version + 1),
                    $table::updated_at.eq(now()),
                ))
                .execute(conn)?;
            if updated == 0 {
                return Ok(None);
            }
            $table::table
                .find(id)
                .select($Row::as_select())
                .first(conn)
                .map(Some)
        }

        /// Replaces the term's links with `target_ids`.
        pub fn set_links(conn: &mut DbConnection, id: i64, target_ids: &[i64]) -> QueryResult<()> {
            diesel::delete($links::table.filter($links::$owner.eq(id))).execute(conn)?;
            for target_id in target_ids {
                diesel::insert_into($links::table)
                    .values(($links::$owner.eq(id), $links::$target.eq(target_id)))
                    .execute(conn)?;
            }
            Ok(())
        }

        /// The linked rows of each term in `ids`, in one query.
        pub fn links_of(
            conn: &mut DbConnection,
            ids: &[i64],
        ) -> QueryResult<HashMap<i64, Vec<$Target>>> {
            let rows: Vec<(i64, $Target)> = $links::table
                .inner_join($target_table::table)
                .filter($links::$owner.eq_any(ids))
                .order($order)
                .select(($links::$owner, <$Target>::as_select()))
                .load(conn)?;
            let mut map: HashMap<i64, Vec<$Target>> = HashMap::new();
            for (id, linked) in rows {
                map.entry(id).or_default().push(linked);
            }
            Ok(map)
        }

        impl super::vocabulary::TermTable for $Row {
            fn id(&self) -> i64 {
                self.id
            }
            fn uuid(&self) -> &str {
                &self.uuid
            }
            fn name(&self) -> &str {
                &self.name
            }
            fn version(&self) -> i32 {
                self.version
            }
            fn is_active(&self) -> bool {
                self.is_active
            }
            fn insert(
                conn: &mut DbConnection,
                name: &str,
                description: Option<&str>,
                created_by: i64,
            ) -> QueryResult<Self> {
                insert(conn, name, description, created_by)
            }
            fn find(conn: &mut DbConnection, uuid: &str) -> QueryResult<Self> {
                find(conn, uuid)
            }
            fn name_taken(
                conn: &mut DbConnection,
                name: &str,
                except: Option<i64>,
            ) -> QueryResult<bool> {
                name_taken(conn, name, except)
            }
            fn update(
                conn: &mut DbConnection,
                id: i64,
                version: i32,
                changes: &TermChanges<'_>,
            ) -> QueryResult<Option<Self>> {
                update(conn, id, version, changes)
            }
            fn set_links(conn: &mut DbConnection, id: i64, target_ids: &[i64]) -> QueryResult<()> {
                set_links(conn, id, target_ids)
            }
        }

        /// A page of active terms, by public id: name containing `q` (ignoring case), linked
        /// to `linked_to` (an internal id of the target table).
        pub fn list(
            conn: &mut DbConnection,
            q: Option<&str>,
            linked_to: Option<i64>,
            after: Option<&str>,
            limit: i64,
        ) -> QueryResult<Vec<$Row>> {
            let mut query = $table::table
                .filter($table::is_active)
                .select($Row::as_select())
                .order($table::uuid.asc())
                .limit(limit)
                .into_boxed();
            if let Some(q) = q {
                query = query.filter($table::name_key.like(like_pattern(q)).escape('\\'));
            }
            if let Some(target_id) = linked_to {
                let linked = $links::table
                    .filter($links::$target.eq(target_id))
                    .select($links::$owner);
                query = query.filter($table::id.eq_any(linked));
            }
            if let Some(after) = after {
                query = query.filter($table::uuid.gt(after.to_owned()));
            }
            query.load(conn)
        }
    };
}

pub(crate) use term_table;
