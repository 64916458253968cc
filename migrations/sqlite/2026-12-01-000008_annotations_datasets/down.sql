DROP TABLE dataset_annotations;
DROP TABLE dataset_diagnoses;
DROP TABLE dataset_images;
DROP TABLE dataset_labels;
DROP TABLE datasets;
DROP INDEX annotations_image;
DROP TABLE annotations;
ALTER TABLE images DROP COLUMN frame_count;
