//! `medlabel create-dummy-data`: realistic demo data. Doctors and researchers with fake names,
//! emails, passwords and API tokens; a label vocabulary and diseases linked to real ICD-10-CM
//! and ICD-9-CM codes from the bundled lists; generated PNG, JPEG and small DICOM images of
//! varied sizes stored like uploads, the DICOM ones of a few fake patients per doctor (fake
//! names, IDs and birth dates) with two or three studies each, filed as uploads are; diagnoses
//! on them; a history entry for every change, as the API would record. Deterministic for a given `--seed` (passwords and tokens excepted).
//! Running it again adds more data.

use anyhow::Context as _;
use dicom_core::VR;
use dicom_dictionary_std::tags;
use fake::faker::internet::en::SafeEmail;
use fake::faker::name::en::{FirstName, LastName};
use fake::Fake;
use object_store::{ObjectStoreExt as _, PutPayload};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

use crate::auth::{password, tokens, AuthKind, CurrentUser, Role, RoleSet};
use crate::changes::vocabulary::TermState;
use crate::changes::{self, Change};
use crate::db::DbConnection;
use crate::imaging::ImageKind;
use crate::models::diseases::{self, Disease};
use crate::models::labels::{self, Label};
use crate::models::{api_tokens, codes, images, users};
use crate::state::AppState;
use crate::storage::Storage;

/// (disease and label name, description, codes as `system:code`).
const VOCABULARY: [(&str, &str, &[&str]); 12] = [
    (
        "Pneumonia",
        "Infection of the lung parenchyma",
        &["icd-10:J18.9", "icd-9:486"],
    ),
    (
        "Pleural effusion",
        "Fluid in the pleural space",
        &["icd-10:J90", "icd-9:511.9"],
    ),
    (
        "Pneumothorax",
        "Air in the pleural space",
        &["icd-10:J93.9", "icd-9:512.89"],
    ),
    (
        "Cardiomegaly",
        "Enlarged cardiac silhouette",
        &["icd-10:I51.7", "icd-9:429.3"],
    ),
    (
        "Atelectasis",
        "Collapse of lung tissue",
        &["icd-10:J98.11", "icd-9:518.0"],
    ),
    (
        "Pulmonary nodule",
        "Solitary nodule of the lung",
        &["icd-10:R91.1", "icd-9:793.11"],
    ),
    (
        "Femoral neck fracture",
        "Fracture of the neck of the femur",
        &["icd-10:S72.009A", "icd-9:820.8"],
    ),
    (
        "Knee osteoarthritis",
        "Degenerative joint disease of the knee",
        &["icd-10:M17.9", "icd-9:715.96"],
    ),
    (
        "Ischemic stroke",
        "Cerebral infarction",
        &["icd-10:I63.9", "icd-9:434.91"],
    ),
    (
        "Lung carcinoma",
        "Malignant neoplasm of the bronchus or lung",
        &["icd-10:C34.90", "icd-9:162.9"],
    ),
    (
        "Appendicitis",
        "Acute appendicitis",
        &["icd-10:K35.80", "icd-9:540.9"],
    ),
    (
        "Kidney stone",
        "Calculus of the kidney",
        &["icd-10:N20.0", "icd-9:592.0"],
    ),
];

const STUDIES: [&str; 8] = [
    "Chest X-ray, PA view",
    "Chest X-ray, lateral view",
    "CT head without contrast",
    "Knee X-ray, AP view",
    "Hip X-ray",
    "CT abdomen, axial slice",
    "CT chest, axial slice",
    "Follow-up imaging",
];

#[derive(Debug, Clone)]
pub struct DummyOptions {
    pub doctors: usize,
    pub researchers: usize,
    pub images_per_doctor: usize,
    pub seed: u64,
}

#[derive(Debug)]
pub struct DummyUser {
    pub username: String,
    pub roles: Vec<&'static str>,
    pub password: String,
    pub token: String,
}

#[derive(Debug, Default)]
pub struct DummySummary {
    pub users: Vec<DummyUser>,
    pub images: usize,
    pub diagnoses: usize,
    pub annotations: usize,
    pub labels: usize,
    pub diseases: usize,
}

