//! `labels` and the diseases they stand for (`label_diseases`): a vocabulary table
//! ([`super::vocabulary`]).

super::vocabulary::term_table!(
    Label,
    labels,
    label_diseases.label_id -> disease_id,
    super::diseases::Disease,
    diseases,
    diseases::name
);
