//! The Go types' markers that give server-side apply its list and map semantics
//! (`+listType`, `+listMapKey`, `+mapType`, `+structType`, `+patchStrategy`,
//! `+patchMergeKey`, `+default`), read at build time from the v1.33 `generated.proto`
//! files, which keep the Go comments (see build.rs). Upstream publishes the same facts
//! in its OpenAPI as `x-kubernetes-list-type` and friends; k8s-openapi's schemas leave
//! them out.

const GO_MARKERS: &str = include_str!(concat!(env!("OUT_DIR"), "/go-markers.tsv"));

/// One marker: on `field` of the type named `definition` (the OpenAPI definition name,
/// `io.k8s.api.core.v1.PodSpec`), or on the type itself when `field` is `"."`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    /// The OpenAPI definition name of the Go type.
    pub definition: &'static str,
    /// The field's JSON name, or `"."` for a marker on the type.
    pub field: &'static str,
    /// The marker's name (`listType`).
    pub key: &'static str,
    /// Its value as written (`map`, `"TCP"`).
    pub value: &'static str,
}

/// Every marker of every built-in type, in proto file order.
pub fn all() -> impl Iterator<Item = Marker> {
    GO_MARKERS.lines().filter_map(|line| {
        let mut parts = line.splitn(4, '\t');
        Some(Marker {
            definition: parts.next()?,
            field: parts.next()?,
            key: parts.next()?,
            value: parts.next()?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(definition: &str, field: &str) -> Vec<(&'static str, &'static str)> {
        all()
            .filter(|m| m.definition == definition && m.field == field)
            .map(|m| (m.key, m.value))
            .collect()
    }

    #[test]
    fn list_and_map_markers_of_the_core_types() {
        let containers = of("io.k8s.api.core.v1.PodSpec", "containers");
        assert!(containers.contains(&("listType", "map")), "{containers:?}");
        assert!(containers.contains(&("listMapKey", "name")));
        assert!(of("io.k8s.api.core.v1.PodSpec", "tolerations").contains(&("listType", "atomic")));
        assert!(of("io.k8s.api.core.v1.PodSpec", "nodeSelector").contains(&("mapType", "atomic")));
        assert!(
            of("io.k8s.api.core.v1.ContainerPort", "protocol").contains(&("default", "\"TCP\""))
        );
        assert!(
            of("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector", ".")
                .contains(&("structType", "atomic"))
        );
        let meta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
        assert!(of(meta, "finalizers").contains(&("listType", "set")));
        assert!(of(meta, "ownerReferences").contains(&("listMapKey", "uid")));
        // a comment's prose is not a marker
        assert!(all().all(|m| !m.key.contains(' ')));
    }
}
