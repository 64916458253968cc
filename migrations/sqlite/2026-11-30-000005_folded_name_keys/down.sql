DROP INDEX diseases_name_key_active;
ALTER TABLE diseases DROP COLUMN name_key;
CREATE UNIQUE INDEX diseases_name_lower_active ON diseases (lower(name)) WHERE is_active;

DROP INDEX labels_name_key_active;
ALTER TABLE labels DROP COLUMN name_key;
CREATE UNIQUE INDEX labels_name_lower_active ON labels (lower(name)) WHERE is_active;

DROP INDEX users_username_key;
ALTER TABLE users DROP COLUMN username_key;
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));
