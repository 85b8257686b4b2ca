//! Static token file authentication (`--token-auth-file`): upstream's CSV format, one
//! `token,user,uid[,"group1,group2"]` per line. A file that does not parse stops the
//! server at start, as upstream.

use std::collections::HashMap;
use std::path::Path;

use crate::auth::UserInfo;

/// The tokens of a token file.
#[derive(Clone, Debug, Default)]
pub struct TokenFile {
    users: HashMap<String, UserInfo>,
}

impl TokenFile {
    /// Reads `path`.
    pub fn load(path: &Path) -> Result<TokenFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        TokenFile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses a token file's text.
    pub fn parse(text: &str) -> Result<TokenFile, String> {
        let mut users = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let number = number + 1;
            if line.trim().is_empty() {
                continue;
            }
            let fields = csv_fields(line).map_err(|e| format!("line {number}: {e}"))?;
            if fields.len() < 3 {
                return Err(format!(
                    "line {number}: token file entries need at least 3 fields (token, user, uid), found {}",
                    fields.len()
                ));
            }
            let token = fields[0].clone();
            if token.is_empty() {
                continue;
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            users.insert(
                token,
                UserInfo {
                    name: fields[1].clone(),
                    uid: fields[2].clone(),
                    groups,
                    ..Default::default()
                },
            );
        }
        Ok(TokenFile { users })
    }

    /// The user a token names, when it is in the file.
    pub fn authenticate(&self, token: &str) -> Option<UserInfo> {
        self.users.get(token).cloned()
    }
}

/// The fields of one CSV line: commas separate, double quotes group (and `""` is a
/// quote inside them).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                current.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if current.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut current)),
            (c, _) => current.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    fields.push(current);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_format() {
        let file = TokenFile::parse(
            "t1,jane,42,\"dev,ops\"\nt2,bob,43\n\nt3,\"amy, the admin\",44,system:masters\n",
        )
        .unwrap();
        let jane = file.authenticate("t1").unwrap();
        assert_eq!(jane.name, "jane");
        assert_eq!(jane.uid, "42");
        assert_eq!(jane.groups, ["dev", "ops"]);
        assert!(file.authenticate("t2").unwrap().groups.is_empty());
        assert_eq!(file.authenticate("t3").unwrap().name, "amy, the admin");
        assert_eq!(file.authenticate("nope"), None);
    }

    #[test]
    fn bad_lines_are_errors_not_panics() {
        assert!(TokenFile::parse("t1,jane").is_err());
        assert!(TokenFile::parse("t1,\"jane,1").is_err());
    }
}
