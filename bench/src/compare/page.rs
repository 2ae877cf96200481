//! Page weight: the release build's wasm and JavaScript, raw and brotli
//! compressed, and the HTML page each server sends for `/`.

use std::{
    fs,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    time::Duration,
};

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;

/// Brotli settings for files that have no precompressed `.br` beside them:
/// the strongest quality, and a window larger than any of these files.
pub const BROTLI_QUALITY: i32 = 11;
pub const BROTLI_WINDOW_BITS: i32 = 22;

/// Largest page body read from a server.
const MAX_BODY_BYTES: u64 = 16 << 20;

pub const PKG_DIR: &str = "target/site/pkg";

#[derive(Debug, Clone, Serialize)]
pub struct PageFile {
    pub name: String,
    pub raw_bytes: u64,
    pub brotli_bytes: u64,
    /// The size comes from a `.br` file next to it rather than compressing
    /// it here.
    pub precompressed: bool,
}

/// Every `*.wasm` and `*.js` file in `<repo>/target/site/pkg`, by name.
pub fn pkg_files(repo: &Path) -> Result<Vec<PageFile>> {
    let dir = repo.join(PKG_DIR);
    let mut files = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let is_asset = path
            .extension()
            .is_some_and(|ext| ext == "wasm" || ext == "js");
        if !is_asset || !path.is_file() {
            continue;
        }
        let raw = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut br_path = path.clone().into_os_string();
        br_path.push(".br");
        let (brotli_bytes, precompressed) = match fs::metadata(&br_path) {
            Ok(meta) if meta.is_file() => (meta.len(), true),
            _ => (compressed_len(&raw)?, false),
        };
        files.push(PageFile {
            name: path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default(),
            raw_bytes: raw.len() as u64,
            brotli_bytes,
            precompressed,
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    ensure!(
        !files.is_empty(),
        "no .wasm or .js files in {}: build with `cargo leptos build --release`",
        dir.display()
    );
    Ok(files)
}

/// Size of `bytes` brotli-compressed at [`BROTLI_QUALITY`].
pub fn compressed_len(bytes: &[u8]) -> Result<u64> {
    let params = brotli::enc::BrotliEncoderParams {
        quality: BROTLI_QUALITY,
        lgwin: BROTLI_WINDOW_BITS,
        ..Default::default()
    };
    let mut out = Vec::new();
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params).context("brotli")?;
    Ok(out.len() as u64)
}

/// The body of `GET /` (no compression asked for), over plain HTTP/1.0.
pub fn fetch_page(addr: SocketAddr) -> Result<Vec<u8>> {
    let timeout = Duration::from_secs(10);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET / HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream
        .take(MAX_BODY_BYTES)
        .read_to_end(&mut response)
        .context("reading the response")?;
    body_of(&response)
}

/// The body of a raw HTTP/1.x response, de-chunked if need be.
pub fn body_of(response: &[u8]) -> Result<Vec<u8>> {
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .context("no end of headers in the response")?;
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let body = &response[split + 4..];
    let status = head.lines().next().unwrap_or_default();
    ensure!(
        status.split_whitespace().nth(1) == Some("200"),
        "the server answered `{status}`"
    );
    let chunked = head.lines().any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim() == "transfer-encoding" && value.contains("chunked")
        })
    });
    if chunked {
        dechunk(body)
    } else {
        Ok(body.to_vec())
    }
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|window| window == b"\r\n")
            .context("a chunk size line without an end")?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("chunk size `{size_text}`"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size {
            bail!("a chunk is cut short");
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_chunked_bodies() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(body_of(plain).unwrap(), b"hello");
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n";
        assert_eq!(body_of(chunked).unwrap(), b"hello world");
        assert!(body_of(b"HTTP/1.1 404 Not Found\r\n\r\nnope").is_err());
        assert!(body_of(b"HTTP/1.1 200 OK\r\n").is_err());
    }

    #[test]
    fn brotli_shrinks_repetitive_text() {
        let text = "parley ".repeat(1_000);
        let len = compressed_len(text.as_bytes()).unwrap();
        assert!(len > 0 && len < 100, "{len}");
    }
}
