//! The module's cryptography, pure and unit-tested: the key ring (256-bit
//! keys from a key file, the first seals, every one opens), sealing with an
//! AEAD (AES-256-GCM-SIV, RustCrypto `aes-gcm-siv`; keys derived per purpose
//! with HKDF-SHA-256), the deterministic Call-ID mask, and the text all of
//! them travel in. Nothing here is
//! hand-written cryptography: these are the crates' primitives composed.

pub mod keys;
pub mod mask;
pub mod seal;
pub mod text;
