//! Credentials an attacker controls never panic the server nor authenticate anyone they
//! should not: a bounded, deterministic fuzz over the parsers of bearer tokens (token
//! file lines, bootstrap tokens, service-account JWTs, mutated from valid ones),
//! client certificates (DER mutated from a valid one) and request paths.

use apiserver::auth::UserInfo;
use apiserver::auth::authn::bootstrap_token;
use apiserver::auth::authn::service_account::{
    Claims, DEFAULT_ISSUER, KubernetesClaim, ObjectRef, ServiceAccountKeys, generate_key_pair,
};
use apiserver::auth::authn::token_file::TokenFile;
use apiserver::auth::request_info::RequestInfo;
use base64::Engine;

/// A small deterministic generator (xorshift) so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// `input` with a few random byte flips, insertions, deletions or a truncation.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(4) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(out.len() + 1);
                out.insert(i, rng.next() as u8);
            }
            2 if !out.is_empty() => {
                let i = rng.below(out.len());
                out.remove(i);
            }
            _ => {
                let keep = rng.below(out.len() + 1);
                out.truncate(keep);
            }
        }
    }
    out
}

const ITERATIONS: usize = 20_000;

#[test]
fn mutated_tokens_never_panic_nor_authenticate() {
    let pair = generate_key_pair().unwrap();
    let keys = ServiceAccountKeys::new(DEFAULT_ISSUER, &pair.private_pem, None).unwrap();
    let now = 2_000_000_000;
    let claims = Claims {
        iss: DEFAULT_ISSUER.into(),
        sub: "system:serviceaccount:default:ci".into(),
        aud: vec![DEFAULT_ISSUER.into()],
        exp: now,
        iat: 1_000_000_000,
        nbf: 1_000_000_000,
        jti: "j".into(),
        kubernetes: KubernetesClaim {
            namespace: "default".into(),
            serviceaccount: ObjectRef {
                name: "ci".into(),
                uid: "u".into(),
            },
            ..Default::default()
        },
    };
    let valid = keys.sign(&claims).unwrap();
    let audiences = vec![DEFAULT_ISSUER.to_owned()];
    assert!(keys.verify(&valid, &audiences).is_ok());

    let file_line = b"token-1,jane,1001,\"dev,ops\"\n";
    let secret = serde_json::json!({"type": bootstrap_token::SECRET_TYPE, "data": {
        "token-id": base64::engine::general_purpose::STANDARD.encode("abcdef"),
        "token-secret": base64::engine::general_purpose::STANDARD.encode("0123456789abcdef"),
        "usage-bootstrap-authentication": base64::engine::general_purpose::STANDARD.encode("true"),
    }});

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut forged_accepted = 0;
    for _ in 0..ITERATIONS {
        // service-account JWTs: any change to a signed token must fail verification
        let bytes = mutate(&mut rng, valid.as_bytes());
        if let Ok(text) = String::from_utf8(bytes)
            && text != valid
            && let Ok(verified) = keys.verify(&text, &audiences)
        {
            // base64 has slack bits in its last character: a change there may decode
            // to the same bytes; the claims must then be the signed ones
            assert_eq!(
                verified, claims,
                "a changed token verified with other claims: {text}"
            );
            forged_accepted += 1;
        }
        // token files
        let file = mutate(&mut rng, file_line);
        if let Ok(text) = String::from_utf8(file) {
            let _ = TokenFile::parse(&text);
        }
        // bootstrap tokens
        let token = mutate(&mut rng, b"abcdef.0123456789abcdef");
        if let Ok(text) = String::from_utf8(token)
            && let Some((id, token_secret)) = bootstrap_token::parse(&text)
        {
            let user = bootstrap_token::authenticate(&secret, id, token_secret);
            if text != "abcdef.0123456789abcdef" {
                assert!(user.is_none(), "{text} authenticated");
            }
        }
        // request paths
        let path = mutate(&mut rng, b"/api/v1/namespaces/default/pods/web/status");
        let _ = RequestInfo::parse("GET", &String::from_utf8_lossy(&path), Some("watch=true"));
    }
    // only last-character slack can survive, and rarely
    assert!(forged_accepted < ITERATIONS / 100, "{forged_accepted}");
}

#[test]
fn mutated_certificates_never_panic() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "jane");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "dev");
    let der = params.self_signed(&key).unwrap().der().to_vec();
    let user = UserInfo::from_client_certificate(&der).unwrap();
    assert_eq!(user.name, "jane");
    assert_eq!(user.groups, ["dev"]);
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for _ in 0..ITERATIONS {
        let mutated = mutate(&mut rng, &der);
        let _ = UserInfo::from_client_certificate(&mutated);
    }
}
