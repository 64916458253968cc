//! The table definitions shared by both backends. Written by hand to the portable type subset
//! of `MultiConnection` (integers, floats, Text, Bool, Timestamp); keep in step with
//! `migrations/sqlite` and `migrations/postgres`.

diesel::table! {
    users (id) {
        id -> BigInt,
        uuid -> Text,
        username -> Text,
        full_name -> Nullable<Text>,
        email -> Nullable<Text>,
        password_hash -> Text,
        is_active -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        /// `text::fold_key(username)`: the unique comparison key.
        username_key -> Nullable<Text>,
    }
}

diesel::table! {
    groups (id) {
        id -> BigInt,
        name -> Text,
        description -> Text,
    }
}

diesel::table! {
    user_groups (user_id, group_id) {
        user_id -> BigInt,
        group_id -> BigInt,
    }
}

diesel::table! {
    sessions (id) {
        id -> BigInt,
        key_hash -> Text,
        user_id -> Nullable<BigInt>,
        state -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> BigInt,
        uuid -> Text,
        user_id -> BigInt,
        name -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    login_failures (id) {
        id -> BigInt,
        username -> Text,
        client_ip -> Text,
        failed_at -> Timestamp,
    }
}

diesel::table! {
    code_systems (id) {
        id -> Text,
        name -> Text,
        version -> Text,
    }
}

diesel::table! {
    codes (id) {
        id -> BigInt,
        uuid -> Text,
        system_id -> Text,
        code -> Text,
        description -> Text,
        billable -> Bool,
        is_active -> Bool,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    diseases (id) {
        id -> BigInt,
        uuid -> Text,
        name -> Text,
        description -> Nullable<Text>,
        created_by -> BigInt,
        is_active -> Bool,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        /// `text::fold_key(name)`: the unique comparison key among active rows.
        name_key -> Nullable<Text>,
    }
}

diesel::table! {
    disease_codes (disease_id, code_id) {
        disease_id -> BigInt,
        code_id -> BigInt,
    }
}

diesel::table! {
    labels (id) {
        id -> BigInt,
        uuid -> Text,
        name -> Text,
        description -> Nullable<Text>,
        created_by -> BigInt,
        is_active -> Bool,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        /// `text::fold_key(name)`: the unique comparison key among active rows.
        name_key -> Nullable<Text>,
    }
}

diesel::table! {
    label_diseases (label_id, disease_id) {
        label_id -> BigInt,
        disease_id -> BigInt,
    }
}

diesel::table! {
    images (id) {
        id -> BigInt,
        uuid -> Text,
        uploaded_by -> BigInt,
        description -> Nullable<Text>,
        content_type -> Text,
        size_bytes -> BigInt,
        sha256 -> Text,
        width -> Nullable<Integer>,
        height -> Nullable<Integer>,
        original_filename -> Nullable<Text>,
        object_key -> Text,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
        patient_id -> Nullable<BigInt>,
        study_id -> Nullable<BigInt>,
        series_id -> Nullable<BigInt>,
        sop_instance_uid -> Nullable<Text>,
        modality -> Nullable<Text>,
        burned_in_annotation -> Bool,
        /// The identifiers its own file gave, one per line.
        redaction_terms -> Nullable<Text>,
        /// Number of Frames (0028,0008); 1 for single-frame images.
        frame_count -> Integer,
    }
}

diesel::table! {
    index_generations (name) {
        name -> Text,
        generation -> BigInt,
    }
}

diesel::table! {
    annotations (id) {
        id -> BigInt,
        uuid -> Text,
        image_id -> BigInt,
        label_id -> BigInt,
        /// `box`, `polygon` or `point`.
        shape -> Text,
        /// The shape's geometry as JSON, in stored-image pixels.
        geometry -> Text,
        frame -> Integer,
        note -> Nullable<Text>,
        created_by -> BigInt,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    datasets (id) {
        id -> BigInt,
        uuid -> Text,
        name -> Text,
        description -> Nullable<Text>,
        /// The filter as given, JSON.
        filter -> Text,
        created_by -> BigInt,
        created_at -> Timestamp,
        image_count -> Integer,
        annotation_count -> Integer,
    }
}

diesel::table! {
    dataset_labels (dataset_id, label_id) {
        dataset_id -> BigInt,
        label_id -> BigInt,
        /// The label's name when the dataset was frozen.
        name -> Text,
    }
}

diesel::table! {
    dataset_images (dataset_id, image_id) {
        dataset_id -> BigInt,
        image_id -> BigInt,
        image_version -> Integer,
    }
}

diesel::table! {
    dataset_diagnoses (dataset_id, image_id, label_id) {
        dataset_id -> BigInt,
        image_id -> BigInt,
        label_id -> BigInt,
    }
}

diesel::table! {
    dataset_annotations (dataset_id, image_id, annotation_id) {
        dataset_id -> BigInt,
        image_id -> BigInt,
        annotation_id -> BigInt,
        annotation_version -> Integer,
        label_id -> BigInt,
        shape -> Text,
        geometry -> Text,
        frame -> Integer,
    }
}

diesel::table! {
    patient_terms (patient_id, term) {
        patient_id -> BigInt,
        term -> Text,
    }
}

diesel::table! {
    service_keys (name) {
        name -> Text,
        fingerprint -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    patients (id) {
        id -> BigInt,
        uuid -> Text,
        issuer -> Text,
        patient_id -> Text,
        name -> Nullable<Text>,
        /// `YYYY-MM-DD`.
        birth_date -> Nullable<Text>,
        sex -> Nullable<Text>,
        subject_id -> Text,
        /// Folded patient ID and name (`text::fold_key`), for `q=`.
        search_key -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    studies (id) {
        id -> BigInt,
        uuid -> Text,
        study_instance_uid -> Text,
        patient_id -> Nullable<BigInt>,
        /// `YYYY-MM-DD`.
        study_date -> Nullable<Text>,
        accession_number -> Nullable<Text>,
        description -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    series (id) {
        id -> BigInt,
        series_instance_uid -> Text,
        study_id -> BigInt,
        modality -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    image_labels (image_id, label_id) {
        image_id -> BigInt,
        label_id -> BigInt,
        note -> Nullable<Text>,
        assigned_by -> BigInt,
        assigned_at -> Timestamp,
    }
}

diesel::table! {
    history (id) {
        id -> BigInt,
        uuid -> Text,
        entity_type -> Text,
        entity_id -> Text,
        action -> Text,
        schema_version -> Integer,
        snapshot -> Text,
        changed_by -> BigInt,
        changed_at -> Timestamp,
        request_id -> Text,
    }
}

diesel::table! {
    events (id) {
        id -> BigInt,
        uuid -> Text,
        request_id -> Text,
        occurred_at -> Timestamp,
        user_id -> Nullable<BigInt>,
        auth -> Text,
        method -> Text,
        path -> Text,
        query -> Text,
        status -> Integer,
        duration_ms -> Double,
        client_ip -> Text,
        user_agent -> Nullable<Text>,
        headers -> Text,
        detail -> Nullable<Text>,
    }
}

diesel::joinable!(user_groups -> users (user_id));
diesel::joinable!(user_groups -> groups (group_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(codes -> code_systems (system_id));
diesel::joinable!(disease_codes -> diseases (disease_id));
diesel::joinable!(disease_codes -> codes (code_id));
diesel::joinable!(label_diseases -> labels (label_id));
diesel::joinable!(label_diseases -> diseases (disease_id));
diesel::joinable!(images -> users (uploaded_by));
diesel::joinable!(images -> patients (patient_id));
diesel::joinable!(images -> studies (study_id));
diesel::joinable!(studies -> patients (patient_id));
diesel::joinable!(patient_terms -> patients (patient_id));
diesel::joinable!(series -> studies (study_id));
diesel::joinable!(image_labels -> images (image_id));
diesel::joinable!(image_labels -> labels (label_id));
diesel::joinable!(history -> users (changed_by));
diesel::joinable!(annotations -> images (image_id));
diesel::joinable!(annotations -> labels (label_id));
diesel::joinable!(annotations -> users (created_by));
diesel::joinable!(datasets -> users (created_by));
diesel::joinable!(dataset_images -> images (image_id));
diesel::joinable!(dataset_labels -> labels (label_id));
diesel::joinable!(events -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    groups,
    user_groups,
    sessions,
    api_tokens,
    login_failures,
    code_systems,
    codes,
    diseases,
    disease_codes,
    labels,
    label_diseases,
    images,
    image_labels,
    service_keys,
    patients,
    patient_terms,
    studies,
    series,
    history,
    events,
    annotations,
    datasets,
    dataset_labels,
    dataset_images,
    dataset_diagnoses,
    dataset_annotations,
);