pub async fn create_dummy_data(
    state: &AppState,
    options: &DummyOptions,
    mut progress: impl FnMut(),
) -> anyhow::Result<DummySummary> {
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut conn = state.db.get()?;
    crate::startup::prepare(state)?;
    crate::codesets::import_bundled_if_absent(&mut conn)?;
    let change_id = format!("create-dummy-data-{}", uuid::Uuid::now_v7());
    let mut summary = DummySummary::default();

    let mut doctors = Vec::new();
    let mut researchers = Vec::new();
    for i in 0..options.doctors + options.researchers {
        let role = if i < options.doctors {
            Role::Doctor
        } else {
            Role::Researcher
        };
        let (user, dummy) = create_user(&mut conn, &mut rng, role)?;
        let current = CurrentUser::new(
            user,
            [role].into_iter().collect::<RoleSet>(),
            AuthKind::Token,
        );
        match role {
            Role::Doctor => doctors.push(current),
            _ => researchers.push(current),
        }
        summary.users.push(dummy);
    }
    let curator = researchers
        .first()
        .or(doctors.first())
        .context("no user to create the vocabulary with")?
        .clone();
    let curate = Change::offline(curator.id, change_id.clone());
    let label_ids = vocabulary(&mut conn, &curate, &mut summary)?;

    for doctor in &doctors {
        let change = Change::offline(doctor.id, change_id.clone());
        let patients = demo_patients(&mut rng, options.images_per_doctor.div_ceil(6).max(2));
        for _ in 0..options.images_per_doctor {
            let (kind, bytes, width, height, study) = random_image(&mut rng, &patients)?;
            let header = match kind {
                ImageKind::Dicom => Some(
                    crate::imaging::dicom::read_header(&bytes)
                        .map_err(|e| anyhow::anyhow!("a generated DICOM does not read: {e}"))?,
                ),
                _ => None,
            };
            let key = Storage::new_image_key();
            state
                .storage
                .store()
                .put(&key, PutPayload::from(bytes.clone()))
                .await
                .context("storing a generated image")?;
            let filename = format!(
                "{}-{:04}.{}",
                study
                    .split(',')
                    .next()
                    .unwrap_or("study")
                    .to_lowercase()
                    .replace(' ', "-"),
                rng.random_range(0..10_000),
                kind.extension()
            );
            let labels_here: Vec<String> = (0..rng.random_range(0..3))
                .map(|_| label_ids[rng.random_range(0..label_ids.len())].clone())
                .collect();
            let regions = demo_regions(&mut rng, width, height, &label_ids);
            crate::db::write_transaction(&mut conn, |conn| -> anyhow::Result<()> {
                let belonging = match &header {
                    Some(header) => changes::images::Belonging::Dicom(header),
                    None => changes::images::Belonging::Form(None),
                };
                let uploaded = changes::images::upload(
                    conn,
                    doctor,
                    &change,
                    &state.pseudonym_key,
                    images::NewImage {
                        uploaded_by: doctor.id,
                        description: Some(study),
                        content_type: kind.content_type(),
                        size_bytes: bytes.len() as i64,
                        sha256: &hex::encode(Sha256::digest(&bytes)),
                        width: Some(width as i32),
                        height: Some(height as i32),
                        original_filename: Some(&filename),
                        object_key: key.as_ref(),
                        filing: Default::default(),
                    },
                    belonging,
                )?;
                let image = match uploaded {
                    changes::images::Uploaded::Created(image, _)
                    | changes::images::Uploaded::Existing(image, _) => image,
                };
                let mut done = Vec::new();
                for label in labels_here {
                    if !done.contains(&label) {
                        changes::images::assign_label(
                            conn,
                            doctor,
                            &change,
                            &image.id,
                            &label,
                            Some("seen on review"),
                        )?;
                        done.push(label);
                    }
                }
                summary.diagnoses += done.len();
                for (label, shape, geometry) in &regions {
                    let request = changes::annotations::AnnotationRequest {
                        label_id: label,
                        shape,
                        geometry,
                        frame: None,
                        note: None,
                    };
                    changes::annotations::create(conn, doctor, &change, &image.id, &request)?;
                }
                summary.annotations += regions.len();
                Ok(())
            })?;
            summary.images += 1;
            progress();
        }
    }
    Ok(summary)
}

fn create_user(
    conn: &mut DbConnection,
    rng: &mut StdRng,
    role: Role,
) -> anyhow::Result<(users::User, DummyUser)> {
    let first: String = FirstName().fake_with_rng(rng);
    let last: String = LastName().fake_with_rng(rng);
    let email: String = SafeEmail().fake_with_rng(rng);
    let base: String = format!("{}.{}", first, last)
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    let mut username = base.clone();
    let mut n = 1;
    while users::username_taken(conn, &username)? {
        n += 1;
        username = format!("{base}{n}");
    }
    let secret = password::generate_password();
    let hash = password::hash_password(&secret)?;
    let full_name = format!("{first} {last}");
    let user = users::insert_user(
        conn,
        users::NewUser {
            username: &username,
            password_hash: &hash,
            full_name: Some(&full_name),
            email: Some(&email),
            roles: &[role],
        },
    )?;
    let token = tokens::generate_token();
    api_tokens::insert_token(
        conn,
        user.id,
        "create-dummy-data",
        &tokens::digest(&token),
        90,
    )?;
    let dummy = DummyUser {
        username,
        roles: vec![role.name()],
        password: secret,
        token,
    };
    Ok((user, dummy))
}

