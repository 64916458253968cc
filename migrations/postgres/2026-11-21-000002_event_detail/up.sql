-- Extra, request-kind-specific facts of an event as a JSON object (e.g. the username a login tried).
ALTER TABLE events ADD COLUMN detail TEXT;
