//! Printers of `node.k8s.io`: runtime classes.

use serde_json::json;

use super::{AGE, NAME, Printer, name_of, str_of, string};

pub(super) const RUNTIME_CLASS: Printer =
    Printer::new(&[NAME, string("Handler"), AGE], |o, ctx| {
        vec![name_of(o), json!(str_of(&o["handler"])), ctx.age(o)]
    });
