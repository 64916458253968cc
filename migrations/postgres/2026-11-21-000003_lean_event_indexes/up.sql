-- Every audit event is written to each index of its table, on the audit writer's one thread:
-- these three served no query. Time windows and path prefixes walk the uuid index (an event's
-- UUID v7 orders it by time), and request ids are never looked up one by one.
DROP INDEX events_occurred;
DROP INDEX events_path;
DROP INDEX events_request;
