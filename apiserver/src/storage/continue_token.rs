//! List continue tokens in upstream's encoding (k8s.io/apiserver/pkg/storage/continue.go):
//! URL-safe unpadded base64 of `{"v":"meta.k8s.io/v1","rv":<revision>,"start":"<key>"}`,
//! where `start` is the next key relative to the list's prefix. The token pins the
//! revision, so every page of one list is read from the same snapshot.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::{Revision, StorageError};

const TOKEN_VERSION: &str = "meta.k8s.io/v1";

/// A decoded continue token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContinueToken {
    /// The revision of the list's first page.
    pub revision: Revision,
    /// The key (relative to the list prefix) the next page starts at.
    pub start: String,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    v: String,
    rv: i64,
    start: String,
}

impl ContinueToken {
    /// Encodes the token for a list response's `metadata.continue`.
    pub fn encode(&self) -> String {
        let wire = Wire {
            v: TOKEN_VERSION.to_owned(),
            rv: self.revision,
            start: self.start.clone(),
        };
        // Serializing a struct of strings and integers cannot fail.
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Decodes a client's token, with upstream's messages for bad ones.
    pub fn decode(token: &str) -> Result<Self, StorageError> {
        let invalid = |m: &str| StorageError::InvalidContinue(m.to_owned());
        let json = URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|e| invalid(&format!("illegal base64 data: {e}")))?;
        let wire: Wire = serde_json::from_slice(&json).map_err(|e| invalid(&e.to_string()))?;
        if wire.v != TOKEN_VERSION {
            return Err(invalid("server does not recognize this encoded key"));
        }
        if wire.rv <= 0 {
            return Err(invalid(
                "incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
            ));
        }
        if wire.start.is_empty() {
            return Err(invalid("encoded start key empty (version meta.k8s.io/v1)"));
        }
        // A relative key must stay inside the listed prefix.
        if wire.start.starts_with('/') || wire.start.split('/').any(|part| part == "..") {
            return Err(invalid("continue key may not contain a relative path"));
        }
        Ok(ContinueToken {
            revision: wire.rv,
            start: wire.start,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let token = ContinueToken {
            revision: 42,
            start: "default/web\u{0}".into(),
        };
        assert_eq!(ContinueToken::decode(&token.encode()).unwrap(), token);
    }

    #[test]
    fn matches_upstream_wire_format() {
        // The JSON upstream puts inside the base64: field names and version string.
        let token = ContinueToken {
            revision: 7,
            start: "a".into(),
        }
        .encode();
        let json = URL_SAFE_NO_PAD.decode(token).unwrap();
        assert_eq!(json, br#"{"v":"meta.k8s.io/v1","rv":7,"start":"a"}"#);
    }

    #[test]
    fn rejects_bad_tokens_with_upstream_messages() {
        let bad = |json: &str| {
            ContinueToken::decode(&URL_SAFE_NO_PAD.encode(json))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            bad(r#"{"v":"meta.k8s.io/v1","rv":0,"start":"a"}"#),
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
        );
        assert_eq!(
            bad(r#"{"v":"meta.k8s.io/v1","rv":3,"start":""}"#),
            "continue key is not valid: encoded start key empty (version meta.k8s.io/v1)"
        );
        assert_eq!(
            bad(r#"{"v":"other","rv":3,"start":"a"}"#),
            "continue key is not valid: server does not recognize this encoded key"
        );
        assert!(
            bad(r#"{"v":"meta.k8s.io/v1","rv":3,"start":"../secrets/x"}"#)
                .contains("relative path")
        );
        assert!(ContinueToken::decode("!!!").is_err());
    }
}
