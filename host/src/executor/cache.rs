//! The on-disk cache of compiled components: one file per (wasm content, engine configuration),
//! so that a restart deserializes instead of recompiling.
//!
//! A file is named by the sha256 of the wasm bytes and of the engine's precompile compatibility
//! hash (wasmtime version, compiler settings, tunables). Files are written only by this module,
//! atomically (temp file in the same directory, then rename), so a reader never sees a partial one.
//! Loaded components map their file, so a file is never rewritten in place (truncating a mapped
//! file would crash the host with SIGBUS); replacing it by rename leaves existing mappings intact.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::Error;

/// Hex sha256 of the wasm bytes: the identity of an upload.
pub(super) fn digest(wasm: &[u8]) -> String {
    hex::encode(Sha256::digest(wasm))
}

/// Hex sha256 of the engine's precompile compatibility hash: changes whenever compiled artifacts
/// of this engine would not load in another (wasmtime upgrade, different settings).
pub(super) fn engine_fingerprint(engine: &Engine) -> String {
    // The compatibility hash only implements `Hash`; feed it into sha256 rather than
    // `DefaultHasher`, whose output may change between Rust releases.
    struct Sha(Sha256);
    impl Hasher for Sha {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut sha = Sha(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut sha);
    hex::encode(sha.0.finalize())
}

pub(super) struct ComponentCache {
    dir: PathBuf,
    engine_fingerprint: String,
}

impl ComponentCache {
    pub(super) fn open(dir: &Path, engine: &Engine) -> Result<ComponentCache, Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Cache {
            path: dir.to_owned(),
            source,
        })?;
        Ok(ComponentCache {
            dir: dir.to_owned(),
            engine_fingerprint: engine_fingerprint(engine),
        })
    }

    fn path(&self, digest: &str) -> PathBuf {
        // 32 hex digits of the engine fingerprint are plenty to tell configurations apart.
        self.dir
            .join(format!("{digest}-{}.cwasm", &self.engine_fingerprint[..32]))
    }

    /// The cached compilation of the wasm with this digest, if there is a usable one. A file
    /// that fails to load (foreign, damaged) is ignored: the caller recompiles and replaces it.
    pub(super) fn load(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let path = self.path(digest);
        if !path.exists() {
            return None;
        }
        // SAFETY: `deserialize_file` trusts the file to be a compiled artifact produced by this
        // wasmtime. Files in the cache directory are written only by `store` below, from
        // `Component::serialize` of an engine with the same compatibility hash (which is part of
        // the name), and appear atomically by rename, so no partial or foreign file has this
        // name unless someone else writes into our cache directory; wasmtime still checks the
        // header and compatibility hash before using it.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(engine, &path) };
        match loaded {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), "ignoring unusable compiled component: {error:#}");
                None
            }
        }
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores the compiled form of the wasm with this digest, atomically.
    pub(super) fn store(&self, digest: &str, component: &Component) -> Result<(), Error> {
        let bytes = component
            .serialize()
            .map_err(|e| Error::Engine(format!("serializing a compiled component: {e:#}")))?;
        self.store_bytes(digest, &bytes)
    }

    /// Stores `bytes`, a compiled component of this engine's configuration, atomically.
    pub(super) fn store_bytes(&self, digest: &str, bytes: &[u8]) -> Result<(), Error> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = self.path(digest);
        let tmp = self.dir.join(format!(
            ".{digest}.{}.{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(bytes)?;
            // The rename below must never publish a file whose contents are still in flight.
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            Error::Cache {
                path: path.clone(),
                source,
            }
        })
    }

    /// Forgets the compilation of the wasm with this digest (one that turned out unusable).
    /// Mappings of the file stay valid: unlinking never changes a mapped file's pages.
    pub(super) fn remove(&self, digest: &str) {
        let path = self.path(digest);
        if let Err(error) = std::fs::remove_file(&path)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), %error, "cannot remove a compiled component");
        }
    }
}
