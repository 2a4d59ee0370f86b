//! The staff and partner directory: a CSV file of `display name,address`
//! lines. `#` starts a comment line; a name may appear on several lines with
//! several addresses (work, subsidiary, free-mail), which all belong to one
//! person. Names with commas are quoted the CSV way: `"Yamada, Taro",taro@...`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::domains::{address_key, registrable};
use crate::names::NameKey;

/// One person (or company) of the directory with every address listed.
/// Lines with the same name (in any word order), or with an address already
/// listed ("山田 太郎" and "Taro Yamada" at one address), are one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The name as first written in the file.
    pub name: String,
    /// Other names written for the same person, e.g. in another script.
    pub aliases: Vec<String>,
    /// Lower-cased addresses, in file order, without duplicates.
    pub addresses: Vec<String>,
}

/// A problem in the directory file, with where it is: `FILE[:LINE]: PROBLEM`.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", place(.file, *.line))]
pub struct DirectoryError {
    pub file: PathBuf,
    /// 1-based line, when the problem is on one line.
    pub line: Option<u64>,
    #[source]
    pub problem: DirectoryProblem,
}

/// What is wrong with the directory file, or with one of its lines.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryProblem {
    // "directory" alone reads as a folder: name the CSV file.
    #[error("cannot read the staff directory CSV file: {0}")]
    Read(#[source] std::io::Error),
    #[error("not valid CSV: {0}")]
    Csv(#[source] csv::Error),
    #[error("expected `display name,address` (2 fields), found {0} (quote a name that contains a comma)")]
    FieldCount(usize),
    #[error("the name is not UTF-8")]
    NameNotUtf8(#[source] std::str::Utf8Error),
    #[error("the address is not UTF-8")]
    AddressNotUtf8(#[source] std::str::Utf8Error),
    /// The address as read (lower case, without `<>`).
    #[error("{0:?} is not a mail address")]
    NotAnAddress(String),
    #[error("{0:?} is too short or generic to identify anyone (after honorifics and company forms are removed)")]
    NameTooGeneric(String),
}

/// `FILE` or `FILE:LINE`.
fn place(file: &Path, line: Option<u64>) -> String {
    match line {
        Some(line) => format!("{}:{line}", file.display()),
        None => file.display().to_string(),
    }
}

/// The loaded directory, indexed by every word order of every name.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    people: Vec<Person>,
    /// Name variant (see [`NameKey::variants`]) to people.
    by_name: HashMap<String, Vec<usize>>,
    /// Address key ([`address_key`]: `例え.jp` and `xn--r8jz45g.jp` alike)
    /// to the person listing it.
    by_address: HashMap<String, usize>,
}

impl Directory {
    /// Load a directory file, reporting every bad line at once.
    pub fn load(path: &Path) -> Result<Directory, Vec<DirectoryError>> {
        let text = std::fs::read(path).map_err(|e| {
            vec![DirectoryError {
                file: path.to_path_buf(),
                line: None,
                problem: DirectoryProblem::Read(e),
            }]
        })?;
        Directory::parse(&text, path)
    }

    /// Parse directory text; `path` names the file in errors.
    pub fn parse(text: &[u8], path: &Path) -> Result<Directory, Vec<DirectoryError>> {
        let mut errors = Vec::new();
        let mut dir = Directory::default();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .comment(Some(b'#'))
            .trim(csv::Trim::All)
            .from_reader(text);
        let mut record = csv::ByteRecord::new();
        loop {
            let line = reader.position().line();
            match reader.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    let line = e.position().map(|p| p.line()).unwrap_or(line);
                    errors.push(error(path, line, DirectoryProblem::Csv(e)));
                    // A CSV error in the middle can't be resynchronised reliably.
                    break;
                }
            }
            let line = record.position().map(|p| p.line()).unwrap_or(line);
            if let Err(problem) = dir.add_record(&record) {
                errors.push(error(path, line, problem));
            }
        }
        if errors.is_empty() {
            Ok(dir)
        } else {
            Err(errors)
        }
    }

    fn add_record(&mut self, record: &csv::ByteRecord) -> Result<(), DirectoryProblem> {
        let fields: Vec<&[u8]> = record.iter().collect();
        // A blank line read as one empty field.
        if fields.iter().all(|f| f.is_empty()) {
            return Ok(());
        }
        if fields.len() != 2 {
            return Err(DirectoryProblem::FieldCount(fields.len()));
        }
        let name = std::str::from_utf8(fields[0])
            .map_err(DirectoryProblem::NameNotUtf8)?
            .to_string();
        let address = std::str::from_utf8(fields[1])
            .map_err(DirectoryProblem::AddressNotUtf8)?
            .trim_matches(|c| c == '<' || c == '>')
            .to_lowercase();
        let valid_address = match address.rsplit_once('@') {
            Some((local, domain)) => {
                !local.is_empty() && domain.contains('.') && !address.contains(char::is_whitespace)
            }
            None => false,
        };
        if !valid_address {
            return Err(DirectoryProblem::NotAnAddress(address));
        }
        let key = NameKey::new(&name)
            .filter(NameKey::is_specific)
            .ok_or_else(|| DirectoryProblem::NameTooGeneric(name.clone()))?;
        let name = name.trim().to_string();
        let address_id = address_key(&address);
        let id = match self.find(&key).first() {
            Some(&id) => id,
            None => {
                let id = match self.by_address.get(&address_id) {
                    Some(&id) => {
                        self.people[id].aliases.push(name);
                        id
                    }
                    None => {
                        self.people.push(Person {
                            name,
                            aliases: Vec::new(),
                            addresses: Vec::new(),
                        });
                        self.people.len() - 1
                    }
                };
                for variant in key.variants() {
                    self.by_name.entry(variant).or_default().push(id);
                }
                id
            }
        };
        if !self.people[id]
            .addresses
            .iter()
            .any(|a| address_key(a) == address_id)
        {
            self.people[id].addresses.push(address);
        }
        self.by_address.entry(address_id).or_insert(id);
        Ok(())
    }

    fn find(&self, key: &NameKey) -> Vec<usize> {
        let mut ids: Vec<usize> = key
            .variants()
            .iter()
            .filter_map(|v| self.by_name.get(v))
            .flatten()
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// People whose name matches `key` in any word order.
    pub fn lookup(&self, key: &NameKey) -> Vec<&Person> {
        self.find(key)
            .into_iter()
            .map(|i| &self.people[i])
            .collect()
    }

    /// The person who lists this address (compared by [`address_key`]:
    /// case, and the Unicode or punycode form of the domain, aside).
    pub fn person_with_address(&self, address: &str) -> Option<&Person> {
        self.by_address
            .get(&address_key(address))
            .map(|&i| &self.people[i])
    }

    pub fn people(&self) -> &[Person] {
        &self.people
    }

    pub fn is_empty(&self) -> bool {
        self.people.is_empty()
    }

    /// Registrable domains (keys) of every address in the directory that is
    /// not at a free-mail provider (`is_freemail` decides).
    pub fn organisation_domains(&self, is_freemail: impl Fn(&str) -> bool) -> BTreeSet<String> {
        self.people
            .iter()
            .flat_map(|p| p.addresses.iter())
            .filter_map(|a| a.rsplit_once('@').map(|(_, d)| d))
            .filter(|d| !is_freemail(d))
            .map(registrable)
            .collect()
    }
}

fn error(path: &Path, line: u64, problem: DirectoryProblem) -> DirectoryError {
    DirectoryError {
        file: path.to_path_buf(),
        line: Some(line),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Directory, Vec<DirectoryError>> {
        Directory::parse(text.as_bytes(), Path::new("staff.csv"))
    }

    #[test]
    fn names_with_several_addresses_are_one_person() {
        let dir = parse(
            "# staff\n山田 太郎,taro@legal-holdings.co.jp\n\n山田太郎,yamada.taro@gmail.com\n\"Smith, John\",John@Partner.example\n",
        )
        .unwrap();
        assert_eq!(dir.people().len(), 2);
        let taro = dir.lookup(&NameKey::new("太郎 山田様").unwrap());
        assert_eq!(taro.len(), 1);
        assert_eq!(
            taro[0].addresses,
            vec!["taro@legal-holdings.co.jp", "yamada.taro@gmail.com"]
        );
        let john = dir.person_with_address("john@partner.example").unwrap();
        assert!(dir.person_with_address("<JOHN@Partner.Example.>").is_some());
        assert_eq!(john.name, "Smith, John");
        let domains = dir.organisation_domains(|d| d == "gmail.com");
        assert_eq!(
            domains.into_iter().collect::<Vec<_>>(),
            vec!["legal-holdings.co.jp", "partner.example"]
        );
    }

    #[test]
    fn another_script_at_a_known_address_is_the_same_person() {
        let dir = parse("山田 太郎,taro@example.co.jp\nTaro Yamada,Taro@example.co.jp\n").unwrap();
        assert_eq!(dir.people().len(), 1);
        assert_eq!(dir.people()[0].aliases, vec!["Taro Yamada"]);
        assert_eq!(
            dir.lookup(&NameKey::new("YAMADA Taro").unwrap())[0].name,
            "山田 太郎"
        );
    }

    #[test]
    fn addresses_compare_in_either_form_of_their_domain() {
        let dir = parse("山田 太郎,taro@例え.jp\nTaro Yamada,Taro@XN--R8JZ45G.JP\n").unwrap();
        assert_eq!(dir.people().len(), 1);
        assert_eq!(dir.people()[0].addresses, ["taro@例え.jp"]);
        for a in ["taro@xn--r8jz45g.jp", "taro@例え。jp", "Taro@例え.JP."] {
            assert!(dir.person_with_address(a).is_some(), "{a}");
        }
        assert!(dir.person_with_address("taro@ex\u{0430}mple.jp").is_none());
        assert_eq!(
            dir.organisation_domains(|_| false)
                .into_iter()
                .collect::<Vec<_>>(),
            ["xn--r8jz45g.jp"]
        );
    }

    #[test]
    fn bad_lines_are_reported_with_file_and_line() {
        let errs = parse(
            "# comment\nTaro Yamada,taro@example.co.jp\nno address here\nHanako Suzuki,not-an-address\n様,x@example.com\na,b,c@example.com\n",
        )
        .unwrap_err();
        let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 4, "{shown:?}");
        assert!(shown[0].starts_with("staff.csv:3: expected"), "{shown:?}");
        assert!(
            shown[1].starts_with("staff.csv:4: \"not-an-address\""),
            "{shown:?}"
        );
        assert!(
            shown[2].starts_with("staff.csv:5: \"様\" is too short"),
            "{shown:?}"
        );
        assert!(shown[3].starts_with("staff.csv:6: expected"), "{shown:?}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = Directory::load(Path::new("/nonexistent/staff.csv")).unwrap_err();
        assert!(err[0]
            .to_string()
            .starts_with("/nonexistent/staff.csv: cannot read the staff directory CSV file: "));
        // The io error is kept under the problem.
        let problem = std::error::Error::source(&err[0]).unwrap();
        assert!(problem.source().unwrap().is::<std::io::Error>());
    }
}