/// The diseases and labels of the vocabulary (reused when they exist), created as the API
/// creates them ([`changes::vocabulary`]); returns the labels' public ids.
fn vocabulary(
    conn: &mut DbConnection,
    change: &Change,
    summary: &mut DummySummary,
) -> anyhow::Result<Vec<String>> {
    let mut label_ids = Vec::new();
    for (name, description, code_refs) in VOCABULARY {
        let id = crate::db::write_transaction(conn, |conn| -> anyhow::Result<String> {
            // Codes that are not loaded are left out rather than refused.
            let codes_here: Vec<(String, String)> = code_refs
                .iter()
                .filter_map(|code_ref| code_ref.split_once(':'))
                .filter(|(system, code)| codes::find_code(conn, system, code).is_ok())
                .map(|(system, code)| (system.to_owned(), code.to_owned()))
                .collect();
            let disease = match diseases::list(conn, Some(name), None, None, 50)?
                .into_iter()
                .find(|d| d.name == *name)
            {
                Some(existing) => existing.uuid,
                None => {
                    let new = TermState {
                        name: (*name).to_owned(),
                        description: Some((*description).to_owned()),
                        is_active: true,
                        links: codes_here,
                    };
                    summary.diseases += 1;
                    changes::vocabulary::create::<Disease>(conn, change, &new)?
                        .0
                        .id
                }
            };
            let label = match labels::list(conn, Some(name), None, None, 50)?
                .into_iter()
                .find(|l| l.name == *name)
            {
                Some(existing) => existing.uuid,
                None => {
                    let new = TermState {
                        name: (*name).to_owned(),
                        description: Some((*description).to_owned()),
                        is_active: true,
                        links: vec![disease],
                    };
                    summary.labels += 1;
                    changes::vocabulary::create::<Label>(conn, change, &new)?
                        .0
                        .id
                }
            };
            Ok(label)
        })?;
        label_ids.push(id);
    }
    Ok(label_ids)
}

/// A generated image: mostly PNG, some JPEG, a few small DICOM files, of varied sizes.
/// A fake patient of one doctor, with the studies their images are filed under.
struct DemoPatient {
    attributes: Vec<(dicom_core::Tag, VR, String)>,
    /// (Study Instance UID, Study Date, Accession Number, description, modality).
    studies: Vec<(String, String, String, &'static str, &'static str)>,
}

/// A random DICOM UID under the `2.25` root (PS3.5 B.2: a UUID as a decimal integer).
fn demo_uid(rng: &mut StdRng) -> String {
    format!("2.25.{}", rng.random::<u128>() >> 1)
}

/// A new DICOM UID under `2.25` from a UUID v7 (unique, not seeded).
fn fresh_uid() -> String {
    format!("2.25.{}", uuid::Uuid::now_v7().as_u128())
}

/// A few patients with realistic fake names, IDs and dates, each with two or three studies.
fn demo_patients(rng: &mut StdRng, count: usize) -> Vec<DemoPatient> {
    (0..count)
        .map(|_| {
            let first: String = FirstName().fake_with_rng(rng);
            let last: String = LastName().fake_with_rng(rng);
            let born = chrono::NaiveDate::from_ymd_opt(
                rng.random_range(1930..2015),
                rng.random_range(1..=12),
                rng.random_range(1..=28),
            )
            .unwrap_or_default();
            let attributes = vec![
                (tags::PATIENT_NAME, VR::PN, format!("{last}^{first}")),
                (
                    tags::PATIENT_ID,
                    VR::LO,
                    format!("MRN{:07}", rng.random_range(0..10_000_000)),
                ),
                (
                    tags::ISSUER_OF_PATIENT_ID,
                    VR::LO,
                    "DEMO-HOSPITAL".to_owned(),
                ),
                (
                    tags::PATIENT_BIRTH_DATE,
                    VR::DA,
                    born.format("%Y%m%d").to_string(),
                ),
                (
                    tags::PATIENT_SEX,
                    VR::CS,
                    ["F", "M"][rng.random_range(0..2)].to_owned(),
                ),
            ];
            let studies = (0..rng.random_range(2..=3))
                .map(|_| {
                    let description = STUDIES[rng.random_range(0..STUDIES.len())];
                    let modality = if description.starts_with("CT") {
                        "CT"
                    } else {
                        "CR"
                    };
                    let date = chrono::NaiveDate::from_ymd_opt(
                        rng.random_range(2018..2027),
                        rng.random_range(1..=12),
                        rng.random_range(1..=28),
                    )
                    .unwrap_or_default();
                    (
                        demo_uid(rng),
                        date.format("%Y%m%d").to_string(),
                        format!("A{:08}", rng.random_range(0..100_000_000)),
                        description,
                        modality,
                    )
                })
                .collect();
            DemoPatient {
                attributes,
                studies,
            }
        })
        .collect()
}

