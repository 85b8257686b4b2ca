//! `/version`: the server's version in upstream's `version.Info` shape
//! (k8s.io/apimachinery/pkg/version/types.go), which kubectl and client libraries read
//! to pick API behaviour; rkube reports the Kubernetes release whose API it serves.

use serde::Serialize;

/// The Kubernetes release whose API rkube serves.
pub const KUBERNETES_MAJOR: &str = "1";
/// The minor release.
pub const KUBERNETES_MINOR: &str = "33";
/// `gitVersion`: the release, marked as rkube's build of it.
pub const GIT_VERSION: &str = "v1.33.0-rkube";

/// Upstream's `version.Info`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// Major version of the binary.
    pub major: String,
    /// Minor version of the binary.
    pub minor: String,
    /// Major version of the emulated API (upstream's compatibility versions, 1.31+).
    pub emulation_major: String,
    /// Minor version of the emulated API.
    pub emulation_minor: String,
    /// Oldest major version this server is compatible with.
    pub min_compatibility_major: String,
    /// Oldest minor version this server is compatible with.
    pub min_compatibility_minor: String,
    /// Semantic version with build metadata, e.g. `v1.33.0-rkube`.
    pub git_version: String,
    /// Source commit; set `RKUBE_GIT_COMMIT` when building to stamp it.
    pub git_commit: String,
    /// `clean` or `dirty`; set `RKUBE_GIT_TREE_STATE` when building to stamp it.
    pub git_tree_state: String,
    /// RFC 3339 build time; set `RKUBE_BUILD_DATE` when building to stamp it.
    pub build_date: String,
    /// Upstream's Go version; rkube is not built with Go, so this is empty.
    pub go_version: String,
    /// The compiler, `rustc`.
    pub compiler: String,
    /// `os/arch` in Go's spelling, e.g. `linux/amd64`.
    pub platform: String,
}

impl VersionInfo {
    /// This build's version.
    pub fn current() -> Self {
        let minor_number: u32 = KUBERNETES_MINOR.parse().unwrap_or(1);
        VersionInfo {
            major: KUBERNETES_MAJOR.to_owned(),
            minor: KUBERNETES_MINOR.to_owned(),
            emulation_major: KUBERNETES_MAJOR.to_owned(),
            emulation_minor: KUBERNETES_MINOR.to_owned(),
            min_compatibility_major: KUBERNETES_MAJOR.to_owned(),
            min_compatibility_minor: minor_number.saturating_sub(1).to_string(),
            git_version: GIT_VERSION.to_owned(),
            git_commit: option_env!("RKUBE_GIT_COMMIT").unwrap_or("").to_owned(),
            git_tree_state: option_env!("RKUBE_GIT_TREE_STATE").unwrap_or("").to_owned(),
            // upstream's value for an unstamped build
            build_date: option_env!("RKUBE_BUILD_DATE")
                .unwrap_or("1970-01-01T00:00:00Z")
                .to_owned(),
            go_version: String::new(),
            compiler: "rustc".to_owned(),
            platform: platform(),
        }
    }
}

/// `os/arch` with Go's names for architectures, as upstream's `runtime.GOOS/GOARCH`.
fn platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    };
    format!("{}/{}", std::env::consts::OS, arch)
}
