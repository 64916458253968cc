-- A counter per in-memory index, bumped in the transaction of every change to what the index
-- holds: each instance polls it and rebuilds its index when it moved (issue 15).
CREATE TABLE index_generations (
    name TEXT PRIMARY KEY NOT NULL,
    generation BIGINT NOT NULL
);
INSERT INTO index_generations (name, generation) VALUES ('codes', 0);
