//! Reading mail from disk for `check` and `learn`: .eml files, directories of
//! them (recursively), mbox files and Maildirs.

use std::fs;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// One message read from disk.
#[derive(Debug)]
pub struct InputMessage {
    /// `path` for a single file, `path:N` for the Nth message of an mbox.
    pub label: String,
    pub bytes: Vec<u8>,
}

/// Something that could not be read, named for the operator.
#[derive(Debug)]
pub struct InputError {
    pub label: String,
    pub error: String,
}

/// What a walk meets: a message, something unreadable, or a file that is
/// not mail (a README beside the .eml files), skipped but counted.
#[derive(Debug)]
pub enum Walked {
    Message(InputMessage),
    Error(InputError),
    /// The file's path.
    Skipped(String),
}

/// Everything found under `paths`, in a stable order: messages or errors.
pub fn walk(paths: &[PathBuf], mut each: impl FnMut(Result<InputMessage, InputError>)) {
    walk_all(paths, |w| match w {
        Walked::Message(m) => each(Ok(m)),
        Walked::Error(e) => each(Err(e)),
        Walked::Skipped(_) => {}
    });
}

/// Like [`walk`], also telling which files were skipped as not mail, so a
/// summary can count every file. A file named `.eml` that is not mail is
/// an error, not a skip: someone meant it to be a message.
pub fn walk_all(paths: &[PathBuf], mut each: impl FnMut(Walked)) {
    let mut each = |r: Result<InputMessage, InputError>| match r {
        Ok(m) => each(Walked::Message(m)),
        Err(e) if e.error == SKIP => each(Walked::Skipped(e.label)),
        Err(e) => each(Walked::Error(e)),
    };
    for path in paths {
        walk_path(path, true, &mut each);
    }
}

/// Internal marker for a skipped file (never shown).
const SKIP: &str = "\0skip";

/// `named`: the user named this file (or it sits in a Maildir), so it is read
/// whatever it holds; files met while walking a directory are read only when
/// they look like mail, so a README beside the .eml files is not "scanned".
fn walk_path(path: &Path, named: bool, each: &mut impl FnMut(Result<InputMessage, InputError>)) {
    let label = path.display().to_string();
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            return each(Err(InputError {
                label,
                error: e.to_string(),
            }))
        }
    };
    if meta.is_dir() {
        if is_maildir(path) {
            for sub in ["new", "cur"] {
                walk_dir_files(&path.join(sub), each);
            }
            return;
        }
        let mut entries = match read_dir_sorted(path) {
            Ok(e) => e,
            Err(e) => {
                return each(Err(InputError {
                    label,
                    error: e.to_string(),
                }))
            }
        };
        entries.retain(|p| {
            // Skip hidden files and our own golden/expectation files.
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            !name.starts_with('.')
        });
        for entry in entries {
            walk_path(&entry, false, each);
        }
        return;
    }
    match fs::File::open(path) {
        Ok(mut file) => {
            let mut head = [0u8; 1024];
            let n = file.read(&mut head).unwrap_or(0);
            let head = &head[..n];
            if head.starts_with(b"From ") {
                read_mbox(path, each);
            } else if !named && !looks_like_mail(head) {
                let eml = path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("eml"));
                each(Err(InputError {
                    label,
                    error: if eml {
                        "not a mail message: it does not start with a header line (Name: value)"
                            .into()
                    } else {
                        // Not mail: skipped (and counted), as `grep -r` skips binaries.
                        SKIP.into()
                    },
                }));
            } else {
                match fs::read(path) {
                    Ok(bytes) => each(Ok(InputMessage { label, bytes })),
                    Err(e) => each(Err(InputError {
                        label,
                        error: e.to_string(),
                    })),
                }
            }
        }
        Err(e) => each(Err(InputError {
            label,
            error: e.to_string(),
        })),
    }
}

fn walk_dir_files(dir: &Path, each: &mut impl FnMut(Result<InputMessage, InputError>)) {
    match read_dir_sorted(dir) {
        Ok(entries) => {
            for p in entries.into_iter().filter(|p| p.is_file()) {
                walk_path(&p, true, each);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => each(Err(InputError {
            label: dir.display().to_string(),
            error: e.to_string(),
        })),
    }
}

/// The first line is a header field (`Name: value`), as in every .eml file.
fn looks_like_mail(head: &[u8]) -> bool {
    let first = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let Some(colon) = first.iter().position(|&b| b == b':') else {
        return false;
    };
    colon > 0
        && first[..colon]
            .iter()
            .all(|&b| b.is_ascii_graphic() && b != b':')
}

fn read_dir_sorted(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    out.sort();
    Ok(out)
}

fn is_maildir(path: &Path) -> bool {
    path.join("cur").is_dir() && path.join("new").is_dir()
}

fn read_mbox(path: &Path, each: &mut impl FnMut(Result<InputMessage, InputError>)) {
    let label = path.display().to_string();
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            return each(Err(InputError {
                label,
                error: e.to_string(),
            }))
        }
    };
    let iter = mail_parser::mailbox::mbox::MessageIterator::new(BufReader::new(file));
    for (i, message) in iter.enumerate() {
        let label = format!("{}:{}", path.display(), i + 1);
        match message {
            Ok(m) => each(Ok(InputMessage {
                label,
                bytes: m.unwrap_contents(),
            })),
            Err(e) => each(Err(InputError {
                label,
                error: format!("unreadable mbox entry: {e}"),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(paths: &[PathBuf]) -> (Vec<String>, Vec<String>) {
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        walk(paths, |r| match r {
            Ok(m) => ok.push(m.label),
            Err(e) => bad.push(e.label),
        });
        (ok, bad)
    }

    #[test]
    fn reads_files_dirs_mbox_and_maildir() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("a.eml"), "Subject: a\r\n\r\nx\r\n").unwrap();
        fs::write(
            d.join("README.md"),
            "# Samples\n\nNot a message: skipped in a directory walk.\n",
        )
        .unwrap();
        fs::create_dir_all(d.join("sub")).unwrap();
        fs::write(d.join("sub/b.eml"), "Subject: b\r\n\r\nx\r\n").unwrap();
        fs::write(
            d.join("box.mbox"),
            "From a@b Mon Jan  1 00:00:00 2024\nSubject: 1\n\none\n\nFrom c@d Mon Jan  1 00:00:00 2024\nSubject: 2\n\ntwo\n",
        )
        .unwrap();
        let md = d.join("Maildir");
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(md.join(sub)).unwrap();
        }
        fs::write(md.join("cur/1:2,S"), "Subject: m\r\n\r\nx\r\n").unwrap();
        fs::write(d.join("broken.eml"), b"\x00\x01 garbage, no header\n").unwrap();
        let (ok, bad) = collect(&[d.to_path_buf(), d.join("missing.eml")]);
        let mut skipped = Vec::new();
        walk_all(&[d.to_path_buf()], |w| {
            if let Walked::Skipped(label) = w {
                skipped.push(label)
            }
        });
        assert_eq!(skipped, [d.join("README.md").display().to_string()]);
        assert_eq!(
            bad,
            [
                d.join("broken.eml").display().to_string(),
                d.join("missing.eml").display().to_string()
            ]
        );
        let names: Vec<String> = ok
            .iter()
            .map(|l| {
                l.strip_prefix(&format!("{}/", d.display()))
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            [
                "Maildir/cur/1:2,S",
                "a.eml",
                "box.mbox:1",
                "box.mbox:2",
                "sub/b.eml"
            ]
        );
    }
}
