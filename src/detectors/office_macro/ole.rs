//! OLE2 compound files (the `cfb` crate): .doc/.xls/.ppt/.vsd, raw
//! vbaProject.bin, and OOXML files encrypted into an `EncryptedPackage`.
//! Finds every VBA project (any storage holding `VBA/dir`), Excel 4.0 macro
//! sheets, encryption, and OLE objects PowerPoint keeps compressed inside its
//! document stream.

use std::io::{Cursor, Read};

use super::{keywords, vba, xlm, App, Budget, DocumentReport, VbaReport, XlmReport};

const OLE_MAGIC: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

pub fn is_ole(data: &[u8]) -> bool {
    data.starts_with(OLE_MAGIC)
}

/// Analyse one compound file. `location` names it inside the attachment
/// ("" for the attachment itself, `word/embeddings/oleObject1.bin` inside a
/// package); `depth` counts documents nested inside documents.
pub fn analyze(
    data: &[u8],
    location: &str,
    depth: usize,
    report: &mut DocumentReport,
    budget: &mut Budget<'_>,
) {
    let padded: Vec<u8>;
    let mut file = match cfb::CompoundFile::open(Cursor::new(data)) {
        Ok(f) => f,
        Err(e) => {
            // Truncated files (the FAT covers sectors past the end) are
            // common and Office opens them; retry with zero sectors added.
            let reopened = match padded_to_fat(data, budget.settings.max_stream_bytes) {
                Some(p) => {
                    padded = p;
                    cfb::CompoundFile::open(Cursor::new(&padded[..])).ok()
                }
                None => None,
            };
            match reopened {
                Some(f) => f,
                None => {
                    report.error(location, format!("not a readable OLE2 file: {e}"));
                    return;
                }
            }
        }
    };
    // List the tree once; a hostile directory may be huge.
    let mut streams: Vec<(String, u64)> = Vec::new();
    for (seen, entry) in file.walk().enumerate() {
        if seen >= budget.settings.max_ole_entries {
            report.error(
                location,
                format!(
                    "more than {} OLE entries (office_macro.max_ole_entries); the rest not checked",
                    budget.settings.max_ole_entries
                ),
            );
            break;
        }
        if entry.is_stream() {
            streams.push((entry.path().to_string_lossy().into_owned(), entry.len()));
        }
    }
    let root_has = |name: &str| {
        streams
            .iter()
            .any(|(p, _)| p.trim_start_matches('/').eq_ignore_ascii_case(name))
    };
    let app = if root_has("WordDocument") {
        App::Word
    } else if root_has("Workbook") || root_has("Book") {
        App::Excel
    } else if root_has("PowerPoint Document") {
        App::PowerPoint
    } else if root_has("VisioDocument") {
        App::Visio
    } else if root_has("EncryptedPackage") {
        App::EncryptedPackage
    } else if root_has("PROJECT") || root_has("VBA/dir") {
        App::VbaProject
    } else {
        App::Other
    };
    if depth == 0 {
        report.app = app;
    }

    if root_has("EncryptedPackage") {
        report.encryption(location, "EncryptedPackage: password-encrypted OOXML");
    }
    if app == App::Word {
        if let Some(fib) = read_stream(&mut file, "/WordDocument", 32, location, report) {
            // FIB base, offset 0x0A: fEncrypted (bit 8), fObfuscated (bit 15).
            if fib.len() >= 12 {
                let flags = u16::from_le_bytes([fib[10], fib[11]]);
                if flags & 0x0100 != 0 {
                    let how = if flags & 0x8000 != 0 { "XOR" } else { "RC4" };
                    report.encryption(location, &format!("Word document encrypted ({how})"));
                }
            }
        }
    }
    if root_has("EncryptedSummary") {
        report.encryption(location, "PowerPoint document encrypted (CryptoAPI)");
    }

    for (path, len) in &streams {
        let Some(storage) = vba_storage_of_dir(path) else {
            continue;
        };
        if budget.out_of_time(location, report) {
            return;
        }
        // Projects at the usual places are named by the document alone;
        // others (inside ObjectPool, ...) also by their storage.
        let storage_name = storage.trim_start_matches('/');
        let usual = ["Macros/VBA", "_VBA_PROJECT_CUR/VBA", "VBA"]
            .iter()
            .any(|u| u.eq_ignore_ascii_case(storage_name));
        let vba_location = if usual {
            location.to_string()
        } else {
            join(location, storage_name)
        };
        let project = read_vba_project(&mut file, storage, path, *len, budget);
        report.vba.push(VbaReport {
            location: vba_location,
            ..project
        });
    }

    for name in ["/Workbook", "/Book"] {
        if !streams.iter().any(|(p, _)| p.eq_ignore_ascii_case(name)) {
            continue;
        }
        let limit = budget.settings.max_stream_bytes;
        if let Some(stream) = read_stream(&mut file, name, limit, location, report) {
            let wb = xlm::parse_workbook(&stream);
            if let Some(how) = wb.encryption {
                report.encryption(
                    location,
                    &format!("Excel workbook encrypted ({how}, FILEPASS)"),
                );
            }
            // An Auto_Open name alone may point at a VBA macro, which the
            // VBA analysis grades; XLM needs a macro sheet.
            if !wb.macro_sheets.is_empty() {
                report.xlm.push(XlmReport {
                    location: location.to_string(),
                    sheets: wb.macro_sheets,
                    auto_names: wb.auto_names,
                    keywords: wb.keywords,
                });
            }
        }
        break;
    }

    if app == App::PowerPoint {
        let limit = budget.settings.max_stream_bytes;
        if let Some(stream) =
            read_stream(&mut file, "/PowerPoint Document", limit, location, report)
        {
            powerpoint_objects(&stream, location, depth, report, budget);
        }
    }
}

