//! Bodies built with k8s-rs-pb's generated types, wrapped as client-go wraps them, and
//! decoded: each expected JSON is what upstream's `encoding/json` writes for the object
//! the Go client held. Zero scalars the Go encoder would write for fields nobody set are
//! set explicitly here, to show they are dropped again.

use std::collections::BTreeMap;

use k8s_rs_pb::api::apps::v1 as apps;
use k8s_rs_pb::api::coordination::v1 as coordination;
use k8s_rs_pb::api::core::v1 as core;
use k8s_rs_pb::api::networking::v1 as networking;
use k8s_rs_pb::api::rbac::v1 as rbac;
use k8s_rs_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_rs_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_rs_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use k8s_rs_pb::apimachinery::pkg::util::intstr::IntOrString;
use protobuf::{Message, MessageField};
use serde_json::{Value, json};

use super::*;

/// `object` as client-go's protobuf serializer writes it.
fn body(api_version: &str, kind: &str, object: &impl Message) -> Vec<u8> {
    let envelope = Unknown {
        typeMeta: MessageField::some(TypeMeta {
            apiVersion: Some(api_version.into()),
            kind: Some(kind.into()),
            ..Default::default()
        }),
        raw: Some(object.write_to_bytes().unwrap()),
        contentEncoding: Some(String::new()),
        contentType: Some(String::new()),
        ..Default::default()
    };
    let mut body = b"k8s\x00".to_vec();
    body.extend(envelope.write_to_bytes().unwrap());
    body
}

fn decoded(api_version: &str, kind: &str, object: &impl Message) -> Value {
    decode(&body(api_version, kind, object), Defaults::default()).unwrap()
}

/// Object metadata as a Go client writes it for a new object: every non-pointer field,
/// set or not, and an empty message for the zero creation timestamp.
fn metadata(name: &str) -> MessageField<meta::ObjectMeta> {
    MessageField::some(meta::ObjectMeta {
        name: Some(name.into()),
        generateName: Some(String::new()),
        namespace: Some(String::new()),
        selfLink: Some(String::new()),
        uid: Some(String::new()),
        resourceVersion: Some(String::new()),
        generation: Some(0),
        creationTimestamp: MessageField::some(meta::Time::default()),
        ..Default::default()
    })
}

fn int(n: i32) -> MessageField<IntOrString> {
    MessageField::some(IntOrString {
        type_: Some(0),
        intVal: Some(n),
        strVal: Some(String::new()),
        ..Default::default()
    })
}

fn string(s: &str) -> MessageField<IntOrString> {
    MessageField::some(IntOrString {
        type_: Some(1),
        intVal: Some(0),
        strVal: Some(s.into()),
        ..Default::default()
    })
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn configmap_decodes_to_its_json() {
    let configmap = core::ConfigMap {
        metadata: MessageField::some(meta::ObjectMeta {
            namespace: Some("default".into()),
            labels: labels(&[("app", "web")]),
            ..metadata("a").unwrap()
        }),
        data: labels(&[("k", "v"), ("empty", "")]),
        binaryData: [("b".to_owned(), vec![0, 1, 2])].into(),
        ..Default::default()
    };
    assert_eq!(
        decoded("v1", "ConfigMap", &configmap),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "default", "labels": {"app": "web"}},
            "data": {"k": "v", "empty": ""},
            "binaryData": {"b": "AAEC"},
        })
    );
}

