//! The server's ed25519 signing key, stored the way Synapse stores it:
//! one line, `ed25519 <version> <unpadded base64 seed>`.

use std::path::Path;

use anyhow::{Context, bail};
use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use ruma::{CanonicalJsonObject, serde::Base64, signatures::Ed25519KeyPair};

pub struct SigningKey {
    pair: Ed25519KeyPair,
    seed: [u8; 32],
}

impl SigningKey {
    /// A fresh key with a random version name.
    pub fn generate() -> Self {
        let seed: [u8; 32] = rand::random();
        let version: String = {
            const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
            (0..6).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
        };
        Self::from_seed(seed, format!("a_{version}")).expect("a fresh seed is a valid key")
    }

    fn from_seed(seed: [u8; 32], version: String) -> anyhow::Result<Self> {
        // PKCS#8 v1 wrapping of a bare ed25519 seed (RFC 8410), which is what
        // ruma's key pair is built from.
        let mut der =
            vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
        der.extend_from_slice(&seed);
        let pair = Ed25519KeyPair::from_der(&der, version).context("invalid ed25519 key")?;
        Ok(Self { pair, seed })
    }

    pub fn parse(line: &str) -> anyhow::Result<Self> {
        let mut parts = line.split_whitespace();
        let (Some("ed25519"), Some(version), Some(seed), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            bail!("expected one line \"ed25519 <version> <base64 seed>\"");
        };
        if !version.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("the key version may contain only letters, digits and '_'");
        }
        let bytes = STANDARD_NO_PAD.decode(seed.trim_end_matches('=')).context("the seed is not base64")?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| anyhow::anyhow!("the seed is not 32 bytes"))?;
        Self::from_seed(seed, version.to_owned())
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(text.trim()).with_context(|| format!("in {}", path.display()))
    }

    /// Writes the key to a new file, readable by its owner only; never overwrites.
    pub fn write_new(&self, path: &Path) -> anyhow::Result<()> {
        use std::{io::Write, os::unix::fs::OpenOptionsExt};
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        writeln!(file, "ed25519 {} {}", self.version(), STANDARD_NO_PAD.encode(self.seed))?;
        Ok(())
    }

    /// The key version, without the `ed25519:` algorithm prefix.
    pub fn version(&self) -> &str {
        self.pair.version()
    }

    /// The key id, `ed25519:<version>`.
    pub fn key_id(&self) -> String {
        format!("ed25519:{}", self.version())
    }

    pub fn public_key(&self) -> Base64 {
        Base64::new(self.pair.public_key().to_vec())
    }

    /// Signs a JSON object in place as `entity` (our server name).
    pub fn sign_json(&self, entity: &str, object: &mut CanonicalJsonObject) -> anyhow::Result<()> {
        ruma::signatures::sign_json(entity, &self.pair, object).context("cannot sign JSON")
    }

    pub fn pair(&self) -> &Ed25519KeyPair {
        &self.pair
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_key_reads_back_identically() {
        let dir = std::env::temp_dir().join(format!("hs-key-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = SigningKey::generate();
        let path = dir.join("signing.key");
        key.write_new(&path).unwrap();
        assert!(key.write_new(&path).is_err(), "an existing key is never overwritten");
        let again = SigningKey::load(&path).unwrap();
        assert_eq!(again.key_id(), key.key_id());
        assert_eq!(again.public_key(), key.public_key());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn malformed_keys_are_refused() {
        for line in ["", "ed25519 a_b", "rsa a_b AAAA", "ed25519 a_b !!!", "ed25519 a_b AAAA"] {
            assert!(SigningKey::parse(line).is_err(), "{line:?}");
        }
    }
}
