//! Keys: the Ed25519 signing key tokens are issued with (a PKCS#8 PEM file, so any JWT tool
//! can use it too) and the public keys they are verified with (a JWK Set, one key per `kid`,
//! several at once for rotation).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Environment variable naming the development signing key file (overrides the default path).
pub const SIGNING_KEY_ENV: &str = "CUBEWALK_SIGNING_KEY";
/// File name of the development signing key inside the per-user folder.
pub const DEV_KEY_FILE: &str = "dev-signing-key.pem";

/// An Ed25519 private key that signs player tokens.
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(kid {})", self.kid)
    }
}

impl SigningKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self::from_dalek(ed25519_dalek::SigningKey::from_bytes(&rand::random()))
    }

    /// Reads a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, as `openssl genpkey -algorithm
    /// ed25519` writes it).
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map(Self::from_dalek)
            .map_err(|_| "not an Ed25519 private key in PKCS#8 PEM".to_string())
    }

    /// The key as PKCS#8 PEM.
    pub fn to_pem(&self) -> String {
        self.key
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map(|pem| pem.to_string())
            .expect("an Ed25519 key always encodes")
    }

    fn from_dalek(key: ed25519_dalek::SigningKey) -> Self {
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
        // RFC 7638 thumbprint: the SHA-256 of the required members in lexicographic order.
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        Self { key, kid }
    }

    /// The key id tokens signed with this key carry (its RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key for `jsonwebtoken`'s encoder.
    pub(crate) fn encoding_key(&self) -> EncodingKey {
        let der = self
            .key
            .to_pkcs8_der()
            .expect("an Ed25519 key always encodes");
        EncodingKey::from_ed_der(der.as_bytes())
    }

    /// The public half as a JWK (`kty` OKP, `crv` Ed25519, `alg` EdDSA, `use` sig, `kid`).
    pub fn public_jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.key.verifying_key().as_bytes()),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        })
    }

    /// Loads the key at `path`, or creates it there (owner-only permissions) when there is
    /// none. Answers the key and whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), String> {
        let load = |pem: &str| Self::from_pem(pem).map_err(|e| format!("{}: {e}", path.display()));
        match std::fs::read_to_string(path) {
            Ok(pem) => load(&pem).map(|k| (k, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                match write_private(path, key.to_pem().as_bytes()) {
                    Ok(()) => Ok((key, true)),
                    // Another process created it first: its key is the one.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let pem = std::fs::read_to_string(path)
                            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                        load(&pem).map(|k| (k, false))
                    }
                    Err(e) => Err(format!("cannot write {}: {e}", path.display())),
                }
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }
}

/// Writes a new file readable by its owner only, all at once: the bytes go to a private
/// temporary file that is then linked to `path`, which fails with `AlreadyExists` rather than
/// overwrite. So two processes starting at once keep the first key, and neither ever reads a
/// half-written one.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut name = path.as_os_str().to_owned();
    // Unique per process and per call, so no two writers share a temporary file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    name.push(format!(".{}-{n}.tmp", std::process::id()));
    let temp = PathBuf::from(name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&temp, path));
    let _ = std::fs::remove_file(&temp);
    linked
}

/// Where the development signing key lives: `$CUBEWALK_SIGNING_KEY` when set, else
/// `dev-signing-key.pem` in the per-user configuration folder (`$XDG_CONFIG_HOME/cubewalk`,
/// `~/.config/cubewalk`, or `%APPDATA%\cubewalk` on Windows), whatever the working directory.
pub fn default_key_path() -> Result<PathBuf, String> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(path) = var(SIGNING_KEY_ENV) {
        return Ok(PathBuf::from(path));
    }
    let base = var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".config")))
        .or_else(|| var("APPDATA").map(PathBuf::from))
        .ok_or_else(|| format!("no per-user folder (HOME unset): set {SIGNING_KEY_ENV}"))?;
    Ok(base.join("cubewalk").join(DEV_KEY_FILE))
}

/// The public keys tokens are verified with, by `kid`. Only asymmetric keys of the allowed
/// algorithms are held: no HMAC secret can be configured, so a token "signed" with a public
/// key as an HMAC secret never verifies.
#[derive(Clone, Default)]
pub struct PublicKeys {
    keys: Vec<(String, Algorithm, DecodingKey)>,
}

impl std::fmt::Debug for PublicKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<_> = self.keys.iter().map(|(k, a, _)| (k, a)).collect();
        write!(f, "PublicKeys({kids:?})")
    }
}

impl PublicKeys {
    /// No keys (only static tokens, if any, are accepted).
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a JWK Set (`{"keys":[...]}`). Every key needs a `kid`; Ed25519 keys verify
    /// `EdDSA` and P-256 keys `ES256`, whatever else the JWK says; any other key type is
    /// refused, so a misconfiguration fails at start instead of accepting a weaker algorithm.
    pub fn from_jwks(json: &str) -> Result<Self, String> {
        let set: JwkSet = serde_json::from_str(json).map_err(|e| format!("not a JWK Set: {e}"))?;
        let mut keys = Self::new();
        for jwk in &set.keys {
            keys.add_jwk(jwk)?;
        }
        Ok(keys)
    }

    /// Adds one JWK (see [`PublicKeys::from_jwks`]).
    pub fn add_jwk(&mut self, jwk: &Jwk) -> Result<(), String> {
        self.add_jwk_allowing(jwk, false)
    }

