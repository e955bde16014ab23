//! A small explicit binary codec for checkpoint payloads: little-endian integers, length-prefixed
//! bytes and strings, counted sequences.
//!
//! The reader treats its input as hostile: every length and count is checked against the bytes
//! that remain before anything is allocated, so a forged length can never make it allocate more
//! than the input's size; every failure is a [`DecodeError`] with the offset, never a panic.

/// Why a payload could not be decoded, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct DecodeError {
    /// Byte offset in the payload.
    pub(super) offset: u64,
    /// What was wrong.
    pub(super) reason: String,
}

/// Appends values to a byte vector.
#[derive(Default)]
pub(super) struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    pub(super) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub(super) fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }

    pub(super) fn bool(&mut self, value: bool) {
        self.u8(u8::from(value));
    }

    pub(super) fn u32(&mut self, value: u32) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    pub(super) fn u64(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    pub(super) fn u128(&mut self, value: u128) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    /// A count of elements; counts beyond `u32::MAX` cannot be written (the callers' data is
    /// far below that: elements are tasks, vertices, operators or key groups).
    pub(super) fn count(&mut self, count: usize) {
        let count = u32::try_from(count).expect("a checkpoint sequence holds fewer than 2^32 elements");
        self.u32(count);
    }

    pub(super) fn bytes(&mut self, value: &[u8]) {
        self.u64(value.len() as u64);
        self.bytes.extend_from_slice(value);
    }

    pub(super) fn str(&mut self, value: &str) {
        self.bytes(value.as_bytes());
    }
}

/// Reads values from a byte slice, checking every length against what remains.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, position: 0 }
    }

    pub(super) fn error(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError { offset: self.position as u64, reason: reason.into() }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    fn take(&mut self, length: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if length > self.remaining() {
            return Err(self.error(format!("{what}: needs {length} bytes, {} remain", self.remaining())));
        }
        let slice = &self.bytes[self.position..self.position + length];
        self.position += length;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        let slice = self.take(N, what)?;
        let mut array = [0u8; N];
        array.copy_from_slice(slice);
        Ok(array)
    }

    pub(super) fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(super) fn bool(&mut self, what: &str) -> Result<bool, DecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.error(format!("{what}: expected 0 or 1, found {other}"))),
        }
    }

    pub(super) fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(super) fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    pub(super) fn u128(&mut self, what: &str) -> Result<u128, DecodeError> {
        Ok(u128::from_le_bytes(self.array(what)?))
    }

    /// A count of elements each at least `element_bytes` long: refused unless that many could
    /// fit in what remains, so a caller may reserve `count` elements.
    pub(super) fn count(&mut self, element_bytes: usize, what: &str) -> Result<usize, DecodeError> {
        debug_assert!(element_bytes > 0, "every element takes at least one byte");
        let count = self.u32(what)? as usize;
        if count.saturating_mul(element_bytes) > self.remaining() {
            let remaining = self.remaining();
            return Err(self.error(format!("{what}: {count} elements cannot fit in {remaining} bytes")));
        }
        Ok(count)
    }

    pub(super) fn bytes(&mut self, what: &str) -> Result<Vec<u8>, DecodeError> {
        let length = self.u64(what)?;
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        Ok(self.take(length, what)?.to_vec())
    }

    pub(super) fn string(&mut self, what: &str) -> Result<String, DecodeError> {
        let start = self.position;
        let bytes = self.bytes(what)?;
        String::from_utf8(bytes).map_err(|_| DecodeError { offset: start as u64, reason: format!("{what}: not UTF-8") })
    }

    /// Fails unless every byte was read.
    pub(super) fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(self.error(format!("{} bytes left over after the payload", self.remaining())));
        }
        Ok(())
    }
}
