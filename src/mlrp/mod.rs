//! MLRP, the Mobile Location Register Protocol: length-prefixed, versioned,
//! HMAC-authenticated binary frames over TCP. Spec: `docs/MLRP.md`.
