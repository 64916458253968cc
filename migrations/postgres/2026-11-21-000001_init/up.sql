-- medlabel schema, PostgreSQL flavour. Keep in step with migrations/sqlite (same version names).
-- Conventions: internal BIGINT keys for joins; public identifiers are UUID v7 text (`uuid`),
-- time-ordered, so keyset pagination orders by `uuid`. Times are UTC timestamps.

CREATE TABLE users (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL,
    full_name TEXT,
    email TEXT,
    password_hash TEXT NOT NULL,
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

CREATE TABLE groups (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL
);

CREATE TABLE user_groups (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id BIGINT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, group_id)
);
CREATE INDEX user_groups_group ON user_groups (group_id);

-- Server-side session state (actix-session store). The cookie carries the key; only its
-- SHA-256 is stored, so a database copy does not hand out live sessions.
CREATE TABLE sessions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    user_id BIGINT REFERENCES users (id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE api_tokens (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP
);
CREATE INDEX api_tokens_user ON api_tokens (user_id, uuid);

-- Failed logins, for throttling by username and by client address (shared by all instances).
CREATE TABLE login_failures (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    failed_at TIMESTAMP NOT NULL
);
CREATE INDEX login_failures_username ON login_failures (username, failed_at);
CREATE INDEX login_failures_client ON login_failures (client_ip, failed_at);

CREATE TABLE code_systems (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL
);

CREATE TABLE codes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    system_id TEXT NOT NULL REFERENCES code_systems (id),
    code TEXT NOT NULL,
    description TEXT NOT NULL,
    billable BOOLEAN NOT NULL DEFAULT TRUE,
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (system_id, code)
);
CREATE INDEX codes_system_uuid ON codes (system_id, uuid);

-- Full-text search over code and description, and prefix search on the code.
CREATE INDEX codes_search ON codes
    USING GIN (to_tsvector('english', code || ' ' || description));
CREATE INDEX codes_prefix ON codes (system_id, code text_pattern_ops);

CREATE TABLE diseases (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT,
    created_by BIGINT NOT NULL REFERENCES users (id),
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX diseases_name_lower_active ON diseases (lower(name)) WHERE is_active;

CREATE TABLE disease_codes (
    disease_id BIGINT NOT NULL REFERENCES diseases (id) ON DELETE CASCADE,
    code_id BIGINT NOT NULL REFERENCES codes (id),
    PRIMARY KEY (disease_id, code_id)
);
CREATE INDEX disease_codes_code ON disease_codes (code_id);

CREATE TABLE labels (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT,
    created_by BIGINT NOT NULL REFERENCES users (id),
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX labels_name_lower_active ON labels (lower(name)) WHERE is_active;

CREATE TABLE label_diseases (
    label_id BIGINT NOT NULL REFERENCES labels (id) ON DELETE CASCADE,
    disease_id BIGINT NOT NULL REFERENCES diseases (id),
    PRIMARY KEY (label_id, disease_id)
);
CREATE INDEX label_diseases_disease ON label_diseases (disease_id);

CREATE TABLE images (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    uploaded_by BIGINT NOT NULL REFERENCES users (id),
    description TEXT,
    content_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    width INTEGER,
    height INTEGER,
    original_filename TEXT,
    object_key TEXT NOT NULL UNIQUE,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);
CREATE INDEX images_live_uuid ON images (uuid) WHERE deleted_at IS NULL;
CREATE INDEX images_uploader_uuid ON images (uploaded_by, uuid) WHERE deleted_at IS NULL;
CREATE INDEX images_type_uuid ON images (content_type, uuid) WHERE deleted_at IS NULL;
CREATE INDEX images_created ON images (created_at) WHERE deleted_at IS NULL;

CREATE TABLE image_labels (
    image_id BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    label_id BIGINT NOT NULL REFERENCES labels (id),
    note TEXT,
    assigned_by BIGINT NOT NULL REFERENCES users (id),
    assigned_at TIMESTAMP NOT NULL,
    PRIMARY KEY (image_id, label_id)
);
CREATE INDEX image_labels_label ON image_labels (label_id, image_id);

-- Append-only JSON snapshots of every change; the database itself refuses UPDATE and DELETE.
CREATE TABLE history (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    action TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    snapshot TEXT NOT NULL,
    changed_by BIGINT NOT NULL REFERENCES users (id),
    changed_at TIMESTAMP NOT NULL,
    request_id TEXT NOT NULL
);
CREATE INDEX history_entity ON history (entity_type, entity_id, uuid);
CREATE INDEX history_changed_by ON history (changed_by, uuid);
CREATE INDEX history_changed_at ON history (changed_at);
CREATE FUNCTION history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'history is append-only';
END;
$$;
CREATE TRIGGER history_no_update BEFORE UPDATE OR DELETE ON history
    FOR EACH ROW EXECUTE FUNCTION history_append_only();
CREATE TRIGGER history_no_truncate BEFORE TRUNCATE ON history
    FOR EACH STATEMENT EXECUTE FUNCTION history_append_only();

-- One row per HTTP request (audit). Keyset order is `uuid` (v7, time-ordered), newest first.
CREATE TABLE events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    request_id TEXT NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    user_id BIGINT REFERENCES users (id),
    auth TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT NOT NULL,
    status INTEGER NOT NULL,
    duration_ms DOUBLE PRECISION NOT NULL,
    client_ip TEXT NOT NULL,
    user_agent TEXT,
    headers TEXT NOT NULL
);
CREATE INDEX events_occurred ON events (occurred_at);
CREATE INDEX events_user ON events (user_id, uuid);
CREATE INDEX events_status ON events (status, uuid);
CREATE INDEX events_method ON events (method, uuid);
CREATE INDEX events_path ON events (path, uuid);
CREATE INDEX events_request ON events (request_id);