    /// Reads an external issuer's JWK Set: as [`PublicKeys::from_jwks`], and also RSA keys of
    /// at least 2048 bits for `RS256` (what Cognito, Auth0 and Firebase sign with). Keys that
    /// are not for signatures or of another type are skipped, as issuers publish them too;
    /// a set with no usable key is an error.
    pub fn from_issuer_jwks(json: &str) -> Result<Self, String> {
        let set: JwkSet = serde_json::from_str(json).map_err(|e| format!("not a JWK Set: {e}"))?;
        let mut keys = Self::new();
        for jwk in &set.keys {
            let for_signing = !matches!(
                jwk.common.public_key_use,
                Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
            );
            if for_signing {
                if let Err(e) = keys.add_jwk_allowing(jwk, true) {
                    tracing::info!(reason = %e, "issuer key skipped");
                }
            }
        }
        if keys.is_empty() {
            return Err("the issuer's key set has no usable signing key".into());
        }
        Ok(keys)
    }

    fn add_jwk_allowing(&mut self, jwk: &Jwk, rsa: bool) -> Result<(), String> {
        let kid = jwk
            .common
            .key_id
            .clone()
            .filter(|k| !k.is_empty())
            .ok_or("a public key without kid")?;
        let algorithm = match &jwk.algorithm {
            AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
            AlgorithmParameters::EllipticCurve(ec)
                if ec.curve == jsonwebtoken::jwk::EllipticCurve::P256 =>
            {
                Algorithm::ES256
            }
            AlgorithmParameters::RSA(params) if rsa => {
                // The modulus, base64url without padding: 2048 bits are 342 characters.
                if params.n.trim_end_matches('=').len() < 342 {
                    return Err(format!("key {kid}: RSA keys need at least 2048 bits"));
                }
                Algorithm::RS256
            }
            _ => {
                return Err(format!(
                    "key {kid}: only Ed25519 and P-256 keys{} are accepted",
                    if rsa { " and RSA keys" } else { "" }
                ))
            }
        };
        if let Some(stated) = jwk.common.key_algorithm {
            let matches = matches!(
                (stated, algorithm),
                (KeyAlgorithm::EdDSA, Algorithm::EdDSA)
                    | (KeyAlgorithm::ES256, Algorithm::ES256)
                    | (KeyAlgorithm::RS256, Algorithm::RS256)
            );
            if !matches {
                return Err(format!("key {kid}: alg {stated:?} does not fit the key"));
            }
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {kid}: {e}"))?;
        self.keys.retain(|(k, _, _)| *k != kid);
        self.keys.push((kid, algorithm, key));
        Ok(())
    }

    /// Adds the public half of `key`.
    pub fn add_signing_key(&mut self, key: &SigningKey) {
        let jwk: Jwk = serde_json::from_value(key.public_jwk()).expect("our own JWK parses");
        self.add_jwk(&jwk).expect("our own JWK is accepted");
    }

    /// The key and its one algorithm for `kid`.
    pub(crate) fn get(&self, kid: &str) -> Option<(Algorithm, &DecodingKey)> {
        self.keys
            .iter()
            .find(|(k, _, _)| k == kid)
            .map(|(_, a, key)| (*a, key))
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_starting_at_once_share_one_whole_key() {
        // Two gateways started together on a fresh machine: each either makes the key or reads
        // the other's, never a half-written file, and they end with the same key.
        for round in 0..20 {
            let path = std::env::temp_dir()
                .join(format!("cubewalk-key-race-{}-{round}", std::process::id()))
                .join("key.pem");
            let kids: Vec<String> = std::thread::scope(|s| {
                let workers: Vec<_> = (0..8)
                    .map(|_| {
                        s.spawn(|| {
                            SigningKey::load_or_create(&path)
                                .unwrap()
                                .0
                                .kid()
                                .to_owned()
                        })
                    })
                    .collect();
                workers.into_iter().map(|w| w.join().unwrap()).collect()
            });
            assert!(kids.iter().all(|k| *k == kids[0]), "{kids:?}");
            let dir = path.parent().unwrap();
            assert_eq!(
                std::fs::read_dir(dir).unwrap().count(),
                1,
                "no temporary file left"
            );
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn pem_round_trips_and_key_file_is_made_once() {
        let key = SigningKey::generate();
        let again = SigningKey::from_pem(&key.to_pem()).unwrap();
        assert_eq!(key.kid(), again.kid());
        assert!(SigningKey::from_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"
        )
        .is_err());

        let dir = std::env::temp_dir().join(format!("cw-key-{}", rand::random::<u64>()));
        let path = dir.join("sub").join(DEV_KEY_FILE);
        let (first, created) = SigningKey::load_or_create(&path).unwrap();
        assert!(created);
        let (second, created) = SigningKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first.kid(), second.kid());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn jwks_accepts_only_asymmetric_keys_with_kid() {
        let key = SigningKey::generate();
        let set = serde_json::json!({ "keys": [key.public_jwk()] }).to_string();
        let keys = PublicKeys::from_jwks(&set).unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys.get(key.kid()).is_some());
        let hmac = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h","alg":"HS256"}]}"#;
        assert!(PublicKeys::from_jwks(hmac).is_err());
        let mut no_kid = key.public_jwk();
        no_kid.as_object_mut().unwrap().remove("kid");
        let set = serde_json::json!({ "keys": [no_kid] }).to_string();
        assert!(PublicKeys::from_jwks(&set).is_err());
        let mut wrong_alg = key.public_jwk();
        wrong_alg["alg"] = "ES256".into();
        let set = serde_json::json!({ "keys": [wrong_alg] }).to_string();
        assert!(PublicKeys::from_jwks(&set).is_err());
    }
}
