CREATE INDEX events_occurred ON events (occurred_at);
CREATE INDEX events_path ON events (path, uuid);
CREATE INDEX events_request ON events (request_id);
