//! Padded payloads: a document or executable inflated to hundreds of MB
//! with junk (Emotet, 2023) so that size-limited scanners skip it, which
//! compresses to a few hundred KB in its archive. The declared size and the
//! ratio together tell it; either alone does not (a big honest ISO is not
//! compressible a thousand times).

/// What counts as padded (proposed config keys, `[limits]`:
/// `padded_min_bytes` = 104857600, `padded_min_ratio` = 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Declared (unpacked) sizes above this may be padding.
    pub min_declared: u64,
    /// ... when they are more than this many times the stored size.
    pub min_ratio: u64,
}

impl Default for Thresholds {
    /// More than 100 MiB at a ratio over 1000.
    fn default() -> Thresholds {
        Thresholds {
            min_declared: 100 << 20,
            min_ratio: 1000,
        }
    }
}

impl Thresholds {
    /// True when an entry declaring `declared` bytes, stored in `compressed`,
    /// is padded.
    pub fn padded(&self, declared: u64, compressed: u64) -> bool {
        declared > self.min_declared && declared / compressed.max(1) > self.min_ratio
    }
}

/// [`Thresholds::padded`] with the default thresholds.
pub fn padded(declared: u64, compressed: u64) -> bool {
    Thresholds::default().padded(declared, compressed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emotet_padding_is_padded_and_honest_sizes_are_not() {
        // 500 MiB of zeros behind a document, zipped to 300 KiB.
        assert!(padded(500 << 20, 300 << 10));
        // A 700 MiB Linux ISO compresses barely.
        assert!(!padded(700 << 20, 650 << 20));
        // A small file of zeros compresses absurdly well and harms nobody.
        assert!(!padded(50 << 20, 1));
        // Stored in zero bytes (a lying header) is padded too, no division by zero.
        assert!(padded(200 << 20, 0));
        let strict = Thresholds {
            min_declared: 1 << 20,
            min_ratio: 10,
        };
        assert!(strict.padded(2 << 20, 1024));
        assert!(!strict.padded(2 << 20, 1 << 20));
    }
}
