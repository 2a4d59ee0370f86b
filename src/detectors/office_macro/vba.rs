//! VBA projects: MS-OVBA decompression (section 2.4.1) and the `dir` stream
//! that lists the modules (section 2.3.4.2). Written for hostile input: every
//! length is checked, output is capped, nothing indexes out of bounds.

/// A VBA project we cannot read: a broken compressed container or `dir`
/// stream. The text is the VBA report's error (document evidence).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VbaError {
    #[error("compressed container: bad signature")]
    BadSignature,
    #[error("compressed container: bad chunk signature")]
    BadChunkSignature,
    #[error("compressed container: truncated copy token")]
    TruncatedCopyToken,
    #[error("compressed container: copy before chunk start")]
    CopyBeforeChunkStart,
    #[error("compressed container: chunk larger than 4096 bytes")]
    ChunkTooLarge,
    /// A `dir` record whose size runs past the stream's end.
    #[error("dir stream: record 0x{id:04X} runs past the end")]
    RecordPastEnd { id: u16 },
    #[error("dir stream: more than {max} modules (office_macro.max_modules)")]
    TooManyModules { max: usize },
    #[error("dir stream: no modules listed")]
    NoModules,
}

/// One module of a VBA project, with its source text.
#[derive(Debug, Clone)]
pub struct ModuleEntry {
    /// The module's name as shown in the VBA editor (e.g. `ThisDocument`).
    pub name: String,
    /// The name of the stream that holds it, inside the `VBA` storage.
    pub stream: String,
    /// Where the compressed source starts in that stream (after the p-code).
    pub text_offset: u32,
}

/// Decompress an MS-OVBA "CompressedContainer" into at most `max_out` bytes.
///
/// A container is a signature byte (1) and chunks of up to 4096 bytes of
/// output each; a chunk is either raw or a run of flag bytes each followed by
/// eight tokens (a literal byte, or a copy of earlier output).
pub fn decompress(input: &[u8], max_out: usize) -> Result<Vec<u8>, VbaError> {
    let Some((&1, mut rest)) = input.split_first() else {
        return Err(VbaError::BadSignature);
    };
    let mut out: Vec<u8> = Vec::with_capacity(input.len().saturating_mul(2).min(max_out));
    while rest.len() >= 2 {
        let header = u16::from_le_bytes([rest[0], rest[1]]);
        // The stored size is the whole chunk (header included) minus 3.
        let chunk_len = usize::from(header & 0x0FFF) + 3;
        let compressed = header & 0x8000 != 0;
        if (header >> 12) & 0x7 != 0b011 {
            return Err(VbaError::BadChunkSignature);
        }
        let end = chunk_len.min(rest.len());
        let data = &rest[2..end];
        rest = &rest[end..];
        let chunk_start = out.len();
        if !compressed {
            // A raw chunk always holds 4096 bytes; a short one is truncation.
            out.extend_from_slice(&data[..data.len().min(4096)]);
        } else {
            decompress_chunk(data, &mut out, chunk_start)?;
        }
        if out.len() > max_out {
            out.truncate(max_out);
            return Ok(out);
        }
    }
    Ok(out)
}

fn decompress_chunk(
    mut data: &[u8],
    out: &mut Vec<u8>,
    chunk_start: usize,
) -> Result<(), VbaError> {
    while let Some((&flags, tail)) = data.split_first() {
        data = tail;
        for bit in 0..8 {
            if data.is_empty() {
                return Ok(());
            }
            if flags & (1 << bit) == 0 {
                out.push(data[0]);
                data = &data[1..];
                continue;
            }
            if data.len() < 2 {
                return Err(VbaError::TruncatedCopyToken);
            }
            let token = u16::from_le_bytes([data[0], data[1]]);
            data = &data[2..];
            let done = out.len() - chunk_start;
            // The split between offset and length bits grows with the output
            // already produced in this chunk, from 4 up to 12 offset bits.
            let mut offset_bits = 4u32;
            while offset_bits < 12 && (1usize << offset_bits) < done {
                offset_bits += 1;
            }
            let length_mask = 0xFFFFu16 >> offset_bits;
            let length = usize::from(token & length_mask) + 3;
            let offset = usize::from(token >> (16 - offset_bits)) + 1;
            if offset > done {
                return Err(VbaError::CopyBeforeChunkStart);
            }
            if done + length > 4096 {
                return Err(VbaError::ChunkTooLarge);
            }
            let from = out.len() - offset;
            // Copies may overlap their own output, so go byte by byte.
            for i in 0..length {
                let b = out[from + i];
                out.push(b);
            }
        }
    }
    Ok(())
}

/// What the `dir` stream says: the code page and the modules.
#[derive(Debug, Clone, Default)]
pub struct ProjectDir {
    pub code_page: u16,
    pub modules: Vec<ModuleEntry>,
}

// Record ids of the decompressed dir stream that we use.
const PROJECT_CODE_PAGE: u16 = 0x0003;
const PROJECT_VERSION: u16 = 0x0009;
const DIR_TERMINATOR: u16 = 0x0010;
const MODULE_NAME: u16 = 0x0019;
const MODULE_STREAM_NAME: u16 = 0x001A;
const MODULE_OFFSET: u16 = 0x0031;
const MODULE_STREAM_NAME_UNICODE: u16 = 0x0032;
const MODULE_NAME_UNICODE: u16 = 0x0047;

