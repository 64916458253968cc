//! `diseases` and their codes (`disease_codes`): a vocabulary table ([`super::vocabulary`]).

super::vocabulary::term_table!(
    Disease,
    diseases,
    disease_codes.disease_id -> code_id,
    super::codes::Code,
    codes,
    (codes::system_id, codes::code)
);
