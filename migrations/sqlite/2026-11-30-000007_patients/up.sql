-- Patients, studies and series, read from DICOM headers (or, for PNG/JPEG, named by the
-- uploader); the fingerprint of the pseudonym key the stored pseudonyms were made with.
-- See API.md "Patients, studies and subjects".
CREATE TABLE service_keys (
    name TEXT PRIMARY KEY NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- One patient is one (issuer, patient_id) pair. `subject_id` is the pseudonym (HMAC of both
-- under the pseudonym key); `search_key` holds the folded patient ID and name for `q=`.
CREATE TABLE patients (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    issuer TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    name TEXT,
    birth_date TEXT,
    sex TEXT,
    subject_id TEXT NOT NULL UNIQUE,
    search_key TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (issuer, patient_id)
);

-- Every identifier any file (or upload form) gave for a patient: name parts, patient ID,
-- birth date forms, accession numbers. Researchers' free text is redacted of all of them.
CREATE TABLE patient_terms (
    patient_id INTEGER NOT NULL REFERENCES patients (id),
    term TEXT NOT NULL,
    PRIMARY KEY (patient_id, term)
);

CREATE TABLE studies (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    study_instance_uid TEXT NOT NULL UNIQUE,
    patient_id INTEGER REFERENCES patients (id),
    study_date TEXT,
    accession_number TEXT,
    description TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX studies_patient ON studies (patient_id);

CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    series_instance_uid TEXT NOT NULL UNIQUE,
    study_id INTEGER NOT NULL REFERENCES studies (id),
    modality TEXT,
    created_at TIMESTAMP NOT NULL
);

-- No REFERENCES on the new image columns: SQLite cannot drop a column that has one (down.sql).
ALTER TABLE images ADD COLUMN patient_id INTEGER;
ALTER TABLE images ADD COLUMN study_id INTEGER;
ALTER TABLE images ADD COLUMN series_id INTEGER;
ALTER TABLE images ADD COLUMN sop_instance_uid TEXT;
ALTER TABLE images ADD COLUMN modality TEXT;
-- Burned In Annotation (0028,0301) is YES: the pixels may carry identifying text.
ALTER TABLE images ADD COLUMN burned_in_annotation BOOLEAN NOT NULL DEFAULT FALSE;
-- The identifiers its own file gave (one per line), redacted from researchers' free text even
-- when the image has no patient (a DICOM without Patient ID still names one).
ALTER TABLE images ADD COLUMN redaction_terms TEXT;

-- One live image per SOP Instance UID (a retried upload finds it; a deleted one may be sent
-- again).
CREATE UNIQUE INDEX images_live_sop ON images (sop_instance_uid)
    WHERE deleted_at IS NULL AND sop_instance_uid IS NOT NULL;
-- Only filed images are indexed: an image without a patient (most PNG and JPEG uploads) costs
-- these indexes nothing. `patient_id = ?` implies `patient_id IS NOT NULL`, so both backends
-- use them for the filters.
CREATE INDEX images_patient_uuid ON images (patient_id, uuid)
    WHERE deleted_at IS NULL AND patient_id IS NOT NULL;
CREATE INDEX images_study_uuid ON images (study_id, uuid)
    WHERE deleted_at IS NULL AND study_id IS NOT NULL;
CREATE INDEX images_modality_uuid ON images (modality, uuid)
    WHERE deleted_at IS NULL AND modality IS NOT NULL;