/// Parse a decompressed `dir` stream. Records are `id: u16, size: u32, data`;
/// the one exception is PROJECTVERSION, whose size field says 4 but which
/// carries 6 bytes. Unknown records are skipped by their size, so versions
/// with extra records still parse.
pub fn parse_dir(dir: &[u8], max_modules: usize) -> Result<ProjectDir, VbaError> {
    let mut project = ProjectDir {
        code_page: 1252,
        modules: Vec::new(),
    };
    let mut pos = 0usize;
    while pos + 6 <= dir.len() {
        let id = u16::from_le_bytes([dir[pos], dir[pos + 1]]);
        let size = u32::from_le_bytes([dir[pos + 2], dir[pos + 3], dir[pos + 4], dir[pos + 5]]);
        pos += 6;
        let size = if id == PROJECT_VERSION {
            6
        } else {
            size as usize
        };
        let Some(data) = dir.get(pos..pos.saturating_add(size)) else {
            return Err(VbaError::RecordPastEnd { id });
        };
        pos += size;
        match id {
            DIR_TERMINATOR => break,
            PROJECT_CODE_PAGE if data.len() >= 2 => {
                project.code_page = u16::from_le_bytes([data[0], data[1]]);
            }
            MODULE_NAME => {
                if project.modules.len() >= max_modules {
                    return Err(VbaError::TooManyModules { max: max_modules });
                }
                project.modules.push(ModuleEntry {
                    name: latin1(data),
                    stream: latin1(data),
                    text_offset: 0,
                });
            }
            MODULE_NAME_UNICODE => {
                if let Some(m) = project.modules.last_mut() {
                    m.name = utf16le(data);
                }
            }
            MODULE_STREAM_NAME => {
                if let Some(m) = project.modules.last_mut() {
                    m.stream = latin1(data);
                }
            }
            MODULE_STREAM_NAME_UNICODE => {
                if let Some(m) = project.modules.last_mut() {
                    let name = utf16le(data);
                    if !name.is_empty() {
                        m.stream = name;
                    }
                }
            }
            MODULE_OFFSET if data.len() >= 4 => {
                if let Some(m) = project.modules.last_mut() {
                    m.text_offset = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                }
            }
            _ => {}
        }
    }
    if project.modules.is_empty() {
        return Err(VbaError::NoModules);
    }
    Ok(project)
}

/// Bytes as Latin-1 text. VBA keywords are ASCII, so this keeps every one of
/// them intact whatever the project's code page; other letters only appear in
/// evidence (module names), where the Unicode records are preferred.
pub fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn utf16le(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_literal_chunks() {
        // One compressed chunk of literals only: flag byte 0 then 3 bytes.
        let body = [0x00, b'a', b'b', b'c'];
        let header: u16 = 0xB000 | (body.len() as u16 + 2 - 3);
        let mut input = vec![1];
        input.extend_from_slice(&header.to_le_bytes());
        input.extend_from_slice(&body);
        assert_eq!(decompress(&input, 100).unwrap(), b"abc");
    }

    #[test]
    fn copy_tokens_repeat_earlier_output() {
        // "abc" then a copy token (offset 3, length 6) -> "abcabcabc".
        // With 3 bytes done, offset bits = 4: token = (3-1) << 12 | (6-3).
        let token: u16 = (2 << 12) | 3;
        let mut body = vec![0b0000_1000, b'a', b'b', b'c'];
        body.extend_from_slice(&token.to_le_bytes());
        let header: u16 = 0xB000 | (body.len() as u16 + 2 - 3);
        let mut input = vec![1];
        input.extend_from_slice(&header.to_le_bytes());
        input.extend_from_slice(&body);
        assert_eq!(decompress(&input, 100).unwrap(), b"abcabcabc");
    }

    #[test]
    fn hostile_containers_are_errors_not_panics() {
        // Copy token before any output.
        let mut input = vec![1, 0x03, 0xB0, 0x01, 0x00, 0x10];
        assert!(decompress(&input, 100).is_err());
        // Bad signatures.
        assert!(decompress(&[], 100).is_err());
        assert!(decompress(&[2, 0, 0], 100).is_err());
        input = vec![1, 0xFF, 0x0F];
        assert!(decompress(&input, 100).is_err());
        // Output is capped.
        let mut raw = vec![1];
        for _ in 0..10 {
            raw.extend_from_slice(&0x3FFFu16.to_le_bytes());
            raw.extend(std::iter::repeat_n(b'x', 4096));
        }
        assert_eq!(decompress(&raw, 5000).unwrap().len(), 5000);
    }

    #[test]
    fn dir_records_past_the_end_are_errors() {
        let mut dir = Vec::new();
        dir.extend_from_slice(&MODULE_NAME.to_le_bytes());
        dir.extend_from_slice(&u32::MAX.to_le_bytes());
        dir.extend_from_slice(b"Module1");
        assert!(parse_dir(&dir, 10).is_err());
    }
}
