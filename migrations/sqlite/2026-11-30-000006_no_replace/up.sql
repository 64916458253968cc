-- `INSERT OR REPLACE` (and `REPLACE`) deletes the row it replaces without firing DELETE
-- triggers, which would let a history entry or an event be rewritten. An insert that names an
-- existing row is refused for history, and skipped for events (the audit writer may insert an
-- event that the request's change already wrote; it must be kept as written).
CREATE TRIGGER history_no_replace BEFORE INSERT ON history
WHEN EXISTS (SELECT 1 FROM history WHERE id = NEW.id)
  OR EXISTS (SELECT 1 FROM history WHERE uuid = NEW.uuid)
BEGIN
    SELECT RAISE(ABORT, 'history is append-only');
END;
CREATE TRIGGER events_no_replace BEFORE INSERT ON events
WHEN EXISTS (SELECT 1 FROM events WHERE id = NEW.id)
  OR EXISTS (SELECT 1 FROM events WHERE uuid = NEW.uuid)
BEGIN
    SELECT RAISE(IGNORE);
END;
