//! As upstream's test/e2e/apimachinery/server_version.go: `/version` answers with a
//! major and minor version and a semantic gitVersion.

use super::fail;
use crate::Cluster;

/// "server version should find the server version".
pub fn find_the_server_version(cluster: &Cluster) -> Result<(), String> {
    let version = cluster.get_json("/version").map_err(fail)?;
    for field in ["major", "minor", "gitVersion", "platform"] {
        if version[field].as_str().is_none_or(str::is_empty) {
            return Err(format!("/version has no {field}: {version}"));
        }
    }
    let git_version = version["gitVersion"].as_str().unwrap_or_default();
    let numbers: Vec<&str> = git_version
        .strip_prefix('v')
        .map(|v| {
            v.split(['-', '+'])
                .next()
                .unwrap_or_default()
                .split('.')
                .collect()
        })
        .unwrap_or_default();
    if numbers.len() != 3 || numbers.iter().any(|n| n.parse::<u32>().is_err()) {
        return Err(format!(
            "gitVersion {git_version:?} is not vMAJOR.MINOR.PATCH"
        ));
    }
    // major/minor agree with gitVersion (minor may carry a "+" on some providers)
    if version["major"].as_str() != Some(numbers[0])
        || version["minor"].as_str().map(|m| m.trim_end_matches('+')) != Some(numbers[1])
    {
        return Err(format!("major/minor disagree with gitVersion: {version}"));
    }
    Ok(())
}
