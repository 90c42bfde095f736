//! MLRP authentication: keys derived from the network's shared secret,
//! per-connection, per-direction session keys from both peers' Hello nonces,
//! and HMAC-SHA256 frame tags.
//!
//! ```text
//! K_net   = HMAC-SHA256(key = secret, "MLRP-v1 network" || 0x00 || network_name)
//! K_hello = HMAC-SHA256(key = K_net,  "MLRP-v1 hello")
//! K_a->b  = HMAC-SHA256(key = K_net,  "MLRP-v1 session" || nonce_a || nonce_b)
//! tag     = HMAC-SHA256(key = K_hello for Hello frames, K_sender->receiver otherwise,
//!                       header || body)
//! ```
//!
//! The session keys depend on both nonces, so a frame recorded on one
//! connection fails the tag check on any other; within a connection the
//! sequence number in the (tagged) header refuses replays and reordering.
//! Separate keys per direction stop a peer's own frames being reflected back
//! at it. HMAC states are keyed once and cloned per frame, so tagging costs
//! two SHA-256 compressions plus the frame's blocks and allocates nothing.

use hmac::digest::generic_array::GenericArray;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::io;

use super::frame::MAC_LEN;

type HmacSha256 = Hmac<Sha256>;

/// Length of a Hello nonce.
pub const NONCE_LEN: usize = 16;
/// A Hello nonce: fresh random bytes per connection and side.
pub type Nonce = [u8; NONCE_LEN];

/// SHA-256's block size: HMAC keys up to this length are zero-padded,
/// longer ones hashed first (RFC 2104).
const BLOCK: usize = 64;

/// An HMAC-SHA256 state keyed once; `tag`/`verify` clone it per message.
#[derive(Clone)]
pub(crate) struct Tagger(HmacSha256);

impl Tagger {
    /// Key an HMAC state. Done by hand (RFC 2104 key block) so that no
    /// fallible constructor is involved: HMAC takes keys of any length.
    fn new(key: &[u8]) -> Tagger {
        let mut block = [0u8; BLOCK];
        if key.len() > BLOCK {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        Tagger(<HmacSha256 as hmac::digest::KeyInit>::new(
            GenericArray::from_slice(&block),
        ))
    }

    fn tag_parts(&self, parts: &[&[u8]]) -> [u8; MAC_LEN] {
        let mut m = self.0.clone();
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    pub(crate) fn tag(&self, data: &[u8]) -> [u8; MAC_LEN] {
        self.tag_parts(&[data])
    }

    /// Constant-time check of `tag` over `data`.
    pub(crate) fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        let mut m = self.0.clone();
        m.update(data);
        m.verify_slice(tag).is_ok()
    }
}

/// The network key, derived once at start from `secret` and `network_name`.
/// Two daemons interoperate only if both values are equal on both sides.
#[derive(Clone)]
pub struct NetworkKey {
    net: Tagger,
    hello: Tagger,
}

impl core::fmt::Debug for NetworkKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("NetworkKey(..)")
    }
}

impl NetworkKey {
    /// Derive the key. An empty `secret` is still a key; callers that treat
    /// an empty `secret` setting as "no secret" should pass `None` to the
    /// session instead.
    pub fn derive(secret: &[u8], network_name: &str) -> NetworkKey {
        let k_net =
            Tagger::new(secret).tag_parts(&[b"MLRP-v1 network", &[0u8], network_name.as_bytes()]);
        let net = Tagger::new(&k_net);
        let k_hello = net.tag(b"MLRP-v1 hello");
        NetworkKey {
            net,
            hello: Tagger::new(&k_hello),
        }
    }

    /// The key for a daemon's `secret` setting: `None` (no authentication)
    /// when the secret is absent or empty, so that `secret ""` cannot
    /// silently mean "authenticated with an empty key".
    pub fn from_secret(secret: Option<&str>, network_name: &str) -> Option<NetworkKey> {
        match secret {
            Some(s) if !s.is_empty() => Some(NetworkKey::derive(s.as_bytes(), network_name)),
            _ => None,
        }
    }

    pub(crate) fn hello(&self) -> &Tagger {
        &self.hello
    }

    /// The key for frames from the side that sent `sender` to the side that
    /// sent `receiver`.
    pub(crate) fn session(&self, sender: &Nonce, receiver: &Nonce) -> Tagger {
        Tagger::new(&self.net.tag_parts(&[b"MLRP-v1 session", sender, receiver]))
    }
}

/// A fresh nonce from the kernel's CSPRNG (`getrandom(2)`).
pub fn random_nonce() -> io::Result<Nonce> {
    let mut n = [0u8; NONCE_LEN];
    crate::sys::random_bytes(&mut n)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_key_block_matches_the_hmac_crate() {
        for key in [&b""[..], b"short secret", &[7u8; 64], &[9u8; 100]] {
            let ours = Tagger::new(key).tag(b"data");
            let mut theirs = HmacSha256::new_from_slice(key).unwrap();
            theirs.update(b"data");
            assert_eq!(ours, <[u8; 32]>::from(theirs.finalize().into_bytes()));
        }
    }

    #[test]
    fn rfc4231_case_2() {
        // Key "Jefe", data "what do ya want for nothing?"
        let t = Tagger::new(b"Jefe").tag(b"what do ya want for nothing?");
        assert_eq!(t[..8], [0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e]);
    }

    #[test]
    fn keys_differ_by_secret_name_and_direction() {
        let a = NetworkKey::derive(b"s3cret", "net");
        let b = NetworkKey::derive(b"s3cret", "other-net");
        let c = NetworkKey::derive(b"other", "net");
        let (n1, n2) = ([1u8; 16], [2u8; 16]);
        let t = |k: &NetworkKey, x: &Nonce, y: &Nonce| k.session(x, y).tag(b"frame");
        assert_ne!(t(&a, &n1, &n2), t(&b, &n1, &n2));
        assert_ne!(t(&a, &n1, &n2), t(&c, &n1, &n2));
        assert_ne!(t(&a, &n1, &n2), t(&a, &n2, &n1));
        assert_eq!(
            t(&a, &n1, &n2),
            t(&NetworkKey::derive(b"s3cret", "net"), &n1, &n2)
        );
        assert!(a.session(&n1, &n2).verify(b"frame", &t(&a, &n1, &n2)));
        assert!(!a.session(&n1, &n2).verify(b"framE", &t(&a, &n1, &n2)));
    }

    #[test]
    fn empty_or_absent_secret_means_no_key() {
        assert!(NetworkKey::from_secret(None, "n").is_none());
        assert!(NetworkKey::from_secret(Some(""), "n").is_none());
        let k = NetworkKey::from_secret(Some("s"), "n").unwrap();
        let n = [0u8; 16];
        assert_eq!(
            k.session(&n, &n).tag(b"x"),
            NetworkKey::derive(b"s", "n").session(&n, &n).tag(b"x")
        );
    }

    #[test]
    fn nonces_are_random() {
        let a = random_nonce().unwrap();
        let b = random_nonce().unwrap();
        assert_ne!(a, b);
    }
}
