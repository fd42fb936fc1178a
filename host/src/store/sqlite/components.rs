//! Uploaded components as files named by their sha256, beside the database: written once,
//! atomically (a temporary file, fsync, rename), so a crash never leaves half a component.

use std::path::Path;

use super::{Error, Result};

pub async fn put(dir: &Path, sha256: &str, bytes: Vec<u8>) -> Result<()> {
    let path = dir.join(format!("{sha256}.wasm"));
    let dir = dir.to_owned();
    let shown = dir.display().to_string();
    tokio::task::spawn_blocking(move || write_atomically(&dir, &path, &bytes))
        .await
        .map_err(|e| Error::Unavailable(format!("storing a component: {e}")))?
        .map_err(|e| Error::Unavailable(format!("storing a component in {shown}: {e}")))
}

pub async fn get(dir: &Path, sha256: &str) -> Result<Vec<u8>> {
    let path = dir.join(format!("{sha256}.wasm"));
    match tokio::fs::read(&path).await {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Error::ComponentNotFound(sha256.to_owned()))
        }
        Err(e) => Err(Error::Unavailable(format!(
            "reading {}: {e}",
            path.display()
        ))),
    }
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if path.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}