/// One to three regions on a `width` x `height` image: boxes and polygons (a triangle or a
/// quadrilateral) inside it, each with one of `labels`.
fn demo_regions(
    rng: &mut StdRng,
    width: u32,
    height: u32,
    labels: &[String],
) -> Vec<(String, &'static str, serde_json::Value)> {
    let (w, h) = (f64::from(width), f64::from(height));
    (0..rng.random_range(1..=3))
        .map(|_| {
            let label = labels[rng.random_range(0..labels.len())].clone();
            // A region between a tenth and a third of the image, wholly inside it.
            let (bw, bh) = (w * rng.random_range(0.1..0.33), h * rng.random_range(0.1..0.33));
            let (x, y) = (rng.random_range(0.0..w - bw), rng.random_range(0.0..h - bh));
            let round = |v: f64| (v * 10.0).round() / 10.0;
            if rng.random_bool(0.5) {
                let geometry = serde_json::json!({
                    "x": round(x), "y": round(y), "width": round(bw).max(1.0), "height": round(bh).max(1.0)
                });
                (label, "box", fit_box(geometry, w, h))
            } else {
                let points = serde_json::json!([
                    [round(x + bw / 2.0), round(y)],
                    [round(x + bw), round(y + bh)],
                    [round(x), round(y + bh * rng.random_range(0.5..1.0))],
                ]);
                (label, "polygon", serde_json::json!({ "points": points }))
            }
        })
        .collect()
}

/// A box whose rounded size could cross the border, pulled back inside.
fn fit_box(mut geometry: serde_json::Value, w: f64, h: f64) -> serde_json::Value {
    let get = |g: &serde_json::Value, k: &str| g[k].as_f64().unwrap_or(0.0);
    let (x, y) = (get(&geometry, "x"), get(&geometry, "y"));
    geometry["width"] = get(&geometry, "width").min(w - x).into();
    geometry["height"] = get(&geometry, "height").min(h - y).into();
    geometry
}

/// A generated image: a PNG or JPEG without a patient, or (half of them) a small DICOM of one
/// of `patients`, in one of their studies. Returns the type, bytes, size and description.
fn random_image(
    rng: &mut StdRng,
    patients: &[DemoPatient],
) -> anyhow::Result<(ImageKind, Vec<u8>, u32, u32, &'static str)> {
    let roll: f64 = rng.random();
    let (width, height) = (rng.random_range(64..=512u32), rng.random_range(64..=512u32));
    let shade = rng.random_range(0..=255u8);
    let pixel = |x: u32, y: u32| ((x * 7 + y * 3) as u8).wrapping_add(shade);
    let description = STUDIES[rng.random_range(0..STUDIES.len())];
    if roll < 0.35 {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Grayscale);
        let mut writer = encoder.write_header()?;
        let data: Vec<u8> = (0..height)
            .flat_map(|y| (0..width).map(move |x| pixel(x, y)))
            .collect();
        writer.write_image_data(&data)?;
        writer.finish()?;
        Ok((ImageKind::Png, out, width, height, description))
    } else if roll < 0.5 || patients.is_empty() {
        let mut out = Vec::new();
        let data: Vec<u8> = (0..height)
            .flat_map(|y| (0..width).map(move |x| pixel(x, y)))
            .collect();
        jpeg_encoder::Encoder::new(&mut out, 85).encode(
            &data,
            width as u16,
            height as u16,
            jpeg_encoder::ColorType::Luma,
        )?;
        Ok((ImageKind::Jpeg, out, width, height, description))
    } else {
        let (rows, columns) = (height.min(256) as u16, width.min(256) as u16);
        let patient = &patients[rng.random_range(0..patients.len())];
        let (study_uid, date, accession, description, modality) =
            &patient.studies[rng.random_range(0..patient.studies.len())];
        let mut attributes = patient.attributes.clone();
        attributes.extend([
            (tags::STUDY_INSTANCE_UID, VR::UI, study_uid.clone()),
            (tags::STUDY_DATE, VR::DA, date.clone()),
            (tags::ACCESSION_NUMBER, VR::SH, accession.clone()),
            (tags::STUDY_DESCRIPTION, VR::LO, (*description).to_owned()),
            // Unique per run (not seeded): running again adds images, as new instances.
            (tags::SERIES_INSTANCE_UID, VR::UI, fresh_uid()),
            (tags::MODALITY, VR::CS, (*modality).to_owned()),
            (tags::SOP_INSTANCE_UID, VR::UI, fresh_uid()),
        ]);
        let bytes = crate::imaging::dicom::synthetic_dicom(rows, columns, shade, &attributes)?;
        Ok((
            ImageKind::Dicom,
            bytes,
            columns as u32,
            rows as u32,
            description,
        ))
    }
}
