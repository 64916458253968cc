DROP TRIGGER events_no_replace;
DROP TRIGGER history_no_replace;