#[test]
fn deployment_keeps_zero_replicas_and_drops_unset_scalars() {
    let container = core::Container {
        name: Some("web".into()),
        image: Some("nginx".into()),
        workingDir: Some(String::new()),
        ports: vec![core::ContainerPort {
            name: Some(String::new()),
            hostPort: Some(0),
            containerPort: Some(80),
            protocol: Some("TCP".into()),
            hostIP: Some(String::new()),
            ..Default::default()
        }],
        resources: MessageField::some(core::ResourceRequirements::default()),
        readinessProbe: MessageField::some(core::Probe {
            handler: MessageField::some(core::ProbeHandler {
                httpGet: MessageField::some(core::HTTPGetAction {
                    path: Some("/healthz".into()),
                    port: int(8080),
                    host: Some(String::new()),
                    scheme: Some("HTTP".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            initialDelaySeconds: Some(0),
            timeoutSeconds: Some(1),
            periodSeconds: Some(10),
            successThreshold: Some(0),
            failureThreshold: Some(0),
            ..Default::default()
        }),
        livenessProbe: MessageField::some(core::Probe {
            handler: MessageField::some(core::ProbeHandler {
                tcpSocket: MessageField::some(core::TCPSocketAction {
                    port: string("http"),
                    host: Some(String::new()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        terminationMessagePath: Some(String::new()),
        imagePullPolicy: Some(String::new()),
        stdin: Some(false),
        stdinOnce: Some(false),
        tty: Some(false),
        ..Default::default()
    };
    let deployment = apps::Deployment {
        metadata: metadata("web"),
        spec: MessageField::some(apps::DeploymentSpec {
            replicas: Some(0),
            selector: MessageField::some(meta::LabelSelector {
                matchLabels: labels(&[("app", "web")]),
                ..Default::default()
            }),
            template: MessageField::some(core::PodTemplateSpec {
                metadata: MessageField::some(meta::ObjectMeta {
                    labels: labels(&[("app", "web")]),
                    ..metadata("").unwrap()
                }),
                spec: MessageField::some(core::PodSpec {
                    containers: vec![container],
                    restartPolicy: Some(String::new()),
                    hostNetwork: Some(false),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            strategy: MessageField::some(apps::DeploymentStrategy {
                type_: Some(String::new()),
                ..Default::default()
            }),
            minReadySeconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: MessageField::some(apps::DeploymentStatus {
            replicas: Some(0),
            observedGeneration: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        decoded("apps/v1", "Deployment", &deployment),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "web",
                        "image": "nginx",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "resources": {},
                        "readinessProbe": {
                            "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                            "timeoutSeconds": 1,
                            "periodSeconds": 10,
                        },
                        "livenessProbe": {"tcpSocket": {"port": "http"}},
                    }]},
                },
                "strategy": {},
            },
            "status": {},
        })
    );
}

#[test]
fn pod_flattens_volume_sources_and_keeps_root_user() {
    let pod = core::Pod {
        metadata: metadata("p"),
        spec: MessageField::some(core::PodSpec {
            volumes: vec![core::Volume {
                name: Some("cfg".into()),
                volumeSource: MessageField::some(core::VolumeSource {
                    configMap: MessageField::some(core::ConfigMapVolumeSource {
                        localObjectReference: MessageField::some(core::LocalObjectReference {
                            name: Some("app-config".into()),
                            ..Default::default()
                        }),
                        items: vec![core::KeyToPath {
                            key: Some("a".into()),
                            path: Some("a.txt".into()),
                            ..Default::default()
                        }],
                        defaultMode: Some(0o644),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            containers: vec![core::Container {
                name: Some("c".into()),
                image: Some("busybox".into()),
                env: vec![core::EnvVar {
                    name: Some("A".into()),
                    value: Some(String::new()),
                    valueFrom: MessageField::some(core::EnvVarSource {
                        configMapKeyRef: MessageField::some(core::ConfigMapKeySelector {
                            localObjectReference: MessageField::some(core::LocalObjectReference {
                                name: Some("x".into()),
                                ..Default::default()
                            }),
                            key: Some("k".into()),
                            optional: Some(false),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                securityContext: MessageField::some(core::SecurityContext {
                    runAsUser: Some(0),
                    privileged: Some(false),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            terminationGracePeriodSeconds: Some(0),
            securityContext: MessageField::some(core::PodSecurityContext {
                runAsUser: Some(0),
                fsGroup: Some(2000),
                ..Default::default()
            }),
            tolerations: vec![core::Toleration {
                key: Some("k".into()),
                operator: Some("Exists".into()),
                value: Some(String::new()),
                effect: Some("NoExecute".into()),
                tolerationSeconds: Some(0),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        decoded("v1", "Pod", &pod),
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {
                "volumes": [{
                    "name": "cfg",
                    "configMap": {
                        "name": "app-config",
                        "items": [{"key": "a", "path": "a.txt"}],
                        "defaultMode": 420,
                    },
                }],
                "containers": [{
                    "name": "c",
                    "image": "busybox",
                    "env": [{
                        "name": "A",
                        "valueFrom": {"configMapKeyRef": {"name": "x", "key": "k", "optional": false}},
                    }],
                    "securityContext": {"runAsUser": 0, "privileged": false},
                }],
                "terminationGracePeriodSeconds": 0,
                "securityContext": {"runAsUser": 0, "fsGroup": 2000},
                "tolerations": [{
                    "key": "k",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 0,
                }],
            },
        })
    );
}

#[test]
fn secret_bytes_are_base64() {
    let secret = core::Secret {
        metadata: metadata("s"),
        data: [("p".to_owned(), b"x\x00y".to_vec())].into(),
        type_: Some("Opaque".into()),
        immutable: Some(false),
        ..Default::default()
    };
    assert_eq!(
        decoded("v1", "Secret", &secret),
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s"},
            "data": {"p": "eAB5"},
            "type": "Opaque",
            "immutable": false,
        })
    );
}

/// client-go sends DeleteOptions under the resource's group version; the kind lives in
/// meta.k8s.io/v1.
#[test]
fn delete_options_keep_a_zero_grace_period() {
    let options = meta::DeleteOptions {
        gracePeriodSeconds: Some(0),
        propagationPolicy: Some("Background".into()),
        preconditions: MessageField::some(meta::Preconditions {
            uid: Some("u1".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        decoded("apps/v1", "DeleteOptions", &options),
        json!({
            "apiVersion": "apps/v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "propagationPolicy": "Background",
            "preconditions": {"uid": "u1"},
        })
    );
    let unset = meta::DeleteOptions::default();
    assert_eq!(
        decoded("meta.k8s.io/v1", "DeleteOptions", &unset),
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions"})
    );
}

#[test]
fn times_are_rfc3339_and_micro_times_keep_microseconds() {
    let lease = coordination::Lease {
        metadata: MessageField::some(meta::ObjectMeta {
            creationTimestamp: MessageField::some(meta::Time {
                seconds: Some(1_767_323_045),
                nanos: Some(0),
                ..Default::default()
            }),
            ..metadata("l").unwrap()
        }),
        // k8s-rs-pb types MicroTime fields as Time; the two are the same on the wire
        spec: MessageField::some(coordination::LeaseSpec {
            holderIdentity: Some(String::new()),
            leaseDurationSeconds: Some(15),
            renewTime: MessageField::some(meta::Time {
                seconds: Some(1_767_323_045),
                nanos: Some(123_456_789),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        decoded("coordination.k8s.io/v1", "Lease", &lease),
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "l", "creationTimestamp": "2026-01-02T03:04:05Z"},
            "spec": {
                "holderIdentity": "",
                "leaseDurationSeconds": 15,
                "renewTime": "2026-01-02T03:04:05.123456Z",
            },
        })
    );
}

#[test]
fn ingress_rules_flatten_their_value() {
    let ingress = networking::Ingress {
        metadata: metadata("i"),
        spec: MessageField::some(networking::IngressSpec {
            rules: vec![networking::IngressRule {
                host: Some("foo.com".into()),
                ingressRuleValue: MessageField::some(networking::IngressRuleValue {
                    http: MessageField::some(networking::HTTPIngressRuleValue {
                        paths: vec![networking::HTTPIngressPath {
                            path: Some("/bar".into()),
                            pathType: Some("Exact".into()),
                            backend: MessageField::some(networking::IngressBackend {
                                service: MessageField::some(networking::IngressServiceBackend {
                                    name: Some("svc1".into()),
                                    port: MessageField::some(networking::ServiceBackendPort {
                                        name: Some(String::new()),
                                        number: Some(8080),
                                        ..Default::default()
                                    }),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: MessageField::some(networking::IngressStatus {
            loadBalancer: MessageField::some(Default::default()),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        decoded("networking.k8s.io/v1", "Ingress", &ingress)["spec"],
        json!({"rules": [{
            "host": "foo.com",
            "http": {"paths": [{
                "path": "/bar",
                "pathType": "Exact",
                "backend": {"service": {"name": "svc1", "port": {"number": 8080}}},
            }]},
        }]})
    );
}

#[test]
fn role_rules_keep_their_lists() {
    let role = rbac::Role {
        metadata: metadata("r"),
        rules: vec![rbac::PolicyRule {
            verbs: vec!["get".into()],
            apiGroups: vec![String::new()],
            resources: vec!["pods".into()],
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_eq!(
        decoded("rbac.authorization.k8s.io/v1", "Role", &role)["rules"],
        json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}])
    );
}

#[test]
fn json_schema_props_use_their_json_forms() {
    let raw = |s: &str| apiextensions::JSON {
        raw: Some(s.as_bytes().to_vec()),
        ..Default::default()
    };
    let name = apiextensions::JSONSchemaProps {
        type_: Some("string".into()),
        enum_: vec![raw("\"a\""), raw("\"b\"")],
        default: MessageField::some(raw("\"a\"")),
        ..Default::default()
    };
    let schema = apiextensions::JSONSchemaProps {
        type_: Some("object".into()),
        ref_: Some("#/definitions/x".into()),
        minimum: Some(0.0),
        maximum: Some(10.0),
        multipleOf: Some(0.5),
        exclusiveMaximum: Some(false),
        xKubernetesPreserveUnknownFields: Some(false),
        xKubernetesListType: Some("map".into()),
        xKubernetesListMapKeys: vec!["name".into()],
        properties: [("name".to_owned(), name)].into(),
        additionalProperties: MessageField::some(apiextensions::JSONSchemaPropsOrBool {
            allows: Some(false),
            ..Default::default()
        }),
        items: MessageField::some(apiextensions::JSONSchemaPropsOrArray {
            schema: MessageField::some(apiextensions::JSONSchemaProps {
                type_: Some("integer".into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        dependencies: [(
            "a".to_owned(),
            apiextensions::JSONSchemaPropsOrStringArray {
                property: vec!["b".into()],
                ..Default::default()
            },
        )]
        .into(),
        ..Default::default()
    };
    let validation = apiextensions::CustomResourceValidation {
        openAPIV3Schema: MessageField::some(schema),
        ..Default::default()
    };
    let version = apiextensions::CustomResourceDefinitionVersion {
        name: Some("v1".into()),
        served: Some(true),
        storage: Some(false),
        deprecated: Some(false),
        schema: MessageField::some(validation),
        ..Default::default()
    };
    let crd = apiextensions::CustomResourceDefinition {
        metadata: metadata("xs.example.com"),
        spec: MessageField::some(apiextensions::CustomResourceDefinitionSpec {
            versions: vec![version],
            ..Default::default()
        }),
        ..Default::default()
    };
    let json = decoded("apiextensions.k8s.io/v1", "CustomResourceDefinition", &crd);
    assert_eq!(
        json["spec"]["versions"][0],
        json!({
            "name": "v1",
            "served": true,
            "storage": false,
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "$ref": "#/definitions/x",
                "minimum": 0,
                "maximum": 10,
                "multipleOf": 0.5,
                "x-kubernetes-preserve-unknown-fields": false,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "properties": {"name": {"type": "string", "enum": ["a", "b"], "default": "a"}},
                "additionalProperties": false,
                "items": {"type": "integer"},
                "dependencies": {"a": ["b"]},
            }},
        })
    );
}

/// A RawExtension holds JSON, or (from a protobuf client) a whole protobuf object.
#[test]
fn raw_extensions_hold_json_or_nested_protobuf() {
    let revision = |raw: Vec<u8>| apps::ControllerRevision {
        metadata: metadata("rev"),
        data: MessageField::some(RawExtension {
            raw: Some(raw),
            ..Default::default()
        }),
        revision: Some(3),
        ..Default::default()
    };
    let json = decoded(
        "apps/v1",
        "ControllerRevision",
        &revision(br#"{"spec":{"x":1}}"#.to_vec()),
    );
    assert_eq!(json["data"], json!({"spec": {"x": 1}}));
    assert_eq!(json["revision"], 3);

    let configmap = core::ConfigMap {
        metadata: metadata("inner"),
        ..Default::default()
    };
    let nested = body("v1", "ConfigMap", &configmap);
    let json = decoded("apps/v1", "ControllerRevision", &revision(nested));
    assert_eq!(
        json["data"],
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "inner"}})
    );
}

/// As upstream's `copyKindDefaults`, an envelope without a type takes the request's.
#[test]
fn an_envelope_without_type_takes_the_defaults() {
    let configmap = core::ConfigMap {
        metadata: metadata("a"),
        ..Default::default()
    };
    let envelope = Unknown {
        raw: Some(configmap.write_to_bytes().unwrap()),
        ..Default::default()
    };
    let mut bytes = b"k8s\x00".to_vec();
    bytes.extend(envelope.write_to_bytes().unwrap());
    let defaults = Defaults {
        group: "",
        version: "v1",
        kind: "ConfigMap",
    };
    assert_eq!(
        decode(&bytes, defaults).unwrap(),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}})
    );
}

/// The messages of upstream's `transformDecodeError` around the protobuf decoder's.
#[test]
fn undecodable_bodies_get_upstreams_bad_request() {
    let message = |body: &[u8]| {
        let status = decode(body, Defaults::default())
            .unwrap_err()
            .to_status_error("ConfigMap");
        assert_eq!(status.http_status(), 400);
        status.0.message
    };
    assert_eq!(
        message(b"{}"),
        "the object provided is unrecognized (must be of type ConfigMap): provided data does not appear to be a protobuf message, expected prefix [107 56 115 0] ({})"
    );
    assert_eq!(
        message(b"k8s\x00"),
        "the object provided is unrecognized (must be of type ConfigMap): empty body (6b387300)"
    );
    assert!(
        message(b"k8s\x00\x0a\xff")
            .starts_with("the object provided is unrecognized (must be of type ConfigMap): ")
    );
    let unknown_kind = body("v1", "Bogus", &core::ConfigMap::default());
    assert_eq!(
        message(&unknown_kind),
        "Bogus in version \"v1\" cannot be handled as a ConfigMap: no kind \"Bogus\" is registered for version \"v1\" in scheme \"pkg/api/legacyscheme/scheme.go:30\""
    );
    let mut truncated = body("v1", "ConfigMap", &core::ConfigMap::default());
    let envelope = Unknown {
        typeMeta: MessageField::some(TypeMeta {
            apiVersion: Some("v1".into()),
            kind: Some("ConfigMap".into()),
            ..Default::default()
        }),
        raw: Some(vec![0x0a, 0x05, 0x0a]),
        ..Default::default()
    };
    truncated.truncate(4);
    truncated.extend(envelope.write_to_bytes().unwrap());
    assert!(
        message(&truncated)
            .starts_with("ConfigMap in version \"v1\" cannot be handled as a ConfigMap: ")
    );
}

#[test]
fn content_types_are_matched_without_parameters() {
    assert!(is_media_type("application/vnd.kubernetes.protobuf"));
    assert!(is_media_type(
        "application/vnd.kubernetes.protobuf; charset=utf-8"
    ));
    assert!(!is_media_type("application/json"));
}

#[test]
fn property_names_flatten_inlined_structs() {
    let volume = json_properties("api.core.v1.Volume").unwrap();
    assert!(volume.contains(&"name".to_owned()));
    assert!(volume.contains(&"configMap".to_owned()));
    assert!(!volume.contains(&"volumeSource".to_owned()));
    assert_eq!(json_properties("apimachinery.pkg.apis.meta.v1.Time"), None);
    assert_eq!(json_properties("api.core.v1.Nothing"), None);
}

/// Nesting up to the depth limit decodes on a 2 MiB stack (tokio's and the test
/// harness's); deeper is refused, not a stack overflow.
#[test]
fn deep_schemas_decode_and_deeper_ones_are_refused() {
    fn nested(levels: u32) -> apiextensions::CustomResourceValidation {
        let mut schema = apiextensions::JSONSchemaProps::new();
        // each level is a JSONSchemaProps and the map entry holding it
        for _ in 0..levels {
            schema = apiextensions::JSONSchemaProps {
                type_: Some("object".into()),
                properties: [("a".to_owned(), schema)].into(),
                ..Default::default()
            };
        }
        apiextensions::CustomResourceValidation {
            openAPIV3Schema: MessageField::some(schema),
            ..Default::default()
        }
    }
    let kind = "CustomResourceValidation";
    let run = |levels| {
        let bytes = body("apiextensions.k8s.io/v1", kind, &nested(levels));
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || decode(&bytes, Defaults::default()).map(|_| ()))
            .unwrap()
            .join()
            .unwrap()
    };
    // the CustomResourceValidation and the outermost schema are two levels
    let fits = (envelope::MAX_DEPTH - 2) / 2;
    assert!(run(fits).is_ok());
    let error = run(fits + 1).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the object nests deeper than 200 messages"
    );
    assert!(run(5_000).is_err());
}

/// Bad input gets an error, never a panic: a valid Pod body, truncated, with bytes
/// flipped, inserted and deleted at pseudo-random places (xorshift, so failures
/// reproduce), and pure noise behind the magic prefix, 20,000 times.
#[test]
fn mutated_and_random_bodies_never_panic() {
    let pod = core::Pod {
        metadata: metadata("p"),
        spec: MessageField::some(core::PodSpec {
            containers: vec![core::Container {
                name: Some("c".into()),
                image: Some("busybox".into()),
                ports: vec![core::ContainerPort {
                    containerPort: Some(80),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let valid = body("v1", "Pod", &pod);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut decoded_ok = 0;
    for round in 0..20_000 {
        let mut bytes = if round % 5 == 4 {
            let len = (next() % 200) as usize;
            let mut noise = b"k8s\x00".to_vec();
            noise.extend((0..len).map(|_| next() as u8));
            noise
        } else {
            valid.clone()
        };
        for _ in 0..(1 + next() % 4) {
            if bytes.is_empty() {
                break;
            }
            let at = (next() as usize) % bytes.len();
            match next() % 4 {
                0 => bytes[at] = next() as u8,
                1 => bytes.insert(at, next() as u8),
                2 => {
                    bytes.remove(at);
                }
                _ => bytes.truncate(at),
            }
        }
        if decode(&bytes, Defaults::default()).is_ok() {
            decoded_ok += 1;
        }
    }
    assert!(decoded_ok > 0, "some mutations still decode");
}
