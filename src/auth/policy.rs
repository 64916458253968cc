//! Every object-level access rule in one place: who sees which image and how much of it, who
//! may change it, who curates the vocabulary. Route guards ([`super::Access`]) decide by role
//! alone; these decide per object, and every handler, list filter, history listing and revert
//! asks here.
//!
//! - Admins see and change everything.
//! - A doctor sees and changes the images they uploaded; another doctor's image does not exist
//!   for them (404, never 403: existence is not revealed).
//! - Researchers see every image de-identified (no `original_filename`, de-identified file
//!   copies), change no image, and curate labels, diseases and codes.

use super::{CurrentUser, Role};

/// How much of an image a caller sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageView {
    /// Everything, the original file included: the uploading doctor, admins.
    Full,
    /// No patient-identifying metadata, de-identified file copies: researchers.
    Deidentified,
}

/// Who uploaded an image: an internal user id (a row), or a public one (a history snapshot).
#[derive(Debug, Clone, Copy)]
pub enum Uploader<'a> {
    Id(i64),
    Uuid(&'a str),
}

impl Uploader<'_> {
    fn is(self, caller: &CurrentUser) -> bool {
        match self {
            Uploader::Id(id) => id == caller.id,
            Uploader::Uuid(uuid) => uuid == caller.uuid,
        }
    }
}

/// What the caller sees of an image uploaded by `uploader`; `None`: nothing (the image is 404
/// to them).
pub fn image_view(caller: &CurrentUser, uploader: Uploader<'_>) -> Option<ImageView> {
    if may_edit_image(caller, uploader) {
        Some(ImageView::Full)
    } else if caller.has(Role::Researcher) {
        Some(ImageView::Deidentified)
    } else {
        None
    }
}

/// Whether the caller may change an image uploaded by `uploader` (its description, labels,
/// deletion, revert): the uploading doctor and admins.
pub fn may_edit_image(caller: &CurrentUser, uploader: Uploader<'_>) -> bool {
    caller.is_admin() || (caller.has(Role::Doctor) && uploader.is(caller))
}

/// Whether the caller may change the vocabulary (labels, diseases, codes): researchers and
/// admins.
pub fn may_curate(caller: &CurrentUser) -> bool {
    caller.is_admin() || caller.has(Role::Researcher)
}

/// The uploader every image list is restricted to for this caller: `Some(caller.id)` for a
/// doctor who is neither researcher nor admin, `None` (every image) otherwise.
pub fn own_images_only(caller: &CurrentUser) -> Option<i64> {
    (!caller.is_admin() && !caller.has(Role::Researcher)).then_some(caller.id)
}

/// Whether the caller may see patients identified (`/patients`, the `patient_id` filter):
/// doctors and admins.
pub fn may_see_patients(caller: &CurrentUser) -> bool {
    caller.is_admin() || caller.has(Role::Doctor)
}

/// The uploader whose images decide which patients the caller sees: `Some(caller.id)` for
/// everyone but admins (a doctor sees the patients of their own images, counting those), `None`
/// (every patient, every image counted) for admins.
pub fn own_patients_only(caller: &CurrentUser) -> Option<i64> {
    (!caller.is_admin()).then_some(caller.id)
}

/// The refusal for a visible image the caller may not change (403).
pub const NOT_IMAGE_EDITOR: &str = "only the uploading doctor or an admin may change this image";

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: i64, roles: &[Role]) -> CurrentUser {
        crate::auth::test_user(id, roles)
    }

    #[test]
    fn images_are_seen_whole_by_owner_and_admin_de_identified_by_researchers() {
        let (owner, other, researcher, admin) = (
            user(1, &[Role::Doctor]),
            user(2, &[Role::Doctor]),
            user(3, &[Role::Researcher]),
            user(4, &[Role::Admin]),
        );
        assert_eq!(image_view(&owner, Uploader::Id(1)), Some(ImageView::Full));
        assert_eq!(image_view(&other, Uploader::Id(1)), None);
        assert_eq!(
            image_view(&researcher, Uploader::Id(1)),
            Some(ImageView::Deidentified)
        );
        assert_eq!(image_view(&admin, Uploader::Id(1)), Some(ImageView::Full));
        let both = user(5, &[Role::Doctor, Role::Researcher]);
        assert_eq!(image_view(&both, Uploader::Id(5)), Some(ImageView::Full));
        assert_eq!(
            image_view(&both, Uploader::Id(1)),
            Some(ImageView::Deidentified)
        );
        assert_eq!(
            image_view(&owner, Uploader::Uuid("u1")),
            Some(ImageView::Full)
        );
        assert_eq!(image_view(&other, Uploader::Uuid("u1")), None);
        assert!(may_edit_image(&owner, Uploader::Id(1)) && may_edit_image(&admin, Uploader::Id(1)));
        assert!(
            !may_edit_image(&other, Uploader::Id(1))
                && !may_edit_image(&researcher, Uploader::Id(1))
        );
        assert!(!may_edit_image(&both, Uploader::Id(1)));
    }

    #[test]
    fn curation_and_list_scope_follow_roles() {
        assert!(may_curate(&user(1, &[Role::Researcher])));
        assert!(may_curate(&user(1, &[Role::Admin])));
        assert!(!may_curate(&user(1, &[Role::Doctor])));
        assert_eq!(own_images_only(&user(7, &[Role::Doctor])), Some(7));
        assert_eq!(
            own_images_only(&user(7, &[Role::Doctor, Role::Researcher])),
            None
        );
        assert_eq!(own_images_only(&user(7, &[Role::Admin])), None);
    }

    #[test]
    fn patients_are_for_doctors_and_admins() {
        let (doctor, researcher, admin) = (
            user(1, &[Role::Doctor]),
            user(2, &[Role::Researcher]),
            user(3, &[Role::Admin]),
        );
        assert!(may_see_patients(&doctor) && may_see_patients(&admin));
        assert!(!may_see_patients(&researcher));
        assert_eq!(own_patients_only(&doctor), Some(1));
        assert_eq!(
            own_patients_only(&user(4, &[Role::Doctor, Role::Researcher])),
            Some(4)
        );
        assert_eq!(own_patients_only(&admin), None);
    }
}
