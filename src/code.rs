//! One-time codes: generated from the OS CSPRNG with uniform digits, held in
//! memory that is zeroed on drop, and never printed by `Debug`.

use std::fmt;

use rand::{TryRng, rngs::SysRng};
use zeroize::Zeroizing;

/// The shortest allowed code length.
pub const MIN_CODE_LENGTH: u8 = 4;
/// The longest allowed code length.
pub const MAX_CODE_LENGTH: u8 = 10;

/// A freshly generated one-time code.
pub(crate) struct Code(Zeroizing<String>);

impl Code {
    /// Draws `length` uniform decimal digits from the OS CSPRNG.
    ///
    /// Uniform by rejection: bytes 250..=255 are thrown away, so each of the
    /// ten digits comes from exactly 25 byte values (no modulo bias).
    pub(crate) fn generate(length: u8) -> Self {
        let length = usize::from(length.clamp(MIN_CODE_LENGTH, MAX_CODE_LENGTH));
        let mut digits = Zeroizing::new(String::with_capacity(length));
        let mut pool = Zeroizing::new([0u8; 32]);
        while digits.len() < length {
            SysRng
                .try_fill_bytes(&mut pool[..])
                .expect("the OS random number generator failed");
            for &byte in pool.iter().filter(|&&b| b < 250) {
                if digits.len() == length {
                    break;
                }
                digits.push(char::from(b'0' + byte % 10));
            }
        }
        Self(digits)
    }

    /// The digits.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code(***)")
    }
}

/// Whether `candidate` is exactly `length` ASCII digits.
pub(crate) fn is_well_formed(candidate: &str, length: u8) -> bool {
    candidate.len() == usize::from(length) && candidate.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_requested_length_and_only_digits() {
        for length in MIN_CODE_LENGTH..=MAX_CODE_LENGTH {
            let code = Code::generate(length);
            assert!(is_well_formed(code.as_str(), length));
        }
        assert_eq!(format!("{:?}", Code::generate(6)), "Code(***)");
    }

    // Uniformity is tested where a test can see modulo bias: a chi-square
    // test over 300,000 digits that a `byte % 10` generator fails
    // (tests/code_uniformity.rs).

    #[test]
    fn malformed_candidates_are_refused() {
        assert!(!is_well_formed("12345", 6));
        assert!(!is_well_formed("1234567", 6));
        assert!(!is_well_formed("12345a", 6));
        assert!(!is_well_formed("١٢٣٤٥٦", 6));
        assert!(!is_well_formed(" 12345", 6));
    }
}
