//! Little-endian integers at an offset of untrusted bytes: None past the
//! end (or when the offset overflows), never a panic. Every binary format
//! reader here uses these.

pub fn u16_at(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        d.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

pub fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        d.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

pub fn u64_at(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        d.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_within_and_refuses_beyond_the_end() {
        let d = [1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(u16_at(&d, 0), Some(0x0201));
        assert_eq!(u32_at(&d, 4), Some(0x0807_0605));
        assert_eq!(u64_at(&d, 0), Some(0x0807_0605_0403_0201));
        assert_eq!(u16_at(&d, 7), None);
        assert_eq!(u32_at(&d, 5), None);
        assert_eq!(u64_at(&d, 1), None);
        assert_eq!(u32_at(&d, usize::MAX - 1), None);
    }
}
