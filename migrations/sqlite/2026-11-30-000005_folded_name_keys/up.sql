-- Names unique "ignoring case" are compared by a key computed in Rust (NFC, full Unicode case
-- folding, NFC), identical on SQLite and PostgreSQL; SQL lower() folds ASCII only on SQLite.
-- Existing rows get their keys at start-up (`db::fill_name_keys`): migrations insert no data.
ALTER TABLE users ADD COLUMN username_key TEXT;
DROP INDEX users_username_lower;
CREATE UNIQUE INDEX users_username_key ON users (username_key);

ALTER TABLE labels ADD COLUMN name_key TEXT;
DROP INDEX labels_name_lower_active;
CREATE UNIQUE INDEX labels_name_key_active ON labels (name_key) WHERE is_active;

ALTER TABLE diseases ADD COLUMN name_key TEXT;
DROP INDEX diseases_name_lower_active;
CREATE UNIQUE INDEX diseases_name_key_active ON diseases (name_key) WHERE is_active;
