//! `rkube`: placeholder until `rkube up` lands.
fn main() {}
