-- Regions on images and frozen datasets. See API.md "Annotations: regions on images" and
-- "Datasets: frozen, reproducible exports for machine learning".

-- Number of Frames (0028,0008) of a multi-frame DICOM; 1 for every other image (and for
-- images stored before this column existed).
ALTER TABLE images ADD COLUMN frame_count INTEGER NOT NULL DEFAULT 1;

-- One region with one label on one frame of one image. `geometry` is the JSON of its shape
-- (`box`, `polygon`, `point`) in stored-image pixels; `version` moves with every change (the
-- ETag). A deleted annotation keeps its row (`deleted_at`) for history and revert.
CREATE TABLE annotations (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    image_id BIGINT NOT NULL REFERENCES images (id),
    label_id BIGINT NOT NULL REFERENCES labels (id),
    shape TEXT NOT NULL,
    geometry TEXT NOT NULL,
    frame INTEGER NOT NULL,
    note TEXT,
    created_by BIGINT NOT NULL REFERENCES users (id),
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);
CREATE INDEX annotations_image ON annotations (image_id, uuid) WHERE deleted_at IS NULL;

-- A frozen selection. `filter` is the JSON the researcher gave; `labels` are counted and
-- named in `dataset_labels`. Rows are never updated.
CREATE TABLE datasets (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT,
    filter TEXT NOT NULL,
    created_by BIGINT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    image_count INTEGER NOT NULL,
    annotation_count INTEGER NOT NULL
);

-- What a dataset holds, copied when it was frozen and never changed. Archive order is the
-- internal image id (upload order), then the annotation id.

-- The labels its diagnoses and annotations use, with their names as they were then.
CREATE TABLE dataset_labels (
    dataset_id BIGINT NOT NULL REFERENCES datasets (id),
    label_id BIGINT NOT NULL REFERENCES labels (id),
    name TEXT NOT NULL,
    PRIMARY KEY (dataset_id, label_id)
);

-- Its images, at the version they had.
CREATE TABLE dataset_images (
    dataset_id BIGINT NOT NULL REFERENCES datasets (id),
    image_id BIGINT NOT NULL REFERENCES images (id),
    image_version INTEGER NOT NULL,
    PRIMARY KEY (dataset_id, image_id)
);

-- Their diagnoses.
CREATE TABLE dataset_diagnoses (
    dataset_id BIGINT NOT NULL REFERENCES datasets (id),
    image_id BIGINT NOT NULL REFERENCES images (id),
    label_id BIGINT NOT NULL REFERENCES labels (id),
    PRIMARY KEY (dataset_id, image_id, label_id)
);

-- Their annotations: label, shape, geometry and frame copied, with the version they had.
CREATE TABLE dataset_annotations (
    dataset_id BIGINT NOT NULL REFERENCES datasets (id),
    image_id BIGINT NOT NULL REFERENCES images (id),
    annotation_id BIGINT NOT NULL REFERENCES annotations (id),
    annotation_version INTEGER NOT NULL,
    label_id BIGINT NOT NULL REFERENCES labels (id),
    shape TEXT NOT NULL,
    geometry TEXT NOT NULL,
    frame INTEGER NOT NULL,
    PRIMARY KEY (dataset_id, image_id, annotation_id)
);
