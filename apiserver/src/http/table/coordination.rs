//! Printers of `coordination.k8s.io`: leases.

use serde_json::json;

use super::{AGE, NAME, Printer, name_of, str_of, string};

pub(super) const LEASE: Printer = Printer::new(&[NAME, string("Holder"), AGE], |o, ctx| {
    vec![
        name_of(o),
        json!(str_of(&o["spec"]["holderIdentity"])),
        ctx.age(o),
    ]
});