/// The file extended with zero bytes to the size its FAT describes, when
/// that is larger than the file and within `max` bytes.
fn padded_to_fat(data: &[u8], max: u64) -> Option<Vec<u8>> {
    let header = data.get(..512)?;
    let shift = u16::from_le_bytes([header[0x1E], header[0x1F]]);
    if shift != 9 && shift != 12 {
        return None;
    }
    let sector = 1u64 << shift;
    let fat_sectors = u64::from(u32::from_le_bytes([
        header[0x2C],
        header[0x2D],
        header[0x2E],
        header[0x2F],
    ]));
    // Each FAT sector maps sector/4 sectors; the header takes one sector.
    let wanted = (fat_sectors * (sector / 4) + 1) * sector;
    if wanted <= data.len() as u64 || wanted > max {
        return None;
    }
    let mut out = Vec::with_capacity(wanted as usize);
    out.extend_from_slice(data);
    out.resize(wanted as usize, 0);
    Some(out)
}

/// `/Macros/VBA/dir` -> `/Macros/VBA`: the storage of a VBA project.
fn vba_storage_of_dir(path: &str) -> Option<&str> {
    let (storage, leaf) = path.rsplit_once('/')?;
    let parent = storage.rsplit('/').next()?;
    (leaf.eq_ignore_ascii_case("dir") && parent.eq_ignore_ascii_case("VBA")).then_some(storage)
}

/// Read the `dir` stream and every module's source. Failures are recorded in
/// the report's `error`: the project is still there, even if unreadable.
fn read_vba_project<F: Read + std::io::Seek>(
    file: &mut cfb::CompoundFile<F>,
    storage: &str,
    dir_path: &str,
    dir_len: u64,
    budget: &mut Budget<'_>,
) -> VbaReport {
    let mut out = VbaReport::default();
    let settings = budget.settings;
    let dir_raw = match read_limited(file, dir_path, settings.max_stream_bytes) {
        Ok(d) => d,
        Err(e) => {
            out.error = Some(format!("VBA dir stream ({dir_len} bytes): {e}"));
            return out;
        }
    };
    let dir = match vba::decompress(&dir_raw, settings.max_stream_bytes as usize)
        .and_then(|d| vba::parse_dir(&d, settings.max_modules))
    {
        Ok(dir) => dir,
        Err(e) => {
            out.error = Some(format!("VBA project: {e}"));
            return out;
        }
    };
    let mut source = String::new();
    for module in &dir.modules {
        out.modules.push(module.name.clone());
        let path = format!("{storage}/{}", module.stream);
        let stream = match read_limited(file, &path, settings.max_stream_bytes) {
            Ok(s) => s,
            Err(e) => {
                out.error
                    .get_or_insert(format!("VBA module {}: {e}", module.name));
                continue;
            }
        };
        let Some(compressed) = stream.get(module.text_offset as usize..) else {
            out.error.get_or_insert(format!(
                "VBA module {}: source offset {} past the stream end",
                module.name, module.text_offset
            ));
            continue;
        };
        let room = budget.source_bytes_left as usize;
        if room == 0 {
            out.error.get_or_insert(format!(
                "VBA source over {} bytes (office_macro.max_vba_source_bytes); the rest not checked",
                settings.max_vba_source_bytes
            ));
            break;
        }
        match vba::decompress(compressed, room) {
            Ok(text) => {
                budget.source_bytes_left -= text.len() as u64;
                source.push_str(&vba::latin1(&text));
                source.push('\n');
            }
            Err(e) => {
                out.error
                    .get_or_insert(format!("VBA module {}: {e}", module.name));
            }
        }
    }
    out.keywords = keywords::classify(&source);
    out
}

