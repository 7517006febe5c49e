//! Password authentication: `mysql_native_password` and `caching_sha2_password` scrambles (both
//! directions), the caching_sha2 full-authentication markers, and the RSA exchange that carries
//! a password over a plain connection.
//!
//! Note: RSA decryption uses the `rsa` crate, which has a known timing side channel
//! (RUSTSEC-2023-0071, "Marvin"); decryption is blinded, and TLS should be preferred for
//! full authentication.

use rand::Rng;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use rsa::rand_core::OsRng;
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use sha1::{Digest, Sha1};
use sha2::Sha256;

/// Length of the nonce (the "scramble") in the handshake and in auth switches.
pub const NONCE_LEN: usize = 20;

pub const MYSQL_NATIVE_PASSWORD: &str = "mysql_native_password";
pub const CACHING_SHA2_PASSWORD: &str = "caching_sha2_password";

/// caching_sha2: client → server, "send me your RSA public key" (the whole auth data).
pub const CACHING_SHA2_REQUEST_PUBLIC_KEY: u8 = 0x02;
/// caching_sha2: server → client inside AuthMoreData, the fast-path scramble matched.
pub const CACHING_SHA2_FAST_AUTH_SUCCESS: u8 = 0x03;
/// caching_sha2: server → client inside AuthMoreData, send the password (TLS: cleartext + NUL;
/// plain: RSA-encrypted).
pub const CACHING_SHA2_PERFORM_FULL_AUTH: u8 = 0x04;
/// Whole AuthMoreData payloads for the two markers.
pub const FAST_AUTH_SUCCESS_PACKET: [u8; 2] = [0x01, CACHING_SHA2_FAST_AUTH_SUCCESS];
pub const PERFORM_FULL_AUTH_PACKET: [u8; 2] = [0x01, CACHING_SHA2_PERFORM_FULL_AUTH];

/// Why an RSA step of caching_sha2 authentication failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("failed to generate the RSA key: {0}")]
    KeyGeneration(#[source] rsa::Error),
    #[error("failed to read the RSA key: {0}")]
    Key(String),
    #[error("failed to decrypt the password: {0}")]
    Decrypt(#[source] rsa::Error),
    #[error("failed to encrypt the password: {0}")]
    Encrypt(#[source] rsa::Error),
}

/// A fresh nonce in the server's alphabet: 7-bit, no NUL (the nonce's second part is
/// NUL-terminated on the wire) and no `$`.
pub fn new_nonce() -> [u8; NONCE_LEN] {
    let mut rng = rand::rng();
    std::array::from_fn(|_| {
        loop {
            let b = rng.random_range(1..=127u8);
            if b != b'$' {
                break b;
            }
        }
    })
}

/// Equality that takes the same time wherever the inputs differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The 20-byte nonce, ignoring a trailing NUL or anything past 20 bytes.
fn nonce20(nonce: &[u8]) -> &[u8] {
    &nonce[..nonce.len().min(NONCE_LEN)]
}

/// `SHA1(SHA1(password))`: what MySQL stores for `mysql_native_password` (hex after `*`).
pub fn native_password_hash(password: &[u8]) -> [u8; 20] {
    Sha1::digest(Sha1::digest(password)).into()
}

/// `SHA1(password) XOR SHA1(nonce + SHA1(SHA1(password)))`; an empty password scrambles to
/// nothing, so use [`native_verify`] rather than comparing with this.
pub fn native_scramble(password: &[u8], nonce: &[u8]) -> [u8; 20] {
    let stage1: [u8; 20] = Sha1::digest(password).into();
    let stage2 = Sha1::digest(stage1);
    let mask = Sha1::new()
        .chain_update(nonce20(nonce))
        .chain_update(stage2)
        .finalize();
    std::array::from_fn(|i| stage1[i] ^ mask[i])
}

/// Checks a client's `mysql_native_password` response against the plaintext password.
pub fn native_verify(password: &[u8], nonce: &[u8], response: &[u8]) -> bool {
    if password.is_empty() {
        return response.is_empty();
    }
    native_verify_hash(&native_password_hash(password), nonce, response)
}

/// Checks a response against the stored hash `SHA1(SHA1(password))` without the password:
/// `SHA1(response XOR SHA1(nonce + hash)) == hash`.
pub fn native_verify_hash(hash: &[u8; 20], nonce: &[u8], response: &[u8]) -> bool {
    if response.len() != 20 {
        return false;
    }
    let mask = Sha1::new()
        .chain_update(nonce20(nonce))
        .chain_update(hash)
        .finalize();
    let stage1: Vec<u8> = response.iter().zip(mask).map(|(r, m)| r ^ m).collect();
    ct_eq(&Sha1::digest(stage1), hash)
}

/// `SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + nonce)`: the caching_sha2 fast-path response.
pub fn sha2_scramble(password: &[u8], nonce: &[u8]) -> [u8; 32] {
    let stage1: [u8; 32] = Sha256::digest(password).into();
    let stage2 = Sha256::digest(stage1);
    let mask = Sha256::new()
        .chain_update(stage2)
        .chain_update(nonce20(nonce))
        .finalize();
    std::array::from_fn(|i| stage1[i] ^ mask[i])
}

/// Checks a client's caching_sha2 fast-path response against the plaintext password.
pub fn sha2_verify(password: &[u8], nonce: &[u8], response: &[u8]) -> bool {
    if password.is_empty() {
        return response.is_empty();
    }
    ct_eq(&sha2_scramble(password, nonce), response)
}

/// A password sent in cleartext during full authentication over TLS (NUL-terminated).
pub fn cleartext_password(data: &[u8]) -> &[u8] {
    data.strip_suffix(&[0]).unwrap_or(data)
}

fn xor_with_nonce(data: &mut [u8], nonce: &[u8]) {
    let nonce = nonce20(nonce);
    if nonce.is_empty() {
        return;
    }
    for (b, n) in data.iter_mut().zip(nonce.iter().cycle()) {
        *b ^= n;
    }
}

/// The proxy's RSA key for caching_sha2 full authentication over plain connections.
pub struct RsaKeyPair {
    private: RsaPrivateKey,
    public_pem: String,
}

impl std::fmt::Debug for RsaKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaKeyPair").finish_non_exhaustive()
    }
}

