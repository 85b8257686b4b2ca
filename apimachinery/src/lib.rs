//! The Kubernetes API's shared vocabulary, with no I/O: the resource table of every
//! built-in v1.33 resource, `metav1.Status` errors, label and field selectors,
//! `resource.Quantity`, and the codecs for request bodies (patches, protobuf). Every
//! other rkube crate speaks in these terms.

pub mod errors;
pub mod fields;
pub mod labels;
pub mod markers;
pub mod patch;
pub mod protobuf;
pub mod quantity;
pub mod quota;
pub mod resources;
