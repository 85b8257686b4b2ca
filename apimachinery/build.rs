//! Builds the descriptors `apimachinery::protobuf` decodes protobuf request bodies with:
//! the Kubernetes v1.33 `generated.proto` files that the k8s-rs-pb package ships, parsed
//! by protobuf-parse into one `FileDescriptorSet` in `OUT_DIR`.
//!
//! k8s-rs-pb's own compiled descriptors cannot serve: each of its `file_descriptor()`
//! functions names itself as its dependency (`super::v1::file_descriptor()`), so reaching
//! any file that imports another deadlocks in its lazy initialisation. Its `.proto` files
//! are intact, and as a dependency its sources are always on disk; `cargo metadata` says
//! where.
//!
//! The same files keep the Go types' comments, and with them the markers that give
//! server-side apply its list and map semantics (`+listType=map`, `+listMapKey=name`,
//! `+mapType=atomic`, `+structType=atomic`, `+patchStrategy=merge`, `+default="TCP"`):
//! they are written to `OUT_DIR/go-markers.tsv` for `apimachinery::markers`.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Kubernetes version whose protos are read (k8s-rs-pb's feature and directory).
const VERSION_DIR: &str = "src/v1_33";

/// Directories under the version's root whose protos no request body is ever in.
const SKIPPED: &[&str] = &["apimachinery/pkg/apis/testapigroup", "metrics"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let root = k8s_rs_pb_dir().join(VERSION_DIR);
    let mut protos = Vec::new();
    collect(&root, &root, &mut protos);
    protos.sort();
    assert!(
        !protos.is_empty(),
        "no generated.proto under {}",
        root.display()
    );
    let set = protobuf_parse::Parser::new()
        .pure()
        .include(&root)
        .inputs(&protos)
        .file_descriptor_set()
        .unwrap_or_else(|e| panic!("parsing the protos under {}: {e:#}", root.display()));
    let bytes = protobuf::Message::write_to_bytes(&set).expect("encoding the descriptors");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("k8s-v1_33.fds");
    fs::write(&out, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));

    let mut markers = String::new();
    for proto in &protos {
        let text = fs::read_to_string(proto)
            .unwrap_or_else(|e| panic!("reading {}: {e}", proto.display()));
        extract_markers(&text, &mut markers);
    }
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("go-markers.tsv");
    fs::write(&out, markers).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}

/// The markers server-side apply reads; the Go types carry many others.
const MARKERS: &[&str] = &[
    "listType",
    "listMapKey",
    "mapType",
    "structType",
    "patchStrategy",
    "patchMergeKey",
    "default",
];

/// Appends one line per marker of `proto`'s messages and fields:
/// `<OpenAPI definition name>\t<field, or "." for the message>\t<marker>\t<value>`.
/// The definition name is the one k8s-openapi's schemas use (`io.k8s.api.core.v1.PodSpec`).
fn extract_markers(proto: &str, out: &mut String) {
    let mut package = String::new();
    let mut message = String::new();
    let mut pending: Vec<(String, String)> = Vec::new();
    for line in proto.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("package ") {
            let name = name.trim_end_matches(';').replace('_', "-");
            package = format!("io.k8s.{name}");
        } else if let Some(comment) = line.strip_prefix("//") {
            if let Some((key, value)) = comment
                .trim()
                .strip_prefix('+')
                .and_then(|m| m.split_once('='))
            {
                if MARKERS.contains(&key) {
                    pending.push((key.to_owned(), value.trim().to_owned()));
                }
            }
        } else if let Some(rest) = line.strip_prefix("message ") {
            message = rest.trim_end_matches('{').trim().to_owned();
            for (key, value) in pending.drain(..) {
                out.push_str(&format!("{package}.{message}\t.\t{key}\t{value}\n"));
            }
        } else if line.ends_with(';') && line.contains(" = ") && !message.is_empty() {
            // `optional T name = 1;`, `repeated T name = 2;`, `map<K, V> name = 3;`
            let declaration = line.split(" = ").next().unwrap_or("");
            let field = declaration.rsplit(' ').next().unwrap_or("");
            for (key, value) in pending.drain(..) {
                out.push_str(&format!("{package}.{message}\t{field}\t{key}\t{value}\n"));
            }
        } else if line.is_empty() || line == "}" {
            pending.clear();
        }
    }
}

/// Every `generated.proto` under `dir`, outside [`SKIPPED`].
fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        let relative = path.strip_prefix(root).unwrap_or(&path);
        if SKIPPED.iter().any(|s| relative.starts_with(s)) {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, out);
        } else if path.file_name().is_some_and(|n| n == "generated.proto") {
            out.push(path);
        }
    }
}

/// The k8s-rs-pb package's directory, from `cargo metadata` (offline first: the build
/// has already fetched it).
fn k8s_rs_pb_dir() -> PathBuf {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = env::var("CARGO_MANIFEST_PATH")
        .or_else(|_| env::var("CARGO_MANIFEST_DIR").map(|d| format!("{d}/Cargo.toml")))
        .expect("CARGO_MANIFEST_DIR");
    let run = |offline: bool| {
        let mut command = Command::new(&cargo);
        command.args([
            "metadata",
            "--format-version",
            "1",
            "--manifest-path",
            &manifest,
        ]);
        if offline {
            command.arg("--offline");
        }
        command.output().ok().filter(|o| o.status.success())
    };
    let output = run(true)
        .or_else(|| run(false))
        .expect("`cargo metadata` failed");
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("`cargo metadata` printed no JSON");
    let manifest_path = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "k8s-rs-pb")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("k8s-rs-pb is not among the dependencies");
    Path::new(manifest_path)
        .parent()
        .expect("a manifest has a directory")
        .to_owned()
}