impl RsaKeyPair {
    /// Generates a 2048-bit key (slow, especially in debug builds: do it once at startup).
    pub fn generate() -> Result<Self, AuthError> {
        Self::generate_bits(2048)
    }

    pub fn generate_bits(bits: usize) -> Result<Self, AuthError> {
        let private = RsaPrivateKey::new(&mut OsRng, bits).map_err(AuthError::KeyGeneration)?;
        Self::from_private(private)
    }

    /// Loads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, AuthError> {
        let private =
            RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| AuthError::Key(e.to_string()))?;
        Self::from_private(private)
    }

    fn from_private(private: RsaPrivateKey) -> Result<Self, AuthError> {
        let public_pem = RsaPublicKey::from(&private)
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| AuthError::Key(e.to_string()))?;
        Ok(Self {
            private,
            public_pem,
        })
    }

    /// The public key as clients expect it after a public-key request: SubjectPublicKeyInfo
    /// PEM (`-----BEGIN PUBLIC KEY-----`), sent as AuthMoreData.
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// Recovers the password from a client's RSA-encrypted response: OAEP(SHA-1) decrypt, XOR
    /// with the nonce repeated, drop the trailing NUL.
    pub fn decrypt_password(&self, ciphertext: &[u8], nonce: &[u8]) -> Result<Vec<u8>, AuthError> {
        let mut plain = self
            .private
            .decrypt_blinded(&mut OsRng, Oaep::new::<Sha1>(), ciphertext)
            .map_err(AuthError::Decrypt)?;
        xor_with_nonce(&mut plain, nonce);
        if plain.last() == Some(&0) {
            plain.pop();
        }
        Ok(plain)
    }
}

/// The client side of the exchange (the proxy logging in upstream without TLS): encrypts
/// `password + NUL` XOR nonce with the server's PEM public key (SPKI or PKCS#1).
pub fn encrypt_password(pem: &str, password: &[u8], nonce: &[u8]) -> Result<Vec<u8>, AuthError> {
    let key = RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|e| AuthError::Key(e.to_string()))?;
    let mut message = Vec::with_capacity(password.len() + 1);
    message.extend_from_slice(password);
    message.push(0);
    xor_with_nonce(&mut message, nonce);
    key.encrypt(&mut OsRng, Oaep::new::<Sha1>(), &message)
        .map_err(AuthError::Encrypt)
}

#[cfg(test)]
mod tests;
