//! Builds the descriptors `apimachinery::protobuf` decodes protobuf request bodies with:
//! the Kubernetes v1.33 `generated.proto` files that the k8s-rs-pb package ships, parsed
//! by protobuf-parse into one `FileDescriptorSet` in `OUT_DIR`.
//!
//! k8s-rs-pb's own compiled descriptors cannot serve: each of its `file_descriptor()`
//! functions names itself as its dependency (`super::v1::file_descriptor()`), so reaching
//! any file that imports another deadlocks in its lazy initialisation. Its `.proto` files
//! are intact, and as a dependency its sources are always on disk; `cargo metadata` says
//! where.

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
