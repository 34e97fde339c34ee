//! Small shared crypto helpers for the `auth` modules: HMAC-SHA256 and
//! HKDF-SHA256 with a fixed 32-byte output, plus the base64 flavours the wire
//! formats use.
//!
//! The helpers exist so that callers never have to handle the "impossible"
//! errors of the generic RustCrypto APIs (`new_from_slice`, `expand`) with an
//! `unwrap`: both operations are total for the parameters used here.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hkdf::Hkdf;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// HMAC-SHA256 as a reusable, clonable keyed state.
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// SHA-256 block size: the length HMAC pads or hashes its key to (RFC 2104).
const SHA256_BLOCK: usize = 64;

/// URL-safe base64 decoder that accepts input with or without `=` padding.
/// Token ids are issued padded, but tolerating a client or proxy that
/// stripped the padding costs nothing (the HMAC still has to match).
pub(crate) const URL_SAFE_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Builds an HMAC-SHA256 state keyed with `key` (any length).
///
/// RFC 2104 normalises the key to one block (hash it when longer, zero-pad it
/// otherwise); doing that here lets us use the infallible fixed-size
/// constructor instead of `new_from_slice`, whose error can never happen but
/// would otherwise need an `unwrap`.
pub(crate) fn hmac_sha256_keyed(key: &[u8]) -> HmacSha256 {
    let mut block = [0u8; SHA256_BLOCK];
    if key.len() > SHA256_BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    <HmacSha256 as KeyInit>::new(&block.into())
}

/// One-shot HMAC-SHA256.
pub(crate) fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut mac = hmac_sha256_keyed(key);
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// RFC 5869 HKDF-SHA256 with L = 32.
///
/// For L <= HashLen, HKDF-Expand is exactly one block:
/// `T(1) = HMAC(PRK, info || 0x01)`. Computing that block directly keeps the
/// function total (the crate's `expand` returns a `Result` for long outputs).
/// `salt = None` means the RFC default (32 zero bytes), which `extract` applies.
pub(crate) fn hkdf_sha256_32(salt: Option<&[u8]>, ikm: &[u8], info: &[u8]) -> [u8; 32] {
    let (prk, _) = Hkdf::<Sha256>::extract(salt, ikm);
    let mut mac = hmac_sha256_keyed(&prk);
    mac.update(info);
    mac.update(&[1u8]);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The block-normalised key must give the same MAC as the crate's own
    /// variable-length constructor for every key length class.
    #[test]
    fn hmac_matches_new_from_slice() {
        for len in [0usize, 1, 32, 44, 63, 64, 65, 100, 200] {
            let key: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5a).collect();
            let mut reference = <HmacSha256 as Mac>::new_from_slice(&key).unwrap();
            reference.update(b"message");
            let expected: [u8; 32] = reference.finalize().into_bytes().into();
            assert_eq!(hmac_sha256(&key, b"message"), expected, "key length {len}");
        }
    }

    /// The single-block expand must agree with the crate's `expand`.
    #[test]
    fn hkdf_matches_crate_expand() {
        for (salt, ikm, info) in [
            (None, &b"master"[..], &b"info"[..]),
            (Some(&b"2b307b"[..]), &b""[..], &b""[..]),
            (Some(&[7u8; 100][..]), &[1u8; 70][..], &[2u8; 300][..]),
        ] {
            let mut expected = [0u8; 32];
            Hkdf::<Sha256>::new(salt, ikm)
                .expand(info, &mut expected)
                .unwrap();
            assert_eq!(hkdf_sha256_32(salt, ikm, info), expected);
        }
    }

    /// RFC 5869 test case 3 (SHA-256, no salt, empty info), first 32 bytes.
    #[test]
    fn hkdf_rfc5869_case3() {
        let ikm = [0x0bu8; 22];
        let okm = hkdf_sha256_32(None, &ikm, b"");
        assert_eq!(
            hex::encode(okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
        );
    }
}