/// PowerPoint 97-2003 keeps the VBA project (and other embedded objects) as
/// ExOleObjStg records inside its document stream, usually zlib-compressed.
/// Find the record headers, inflate within budget, and analyse each OLE file.
fn powerpoint_objects(
    stream: &[u8],
    location: &str,
    depth: usize,
    report: &mut DocumentReport,
    budget: &mut Budget<'_>,
) {
    // recVer 0 / recInstance 1 (compressed) or 0 (plain), recType 0x1011.
    const COMPRESSED: [u8; 4] = [0x10, 0x00, 0x11, 0x10];
    const PLAIN: [u8; 4] = [0x00, 0x00, 0x11, 0x10];
    let mut pos = 0usize;
    let mut index = 0usize;
    while pos + 8 <= stream.len() {
        let head = &stream[pos..pos + 4];
        let compressed = head == COMPRESSED;
        if !(compressed || head == PLAIN) {
            pos += 1;
            continue;
        }
        let len = u32::from_le_bytes([
            stream[pos + 4],
            stream[pos + 5],
            stream[pos + 6],
            stream[pos + 7],
        ]) as usize;
        let body = &stream[pos + 8..(pos + 8).saturating_add(len).min(stream.len())];
        pos += 8;
        let object = if compressed {
            if body.len() < 4 {
                continue;
            }
            let limit = budget.inflate_cap(budget.settings.max_stream_bytes, body.len() as u64);
            let mut out = Vec::new();
            // Some writers store a record length shorter than the zlib
            // stream; the stream knows its own end, so let it run on.
            let mut z = flate2::read::ZlibDecoder::new(&stream[pos + 4..]).take(limit);
            // A damaged stream still yields what came before the damage;
            // Office itself reads such files, so we look at that part.
            let _ = z.read_to_end(&mut out);
            budget.spent(out.len() as u64);
            out
        } else {
            body.to_vec()
        };
        if !is_ole(&object) {
            continue;
        }
        pos += body.len();
        index += 1;
        let inner = join(location, &format!("PowerPoint Document/object{index}"));
        if budget.enter_nested(&inner, depth + 1, report) {
            analyze(&object, &inner, depth + 1, report, budget);
        }
    }
}

fn read_stream<F: Read + std::io::Seek>(
    file: &mut cfb::CompoundFile<F>,
    path: &str,
    limit: u64,
    location: &str,
    report: &mut DocumentReport,
) -> Option<Vec<u8>> {
    match read_limited(file, path, limit) {
        Ok(data) => Some(data),
        Err(e) => {
            report.error(location, format!("stream {path}: {e}"));
            None
        }
    }
}

/// Read at most `limit` bytes of a stream; the cfb crate follows the sector
/// chain and refuses loops and chains past the file's end.
fn read_limited<F: Read + std::io::Seek>(
    file: &mut cfb::CompoundFile<F>,
    path: &str,
    limit: u64,
) -> std::io::Result<Vec<u8>> {
    let stream = file.open_stream(path)?;
    let mut out = Vec::new();
    stream.take(limit).read_to_end(&mut out)?;
    Ok(out)
}

fn join(location: &str, inner: &str) -> String {
    if location.is_empty() {
        inner.to_string()
    } else {
        format!("{location}/{inner}")
    }
}
