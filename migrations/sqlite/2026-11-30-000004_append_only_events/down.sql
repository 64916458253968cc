DROP TRIGGER events_no_delete;
DROP TRIGGER events_no_update;
