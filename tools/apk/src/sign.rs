//! Index signatures: ECDSA P-256 keys as OpenWrt's apk feeds use them.
//!
//! A signature block is `sign_ver` (0), `hash_alg` (apk's digest id of the
//! ADB block hash, 4 = SHA-512), the key id (the first 16 bytes of SHA-512
//! of the public key as an uncompressed point) and a DER ECDSA signature.
//! What is signed is `schema id (u32 LE) || sign_ver || hash_alg || key id
//! || digest(ADB block)`, hashed with SHA-512 (truncated to the curve's 256
//! bits, as ECDSA does). apk tries every trusted key whose id matches.

use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
pub use p256::{PublicKey, SecretKey};
use sha2::{Digest, Sha256, Sha512};

use crate::error::{Error, Result};
use crate::wire::*;

/// A private key read from PEM (`EC PRIVATE KEY` as `openssl ecparam
/// -genkey` writes it, or PKCS#8 `PRIVATE KEY`).
pub fn private_key_from_pem(pem: &str) -> Result<SecretKey> {
    SecretKey::from_sec1_pem(pem)
        .or_else(|_| SecretKey::from_pkcs8_pem(pem))
        .map_err(|e| Error::Key(format!("not an ECDSA P-256 private key in PEM: {e}")))
}

/// A public key read from PEM (`PUBLIC KEY`, what goes into
/// `/etc/apk/keys/`); like apk, a private key file is accepted too.
pub fn public_key_from_pem(pem: &str) -> Result<PublicKey> {
    PublicKey::from_public_key_pem(pem)
        .or_else(|_| private_key_from_pem(pem).map(|k| k.public_key()))
        .map_err(|e| Error::Key(format!("not an ECDSA P-256 public key in PEM: {e}")))
}

pub fn public_key_to_pem(key: &PublicKey) -> Result<String> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|e| Error::Key(e.to_string()))
}

pub fn private_key_to_pem(key: &SecretKey) -> Result<String> {
    key.to_sec1_pem(LineEnding::LF)
        .map(|s| s.to_string())
        .map_err(|e| Error::Key(e.to_string()))
}

/// A new key from 32 random bytes (retrying the rare value outside the
/// curve order).
pub fn generate_key(mut random: impl FnMut() -> Result<[u8; 32]>) -> Result<SecretKey> {
    for _ in 0..16 {
        if let Ok(k) = SecretKey::from_slice(&random()?) {
            return Ok(k);
        }
    }
    Err(Error::Key("no valid scalar from the random source".into()))
}

/// apk's key id: SHA-512 of the uncompressed public point, first 16 bytes.
pub fn key_id(key: &PublicKey) -> [u8; 16] {
    let point = key.to_encoded_point(false);
    let d = Sha512::digest(point.as_bytes());
    let mut id = [0; 16];
    id.copy_from_slice(&d[..16]);
    id
}

fn signed_digest(schema: u32, head: &[u8], adb_digest: &[u8]) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(schema.to_le_bytes());
    h.update(head);
    h.update(adb_digest);
    h.finalize().into()
}

/// The payload of a signature block over `adb` (an ADB block payload).
/// RFC 6979 nonces: the same key and data give the same bytes.
pub fn sign(key: &SecretKey, schema: u32, adb: &[u8]) -> Result<Vec<u8>> {
    let mut head = vec![0u8, DIGEST_SHA512];
    head.extend_from_slice(&key_id(&key.public_key()));
    let digest = signed_digest(schema, &head, &Sha512::digest(adb));
    let sig: Signature = SigningKey::from(key)
        .sign_prehash(&digest)
        .map_err(|e| Error::Signature(e.to_string()))?;
    head.extend_from_slice(sig.to_der().as_bytes());
    Ok(head)
}

/// Checks one signature block against one key.
pub fn verify(key: &PublicKey, schema: u32, adb: &[u8], sig: &[u8]) -> Result<()> {
    if sig.len() < SIG_HEADER_LEN {
        return Err(Error::Signature(format!("block of {} bytes", sig.len())));
    }
    if sig[0] != 0 {
        return Err(Error::Signature(format!("version {}", sig[0])));
    }
    if sig[2..SIG_HEADER_LEN] != key_id(key) {
        return Err(Error::Signature("made by another key".into()));
    }
    let adb_digest = match sig[1] {
        DIGEST_SHA512 => Sha512::digest(adb).to_vec(),
        DIGEST_SHA256 => Sha256::digest(adb).to_vec(),
        DIGEST_SHA256_160 => Sha256::digest(adb)[..20].to_vec(),
        a => return Err(Error::Signature(format!("hash algorithm {a}"))),
    };
    let digest = signed_digest(schema, &sig[..SIG_HEADER_LEN], &adb_digest);
    let der = Signature::from_der(&sig[SIG_HEADER_LEN..])
        .map_err(|e| Error::Signature(format!("DER: {e}")))?;
    VerifyingKey::from(key)
        .verify_prehash(&digest, &der)
        .map_err(|_| Error::Signature("does not verify".into()))
}
