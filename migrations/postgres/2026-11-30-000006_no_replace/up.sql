-- SQLite only: its REPLACE conflict resolution deletes rows without DELETE triggers. On
-- PostgreSQL an upsert's update fires the UPDATE trigger that already refuses it.
SELECT 1;
