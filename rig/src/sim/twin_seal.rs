//! A twin's weights file that can say whether it is whole.
//!
//! Safetensors checks its header's offsets against the file's length, so a truncated file is
//! refused, but a flipped byte in the tensor data reads as a different (finite) weight and the
//! twin would run on it silently. A sealed file carries, in its header's metadata, the SHA-256
//! of its tensor data ([`TENSORS_SHA256`]) and of its core ([`CORE_SHA256`], the identity
//! `twinloop twin embeddings` gives a core); [`check`] recomputes the first. The live twin a
//! session saves is sealed (`online::session::live_twin`); `twin fit` output carries no seal
//! and is read as before.

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest, Sha256};
use twinloop_model::embeddings::core_digest_input;
use twinloop_model::{ModelError, Tensor, Weights};

/// Metadata key: SHA-256 (hex) of every byte after the header.
pub const TENSORS_SHA256: &str = "twinloop.tensors_sha256";
/// Metadata key: SHA-256 (hex) of the core's tensors (`core_digest_input`).
pub const CORE_SHA256: &str = "twinloop.core_sha256";

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The core's identity: SHA-256 of its `core.*` tensors' names, shapes and values (equal for
/// two twins exactly when their cores are; readouts, perspective and modulation do not enter).
pub fn core_sha256(w: &Weights) -> Result<String, ModelError> {
    Ok(sha256_hex(&core_digest_input(w)?))
}

/// `tensors` as safetensors bytes whose metadata holds `metadata`, the core's identity and the
/// data's SHA-256.
pub fn sealed_bytes(
    tensors: &HashMap<String, Tensor>,
    mut metadata: HashMap<String, String>,
) -> Result<Vec<u8>, ModelError> {
    let core = core_sha256(&Weights::from_params(tensors.clone()))?;
    metadata.insert(CORE_SHA256.into(), core);
    // The data region does not depend on the metadata: write once to hash it, then again with
    // the hash in the header.
    let unsealed = Weights::to_bytes(tensors, metadata.clone())?;
    let (_, start) = Weights::metadata(&unsealed, Path::new("<in memory>"))?;
    metadata.insert(TENSORS_SHA256.into(), sha256_hex(&unsealed[start..]));
    Weights::to_bytes(tensors, metadata)
}

/// Checks the seal of the safetensors `bytes` read from `path`: `Ok(true)` sealed and whole,
/// `Ok(false)` no seal (e.g. `twin fit` output), `Err` why not (the header does not parse, or
/// the data's SHA-256 is not the one written).
pub fn check(bytes: &[u8], path: &Path) -> Result<bool, String> {
    let (meta, start) = Weights::metadata(bytes, path).map_err(|e| e.to_string())?;
    let Some(want) = meta.get(TENSORS_SHA256) else {
        return Ok(false);
    };
    let got = sha256_hex(bytes.get(start..).unwrap_or_default());
    if &got != want {
        return Err(format!(
            "is damaged: its tensor data's SHA-256 is {got}, not the {want} written with it \
             (a flipped or overwritten byte); use an intact copy or refit the twin"
        ));
    }
    Ok(true)
}
